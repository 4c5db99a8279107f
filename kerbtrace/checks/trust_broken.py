"""trust_broken: the MP's realm refuses the referral ticket the client's realm issued.

KRB_AP_ERR_BAD_INTEGRITY (31; Windows DCs usually answer KRB_AP_ERR_MODIFIED, 41) on a TGS-REQ that
presents a cross-realm TGT: the trust password differs on the two sides. KDC_ERR_WRONG_REALM (68):
the referral ticket went to a KDC of another realm (DNS / KDC location). KDC_ERR_POLICY (12) on such a
request: selective authentication without "Allowed to authenticate" on the MP.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import kdc_errors, kerberos_accepted, later_success
from kerbtrace.codes import krb_error
from kerbtrace.constants import Cause, KrbMsg, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.TRUST_BROKEN
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'AskDS: KRB_AP_ERR_BAD_INTEGRITY (trust password mismatch)',
    'MS-KILE 3.3.5.7.5 cross-domain trust and referrals',
)
ERRORS = (31, 41, 68, 12)


def _cross_realm(tgt) -> bool:
    parts = tgt.sname.split("/")
    return len(parts) == 2 and parts[0].lower() == "krbtgt" and parts[1].upper() != tgt.realm.upper()


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    for ex in reversed(kdc_errors(client, ERRORS)):
        tgt = ex.req.ticket if ex.req is not None and ex.req.msg_type == KrbMsg.TGS_REQ else None
        if tgt is None or not _cross_realm(tgt) or later_success(client, ex):
            continue
        code = ex.error_code or 0
        label = krb_error(code).label()
        presented = f"{tgt.sname}@{tgt.realm}"
        evidence = [Evidence(ex.request.frame if ex.request else ex.frame,
                             f"TGS-REQ to {ex.realm} KDC {ex.kdc_ip} presenting {presented}"),
                    Evidence(ex.frame, label)]
        if code == 68:
            return Finding(
                CODE, Severity.ERROR,
                f"The referral ticket {presented} was presented to KDC {ex.kdc_ip} of another realm ({label}): "
                "the client located the wrong KDC for the next realm, usually through DNS.",
                fix="Check the _kerberos._tcp SRV records of the MP's domain as the client resolves them "
                    "(nltest /dsgetdc:<domain> /kdc), DNS suffixes and conditional forwarders.",
                codes=[label], evidence=evidence)
        if code == 12:
            return Finding(
                CODE, Severity.ERROR,
                f"The {ex.realm} KDC {ex.kdc_ip} refused the cross-realm request ({label}): the trust uses "
                "selective authentication and the client's computer account may not authenticate to the MP.",
                fix="Grant the client computers (or a group of them) 'Allowed to authenticate' on the MP computer "
                    "object, or use forest-wide authentication on the trust.",
                codes=[label], evidence=evidence)
        return Finding(
            CODE, Severity.ERROR,
            f"The {ex.realm} KDC {ex.kdc_ip} could not decrypt the referral ticket {presented} ({label}): the trust "
            "password on the two sides differs, so the client gets no ticket for the MP.",
            fix="Reset the trust password on both sides (netdom trust <trusting> /domain:<trusted> /resetOneSide "
                "/passwordT:<new> /userO:<admin> /passwordO:*, then the other side), and check replication of the "
                "trusted domain object.",
            codes=[label], evidence=evidence)
    return None
