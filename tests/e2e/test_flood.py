"""Issue 14, item 2: one host's junk sockets must not lock real devices out.

A bounded flood over real loopback sockets: a few hundred idle or dribbling junk connections from
127.0.0.1 against a server with few handshake slots, while real devices connect from 127.0.0.2 on.
Before fair admission the junk held every slot for the whole 10 s handshake deadline and the rest
waited in the listen queue ahead of the devices; now one address holds at most its share of the
slots, the rest of its junk is closed at accept, and a silent connection loses its slot after
`first_message_timeout`. The bound below is structural: the devices must be in before the handshake
deadline of any junk connection could have freed a slot (the full-size drill is
`python -m firmware_sim.chaos.flood`, docs/RELIABILITY.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from firmware_sim.chaos import flood
from firmware_sim.device import SimDevice
from firmware_sim.identity import DeviceIdentity
from protocol.connection import PREAMBLE
from server.link.shed import BURST_QUIET

from .conftest import start_live

JUNK = 300
SLOTS = 32
SHARE = 8
DEVICES = 5


async def hold(stream: trio.SocketStream, drip: bool, told: list[bytes]) -> None:
    """A junk connection: silent (or one byte of a never-ending HELLO a second) until closed."""
    said = b""
    try:
        if drip:
            for byte in PREAMBLE + b"\x00\x60" + b"\x00" * 96:
                await stream.send_all(bytes([byte]))
                with trio.move_on_after(1.0):
                    said = await stream.receive_some(64)
                    break
        else:
            said = await stream.receive_some(64)
    except (trio.BrokenResourceError, OSError):
        pass  # reset: nothing said
    told.append(said)
    await stream.aclose()


@pytest.mark.parametrize("drip", [False, True], ids=["idle", "one-byte-a-second"])
async def test_junk_from_one_address_does_not_delay_devices_from_others(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, drip: bool
) -> None:
    live = await start_live(
        tmp_path, nursery, devices=DEVICES, max_handshakes=SLOTS, max_handshakes_per_address=SHARE,
        first_message_timeout=0.5,
    )  # fmt: skip
    told: list[bytes] = []
    async with trio.open_nursery() as junk:
        for _ in range(JUNK):  # every slot and more, from one address, before any device
            try:
                stream = await flood.open_from("127.0.0.1", live.port)
            except ConnectionResetError:  # shed while connecting: nothing said either
                told.append(b"")
                continue
            junk.start_soon(hold, stream, drip, told)
        # Within the handshake deadline of the first junk (10 s): without fair admission, no slot
        # was free before it, and every device queued behind 300 junk connections.
        with trio.fail_after(live.server.ctx.config.handshake_timeout - 2):
            for i, identity in enumerate(live.known):
                stream = await flood.open_from(f"127.0.0.{2 + i}", live.port)
                async with stream:
                    welcome = await SimDevice(identity, live.key).handshake(stream)
                    assert welcome.status is not None
        junk.cancel_scope.deadline = trio.current_time() + 10  # every junk connection closed by then
    assert told == [b""] * JUNK  # every junk connection closed, and none of them told anything
    totals = live.server.admission.shed.as_dict()
    # Closed at accept: over their address's share and its line; the rest shed at the deadline.
    assert totals["address_share"] >= JUNK - SHARE - 2 * live.server.admission.room_per_address
    assert totals["first_message_timeout"] >= SHARE
    assert sum(totals.values()) == JUNK
    # Counted and logged per burst, not a line per junk socket.
    await trio.sleep(3 * BURST_QUIET)  # the line comes once a burst has been quiet for BURST_QUIET
    lines = [r for r in caplog.records if r.getMessage() == "admission_shed"]
    assert 1 <= len(lines) <= 2
    assert sum(r.fields["address_share"] for r in lines) == totals["address_share"]  # type: ignore[attr-defined]
    per_socket = [r for r in caplog.records if r.getMessage() in ("device_closed", "device_refused")]
    assert len(per_socket) <= DEVICES and all(r.levelno < logging.ERROR for r in per_socket)
    live.server.shutdown()


def test_the_flood_drill_passes_against_a_small_server(capsys: pytest.CaptureFixture[str]) -> None:
    """The drill program itself, bounded: its own `fleetgate serve` with the share and the deadline
    set by their flags, junk that dribbles and reconnects, devices from three addresses."""
    code = flood.main([
        "--junk", "300", "--mode", "drip", "--reconnect", "--devices", "6", "--device-addresses", "3",
        "--junk-lead", "3", "--hold-after", "0.5", "--p99-target", "8",
        "--server-arg=--max-handshakes=32", "--server-arg=--max-handshakes-per-address=8",
        "--server-arg=--first-message-timeout=0.5",
    ])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "devices privileged: 6 of 6" in out.out
    assert "shed by the server: address_share" in out.out
    assert "Traceback" not in out.err and "tracebacks" not in out.err


async def test_devices_over_their_address_share_wait_their_turn(tmp_path: Path, nursery: trio.Nursery) -> None:
    """Many devices behind one carrier NAT address: over the share they wait, they are not turned away."""
    live = await start_live(
        tmp_path, nursery, devices=6, max_handshakes=4, max_handshakes_per_address=2, first_message_timeout=0.5
    )
    silent = [await flood.open_from("127.0.0.9", live.port) for _ in range(2)]  # the address's share, taken
    await trio.sleep(0.1)
    welcomed: list[bool] = []

    async def device(identity: DeviceIdentity) -> None:
        async with await flood.open_from("127.0.0.9", live.port) as stream:
            welcomed.append((await SimDevice(identity, live.key).handshake(stream)).status is not None)

    with trio.fail_after(live.server.ctx.config.handshake_timeout):
        async with trio.open_nursery() as devices:
            for identity in live.known:
                devices.start_soon(device, identity)
    assert welcomed == [True] * 6  # none reset: each waited for a slot of its own address
    totals = live.server.admission.shed.as_dict()
    # Only the silent two were shed.
    assert totals == {"address_share": 0, "first_message_timeout": 2, "database_lost": 0}
    for sock in silent:
        await sock.aclose()
    live.server.shutdown()
