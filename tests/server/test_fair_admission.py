"""The parts of fair admission: shares per address, the shed counters' one line per burst, and one
line per burst of accept failures. The flood itself, over real sockets: tests/e2e/test_flood.py."""

from __future__ import annotations

import errno
import logging

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from server.accept_failures import BURST_GAP, AcceptFailures
from server.config import ServerConfig
from server.link.shares import AddressShares, address_key
from server.link.shed import BURST_QUIET, REPORT_EVERY, ShedCounters, ShedReason


@pytest.mark.parametrize(
    ("sockaddr", "key"),
    [
        (("203.0.113.9", 40000), "203.0.113.9"),
        (("::ffff:203.0.113.9", 40000, 0, 0), "203.0.113.9"),  # a dual-stack listener's IPv4 peer
        (("2001:db8:1:2:aaaa::1", 40000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff:ffff:ffff:ffff", 1, 0, 0), "2001:db8:1:2::/64"),  # same /64, same share
        (("fe80::1%eth0", 1, 0, 2), "fe80::/64"),
        ("/run/fleetgate.sock", "/run/fleetgate.sock"),
    ],
)
def test_address_key(sockaddr: object, key: str) -> None:
    assert address_key(sockaddr) == key


def test_one_address_holds_at_most_its_share_and_others_are_unaffected() -> None:
    shares = AddressShares(per_address=3)
    assert [shares.take("a") for _ in range(5)] == [True, True, True, False, False]
    assert shares.take("b")  # another address has its own share
    shares.give_back("a")
    assert shares.take("a") and not shares.take("a")
    for _ in range(3):
        shares.give_back("a")
    shares.give_back("b")
    assert len(shares) == 0  # addresses that hold nothing are forgotten


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=200), st.integers(1, 5))
def test_shares_never_exceed_the_limit_and_balance(ops: list[tuple[str, bool]], per_address: int) -> None:
    shares = AddressShares(per_address)
    model: dict[str, int] = {}
    for address, take in ops:
        if take:
            granted = shares.take(address)
            assert granted == (model.get(address, 0) < per_address)
            model[address] = model.get(address, 0) + granted
        elif model.get(address, 0) > 0:
            shares.give_back(address)
            model[address] -= 1
        assert shares.held(address) == model.get(address, 0) <= per_address
    assert len(shares) == sum(1 for n in model.values() if n)


def test_the_share_and_the_first_message_deadline_are_configurable() -> None:
    cfg = ServerConfig(data_dir=".", max_handshakes_per_address=8, first_message_timeout=0.25)  # type: ignore[arg-type]
    assert (cfg.max_handshakes_per_address, cfg.first_message_timeout) == (8, 0.25)
    with pytest.raises(ValueError, match="max_handshakes_per_address"):
        ServerConfig(data_dir=".", max_handshakes_per_address=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first_message_timeout"):
        ServerConfig(data_dir=".", first_message_timeout=0)  # type: ignore[arg-type]


def shed_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.fields for r in caplog.records if r.getMessage() == "admission_shed"]  # type: ignore[attr-defined]


async def test_a_burst_of_shedding_is_one_line(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    shed = ShedCounters()
    nursery.start_soon(shed.report)
    for i in range(5000):
        shed.shed(ShedReason.ADDRESS_SHARE, "198.51.100.1")
        if i % 100 == 0:
            shed.shed(ShedReason.FIRST_MESSAGE_TIMEOUT, f"203.0.113.{i % 7}")
            await trio.sleep(0.01)
    await trio.sleep(BURST_QUIET * 2)
    (line,) = shed_lines(caplog)
    assert line["address_share"] == 5000 and line["first_message_timeout"] == 50
    top = line["top_addresses"]
    assert isinstance(top, list) and len(top) == 3 and top[0] == ["198.51.100.1", 5000]
    assert line["burst_ended"] is True and line["addresses"] == 8
    # A second burst later: a second line, its own counts, the totals kept.
    shed.shed(ShedReason.FIRST_MESSAGE_TIMEOUT, "198.51.100.1")
    await trio.sleep(BURST_QUIET * 2)
    second = shed_lines(caplog)[1]
    assert (second["address_share"], second["first_message_timeout"]) == (0, 1)
    assert second["totals"] == {"address_share": 5000, "first_message_timeout": 51}


async def test_a_long_burst_is_a_line_every_report_interval(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    shed = ShedCounters()
    nursery.start_soon(shed.report)
    seconds = 3 * REPORT_EVERY
    for _ in range(int(seconds * 10)):  # ten a second, without a pause
        shed.shed(ShedReason.ADDRESS_SHARE, "198.51.100.1")
        await trio.sleep(0.1)
    await trio.sleep(BURST_QUIET * 2)
    lines = shed_lines(caplog)
    assert 3 <= len(lines) <= 4
    assert sum(int(str(line["address_share"])) for line in lines) == seconds * 10
    assert [line["burst_ended"] for line in lines][-1] is True


def test_accept_failures_are_one_line_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    clock = [100.0]
    failures = AcceptFailures(logging.getLogger("fleetgate.test"), "devices", clock=lambda: clock[0])
    emfile = OSError(errno.EMFILE, "Too many open files")
    for _ in range(600):  # a minute of retries every 0.1 s
        failures.failed(emfile)
        clock[0] += 0.1
    clock[0] += BURST_GAP + 1
    failures.failed(OSError(errno.ENFILE, "Too many open files in system"))
    lines = [r for r in caplog.records if r.getMessage() == "accept_failed"]
    assert [line.fields["errno"] for line in lines] == ["EMFILE", "ENFILE"]  # type: ignore[attr-defined]
    assert all(line.exc_info is None for line in lines)  # no traceback
    assert (failures.failures, failures.bursts) == (601, 2)
