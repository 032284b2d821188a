"""A real HTTP server on loopback that webhooks are sent to: it records every request and
answers from a script (status, body, delay), served by Hypercorn like the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from server.api.serve import bind_api_socket, serve_api


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # trio clock


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0


@dataclass
class Receiver:
    host: str
    port: int = 0
    script: list[Answer] = field(default_factory=list)  # answers in order; then `default`
    default: Answer = field(default_factory=Answer)
    requests: list[Received] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def keys(self) -> set[str]:
        """The Idempotency-Keys seen (event IDs)."""
        return {r.headers.get("idempotency-key", "") for r in self.requests}

    async def wait_for_keys(self, count: int, within: float = 10) -> None:
        with trio.fail_after(within):
            while len(self.keys) < count:
                await self.changed.wait()
                self.changed = trio.Event()

    async def wait_for(self, count: int, within: float = 10) -> None:
        with trio.fail_after(within):
            while len(self.requests) < count:
                await self.changed.wait()
                self.changed = trio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:  # fmt: skip
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Received(scope["method"], scope["path"], scope["query_string"].decode(), headers, body,
                                      trio.current_time()))  # fmt: skip
        self.changed.set()
        answer = self.script.pop(0) if self.script else self.default
        await trio.sleep(answer.delay)
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer.body})


@asynccontextmanager
async def receiving(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Receiver]:
    """A receiver on `port` (0: one the kernel picks)."""
    receiver = Receiver(host)
    sock = bind_api_socket(host, port)
    receiver.port = int(sock.getsockname()[1])
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_api(receiver, sock, grace=0.5, shutdown_trigger=stop.wait,
                                                          task_status=task_status))  # fmt: skip
        try:
            yield receiver
        finally:
            stop.set()
