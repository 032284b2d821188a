"""OTA delivery on one connection: which image to offer, one windowed transfer of it, and the
lifecycle of transfers on that connection (`OtaDelivery`).

A transfer runs as a task in the session's nursery. The reader hands it the device's OTA messages
through a bounded channel (`OtaDelivery.answer`); it writes only through the session's queue (one
writer per socket). Losing the OTA privilege cancels it and the device is told OTA_ABORT first.
`OtaDelivery` owns every OTA field of a connection and is given only an `OtaLink`, not the session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import trio

from protocol.codes import CloseReason, OtaAbortReason, OtaResult, Privilege
from protocol.errors import RemoteProtocolError
from protocol.messages import Message, OtaAbort, OtaAccept, OtaComplete, OtaDefer, OtaRefuse, OtaWindowAck
from protocol.ota import ImageSender, build_offer

from ..cluster.bus import ClusterBus
from ..cluster.messages import WakeRollouts
from ..config import ServerConfig
from ..firmware.cache import ImageCache, ImageMismatch
from ..firmware.node_cache import BinaryCache, BinaryMissing
from ..logs import log_event, now
from ..rollouts.planner import Report
from ..rollouts.progress import report_rollout
from ..rules.firmware_target import incompatibility, should_offer
from ..store import AsyncStore, Store, Transaction
from ..store.records import CAME_BACK_ON_OLD, FirmwareRecord, OtaOutcome
from ..store.tx import StoreTx
from .state import LinkFacts


class OtaContext(Protocol):
    @property
    def store(self) -> AsyncStore: ...

    @property
    def config(self) -> ServerConfig: ...

    @property
    def bus(self) -> ClusterBus: ...

    @property
    def binaries(self) -> BinaryCache: ...


class OtaLink(LinkFacts, Protocol):
    """What an OTA delivery uses of its connection (link/session.py's DeviceSession, which imports this module)."""

    @property
    def ctx(self) -> OtaContext: ...

    def enqueue(self, message: Message) -> None: ...

    def request_close(self, reason: CloseReason, detail: str = "") -> None: ...


log = logging.getLogger("fleetgate.ota")

WINDOW = 16  # chunks in flight: with 64 KiB chunks about 1 MiB, within the session's queue
ANSWER_TIMEOUT = 60.0  # seconds a device may take to answer an offer or acknowledge a window

# One per process, shared by every session: entries are keyed by content hash, so servers that
# share a process (tests) can share it too.
IMAGES = ImageCache()


class OtaDelivery:
    """The OTA lifecycle of one connection: at most one transfer task at a time, planned again when
    the target may have changed, cancelled (and the device told) when aborted or revoked.

    Made with the connection's first offer or OTA answer: most connections never have one."""

    __slots__ = ("_complete_queued", "_finished", "_inbox", "_link", "_replan", "_scope", "_transfer_id")

    def __init__(self, link: OtaLink) -> None:
        self._link = link
        self._scope: trio.CancelScope | None = None  # the running transfer, if any
        self._transfer_id = 0
        self._replan = False  # the target may have changed while a transfer was in flight
        self._complete_queued = False  # the device's OTA_COMPLETE waits in the inbox
        self._finished: trio.Event | None = None  # set when the transfer task in flight ends
        # The device's OTA answers, made with the first transfer or answer (a channel pair is ~1 KiB).
        self._inbox: tuple[trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]] | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Offer firmware unless a transfer is running (the caller checked the OTA privilege)."""
        if self._scope is None:
            self._scope = trio.CancelScope()
            self._finished = trio.Event()
            nursery.start_soon(self._run, self._scope, self._finished)

    def plan_again(self) -> None:
        """The target may have changed: a transfer in flight finishes first, then it is planned again."""
        self._replan = True

    def abort(self, reason: OtaAbortReason, detail: str = "") -> None:
        """Stop the transfer in flight, if any, and tell the device why."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None  # a new offer may start at once; the old task is already cancelled
            self._replan = False
            self._link.enqueue(OtaAbort(self._transfer_id, reason, detail))

    def revoke(self) -> None:
        """The OTA privilege is gone: stop sending, and say so (before the STATUS that explains why)."""
        if self._scope is not None:
            self._scope.cancel()
            self._link.enqueue(OtaAbort(self._transfer_id, OtaAbortReason.PRIVILEGE_REVOKED))

    def answer(self, message: Message) -> bool:
        """The reader hands over one of the device's OTA messages; False when more arrived than any
        transfer allows (the caller closes the connection)."""
        if isinstance(message, OtaComplete):
            self._complete_queued = True
        try:
            self._channel()[0].send_nowait(message)
        except trio.WouldBlock:
            return False
        return True

    async def settle(self, grace: float) -> None:
        """Closing: a device verifies, sends OTA_COMPLETE and says goodbye at once (it reboots), so
        the transfer task must record the outcome before the session cancels it."""
        if self._complete_queued and self._scope is not None and self._finished is not None:
            with trio.move_on_after(grace):
                await self._finished.wait()

    def _channel(self) -> tuple[trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]]:
        if self._inbox is None:
            self._inbox = trio.open_memory_channel[Message](2 * WINDOW + 8)
        return self._inbox

    async def _run(self, scope: trio.CancelScope, finished: trio.Event) -> None:
        try:
            with scope:
                self._replan = True
                while self._replan:
                    self._replan = False
                    plan = await plan_offer(self._link)
                    if plan is None:
                        break
                    self._transfer_id += 1
                    inbox = self._channel()[1]
                    if not await transfer(self._link, plan, inbox, self._transfer_id):
                        break  # declined, refused or stalled: not offered again on this connection unasked
        except RemoteProtocolError as exc:
            # The device broke the transfer rules: that ends its connection, and only its connection.
            self._link.request_close(exc.reason, f"OTA: {exc}")
        finally:
            if self._scope is scope:
                self._scope = None
            finished.set()
            if self._finished is finished:
                self._finished = None  # an Event is ~300 bytes, kept by every idle connection that was offered nothing


