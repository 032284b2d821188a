"""A connection's reads with a shorter stack while it waits (docs/BENCHMARKS.md, "hold").

An idle connection spends its life parked in a read. Through `SocketStream.receive_some` that
stack holds three coroutine frames and a context manager's generator above trio's wait; here it
is one frame over `trio.lowlevel.wait_readable` (~0.7 KiB less of each of tens of thousands of
idle connections).
The semantics are trio's: a read that can complete at once still checkpoints, a socket closed by
another task ends the wait with ClosedResourceError, and an OS error is a BrokenResourceError.
Any stream other than a trio SocketStream (memory streams in tests) is read as it is.
"""

from __future__ import annotations

import errno
import os

import trio


async def receive_some(stream: trio.abc.ReceiveStream, max_bytes: int) -> bytes | bytearray:
    """`stream.receive_some(max_bytes)`, the short way for a socket. A plain function, not a
    closure per connection: a closure and its cell would be another ~0.2 KiB each."""
    if not isinstance(stream, trio.SocketStream):
        return await stream.receive_some(max_bytes)
    sock = stream.socket
    await trio.lowlevel.checkpoint_if_cancelled()
    waited = False
    while True:
        fd = sock.fileno()  # -1 once closed: never read a number the kernel may have reused
        if fd < 0:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            data: bytes | None = os.read(fd, max_bytes)
        except BlockingIOError:
            data = None  # waited for outside the handler: it would hold the exception while idle
        except OSError as exc:
            if exc.errno == errno.EBADF:
                raise trio.ClosedResourceError("the socket was closed") from None
            raise trio.BrokenResourceError(f"socket read failed: {exc}") from exc
        if data is None:
            await trio.lowlevel.wait_readable(fd)  # raises ClosedResourceError if closed meanwhile
            waited = True
            continue
        if not waited:  # as trio's own reads: every read is a checkpoint
            await trio.lowlevel.cancel_shielded_checkpoint()
        return data
