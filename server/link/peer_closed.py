"""Whether a TCP peer has already closed its end, asked without reading (Linux's TCP_INFO).

In a reconnect storm connections wait in the listen queue (server/link/acceptor.py). A device that
gave up waiting has closed its end, but its hello is still in our receive buffer: answering it
would spend a handshake's crypto (four X25519 and a key pair) on nobody, while the devices
still waiting behind it run out of time in their turn.
"""

from __future__ import annotations

import socket

import trio

_TCP_CLOSE_WAIT = 8  # tcpi_state (include/net/tcp_states.h): the peer's FIN has arrived
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None)  # Linux only; elsewhere the answer is no


def peer_has_closed(stream: trio.abc.Stream) -> bool:
    """True when the peer's FIN has arrived. False when it has not, or when this cannot be known."""
    if _TCP_INFO is None or not isinstance(stream, trio.SocketStream):
        return False
    try:
        info = stream.socket.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 1)  # the first byte: tcpi_state
    except OSError:
        return False
    return bool(info) and info[0] == _TCP_CLOSE_WAIT
