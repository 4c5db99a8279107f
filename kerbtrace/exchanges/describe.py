"""Short plain-text details for timeline entries (what an engineer reads next to a frame number)."""

from __future__ import annotations

from kerbtrace.codes import dns_rcode, etype_name, krb_error, ntstatus
from kerbtrace.constants import KrbMsg, NtlmMsg
from kerbtrace.decoders.gss import AuthToken
from kerbtrace.exchanges.client import DnsLookup, KdcExchange


def describe_kdc_request(exchange: KdcExchange) -> str:
    req = exchange.req
    if req is None:
        return ""
    parts = [f"sname {req.sname}" if req.sname else "", f"realm {req.realm}" if req.realm else ""]
    if req.msg_type == KrbMsg.AS_REQ and req.cname:
        parts.append(f"cname {req.cname}")
    if req.msg_type == KrbMsg.TGS_REQ and req.ticket is not None:
        parts.append(f"using TGT {req.ticket.sname}@{req.ticket.realm}")
    parts.append(f"to KDC {exchange.kdc_ip} over {exchange.request.transport.upper()}")  # type: ignore[union-attr]
    return ", ".join(p for p in parts if p)


def describe_kdc_reply(exchange: KdcExchange) -> str:
    rep = exchange.rep
    if rep is None:
        return ""
    if rep.msg_type == KrbMsg.KRB_ERROR:
        text = krb_error(rep.error_code if rep.error_code is not None else -1).label()
        if rep.nt_status is not None:
            text += f" with {ntstatus(rep.nt_status).label()}"
        if rep.sname:
            text += f" for {rep.sname}"
        if rep.realm:
            text += f" (realm {rep.realm})"
        return text
    if rep.ticket is not None:
        kind = "referral TGT" if exchange.is_referral else "ticket"
        text = f"{kind} {rep.ticket.sname}@{rep.ticket.realm}"
        if rep.ticket.etype is not None:
            text += f", {etype_name(rep.ticket.etype)}"
        if rep.ticket.kvno is not None:
            text += f", kvno {rep.ticket.kvno}"
        return text
    return ""


def describe_auth(token: AuthToken | None, request: bool) -> str:
    """What an Authorization / WWW-Authenticate header carried."""
    if token is None:
        return "anonymous (no Authorization header)" if request else ""
    if token.error:
        return f"{token.scheme}: undecodable token ({token.error})"
    if token.form == "empty":
        return f"WWW-Authenticate: {token.scheme}" if not request else f"Authorization: {token.scheme} (empty)"
    inner = token.kerberos
    if inner is not None:
        if inner.msg_type == KrbMsg.AP_REQ:
            what = "Kerberos AP-REQ"
            if inner.ticket is not None:
                what += f" ticket {inner.ticket.sname}@{inner.ticket.realm}"
                if inner.ticket.kvno is not None:
                    what += f" kvno {inner.ticket.kvno}"
        elif inner.msg_type == KrbMsg.AP_REP:
            what = "Kerberos AP-REP (mutual authentication)"
        elif inner.msg_type == KrbMsg.KRB_ERROR:
            what = "Kerberos " + krb_error(inner.error_code if inner.error_code is not None else -1).label()
        else:
            what = f"Kerberos message type {inner.msg_type}"
    elif token.ntlm is not None:
        kind = token.ntlm.msg_type
        what = f"NTLM {NtlmMsg(kind).name}"  # the decoder reads no other type
        if kind == NtlmMsg.AUTHENTICATE and token.ntlm.user:
            what += f" {token.ntlm.domain or ''}\\{token.ntlm.user}"
    elif token.neg_state is not None:
        what = f"SPNEGO negState {token.neg_state}"
    else:
        what = token.form
    header = "Authorization" if request else "WWW-Authenticate"
    return f"{header}: {token.scheme} ({what})"


def describe_dns(lookup: DnsLookup) -> str:
    """`name: RCODE -> answers`, or `(no answer)`."""
    rcode = dns_rcode(lookup.rcode or 0).name
    answers = ", ".join(value for _, _, value in lookup.answers[:4])
    return f"{lookup.name}: {rcode}" + (f" -> {answers}" if answers else " (no answer)")
