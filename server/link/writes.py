"""The device link's writes: a session confirmed at READY (its admission applied, its OTA outcome
confirmed, a claim code spent) and a session ended. Operator re-evaluations (link/control.py) reuse
`decide_now` and `apply_decision`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from ..cluster.bus import ClusterBus
from ..cluster.messages import SessionReplaced
from ..rollouts.planner import Report
from ..rollouts.progress import report_rollout
from ..rules.admission import Decision, Effect, decide
from ..rules.claims import claim_refusal, code_hash
from ..rules.model import ListState, Owner
from ..store.records import CAME_BACK_ON_OLD, OtaOutcome
from ..store.tx import StoreTx
from ..store.writeop import WriteOp


def apply_decision(store: StoreTx, device_id: str, decision: Decision, at: float, actor: str) -> None:
    """Carry out a decision's effects and write it to the audit trail (inside a write batch)."""
    fw = decision.product_id
    for effect in sorted(decision.effects, key=lambda e: e.value):
        if effect is Effect.JOIN:
            assert fw is not None
            store.set_membership(device_id, fw)
            store.set_list_state(fw, device_id, None, at)
        elif effect is Effect.QUARANTINE:
            assert fw is not None
            store.set_list_state(fw, device_id, ListState.QUARANTINED, at)
        elif effect is Effect.REMOVED_TO_DENIED:
            assert fw is not None
            store.set_list_state(fw, device_id, ListState.DENIED, at)
        elif effect is Effect.LEAVE_DENIED_LISTS:
            store.leave_denied_lists(device_id)
        # RECORD_PREADD_ATTEMPT: the audit entry below is the record.
    store.append_audit(
        at,
        actor,
        "admission",
        product_id=fw,
        device_id=device_id,
        reason=decision.reason,
        detail={
            "status": decision.status.name.lower(),
            "privileges": int(decision.privileges),
            "effects": sorted(e.value for e in decision.effects),
            "mismatch": decision.mismatch,
        },
    )


def decide_now(store: StoreTx, device_id: str, fw_product_id: int | None) -> tuple[Decision, int | None]:
    """Decide from the store as this transaction sees it: (decision, the device's product)."""
    _, facts, product = store.admission_facts(device_id, fw_product_id)
    return decide(facts, fw_product_id, product), facts.cloud_product_id


@dataclass(frozen=True, slots=True)
class EarlierDecision:
    """The HELLO's decision and the admission epoch its facts were read at (one snapshot)."""

    epoch: int
    decision: Decision
    cloud_product_id: int | None


def decide_again(
    store: StoreTx, device_id: str, fw_product_id: int | None, earlier: EarlierDecision | None
) -> tuple[Decision, int | None]:
    """`decide_now`, or the earlier decision when no admission fact has changed since it was read:
    the epoch moves with every such change in the changing transaction (triggers, migration 16),
    so an unchanged epoch means the same facts, and `decide` is pure. Anything else reads again."""
    if earlier is not None and store.admission_epoch() == earlier.epoch:
        return earlier.decision, earlier.cloud_product_id
    return decide_now(store, device_id, fw_product_id)


def confirm_update(store: StoreTx, device_id: str, running: int, at: float) -> None:
    """An installed image is confirmed by the device coming back running it; coming back on
    another version means the update did not take: counted failed, and not offered again."""
    # The version a device reports confirms a rollout's offer in every case, even when the
    # "installed" report was lost (a restart, a link that dropped just after verifying).
    report_rollout(store, device_id, running, Report.CONFIRMED, f"running version {running}", at)
    last = store.ota_outcome(device_id)
    if last is None or last.state != "installed":
        return
    if running == last.version:
        state, reason = "confirmed", f"running version {running}"
    else:
        state, reason = "failed", f"{CAME_BACK_ON_OLD} version {running}, not {last.version}: the update did not take"
    store.set_ota_outcome(OtaOutcome(device_id, last.product_id, last.version, state, reason, at))
    store.append_audit(at, "device", f"ota_{state}", product_id=last.product_id, device_id=device_id, reason=reason)
    report = Report.CONFIRMED if state == "confirmed" else Report.CAME_BACK_OLD
    report_rollout(store, device_id, last.version, report, reason, at)


