"""Handshake slots per source address: one host (or a few) cannot take them all.

A slot is held from accept to the end of the handshake. Real devices hold one for about a round trip,
so even thousands behind one carrier-grade NAT address need few at once; a host opening idle sockets
holds them until the first-message deadline. IPv6 counts per /64: one subscriber line commonly has a
whole /64 to pick source addresses from.
"""

from __future__ import annotations

import ipaddress


def address_key(sockaddr: object) -> str:
    """The share a peer counts against: its IPv4 address (also when IPv4-mapped) or its IPv6 /64."""
    host = sockaddr[0] if isinstance(sockaddr, tuple) and sockaddr else sockaddr
    text = str(host).split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is not part of the address
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text  # not an IP peer (a Unix socket): one share per name
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AddressShares:
    """How many handshake slots each address holds; at most `per_address` each."""

    __slots__ = ("_held", "per_address")

    def __init__(self, per_address: int) -> None:
        if per_address < 1:
            raise ValueError("per_address must be at least 1")
        self.per_address = per_address
        self._held: dict[str, int] = {}  # only addresses holding a slot: it never grows with history

    def take(self, key: str) -> bool:
        """One more slot for `key`, unless it holds its share already."""
        held = self._held.get(key, 0)
        if held >= self.per_address:
            return False
        self._held[key] = held + 1
        return True

    def give_back(self, key: str) -> None:
        held = self._held.get(key, 0)
        if held <= 1:
            self._held.pop(key, None)
        else:
            self._held[key] = held - 1

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    def __len__(self) -> int:
        """Addresses holding at least one slot."""
        return len(self._held)
