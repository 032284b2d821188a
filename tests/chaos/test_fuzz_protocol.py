"""The protocol fuzzer: a short coverage-guided run in a subprocess (atheris must be installed:
without it this fails, it never skips), and its harness telling bugs from typed errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim.chaos import fuzz_targets
from protocol.errors import RemoteProtocolError

CORPUS = Path(__file__).parent.parent / "protocol" / "fuzz_corpus"


def test_a_short_fuzz_run_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)  # the fuzzer adds inputs to its first corpus directory
    result = subprocess.run(
        [sys.executable, "-m", "firmware_sim.chaos.fuzz_protocol", "-max_total_time=20", "-timeout=10",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not crashes
    assert "Done" in result.stderr and " runs in " in result.stderr


def test_the_harness_lets_typed_errors_pass_and_anything_else_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    def typed(data: bytes, cut: int) -> None:
        raise RemoteProtocolError("bad bytes")

    def bug(data: bytes, cut: int) -> None:
        raise IndexError("a parser bug")

    monkeypatch.setattr(fuzz_targets, "TARGETS", (typed, bug))
    fuzz_targets.one_input(b"\x00\x00abc")
    with pytest.raises(IndexError):
        fuzz_targets.one_input(b"\x01\x00abc")