@dataclass(frozen=True, slots=True)
class ConfirmSession(WriteOp[tuple[Decision, int | None] | None]):
    """READY arrived: the device is online, its counter is spent, and its admission takes effect.

    The decision is taken again here, inside the transaction: an operator may have acted between
    HELLO and READY, and the WELCOME's decision must not overwrite that (unless the admission epoch
    shows that nothing it depends on changed: then it is the same decision, see decide_again). Returns
    (decision, cloud product) so the session can correct what it told the device; in cluster
    mode None, with nothing written, when another connection confirmed this hello's counter first.
    """

    device_id: str
    counter: int
    firmware_version: int
    platform_id: int
    firmware_product_id: int | None
    at: float
    claim_code: str | None = None
    # Cluster mode: this node's id, and the bus that tells the node holding an older session.
    node_id: str | None = None
    bus: ClusterBus | None = None
    # Cluster mode: called after commit with the publish bucket the device left elsewhere (tokens, at).
    handed_bucket: Callable[[tuple[float, float]], None] | None = None
    # The HELLO's decision, reused while the admission epoch has not moved (decide_again).
    earlier: EarlierDecision | None = None

    def apply(self, store: StoreTx) -> tuple[Decision, int | None] | None:
        if self.node_id is not None and not self._claim(store, self.node_id):
            return None
        store.mark_connected(
            self.device_id,
            counter=self.counter,
            firmware_version=self.firmware_version,
            platform_id=self.platform_id,
            firmware_product_id=self.firmware_product_id,
            at=self.at,
        )
        confirm_update(store, self.device_id, self.firmware_version, self.at)
        decision, cloud = decide_again(store, self.device_id, self.firmware_product_id, self.earlier)
        apply_decision(store, self.device_id, decision, self.at, "device")
        if self.claim_code is not None:
            try_claim(store, self.device_id, self.claim_code, decision, self.at)
        if self.node_id is not None:
            store.set_live_privileges(self.device_id, self.node_id, int(decision.privileges), decision.product_id)
        return decision, cloud

    def _claim(self, store: StoreTx, node_id: str) -> bool:
        """The counter is spent here, under the store's write lock: of two nodes confirming the
        same hello (a replay raced to both), the second finds it spent and confirms nothing (False)."""
        device = store.get_device(self.device_id)
        if device is not None and device.last_counter >= self.counter:
            return False
        previous = store.claim_live_session(self.device_id, node_id, self.counter, self.at)
        if previous is not None and self.bus is not None:
            self.bus.notify(store, SessionReplaced(self.device_id, self.counter))
        # Taken over from a live session: it has not handed its bucket over yet, so start empty.
        handed = (0.0, self.at) if previous is not None else store.publish_bucket_of(self.device_id)
        if handed is not None and self.handed_bucket is not None:
            store.after_commit(partial(self.handed_bucket, handed))
        return True


@dataclass(frozen=True, slots=True)
class MarkDisconnected(WriteOp[None]):
    device_id: str
    at: float
    node_id: str | None = None  # cluster mode: offline only if this node still holds the device
    bucket: tuple[float, float] | None = None  # cluster mode: its publish bucket (tokens, at), handed over
    small: ClassVar[bool] = True

    def apply(self, store: StoreTx) -> None:
        if self.node_id is not None and not store.release_live_session(self.device_id, self.node_id):
            return  # the device reconnected to another node, which holds it now
        if self.bucket is not None:
            store.save_publish_bucket(self.device_id, *self.bucket)
        store.mark_disconnected(self.device_id, self.at)


def try_claim(store: StoreTx, device_id: str, code: str, decision: Decision, at: float) -> str | None:
    """Apply a presented claim code (inside the confirming transaction). Returns the refusal's
    reason, or None when the device was claimed. Every outcome goes to the audit trail."""
    found = store.claim_code(code_hash(code))
    product_id = found[0] if found is not None else decision.product_id

    def device_owned() -> bool:
        device = store.get_device(device_id)
        return device is not None and device.owner is not None

    reason = claim_refusal(found, decision, at, device_owned)
    if reason is None:
        assert found is not None
        _, customer_id, _, _ = found
        store.set_owner(device_id, Owner("customer", customer_id))
        store.spend_claim_code(code_hash(code), device_id, at)
        store.append_audit(at, "device", "device_claimed", product_id=product_id, device_id=device_id,
                            detail={"customer_id": customer_id})  # fmt: skip
        return None
    store.append_audit(at, "device", "claim_refused", product_id=product_id, device_id=device_id, reason=reason)
    return reason
