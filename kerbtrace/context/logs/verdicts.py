"""Per-client verdicts from logs alone (no capture): what the IIS, MP and client logs say of each client.

Each source gives what it can see and no more. The IIS log shows whether and how the client authenticated
(`200` with `DOMAIN\\HOST$` after a single Negotiate leg is Kerberos; a `401.1` with SEC_E_NO_CREDENTIALS
before the `200` is a multi-leg handshake such as NTLM) but not the approval, which is in the MP's reply:
so an authenticated client is `inconclusive` from the IIS log alone, and a client that never got past the
`401` is `not_approved`. The MP's and the client's own logs state the approval when they carry it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from kerbtrace.checks.base import Evidence
from kerbtrace.constants import Verdict
from kerbtrace.context.logs.iis import describe_status, is_registration, leg_kind
from kerbtrace.context.logs.join import ccm_evidence, iis_evidence, mp_blocks
from kerbtrace.context.logs.load import LogContext
from kerbtrace.context.logs.messages import account_netbios, client_fact, guids
from kerbtrace.context.logs.records import LogRecord

MAX_EVIDENCE = 20  # per client and source: the last ones are kept


@dataclass(slots=True)
class LogVerdict:
    """One client as the logs describe it. `key` names it (NetBIOS name, else IP, else SMSID)."""

    key: str
    verdict: str  # approved | not_approved | inconclusive
    auth: str | None = None  # kerberos | ntlm | none | None (the logs do not say)
    ip: str | None = None
    netbios: str | None = None
    account: str | None = None
    smsid: str | None = None
    mp: str | None = None
    reasons: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    outcome_time: float | None = None  # when the deciding log line was written (log clock)

    def as_json(self) -> dict:
        return {"client": self.key, "verdict": self.verdict, "auth": self.auth, "ip": self.ip,
                "netbios": self.netbios, "account": self.account, "smsid": self.smsid, "mp": self.mp,
                "sources": list(self.sources), "reasons": list(self.reasons),
                "evidence": [e.as_json() for e in self.evidence]}


def _last_attempt(legs: list[LogRecord]) -> list[LogRecord]:
    """The legs from the last anonymous first request (challenge) on."""
    start = 0
    for i, rec in enumerate(legs):
        if leg_kind(rec) == "challenge":
            start = i
    return legs[start:]


def _iis_verdict(ip: str, legs: list[LogRecord]) -> LogVerdict:
    attempt = _last_attempt(legs)
    final = attempt[-1]
    kind = leg_kind(final)
    handshake = any(leg_kind(r) == "continue" for r in attempt[:-1])
    v = LogVerdict(ip, Verdict.NOT_APPROVED, ip=ip, mp=final.fields.get("s-ip"), sources=["iis"])
    v.evidence = [iis_evidence(r) for r in legs[-MAX_EVIDENCE:]]
    v.outcome_time = final.time
    user = final.fields.get("cs-username", "-")
    if kind == "success":
        v.verdict = Verdict.INCONCLUSIVE
        if user in ("", "-"):
            v.reasons.append("the MP answered 200 to an anonymous request; the client did not authenticate")
            v.auth = "none"
            return v
        v.account = user
        v.auth = "ntlm" if handshake else "kerberos"
        what = "a computer" if user.endswith("$") else "a user account, not the computer"
        how = ("after a multi-leg handshake (401.1 with SEC_E_NO_CREDENTIALS first): NTLM, which the MP does "
               "not auto-approve" if handshake
               else "with a single Negotiate leg: Kerberos (NTLM always needs a second leg)")
        v.reasons.append(f"authenticated as {user} ({what}) {how}; the approval itself is in the MP's reply, "
                         "not in the IIS log")
        if user.endswith("$"):
            v.netbios = account_netbios(user)
        return v
    if kind == "challenge":
        v.auth = "none"
        v.reasons.append("the client stopped at the MP's challenge (401.2): it never sent Kerberos or NTLM "
                         "credentials, so it is not authenticated")
    elif kind == "continue":
        v.auth = "ntlm"
        v.reasons.append("the multi-leg handshake (NTLM) did not complete: no 200 followed the 401.1")
    else:
        v.auth = "ntlm" if handshake else None
        v.reasons.append(f"the MP refused the registration request: {describe_status(final)}")
    return v


def _iis_verdicts(ctx: LogContext) -> list[LogVerdict]:
    legs: dict[str, list[LogRecord]] = defaultdict(list)
    for log in ctx.by_source("iis"):
        for rec in log.records:
            if is_registration(rec) and rec.fields.get("c-ip"):
                legs[rec.fields["c-ip"]].append(rec)
    out = []
    for ip, recs in legs.items():
        recs.sort(key=lambda r: (r.time or 0.0, r.line))
        out.append(_iis_verdict(ip, recs))
    return out


def _mp_verdicts(ctx: LogContext) -> list[LogVerdict]:
    out: dict[str, LogVerdict] = {}
    for log in ctx.by_source("mp_log"):
        for block in mp_blocks(log):
            key = block.names.get("netbios") or block.names.get("smsid")
            if not key:
                continue
            v = out.setdefault(key, LogVerdict(key, Verdict.INCONCLUSIVE, sources=["mp_log"]))
            v.netbios = block.names.get("netbios") or v.netbios
            v.smsid = v.smsid or (block.names.get("smsid") if not block.names.get("netbios") else None)
            v.account = block.names.get("account") or v.account
            for rec, fact in zip(block.records, block.facts, strict=True):
                if fact is None:
                    continue
                v.evidence.append(ccm_evidence(rec, fact))
                if fact.outcome is not None:
                    v.verdict, v.outcome_time = fact.outcome, rec.time
                    v.auth = fact.names.get("mech") or v.auth
                if fact.outcome is not None or fact.failure:
                    v.reasons.append(fact.what)
            v.evidence = v.evidence[-MAX_EVIDENCE:]
    return list(out.values())


def _client_verdicts(ctx: LogContext) -> list[LogVerdict]:
    folders: dict[str, list[LogRecord]] = defaultdict(list)
    for log in ctx.by_source("client_log"):
        folders[os.path.dirname(os.path.abspath(log.path))].extend(log.records)
    out = []
    for folder, records in folders.items():
        records.sort(key=lambda r: (r.time or 0.0, r.file, r.line))
        smsids: list[str] = []
        registered = False
        v = LogVerdict(folder, Verdict.INCONCLUSIVE, sources=["client_log"])
        for rec in records:
            text = rec.text
            smsids += [g for g in guids(text) if g not in smsids]
            fact = client_fact(text)
            if fact is None:
                continue
            v.evidence.append(ccm_evidence(rec, fact))
            registered = registered or "registered" in fact.what and "not registered" not in fact.what
            if fact.names.get("mp"):
                v.mp = fact.names["mp"]
            if fact.outcome is not None:
                v.verdict, v.outcome_time = fact.outcome, rec.time
                v.reasons.append(fact.what)
            elif fact.failure:
                v.reasons.append(fact.what)
        if not v.evidence:
            continue
        v.evidence = v.evidence[-MAX_EVIDENCE:]
        v.smsid = smsids[-1] if smsids else None
        v.key = v.smsid or folder
        if v.verdict == Verdict.INCONCLUSIVE and v.reasons and not registered:
            v.verdict = Verdict.NOT_APPROVED  # errors, and the client never says it is registered
        out.append(v)
    return out


def _merge(into: LogVerdict, other: LogVerdict) -> None:
    """`other` (MP or client log) says more about approval than the IIS log: its outcome wins."""
    into.sources += [s for s in other.sources if s not in into.sources]
    into.reasons += other.reasons
    into.evidence += other.evidence
    for name in ("netbios", "account", "smsid", "mp", "ip"):
        if getattr(into, name) is None:
            setattr(into, name, getattr(other, name))
    if other.verdict != Verdict.INCONCLUSIVE and (into.verdict == Verdict.INCONCLUSIVE or into.sources[0] == "iis"
                                            or (other.outcome_time or 0) >= (into.outcome_time or 0)):
        into.verdict, into.outcome_time = other.verdict, other.outcome_time
    if other.auth is not None:
        into.auth = other.auth


def log_verdicts(ctx: LogContext) -> list[LogVerdict]:
    """One verdict per client the logs mention, merged across the IIS, MP and client logs by NetBIOS name
    (IIS `cs-username`, MP log names) and SMSID."""
    merged = _iis_verdicts(ctx)
    by_name = {v.netbios: v for v in merged if v.netbios}
    for v in _mp_verdicts(ctx):
        target = by_name.get(v.netbios or "")
        if target is None:
            merged.append(v)
            if v.netbios:
                by_name[v.netbios] = v
        else:
            _merge(target, v)
    by_smsid = {v.smsid: v for v in merged if v.smsid}
    for v in _client_verdicts(ctx):
        target = by_smsid.get(v.smsid or "")
        if target is None:
            merged.append(v)
        else:
            _merge(target, v)
    for v in merged:
        v.key = v.netbios or v.ip or v.smsid or v.key
    return merged
