"""`fleetsim chaos fuzz`: coverage-guided fuzzing of protocol/ parsing (atheris, libFuzzer).

    python -m firmware_sim.chaos.fuzz_protocol [-runs=N] [-max_total_time=S] [CORPUS_DIR ...]
    python -m firmware_sim.chaos.fuzz_protocol --write-seeds DIR

Framing, message decoding and the Connection state machine of both roles, before and after a
completed handshake, fed arbitrary bytes (firmware_sim/chaos/fuzz_targets.py). Any exception
other than protocol/'s ProtocolError is a crash: libFuzzer prints it, writes the input to
crash-<sha1> (or -artifact_prefix=) and exits non-zero. New inputs go to the first CORPUS_DIR;
tests/protocol/fuzz_corpus/ holds the seeds and every crash found, replayed by the test suite.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write-seeds"] and len(argv) == 2:
        from .fuzz_seeds import write_seeds

        print(f"wrote {write_seeds(Path(argv[1]))} seed inputs to {argv[1]}")
        return 0
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if "protocol" in sys.modules:
        # protocol/ must be imported under atheris's instrumentation to be coverage-guided: run the
        # fuzzer in a fresh interpreter (this is how `fleetsim chaos fuzz` gets here).
        os.execv(sys.executable, [sys.executable, "-m", "firmware_sim.chaos.fuzz_protocol", *argv])
    return _fuzz(argv)


def _fuzz(argv: list[str]) -> int:
    import atheris

    with atheris.instrument_imports(include=["protocol", "firmware_sim.chaos.fuzz_targets"]):
        from .fuzz_targets import one_input

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()  # exits the process: 0 when the runs end, non-zero on a crash
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
