"""The product-stream subscriber of the publish scenario: one process reading the product's
Server-Sent Events stream (GET /v1/products/:p/events/bench), as `fleetgate events tail` would.

Each event's data begins with its send time (monotonic ns, the same clock in every process
of the machine), so each delivery gives an end-to-end latency: device send -> server store ->
stream -> subscriber. A stream that the server cuts off (it fell behind) resumes with
Last-Event-ID, as a real subscriber does; the cut-offs are counted.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import re
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

import httpx
import trio

from .machine import pin

_ID = re.compile(rb"^id: (\d+)", re.M)
_SENT = re.compile(rb'"data":"(\d+)')
READY_LIMIT = 30.0


class _Reader:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.count = 0
        self.latencies: list[float] = []
        self.cut_offs = 0
        self.last_id: int | None = None
        self.last_at = 0.0
        self.connected = trio.Event()

    async def run(self) -> None:
        timeout = httpx.Timeout(None, connect=30.0)
        async with httpx.AsyncClient(timeout=timeout) as client:
            while True:
                headers = {"Authorization": f"Bearer {self.token}"}
                if self.last_id is not None:
                    headers["Last-Event-ID"] = str(self.last_id)
                try:
                    async with client.stream("GET", self.url, headers=headers) as response:
                        buffer = b""
                        async for chunk in response.aiter_bytes():
                            self.connected.set()
                            buffer += chunk
                            *blocks, buffer = buffer.split(b"\n\n")
                            self._take(blocks)
                except httpx.HTTPError:
                    await trio.sleep(0.1)  # the server went away or cut us off mid-chunk: try again
                self.cut_offs += 1  # the stream ended: resume after the last event seen

    def _take(self, blocks: list[bytes]) -> None:
        now = time.monotonic_ns()
        for block in blocks:
            m = _ID.search(block)
            if m is None:
                if b"cut off" in block:
                    pass  # counted when the stream ends
                continue
            self.last_id = int(m.group(1))
            sent = _SENT.search(block)
            self.count += 1
            if sent is not None:
                self.latencies.append((now - int(sent.group(1))) / 1e9)
        if blocks:
            self.last_at = now / 1e9


async def _serve(url: str, token: str, pipe: Pipe) -> None:
    reader = _Reader(url, token)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader.run)
        with trio.move_on_after(READY_LIMIT):
            await reader.connected.wait()
        await trio.to_thread.run_sync(pipe.send, {"connected": reader.connected.is_set()})
        while True:
            command, args = await trio.to_thread.run_sync(pipe.recv, abandon_on_cancel=True)
            if command == "exit":
                nursery.cancel_scope.cancel()
                return
            if command == "reset":
                reader.count, reader.latencies, reader.cut_offs = 0, [], 0
                await trio.to_thread.run_sync(pipe.send, {})
            elif command == "wait":
                expect, timeout = int(args["expect"]), float(args["timeout"])
                quiet_since, seen = time.monotonic(), reader.count
                while reader.count < expect and time.monotonic() - quiet_since < timeout:
                    await trio.sleep(0.05)
                    if reader.count != seen:
                        quiet_since, seen = time.monotonic(), reader.count
                answer = {"count": reader.count, "latencies": reader.latencies, "cut_offs": reader.cut_offs,
                          "last_at": reader.last_at}  # fmt: skip
                await trio.to_thread.run_sync(pipe.send, answer)


def subscriber_main(url: str, token: str, pipe: Pipe, cores: frozenset[int] | None) -> None:
    pin(cores)
    try:
        trio.run(_serve, url, token, pipe)
    finally:
        pipe.close()


class Subscriber:
    """Parent side of the subscriber process."""

    def __init__(self, api_port: int, token: str, product_id: int, cores: frozenset[int] | None) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        url = f"http://127.0.0.1:{api_port}/v1/products/{product_id}/events/bench"
        self.proc = ctx.Process(target=subscriber_main, args=(url, token, child, cores), daemon=True)
        self.proc.start()
        child.close()
        hello = self.pipe.recv()
        if not hello.get("connected"):
            self.close()
            raise RuntimeError("the subscriber could not open the product's event stream")

    def reset(self) -> None:
        self.pipe.send(("reset", {}))
        self.pipe.recv()

    def wait(self, expect: int, timeout: float) -> dict[str, Any]:
        """Until `expect` events arrived since reset, or none for `timeout` seconds."""
        self.pipe.send(("wait", {"expect": expect, "timeout": timeout}))
        answer: dict[str, Any] = self.pipe.recv()
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("exit", {}))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.pipe.close()
