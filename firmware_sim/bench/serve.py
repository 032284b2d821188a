"""`fleetgate serve` with the publish rate limit raised, for the benchmark only.

    python -m firmware_sim.bench.serve --data-dir D --device-port P --api-port A \\
        --publish-rate 1e6 --publish-burst 1000000

`fleetgate serve` does not (yet) expose ServerConfig.publish_rate / publish_burst, and the
`publish` scenario needs them far above Particle's one a second. This runs exactly what
`fleetgate serve` runs (server.app.run_forever with a ServerConfig) and prints the same banner;
the only difference is the fields set from these flags. When `fleetgate serve` has the flags,
the benchmark uses it directly (firmware_sim.bench.server.serve_command).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from server.app import Server, describe_bind_error, run_forever
from server.config import ServerConfig
from server.logs import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m firmware_sim.bench.serve")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--device-port", type=int, required=True)
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--max-firmware-size", type=int, default=16 * 1024 * 1024)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--publish-rate", type=float, default=1.0)
    p.add_argument("--publish-burst", type=int, default=4)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    config = ServerConfig(
        data_dir=args.data_dir, host=args.host, device_port=args.device_port, api_port=args.api_port,
        max_firmware_size=args.max_firmware_size, publish_rate=args.publish_rate, publish_burst=args.publish_burst,
    )  # fmt: skip

    def ready(server: Server) -> None:
        print(f"fleetgate: data directory {config.data_dir.resolve()}", flush=True)
        print(f"fleetgate: server public key {server.ctx.server_key.public.hex()} (in {config.pub_path})", flush=True)
        print(f"fleetgate: API at http://{config.host}:{server.api_port}", flush=True)
        print(f"fleetgate: devices connect to {config.host}:{server.device_port}; Ctrl-C stops", flush=True)

    try:
        trio.run(run_forever, config, ready)
    except OSError as exc:
        print(f"fleetgate: cannot listen: {describe_bind_error(exc)}", file=sys.stderr)
        return 2
    print("fleetgate: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
