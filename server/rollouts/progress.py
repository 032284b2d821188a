"""Device reports reach the device's row in its unfinished rollout (inside the writer's transaction)."""

from __future__ import annotations

from ..store.tx import StoreTx
from .planner import Report, on_report


def report_rollout(store: StoreTx, device_id: str, version: int, report: Report, detail: str, at: float) -> bool:
    """Apply one OTA report to the device's active rollout row; True when it changed the row."""
    found = store.active_rollout_row(device_id)
    if found is None:
        return False
    rollout, row = found
    new = on_report(rollout, row, report, version, detail, at)
    if new is None or new == row:
        return False
    store.update_rollout_devices([new])
    if new.state.terminal:
        store.append_audit(
            at, "device", f"rollout_device_{new.state.value}", product_id=rollout.product_id, device_id=device_id,
            reason=new.reason, detail={"rollout": rollout.id, "version": version, "phase": new.phase.value},
        )  # fmt: skip
    return True
