"""Which process of a run partitioned by client analyses a conversation (`kerbtrace.partition`).

The client of a conversation is the endpoint that is not on a server port; its address, hashed the same way in
every process and every run (not Python's salted `hash`), picks the process. An IPv4 address is hashed from its
32-bit value (Fibonacci hashing), so that the prefilter computes the same owner with numpy from the packet's
bytes; any other address from the CRC-32 of its text.
"""

from __future__ import annotations

import socket
import zlib

#: Knuth's multiplicative constant (2^32 / golden ratio): the top bits of the product spread addresses evenly.
MULTIPLIER = 0x9E3779B1


def stable_hash(address: str) -> int:
    """The same number for an address in every process and every run."""
    try:
        value = int.from_bytes(socket.inet_aton(address), "big") if "." in address else None
    except OSError:
        value = None
    if value is None:
        return zlib.crc32(address.encode("ascii", "replace"))
    return ((value * MULTIPLIER) & 0xFFFFFFFF) >> 16


def owner(address: str, parts: int) -> int:
    """Which of `parts` processes analyses the client at `address`."""
    return stable_hash(address) % parts


def client_of(a: str, a_port: int, b: str, b_port: int, servers: frozenset[int]) -> str:
    """The client side of a conversation from `a` to `b`: the endpoint not on a server port; when both are
    (a KDC asking another, DNS server to server) the lower address, the same for both directions; when neither
    is, `a` (for TCP, the reassembler's client: the SYN sender)."""
    a_server, b_server = a_port in servers, b_port in servers
    if a_server and b_server:
        return min(a, b)
    return b if a_server else a


def owners_ipv4(addresses, parts: int):
    """`owner` of IPv4 addresses given as a numpy array of their 32-bit values (uint64), for the prefilter."""
    import numpy as np

    hashed = ((addresses * np.uint64(MULTIPLIER)) & np.uint64(0xFFFFFFFF)) >> np.uint64(16)
    return hashed % np.uint64(parts)


__all__ = ["MULTIPLIER", "client_of", "owner", "owners_ipv4", "stable_hash"]
