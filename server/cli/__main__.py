"""The `fleetgate` executable (and `python -m server.cli`): Ctrl-C while the CLI is still loading ends as quietly
as later on.

The CLI's own imports (httpx, the parser) take a noticeable fraction of a second; a KeyboardInterrupt
there would otherwise print a traceback, before server.cli.main could catch anything. This is the one module
of server/cli that reaches outside it: it hands the commands that run the server (server/commands.py) to the
client (an exception the import contract names).
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from ..commands import LOCAL_COMMANDS
        from .command import main as cli_main
    except KeyboardInterrupt:
        return 130
    return cli_main(local=LOCAL_COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
