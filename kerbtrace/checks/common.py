"""Small questions several checks ask of an exchange, answered once here."""

from __future__ import annotations

from kerbtrace.checks.base import Evidence
from kerbtrace.codes import krb_error, msg_type_name
from kerbtrace.constants import APPROVED_STATUSES, KDC_REPLIES, KrbError, KrbMsg
from kerbtrace.exchanges.client import AuthLeg, ClientExchange, KdcExchange

CLOCK_ERRORS = (KrbError.KRB_AP_ERR_SKEW, KrbError.KRB_AP_ERR_TKT_NYV, KrbError.KRB_AP_ERR_TKT_EXPIRED)


def approved(client: ClientExchange) -> bool | None:
    """True/False when the MP's answer tells, None when the capture does not show it."""
    leg = client.final_leg
    if leg is None or leg.status is None:
        return None
    if leg.reply is not None and leg.reply.approval_status is not None:
        return leg.reply.approval_status in APPROVED_STATUSES and (leg.reply.status in (0, None))
    if leg.status == 200 and leg.is_windowsauth and leg.mech == "kerberos":
        return True  # Kerberos-authenticated registration; reply body not readable
    if leg.status == 200 and leg.reply is None:
        return None
    return False


def kerberos_accepted(client: ClientExchange) -> bool:
    """The MP's last answer accepted a Kerberos ticket (the same leg the verdict is read from)."""
    leg = client.final_leg
    return leg is not None and leg.mech == "kerberos" and leg.status == 200


def is_computer_account(name: str | None) -> bool:
    """ConfigMgr clients authenticate as LocalSystem, i.e. as the computer account NAME$."""
    return bool(name) and name.split("@")[0].endswith("$")  # type: ignore[union-attr]


def account_of(ex: KdcExchange) -> str | None:
    """The client principal of an AS exchange: the reply's cname, else the request's."""
    rep, req = ex.rep, ex.req
    return (rep.cname if rep is not None else None) or (req.cname if req is not None else None)


def registration_identity(client: ClientExchange, ex: KdcExchange) -> bool:
    """Is this AS exchange the identity the client registers with?

    Normally the computer account (LocalSystem). A user account counts too when the client got no TGT
    as a computer in the capture: the SMS 2.0 client connection accounts of old sites and NLB MP
    application pools register as users. A user logging on at a computer whose own account works is
    not the ConfigMgr client.
    """
    name = account_of(ex)
    if is_computer_account(name):
        return True
    if ex.req is not None and ex.req.msg_type != KrbMsg.AS_REQ:
        return False
    if name is None:
        return ex.error_code == KrbError.KDC_ERR_CLIENT_REVOKED
    return not any(o.rep is not None and o.rep.msg_type == KrbMsg.AS_REP and is_computer_account(account_of(o))
                   for o in client.kdc)


def later_success(client: ClientExchange, exchange: KdcExchange) -> bool:
    """A later AS-REP/TGS-REP for the same kind of request: the error was recovered from."""
    kind = exchange.req.msg_type if exchange.req is not None else None
    for other in client.kdc:
        rep = other.rep
        if other.frame > exchange.frame and rep is not None and rep.msg_type in KDC_REPLIES:
            if kind is None or (other.req is not None and other.req.msg_type == kind):
                return True
    return False


def kdc_errors(client: ClientExchange, codes: tuple[int, ...]) -> list[KdcExchange]:
    return [ex for ex in client.kdc if ex.error_code in codes]


def mp_service_errors(client: ClientExchange, codes: tuple[int, ...]) -> list[KdcExchange]:
    """KDC errors answering a request for the MP's HTTP SPN."""
    return [ex for ex in client.mp_spn_exchanges() if ex.error_code in codes]


def ntlm_legs(client: ClientExchange) -> list[AuthLeg]:
    return [leg for leg in client.legs if leg.mech == "ntlm"]


def ticket_for_mp(client: ClientExchange) -> KdcExchange | None:
    """The last TGS exchange that delivered a service ticket (not a referral) for the MP's SPN."""
    found = None
    for ex in client.mp_spn_exchanges():
        rep = ex.rep
        if rep is not None and rep.msg_type == KrbMsg.TGS_REP and not ex.is_referral:
            found = ex
    return found


def referrals(client: ClientExchange) -> list[KdcExchange]:
    return [ex for ex in client.kdc if ex.is_referral]


def realm_related(a: str | None, b: str | None) -> bool:
    """Same realm, or one is a DNS child of the other (same AD forest tree)."""
    if not a or not b:
        return False
    a, b = a.upper(), b.upper()
    return a == b or a.endswith("." + b) or b.endswith("." + a)



def exchange_steps(client: ClientExchange) -> list[Evidence]:
    """The steps of the registration the capture shows, as evidence of the verdict: how the client got its
    TGT, found the MP, was challenged, got (or failed to get) a ticket for the MP's SPN across referrals,
    what it presented and what the MP answered. KDC replies (or the unanswered request), lookups of the MP,
    the MP's answers, and the requests that carried a token."""
    out: list[Evidence] = []
    spn = {id(ex) for ex in client.mp_spn_exchanges()}
    for ex in client.kdc:
        req = ex.req
        as_exchange = (req is not None and req.msg_type == KrbMsg.AS_REQ) or \
            (req is None and ex.rep is not None and ex.rep.msg_type == KrbMsg.AS_REP)
        cross = req is not None and req.ticket is not None and req.ticket.sname.lower().startswith("krbtgt/") and \
            req.ticket.sname.split("/")[-1].upper() != req.ticket.realm.upper()
        if not ((as_exchange and registration_identity(client, ex)) or id(ex) in spn or ex.is_referral or cross):
            continue
        if ex.reply is not None:
            what = msg_type_name(ex.rep.msg_type) if ex.error_code is None else krb_error(ex.error_code).label()
            out.append(Evidence(ex.reply.frame, f"{what} from KDC {ex.kdc_ip}"))
        elif ex.request is not None:
            out.append(Evidence(ex.request.frame, f"{msg_type_name(ex.request.msg.msg_type)} to KDC {ex.kdc_ip}, "
                                "no reply"))
    out += [Evidence(f.frame, f"{f.transport.upper()} to {f.kdc_ip}:88: {f.how}") for f in client.kdc_failures]
    names = client.mp_names
    for lk in client.dns:
        if lk.name.startswith("_mssms_mp_") or lk.name in names or lk.name.split(".")[0] in names:
            out.append(Evidence(lk.response_frame or lk.frame, f"DNS lookup of {lk.name}"))
    for leg in client.legs:
        if leg.token is not None and leg.mech in ("kerberos", "ntlm"):
            out.append(Evidence(leg.request_frame, f"{leg.method} with a {leg.mech.upper()} token"))
        if leg.response_frame is not None:
            out.append(Evidence(leg.response_frame, f"MP answered HTTP {leg.status}"))
    out += [Evidence(leg.frame, leg.describe()) for leg in client.tls]
    return out
