"""Directory facts from a DC that are fetched when a check first asks for them.

The SPNs a capture involves are known only once its clients are read, but the checks consult the
directory while they run. `OnlineDirectory` answers like `DirectoryFacts` and, for an SPN or account
it has not looked up yet, queries the DC first (once: the answer is cached, and a DC that stops
answering is not asked again, its error kept in `problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from kerbtrace.context.directory.ldap_source import DirectoryError
from kerbtrace.context.directory.model import Account, DirectoryFacts, SpnLookup, mp_spns, normalize_spn, split_spn

#: `fetch(spns, accounts)`: one LDAP query (`query_ldap` with the run's options bound).
Fetch = Callable[[Iterable[str], Iterable[str]], DirectoryFacts]
MAX_QUERIES = 200  # a capture with thousands of HTTP SPNs must not turn into thousands of LDAP searches


@dataclass(slots=True)
class OnlineDirectory(DirectoryFacts):
    """`DirectoryFacts` that queries the DC for what it has not asked yet, on first use."""

    online: ClassVar[bool] = True

    fetch: Fetch | None = None
    asked: set[str] = field(default_factory=set)
    queries: int = 0

    def lookup(self, spn: str) -> SpnLookup:
        _cls, host, _port = split_spn(spn)
        key = normalize_spn(spn)
        if not self.complete_spns and key not in self.searched_spns:
            self._ask(f"spn:{key}", lambda: self._fetch((key, *mp_spns(host)), ()))
        return DirectoryFacts.lookup(self, spn)

    def account(self, name: str) -> Account | None:
        found = DirectoryFacts.account(self, name)
        if found is None:
            self._ask(f"account:{name.lower()}", lambda: self._fetch((), (name,)))
            found = DirectoryFacts.account(self, name)
        return found

    def _ask(self, what: str, query: Callable[[], DirectoryFacts | None]) -> None:
        if self.fetch is None or what in self.asked:
            return
        self.asked.add(what)
        if self.queries >= MAX_QUERIES:
            if self.queries == MAX_QUERIES:
                self.problems.append(f"more than {MAX_QUERIES} directory lookups: the rest were not asked")
                self.queries += 1
            return
        self.queries += 1
        try:
            facts = query()
        except DirectoryError as exc:
            self.problems.append(f"directory lookup stopped: {exc}")
            self.fetch = None  # a DC that stopped answering is not asked again for every client
            return
        if facts is not None:
            sources = list(self.sources)
            self.merge(facts)
            self.sources = sources + [s for s in facts.sources if s not in sources]

    def _fetch(self, spns: Iterable[str], accounts: Iterable[str]) -> DirectoryFacts | None:
        return self.fetch(spns, accounts) if self.fetch is not None else None


def online_directory(first: DirectoryFacts, fetch: Fetch) -> OnlineDirectory:
    """Facts already known (files, the MPs' SPNs asked up front) that ask `fetch` for the rest."""
    out = OnlineDirectory(fetch=fetch)
    out.merge(first)
    return out
