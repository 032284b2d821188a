"""Building a webhook's HTTP request from an event: every rule as data."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.rules.webhook_model import Auth, Method, Webhook, WebhookSpec
from server.store.records import EventRecord
from server.webhooks.request import EVENT_ID_HEADER, SIGNATURE_HEADER, RenderError, build, signature

SECRET = "ab" * 32
DEVICE = "0123456789abcdef01234567"
AT = 1_700_000_000.25


def hook(**spec: object) -> Webhook:
    fields: dict[str, object] = {"event": "temp", "url": "https://example.com/in"}
    fields.update(spec)
    return Webhook(7, 4242, WebhookSpec(**fields), SECRET, 0.0, "tester")  # type: ignore[arg-type]


def event(name: str = "temp/room", data: bytes = b"21.5") -> EventRecord:
    return EventRecord(DEVICE, name, data, 60, True, AT, product_id=4242, id=99, webhooks=True)


def verify(headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: recompute the HMAC from the timestamp, event ID and body."""
    parts = dict(p.split("=", 1) for p in headers[SIGNATURE_HEADER].split(","))
    message = f"{parts['t']}.{headers[EVENT_ID_HEADER]}.".encode() + body
    expected = hmac.new(bytes.fromhex(SECRET), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_defaults_are_form_fields_of_a_post() -> None:
    req = build(hook(), event(), 1_700_000_000)
    assert req.method == "POST" and req.url == "https://example.com/in"
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
    assert form == {"event": "temp/room", "data": "21.5", "published_at": "2023-11-14T22:13:20.250Z",
                    "coreid": DEVICE, "productID": "4242"}  # fmt: skip
    assert req.headers[EVENT_ID_HEADER] == "99"
    assert verify(req.headers, req.body)


def test_get_carries_the_defaults_in_the_query() -> None:
    req = build(hook(method=Method.GET, query={"k": "{{PARTICLE_EVENT_VALUE}}"}), event(), 1)
    query = parse_qs(urlsplit(req.url).query)
    assert query["k"] == ["21.5"] and query["event"] == ["temp/room"] and req.body == b""
    assert verify(req.headers, b"")


def test_no_defaults_leaves_them_out() -> None:
    req = build(hook(method=Method.GET, no_defaults=True), event(), 1)
    assert urlsplit(req.url).query == ""
    assert build(hook(no_defaults=True), event(), 1).body == b""


def test_json_object_template_renders_each_string_and_merges_defaults() -> None:
    spec_json = {"value": "{{{PARTICLE_EVENT_VALUE}}}", "nested": ["{{room}}", 3], "{{PARTICLE_EVENT_NAME}}": True}
    req = build(hook(json=spec_json), event(data=b'{"room": "kitchen <1>"}'), 1)
    body = json.loads(req.body)
    assert body["value"] == '{"room": "kitchen <1>"}'
    assert body["nested"] == ["kitchen <1>", 3]  # a header or JSON value is not HTML: no escaping
    assert body["temp/room"] is True and body["coreid"] == DEVICE
    assert req.headers["Content-Type"] == "application/json"


def test_json_string_template_escapes_values_as_json_strings() -> None:
    template = '{"d": "{{PARTICLE_EVENT_VALUE}}", "n": {{n}}}'
    req = build(hook(json=template, no_defaults=True), event(data=b'{"n": 5, "q": "x"}'), 1)
    assert json.loads(req.body) == {"d": '{"n": 5, "q": "x"}', "n": 5}


def test_json_string_template_that_is_not_json_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="did not render to JSON"):
        build(hook(json="{not json {{PARTICLE_EVENT_VALUE}}"), event(), 1)


def test_body_template_and_headers() -> None:
    spec = hook(body="v={{{PARTICLE_EVENT_VALUE}}}", headers={"X-Device": "{{PARTICLE_DEVICE_ID}}",
                                                              "Idempotency-Key": "forged"})  # fmt: skip
    req = build(spec, event(), 1)
    assert req.body == b"v=21.5" and req.headers["X-Device"] == DEVICE
    assert req.headers[EVENT_ID_HEADER] == "99"  # ours; a template cannot override it


def test_a_header_that_renders_a_line_break_is_refused() -> None:
    with pytest.raises(RenderError, match="line break"):
        build(hook(headers={"X-V": "{{PARTICLE_EVENT_VALUE}}"}), event(data=b"a\r\nInjected: 1"), 1)


def test_url_values_are_percent_encoded() -> None:
    req = build(hook(url="https://example.com/d/{{PARTICLE_EVENT_NAME}}?x=1", no_defaults=True), event(), 1)
    assert req.url == "https://example.com/d/temp%2Froom?x=1"
    assert req.host_key == "https://example.com:443"


def test_basic_auth() -> None:
    req = build(hook(auth=Auth("user", "pass")), event(), 1)
    assert req.headers["Authorization"] == "Basic dXNlcjpwYXNz"


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=2**40))
def test_signature_changes_with_any_byte(body: bytes, ts: int) -> None:
    sig = signature(SECRET, ts, 5, body)
    assert sig.startswith(f"t={ts},v1=") and len(sig.split("v1=")[1]) == 64
    assert signature(SECRET, ts, 5, body + b"x") != sig and signature(SECRET, ts, 6, body) != sig


@given(st.text(max_size=200))
def test_any_event_data_renders_or_fails_cleanly(data: str) -> None:
    try:
        req = build(hook(json={"v": "{{{PARTICLE_EVENT_VALUE}}}"}), event(data=data.encode()), 1)
    except RenderError:
        return
    assert json.loads(req.body)["v"] == data


def test_response_topics_fit_an_event_name() -> None:
    from server.webhooks.answers import _topic

    assert _topic("hook-response/temp", 3) == "hook-response/temp/3"
    long = _topic("hook-response/" + "é" * 40, 12)
    assert len(long.encode()) <= 64 and long.endswith("/12") and long.startswith("hook-response/éé")
