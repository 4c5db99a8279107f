"""spn_missing: the KDC of the MP's own realm (or its forest) does not know the MP's HTTP SPN.

KDC_ERR_S_PRINCIPAL_UNKNOWN for HTTP/<mp>; Windows Negotiate then falls back to NTLM, and an
NTLM-authenticated client is not auto-approved as a computer of a trusted domain. A duplicate SPN looks
the same on the wire: when directory facts show one, spn_duplicate is the cause instead.
"""

from __future__ import annotations

from kerbtrace.checks import fixes
from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.beside import directory_evidence, lookup, mp_computer, spn_status
from kerbtrace.checks.common import kerberos_accepted, mp_service_errors, ntlm_legs, realm_related, referrals
from kerbtrace.codes import krb_error
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.SPN_MISSING
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Kerberos error KDC_ERR_S_PRINCIPAL_UNKNOWN or KDC_ERR_PRINCIPAL_NOT_UNIQUE (Microsoft support article)',
    'setspn (Windows Server command reference)',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    errors = mp_service_errors(client, (7,))
    if not errors:
        return None
    error = errors[-1]
    mp_realm = client.mp_realm
    answered_by = (error.rep.realm if error.rep is not None else None) or error.realm
    # In the MP's realm, or in a realm of the same tree that would have referred a known SPN.
    if not (realm_related(answered_by, mp_realm) or referrals(client) or mp_realm is None):
        return None
    status = spn_status(ctx, error.sname)
    if status == "duplicate":
        return None  # the directory tells it apart: spn_duplicate
    evidence = [Evidence(error.frame, f"{answered_by} KDC {error.kdc_ip}: KDC_ERR_S_PRINCIPAL_UNKNOWN for "
                                      f"{error.sname}")]
    for leg in ntlm_legs(client)[:1]:
        evidence.append(Evidence(leg.request_frame, "client fell back to NTLM"))
    what = "(it is missing, or registered twice)"
    found = lookup(ctx, error.sname)
    host = (error.sname or "").split("/", 1)[-1].split(":")[0]
    mp = mp_computer(ctx.beside.directory, client)
    mp_account = fixes.qualified(mp) if mp is not None else fixes.computer_account(host or "mp", mp_realm)
    commands = [fixes.setspn_query(error.sname or ""), f"setspn -L {mp_account}", fixes.LIST_DUPLICATE_SPNS]
    if found is not None and status != "unknown":
        evidence.append(directory_evidence(ctx, found.describe(), *found.owners, *found.port_variants))
        if status == "missing":
            what = "(the directory confirms that no account holds it, nor HOST/<mp> through sPNMappings)"
            commands = [fixes.setspn_add(s, mp_account) for s in fixes.host_spns(host)]
            commands.append(fixes.setspn_query(error.sname or ""))
        else:  # the facts show one owner: the KDC that answered did not see it
            what = ("(yet the directory facts show it on one account: they may be newer than the KDC's copy — "
                    "replication — or the client asked a KDC of another domain)")
    commands += [fixes.PURGE_CLIENT_TICKETS, fixes.RESTART_CLIENT]
    return Finding(
        CODE, Severity.ERROR,
        f"The {answered_by or ''} KDC found no single account holding the SPN {error.sname} {what}: the client "
        "could not get a Kerberos ticket for the MP"
        + (" and fell back to NTLM" if ntlm_legs(client) else "") + ", so it cannot be auto-approved.",
        fix=f"Check with `setspn -Q {error.sname}`. Normally HTTP/<mp> is served by HOST/<mp fqdn> on the MP "
            "computer account: make sure the MP's HOST SPNs exist (`setspn -L <MP>`), that clients use the "
            "MP's real FQDN (not a CNAME/alias without an SPN), and that no duplicate blocks the lookup "
            "(`setspn -X`). Clients cache the failure for 15 minutes (klist purge -li 0x3e7).",
        codes=[krb_error(7).label()], evidence=evidence, fix_commands=commands)
