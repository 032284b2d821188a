"""SimDevice's injected faults against the scripted server peer: a corrupted chunk, a boot that
does not take, and a drop that happens once per image however often the device reconnects."""

from __future__ import annotations

from firmware_sim.flash import Flash
from protocol.codes import OtaResult
from protocol.messages import OtaAccept, OtaComplete
from protocol.noise import KeyPair

from .test_device_ota import IMAGE, new_device, run_pair


async def test_a_corrupted_chunk_fails_verification_once_and_the_retry_succeeds() -> None:
    key, flash = KeyPair.generate(), Flash()
    notes: list[str] = []
    first = new_device(key, flash, rx_max_frame=2048, corrupt_chunk=True)
    first.observer = lambda event, detail: notes.append(event)
    last, _ = await run_pair(first, key, IMAGE, transfer_id=1)
    assert isinstance(last, OtaComplete) and last.status is OtaResult.HASH_MISMATCH
    assert flash.installed_version is None and first.rebooting_into is None
    assert notes[:2] == ["offer", "accept"] and "corrupt" in notes

    # The same flash, the same behaviour: the fault was injected for this image already.
    second = new_device(key, flash, rx_max_frame=2048, corrupt_chunk=True)
    last, server = await run_pair(second, key, IMAGE, transfer_id=2)
    assert isinstance(last, OtaComplete) and last.status is OtaResult.VERIFIED
    accept = next(m for m in server.received if isinstance(m, OtaAccept))
    assert accept.offset == 0  # bad bytes are never resumed
    assert flash.read(0, len(IMAGE)) == IMAGE


async def test_corrupt_always_fails_every_attempt() -> None:
    key, flash = KeyPair.generate(), Flash()
    for transfer_id in (1, 2, 3):
        device = new_device(key, flash, rx_max_frame=2048, corrupt_chunk=True, corrupt_always=True)
        last, _ = await run_pair(device, key, IMAGE, transfer_id=transfer_id)
        assert isinstance(last, OtaComplete) and last.status is OtaResult.HASH_MISMATCH
    assert flash.installed_version is None


async def test_a_boot_that_fails_reboots_but_keeps_the_old_image() -> None:
    key, flash = KeyPair.generate(), Flash()
    device = new_device(key, flash, boot_fails=True)
    last, _ = await run_pair(device, key, IMAGE, transfer_id=1)
    assert isinstance(last, OtaComplete) and last.status is OtaResult.VERIFIED
    assert device.rebooting_into == 7  # it did restart ...
    assert flash.installed_version is None  # ... into what it ran before


async def test_a_drop_happens_once_per_image_and_the_next_link_resumes() -> None:
    key, flash = KeyPair.generate(), Flash()
    first = new_device(key, flash, rx_max_frame=2048, drop_after_bytes=20_000)
    last, _ = await run_pair(first, key, IMAGE, transfer_id=1)
    assert last is None
    stored = flash.receiver.received_until
    assert 20_000 <= stored < len(IMAGE)

    # Reconnecting with the same settings: past the drop point already, and it does not drop again.
    second = new_device(key, flash, rx_max_frame=2048, drop_after_bytes=20_000)
    last, server = await run_pair(second, key, IMAGE, transfer_id=2)
    assert isinstance(last, OtaComplete) and last.status is OtaResult.VERIFIED
    assert next(m for m in server.received if isinstance(m, OtaAccept)).offset == stored
    assert first.bytes_by_version[7] + second.bytes_by_version[7] == len(IMAGE)
