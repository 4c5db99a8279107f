"""Who the client is, from the clear-text parts of its AS and TGS messages."""

from __future__ import annotations

from kerbtrace.constants import KrbMsg
from kerbtrace.exchanges.client import ClientExchange, KdcExchange


def learn_identity(client: ClientExchange, exchange: KdcExchange) -> None:
    """Client realm and account: the AS-REQ's cname, else the reply's cname/crealm, else the realm of
    the TGT a TGS-REQ presents."""
    req, rep = exchange.req, exchange.rep
    if req is not None and req.msg_type == KrbMsg.AS_REQ and req.cname and not client.account:
        client.account = f"{req.cname}@{req.realm}" if req.realm else req.cname
        client.realm = client.realm or req.realm
    if rep is not None and rep.msg_type in (KrbMsg.AS_REP, KrbMsg.TGS_REP) and rep.cname and rep.crealm:
        client.account = client.account or f"{rep.cname}@{rep.crealm}"
        client.realm = client.realm or rep.crealm
    if req is not None and req.msg_type == KrbMsg.TGS_REQ and not client.realm and req.ticket is not None:
        tgt = req.ticket.sname.split("/")
        if len(tgt) == 2 and tgt[1].upper() == req.ticket.realm.upper():
            client.realm = req.ticket.realm


def hostname_from_account(account: str | None) -> str | None:
    """A computer account is the NetBIOS name plus "$": WK01$@CORP.LAB gives WK01."""
    if not account:
        return None
    name = account.split("@")[0]
    return name.rstrip("$").upper() or None if name.endswith("$") else None


__all__ = ["hostname_from_account", "learn_identity"]
