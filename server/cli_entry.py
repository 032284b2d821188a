"""The `fleetgate` executable: Ctrl-C while the CLI is still loading ends as quietly as later on.

The CLI's own imports (httpx, the parser) take a noticeable fraction of a second; a KeyboardInterrupt
there would otherwise print a traceback, before server.cli.main could catch anything.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        return 130
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
