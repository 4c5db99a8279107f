"""The one place that decides a client's verdict and the order of its findings.

Checks only answer "does my cause apply, and what proves it"; here the verdict is read from the MP's
answer (or from what a partial view allows), findings are ordered so the primary cause comes first, and
a client that is not approved always gets a cause. Findings are never changed in place: a finding whose
severity the verdict changes is a new one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import ModuleType

from kerbtrace.checks import (
    account_revoked,
    approval_pending,
    clock_skew,
    dns_failure,
    duplicate_guid,
    etype_unsupported,
    incomplete_capture,
    kdc_unreachable,
    mp_http_error,
    no_kerberos_attempt,
    no_ticket_kdc_not_visible,
    no_trust_path,
    ntlm_fallback,
    ok,
    preauth_failed,
    registration_encrypted,
    spn_duplicate,
    spn_missing,
    spn_wrong_account,
    ticket_key_mismatch,
    trust_broken,
)
from kerbtrace.checks.base import Context, Evidence, Finding, Statement
from kerbtrace.checks.common import approved, exchange_steps
from kerbtrace.codes import krb_error
from kerbtrace.constants import Cause, DcSaw, Severity, Verdict
from kerbtrace.exchanges.client import ClientExchange

#: Precedence: when several causes apply, the earliest in this list is the primary one
#: (a root cause before its consequences: a missing SPN before the NTLM fallback it causes).
CHECKS: tuple[ModuleType, ...] = (
    ok,
    mp_http_error,
    dns_failure,
    kdc_unreachable,
    account_revoked,
    preauth_failed,
    clock_skew,
    trust_broken,
    no_trust_path,
    spn_duplicate,
    spn_missing,
    etype_unsupported,
    spn_wrong_account,
    ticket_key_mismatch,
    duplicate_guid,
    no_ticket_kdc_not_visible,
    ntlm_fallback,
    no_kerberos_attempt,
    approval_pending,
    registration_encrypted,
    incomplete_capture,
)
#: Not a check of its own: the finding `evaluate` adds when a client is not approved and no check
#: explains why, so that a verdict never comes without a cause.
UNEXPLAINED = Cause.UNEXPLAINED
CAUSE_CODES = tuple(m.CODE for m in CHECKS) + (UNEXPLAINED,)
_ORDER = {code: i for i, code in enumerate(CAUSE_CODES)}
_SEVERITY = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
#: Findings that describe the view, not a cause: they never explain a verdict on their own.
_VIEW_NOTES = frozenset({incomplete_capture.CODE})


def verdict_of(client: ClientExchange) -> Verdict:
    """approved / not_approved / inconclusive, from what the MP answered (or the client never reached it)."""
    state = approved(client)
    if state is True:
        return Verdict.APPROVED
    if state is False:
        return Verdict.NOT_APPROVED
    return Verdict.INCONCLUSIVE


def _run(module: ModuleType, client: ClientExchange, ctx: Context) -> Finding | None:
    finding = module.check(client, ctx)
    if finding is not None and not finding.references:
        finding = dataclasses.replace(finding, references=list(module.REFERENCES))
    return finding


def evaluate(client: ClientExchange, ctx: Context) -> tuple[Verdict, list[Finding]]:
    """The verdict and the findings, primary first, the exchange's steps in the primary's evidence."""
    verdict, findings = judge(client, ctx)
    return verdict, with_steps(findings, steps_of(client))


def judge(client: ClientExchange, ctx: Context) -> tuple[Verdict, list[Finding]]:
    """`evaluate` without the steps (`with_steps` adds them; `late_findings` may change the primary)."""
    findings = [f for f in (_run(m, client, ctx) for m in CHECKS) if f is not None]
    verdict = verdict_of(client)
    if verdict == Verdict.INCONCLUSIVE and not client.legs and any(f.severity == Severity.ERROR for f in findings):
        # It never reached the MP in clear (KDC side, HTTPS, a failed lookup) and an error stopped it
        # before: without Kerberos it cannot be approved as a computer of a trusted domain.
        verdict = Verdict.NOT_APPROVED
    if verdict != Verdict.APPROVED:
        findings = [f for f in findings if f.code != ok.CODE]
        explained = any(f.severity in (Severity.ERROR, Severity.WARNING) and f.code not in _VIEW_NOTES
                        for f in findings)
        if not explained and (verdict == Verdict.NOT_APPROVED or not findings):
            findings.append(_unexplained(client, verdict))
    return verdict, order(verdict, findings)


def steps_of(client: ClientExchange) -> list[Evidence]:
    """The steps of the exchange that lead to the verdict, in frame order (read before `client.release()`)."""
    return sorted(exchange_steps(client), key=lambda e: e.frame or 0)


def with_steps(findings: list[Finding], steps: Sequence[Evidence]) -> list[Finding]:
    """The findings with the primary cause's evidence followed by the steps it does not show already."""
    if not findings:
        return findings
    primary = findings[0]
    shown = {e.frame for e in primary.evidence}
    extra = []
    for e in steps:
        if e.frame not in shown:
            shown.add(e.frame)
            extra.append(e)
    return [dataclasses.replace(primary, evidence=[*primary.evidence, *extra]) if extra else primary, *findings[1:]]


def order(verdict: str, findings: list[Finding]) -> list[Finding]:
    """Primary cause first: `ok` for an approved client (whose errors did not stop it: warnings), else
    the most severe finding, by the precedence of CHECKS."""
    if verdict == Verdict.APPROVED:
        findings = [dataclasses.replace(f, severity=Severity.WARNING) if f.severity == Severity.ERROR else f
                    for f in findings]
        return sorted(findings, key=lambda f: (f.code != ok.CODE, _SEVERITY[f.severity], _ORDER[f.code]))
    return sorted(findings, key=lambda f: (_SEVERITY[f.severity], _ORDER[f.code]))


