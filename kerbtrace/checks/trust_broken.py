"""trust_broken: a KDC could not decrypt the referral TGT: the inter-realm trust secret differs."""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import kdc_errors, kerberos_accepted
from kerbtrace.codes import krb_error
from kerbtrace.exchanges.client import ClientExchange

CODE = "trust_broken"


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    for ex in reversed(kdc_errors(client, (31,))):
        tgt = ex.req.ticket if ex.req is not None else None
        if tgt is None:
            continue
        parts = tgt.sname.split("/")
        if len(parts) == 2 and parts[0].lower() == "krbtgt" and parts[1].upper() != tgt.realm.upper() or (
                ex.realm and tgt.realm.upper() != ex.realm.upper()):
            return Finding(
                CODE, "error",
                f"The {ex.realm} KDC {ex.kdc_ip} could not decrypt the referral ticket {tgt.sname}@{tgt.realm} "
                "(KRB_AP_ERR_BAD_INTEGRITY): the trust password on the two sides differs, so the client gets no "
                "ticket for the MP.",
                fix="Reset the trust secret on both sides (`netdom trust <trusting> /domain:<trusted> /resetOneSide "
                    "/passwordT:...` or `netdom trust ... /reset`), check replication of the trusted domain object.",
                codes=[krb_error(31).label()],
                evidence=[Evidence(ex.request.frame if ex.request else ex.frame,
                                   f"TGS-REQ to {ex.realm} presenting {tgt.sname}@{tgt.realm}"),
                          Evidence(ex.frame, "KRB_AP_ERR_BAD_INTEGRITY")])
    return None
