"""account_revoked: the KDC refuses the account the client registers with: locked out, disabled, expired or unknown.

KDC_ERR_CLIENT_REVOKED (18) with the NTSTATUS in e-data on Windows (locked out / disabled / expired),
KDC_ERR_NAME_EXP (1), KDC_ERR_KEY_EXPIRED (23), KDC_ERR_C_PRINCIPAL_UNKNOWN (6) for a deleted account,
and KDC_ERR_POLICY (12) for logon restrictions, all on the AS exchange of the registration identity:
the computer account, or a user account the client registers with (a client connection account, an
NLB MP's application pool). Computer accounts are never locked out in AD (MS-ADTS 3.1.1.4.5.17): a
lockout means a user identity. Failed pre-authentications followed by CLIENT_REVOKED are a lockout
happening in the capture. Without a TGT the client gets no ticket for the MP. When the KDC does not say
which (MIT and Samba send no NTSTATUS), directory facts on the account (disabled, locked out) do.
"""

from __future__ import annotations

from kerbtrace.checks import fixes
from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.beside import directory_evidence
from kerbtrace.checks.common import (
    account_of,
    is_computer_account,
    kdc_errors,
    kerberos_accepted,
    later_success,
    registration_identity,
)
from kerbtrace.codes import krb_error, ntstatus
from kerbtrace.constants import Cause, KrbError, Severity
from kerbtrace.context.directory.model import Account
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.ACCOUNT_REVOKED
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Event 4768 / 4771 Kerberos failure codes (windows-itpro-docs event-4768)',
    'MS-KILE 2.2.1 KERB-EXT-ERROR (NTSTATUS in e-data)',
    'MS-ADTS 3.1.1.4.5.17 (computer accounts are not locked out)',
)

ERRORS = (KrbError.KDC_ERR_CLIENT_REVOKED, KrbError.KDC_ERR_NAME_EXP, KrbError.KDC_ERR_KEY_EXPIRED,
          KrbError.KDC_ERR_C_PRINCIPAL_UNKNOWN, KrbError.KDC_ERR_POLICY)
#: NTSTATUS in the e-data -> what happened to the account
STATES = {0xC0000234: "locked out", 0xC0000072: "disabled", 0xC0000193: "expired", 0xC0000071: "password expired",
          0xC000006F: "outside its logon hours", 0xC0000070: "not allowed on this workstation"}
LOCKED_OUT = 0xC0000234


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = [ex for ex in kdc_errors(client, ERRORS)
              if registration_identity(client, ex) and not later_success(client, ex)]
    if not errors:
        return None
    ex = errors[-1]
    rep = ex.rep
    assert rep is not None
    codes = [krb_error(rep.error_code or 0).label()]
    state = STATES.get(rep.nt_status & 0xFFFFFFFF) if rep.nt_status is not None else None
    if rep.nt_status is not None:
        codes.append(ntstatus(rep.nt_status).label())
    account = account_of(ex) or client.account or "the registration account"
    computer = is_computer_account(account)
    kind = "computer account" if computer else "user account"
    realm = rep.crealm or rep.realm or ex.realm or ""
    failures = [f for f in kdc_errors(client, (KrbError.KDC_ERR_PREAUTH_FAILED,))
                if f.frame < ex.frame and (account_of(f) or account).lower() == account.lower()]
    lockout = rep.error_code == KrbError.KDC_ERR_CLIENT_REVOKED and failures and \
        (state in (None, "locked out"))
    if state:
        what = state
    elif rep.error_code == KrbError.KDC_ERR_CLIENT_REVOKED:
        what = ("its credentials are revoked (locked out, disabled or expired; the KDC sent no NTSTATUS that "
                "says which)")
    else:
        what = krb_error(rep.error_code or 0).meaning.rstrip(".")
    known, said = _directory_state(ctx, account)
    if known is not None and state is None:
        state = said  # the KDC did not say which (MIT, Samba); the directory does
        what = said
    summary = f"The {realm} KDC {ex.kdc_ip} refused the {kind} {account}: {what}"
    if lockout:
        summary += (f". It was locked out in this capture: {len(failures)} failed pre-authentication(s) came "
                    "first, so the client (or another one using the same account) sends a stale password")
    elif failures:
        summary += f" after {len(failures)} failed pre-authentication(s)"
    if computer and (state == "locked out" or lockout):
        summary += (". Computer accounts are never locked out in Active Directory (MS-ADTS 3.1.1.4.5.17): this "
                    "identity is treated as a user's")
    summary += ". Without a ticket the client cannot authenticate to the MP and is not approved."
    if computer:
        fix = ("In Active Directory Users and Computers check the computer account: enable it, clear the account "
               "expiry, or rejoin the computer to the domain if it was deleted or its password is expired "
               "(Test-ComputerSecureChannel -Repair).")
    else:
        fix = (f"{account} is a user account used to register (a client connection account, or the identity of an "
               "NLB MP's application pool): unlock or enable it, then update its password everywhere it is stored "
               "(the client push / connection account settings, the application pool). The DC's 4740 and 4771 "
               "events name the addresses that keep sending the old password (the lockout sources).")
    evidence = [Evidence(e.frame, f"{krb_error(e.error_code or 0).label()} for {account_of(e) or account}")
                for e in failures[-3:]]
    evidence.append(Evidence(ex.frame, f"{codes[-1] if len(codes) > 1 else codes[0]} for {account}"))
    if known is not None:
        text = known.describe() if said.endswith("(directory)") else f"{known.describe()}: {said}"
        evidence.append(directory_evidence(ctx, text, known))
    return Finding(CODE, Severity.ERROR, summary, fix=fix, codes=codes, evidence=evidence,
                   fix_commands=_commands(account, computer, state or ("locked out" if lockout else None),
                                          client.fqdn or client.hostname or client.ip))


def _directory_state(ctx: Context, account: str) -> tuple[Account | None, str]:
    """The account in the directory facts and its state in words ("disabled", "locked out", ...)."""
    facts = ctx.beside.directory
    known = facts.account(account) if facts is not None else None
    if known is None:
        return None, ""
    states = [w for w, on in (("disabled", known.disabled), ("locked out", known.locked)) if on]
    if states:
        return known, " and ".join(states) + " (directory)"
    if known.disabled is False and known.locked is False:
        return known, ("enabled and not locked out in the directory now: expired, or changed since the capture "
                       "(the facts may be newer)")
    return known, "its state is not in the directory facts"


def _commands(account: str, computer: bool, state: str | None, host: str) -> list[str]:
    """The AD cmdlets that undo the state (RSAT ActiveDirectory module), else the query that shows it."""
    who = fixes.account_identity(account)
    kind = "Computer" if computer else "User"
    if state and state.startswith("disabled"):
        return [f"Enable-ADAccount -Identity {who}"]
    if state and state.startswith("locked out"):
        return [f"Unlock-ADAccount -Identity {who}",
                f"Get-ADUser -Identity {who} -Properties LockedOut,BadLogonCount,LastBadPasswordAttempt"
                if not computer else f"Get-ADComputer -Identity {who} -Properties LockedOut,BadLogonCount"]
    if state == "expired":
        return [f"Clear-ADAccountExpiration -Identity {who}"]
    query = f"Get-AD{kind} -Identity {who} -Properties Enabled,LockedOut,AccountExpirationDate,PasswordExpired"
    return [query] + ([fixes.on_computer(host, fixes.REPAIR_SECURE_CHANNEL)] if computer else [])
