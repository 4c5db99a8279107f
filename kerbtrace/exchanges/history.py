"""What each address did before it became a client, in bounded memory.

Kerberos and DNS traffic seen from an address before it talks to an MP is kept, so the TGS exchanges
that precede the authenticated CCM_POST are not lost: a few records per address, for the most recently
active addresses only.
"""

from __future__ import annotations

from collections import OrderedDict

from kerbtrace.events import KdcFailureEvent
from kerbtrace.exchanges.client import DnsLookup, KdcExchange
from kerbtrace.exchanges.dns_pairing import RawLookup
from kerbtrace.exchanges.tls_legs import TlsLeg

PER_ADDRESS = 32
MAX_ADDRESSES = 16384
RECENT_LOOKUPS = 8  # successful lookups of not-yet-relevant names kept per address


class _Lru(OrderedDict):
    """Per-address lists of the latest `per_address` items, evicting the least recently used address past
    `limit`. (Lists, not deques: most addresses hold one or two items, and an empty deque costs 600 bytes,
    which made the full tables about 40 MB.)"""

    def __init__(self, limit: int, per_address: int) -> None:
        super().__init__()
        self.limit = limit
        self.per_address = per_address
        self.evicted = 0  # addresses dropped, least recently used first

    def add(self, key: str, item: object) -> None:
        """`item` last in `key`'s list (its oldest let go past `per_address`); `key` the most recently used."""
        value = self.get(key)
        if value is None:
            self[key] = [item]
            if len(self) > self.limit:
                self.popitem(last=False)
                self.evicted += 1
            return
        self.move_to_end(key)
        value.append(item)
        if len(value) > self.per_address:
            del value[0]


class AddressHistory:
    def __init__(self) -> None:
        self.kdc = _Lru(MAX_ADDRESSES, PER_ADDRESS)  # KdcExchange | KdcFailureEvent
        self.dns = _Lru(MAX_ADDRESSES, PER_ADDRESS)  # DnsLookup
        self.recent = _Lru(MAX_ADDRESSES, RECENT_LOOKUPS)  # RawLookup
        self.tls = _Lru(MAX_ADDRESSES, PER_ADDRESS)  # TlsLeg to a server not (yet) known as an MP

    def limit(self, addresses: int) -> None:
        """Keep the history of at most `addresses` addresses per table."""
        for table in self.tables:
            table.limit = addresses

    @property
    def tables(self) -> tuple[_Lru, ...]:
        return self.kdc, self.dns, self.recent, self.tls

    def add_kdc(self, ip: str, item: KdcExchange | KdcFailureEvent) -> None:
        self.kdc.add(ip, item)

    def add_dns(self, ip: str, lookup: DnsLookup) -> None:
        self.dns.add(ip, lookup)

    def add_raw(self, ip: str, lookup: RawLookup) -> None:
        self.recent.add(ip, lookup)

    def add_tls(self, ip: str, leg: TlsLeg) -> None:
        self.tls.add(ip, leg)

    def take(self, ip: str) -> tuple[list, list[DnsLookup], list[RawLookup], list[TlsLeg]]:
        """Everything kept for `ip`, removed from the history."""
        return (list(self.kdc.pop(ip, ())), list(self.dns.pop(ip, ())), list(self.recent.pop(ip, ())),
                list(self.tls.pop(ip, ())))

    def addresses(self) -> set[str]:
        return set(self.kdc) | set(self.dns) | set(self.tls)


__all__ = ["AddressHistory"]
