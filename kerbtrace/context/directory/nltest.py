"""``nltest /domain_trusts [/v] [/all_trusts]`` output, read leniently.

Shape (public outputs; flags from Samba's netlogon.idl NETR_TRUST_FLAG_*)::

    List of domain trusts:
        0: CHILD child.corp.lab (NT 5) (Forest: 1) (Direct Outbound) (Direct Inbound) ( Attr: withinforest )
           Dom Guid: 0b4bd1a8-...
           Dom Sid: S-1-5-21-...
        1: CORP corp.lab (NT 5) (Forest Tree Root) (Primary Domain) (Native)
        2: FABRIKAM fabrikam.com (NT 5) (Direct Outbound) ( Attr: foresttrans )
    The command completed successfully

"(NT 5)" is an Active Directory (uplevel) trust, "(NT 4)" a downlevel one, "(MIT)" a Kerberos realm.
"(Primary Domain)" is the local domain itself, not a trust. A domain with "(Forest: n)" and no
"Direct" flag belongs to the same forest and is reached through the forest's own trusts.
"""

from __future__ import annotations

import re

from kerbtrace import codes
from kerbtrace.context.directory.model import DirectoryFacts, Trust

_ENTRY = re.compile(r"^\s*(?P<idx>\d+):\s+(?P<flat>[^\s(]+)(?:\s+(?P<dns>[^\s(]+))?\s*(?P<rest>.*)$")
_GROUP = re.compile(r"\(([^()]*)\)")
_TYPES = {"nt 5": 2, "nt 4": 1, "mit": 3}
_DETAIL = re.compile(r"^\s*(Dom Guid|Dom Sid|Trust Partner|Trust Type|Trust Attr)\s*:", re.I)
_DONE = re.compile(r"^\s*The command completed successfully\.?\s*$", re.I)
_FAILED = re.compile(r"(failed|Status = \d+|ERROR_|RPC_S_)", re.I)


def looks_like_nltest(text: str) -> bool:
    head = text[:4000].lower()
    return "list of domain trusts" in head or bool(re.search(r"^\s*\d+:\s+\S+.*\((nt 5|nt 4|mit)\)", head, re.M))


def parse_nltest(text: str, source: str) -> DirectoryFacts:
    facts = DirectoryFacts(sources=[source])
    listed = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or _DETAIL.match(line) or _DONE.match(line) or line.lower().startswith("nltest"):
            continue
        if line.lower().startswith("list of domain trusts"):
            listed = True
            continue
        if m := _ENTRY.match(raw):
            trust, primary = _entry(m, f"{source} line {n}", facts.problems)
            if primary:
                facts.domain = trust.name.lower()
            else:
                facts.add_trust(trust)
            continue
        if ">" in line and "nltest" in line.lower():
            continue  # a pasted prompt
        if _FAILED.search(line):
            facts.problems.append(f"{source} line {n}: nltest reported: {line[:160]}")
            continue
        facts.problems.append(f"{source} line {n}: not nltest /domain_trusts output, skipped: {line[:80]!r}")
    facts.trusts_read = listed and not any("nltest reported" in p for p in facts.problems)
    return facts


def _entry(m: re.Match, place: str, problems: list[str]) -> tuple[Trust, bool]:
    flat, dns = m.group("flat"), m.group("dns")
    groups = [g.strip() for g in _GROUP.findall(m.group("rest"))]
    lowered = [g.lower() for g in groups]
    trust_type = next((_TYPES[g] for g in lowered if g in _TYPES), None)
    outbound = "direct outbound" in lowered
    inbound = "direct inbound" in lowered
    attributes: int | None = None
    for g in groups:
        if g.lower().startswith("attr:"):
            attributes = 0
            for word in g[5:].split():
                bit = codes.NLTEST_TRUST_ATTRIBUTE_WORDS.get(word.lower())
                if bit is None:
                    problems.append(f"{place}: unknown trust attribute word {word!r} ignored")
                else:
                    attributes |= bit
    in_forest = any(g.startswith("forest:") or g == "forest tree root" for g in lowered)
    direct = outbound or inbound
    if attributes is None and direct:
        attributes = 0x20 if in_forest else 0  # nltest prints no Attr for a trust with none set
    direction = (1 if inbound else 0) | (2 if outbound else 0) if direct else None
    trust = Trust(
        name=(dns or flat).lower(),
        flat_name=flat,
        trust_type=trust_type,
        direction=direction,
        attributes=attributes if direct else (0x20 if in_forest else None),
        direct=direct or not in_forest,
        source=place,
    )
    return trust, "primary domain" in lowered
