"""Webhook checks before saving, the address guard and the per-host throttle."""

from __future__ import annotations

import ipaddress

import pytest
import trio

from server.ops.webhooks import check_spec
from server.rules.errors import Invalid
from server.rules.webhook_model import WebhookSpec
from server.webhooks import guard
from server.webhooks.throttle import NORMAL_IN_FLIGHT, THROTTLED_INTERVAL, HostThrottle


def spec(**fields: object) -> WebhookSpec:
    base: dict[str, object] = {"event": "temp", "url": "https://example.com/in"}
    base.update(fields)
    return WebhookSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field_name", "text"),
    [
        ({"url": "ftp://example.com/"}, "url", "http:// or https://"),
        ({"url": "example.com/in"}, "url", "http:// or https://"),
        ({"url": "https://{{host}}/in"}, "url", "literally"),
        ({"url": "https://u:p@example.com/"}, "url", "credentials"),
        ({"url": "http://127.0.0.1:9000/"}, "url", "private, loopback"),
        ({"url": "http://[::1]/"}, "url", "private, loopback"),
        ({"url": "http://10.1.2.3/"}, "url", "private, loopback"),
        ({"url": "https://a..b.example.net/in"}, "url", "not a valid host name"),  # an empty label
        ({"url": f"https://{'x' * 64}.example.net/"}, "url", "not a valid host name"),  # a label over 63
        ({"event": ""}, "event", "non-empty"),
        ({"event": "hook-response/x"}, "event", "hook-"),
        ({"json": {"a": "{{#open}}"}}, "json.a", "not a valid template"),
        ({"body": "{{/stray}}"}, "body", "not a valid template"),
        ({"headers": {"X-A": "{{#a}}"}}, "headers.X-A", "not a valid template"),
        ({"headers": {"Bad Name": "x"}}, "headers", "header name"),
        ({"json": {}, "body": "x"}, "json", "at most one"),
        ({"response_topic": "{{^x}}"}, "responseTopic", "not a valid template"),
    ],
)
def test_check_spec_names_the_field(fields: dict[str, object], field_name: str, text: str) -> None:
    with pytest.raises(Invalid, match=text) as caught:
        check_spec(spec(**fields), allow_private=False)
    assert caught.value.field == field_name


def test_private_literals_pass_when_allowed() -> None:
    check_spec(spec(url="http://127.0.0.1:9000/in"), allow_private=True)
    check_spec(spec(json={"v": "{{{PARTICLE_EVENT_VALUE}}}"}, url="http://8.8.8.8/"), allow_private=False)


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("127.0.0.1", False), ("10.0.0.1", False), ("192.168.1.1", False), ("169.254.1.1", False),
     ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False), ("fe80::1", False),
     ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:8.8.8.8", True), ("2001:4860::8888", True)],
)  # fmt: skip
def test_is_public(address: str, public: bool) -> None:
    assert guard.is_public(ipaddress.ip_address(address)) is public


async def test_pin_refuses_loopback_names_and_rewrites_to_the_checked_address() -> None:
    with pytest.raises(guard.TargetRefused, match="private, loopback"):
        await guard.pin("http://localhost:8000/x", allow_private=False)
    pinned = await guard.pin("http://localhost:8000/x?q=1", allow_private=True)
    assert pinned.url in ("http://127.0.0.1:8000/x?q=1", "http://[::1]:8000/x?q=1")
    assert pinned.host_header == "localhost:8000" and pinned.sni_hostname is None
    with pytest.raises(guard.TargetRefused, match="cannot resolve"):
        await guard.pin("http://no-such-host.invalid/", allow_private=True)


async def test_pin_refuses_a_name_dns_cannot_carry() -> None:
    # A webhook saved before creation checked its host: the resolver raised UnicodeError, which
    # nothing in the webhook service expected; now it is one refused delivery like any other.
    with pytest.raises(guard.TargetRefused, match="not a valid host name"):
        await guard.pin("https://a..b.example.net/in", allow_private=False)


def test_throttle_engages_when_errors_outnumber_successes_and_recovers() -> None:
    t = HostThrottle()
    for _ in range(3):
        t.record(False)
    assert not t.throttled  # too few samples to judge
    t.record(False)
    assert t.throttled and t.in_flight_limit == 1
    assert t.start_at(10.0) == 10.0 and t.start_at(10.0) == 10.0 + THROTTLED_INTERVAL
    for _ in range(5):
        t.record(True)
    assert not t.throttled and t.in_flight_limit == NORMAL_IN_FLIGHT
    assert t.start_at(11.0) == 11.0


async def test_pin_is_quick_for_literals() -> None:
    with trio.fail_after(1):
        assert (await guard.pin("https://8.8.8.8/a", allow_private=False)).url == "https://8.8.8.8/a"
