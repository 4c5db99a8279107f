"""spn_wrong_account: the client presented a ticket for the MP's SPN and the MP could not use it.

Typical cause: HTTP/<mp fqdn> is registered on a user account (a web service running as that user),
so the KDC encrypts the ticket with that account's key while IIS on the MP decrypts with the MP's
computer key. Also a duplicate SPN or a stale MP machine password. With directory facts the finding
names the account holding the SPN and whether it is a user, and gives the `setspn -D` that removes it;
an NLB MP's application pool user holding HTTP/<NLB name> on purpose is said, not flagged (rule in
docs/directory.md). With the MP's keytab a ticket that no key opens proves another account's key; one
that opens shows the SPN is right and the MP's IIS is at fault.
"""

from __future__ import annotations

from kerbtrace.checks import fixes
from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.beside import (
    directory_evidence,
    keytab_evidence,
    keytab_proof,
    lookup,
    mp_computer,
    nlb_application_pool,
)
from kerbtrace.checks.common import kerberos_accepted, ticket_for_mp
from kerbtrace.codes import etype_name, hresult, krb_error
from kerbtrace.constants import Cause, KrbMsg, Severity
from kerbtrace.context.directory.model import UNKNOWN, USER
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.SPN_WRONG_ACCOUNT
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "CSS article 'how client approval works': the HTTP SPN registered under a user account",
    'Service principal names and HOST aliases (msdn aa480609)',
    'Troubleshoot Kerberos failures in Internet Explorer/IIS (KRB_AP_ERR_MODIFIED)',
)
DECRYPT_ERRORS = (41, 31, 44, 45, 35)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    rejected = [leg for leg in client.legs if leg.ap_req is not None and leg.status == 401]
    if not rejected:
        return None
    leg = rejected[-1]
    error = leg.response_krb if leg.response_krb is not None and leg.response_krb.msg_type == KrbMsg.KRB_ERROR else None
    if error is not None and error.error_code not in DECRYPT_ERRORS:
        return None
    codes = [krb_error(error.error_code).label()] if error is not None and error.error_code is not None else []
    codes.append(hresult(0x80090322).label())
    evidence = []
    ticket = ticket_for_mp(client)
    ap_ticket = leg.ap_req.ticket if leg.ap_req is not None else None
    if ticket is not None and ticket.rep is not None and ticket.rep.ticket is not None:
        t = ticket.rep.ticket
        evidence.append(Evidence(ticket.frame, f"KDC {ticket.kdc_ip} issued the ticket for {t.sname} "
                                 f"({etype_name(t.etype) if t.etype is not None else 'etype ?'}, kvno {t.kvno})"))
    what = "AP-REQ presented"
    if ap_ticket is not None:
        what += f" for {ap_ticket.sname}@{ap_ticket.realm} (kvno {ap_ticket.kvno})"
    evidence.append(Evidence(leg.request_frame, what))
    answer = "MP answered 401"
    if error is not None:
        answer += f" carrying {krb_error(error.error_code or 0).label()}"
    else:
        answer += " without a Kerberos error token"
    evidence.append(Evidence(leg.response_frame or leg.request_frame, answer))
    spn = ap_ticket.sname if ap_ticket is not None else f"HTTP/{client.mp_name or 'the MP'}"
    ticket_host = spn.split("/", 1)[1].split(":")[0].lower() if "/" in spn else ""
    asked_host = (leg.host or "").rsplit(":", 1)[0].lower().rstrip(".")
    alias = ""
    if ticket_host and asked_host and ticket_host != asked_host and not asked_host.replace(".", "").isdigit():
        alias = (f" The client addressed the MP as {asked_host} but the ticket is for {ticket_host}: an alias "
                 "(CNAME) can lead the client to a ticket for another machine.")
    certainty = "most likely" if error is not None else "probably (the MP's 401 carried no Kerberos error)"
    proof = keytab_proof(ctx, leg)
    if proof is not None:
        evidence.append(keytab_evidence(ctx, leg, proof))
        certainty = "proven by the MP's keytab to be" if not proof.opened else certainty
    why, fix, commands = _from_directory(client, ctx, spn, evidence)
    if proof is not None and proof.opened:
        why = (f" The MP's keytab opens the ticket (issued to {proof.client}): the KDC used the MP's key, so the SPN "
               "is where it belongs and the MP's IIS is not decrypting with that key (a stale machine password on "
               "the MP, or the site's authentication running as another identity).")
        fix = ("On the MP: repair the secure channel (machine password) and check that Windows Authentication of "
               "the CCM_System_WindowsAuth application uses the machine account (useAppPoolCredentials false) "
               "unless an NLB application pool identity holds the SPN.")
        commands = [fixes.on_computer(client.mp_name or client.mp_ip or "MP", fixes.REPAIR_SECURE_CHANNEL)]
    claim = (f": the SPN is {certainty} registered on another account (a user account running a web service, or a "
             "duplicate), so the ticket is encrypted with a key the MP's computer account does not have.")
    if why.startswith(EXPECTED) or (proof is not None and proof.opened):
        claim = "."  # the SPN is where it should be: the reason lies with the MP
    summary = (f"The MP could not use the Kerberos ticket for {spn}{claim}{why}{alias} The client is not "
               "authenticated and not approved.")
    return Finding(
        CODE, Severity.ERROR, summary, fix=fix, codes=codes, evidence=evidence,
        fix_commands=[*commands, fixes.PURGE_CLIENT_TICKETS, fixes.RESTART_CLIENT])


