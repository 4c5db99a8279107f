"""preauth_failed: the KDC rejected the computer account's pre-authentication (wrong key / password).

Only failures that were not followed by a successful AS exchange count: a single stale-key try that
the client recovers from is normal.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import is_computer_account, kdc_errors, kerberos_accepted, later_success
from kerbtrace.codes import krb_error
from kerbtrace.exchanges.client import ClientExchange

CODE = "preauth_failed"
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Event 4771 (Kerberos pre-authentication failed)',
    'Test-ComputerSecureChannel -Repair (PowerShell documentation)',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = [ex for ex in kdc_errors(client, (24,))
              if is_computer_account((ex.rep.cname if ex.rep else None) or (ex.req.cname if ex.req else None))
              and not later_success(client, ex)]
    if not errors:
        return None
    ex = errors[-1]
    account = (ex.rep.cname if ex.rep else None) or (ex.req.cname if ex.req else None) or client.account or "?"
    return Finding(
        CODE, "error",
        f"The KDC {ex.kdc_ip} rejected the pre-authentication of {account} ({len(errors)} time(s)): the key the "
        "client used does not match the account's password in the directory. Repeated failures lock the account.",
        fix="The computer's machine password is out of sync with AD: repair the secure channel "
            "(Test-ComputerSecureChannel -Repair, or netdom resetpwd) or rejoin the domain; check for a cloned "
            "machine with the same name.",
        codes=[krb_error(24).label()],
        evidence=[Evidence(e.frame, f"KDC_ERR_PREAUTH_FAILED for {account}") for e in errors[-3:]])
