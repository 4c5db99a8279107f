"""no_trust_path: the MP is in another realm and the client's KDC gave no referral to it.

Kerberos across an external trust is not supported (no name-suffix routing), nor between forests
without a forest trust: the client's DC answers KDC_ERR_S_PRINCIPAL_UNKNOWN for HTTP/<mp> instead of
a referral TGT, and the client cannot be auto-approved.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import (
    kdc_errors,
    kerberos_accepted,
    mp_service_errors,
    ntlm_legs,
    realm_related,
    referrals,
)
from kerbtrace.codes import krb_error
from kerbtrace.constants import KrbError, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = "no_trust_path"
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "CSS article 'how client approval works': client and MP in domains with only an external trust",
    'Forest trusts: Kerberos across forests (technet cc773178)',
    'KB 2008039: logon over an external trust uses NTLM',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client) or referrals(client):
        return None
    errors = mp_service_errors(client, (7,))
    mp_realm = client.mp_realm
    if not errors or mp_realm is None:
        return None
    error = errors[-1]
    answered_by = (error.rep.realm if error.rep is not None else None) or error.realm
    if realm_related(answered_by, mp_realm):
        return None
    evidence = [Evidence(error.frame, f"{answered_by} KDC {error.kdc_ip} has no referral for {error.sname}: "
                                      "KDC_ERR_S_PRINCIPAL_UNKNOWN")]
    # the client then asks for a TGT of the MP's realm itself: the refusal shows there is no trust path
    evidence += [Evidence(ex.frame, f"{answered_by} KDC {ex.kdc_ip}: KDC_ERR_S_PRINCIPAL_UNKNOWN for {ex.sname}")
                 for ex in kdc_errors(client, (KrbError.KDC_ERR_S_PRINCIPAL_UNKNOWN,))
                 if (ex.sname or "").upper() == f"KRBTGT/{mp_realm}"]
    for leg in ntlm_legs(client)[:1]:
        evidence.append(Evidence(leg.request_frame, "client fell back to NTLM"))
    guessed = client.mp_realm_from_ticket is None
    hedge = (f" (the MP's realm is read from its DNS name; if {client.mp_name} is in the client's forest under a "
             "disjoint DNS namespace, the SPN is missing instead — check `setspn -Q` as well)") if guessed else ""
    return Finding(
        CODE, Severity.ERROR,
        f"The client's realm {answered_by} has no Kerberos trust path to the MP's realm {mp_realm}: its KDC "
        f"answered KDC_ERR_S_PRINCIPAL_UNKNOWN for {error.sname} instead of a referral{hedge}. Only clients that "
        "authenticate with Kerberos are auto-approved; over an external trust (or none) that cannot happen.",
        fix="Use a two-way forest trust between the forests (Kerberos is supported across a forest trust, not an "
            "external trust), with name-suffix routing enabled for the MP's DNS suffix and DNS resolution both "
            "ways; otherwise approve these clients manually or use PKI/HTTPS.",
        codes=[krb_error(7).label()], evidence=evidence)
