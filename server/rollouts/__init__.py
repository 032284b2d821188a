"""Staged firmware rollouts, the mechanism: the plan (planner.py, pure), the model, progress reports and the
scheduler service. The operator actions are in ops/rollouts.py."""
