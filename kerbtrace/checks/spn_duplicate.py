"""spn_duplicate: the directory shows the MP's HTTP SPN on two or more accounts.

On the wire the same KDC_ERR_S_PRINCIPAL_UNKNOWN as a missing SPN (the KDC will not choose between the
accounts), so only directory facts (LDAP, setspn -Q/-X, an export) tell the two apart; this cause
replaces spn_missing when they show the duplicate. Windows Negotiate then falls back to NTLM and the
client is not auto-approved.
"""

from __future__ import annotations

from kerbtrace.checks import fixes
from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.beside import directory_evidence, lookup, mp_computer, spn_status
from kerbtrace.checks.common import kerberos_accepted, mp_service_errors, ntlm_legs
from kerbtrace.codes import krb_error
from kerbtrace.constants import Cause, KrbError, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.SPN_DUPLICATE
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Kerberos error KDC_ERR_S_PRINCIPAL_UNKNOWN or KDC_ERR_PRINCIPAL_NOT_UNIQUE (Microsoft support article)',
    'setspn (Windows Server command reference): -X lists duplicates, -S adds only after checking for one',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = mp_service_errors(client, (KrbError.KDC_ERR_S_PRINCIPAL_UNKNOWN, KrbError.KDC_ERR_PRINCIPAL_NOT_UNIQUE))
    if not errors or spn_status(ctx, errors[-1].sname) != "duplicate":
        return None
    error = errors[-1]
    spn = error.sname or ""
    found = lookup(ctx, spn)
    holders = found.owners if found is not None else ()
    answered_by = (error.rep.realm if error.rep is not None else None) or error.realm
    evidence = [Evidence(error.frame, f"{answered_by or ''} KDC {error.kdc_ip}: "
                                      f"{krb_error(error.error_code or 7).name} for {spn}".strip())]
    text = found.describe() if found is not None and found.status == "duplicate" else \
        f"setspn -X lists {spn} among the duplicate SPNs."
    evidence.append(directory_evidence(ctx, text, *holders))
    for leg in ntlm_legs(client)[:1]:
        evidence.append(Evidence(leg.request_frame, "client fell back to NTLM"))
    mp = mp_computer(ctx.beside.directory, client)
    keep = mp if mp is not None and any(a.dn.lower() == mp.dn.lower() for a in holders) else None
    commands = [fixes.setspn_delete(spn, fixes.qualified(a)) for a in holders
                if keep is None or a.dn.lower() != keep.dn.lower()]
    if keep is None:
        commands = [fixes.setspn_query(spn), fixes.LIST_DUPLICATE_SPNS]  # which one to keep needs a person
    commands += [fixes.PURGE_CLIENT_TICKETS, fixes.RESTART_CLIENT]
    who = ", ".join(a.name for a in holders) or "several accounts"
    fix = (f"Keep {spn} (or the HOST SPN that serves it) on the MP's computer account {keep.name} only: remove it "
           "from the other accounts with `setspn -D`." if keep is not None else
           f"Decide which account should hold {spn} (normally none: HOST/<mp> on the MP's computer account serves "
           f"it) and remove it from the others ({who}) with `setspn -D`; `setspn -X -F` lists every duplicate.")
    return Finding(
        CODE, Severity.ERROR,
        f"The SPN {spn} is registered on {len(holders) or 'more than one'} accounts ({who}): the KDC answered "
        f"{krb_error(error.error_code or 7).name} instead of a ticket, so the client could not authenticate to "
        "the MP with Kerberos" + (" and fell back to NTLM" if ntlm_legs(client) else "")
        + " and cannot be auto-approved.",
        fix=fix + " Clients cache the failure for 15 minutes: purge their tickets and restart the registration.",
        codes=[krb_error(error.error_code or 7).label()], evidence=evidence, fix_commands=commands)
