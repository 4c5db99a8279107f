"""Failed pre-authentications per principal, across all clients: where lockouts come from.

A consumer of the event stream of its own (like the inventory): for each principal, the addresses that
sent a request the KDC refused with KDC_ERR_PREAUTH_FAILED, and whether the KDC then answered
KDC_ERR_CLIENT_REVOKED (the account is locked, disabled or expired). Seed 000: a changed password of a
connection account locks it for every client still using the old one. Bounded in principals and sources.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from kerbtrace.constants import KrbError, KrbMsg
from kerbtrace.events import KerberosEvent

KERBEROS_PORT = 88
MAX_PRINCIPALS = 4096
MAX_SOURCES = 1024
MAX_FRAMES = 5
_WATCHED = (KrbError.KDC_ERR_PREAUTH_FAILED, KrbError.KDC_ERR_CLIENT_REVOKED)


@dataclass(slots=True)
class Source:
    address: str
    failures: int = 0
    revoked: int = 0
    frames: list[int] = field(default_factory=list)


@dataclass(slots=True)
class PrincipalFailures:
    principal: str  # name@REALM
    sources: dict[str, Source] = field(default_factory=dict)
    kdcs: set[str] = field(default_factory=set)

    @property
    def failures(self) -> int:
        return sum(s.failures for s in self.sources.values())

    @property
    def revoked(self) -> int:
        return sum(s.revoked for s in self.sources.values())


class LockoutWatch:
    def __init__(self) -> None:
        self.max_asked = MAX_PRINCIPALS  # (client, KDC) pairs whose last AS-REQ principal is remembered
        self.max_sources = MAX_SOURCES  # source addresses kept per principal (the rest not listed)
        self.evicted = 0
        self.principals: dict[str, PrincipalFailures] = {}
        self._asked: OrderedDict[tuple[str, str], str] = OrderedDict()  # (client, kdc) -> last AS-REQ principal

    def feed(self, ev: KerberosEvent) -> None:
        msg = ev.msg
        if msg.msg_type == KrbMsg.AS_REQ and ev.dport == KERBEROS_PORT and msg.cname:
            key = (ev.src, ev.dst)
            self._asked[key] = f"{msg.cname}@{(msg.realm or '').upper()}"
            self._asked.move_to_end(key)
            if len(self._asked) > self.max_asked:
                self._asked.popitem(last=False)
                self.evicted += 1
        elif msg.msg_type == KrbMsg.KRB_ERROR and msg.error_code in _WATCHED and ev.sport == KERBEROS_PORT:
            asked = self._asked.get((ev.dst, ev.src))
            principal = f"{msg.cname}@{(msg.crealm or msg.realm or '').upper()}" if msg.cname else asked
            if principal is None:
                return
            entry = self.principals.get(principal.lower())
            if entry is None:
                if len(self.principals) >= MAX_PRINCIPALS:
                    return
                entry = self.principals[principal.lower()] = PrincipalFailures(principal)
            source = entry.sources.get(ev.dst)
            if source is None:
                if len(entry.sources) >= self.max_sources:
                    return
                source = entry.sources[ev.dst] = Source(ev.dst)
            if msg.error_code == KrbError.KDC_ERR_PREAUTH_FAILED:
                source.failures += 1
            else:
                source.revoked += 1
            entry.kdcs.add(ev.src)
            if len(source.frames) < MAX_FRAMES:
                source.frames.append(ev.frame)


def _first_failure(entry: PrincipalFailures) -> int:
    """The frame of the principal's first failure that the watch kept."""
    return min((s.frames[0] for s in entry.sources.values() if s.frames), default=0)


def merge(parts: Iterable[Iterable[PrincipalFailures]]) -> list[PrincipalFailures]:
    """The failures that processes watching a part of the clients each (`kerbtrace.partition`: a source address
    is one part's client) recorded, as one watch over every client records them: principals and their sources in
    the order of their first failure, at most `MAX_SOURCES` sources of each: each part kept the first of its own
    (a source is one part's), so the cut leaves the sources one watch keeps. The first `MAX_PRINCIPALS`
    principals are kept too, but past that cap (4,096 principals with failures) a part may have kept a principal
    that one watch would not have, and dropped another; and the KDCs are those of every part's failures."""
    merged: dict[str, PrincipalFailures] = {}
    for part in parts:
        for entry in part:
            into = merged.setdefault(entry.principal.lower(), PrincipalFailures(entry.principal))
            into.sources.update({a: dataclasses.replace(s, frames=list(s.frames)) for a, s in entry.sources.items()})
            into.kdcs |= entry.kdcs
    for entry in merged.values():
        first = sorted(entry.sources.values(), key=lambda s: s.frames[0] if s.frames else 0)[:MAX_SOURCES]
        entry.sources = {s.address: s for s in first}
    return sorted(merged.values(), key=_first_failure)[:MAX_PRINCIPALS]


__all__ = ["LockoutWatch", "PrincipalFailures", "Source", "merge"]
