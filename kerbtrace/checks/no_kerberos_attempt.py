"""no_kerberos_attempt: the MP asked for Negotiate and the client never tried to authenticate.

Claimed only when the capture holds KDC traffic (of other clients, at least) or the client's own DNS
lookups: a capture on the MP cannot show that the client sent no Kerberos request.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.NO_KERBEROS_ATTEMPT
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Kerberos authentication troubleshooting guidance (Microsoft support article)',
    'nltest /sc_verify and /dsgetdc (Windows Server command reference)',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if not client.legs or any(leg.token is not None for leg in client.legs):
        return None
    challenged = [leg for leg in client.legs if leg.status == 401]
    if not challenged or client.kdc or client.kdc_failures or not (ctx.kdc_visible or client.dns):
        return None
    leg = challenged[-1]
    return Finding(
        CODE, Severity.ERROR,
        "The MP challenged the client with 401 WWW-Authenticate: Negotiate and the client never came back with "
        "credentials, and it sent no Kerberos request in the capture: it had no usable credentials or could not "
        "reach a domain controller.",
        fix="Check that the client is joined to the domain and its secure channel works (nltest /sc_verify:<domain>), "
            "that it can reach a DC (nltest /dsgetdc:<domain>) on port 88, and CcmMessaging.log on the client.",
        codes=[], evidence=[Evidence(leg.response_frame or leg.request_frame, "401 Negotiate challenge, no retry")])
