"""preauth_failed: the KDC rejected the pre-authentication of the registration identity (wrong key / password).

Only failures that were not followed by a successful AS exchange count: a single stale-key try that
the client recovers from is normal. The identity is the computer account, or the user account the
client registers with (see account_revoked).
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import (
    account_of,
    is_computer_account,
    kdc_errors,
    kerberos_accepted,
    later_success,
    registration_identity,
)
from kerbtrace.codes import krb_error
from kerbtrace.constants import Cause, KrbError, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.PREAUTH_FAILED
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Event 4771 (Kerberos pre-authentication failed)',
    'Test-ComputerSecureChannel -Repair (PowerShell documentation)',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = [ex for ex in kdc_errors(client, (KrbError.KDC_ERR_PREAUTH_FAILED,))
              if registration_identity(client, ex) and not later_success(client, ex)]
    if not errors:
        return None
    ex = errors[-1]
    account = account_of(ex) or client.account or "?"
    if is_computer_account(account):
        fix = ("The computer's machine password is out of sync with AD: repair the secure channel "
               "(Test-ComputerSecureChannel -Repair, or netdom resetpwd) or rejoin the domain; check for a cloned "
               "machine with the same name.")
    else:
        fix = (f"{account} is a user account: its password was changed and this client still uses the old one. "
               "Update the stored password (client connection account, application pool identity).")
    return Finding(
        CODE, Severity.ERROR,
        f"The KDC {ex.kdc_ip} rejected the pre-authentication of {account} ({len(errors)} time(s)): the key the "
        "client used does not match the account's password in the directory. Repeated failures lock a user account.",
        fix=fix, codes=[krb_error(KrbError.KDC_ERR_PREAUTH_FAILED).label()],
        evidence=[Evidence(e.frame, f"KDC_ERR_PREAUTH_FAILED for {account}") for e in errors[-3:]])
