"""The `fleetgate` command: an HTTP client of the operator API, plus the commands that run the server.

Nothing here imports the server runtime (checked by lint-imports); `serve`, `admin-token` and `demo` live in
server/commands.py and reach the parser through server/cli/__main__.py. This file stays light: `python -m
server.cli` imports it before __main__.py's Ctrl-C guard, so the parser and httpx load inside these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nothing loads here at run time: a Ctrl-C during this file's import would print a traceback
    import argparse
    from collections.abc import Mapping, Sequence

    from .command import LocalCommand


def main(argv: Sequence[str] | None = None, local: Mapping[str, LocalCommand] | None = None) -> int:
    from .command import main as run

    return run(argv, local)


def build_parser() -> argparse.ArgumentParser:
    from .command import build_parser as build

    return build()
