"""account_revoked: the KDC refuses the client's computer account: locked out, disabled, expired or unknown.

KDC_ERR_CLIENT_REVOKED (18) with the NTSTATUS in e-data on Windows (locked out / disabled / expired),
KDC_ERR_NAME_EXP (1), KDC_ERR_KEY_EXPIRED (23), KDC_ERR_C_PRINCIPAL_UNKNOWN (6) for a deleted account,
and KDC_ERR_POLICY (12) for logon restrictions, all on the AS exchange of the computer account
(a user logging on at the same machine is not the ConfigMgr client). Without a TGT the client gets
no ticket for the MP.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import is_computer_account, kdc_errors, kerberos_accepted, later_success
from kerbtrace.codes import krb_error, ntstatus
from kerbtrace.exchanges.client import ClientExchange

CODE = "account_revoked"
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Event 4768 / 4771 Kerberos failure codes (windows-itpro-docs event-4768)',
    'MS-KILE 2.2.1 KERB-EXT-ERROR (NTSTATUS in e-data)',
)
ERRORS = (18, 1, 23, 6, 12)


def _account(ex) -> str | None:
    rep, req = ex.rep, ex.req
    return (rep.cname if rep is not None else None) or (req.cname if req is not None else None)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = [ex for ex in kdc_errors(client, ERRORS)
              if (ex.req is None or ex.req.msg_type == 10)
              and (is_computer_account(_account(ex)) or (_account(ex) is None and ex.error_code == 18))
              and not later_success(client, ex)]
    if not errors:
        return None
    ex = errors[-1]
    rep = ex.rep
    assert rep is not None
    codes = [krb_error(rep.error_code or 0).label()]
    status = ""
    if rep.nt_status is not None:
        info = ntstatus(rep.nt_status)
        codes.append(info.label())
        status = f" ({info.meaning.rstrip('.')})"
    account = _account(ex) or client.account or "the computer account"
    realm = rep.crealm or rep.realm or ex.realm or ""
    failures = kdc_errors(client, (24,))
    before = f" after {len(failures)} failed pre-authentication(s)" if failures else ""
    return Finding(
        CODE, "error",
        f"The {realm} KDC {ex.kdc_ip} refused the computer account {account}{before}: "
        f"{krb_error(rep.error_code or 0).meaning.rstrip('.')}{status}. Without a ticket the client cannot "
        "authenticate to the MP and is not approved.",
        fix="In Active Directory Users and Computers check the computer account: enable it, unlock it, clear the "
            "account expiry, or rejoin the computer to the domain if it was deleted or its password is expired "
            "(Test-ComputerSecureChannel -Repair). Find the source of lockouts in the DC's 4740/4771 events.",
        codes=codes, evidence=[Evidence(e.frame, f"{krb_error(e.error_code or 0).label()} for {_account(e)}")
                               for e in failures[-2:] + [ex]])
