"""``setspn -L``, ``setspn -Q`` and ``setspn -X`` output (Windows setspn.exe), read leniently.

Shapes (as setspn prints them; public outputs in Microsoft's Exchange troubleshooting article and
many admin write-ups)::

    Registered ServicePrincipalNames for CN=MP01,CN=Computers,DC=corp,DC=lab:     (-L)
            HOST/MP01.corp.lab

    Checking domain DC=corp,DC=lab                                                (-Q)
    CN=svc-web,CN=Users,DC=corp,DC=lab
            HTTP/mp01.corp.lab
    Existing SPN found!            |   No such SPN found.

    Checking domain DC=corp,DC=lab                                                (-X)
    Processing entry 0
    HTTP/mp02.corp.lab is registered on these accounts:
            CN=MP02,CN=Computers,DC=corp,DC=lab
            CN=svc-a,CN=Users,DC=corp,DC=lab
    found 1 group of duplicate SPNs.

setspn does not print which SPN ``-Q`` looked for, so "No such SPN found." only counts for an SPN when
the pasted text holds the command line (``C:\\> setspn -Q HTTP/mp03``); otherwise a problem says so.
setspn names accounts by DN only: the kind (computer/user) is inferred from the container and the SPNs
and marked ``unknown`` when neither tells.
"""

from __future__ import annotations

import re

from kerbtrace.context.directory.entries import domain_of
from kerbtrace.context.directory.model import COMPUTER, UNKNOWN, Account, DirectoryFacts, normalize_spn

_COMMAND = re.compile(r"setspn(?:\.exe)?\s+(?P<args>.*)$", re.I)
_REGISTERED_FOR = re.compile(r"^Registered ServicePrincipalNames for (?P<dn>.+?):?\s*$", re.I)
_CHECKING = re.compile(r"^Checking (?:domain|forest) (?P<dn>DC=.+?)\s*$", re.I)
_DUP_HEAD = re.compile(r"^(?P<spn>\S+/\S+) is registered on these accounts:\s*$", re.I)
_FOUND_GROUPS = re.compile(r"^found (?P<n>\d+) groups? of duplicate SPNs?\.?\s*$", re.I)
_DN = re.compile(r"(?P<dn>(?:CN|OU)=[^\t]*?DC=[^\s]+)\s*$", re.I)
_SPN = re.compile(r"^[\w.-]+/\S+$")
_NOISE = re.compile(
    r"^(Processing entry \d+|Existing SPN found!?|Operation will be performed forestwide.*|"
    r"The command completed successfully\.?|Updated object)\s*$", re.I)
_FAILURE = re.compile(r"(No such SPN found|FindDomainForAccount|Could not find account|Ldap Error|"
                      r"failed with|Access is denied|Duplicate SPN found)", re.I)


def looks_like_setspn(text: str) -> bool:
    head = text[:4000].lower()
    return any(m in head for m in ("registered serviceprincipalnames for", "checking domain dc=",
                                   "checking forest dc=", "existing spn found", "no such spn found",
                                   "group of duplicate spn", "is registered on these accounts"))


def parse_setspn(text: str, source: str) -> DirectoryFacts:
    facts = DirectoryFacts(sources=[source])
    owners: dict[str, list[str]] = {}  # DN -> SPNs, in order
    dup_spn: str | None = None
    dup_dns: list[str] = []
    current_dn: str | None = None  # account whose SPNs follow (indented)
    queried: list[str] = []  # SPNs named on a "setspn -Q" command line not yet answered
    declared_groups: int | None = None

    def close_dup() -> None:
        nonlocal dup_spn, dup_dns
        if dup_spn is not None:
            facts.duplicate_groups.append((dup_spn, tuple(dup_dns)))
            for dn in dup_dns:
                owners.setdefault(dn, []).append(dup_spn)
        dup_spn, dup_dns = None, []

    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        indented = line[:1] in (" ", "\t")
        if (m := _COMMAND.search(stripped)) and not indented:
            close_dup()
            current_dn = None
            queried = _query_spns(m.group("args"))
            continue
        if m := _REGISTERED_FOR.match(stripped):
            close_dup()
            current_dn = m.group("dn")
            owners.setdefault(current_dn, [])
            continue
        if m := _CHECKING.match(stripped):
            facts.domain = facts.domain or domain_of(m.group("dn"))
            continue
        if m := _DUP_HEAD.match(stripped):
            close_dup()
            current_dn = None
            dup_spn = m.group("spn")
            continue
        if m := _FOUND_GROUPS.match(stripped):
            close_dup()
            declared_groups = (declared_groups or 0) + int(m.group("n"))
            continue
        if stripped.lower().startswith("no such spn found"):
            if queried:
                facts.searched_spns.update(normalize_spn(s) for s in queried)
                queried = []
            else:
                facts.problems.append(f"{source} line {n}: 'No such SPN found.' without the setspn -Q command "
                                      "line: which SPN is missing is not known (paste the command too)")
            continue
        if stripped.lower().startswith("existing spn found"):
            facts.searched_spns.update(normalize_spn(s) for s in queried)
            queried = []
            continue
        if _NOISE.match(stripped):
            continue
        if dup_spn is not None and indented and (m := _DN.search(stripped)):
            dup_dns.append(m.group("dn"))
            continue
        if not indented and (m := _DN.fullmatch(stripped)):
            close_dup()
            current_dn = m.group("dn")
            owners.setdefault(current_dn, [])
            continue
        if indented and current_dn is not None and _SPN.match(stripped):
            owners[current_dn].append(stripped)
            continue
        if _FAILURE.search(stripped):
            facts.problems.append(f"{source} line {n}: setspn reported: {stripped[:160]}")
            continue
        facts.problems.append(f"{source} line {n}: not setspn output, skipped: {stripped[:80]!r}")
    close_dup()
    if declared_groups is not None and declared_groups != len(facts.duplicate_groups):
        facts.problems.append(f"{source}: setspn -X announced {declared_groups} duplicate group(s), "
                              f"{len(facts.duplicate_groups)} listed")
    for dn, spns in owners.items():
        facts.add_account(Account(dn=dn, kind=_infer_kind(dn, spns), spns=tuple(dict.fromkeys(spns)),
                                  source=source))
    return facts


def _query_spns(args: str) -> list[str]:
    """The exact SPNs of a ``setspn -Q`` command line (wildcard patterns do not say what is missing)."""
    words = args.split()
    if not any(w.lower() in ("-q", "/q") for w in words):
        return []
    return [w for w in words if "/" in w and not w.startswith(("-", "/")) and "*" not in w]


def _infer_kind(dn: str, spns: list[str]) -> str:
    """Computer when the DN sits in a computers container or the account has its own HOST/<cn> SPN (set
    for every computer at join); otherwise unknown — setspn does not say."""
    lowered = dn.lower()
    if ",cn=computers," in lowered or ",ou=domain controllers," in lowered:
        return COMPUTER
    cn = dn.split(",", 1)[0].split("=", 1)[-1].lower()
    if any(normalize_spn(s) in (f"host/{cn}", f"restrictedkrbhost/{cn}") for s in spns):
        return COMPUTER
    return UNKNOWN
