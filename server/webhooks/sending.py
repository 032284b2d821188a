"""One HTTP request to a webhook's target, made to the address the guard checked; redirects are not
followed (a redirect could lead past the address guard), and at most MAX_RESPONSE bytes are read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from . import guard
from .request import OutgoingRequest

MAX_RESPONSE = 32 * 512  # response bytes sent back to the device (32 chunks); the rest is cut


@dataclass(frozen=True, slots=True)
class Result:
    status: int | None
    body: bytes
    error: str  # empty on a 2xx answer

    @property
    def ok(self) -> bool:
        return not self.error


def status_text(status: int) -> str:
    # The standard phrase, not the target's (HTTP/1.1 servers may send none, HTTP/2 has none).
    return f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".strip()


class Sender:
    def __init__(self, verified: httpx.AsyncClient, unverified: httpx.AsyncClient, timeout: float) -> None:
        self._clients = (verified, unverified)
        self._timeout = timeout

    async def send(self, request: OutgoingRequest, pinned: guard.Pinned) -> Result:
        client = self._clients[0 if request.verify_tls else 1]
        headers = {**request.headers, "Host": pinned.host_header}
        extensions = {} if pinned.sni_hostname is None else {"sni_hostname": pinned.sni_hostname}
        try:
            req = client.build_request(request.method, pinned.url, headers=headers, content=request.body,
                                       extensions=extensions)  # fmt: skip
            response = await client.send(req, stream=True)
            try:
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body += piece[: MAX_RESPONSE - len(body)]
                    if len(body) >= MAX_RESPONSE:
                        break
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return Result(None, b"", f"no answer within {self._timeout} s")
        except httpx.HTTPError as exc:
            return Result(None, b"", f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= response.status_code < 300:
            return Result(response.status_code, bytes(body), "")
        return Result(response.status_code, bytes(body), status_text(response.status_code))


@asynccontextmanager
async def open_sender(seconds: float) -> AsyncIterator[Sender]:
    """Two clients: one verifying TLS certificates, one for webhooks that turned that off."""
    limits = httpx.Timeout(seconds)
    async with (
        httpx.AsyncClient(timeout=limits, follow_redirects=False) as verified,
        httpx.AsyncClient(timeout=limits, follow_redirects=False, verify=False) as unverified,
    ):
        yield Sender(verified, unverified, seconds)
