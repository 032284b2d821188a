"""OTA over the device link, end to end: a real server offers its release to a connected device."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from firmware_sim import firmware
from firmware_sim.device import DeviceSettings, SimDevice
from firmware_sim.flash import Flash
from firmware_sim.identity import DeviceIdentity
from protocol.codes import CloseReason, OtaRefusal, OtaResult, Status
from protocol.messages import OtaAccept, OtaRefuse, OtaWindowAck
from protocol.ota import ReceiverState
from server.firmware.cache import ImageCache
from server.link import ota_delivery
from server.ops.operations import Operations
from server.ops.rollouts import RolloutRequest
from server.rules.model import Policy
from server.rules.rollout_model import RolloutSettings, RolloutTarget

from .conftest import Live, start_live

ADMIN = "user:admin"
P = 4301
IMAGE = firmware.build(P, 2, 300_000)


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Live]:
    running = await start_live(tmp_path, nursery, devices=3)
    ops = Operations(running.server.ctx)
    await ops.create_product(ADMIN, "Lamp", product_id=P, policy=Policy.QUARANTINE)
    await ops.firmware.upload(ADMIN, P, IMAGE, version=2, title="lamp-2")
    await ops.firmware.release(ADMIN, P, 2, product_default=True, groups=[], intelligent=False)
    yield running
    running.server.shutdown()


async def session(live: Live, device: SimDevice, seconds: float) -> None:
    """Connect and run until the device leaves (after an update it "reboots") or time runs out."""
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    try:
        await device.handshake(stream)
        with trio.move_on_after(seconds):
            await device.run()
    finally:
        await stream.aclose()


def stalling_device(live: Live, identity: DeviceIdentity, flash: Flash, stall_after: int) -> SimDevice:
    """It stops acknowledging after `stall_after` bytes: the server waits at its window, mid-transfer."""
    settings = DeviceSettings(product_id=P, firmware_version=1, rx_max_frame=512, stall_after_bytes=stall_after)
    return SimDevice(identity, live.key, settings, flash=flash)


async def wait_stored(flash: Flash, size: int) -> None:
    with trio.fail_after(5):
        while flash.receiver.received_until < size:  # noqa: ASYNC110 (polling the device's flash)
            await trio.sleep(0.001)


async def test_a_member_on_old_firmware_receives_the_release_and_reboots_into_it(live: Live) -> None:
    identity = live.known[0]
    await Operations(live.server.ctx).add_device(ADMIN, P, identity.device_id_hex)
    flash = Flash()
    device = SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=1), flash=flash)
    await session(live, device, seconds=10)
    assert device.state.status is Status.OK
    assert [r.status for r in device.ota_results] == [OtaResult.VERIFIED]
    assert flash.installed_version == 2 and flash.read(0, len(IMAGE)) == IMAGE

    # After the "reboot" it reports version 2: it is on target, nothing more is offered.
    again = SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=2), flash=flash)
    await session(live, again, seconds=1)
    assert again.ota_results == [] and again.closed is None


async def test_a_quarantined_device_never_receives_a_byte(live: Live) -> None:
    flash = Flash()
    device = SimDevice(live.known[1], live.key, DeviceSettings(product_id=P, firmware_version=1), flash=flash)
    await session(live, device, seconds=1)
    assert device.state.status is Status.QUARANTINED
    assert flash.bytes_written == 0 and device.ota_results == []


async def test_a_damaged_copy_on_the_nodes_disk_is_fetched_again_and_never_offered(
    live: Live, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ota_delivery, "IMAGES", ImageCache())  # not already read by another test
    identity = live.known[0]
    await Operations(live.server.ctx).add_device(ADMIN, P, identity.device_id_hex)
    copy = live.server.ctx.binaries.path(hashlib.sha256(IMAGE).hexdigest())
    copy.write_bytes(IMAGE[:-1] + bytes([IMAGE[-1] ^ 1]))  # one bit flipped on disk
    flash = Flash()
    device = SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=1), flash=flash)
    await session(live, device, seconds=10)
    assert flash.installed_version == 2 and flash.read(0, len(IMAGE)) == IMAGE  # the upload, from the store
    assert copy.read_bytes() == IMAGE
    assert [r.levelname for r in caplog.records if r.getMessage() == "firmware_cache_corrupt"] == ["WARNING"]


async def test_a_stored_binary_that_does_not_hash_to_its_version_is_never_offered(
    live: Live, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ota_delivery, "IMAGES", ImageCache())  # not already read by another test
    identity = live.known[0]
    await Operations(live.server.ctx).add_device(ADMIN, P, identity.device_id_hex)
    sha256 = hashlib.sha256(IMAGE).hexdigest()
    writer = live.server.ctx.store.sync._w  # type: ignore[attr-defined]  # both engines': damage the row itself
    writer.execute("UPDATE firmware_blobs SET data = ? WHERE sha256 = ?", (IMAGE[:-1] + b"\x00", sha256))
    live.server.ctx.binaries.discard(sha256)  # this node's copy gone: the next offer fetches
    flash = Flash()
    device = SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=1), flash=flash)
    await session(live, device, seconds=1)
    assert device.state.status is Status.OK
    assert flash.bytes_written == 0 and device.ota_results == [] and flash.receiver.current_offer is None
    assert [r.levelname for r in caplog.records if r.getMessage() == "ota_image_corrupt"] == ["ERROR"]
    assert len(ota_delivery.IMAGES) == 0 and not live.server.ctx.binaries.path(sha256).exists()


async def test_devices_are_served_from_the_shared_image_cache(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    images = ImageCache()
    monkeypatch.setattr(ota_delivery, "IMAGES", images)
    ops = Operations(live.server.ctx)
    for identity in live.known[:2]:
        await ops.add_device(ADMIN, P, identity.device_id_hex)
    flashes = [Flash(), Flash()]
    async with trio.open_nursery() as nursery:
        for identity, flash in zip(live.known[:2], flashes, strict=True):
            settings = DeviceSettings(product_id=P, firmware_version=1)
            nursery.start_soon(session, live, SimDevice(identity, live.key, settings, flash=flash), 10.0)
    assert [f.installed_version for f in flashes] == [2, 2]
    assert images.get(hashlib.sha256(IMAGE).hexdigest()) == IMAGE and images.nbytes == len(IMAGE)


async def test_losing_the_ota_privilege_aborts_a_transfer_in_flight(live: Live) -> None:
    identity = live.known[2]
    ops = Operations(live.server.ctx)
    await ops.add_device(ADMIN, P, identity.device_id_hex)
    flash = Flash()
    device = stalling_device(live, identity, flash, 20_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session, live, device, 10.0)
        await wait_stored(flash, 20_000)
        await ops.remove_device(ADMIN, P, identity.device_id_hex, deny=True)
        with trio.fail_after(5):
            await device.wait_status(Status.DENIED)
        stored = flash.receiver.received_until
        await trio.sleep(0.3)
        assert flash.receiver.received_until == stored < len(IMAGE)  # nothing more arrives
        assert device.ota_results == [] and flash.installed_version is None
        assert flash.receiver.state is ReceiverState.IDLE  # the device was told OTA_ABORT (bytes kept)
        nursery.cancel_scope.cancel()


async def test_an_update_is_confirmed_by_the_next_hello_or_counted_failed(live: Live) -> None:
    identity = live.known[0]
    await Operations(live.server.ctx).add_device(ADMIN, P, identity.device_id_hex)
    flash = Flash()
    await session(
        live, SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=1), flash=flash), 10
    )
    await live.server.ctx.store.flush()
    outcome = live.store.ota_outcome(identity.device_id_hex)
    assert outcome is not None and (outcome.version, outcome.state) == (2, "installed")

    # It comes back still running version 1: the update did not take. Counted failed, not re-flashed.
    back = SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=1), flash=Flash())
    await session(live, back, seconds=1)
    await live.server.ctx.store.flush()
    outcome = live.store.ota_outcome(identity.device_id_hex)
    assert outcome is not None and outcome.state == "failed" and "did not take" in outcome.reason
    assert back.ota_results == [] and back.flash.bytes_written == 0
    actions = [a.action for a in live.store.list_audit(device_id=identity.device_id_hex)]
    assert "ota_failed" in actions


async def test_coming_back_on_the_new_version_confirms_the_update(live: Live) -> None:
    identity = live.known[1]
    await Operations(live.server.ctx).add_device(ADMIN, P, identity.device_id_hex)
    flash = Flash()
    await session(
        live, SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=1), flash=flash), 10
    )
    await session(live, SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=2), flash=flash), 1)
    await live.server.ctx.store.flush()
    outcome = live.store.ota_outcome(identity.device_id_hex)
    assert outcome is not None and (outcome.version, outcome.state) == (2, "confirmed")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("ack_past_sent", CloseReason.MESSAGE_INVALID),  # acknowledges bytes never sent
        ("second_accept", CloseReason.UNEXPECTED_MESSAGE),
        ("refuse_after_accept", CloseReason.UNEXPECTED_MESSAGE),
    ],
)
async def test_an_ota_answer_that_breaks_the_rules_closes_that_device_only(
    live: Live, bad: str, reason: CloseReason
) -> None:
    ops = Operations(live.server.ctx)
    culprit, bystander = live.known[0], live.known[1]
    for identity in (culprit, bystander):
        await ops.add_device(ADMIN, P, identity.device_id_hex)
    flash = Flash()
    device = stalling_device(live, culprit, flash, 2_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session, live, device, 10.0)
        await wait_stored(flash, 2_000)
        offer = flash.receiver.current_offer
        assert offer is not None
        message = {
            "ack_past_sent": OtaWindowAck(offer.transfer_id, offer.size),
            "second_accept": OtaAccept(offer.transfer_id, 0),
            "refuse_after_accept": OtaRefuse(offer.transfer_id, OtaRefusal.OTHER),
        }[bad]
        await device.send(message)
        with trio.fail_after(5):
            await device.closed_event.wait()
        assert device.closed is not None and device.closed.reason is reason
        nursery.cancel_scope.cancel()
    # The server goes on serving: another device is updated as usual.
    other = SimDevice(bystander, live.key, DeviceSettings(product_id=P, firmware_version=1), flash=Flash())
    await session(live, other, seconds=10)
    assert [r.status for r in other.ota_results] == [OtaResult.VERIFIED]


@pytest.mark.parametrize("case", ["denied", "limited_mismatch", "limited_preadd_only", "development"])
async def test_devices_without_the_ota_privilege_never_receive_a_byte(live: Live, case: str) -> None:
    """A release is out and a rollout runs; none of this reaches a device whose connection lacks `ota`."""
    ops = Operations(live.server.ctx)
    identity = live.known[0]
    device_id = identity.device_id_hex
    await ops.add_device(ADMIN, P, device_id)
    await ops.rollouts.create(ADMIN, P, RolloutRequest(2, RolloutTarget(product_default=True), RolloutSettings(), ()))
    reported: int | None = P
    expected = Status.LIMITED
    if case == "denied":
        await ops.remove_device(ADMIN, P, device_id, deny=True)
        expected = Status.DENIED
    elif case == "limited_mismatch":
        reported = 9999  # firmware of a product that does not exist; the cloud says P
    elif case == "limited_preadd_only":
        await ops.create_product(ADMIN, "Other", product_id=4302, policy=Policy.PREADD_ONLY)
        reported = 4302
    else:
        reported, expected = None, Status.DEVELOPMENT
    flash = Flash()
    device = SimDevice(identity, live.key, DeviceSettings(product_id=reported, firmware_version=1), flash=flash)
    await session(live, device, seconds=2)  # the rollout ticks several times meanwhile
    assert device.state.status is expected
    assert flash.bytes_written == 0 and device.ota_results == [] and flash.receiver.current_offer is None


@pytest.mark.parametrize("intelligent", [True, False])
async def test_an_intelligent_release_reaches_connected_devices_at_once(live: Live, intelligent: bool) -> None:
    ops = Operations(live.server.ctx)
    identity = live.known[0]
    await ops.add_device(ADMIN, P, identity.device_id_hex)
    await ops.firmware.release(ADMIN, P, 2, product_default=False, groups=[], intelligent=False)  # unreleased
    flash = Flash()
    device = SimDevice(identity, live.key, DeviceSettings(product_id=P, firmware_version=1), flash=flash)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session, live, device, 5.0)
        with trio.fail_after(5):
            while device.state.status is not Status.OK:  # noqa: ASYNC110 (set by the handshake)
                await trio.sleep(0.01)
        await trio.sleep(0.2)
        assert flash.bytes_written == 0  # nothing is released yet
        await ops.firmware.release(ADMIN, P, 2, product_default=True, groups=[], intelligent=intelligent)
        with trio.move_on_after(3):
            await device.closed_event.wait()  # it reboots into the update (intelligent)
        nursery.cancel_scope.cancel()
    if intelligent:
        assert flash.installed_version == 2
    else:  # a standard release waits for the device's next connection
        assert flash.bytes_written == 0
