"""Findings across all clients, computed after the last one: where a fault lies for many at once.

- `lockout_sources`: the addresses that send failed pre-authentications for the same principal (seed
  000: a changed connection-account password locks the account for every client still using the old one).
- `fleet_common_cause`: many clients fail the same way at one MP, or for one principal: the fault is
  there, not in each client.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from kerbtrace.checks.base import Evidence
from kerbtrace.checks.common import is_computer_account
from kerbtrace.constants import Severity, Verdict
from kerbtrace.exchanges.lockouts import PrincipalFailures

LOCKOUT_SOURCES = "lockout_sources"
COMMON_CAUSE = "fleet_common_cause"
FLEET_CODES = (LOCKOUT_SOURCES, COMMON_CAUSE)
MIN_CLIENTS = 3  # clients failing the same way before the fault is named at the MP / principal
MAX_LISTED = 50
_LOCKOUT_FIX = ("Update the password where each source stores it (client connection account, application pool, "
                "service, scheduled task, mapped drive) or stop the stale process, then unlock the account; the "
                "DCs' 4740 events name the lockout source as the DC saw it.")


@dataclass(slots=True)
class FleetFinding:
    code: str
    severity: str
    summary: str
    fix: str = ""
    input: int | None = 0  # the capture file; None for a finding from the DC's log alone
    subject: str = ""  # the principal or the MP the finding is about
    cause: str | None = None  # fleet_common_cause: the clients' shared primary cause
    sources: list[dict] = field(default_factory=list)  # lockout_sources: {"address", "failures", "revoked", "frames"}
    clients: list[str] = field(default_factory=list)  # fleet_common_cause: client addresses
    evidence: list[Evidence] = field(default_factory=list)

    def as_json(self) -> dict:
        out = {"code": self.code, "severity": self.severity, "summary": self.summary, "fix": self.fix,
               "input": self.input, "subject": self.subject}
        if self.code == LOCKOUT_SOURCES:
            out.update(principal=self.subject, sources=[s["address"] for s in self.sources],
                       source_counts=self.sources)
        else:
            out.update(cause=self.cause, clients=self.clients)
        out["evidence"] = [e.as_json() for e in self.evidence]
        return out


def lockout_sources(principals: Iterable[PrincipalFailures], input_index: int = 0) -> list[FleetFinding]:
    """A principal with failed pre-authentications from two or more addresses, or used from two or more
    addresses and locked after failed pre-authentications. (One computer whose own account fails is that
    client's account_revoked / preauth_failed, not a fleet finding.)"""
    out = []
    for entry in principals:
        failing = [s for s in entry.sources.values() if s.failures]
        if not failing or (len(failing) < 2 and not (entry.revoked and len(entry.sources) >= 2)):
            continue
        failing.sort(key=lambda s: (-s.failures, s.address))
        kind = "computer account" if is_computer_account(entry.principal) else "user account"
        listed = ", ".join(f"{s.address} ({s.failures})" for s in failing[:10])
        more = f" and {len(failing) - 10} more" if len(failing) > 10 else ""
        locked = (f"; the KDC then refused it {entry.revoked} time(s) with KDC_ERR_CLIENT_REVOKED (locked out)"
                  if entry.revoked else "")
        out.append(FleetFinding(
            LOCKOUT_SOURCES, Severity.ERROR,
            f"The {kind} {entry.principal} failed pre-authentication {entry.failures} time(s) from "
            f"{len(failing)} address(es): {listed}{more}{locked}. Each of these still uses an old password.",
            fix=_LOCKOUT_FIX,
            input=input_index, subject=entry.principal,
            sources=[{"address": s.address, "failures": s.failures, "revoked": s.revoked, "frames": list(s.frames)}
                     for s in failing[:MAX_LISTED]],
            evidence=[Evidence(s.frames[0], f"KDC_ERR_PREAUTH_FAILED for {entry.principal} to {s.address}")
                      for s in failing[:MAX_LISTED] if s.frames]))
    return out


def merge_lockouts(fleet: list[FleetFinding], dc_sources: Iterable) -> list[FleetFinding]:
    """The DC's lockout sources (`context.dc_join.LockoutSource`) joined to the capture's: a principal the
    capture already names gets the DC's addresses and events added; another one that failed from two or more
    addresses, or a user account the DC locked, becomes a finding of its own (`input` None: the DC's log is
    not one capture's). One computer failing for its own account is that client's cause, not the fleet's."""
    out = list(fleet)
    by_principal = {f.subject.lower().split("@")[0]: f for f in out if f.code == LOCKOUT_SOURCES}
    for source in dc_sources:
        key = source.principal.lower().split("@")[0].split("\\")[-1]
        addresses = [{"address": a, "failures": n, "revoked": 0, "frames": [], "origin": "dc_event"}
                     for a, n in source.addresses[:MAX_LISTED]]
        known = by_principal.get(key)
        if known is not None:
            seen = {s["address"] for s in known.sources}
            known.sources += [a for a in addresses if a["address"] not in seen]
            known.evidence += source.evidence
            known.summary += (f" The DC's log shows {source.failures} failed pre-authentication(s) for it from "
                              + ", ".join(f"{a} ({n})" for a, n in source.addresses[:10]) + ".")
            continue
        if len(source.addresses) < 2 and (is_computer_account(source.principal) or not source.locked):
            continue
        kind = "computer account" if is_computer_account(source.principal) else "user account"
        listed = ", ".join(f"{a} ({n})" for a, n in source.addresses[:10])
        more = f" and {len(source.addresses) - 10} more" if len(source.addresses) > 10 else ""
        locked = "; the DC then refused it (locked out)" if source.locked else ""
        finding = FleetFinding(
            LOCKOUT_SOURCES, Severity.ERROR,
            f"The DC's log shows the {kind} {source.principal} failing pre-authentication {source.failures} time(s) "
            f"from {len(source.addresses)} address(es): {listed}{more}{locked}. Each of these still uses an old "
            "password.",
            fix=_LOCKOUT_FIX, input=None, subject=source.principal, sources=addresses, evidence=list(source.evidence))
        out.append(finding)
        by_principal[key] = finding
    return out


def common_cause(results: Iterable, input_index: int = 0, reported: Iterable[str] = ()) -> list[FleetFinding]:
    """`results`: ClientResult-like objects (client, verdict, primary) of one input; `reported`: principals a
    lockout_sources finding already names (the fault is the account: not said twice, nor blamed on the MP)."""
    known = {p.lower() for p in reported}
    # each failing client as (number, address, its cause's first evidence): the results may be read from disk
    # one by one (kerbtrace.spill), so none is kept whole
    by_mp: dict[tuple[str, str], list[tuple[int, str, list]]] = defaultdict(list)
    by_account: dict[tuple[str, str], list[tuple[int, str, list]]] = defaultdict(list)
    for number, r in enumerate(results):
        primary = r.primary
        if r.verdict == Verdict.APPROVED or primary is None or primary.severity != Severity.ERROR \
                or primary.candidates:
            continue  # a hedged cause stands for several: it is not one fault shared
        mine = (number, r.client.ip, primary.evidence[:1])
        mp = r.client.mp_name or r.client.mp_ip
        if mp and (r.client.account or "").lower() not in known:
            by_mp[(mp, primary.code)].append(mine)
        account = r.client.account
        if account and not is_computer_account(account):
            if account.lower() in known:
                continue
            by_account[(account, primary.code)].append(mine)
    out = []
    groups = [(f"the account {s}", s, c, g) for (s, c), g in by_account.items() if len(g) >= 2]
    by_user = {m[0] for _, _, _, g in groups for m in g}
    for (s, c), g in by_mp.items():
        g = [m for m in g if m[0] not in by_user]  # a shared user account explains them, not the MP
        if len(g) >= MIN_CLIENTS:
            groups.append((f"the MP {s}", s, c, g))
    for where, subject, code, group in groups:
        ips = sorted({ip for _, ip, _ in group})
        out.append(FleetFinding(
            COMMON_CAUSE, Severity.WARNING,
            f"{len(ips)} clients fail with the same cause ({code}) at {where}: the fault is most likely there, "
            "not in each client.",
            fix=f"Fix {code} once for {where} (see the {code} finding of any of these clients).",
            input=input_index, subject=subject, cause=code, clients=ips[:MAX_LISTED],
            evidence=[e for _, _, first in group[:3] for e in first]))
    return out


__all__ = ["COMMON_CAUSE", "FLEET_CODES", "LOCKOUT_SOURCES", "FleetFinding", "common_cause", "lockout_sources",
           "merge_lockouts"]
