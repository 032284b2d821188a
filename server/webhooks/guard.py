"""Where a webhook may send: public addresses only, unless the operator allows private ones.

The host is resolved once per request and the request goes to the address that was checked
(the URL carries the IP; Host and TLS SNI carry the name), so a name that resolves to a public
address for the check and a private one for the connection (DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import trio

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The target is not one we send to; the message says why (it goes to the history)."""


def is_public(address: IPAddress) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_name(host: str) -> None:
    """A host that is no IP address must be a name DNS can carry (IDNA: no empty label, none over
    63 characters); the resolver would raise UnicodeError, not OSError, for one that is not."""
    if literal_address(host) is None:
        try:
            host.encode("idna")
        except UnicodeError:
            raise TargetRefused(f"{host} is not a valid host name") from None


def check_literal(host: str, allow_private: bool) -> None:
    """At creation: a URL naming a private or loopback address outright is refused at once."""
    address = literal_address(host)
    if address is not None and not allow_private and not is_public(address):
        raise TargetRefused(f"{address} is a private, loopback or reserved address")


@dataclass(frozen=True, slots=True)
class Pinned:
    url: str  # the URL with the checked IP in place of the name
    host_header: str
    sni_hostname: str | None  # for https: the name the certificate must carry


async def pin(url: str, allow_private: bool) -> Pinned:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = literal_address(host)
    if address is not None:
        candidates = [address]
    else:
        check_name(host)  # webhooks saved before creation checked it are refused here, one delivery at a time
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise TargetRefused(f"cannot resolve {host}: {exc}") from None
        candidates = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    allowed = [a for a in candidates if allow_private or is_public(a)]
    if not allowed:
        shown = ", ".join(sorted({str(a) for a in candidates}))
        raise TargetRefused(f"{host} is a private, loopback or reserved address ({shown})")
    chosen = allowed[0]
    ip_text = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{ip_text}:{port}" if parts.port else ip_text
    host_header = parts.netloc.rpartition("@")[2]
    sni = host if parts.scheme == "https" and address is None else None
    return Pinned(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), host_header, sni)
