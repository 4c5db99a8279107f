"""etype_unsupported: client, KDC and target account share no encryption type."""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import kdc_errors, kerberos_accepted
from kerbtrace.codes import etype_name, krb_error
from kerbtrace.constants import Cause, KrbMsg, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.ETYPE_UNSUPPORTED
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Event 4768 error 0xE (KDC_ERR_ETYPE_NOTSUPP)',
    "'Network security: Configure encryption types allowed for Kerberos' policy; msDS-SupportedEncryptionTypes",
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = kdc_errors(client, (14,))
    if not errors:
        return None
    ex = errors[-1]
    offered = ", ".join(etype_name(e) for e in (ex.req.etypes if ex.req else ()))
    as_exchange = ex.req is not None and ex.req.msg_type == KrbMsg.AS_REQ
    if as_exchange:
        whose = "the client's own account (its logon to the domain)"
        fix = ("The client offers only encryption types its account has no keys for: align the 'Network security: "
               "Configure encryption types allowed for Kerberos' policy of the client with the domain (AES, RC4 "
               "where still allowed) and reset the computer password after enabling AES "
               "(Test-ComputerSecureChannel -Repair).")
    else:
        whose = f"the account holding {ex.sname or 'the service'}"
        fix = ("Align msDS-SupportedEncryptionTypes of the account holding the HTTP SPN (normally the MP computer "
               "account) with the client and DC encryption-type policies; AES needs that account's password "
               "changed after the domain functional level was raised.")
    return Finding(
        CODE, Severity.ERROR,
        f"The KDC {ex.kdc_ip} found no encryption type shared by the client (offered: {offered or 'unknown'}) and "
        f"{whose}.",
        fix=fix,
        codes=[krb_error(14).label()], evidence=[Evidence(ex.frame, f"KDC_ERR_ETYPE_NOSUPP for {ex.sname}")])
