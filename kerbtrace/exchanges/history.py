"""What each address did before it became a client, in bounded memory.

Kerberos and DNS traffic seen from an address before it talks to an MP is kept, so the TGS exchanges
that precede the authenticated CCM_POST are not lost: a few records per address, for the most recently
active addresses only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

from kerbtrace.events import KdcFailureEvent
from kerbtrace.exchanges.client import DnsLookup, KdcExchange
from kerbtrace.exchanges.dns_pairing import RawLookup
from kerbtrace.exchanges.tls_legs import TlsLeg
from kerbtrace.spill import SpillStore

PER_ADDRESS = 32
#: Addresses per table. The cold ones cost about 176 bytes each in memory, the address's string included (their
#: lists are on disk; the store's index is their LRU order too): a capture's tables hold this many before the
#: least recently used are dropped (and the run says so).
MAX_ADDRESSES = 65536
RECENT_LOOKUPS = 8  # successful lookups of not-yet-relevant names kept per address
#: Addresses per table whose lists stay in memory; the less recently used wait on disk, moved there
#: `COLD_BATCH` at a time. A long capture fills the tables with hosts that never register (59 MB at 16,384
#: addresses in memory on a 10 GB capture of 100,000 clients at an MP's rate, two thirds of its growth past 1 GB).
HOT_ADDRESSES = 1024
COLD_BATCH = 256


class _Lru:
    """Per-address lists of the latest `per_address` items, evicting the least recently used address past
    `limit`. (Lists, not deques: most addresses hold one or two items, and an empty deque costs 600 bytes,
    which made the full tables about 40 MB.)

    The `hot` addresses (most recently used) hold their lists in memory; past `hot_limit` the least recently
    used go `cold`: their lists wait in a `SpillStore`, in the same order, all older than any hot one, and come
    back when the address is used again. Reading an address (`get`) changes no order, as before. `pending`
    names the objects another table still completes (a reply to come): those stay in memory as they are."""

    def __init__(self, limit: int, per_address: int, pending: Callable[[], set[int]] | None = None) -> None:
        self.limit = limit
        self.per_address = per_address
        self.evicted = 0  # addresses dropped, least recently used first
        self.hot: OrderedDict[str, list] = OrderedDict()
        self.cold = SpillStore()  # the other addresses' lists, least recently used first
        self.hot_limit = HOT_ADDRESSES
        self.pending = pending

    def __len__(self) -> int:
        return len(self.hot) + len(self.cold)

    def __iter__(self) -> Iterator[str]:
        """Addresses, least recently used first."""
        yield from self.cold
        yield from self.hot

    def __contains__(self, key: object) -> bool:
        return key in self.hot or key in self.cold

    def get(self, key: str, default=None):
        """`key`'s list (a copy when it waits on disk), or `default`."""
        value = self.hot.get(key)
        if value is not None:
            return value
        return self.cold.read(key) if key in self.cold else default

    def pop(self, key: str, default=None):
        """`key`'s list, removed from the table, or `default`."""
        value = self.hot.pop(key, None)
        if value is not None:
            return value
        if key in self.cold:
            return self.cold.take(key)
        return default

    def add(self, key: str, item: object) -> None:
        """`item` last in `key`'s list (its oldest let go past `per_address`); `key` the most recently used."""
        hot = self.hot
        value = hot.get(key)
        if value is None and key in self.cold:  # back from disk, as the most recently used
            value = hot[key] = self.cold.take(key)
        if value is None:
            hot[key] = [item]
            if len(self) > self.limit:
                self._evict_oldest()
                self.evicted += 1
        else:
            hot.move_to_end(key)
            value.append(item)
            if len(value) > self.per_address:
                del value[0]
        if len(hot) >= self.hot_limit + COLD_BATCH:
            self._cool()

    def _evict_oldest(self) -> None:
        if self.cold:
            self.cold.drop_oldest()
        else:
            self.hot.popitem(last=False)

    def _cool(self) -> None:
        """The `COLD_BATCH` least recently used hot addresses to disk."""
        pending = self.pending() if self.pending is not None else set()
        hot, cold = self.hot, self.cold
        for _ in range(COLD_BATCH):
            key, value = hot.popitem(last=False)
            keep = {id(x): x for x in value if id(x) in pending}
            cold.put(key, value, keep or None)


class AddressHistory:
    def __init__(self, pending: Callable[[], set[int]] | None = None) -> None:
        """`pending`: id() of the Kerberos exchanges still waiting for their reply (`KdcPairing.pending_ids`)."""
        self.kdc = _Lru(MAX_ADDRESSES, PER_ADDRESS, pending)  # KdcExchange | KdcFailureEvent
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
