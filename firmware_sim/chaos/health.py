"""Is the server still well: a real device connects and publishes, the API answers, its log holds
no traceback or 5xx, and how much memory it holds."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from protocol.codes import AckResult
from protocol.errors import RemoteProtocolError

from ..device import DeviceClosed, DeviceRefused, connect_device
from ..drill_api import ApiError, DrillApi
from ..identity import DeviceIdentity
from .report import Check
from .target import Target

HEALTH_LIMIT = 20.0  # seconds a health probe may take before the server counts as not serving


async def api_answers(target: Target) -> bool:
    """GET /v1/user as the admin: 200 within the limit."""
    try:
        async with httpx.AsyncClient(timeout=HEALTH_LIMIT) as client:
            response = await client.get(
                f"{target.api}/v1/user", headers={"Authorization": f"Bearer {target.admin_token}"}
            )
        return response.status_code == 200
    except httpx.HTTPError:
        return False


async def register(target: Target, identities: list[DeviceIdentity]) -> None:
    api = DrillApi(target.api, target.admin_token)
    try:
        await api.register_keys(identities)
    finally:
        await api.aclose()


async def device_serves(target: Target) -> str | None:
    """A fresh, registered device connects, publishes and gets its ack: None, or what went wrong."""
    identity = DeviceIdentity.generate()
    try:
        with trio.fail_after(HEALTH_LIMIT):
            await register(target, [identity])
            stream = await trio.open_tcp_stream(target.host, target.port)
            async with connect_device(stream, identity, target.server_key) as device:
                result = await device.publish("chaos/health", b"ok")
        return None if result is AckResult.ACCEPTED else f"publish answered {result.name.lower()}"
    except trio.TooSlowError:
        return f"no connect and ack within {HEALTH_LIMIT:g} s"
    except (OSError, ApiError, httpx.HTTPError, DeviceRefused, DeviceClosed, RemoteProtocolError) as exc:
        return f"{type(exc).__name__}: {exc}"[:200]


def rss_kib(pid: int | None) -> int | None:
    """Resident memory of a process in KiB (Linux /proc), None when unknown."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(slots=True)
class LogFindings:
    lines: int = 0
    tracebacks: int = 0  # "Traceback" text, or a JSON line carrying an exception
    errors: int = 0  # level error or critical
    http_5xx: int = 0
    close_reasons: Counter[str] = field(default_factory=Counter)  # device_closed / device_refused reasons
    samples: list[str] = field(default_factory=list)  # the first few bad lines, shortened

    def as_json(self) -> dict[str, object]:
        return {
            "lines": self.lines, "tracebacks": self.tracebacks, "errors": self.errors, "http_5xx": self.http_5xx,
            "close_reasons": dict(self.close_reasons), "samples": self.samples,
        }  # fmt: skip


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def scan_log(path: Path, start: int = 0) -> LogFindings:
    """What the server's JSON log says from byte `start` on."""
    found = LogFindings()
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return found
    for line in text.splitlines():
        found.lines += 1
        bad = False
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if "Traceback" in line:
                found.tracebacks += 1
                bad = True
        else:
            if "exc" in record or "Traceback" in str(record.get("event", "")):
                found.tracebacks += 1
                bad = True
            if record.get("level") in ("error", "critical"):
                found.errors += 1
                bad = True
            status = record.get("status")
            if record.get("event") == "http_request" and isinstance(status, int) and status >= 500:
                found.http_5xx += 1
                bad = True
            if record.get("event") in ("device_closed", "device_refused") and record.get("reason"):
                found.close_reasons[str(record["reason"])] += 1
        if bad and len(found.samples) < 5:
            found.samples.append(line[:300])
    return found


def log_check(log: LogFindings) -> Check:
    clean = not (log.tracebacks or log.errors or log.http_5xx)
    detail = f"{log.tracebacks} tracebacks, {log.errors} errors, {log.http_5xx} HTTP 5xx"
    return Check("no traceback, error or 5xx in the server log", clean, "; ".join([detail, *log.samples]))


def report_log(log: LogFindings | None, figures: dict[str, object], checks: list[Check], lines: list[str]) -> None:
    """Add what the server's log showed to a drill's figures, checks and printed lines (nothing when
    the drill ran against a server whose log it does not have)."""
    if log is None:
        return
    figures["server_log"] = log.as_json()
    lines.append(
        f"server log: {log.tracebacks} tracebacks, {log.errors} errors, {log.http_5xx} HTTP 5xx; "
        f"close reasons {dict(log.close_reasons.most_common())}"
    )
    checks.append(log_check(log))
