"""Ending `fleetsim` as command-line tools end: Ctrl-C and a closed pipe (`| head`) without a traceback.

Inside trio.run both arrive wrapped in exception groups whenever a nursery is open, so they are
looked for inside groups too.
"""

from __future__ import annotations

import contextlib
import os
import sys

INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
BROKEN_PIPE = 141  # 128 + SIGPIPE, as `yes | head` ends


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """`exc` is a `kind`, or a group holding one."""
    if isinstance(exc, kind):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.split(kind)[0] is not None


def exit_code_for(exc: BaseException) -> int | None:
    """The quiet exit status for a Ctrl-C or a closed output pipe; None for anything else."""
    if caused_by(exc, KeyboardInterrupt):
        return INTERRUPTED
    if caused_by(exc, BrokenPipeError):
        _silence_output()
        return BROKEN_PIPE
    return None


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null: the interpreter's final flush of a closed pipe would
    otherwise print 'Exception ignored ... BrokenPipeError'."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