@dataclass(frozen=True, slots=True)
class Plan:
    firmware: FirmwareRecord
    image: bytes


async def plan_offer(session: OtaLink) -> Plan | None:
    """The image this connection should receive now, if any (never without the OTA privilege)."""
    hello, decision = session.hello, session.decision
    if hello is None or decision is None or decision.product_id is None:
        return None
    if Privilege.OTA not in decision.privileges:
        return None  # nothing to look up: this connection never receives an image
    store, product_id = session.ctx.store, decision.product_id
    # A few primary-key lookups on every connect: on the loop (see AsyncStore.read_now).
    firmware = await store.read_now(
        _offer_target, store.sync, session.device_id, product_id, decision.privileges, hello.firmware_version
    )
    if firmware is None:
        return None
    unfit = incompatibility(firmware.platform_id, firmware.product_id, hello.platform_id, hello.product_id)
    if unfit is not None:
        log_event(
            log, "ota_incompatible", logging.WARNING, device_id=session.device_id, product_id=firmware.product_id,
            version=firmware.version, platform_id=hello.platform_id, image_platform_id=firmware.platform_id,
            detail=unfit,
        )  # fmt: skip
        await _report(session, firmware.version, Report.INCOMPATIBLE, unfit)  # a rollout skips it
        return None
    try:  # in memory, else this node's copy, else fetched from the store (node_cache.py)
        image = await IMAGES.load_from(firmware.sha256, partial(session.ctx.binaries.image, firmware.sha256))
    except (ImageMismatch, BinaryMissing) as exc:  # not the binary uploaded, or none: offer nothing
        event = "ota_image_corrupt" if isinstance(exc, ImageMismatch) else "ota_image_missing"
        log_event(
            log, event, logging.ERROR, device_id=session.device_id, product_id=product_id, version=firmware.version,
            error=str(exc),
        )  # fmt: skip
        return None
    return Plan(firmware, image)


def _offer_target(
    store: Store, device_id: str, product_id: int, privileges: Privilege, running: int
) -> FirmwareRecord | None:
    """In one read on the connect path: the firmware to offer, if any."""
    facts = store.offer_facts(product_id, device_id)  # one statement: it runs for every connection
    target = should_offer(privileges, running, facts.target)
    if target is None:
        return None
    if facts.last_version == target and facts.last_reason.startswith(CAME_BACK_ON_OLD):
        return None  # it did not take last time: an operator decides (new release, lock), not a loop
    return store.get_firmware(product_id, target)


