"""A scenario's figures: named checks that must hold, printed as text or as one JSON object."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


def emit(scenario: str, figures: dict[str, object], checks: list[Check], lines: list[str], as_json: bool) -> int:
    """Print the figures; exit status 0 when every check held, 1 otherwise."""
    passed = all(c.ok for c in checks)
    if as_json:
        body = {"scenario": scenario, "passed": passed, **figures}
        body["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        print(json.dumps(body))
    else:
        print(f"chaos {scenario}:")
        for line in lines:
            print(f"  {line}")
        for c in checks:
            print(f"  [{'ok' if c.ok else 'FAILED'}] {c.name}{': ' + c.detail if c.detail else ''}")
        print(f"chaos {scenario} {'passed' if passed else 'FAILED'}")
    return 0 if passed else 1
