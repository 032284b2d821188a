"""The rollout scheduler: a background service that moves every unfinished rollout along.

Each tick (and whenever something rings `ctx.rollout_wakeup`) it reads a rollout's rows, asks the
planner what to do, and writes that in one transaction, which tells the sessions it admitted or
stopped through the cluster bus (delivered once it commits, on whichever node holds them). Its
writes check that nothing else changed the rows it read (a device report, an operator's pause):
a row someone else changed meanwhile is left as they wrote it and looked at again next tick.
Rollout state lives in the store only, so a restarted server carries on where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import trio

from protocol.codes import OtaAbortReason, Privilege

from ..cluster import AbortFirmware, ClusterBus, OfferFirmware
from ..logs import log_event, now
from ..rules.admission import Decision
from ..rules.rollout_model import Rollout, RolloutDevice, RolloutDeviceFacts
from ..store import AsyncStore, Store, Transaction
from ..store.tx import StoreTx
from .planner import DeviceView, Step, plan
from .wakeup import Wakeup

log = logging.getLogger("fleetgate.rollouts")

TICK = 0.5  # seconds between looks when nothing rings: retries, timeouts and rates need the clock
COALESCE = 0.05  # after a ring, wait this long so a burst of device reports costs one tick


@dataclass(slots=True)
class Applied:
    offer: list[str] = field(default_factory=list)
    abort: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)


def apply_step(store: StoreTx, before: Rollout, rows: dict[str, RolloutDevice], step: Step, at: float) -> Applied:
    """Write a step unless the rollout changed since it was planned; rows changed meanwhile are skipped."""
    current = store.get_rollout(before.product_id, before.id)
    if current is None or current != before:
        return Applied()
    if step.rollout != before:
        store.update_rollout(step.rollout)
    fresh = store.rollout_rows(before.id, list(step.changed))  # only what the step would overwrite
    changed = [new for device_id, new in step.changed.items() if fresh.get(device_id) == rows[device_id]]
    if len(changed) < len(step.changed) and step.rollout.state is not before.state:
        # A state change (abort, rollback, completion) must see every row as it is: plan again next tick.
        return Applied()
    store.update_rollout_devices(changed)
    done = {r.device_id for r in changed}
    r = step.rollout
    for note in step.notes:
        store.append_audit(
            at, f"rollout:{r.id}", "rollout_progress", product_id=r.product_id, reason=note,
            detail={"rollout": r.id, "version": r.version, "state": r.state.value},
        )  # fmt: skip
    if step.release:
        _release(store, r, at)
    if r.state.finished:
        # Older finished rollouts' targets for these devices give way (newest wins only while it holds one).
        store.clear_rollout_assignments(r.product_id, keep=None if step.clear_assignments else r.id)
    return Applied(
        [d for d in step.offer if d in done],
        [d for d in step.abort if d in done],
        [d for d in step.timed_out if d in done],
    )


def _release(store: StoreTx, rollout: Rollout, at: float) -> None:
    """A completed rollout leaves its version released to its targets, on top of where it was already."""
    firmware = store.get_firmware(rollout.product_id, rollout.version)
    if firmware is None:
        return
    known = {g.name for g in store.list_groups(rollout.product_id)}
    groups = sorted((set(firmware.groups) | set(rollout.target.groups)) & known)
    store.release_firmware(
        rollout.product_id, rollout.version, product_default=firmware.product_default or rollout.target.product_default,
        groups=groups, intelligent=firmware.intelligent, at=at, actor=f"rollout:{rollout.id}",
    )  # fmt: skip
    store.append_audit(
        at, f"rollout:{rollout.id}", "firmware_released", product_id=rollout.product_id,
        detail={"version": rollout.version, "product_default": rollout.target.product_default, "groups": groups},
    )  # fmt: skip


def _blocked(facts: RolloutDeviceFacts, version: int, image_platform: int | None) -> str | None:
    """Why the session would never send this device the offer, if it would not."""
    if image_platform is not None and facts.platform_id is not None and facts.platform_id != image_platform:
        # Same words as the session's check (firmware_target.incompatibility), which it backs up.
        return f"not offered: version built for platform {image_platform}; the device is platform {facts.platform_id}"
    if facts.development:
        return "marked as a development device (never updated automatically)"
    if facts.locked_version is not None and facts.locked_version != version:
        return f"locked to version {facts.locked_version}"
    if facts.came_back_old_on == version:
        return f"came back running its old version after installing {version} before: an operator decides"
    return None


def _restart_clocks(store: StoreTx, at: float) -> None:
    store.restart_rollout_clocks(at)


def _read(
    store: Store, rollout_id: int, product_id: int
) -> tuple[Rollout | None, list[RolloutDevice], dict[str, RolloutDeviceFacts], int | None]:
    """The rollout, its rows, what is known of its open devices, and its image's platform."""
    rollout = store.get_rollout(product_id, rollout_id)
    rows = store.rollout_devices(rollout_id)
    open_ids = [r.device_id for r in rows if not r.state.terminal]
    firmware = store.get_firmware(product_id, rollout.version) if rollout is not None else None
    platform = firmware.platform_id if firmware is not None else None
    return rollout, rows, store.rollout_device_facts(product_id, open_ids), platform


