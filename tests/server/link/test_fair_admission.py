"""The parts of fair admission: shares per address, the shed counters' one line per burst, and one
line per burst of accept failures. The flood itself, over real sockets: tests/e2e/test_flood.py."""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from server.accept_failures import BURST_GAP, AcceptFailures
from server.config import ServerConfig
from server.link.acceptor import AdmissionGate, HandshakeSlot
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
    assert second["totals"] == {"address_share": 5000, "first_message_timeout": 51, "database_lost": 0}


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


# ---------------------------------------------------------------------- waiting for the address's turn


class Started:
    """The gate's handler: records each connection it is given, with its slot."""

    def __init__(self) -> None:
        self.slots: list[HandshakeSlot] = []
        self.streams: list[trio.SocketStream] = []

    async def __call__(self, stream: trio.SocketStream, slot: HandshakeSlot) -> None:
        self.streams.append(stream)
        self.slots.append(slot)


_OPEN: list[trio.socket.SocketType] = []


def connection() -> trio.SocketStream:
    ours, theirs = trio.socket.socketpair()
    _OPEN.extend((ours, theirs))
    return trio.SocketStream(ours)


@pytest.fixture
async def nursery_and_sockets(nursery: trio.Nursery) -> AsyncIterator[trio.Nursery]:
    """The test's nursery; the socket pairs the test made are closed after it (in trio's run)."""
    yield nursery
    while _OPEN:
        _OPEN.pop().close()


async def admitted(gate: AdmissionGate, address: str) -> None:
    """As the accept loop does for a connection its address has room for."""
    gate.slots.acquire_nowait()
    assert gate.shares.take(address)
    gate.begin(connection(), address)
    await trio.testing.wait_all_tasks_blocked()


async def test_over_its_share_a_connection_waits_for_its_address_then_takes_the_slot(
    nursery_and_sockets: trio.Nursery,
) -> None:
    nursery = nursery_and_sockets
    gate = AdmissionGate(max_handshakes=2, per_address=1)  # room 8, 4 from one address
    started = Started()
    gate.serve_with(started, nursery)
    await admitted(gate, "a")
    for _ in range(4):
        await gate.place(connection(), "a")
    assert (gate.waiting, gate.waiting_from("a")) == (4, 4)
    await gate.place(connection(), "a")  # over half the room: shed at once
    assert gate.shed.totals[ShedReason.ADDRESS_SHARE] == 1 and gate.waiting == 4
    await admitted(gate, "b")  # another address is not in a's line
    assert len(started.slots) == 2 and gate.slots.value == 0
    started.slots[0].release()  # a's handshake ends: its slot passes to a's next, in order
    await trio.testing.wait_all_tasks_blocked()
    assert len(started.slots) == 3 and gate.waiting_from("a") == 3 and gate.slots.value == 0
    started.slots[2].shed_unanswered()  # that one never spoke: counted, and the next one goes
    await trio.testing.wait_all_tasks_blocked()
    assert len(started.slots) == 4 and gate.shed.totals[ShedReason.FIRST_MESSAGE_TIMEOUT] == 1
    for _ in range(6):  # every handshake ends, each handing its slot on while a's line lasts
        for slot in list(started.slots):
            slot.release()
        await trio.testing.wait_all_tasks_blocked()
    assert len(started.slots) == 2 + 4  # b's, and a's first and the four that waited
    assert gate.slots.value == 2 and len(gate.shares) == 0 and gate.waiting == 0


async def test_a_full_waiting_room_stops_accepting_until_a_place_frees(nursery_and_sockets: trio.Nursery) -> None:
    nursery = nursery_and_sockets
    gate = AdmissionGate(max_handshakes=3, per_address=1)  # room 12, 6 from one address
    started = Started()
    gate.serve_with(started, nursery)
    for address in "ab":
        await admitted(gate, address)
        for _ in range(6):
            await gate.place(connection(), address)
    await admitted(gate, "c")
    assert gate.waiting == gate.room == 12
    placed = trio.Event()

    async def place_c() -> None:
        await gate.place(connection(), "c")
        placed.set()

    nursery.start_soon(place_c)
    await trio.testing.wait_all_tasks_blocked()
    assert not placed.is_set()  # not shed: the loop waits (and the kernel's queue holds the rest)
    started.slots[0].release()  # a's next one takes its slot: a place is free
    await trio.testing.wait_all_tasks_blocked()
    assert placed.is_set() and gate.waiting_from("c") == 1 and gate.waiting == 12
    assert gate.shed.totals.total() == 0


async def test_stopping_closes_the_connections_still_waiting(nursery_and_sockets: trio.Nursery) -> None:
    nursery = nursery_and_sockets
    gate = AdmissionGate(max_handshakes=1, per_address=1)
    gate.serve_with(Started(), nursery)
    await admitted(gate, "a")
    ours, theirs = trio.socket.socketpair()
    _OPEN.extend((ours, theirs))
    await gate.place(trio.SocketStream(ours), "a")
    gate.close_waiting()
    assert gate.waiting == 0
    with trio.fail_after(1):
        assert await theirs.recv(16) == b""
