"""etype_unsupported: client, KDC and target account share no encryption type."""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import kdc_errors, kerberos_accepted
from kerbtrace.codes import etype_name, krb_error
from kerbtrace.exchanges.client import ClientExchange

CODE = "etype_unsupported"


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = kdc_errors(client, (14,))
    if not errors:
        return None
    ex = errors[-1]
    offered = ", ".join(etype_name(e) for e in (ex.req.etypes if ex.req else ()))
    return Finding(
        CODE, "error",
        f"The KDC {ex.kdc_ip} found no encryption type shared by the client (offered: {offered or 'unknown'}) and "
        f"the account of {ex.sname or 'the service'}.",
        fix="Align msDS-SupportedEncryptionTypes of the MP computer account (and any account holding the HTTP SPN) "
            "with the 'Network security: Configure encryption types allowed for Kerberos' policy on clients and "
            "DCs; AES needs the account password changed after the domain functional level was raised.",
        codes=[krb_error(14).label()], evidence=[Evidence(ex.frame, f"KDC_ERR_ETYPE_NOSUPP for {ex.sname}")])
