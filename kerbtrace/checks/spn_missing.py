"""spn_missing: the KDC of the MP's own realm (or its forest) does not know the MP's HTTP SPN.

KDC_ERR_S_PRINCIPAL_UNKNOWN for HTTP/<mp>; Windows Negotiate then falls back to NTLM, and an
NTLM-authenticated client is not auto-approved as a computer of a trusted domain.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import kerberos_accepted, mp_service_errors, ntlm_legs, realm_related, referrals
from kerbtrace.codes import krb_error
from kerbtrace.constants import Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = "spn_missing"
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Kerberos error KDC_ERR_S_PRINCIPAL_UNKNOWN or KDC_ERR_PRINCIPAL_NOT_UNIQUE (Microsoft support article)',
    'setspn (Windows Server command reference)',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = mp_service_errors(client, (7,))
    if not errors:
        return None
    error = errors[-1]
    mp_realm = client.mp_realm
    answered_by = (error.rep.realm if error.rep is not None else None) or error.realm
    # In the MP's realm, or in a realm of the same tree that would have referred a known SPN.
    if not (realm_related(answered_by, mp_realm) or referrals(client) or mp_realm is None):
        return None
    evidence = [Evidence(error.frame, f"{answered_by} KDC {error.kdc_ip}: KDC_ERR_S_PRINCIPAL_UNKNOWN for "
                                      f"{error.sname}")]
    for leg in ntlm_legs(client)[:1]:
        evidence.append(Evidence(leg.request_frame, "client fell back to NTLM"))
    return Finding(
        CODE, Severity.ERROR,
        f"The {answered_by or ''} KDC found no single account holding the SPN {error.sname} (it is missing, or "
        "registered twice): the client could not get a Kerberos ticket for the MP"
        + (" and fell back to NTLM" if ntlm_legs(client) else "") + ", so it cannot be auto-approved.",
        fix=f"Check with `setspn -Q {error.sname}`. Normally HTTP/<mp> is served by HOST/<mp fqdn> on the MP "
            "computer account: make sure the MP's HOST SPNs exist (`setspn -L <MP>`), that clients use the "
            "MP's real FQDN (not a CNAME/alias without an SPN), and that no duplicate blocks the lookup "
            "(`setspn -X`). Clients cache the failure for 15 minutes (klist purge -li 0x3e7).",
        codes=[krb_error(7).label()], evidence=evidence)
