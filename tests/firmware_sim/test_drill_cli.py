"""`fleetsim drill` arguments, and the mistakes it refuses before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.cli import build_parser, main
from firmware_sim.drill_cli import config_from_args
from firmware_sim.drill_server import free_ports


def test_arguments_become_the_drill_config(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "drill", "--devices", "30", "--mix", "refuse=20%", "--strategy", "staged", "--stages", "10%,100%",
            "--max-concurrent", "5", "--retries", "1", "--retry-delay", "0.5", "--device-timeout", "30",
            "--success-threshold", "0.8", "--error-threshold", "0.2", "--on-error", "rollback",
            "--restart-at", "0.5", "--expect", "rolled_back", "--json", str(tmp_path / "r.json"),
            "--plot", str(tmp_path / "r.png"), "--timeout", "60", "--seed", "3",
        ]
    )  # fmt: skip
    config = config_from_args(args)
    config.validate()
    assert (config.devices, config.mix, config.strategy, config.stages) == (30, "refuse=20%", "staged", "10%,100%")
    assert (config.max_concurrent, config.retries, config.retry_delay, config.device_timeout) == (5, 1, 0.5, 30.0)
    assert (config.success_threshold, config.error_threshold, config.on_error) == (0.8, 0.2, "rollback")
    assert (config.restart_at, config.expect, config.timeout, config.seed) == (0.5, "rolled_back", 60.0, 3)
    assert config.json_out == tmp_path / "r.json" and config.plot_out == tmp_path / "r.png"
    assert config.progress is False  # stderr is not a terminal under pytest


def test_defaults_and_a_clean_mix() -> None:
    config = config_from_args(build_parser().parse_args(["drill", "--mix", "none"]))
    assert config.mix == "" and config.devices == 200 and config.expect == "completed"
    assert config.rollout_body(2)["error_action"] == "pause"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mix", "drop=lots"], "--mix"),
        (["--devices", "0"], "--devices"),
        (["--restart-at", "2"], "--restart-at"),
    ],
)
def test_bad_options_exit_2_before_anything_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_data_directory_in_use_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fleetgate.db").write_text("")
    assert main(["drill", "--server-data", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_free_ports_are_distinct() -> None:
    ports = free_ports(2)
    assert len(set(ports)) == 2 and all(1024 <= p < 65536 for p in ports)
