"""no_ticket_kdc_not_visible: the client did not authenticate with Kerberos and the capture holds no KDC traffic.

Not visible means: the input holds no Kerberos on port 88 at all, and none of the client's own other
traffic (its DNS lookups) either. A capture taken on the MP shows the 401 challenge and what came back
(nothing, or NTLM), not why the client had no ticket. This hedged cause names what can produce it and
how to tell them apart, instead of claiming one.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import kerberos_accepted, ntlm_legs
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.NO_TICKET_KDC_NOT_VISIBLE
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "CSS article 'how client approval works': troubleshooting steps (capture on the client from before "
    "the SMS Agent Host starts)",
    'Kerberos authentication troubleshooting guidance (Microsoft support article)',
)
#: The causes a client with no ticket for the MP may have, as the checks name them.
CANDIDATES = (Cause.SPN_MISSING, Cause.NO_TRUST_PATH, Cause.TRUST_BROKEN, Cause.KDC_UNREACHABLE, Cause.ACCOUNT_REVOKED,
              Cause.PREAUTH_FAILED, Cause.ETYPE_UNSUPPORTED, Cause.CLOCK_SKEW, Cause.NO_KERBEROS_ATTEMPT)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if ctx.kdc_visible or client.dns or client.kdc or client.kdc_failures or not client.legs \
            or kerberos_accepted(client):
        return None
    if any(leg.ap_req is not None for leg in client.legs):
        return None  # it had a ticket: what the MP did with it is visible
    ntlm = ntlm_legs(client)
    challenged = [leg for leg in client.legs if leg.status == 401]
    if not ntlm and not challenged:
        return None
    if ntlm:
        what = "fell back to NTLM"
        evidence = [Evidence(leg.request_frame, "Authorization: Negotiate/NTLM carrying NTLMSSP") for leg in ntlm[-2:]]
    else:
        what = "never came back with credentials after the MP's 401 Negotiate challenge"
        leg = challenged[-1]
        evidence = [Evidence(leg.response_frame or leg.request_frame,
                             "401 Negotiate challenge, no Kerberos token after it")]
    return Finding(
        CODE, Severity.ERROR,
        f"The client {what}: it got no Kerberos ticket for the MP, and the capture holds no KDC traffic at all "
        "(taken on the MP, or filtered), so it cannot show why. Possible causes: the MP's HTTP SPN missing or "
        "duplicated, no trust path or a broken trust to the MP's realm, the KDC unreachable, the client's account "
        "locked, disabled or with a stale password, no shared encryption type, clock skew"
        + (", or a client that chose NTLM without asking for a ticket (an alias, a cached failure)." if ntlm else "."),
        fix="Capture on the client (or on its DC) while restarting ccmexec to see the TGS exchange; check the SPN "
            f"(setspn -Q HTTP/{client.mp_name or '<mp fqdn>'}) or pass --directory; read the DC's security log "
            "(events 4768, 4769, 4771) for this client.",
        evidence=evidence, candidates=list(CANDIDATES) + ([Cause.NTLM_FALLBACK] if ntlm else []))
