"""Pairs DNS queries with their responses and hands out the lookups that matter as `DnsLookup`.

Most DNS traffic on a busy network has nothing to do with ConfigMgr: a successful answer whose first
label is not a known MP's and not a locator record is handed out raw (`RawLookup`, its question not even
decoded), for the correlator's small per-address memory. Failures, locator records and MP names are
decoded. Queries never answered are kept (bounded) and handed out by `unanswered` at the end: no answer
at all is a failed lookup too.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from kerbtrace.constants import DnsRcode
from kerbtrace.decoders import DecodeError
from kerbtrace.events import DnsEvent
from kerbtrace.exchanges.client import DnsLookup
from kerbtrace.exchanges.mp_names import LOCATOR_PREFIXES, MpNames

MAX_PENDING = 4096


@dataclass(slots=True)
class RawLookup:
    """A successful lookup not (yet) known to matter: decoded only if its address becomes a client."""

    frame: int  # the query
    time: float
    response: DnsEvent

    def decode(self) -> DnsLookup | None:
        ev = self.response
        try:
            name, qtype = ev.header.question()
        except DecodeError:
            return None
        return DnsLookup(self.frame, self.time, ev.dst, ev.src, name, qtype, ev.frame, ev.time, ev.header.rcode,
                         ev.answers(), ev.header.answer_count)


class DnsPairing:
    def __init__(self, mp_names: MpNames) -> None:
        self.max_pending = MAX_PENDING  # queries waiting for their answer (a live run sets its own)
        self.evicted = 0
        self.mp_names = mp_names
        self._pending: OrderedDict[tuple, DnsEvent] = OrderedDict()

    def feed(self, ev: DnsEvent) -> DnsLookup | RawLookup | None:
        head = ev.header
        pending = self._pending
        if not head.is_response:
            pending[(ev.src, ev.dst, head.id)] = ev
            if len(pending) > self.max_pending:
                pending.popitem(last=False)
                self.evicted += 1
            return None
        query = pending.pop((ev.dst, ev.src, head.id), None)
        frame, time = (query.frame, query.time) if query is not None else (ev.frame, ev.time)
        label = head.first_label
        if head.rcode == DnsRcode.NOERROR and head.answer_count and label[:1] != "_" \
                and not self.mp_names.is_mp_label(label):
            return RawLookup(frame, time, ev)  # the usual case: nothing to do with the MP
        try:
            name, qtype = head.question()
        except DecodeError:
            return None
        if not name:
            return None
        lookup = DnsLookup(frame, time, ev.dst, ev.src, name, qtype, ev.frame, ev.time, head.rcode,
                           answer_count=head.answer_count)
        if head.rcode == DnsRcode.NOERROR and head.answer_count:
            if not (name.startswith(LOCATOR_PREFIXES) or self.mp_names.is_mp_name(name)):
                return RawLookup(frame, time, ev)
            lookup.answers = ev.answers()
        return lookup

    def unanswered(self) -> list[DnsLookup]:
        """Queries of MP names or locator records that got no response in the capture."""
        out = []
        for query in self._pending.values():
            try:
                name, qtype = query.header.question()
            except DecodeError:
                continue
            if name and (self.mp_names.is_mp_name(name) or name.startswith(LOCATOR_PREFIXES)):
                out.append(DnsLookup(query.frame, query.time, query.src, query.dst, name, qtype))
        self._pending.clear()
        return out


__all__ = ["DnsPairing", "RawLookup"]
