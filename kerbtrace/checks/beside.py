"""Questions checks ask of what the run was given beside the capture: directory facts and the MP's keytab.

Each answer is None when that context was not given, so a check without it keeps its capture-only
reasoning; evidence taken from the context names its source (``directory``, ``keytab``).
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence
from kerbtrace.context.directory.model import COMPUTER, USER, Account, DirectoryFacts, SpnLookup, Trust, split_spn
from kerbtrace.context.keytab import TicketProof
from kerbtrace.exchanges.client import AuthLeg, ClientExchange


def spn_status(ctx: Context, spn: str | None) -> str | None:
    """ok | duplicate | missing | unknown from the directory facts; None without facts. A duplicate that
    only ``setspn -X`` listed counts as one."""
    facts = ctx.beside.directory
    if facts is None or not spn:
        return None
    return "duplicate" if facts.is_duplicate(spn) else facts.lookup(spn).status


def lookup(ctx: Context, spn: str | None) -> SpnLookup | None:
    facts = ctx.beside.directory
    return facts.lookup(spn) if facts is not None and spn else None


def directory_evidence(ctx: Context, text: str, *records: Account | Trust) -> Evidence:
    """A fact from the directory, as evidence naming where it was read: the file and line of the first
    account or trust it is about, else the sources the facts came from."""
    for record in records:
        if record.source:
            where, _, line = record.source.rpartition(" line ")
            if where and line.isdigit():
                return Evidence(None, text, source="directory", file=where, line=int(line))
            return Evidence(None, text, source="directory", file=record.source)
    facts = ctx.beside.directory
    where = ", ".join(facts.sources) if facts is not None and facts.sources else None
    return Evidence(None, text, source="directory", file=where)


def keytab_proof(ctx: Context, leg: AuthLeg | None) -> TicketProof | None:
    """What the MP's keytab says of the AP-REQ a leg presented (None: no keytab, or no AP-REQ)."""
    keytab = ctx.beside.keytab
    token = leg.token if leg is not None else None
    der = token.ap_req_der if token is not None else None
    if keytab is None or not der:
        return None
    return keytab.open_ap_req(der)


def keytab_evidence(ctx: Context, leg: AuthLeg, proof: TicketProof) -> Evidence:
    """The proof as evidence: which key opened the presented ticket or why none did (never a key byte)."""
    path = ctx.beside.keytab.path if ctx.beside.keytab is not None else None
    return Evidence(leg.request_frame, f"MP keytab: the {proof.describe()}", source="keytab", file=path)


def mp_computer(facts: DirectoryFacts | None, client: ClientExchange) -> Account | None:
    """The MP's own computer account in the facts (by the short name of the MP the client addressed)."""
    if facts is None or not client.mp_short_name:
        return None
    account = facts.account(client.mp_short_name + "$")
    return account if account is not None and account.kind in (COMPUTER, "unknown") else None


def nlb_application_pool(facts: DirectoryFacts, spn: str, owners: tuple[Account, ...]) -> Account | None:
    """The user account an NLB MP's application pool runs as, holding ``HTTP/<NLB name>`` on purpose.

    Recognised when all of these hold: (1) exactly one account holds the SPN itself and it is a user;
    (2) every SPN of that user is an HTTP SPN of the same host (FQDN or short name, any port) — a service
    account made for this one web name, not a user that also runs other services; (3) the host is no
    computer's name: no computer account holds ``HOST/<host>`` nor is named ``<host>$`` (a virtual
    cluster name, not the MP server itself). The MP's own name on a user account is the seed's case and
    is flagged."""
    if len(owners) != 1 or owners[0].kind != USER:
        return None
    user = owners[0]
    cls, host, _ = split_spn(spn)
    short = host.split(".", 1)[0]
    if cls != "http" or not user.spns:
        return None
    if any(split_spn(s)[0] != "http" or split_spn(s)[1] not in (host, short) for s in user.spns):
        return None
    for a in facts.accounts:
        if a.kind == COMPUTER and (a.name.lower() == short + "$"
                                   or a.holds(f"host/{host}") or a.holds(f"host/{short}")):
            return None
    return user
