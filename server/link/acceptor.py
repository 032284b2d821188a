"""The device port's accept loop, with a bound on handshakes in progress.

Every accepted connection starts its handshake clock (`handshake_timeout`). Accepting a whole
reconnecting fleet at once would start every clock while the CPU works through the handshakes
one by one, and those at the back would time out. So at most `max_handshakes` are in progress;
the rest wait in the kernel's listen queue (`backlog`), where they cost the server nothing.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable, Sequence

import trio

from ..logs import log_event

log = logging.getLogger("fleetgate.acceptor")

# Out of descriptors or memory: the connection waits in the queue; try again shortly (as trio's
# serve_listeners does).
ACCEPT_RETRY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY_SLEEP = 0.1

Handler = Callable[[trio.SocketStream, Callable[[], None]], Awaitable[None]]


class HandshakeSlot:
    """One handshake's place; released once, by whichever comes first: the handshake ending or
    the session ending."""

    __slots__ = ("_semaphore",)

    def __init__(self, semaphore: trio.Semaphore) -> None:
        self._semaphore: trio.Semaphore | None = semaphore

    def release(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None


async def serve_devices(
    listeners: Sequence[trio.SocketListener], handler: Handler, sessions: trio.Nursery, max_handshakes: int
) -> None:
    """Accept on every listener until cancelled (the listeners are closed then); each connection
    runs `handler(stream, release_slot)` in `sessions`."""
    slots = trio.Semaphore(max_handshakes)
    async with trio.open_nursery() as loops:
        for listener in listeners:
            loops.start_soon(_accept_loop, listener, handler, sessions, slots)


async def _accept_loop(
    listener: trio.SocketListener, handler: Handler, sessions: trio.Nursery, slots: trio.Semaphore
) -> None:
    async with listener:
        while True:
            await slots.acquire()
            slot = HandshakeSlot(slots)
            try:
                stream = await listener.accept()
            except OSError as exc:
                slot.release()
                if exc.errno not in ACCEPT_RETRY_ERRNOS:
                    raise
                log_event(log, "accept_failed", logging.ERROR, error=str(exc), retry_s=ACCEPT_RETRY_SLEEP)
                await trio.sleep(ACCEPT_RETRY_SLEEP)
                continue
            except BaseException:
                slot.release()
                raise
            sessions.start_soon(handler, stream, slot.release)
