"""spn_wrong_account: the client presented a ticket for the MP's SPN and the MP could not use it.

Typical cause: HTTP/<mp fqdn> is registered on a user account (a web service running as that user),
so the KDC encrypts the ticket with that account's key while IIS on the MP decrypts with the MP's
computer key. Also a duplicate SPN or a stale MP machine password.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import kerberos_accepted, ticket_for_mp
from kerbtrace.codes import etype_name, hresult, krb_error
from kerbtrace.constants import KrbMsg, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = "spn_wrong_account"
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "CSS article 'how client approval works': the HTTP SPN registered under a user account",
    'Service principal names and HOST aliases (msdn aa480609)',
    'Troubleshoot Kerberos failures in Internet Explorer/IIS (KRB_AP_ERR_MODIFIED)',
)
DECRYPT_ERRORS = (41, 31, 44, 45, 35)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    rejected = [leg for leg in client.legs if leg.ap_req is not None and leg.status == 401]
    if not rejected:
        return None
    leg = rejected[-1]
    error = leg.response_krb if leg.response_krb is not None and leg.response_krb.msg_type == KrbMsg.KRB_ERROR else None
    if error is not None and error.error_code not in DECRYPT_ERRORS:
        return None
    codes = [krb_error(error.error_code).label()] if error is not None and error.error_code is not None else []
    codes.append(hresult(0x80090322).label())
    evidence = []
    ticket = ticket_for_mp(client)
    ap_ticket = leg.ap_req.ticket if leg.ap_req is not None else None
    if ticket is not None and ticket.rep is not None and ticket.rep.ticket is not None:
        t = ticket.rep.ticket
        evidence.append(Evidence(ticket.frame, f"KDC {ticket.kdc_ip} issued the ticket for {t.sname} "
                                 f"({etype_name(t.etype) if t.etype is not None else 'etype ?'}, kvno {t.kvno})"))
    what = "AP-REQ presented"
    if ap_ticket is not None:
        what += f" for {ap_ticket.sname}@{ap_ticket.realm} (kvno {ap_ticket.kvno})"
    evidence.append(Evidence(leg.request_frame, what))
    answer = "MP answered 401"
    if error is not None:
        answer += f" carrying {krb_error(error.error_code or 0).label()}"
    else:
        answer += " without a Kerberos error token"
    evidence.append(Evidence(leg.response_frame or leg.request_frame, answer))
    spn = ap_ticket.sname if ap_ticket is not None else f"HTTP/{client.mp_name or 'the MP'}"
    ticket_host = spn.split("/", 1)[1].split(":")[0].lower() if "/" in spn else ""
    asked_host = (leg.host or "").rsplit(":", 1)[0].lower().rstrip(".")
    alias = ""
    if ticket_host and asked_host and ticket_host != asked_host and not asked_host.replace(".", "").isdigit():
        alias = (f" The client addressed the MP as {asked_host} but the ticket is for {ticket_host}: an alias "
                 "(CNAME) can lead the client to a ticket for another machine.")
    certainty = "most likely" if error is not None else "probably (the MP's 401 carried no Kerberos error)"
    summary = (f"The MP could not use the Kerberos ticket for {spn}: the SPN is {certainty} registered on another "
               "account (a user account running a web service, or a duplicate), so the ticket is encrypted with a "
               "key the MP's computer account does not have." + alias +
               " The client is not authenticated and not approved.")
    return Finding(
        CODE, Severity.ERROR, summary,
        fix=f"Run `setspn -Q {spn}` and `setspn -X`; remove the HTTP SPN from the user account "
            "(`setspn -D`) so HOST/<mp> on the MP computer account serves it, or move the other web service "
            "to its own port with an SPN such as HTTP/<mp>:81. If the SPN is on the MP's own account, reset its "
            "machine password / secure channel. Then restart the client's registration (ccmexec).",
        codes=codes, evidence=evidence)
