"""OTA delivery on one session: which image to offer, and one windowed transfer of it.

Runs as a task in the session's nursery. The reader hands it the device's OTA messages
through a bounded channel; it writes only through the session's queue (one writer per
socket). Losing the OTA privilege cancels it and the device is told OTA_ABORT first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from protocol.codes import OtaResult, Privilege
from protocol.messages import Message, OtaAccept, OtaComplete, OtaDefer, OtaRefuse, OtaWindowAck
from protocol.ota import ImageSender, build_offer

from .firmware.files import binary_path
from .firmware_target import TargetFacts, should_offer
from .logs import log_event, now
from .store.base import FirmwareRecord, OtaOutcome, Store
from .store.ops import CAME_BACK_ON_OLD, Transaction

if TYPE_CHECKING:
    from .session import DeviceSession

log = logging.getLogger("fleetgate.ota")

WINDOW = 16  # chunks in flight: with 64 KiB chunks about 1 MiB, within the session's queue
ANSWER_TIMEOUT = 60.0  # seconds a device may take to answer an offer or acknowledge a window


@dataclass(frozen=True, slots=True)
class Plan:
    firmware: FirmwareRecord
    image: bytes


async def plan_offer(session: DeviceSession) -> Plan | None:
    """The image this connection should receive now, if any (never without the OTA privilege)."""
    hello, decision = session.hello, session.decision
    if hello is None or decision is None or decision.product_id is None:
        return None
    store, product_id = session.ctx.store, decision.product_id
    firmware = await store.read(
        _offer_target, store.sync, session.device_id, product_id, decision.privileges, hello.firmware_version
    )
    if firmware is None:
        return None
    path = binary_path(session.ctx.config.data_dir, product_id, firmware.version, firmware.sha256)
    image = await trio.to_thread.run_sync(path.read_bytes)
    return Plan(firmware, image)


def _offer_target(
    store: Store, device_id: str, product_id: int, privileges: Privilege, running: int
) -> FirmwareRecord | None:
    """In one read (one worker-thread hop on the connect path): the firmware to offer, if any."""
    device = store.get_device(device_id)
    facts = store.firmware_target_facts(product_id, device_id)
    target = should_offer(
        privileges,
        running,
        TargetFacts(
            development=device is not None and device.development,
            locked_version=facts.locked_version,
            group_versions=frozenset(r.version for r in facts.group_releases),
            product_default=facts.product_default.version if facts.product_default else None,
        ),
    )
    if target is None:
        return None
    last = store.ota_outcome(device_id)
    if last is not None and last.version == target and last.reason.startswith(CAME_BACK_ON_OLD):
        return None  # it did not take last time: an operator decides (new release, lock), not a loop
    return store.get_firmware(product_id, target)


async def transfer(
    session: DeviceSession, plan: Plan, inbox: trio.MemoryReceiveChannel[Message], transfer_id: int
) -> None:
    """Offer the image and send it, window by window, until the device completes, refuses or stalls."""
    hello = session.hello
    assert hello is not None
    offer = build_offer(
        transfer_id=transfer_id,
        version=plan.firmware.version,
        image=plan.image,
        rx_max_frame=hello.rx_max_frame,
        window=WINDOW,
        signature=plan.firmware.signature,
    )
    fields: dict[str, Any] = {
        "device_id": session.device_id,
        "version": plan.firmware.version,
        "transfer_id": transfer_id,
    }
    session.enqueue(offer)
    log_event(log, "ota_offered", size=len(plan.image), **fields)
    sender = ImageSender(offer, plan.image)
    with trio.move_on_after(ANSWER_TIMEOUT) as waited:
        message = await inbox.receive()
    if waited.cancelled_caught:
        log_event(log, "ota_stalled", logging.WARNING, stage="offer", **fields)
        return
    if isinstance(message, OtaDefer | OtaRefuse):
        log_event(log, "ota_declined", answer=type(message).__name__, **fields)
        return
    if not isinstance(message, OtaAccept) or not sender.start(message):
        return
    log_event(log, "ota_started", offset=message.offset, **fields)
    while True:
        for chunk in sender.chunks_to_send():
            session.enqueue(chunk)
        with trio.move_on_after(ANSWER_TIMEOUT) as stalled:
            message = await inbox.receive()
        if stalled.cancelled_caught:
            log_event(log, "ota_stalled", logging.WARNING, stage="chunks", received=sender.received_until, **fields)
            return
        if isinstance(message, OtaWindowAck):
            sender.on_ack(message)
        elif isinstance(message, OtaComplete):
            verified = message.status is OtaResult.VERIFIED
            level = logging.INFO if verified else logging.WARNING
            log_event(log, "ota_completed", level, status=message.status.name.lower(), detail=message.detail, **fields)
            state, reason = ("installed", message.detail) if verified else ("failed", message.status.name.lower())
            outcome = OtaOutcome(
                session.device_id, plan.firmware.product_id, plan.firmware.version, state, reason, now()
            )
            await session.ctx.store.write(Transaction(partial(_save_outcome, outcome=outcome), "ota_outcome"))
            return


def _save_outcome(store: Store, outcome: OtaOutcome) -> None:
    store._set_ota_outcome(outcome)
