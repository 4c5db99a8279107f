"""Pairs Kerberos requests to KDCs (port 88) with their replies: one `KdcExchange` per request.

UDP pairs by the request's addresses and ports (a retransmission replaces the earlier try); TCP by the
connection, first request first answered. A reply whose request is not in the capture makes an
exchange of its own. Pending requests are bounded: the oldest unanswered ones are let go.
"""

from __future__ import annotations

from collections import OrderedDict

from kerbtrace.events import KerberosEvent
from kerbtrace.exchanges.client import KdcExchange

KERBEROS_PORT = 88
MAX_PENDING = 4096
MAX_PER_CONNECTION = 16


class KdcPairing:
    """Feed KerberosEvents on port 88; each call returns the exchange the event opened or completed."""

    def __init__(self) -> None:
        self.max_pending = MAX_PENDING  # requests waiting for a reply (a live run sets its own)
        self.evicted = 0
        self._udp: OrderedDict[tuple, KdcExchange] = OrderedDict()
        self._tcp: dict[tuple, list[KdcExchange]] = {}  # lists: an empty deque costs 600 bytes a connection

    def pending_ids(self) -> set[int]:
        """id() of the exchanges waiting for their reply (the reply will complete that very object)."""
        out = {id(x) for x in self._udp.values()}
        for queue in self._tcp.values():
            out.update(id(x) for x in queue)
        return out

    def feed(self, ev: KerberosEvent) -> KdcExchange | None:
        """The exchange `ev` belongs to: new for a request (or an orphan reply), else the completed one
        (`exchange.reply is ev`). None for messages that are not client <-> KDC."""
        if ev.dport == KERBEROS_PORT and ev.is_request:
            exchange = KdcExchange(ev.src, ev.dst, request=ev)
            key = (ev.src, ev.sport, ev.dst, ev.stream)
            if ev.transport == "udp":
                self._udp[key] = exchange
                if len(self._udp) > self.max_pending:
                    self._udp.popitem(last=False)
                    self.evicted += 1
            else:
                queue = self._tcp.setdefault(key, [])
                queue.append(exchange)
                if len(queue) > MAX_PER_CONNECTION:
                    del queue[0]
                if len(self._tcp) > self.max_pending:
                    self._tcp.pop(next(iter(self._tcp)))
                    self.evicted += 1
            return exchange
        if ev.sport == KERBEROS_PORT and not ev.is_request:
            key = (ev.dst, ev.dport, ev.src, ev.stream)
            if ev.transport == "udp":
                found = self._udp.pop(key, None)
            else:
                waiting = self._tcp.get(key)
                found = waiting.pop(0) if waiting else None
            if found is None:
                return KdcExchange(ev.dst, ev.src, reply=ev)
            found.reply = ev
            return found
        return None


__all__ = ["KdcPairing"]