def _from_directory(client: ClientExchange, ctx: Context, spn: str, evidence: list[Evidence]
                    ) -> tuple[str, str, list[str]]:
    """(what the directory adds to the summary, the fix, its commands) for the SPN the ticket named."""
    found = lookup(ctx, spn)
    facts = ctx.beside.directory
    mp = mp_computer(facts, client)
    mp_name = fixes.qualified(mp) if mp is not None else fixes.computer_account(client.mp_name or spn.split("/")[-1],
                                                                               client.mp_realm)
    if found is None or facts is None or found.status in ("missing", "unknown"):
        return "", GENERIC_FIX, [fixes.setspn_query(spn), fixes.LIST_DUPLICATE_SPNS]
    evidence.append(directory_evidence(ctx, found.describe(), *found.owners))
    owners = found.owners
    pool = nlb_application_pool(facts, spn, found.direct)
    if pool is not None:
        why = (f"{EXPECTED} {pool.describe()}, the application pool identity of a network "
               f"load-balanced MP (the name {spn.split('/', 1)[1]} is no computer's and the user holds only that "
               "web name's HTTP SPNs): the SPN is right, but the MP's IIS does not decrypt with that user's key.")
        fix = ("Keep the SPN on the application pool account; on every MP behind the NLB name, let Windows "
               "Authentication of CCM_System_WindowsAuth use the application pool credentials "
               "(useAppPoolCredentials true) and run the pool as that account.")
        command = ('& "$env:windir\\system32\\inetsrv\\appcmd.exe" set config '
                   '"Default Web Site/CCM_System_WindowsAuth" '
                   "-section:system.webServer/security/authentication/windowsAuthentication "
                   "/useAppPoolCredentials:true /commit:apphost")
        return why, fix, [command]
    others = [a for a in owners if mp is None or a.dn.lower() != mp.dn.lower()]
    if not others:  # on the MP's own account: the key the KDC used is not the one IIS holds
        kvno = ""
        if mp is not None and mp.kvno is not None:
            kvno = f" (the directory's key version of {mp.name} is {mp.kvno})"
        why = (f" The directory shows it on the MP's own computer account{kvno}: the MP holds an older key than "
               "the KDC (its machine password changed without it, or the MP was restored or cloned).")
        return why, "On the MP: repair the secure channel, then restart IIS.", [
            fixes.on_computer(client.mp_name or client.mp_ip or "MP", fixes.REPAIR_SECURE_CHANNEL, "iisreset")]
    users = [a for a in others if a.kind == USER]
    unknown = all(a.kind == UNKNOWN for a in others)
    kind = ("a user account" if users else
            "another account (the source names it by DN only: whether it is a user it does not say)" if unknown else
            "another account")
    seed = " (a web service moved to a user account)" if users else ""
    why = (f" The directory confirms it: {spn} is registered on {kind}{seed}: "
           + "; ".join(a.describe() for a in others) + ".")
    commands = []
    host = spn.split("/", 1)[1].split(":")[0]
    for a in others:
        held = [s for s in a.spns if s.lower().startswith("http/")
                and s.split("/", 1)[1].split(":")[0].split(".")[0].lower() == host.split(".")[0].lower()]
        for s in held or [spn]:
            commands.append(fixes.setspn_delete(s, fixes.qualified(a)))
    served = facts.lookup(f"HOST/{host}")
    if mp is None or not any(o.dn.lower() == mp.dn.lower() for o in served.direct):
        commands += [fixes.setspn_add(s, mp_name) for s in fixes.host_spns(host)]
    commands.append(fixes.setspn_query(spn))
    fix = (f"Remove the MP's HTTP SPN from {', '.join(a.name for a in others)} (`setspn -D`), so that HOST/<mp> on "
           f"the MP's computer account {mp_name} serves it; move the other web service to its own name or port "
           "with its own SPN if it needs one. Then purge the client's tickets and restart its registration.")
    return why, fix, commands


EXPECTED = " It is held on purpose by the"
GENERIC_FIX = ("Run `setspn -Q <spn>` and `setspn -X`; remove the HTTP SPN from the user account (`setspn -D`) so "
               "HOST/<mp> on the MP computer account serves it, or move the other web service to its own port "
               "with an SPN such as HTTP/<mp>:81. If the SPN is on the MP's own account, reset its machine "
               "password / secure channel. Then restart the client's registration (ccmexec).")
