"""The protocol fuzzer's corpus (seeds and every crash it ever found), replayed on each run:
whatever protocol/ raises for these inputs must be its own ProtocolError."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.chaos.fuzz_seeds import seed_inputs
from firmware_sim.chaos.fuzz_targets import TARGETS, one_input

CORPUS = Path(__file__).parent / "fuzz_corpus"
INPUTS = sorted(CORPUS.iterdir())


@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
def test_corpus_input_raises_nothing_but_protocol_errors(path: Path) -> None:
    one_input(path.read_bytes())


def test_the_corpus_holds_the_seeds_and_reaches_every_target() -> None:
    stored = {p.read_bytes() for p in INPUTS}
    assert set(seed_inputs()) <= stored
    assert {data[0] % len(TARGETS) for data in stored if len(data) >= 2} == set(range(len(TARGETS)))
