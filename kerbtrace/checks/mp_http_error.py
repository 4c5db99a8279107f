"""mp_http_error: the MP answered the registration with an HTTP error other than the 401 challenge.

500/503 (MP or IIS application pool broken, site database unreachable), 403 (client certificate or
access rules), 404 (wrong virtual directory), 400 (often a Kerberos ticket too large for IIS's header
limits: a big PAC from many group memberships). Authentication may have worked; the MP did not register.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.constants import Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = "mp_http_error"
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'IIS status and sub-status codes (401.1, 403.7, 500.19 ...)',
    'KB 2020943: HTTP 400 "Request header too long" with large Kerberos tickets',
)

ADVICE = {
    400: "IIS rejected the request as malformed. With Kerberos this is usually a ticket too large for the HTTP "
         "header limits (large PAC): raise MaxFieldLength/MaxRequestBytes under HKLM\\SYSTEM\\CurrentControlSet\\"
         "Services\\HTTP\\Parameters on the MP, or reduce the computer's group memberships.",
    403: "Access was refused: an HTTPS MP requires a client certificate (403.7), or IP/URL rules block the client; "
         "check the MP's IIS logs (sc-substatus) and the site's client communication settings.",
    404: "The MP does not serve this path: check that the management point role is installed and healthy "
         "(mpcontrol.log) and that the client talks to an MP, not another web server.",
    500: "The MP failed to process the request: check mpcontrol.log, MP_RegistrationManager.log, the IIS logs "
         "(sc-substatus/sc-win32-status) and the CCM application pools on the MP.",
    503: "The MP's application pool is stopped or overloaded: check the CCM application pools in IIS and the "
         "MP's event log; mpcontrol.log shows its health checks.",
}


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    leg = client.final_leg
    if leg is None or leg.status is None or leg.status in (200, 401) or leg.status < 400:
        return None
    fix = ADVICE.get(leg.status, ADVICE[500] if leg.status >= 500 else ADVICE[403])
    how = f" after a {leg.mech.upper() if leg.mech == 'ntlm' else leg.mech.capitalize()} authentication" \
        if leg.mech else ""
    return Finding(
        CODE, Severity.ERROR,
        f"The MP answered the registration request{how} with HTTP {leg.status}: it did not process the "
        "registration, so the client is not approved.",
        fix=fix,
        evidence=[Evidence(leg.request_frame, f"{leg.method} {leg.uri}"),
                  Evidence(leg.response_frame or leg.request_frame, f"HTTP {leg.status}")])