def late_findings(client: ClientExchange, verdict: str, findings: list[Finding], ctx: Context) -> list[Finding]:
    """The findings (`judge`'s, without steps) of a client checked before the capture ended, as if it was checked
    at the end: the duplicate GUID finding names every computer of the whole capture with its SMSID. (So a
    client's findings do not depend on when it was checked, nor on which process of a partitioned run did it.)"""
    late = _run(duplicate_guid, client, ctx)
    if late is None or late in findings:
        return findings
    kept = [f for f in findings if f.code not in (UNEXPLAINED, duplicate_guid.CODE)]  # the late cause explains it
    return order(verdict, [*kept, late])


#: A cause as the DC's log names it -> the check that stands for it (the lab names a lockout account_revoked).
_DC_CAUSES = {DcSaw.ACCOUNT_LOCKED: account_revoked.CODE}
_MODULES = {m.CODE: m for m in CHECKS}


def settle(verdict: str, findings: list[Finding], statements: Sequence[Statement] = (),
           lines: Sequence[Evidence] = (), events: Sequence[Evidence] = ()) -> tuple[list[Finding], list[Evidence]]:
    """The final findings once what lies beside the capture has spoken, and the evidence that supports no
    finding (it goes to the client's context).

    `lines`: the log lines joined to the client (IIS, MP, client logs): they show how the MP saw this
    registration, so they go with the primary cause of a client that was not approved (else context).
    `events`: the DC events matched to the client; those no statement uses are context.

    A cause the DC states joins the finding of the same code (its events become evidence there), or becomes
    a finding of its own: a client the capture could only hedge for (`no_ticket_kdc_not_visible`, seen from
    the MP) then gets the DC's specific cause as its primary one, and the hedge stays as a secondary note.
    An approved client keeps its verdict; what the DC says of it is context."""
    out = list(findings)
    context: list[Evidence] = []
    settled: set[str] = set()
    for statement in statements:
        code = _DC_CAUSES.get(statement.cause, statement.cause)
        if not statement.failure or code not in _MODULES or verdict == Verdict.APPROVED:
            context.extend(statement.evidence)
            continue
        at = next((i for i, f in enumerate(out) if f.code == code), None)
        if at is not None:
            known = {(e.file, e.line, e.text) for e in out[at].evidence}
            extra = [e for e in statement.evidence if (e.file, e.line, e.text) not in known]
            out[at] = dataclasses.replace(out[at], evidence=[*out[at].evidence, *extra],
                                          codes=list(dict.fromkeys([*out[at].codes, *statement.codes])))
        else:
            out.append(Finding(code, Severity.ERROR, statement.text, fix=_dc_fix(code), codes=list(statement.codes),
                               evidence=list(statement.evidence), references=list(_MODULES[code].REFERENCES)))
        settled.add(code)
    used = {(e.file, e.line) for s in statements for e in s.evidence}
    context.extend(e for e in events if (e.file, e.line) not in used)
    if settled:
        out = _settled(out, settled)
    ordered = order(verdict, out)  # the exchange's steps stay with the capture's own cause (now secondary)
    if lines and ordered and verdict != Verdict.APPROVED:
        ordered[0] = dataclasses.replace(ordered[0], evidence=[*ordered[0].evidence, *lines])
    elif lines:
        context.extend(lines)
    return ordered, context


def _settled(findings: list[Finding], settled: set[str]) -> list[Finding]:
    """A cause the DC settled explains the client: no `unexplained`, and a hedge it settles is a note."""
    out = [f for f in findings if f.code != UNEXPLAINED]
    out = [dataclasses.replace(f, severity=Severity.INFO, summary=f"{f.summary} (The DC's log settles it: "
                               f"{', '.join(sorted(settled & set(f.candidates)))}.)")
           if f.candidates and settled & set(f.candidates) else f for f in out]
    return out


def _dc_fix(code: str) -> str:
    """The usual fix of the Kerberos result the DC logged for `code` (from the shared code table)."""
    from kerbtrace.context.dc_join import CAUSE_BY_CODE  # here: the DC join itself imports the checks' types

    number = next((n for n, cause in CAUSE_BY_CODE.items() if cause == code), None)
    return krb_error(number).fix if number is not None else ""


def _unexplained(client: ClientExchange, verdict: Verdict) -> Finding:
    leg = client.final_leg
    evidence = [Evidence(leg.response_frame or leg.request_frame, f"last answer: HTTP {leg.status}")] if leg else []
    if verdict == Verdict.NOT_APPROVED:
        summary = ("The client is not approved and the capture shows no reason kerbtrace knows: see its timeline "
                   "(-v) and the MP's MP_RegistrationManager.log and IIS log for this client.")
    else:
        summary = ("The capture does not show how this client's registration ended, and nothing in it explains why: "
                   "see its timeline (-v) and the MP's MP_RegistrationManager.log and IIS log for this client.")
    return Finding(UNEXPLAINED, Severity.WARNING, summary,
                   fix="Check the site's client approval setting and the device's approval state in the console.",
                   evidence=evidence)


__all__ = ["CAUSE_CODES", "CHECKS", "UNEXPLAINED", "evaluate", "judge", "late_findings", "order", "settle", "steps_of",
           "verdict_of", "with_steps"]
