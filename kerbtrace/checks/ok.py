"""ok: the client authenticated with Kerberos and the MP approved it."""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.beside import keytab_evidence, keytab_proof
from kerbtrace.checks.common import approved, referrals, ticket_for_mp
from kerbtrace.constants import Cause
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.OK
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "ConfigMgr client approval (technet bb694193) and the CSS article 'how client approval works' "
    "(automatic approval of computers in trusted domains)",
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if approved(client) is not True:
        return None
    leg = client.final_leg
    assert leg is not None
    evidence = []
    ticket = ticket_for_mp(client)
    for hop in referrals(client):
        evidence.append(Evidence(hop.frame, f"referral: {hop.realm} KDC {hop.kdc_ip} issued "
                                 f"{hop.rep.ticket.sname}" if hop.rep and hop.rep.ticket else "referral"))
    if ticket is not None:
        evidence.append(Evidence(ticket.frame, f"KDC {ticket.kdc_ip} issued the service ticket for {ticket.sname}"))
    auth_leg = next((x for x in client.legs if x.ap_req is not None and x.status == 200), None)
    if auth_leg is not None:
        evidence.append(Evidence(auth_leg.request_frame, "CCM_POST with Authorization: Negotiate (Kerberos AP-REQ)"))
        proof = keytab_proof(ctx, auth_leg)
        if proof is not None:  # who the ticket names, as the MP's own key reads it
            evidence.append(keytab_evidence(ctx, auth_leg, proof))
    text = f"MP answered HTTP {leg.status}"
    if leg.reply is not None:
        text += f" with ApprovalStatus={leg.reply.approval_status}"
    evidence.append(Evidence(leg.response_frame or leg.request_frame, text))
    if client.auth == "kerberos":
        how = "authenticated with Kerberos" + (" across a referral" if referrals(client) else "") + \
            " as a computer of a trusted domain and"
    elif client.auth == "ntlm":
        how = "authenticated with NTLM (not Kerberos), yet"
    else:
        how = "registered without Windows authentication, yet"
    status = leg.reply.approval_status if leg.reply is not None else None
    what = {2: "marked approval as not applicable (PKI client)", 3: "approved it as an Azure AD device"}.get(
        status or 1, "approved its registration")
    return Finding(CODE, "info", f"Approved: the client {how} the MP {what}.", evidence=evidence)
