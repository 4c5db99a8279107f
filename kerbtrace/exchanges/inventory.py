"""The `kerberos` list of the report: every Kerberos message, a consumer of the event stream of its own.

Past a threshold the records wait on disk (kerbtrace.spill). Bounded: past `limit` records the rest are
counted, not kept (a report of millions of messages would be mostly this list); `dropped` says how many, and
the report says so.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from kerbtrace import spill
from kerbtrace.events import KerberosEvent

LIMIT = 2_000_000
CHUNK = 512  # records per pickled chunk on disk


@dataclass(slots=True)
class KerberosRecord:
    """One row of the `kerberos` list of the JSON report."""

    frame: int
    time: float
    src: str
    dst: str
    transport: str
    msg_type: int
    error_code: int | None
    realm: str | None
    sname: str | None
    cname: str | None
    input: int = 0  # index of the capture file in the report's inputs


class KerberosInventory:
    def __init__(self, limit: int = LIMIT) -> None:
        self.records: spill.SpillList[KerberosRecord] = records_list(key=record_order)
        self.limit = limit
        self.dropped = 0

    def add(self, ev: KerberosEvent) -> None:
        if len(self.records) >= self.limit:
            self.dropped += 1
            return
        m = ev.msg
        # names repeat across thousands of messages: interned, the list stays small on big captures
        self.records.append(KerberosRecord(ev.frame, ev.time, sys.intern(ev.src), sys.intern(ev.dst), ev.transport,
                                           m.msg_type, m.error_code, _intern(m.realm), _intern(m.sname),
                                           _intern(m.cname)))


def records_list(key=None) -> spill.SpillList[KerberosRecord]:
    """An empty list of records, kept as the inventory keeps its own (with `key`: read back in that order). A
    record costs about 1 % of a client's result: 16 times as many wait in memory before they go to disk."""
    return spill.SpillList(key=key, threshold=16 * spill.THRESHOLD, chunk=CHUNK)


def _intern(text: str | None) -> str | None:
    return sys.intern(text) if text else text


__all__ = ["CHUNK", "KerberosInventory", "KerberosRecord", "record_order", "records_list"]


def record_order(record: KerberosRecord) -> tuple[int, int]:
    """The list in frame order, not in the order the messages were decoded (a connection's end changes that):
    the same list whatever reads the capture (one process or a partitioned run). A ring's records are numbered
    on across its files while read and moved to (file, frame in that file) later: the order is the same."""
    return record.input, record.frame
