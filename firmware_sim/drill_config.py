"""What a drill is asked to do: the behaviour mix, the rollout settings, and the expectations.

Pure: parsing `--mix` and `--stages`, and the seeded assignment of behaviours to devices, so the
same seed always gives the same fleet.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from .drill_device import FAULTS, DrillProfile

MIX_KEYS = (*FAULTS[1:], "late")  # healthy is what is left over
STRATEGIES = ("all", "staged", "exponential")
ERROR_ACTIONS = ("pause", "abort", "rollback")
EXPECTATIONS = ("completed", "rolled_back", "paused", "aborted")
DEFAULT_MIX = "drop=3%,corrupt=1%,refuse=1%,bootfail=1%,late=5%"


class DrillConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class MixPart:
    percent: float | None = None  # "3%"
    count: int | None = None  # "3"

    def of(self, total: int) -> int:
        if self.count is not None:
            return min(total, self.count)
        assert self.percent is not None
        return min(total, round(total * self.percent / 100))


def parse_mix(text: str) -> dict[str, MixPart]:
    """`drop=3%,corrupt=1%,late=2`: each behaviour as a percentage of the fleet or a device count."""
    out: dict[str, MixPart] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in MIX_KEYS:
            names = ", ".join(MIX_KEYS)
            raise DrillConfigError(f"--mix: {item!r} is not NAME=N% or NAME=COUNT with NAME one of {names}")
        if key in out:
            raise DrillConfigError(f"--mix names {key} twice")
        try:
            if value.endswith("%"):
                percent = float(value[:-1])
                if not 0 <= percent <= 100 or math.isnan(percent):
                    raise ValueError
                out[key] = MixPart(percent=percent)
            else:
                count = int(value)
                if count < 0:
                    raise ValueError
                out[key] = MixPart(count=count)
        except ValueError:
            raise DrillConfigError(f"--mix: {key}={value!r} is not a percentage (0-100%) or a count") from None
    return out


def parse_stages(text: str) -> list[str | int]:
    """`5%,25%,100%` or `10,100,1000`, passed to the server as given (it checks them)."""
    stages: list[str | int] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.endswith("%"):
            stages.append(item)
        elif item.isdigit():
            stages.append(int(item))
        else:
            raise DrillConfigError(f"--stages: {item!r} is neither a count nor a percentage")
    if not stages:
        raise DrillConfigError("--stages needs at least one stage")
    return stages


def assign_profiles(
    total: int, mix: dict[str, MixPart], seed: int, image_size: int, late_window: float, reboot_delay: float = 0.0
) -> list[DrillProfile]:
    """One profile per device: the faults on disjoint devices, lateness among the healthy rest.

    The devices to fault are drawn with `seed`; a drop happens 25-75 % into the image, and a late
    device joins 1 s to `late_window` s after the rollout starts.
    """
    rng = random.Random(seed)
    order = list(range(total))
    rng.shuffle(order)
    faults = ["healthy"] * total
    taken = 0
    for fault in FAULTS[1:]:
        n = mix[fault].of(total) if fault in mix else 0
        if taken + n > total:
            raise DrillConfigError(f"--mix asks for more faulty devices than the {total} in the fleet")
        for index in order[taken : taken + n]:
            faults[index] = fault
        taken += n
    healthy = [i for i in order[taken:]]
    late_n = mix["late"].of(total) if "late" in mix else 0
    if late_n > len(healthy):
        raise DrillConfigError(f"--mix: late={late_n} but only {len(healthy)} devices have no fault")
    late = set(healthy[:late_n])
    profiles = []
    for index in range(total):
        late_by = round(rng.uniform(1.0, max(1.0, late_window)), 3) if index in late else None
        drop = int(image_size * rng.uniform(0.25, 0.75)) if faults[index] == "drop" else None
        drop_after = max(1, drop) if drop else None
        profiles.append(DrillProfile(faults[index], late_by, drop_after, reboot_delay))
    return profiles


@dataclass(frozen=True, slots=True)
class DrillConfig:
    devices: int = 200
    mix: str = DEFAULT_MIX
    size: int = 262_144
    strategy: str = "all"
    stages: str = "5%,25%,100%"
    max_concurrent: int = 50
    retries: int = 2
    device_timeout: float = 120.0
    success_threshold: float = 0.9
    error_threshold: float = 0.1
    on_error: str = "pause"
    restart_at: float | None = None
    kill_at: tuple[float, ...] = ()  # fractions of the fleet confirmed at which to kill -9 and restart the server
    expect: str = "completed"
    json_out: Path | None = None
    plot_out: Path | None = None
    timeout: float = 600.0
    server_data: Path | None = None
    seed: int = 0
    late_window: float = 5.0
    product_id: int = 7001
    progress: bool = False
    server_log_level: str = "warning"
    reboot_delay: float = 0.0
    retry_delay: float | None = None  # None: the server's default
    rate_start: float | None = None  # exponential only; None: the server's default
    rate_factor: float | None = None
    rate_increase_every: int | None = None

    def validate(self) -> None:
        if self.devices < 1:
            raise DrillConfigError("--devices must be at least 1")
        if not 64 <= self.size <= 16 * 1024 * 1024:
            raise DrillConfigError("--size must be 64 bytes .. 16 MiB (the server's limit)")
        if self.strategy not in STRATEGIES:
            raise DrillConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}")
        if self.on_error not in ERROR_ACTIONS:
            raise DrillConfigError(f"--on-error must be one of {', '.join(ERROR_ACTIONS)}")
        if self.expect not in EXPECTATIONS:
            raise DrillConfigError(f"--expect must be one of {', '.join(EXPECTATIONS)}")
        if any(not 0 < f <= 1 for f in self.kill_at) or list(self.kill_at) != sorted(self.kill_at):
            raise DrillConfigError("kill points are increasing fractions of the fleet confirmed: above 0, at most 1")
        if self.restart_at is not None and not 0 < self.restart_at <= 1:
            raise DrillConfigError("--restart-at is a fraction of the fleet confirmed: above 0, at most 1")
        thresholds = (("--success-threshold", self.success_threshold), ("--error-threshold", self.error_threshold))
        for name, value in thresholds:
            if not 0 <= value <= 1:
                raise DrillConfigError(f"{name} must be within 0..1")
        if self.timeout <= 0:
            raise DrillConfigError("--timeout must be positive")
        parse_mix(self.mix)
        if self.strategy == "staged":
            parse_stages(self.stages)

    def rollout_body(self, version: int) -> dict[str, object]:
        """The POST .../rollouts body for this drill."""
        body: dict[str, object] = {
            "version": version,
            "product_default": True,
            "strategy": self.strategy,
            "max_concurrent": self.max_concurrent,
            "retries": self.retries,
            "device_timeout": self.device_timeout,
            "success_threshold": self.success_threshold,
            "error_threshold": self.error_threshold,
            "error_action": self.on_error,
        }
        if self.retry_delay is not None:
            body["retry_delay"] = self.retry_delay
        if self.strategy == "staged":
            body["stages"] = parse_stages(self.stages)
        if self.strategy == "exponential":
            rates = {"rate_start": self.rate_start, "rate_factor": self.rate_factor}
            rates["rate_increase_every"] = self.rate_increase_every
            body.update({k: v for k, v in rates.items() if v is not None})
        return body
