"""Checks: one module per cause, each a pure function `check(client, ctx) -> Finding | None`.

`evaluate` runs them all, decides the verdict from the MP's answer and orders the findings so the
primary cause comes first. A newcomer finds any cause's logic in the module named after its code.
"""

from __future__ import annotations

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
    no_trust_path,
    ntlm_fallback,
    ok,
    preauth_failed,
    spn_missing,
    spn_wrong_account,
    trust_broken,
)
from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import approved
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
    spn_missing,
    etype_unsupported,
    spn_wrong_account,
    duplicate_guid,
    ntlm_fallback,
    no_kerberos_attempt,
    approval_pending,
    incomplete_capture,
)
#: Not a check of its own: the finding `evaluate` adds when a client is not approved and no check
#: explains why, so that a verdict never comes without a cause.
UNEXPLAINED = "unexplained"
CAUSE_CODES = tuple(m.CODE for m in CHECKS) + (UNEXPLAINED,)
_ORDER = {code: i for i, code in enumerate(CAUSE_CODES)}
_SEVERITY = {"error": 0, "warning": 1, "info": 2}


def verdict_of(client: ClientExchange) -> str:
    """approved / not_approved / inconclusive, from what the MP answered (or the client never reached it)."""
    state = approved(client)
    if state is True:
        return "approved"
    if state is False:
        return "not_approved"
    return "inconclusive"


def _run(module: ModuleType, client: ClientExchange, ctx: Context) -> Finding | None:
    finding = module.check(client, ctx)
    if finding is not None and not finding.references:
        finding.references = list(module.REFERENCES)
    return finding


def evaluate(client: ClientExchange, ctx: Context) -> tuple[str, list[Finding]]:
    findings = [f for f in (_run(m, client, ctx) for m in CHECKS) if f is not None]
    verdict = verdict_of(client)
    errors = [f for f in findings if f.severity == "error"]
    if verdict == "inconclusive" and errors and not client.legs:
        verdict = "not_approved"  # it never reached the MP: nothing can have approved it
    if verdict != "approved":
        findings = [f for f in findings if f.code != "ok"]
        explained = any(f.severity in ("error", "warning") and f.code != "incomplete_capture" for f in findings)
        if verdict == "not_approved" and not explained:
            findings.append(_unexplained(client))
    return verdict, order(verdict, findings)


def order(verdict: str, findings: list[Finding]) -> list[Finding]:
    """Primary cause first: `ok` for an approved client (whose errors did not stop it: warnings), else
    the most severe finding, by the precedence of CHECKS."""
    if verdict == "approved":
        for f in findings:
            if f.severity == "error":
                f.severity = "warning"
        return sorted(findings, key=lambda f: (f.code != "ok", _SEVERITY[f.severity], _ORDER[f.code]))
    return sorted(findings, key=lambda f: (_SEVERITY[f.severity], _ORDER[f.code]))


def late_findings(client: ClientExchange, verdict: str, findings: list[Finding], ctx: Context) -> list[Finding]:
    """Findings that need the whole capture (duplicate GUIDs), for a client checked before it ended."""
    known = {f.code for f in findings}
    added = [f for f in (_run(duplicate_guid, client, ctx),) if f is not None and f.code not in known]
    if not added:
        return findings
    kept = [f for f in findings if f.code != UNEXPLAINED]  # the late cause explains it
    return order(verdict, kept + added)


def _unexplained(client: ClientExchange) -> Finding:
    leg = client.final_leg
    evidence = [Evidence(leg.response_frame or leg.request_frame, f"last answer: HTTP {leg.status}")] if leg else []
    return Finding(UNEXPLAINED, "warning",
                   "The client is not approved and the capture shows no reason kerbtrace knows: see its timeline "
                   "(-v) and the MP's MP_RegistrationManager.log and IIS log for this client.",
                   fix="Check the site's client approval setting and the device's approval state in the console.",
                   evidence=evidence)


__all__ = ["CAUSE_CODES", "CHECKS", "Context", "Finding", "evaluate", "late_findings", "order", "verdict_of"]