async def transfer(session: OtaLink, plan: Plan, inbox: trio.MemoryReceiveChannel[Message], transfer_id: int) -> bool:
    """Offer the image and send it, window by window, until the device completes, refuses or stalls.
    True when the device completed the transfer (verified or not)."""
    hello = session.hello
    assert hello is not None
    offer = build_offer(
        transfer_id=transfer_id,
        version=plan.firmware.version,
        image=plan.image,
        rx_max_frame=hello.rx_max_frame,
        window=WINDOW,
        signature=plan.firmware.signature,
        sha256=bytes.fromhex(plan.firmware.sha256),  # checked at upload, and by IMAGES when read
        platform_id=plan.firmware.platform_id,  # from the header: the device can refuse up front
        product_id=plan.firmware.product_id,
    )
    version = plan.firmware.version
    fields: dict[str, Any] = {"device_id": session.device_id, "version": version, "transfer_id": transfer_id}
    session.enqueue(offer)
    log_event(log, "ota_offered", size=len(plan.image), **fields)
    sender = ImageSender(offer, plan.image)
    with trio.move_on_after(ANSWER_TIMEOUT) as waited:
        message = await _answer(inbox, transfer_id)
    if waited.cancelled_caught:
        log_event(log, "ota_stalled", logging.WARNING, stage="offer", **fields)
        return False
    if isinstance(message, OtaDefer):
        log_event(log, "ota_declined", answer="OtaDefer", retry_after=message.retry_after, **fields)
        await _report(session, version, Report.DEFERRED, str(message.retry_after))
        return False
    if isinstance(message, OtaRefuse):
        detail = f"{message.reason.name.lower()} {message.detail}".strip()
        log_event(log, "ota_declined", answer="OtaRefuse", detail=detail, **fields)
        await _report(session, version, Report.REFUSED, detail)
        return False
    if not isinstance(message, OtaAccept):
        raise RemoteProtocolError(f"{type(message).__name__} answers an offer", CloseReason.UNEXPECTED_MESSAGE)
    sender.start(message)  # raises RemoteProtocolError for an offset past the end
    log_event(log, "ota_started", offset=message.offset, **fields)
    await _report(session, version, Report.ACCEPTED, f"from offset {message.offset}")
    while True:
        for chunk in sender.chunks_to_send():
            session.enqueue(chunk)
        with trio.move_on_after(ANSWER_TIMEOUT) as stalled:
            message = await _answer(inbox, transfer_id)
        if stalled.cancelled_caught:
            log_event(log, "ota_stalled", logging.WARNING, stage="chunks", received=sender.received_until, **fields)
            return False
        if isinstance(message, OtaWindowAck):
            sender.on_ack(message)  # raises RemoteProtocolError for an ack outside what was sent
        elif isinstance(message, OtaComplete):
            verified = message.status is OtaResult.VERIFIED
            level = logging.INFO if verified else logging.WARNING
            log_event(log, "ota_completed", level, status=message.status.name.lower(), detail=message.detail, **fields)
            state, reason = ("installed", message.detail) if verified else ("failed", message.status.name.lower())
            outcome = OtaOutcome(session.device_id, plan.firmware.product_id, version, state, reason, now())
            report = Report.INSTALLED if verified else Report.INSTALL_FAILED
            detail = message.detail if verified else f"{message.status.name.lower()} {message.detail}".strip()
            await _write_and_wake(
                session, partial(_save_outcome, outcome=outcome, report=report, detail=detail), "ota_outcome"
            )
            return True
        else:
            raise RemoteProtocolError(
                f"{type(message).__name__} during a transfer already accepted", CloseReason.UNEXPECTED_MESSAGE
            )


async def _answer(inbox: trio.MemoryReceiveChannel[Message], transfer_id: int) -> Message:
    """The device's next OTA message about this transfer. Answers to an earlier, aborted transfer
    may still be on their way: they are passed over."""
    while True:
        message = await inbox.receive()
        if getattr(message, "transfer_id", None) == transfer_id:
            return message


async def _report(session: OtaLink, version: int, report: Report, detail: str) -> None:
    at = now()
    await _write_and_wake(session, partial(report_rollout, device_id=session.device_id, version=version, report=report,
                                           detail=detail, at=at), "rollout_report")  # fmt: skip


def _save_outcome(store: StoreTx, outcome: OtaOutcome, report: Report, detail: str) -> None:
    store.set_ota_outcome(outcome)
    report_rollout(store, outcome.device_id, outcome.version, report, detail, outcome.updated_at)


async def _write_and_wake(session: OtaLink, write: Callable[[StoreTx], object], label: str) -> None:
    """Store a device's OTA report; the rollout scheduler (on whichever node leads) looks at once."""
    bus = session.ctx.bus

    def tx(store: StoreTx) -> None:
        write(store)
        bus.notify(store, WakeRollouts())

    await session.ctx.store.write(Transaction(tx, label))
    await bus.caught_up()
