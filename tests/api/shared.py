"""One real Server in a background thread (its own trio.run), shared by a module's tests.

pytest-trio runs every test in a fresh trio.run, so a server started inside a test lives for
that test only. Matrix and fuzz tests make hundreds of requests against the same world; they
reach this server over real HTTP and never touch its objects.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from server.app import Server, start_up
from server.config import ServerConfig


@contextmanager
def server_in_thread(data_dir: Path) -> Iterator[tuple[str, str]]:
    """Yields (base URL, admin token); stops the server and joins the thread on exit."""
    config = ServerConfig(data_dir=data_dir, device_port=0, api_port=0)
    startup = start_up(config)
    ready: queue.Queue[tuple[Server, trio.lowlevel.TrioToken] | BaseException] = queue.Queue()

    async def main() -> None:
        try:
            async with trio.open_nursery() as nursery:
                server: Server = await nursery.start(Server(startup.ctx).serve)
                ready.put((server, trio.lowlevel.current_trio_token()))
        except BaseException as exc:
            ready.put(exc)
            raise

    thread = threading.Thread(target=trio.run, args=(main,), name="shared-server", daemon=True)
    thread.start()
    started = ready.get(timeout=30)
    if isinstance(started, BaseException):
        raise started
    server, token = started
    try:
        yield f"http://127.0.0.1:{server.api_port}", config.admin_token_path.read_text().strip()
    finally:
        trio.from_thread.run_sync(server.shutdown, trio_token=token)
        thread.join(timeout=30)
