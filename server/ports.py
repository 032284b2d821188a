"""Binding the server's two listening ports, before anything else happens.

`fleetgate serve` binds first and only then touches the data directory, so a port in use
leaves nothing behind; the error says which port (device or API) could not be had.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

import trio

from .api import bind_api_socket
from .config import ServerConfig


class PortUnavailable(Exception):
    """One of the two ports could not be bound: which one, and why, in one line."""

    def __init__(self, host: str, which: str, port: int, exc: OSError) -> None:
        super().__init__(f"cannot listen on {host} {which} port {port}: {describe_bind_error(exc)}")
        self.which = which
        self.port = port
        self.errno = exc.errno


def describe_bind_error(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the port is already in use (is another fleetgate running?)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return exc.strerror or str(exc)


@dataclass(slots=True)
class BoundPorts:
    listeners: list[trio.SocketListener]
    api_socket: socket.socket

    async def aclose(self) -> None:
        """Release both, for a server that will not start after all."""
        self.api_socket.close()
        for listener in self.listeners:
            await listener.aclose()


async def bind_ports(cfg: ServerConfig) -> BoundPorts:
    """Both listening sockets, or PortUnavailable and neither."""
    try:
        listeners = await trio.open_tcp_listeners(cfg.device_port, host=cfg.host, backlog=cfg.backlog)
    except OSError as exc:
        raise PortUnavailable(cfg.host, "device", cfg.device_port, exc) from None
    try:
        api_socket = bind_api_socket(cfg.host, cfg.api_port)
    except OSError as exc:
        for listener in listeners:
            await listener.aclose()
        raise PortUnavailable(cfg.host, "API", cfg.api_port, exc) from None
    return BoundPorts(listeners, api_socket)
