"""ticket_key_mismatch: the ticket for the MP's SPN is under a key the MP's computer account would not have.

The ticket's cleartext names the etype and key version (kvno) of the account the KDC mapped the SPN to.
With directory facts they are compared with that account's msDS-KeyVersionNumber and
msDS-SupportedEncryptionTypes: another kvno means the ticket is for another account, or the MP's keytab
(machine password) is stale; an etype the account does not allow means another account's key. Without
facts a heuristic: the KDC chose RC4-HMAC (23) although the client offered AES — a computer account of
a 2008+ domain has AES keys and its default supported types (0x1C) include AES, so the KDC would have
used AES; RC4 points to a user account holding the SPN (no msDS-SupportedEncryptionTypes, or a password
older than the domain's AES keys). A warning: the ticket may still work.
"""

from __future__ import annotations

from kerbtrace.checks import fixes
from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.beside import directory_evidence, lookup, mp_computer
from kerbtrace.checks.common import ticket_for_mp
from kerbtrace.codes import etype_name
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.TICKET_KEY_MISMATCH
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "MS-KILE 3.3.5.7: the KDC encrypts a service ticket with the strongest key of the account the SPN maps to",
    "'Network security: Configure encryption types allowed for Kerberos' policy; msDS-SupportedEncryptionTypes",
)
RC4 = 23
AES = (17, 18)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    seen = _ticket(client)
    if seen is None:
        return None
    frame, sname, etype, kvno, offered = seen
    shown = f"ticket for {sname} ({etype_name(etype) if etype is not None else 'etype ?'}, kvno {kvno})"
    evidence = [Evidence(frame, shown)]
    found = lookup(ctx, sname)
    owners = found.owners if found is not None else ()
    if len(owners) == 1:
        owner = owners[0]
        problems = []
        if owner.kvno is not None and kvno is not None and owner.kvno != kvno:
            problems.append(f"its kvno {kvno} is not the key version {owner.kvno} of {owner.name} "
                            "(msDS-KeyVersionNumber): the ticket is for another account, or the MP's keytab or "
                            "machine password is stale")
        if etype is not None and owner.allows_etype(etype) is False:
            allowed = ", ".join(owner.etype_names or ()) or "none"
            problems.append(f"{owner.name} allows only {allowed} (msDS-SupportedEncryptionTypes), not "
                            f"{etype_name(etype)}: the key is another account's")
        if not problems:
            return None
        evidence.append(directory_evidence(ctx, f"{owner.describe()}: kvno {owner.kvno}, supported etypes "
                                                f"{', '.join(owner.etype_names or ()) or 'not set'}", owner))
        mp = mp_computer(ctx.beside.directory, client)
        target = fixes.qualified(mp or owner)
        return Finding(
            CODE, Severity.WARNING,
            f"The {shown} does not match the account that holds the SPN: " + "; ".join(problems) + ".",
            fix="If the SPN is on the MP's computer account, repair the MP's secure channel (machine password) so "
                "its keys match the directory's; if the kvno belongs to another account, find it with "
                "`setspn -Q` and remove the SPN there.",
            evidence=evidence,
            fix_commands=[fixes.setspn_query(sname), f"setspn -L {target}",
                          fixes.on_computer(client.mp_name or client.mp_ip or "MP", fixes.REPAIR_SECURE_CHANNEL)])
    if found is not None and found.status != "unknown":
        return None  # the facts name no single owner: spn_missing / spn_duplicate say so
    if etype != RC4 or not any(e in offered for e in AES):
        return None
    return Finding(
        CODE, Severity.WARNING,
        f"The KDC issued the {shown} although the client offered AES: the MP's computer account would get an AES "
        "ticket, so the SPN most likely sits on another account without AES keys (a user account: the seed's "
        "case), or the MP's account allows only RC4.",
        fix="Find who holds the SPN (`setspn -Q`); if it is a user account, remove it there (`setspn -D`). If it "
            "is the MP's computer account, allow AES in its msDS-SupportedEncryptionTypes and reset its password.",
        evidence=evidence + ([Evidence(frame, "client offered " + ", ".join(etype_name(e) for e in offered))]
                             if offered else []),
        fix_commands=[fixes.setspn_query(sname), fixes.LIST_DUPLICATE_SPNS])


def _ticket(client: ClientExchange) -> tuple[int, str, int | None, int | None, tuple[int, ...]] | None:
    """(frame, sname, etype, kvno, etypes the client offered) of the MP's ticket: from the TGS-REP that
    issued it, else from the AP-REQ presented to the MP (an MP-side capture)."""
    ex = ticket_for_mp(client)
    if ex is not None and ex.rep is not None and ex.rep.ticket is not None:
        t = ex.rep.ticket
        return ex.frame, t.sname, t.etype, t.kvno, ex.req.etypes if ex.req is not None else ()
    for leg in reversed(client.legs):
        if leg.ap_req is not None and leg.ap_req.ticket is not None:
            t = leg.ap_req.ticket
            return leg.request_frame, t.sname, t.etype, t.kvno, ()
    return None
