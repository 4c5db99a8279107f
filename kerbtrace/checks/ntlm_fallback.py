"""ntlm_fallback: the client authenticated (or tried) to the MP with NTLM instead of Kerberos.

The MP accepts NTLM, but only a computer authenticated with Kerberos is auto-approved as a computer
of a trusted domain. Usually a consequence of a Kerberos failure found by another check.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import kerberos_accepted, ntlm_legs
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.NTLM_FALLBACK
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "CSS article 'how client approval works': only Kerberos-authenticated clients are approved automatically",
    'Windows Authentication HTTP request flow in IIS (Negotiate: Kerberos, then NTLM)',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    legs = ntlm_legs(client)
    if not legs or kerberos_accepted(client):
        return None
    who = ""
    for leg in legs:
        if leg.token is not None and leg.token.ntlm is not None and leg.token.ntlm.user:
            who = f" as {leg.token.ntlm.domain or ''}\\{leg.token.ntlm.user}"
    final = legs[-1]
    tried_kerberos = bool(client.mp_spn_exchanges())
    if final.status == 200:
        summary = f"The client authenticated to the MP with NTLM{who} instead of Kerberos."
    elif final.status is None:
        summary = f"The client tried NTLM{who}; the MP's answer is not in the capture."
    else:
        summary = f"The client tried NTLM{who} and the MP rejected it (HTTP {final.status})."
    summary += " Only computers authenticated with Kerberos are auto-approved as computers of a trusted domain."
    if not tried_kerberos:
        summary += (" No Kerberos request for the MP's SPN is in the capture: the client may hold a cached "
                    "negative SPN result (15 minutes) or use an address/alias the SPN does not match.")
    return Finding(
        CODE, Severity.ERROR, summary,
        fix="Find why Kerberos failed (see the other findings for this client); make the client use the MP's FQDN; "
            "as a stop-gap approve the client manually in the console.",
        codes=[],
        evidence=[Evidence(leg.request_frame, "Authorization: Negotiate/NTLM carrying NTLMSSP") for leg in legs[-3:]])
