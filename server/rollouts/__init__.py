"""Staged firmware rollouts: the plan (pure), the store rows, the scheduler service, operator actions."""
