"""mp_http_error: the MP answered the registration with an HTTP error other than the 401 challenge.

500/503 (MP or IIS application pool broken, site database unreachable), 403 (client certificate or
access rules), 404 (wrong virtual directory), 400 (often a Kerberos ticket too large for IIS's header
limits: a big PAC from many group memberships). Authentication may have worked; the MP did not register.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.codes import iis_code
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.MP_HTTP_ERROR
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'IIS status and sub-status codes (401.1, 403.7, 500.19 ...)',
    'KB 2020943: HTTP 400 "Request header too long" with large Kerberos tickets',
)

#: Advice beyond the IIS status table's own fix (`codes.iis_code`), for the statuses where the MP's case
#: needs more words than IIS's.
ADVICE = {
    400: "IIS rejected the request as malformed. With Kerberos this is usually a ticket too large for the HTTP "
         "header limits (large PAC): raise MaxFieldLength/MaxRequestBytes under HKLM\\SYSTEM\\CurrentControlSet\\"
         "Services\\HTTP\\Parameters on the MP, or reduce the computer's group memberships.",
    403: "Access was refused: an HTTPS MP requires a client certificate (403.7), or IP/URL rules block the client; "
         "check the MP's IIS logs (sc-substatus) and the site's client communication settings.",
}


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    leg = client.final_leg
    if leg is None or leg.status is None or leg.status in (200, 401) or leg.status < 400:
        return None
    info = iis_code(leg.status, 0)  # a capture shows no IIS sub-status: the status's general entry
    listed = not info.name.startswith("HTTP ")
    fix = ADVICE.get(leg.status) or info.fix or ADVICE[500 if leg.status >= 500 else 403]
    how = f" after a {leg.mech.upper() if leg.mech == 'ntlm' else leg.mech.capitalize()} authentication" \
        if leg.mech else ""
    return Finding(
        CODE, Severity.ERROR,
        f"The MP answered the registration request{how} with HTTP {leg.status}"
        + (f" ({info.name}: {info.meaning})" if listed else "")
        + ": it did not process the registration, so the client is not approved.",
        fix=fix, codes=[f"HTTP {leg.status} ({info.name})"] if listed else [],
        evidence=[Evidence(leg.request_frame, f"{leg.method} {leg.uri}"),
                  Evidence(leg.response_frame or leg.request_frame, f"HTTP {leg.status}")])
