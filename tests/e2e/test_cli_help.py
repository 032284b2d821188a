"""`--help` of every command and subcommand of `fleetgate` and `fleetsim` prints help and exits 0."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence

import pytest

from firmware_sim import cli as fleetsim
from server import cli as fleetgate

Main = Callable[[Sequence[str] | None], int]


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of a parser tree: (), ("product",), ("product", "create"), ..."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from command_paths(child, (*path, name))


def _cases() -> Iterator[tuple[str, Main, tuple[str, ...]]]:
    for prog, module in (("fleetgate", fleetgate), ("fleetsim", fleetsim)):
        for path in command_paths(module.build_parser()):
            yield prog, module.main, path


CASES = list(_cases())


def test_the_walk_reaches_nested_commands() -> None:
    paths = {(prog, path) for prog, _, path in CASES}
    assert ("fleetgate", ("product", "create")) in paths and ("fleetsim", ("drill",)) in paths
    assert len(paths) > 60


@pytest.mark.parametrize(("prog", "main", "path"), CASES, ids=[" ".join((p, *c)) for p, _, c in CASES])
def test_help(prog: str, main: Main, path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 0, err
    assert out.startswith("usage: ") and " ".join((prog, *path)) in out and err == ""