class RolloutSession(Protocol):
    """What the scheduler uses of a live session (link/registry.py's LiveSession has it)."""

    @property
    def decision(self) -> Decision | None: ...

    @property
    def confirmed_in_store(self) -> bool: ...


class Sessions(Protocol):
    def get(self, device_id: str) -> RolloutSession | None: ...


class RolloutContext(Protocol):
    """The parts of the server the scheduler uses (ServerContext has them): it imports no device-link code."""

    @property
    def store(self) -> AsyncStore: ...

    @property
    def registry(self) -> Sessions: ...

    @property
    def rollout_wakeup(self) -> Wakeup: ...

    @property
    def bus(self) -> ClusterBus: ...

    @property
    def node_id(self) -> str | None: ...  # cluster mode: devices live on every node


class RolloutService:
    def __init__(self, ctx: RolloutContext, tick: float = TICK) -> None:
        self.ctx = ctx
        self.tick = tick

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        store = self.ctx.store
        # Time the server was down is not the devices' fault: in-flight timeouts start again now.
        await store.write(Transaction(partial(_restart_clocks, at=now()), "rollout_restart"))
        task_status.started()
        while True:
            await self.advance_all()
            await self.ctx.rollout_wakeup.wait(self.tick)
            await trio.sleep(COALESCE)

    async def advance_all(self) -> None:
        store = self.ctx.store
        for rollout in await store.read(store.sync.active_rollouts):
            try:
                await self.advance(rollout.id, rollout.product_id)
            except Exception:  # a bug in one rollout must not stop the others; the next tick tries again
                log.exception("rollout %d: tick failed", rollout.id)

    def _session(self, device_id: str) -> RolloutSession | None:
        return self.ctx.registry.get(device_id)

    def _online(self, device_id: str, product_id: int, cluster: dict[str, int] | None) -> bool:
        if cluster is not None:  # the sessions of every node, as their confirming writes stored them
            return device_id in cluster and bool(cluster[device_id] & Privilege.OTA)
        session = self._session(device_id)
        if session is None or session.decision is None or not session.confirmed_in_store:
            return False  # until READY's write commits, the version it runs is not known yet
        decision = session.decision
        return Privilege.OTA in decision.privileges and decision.product_id == product_id

    async def advance(self, rollout_id: int, product_id: int) -> None:
        store = self.ctx.store
        rollout, rows, facts, image_platform = await store.read(_read, store.sync, rollout_id, product_id)
        if rollout is None or rollout.state.finished:
            return
        cluster = None if self.ctx.node_id is None else await store.read(store.sync.live_sessions_in, product_id)
        views = {
            device_id: DeviceView(
                online=self._online(device_id, product_id, cluster),
                member=f.member,
                running=f.firmware_version,
                blocked=_blocked(f, rollout.version, image_platform),
            )
            for device_id, f in facts.items()
        }
        at = now()
        step = plan(rollout, rows, views, at)
        if not step.changed and step.rollout == rollout:
            return
        by_id = {r.device_id: r for r in rows}
        bus = self.ctx.bus

        def step_tx(s: StoreTx) -> Applied:
            bus.fence(s)  # a node that lost the lead since this tick began writes nothing
            applied = apply_step(s, rollout, by_id, step, at)
            announce(bus, s, applied)
            return applied

        await store.write(Transaction(step_tx, "rollout_step"))
        for note in step.notes:
            log_event(log, "rollout_progress", rollout=rollout.id, product_id=product_id, note=note)
        await bus.caught_up()


def announce(bus: ClusterBus, tx: StoreTx, applied: Applied) -> None:
    """Inside the transaction that wrote a step: tell the live sessions (on every node) what it means for them."""
    for device_ids, reason, detail in (
        (applied.abort, OtaAbortReason.ROLLOUT_ABORTED, "the rollout no longer offers this image"),
        (applied.timed_out, OtaAbortReason.TIMEOUT, "not installed within the rollout's device timeout"),
    ):
        if device_ids:
            bus.notify(tx, AbortFirmware(tuple(device_ids), reason, detail))
    if applied.offer:
        bus.notify(tx, OfferFirmware(tuple(applied.offer)))
