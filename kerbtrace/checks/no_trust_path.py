"""no_trust_path: the MP is in another realm and the client's KDC gave no referral to it.

Kerberos across an external trust is not supported (no name-suffix routing), nor between forests
without a forest trust: the client's DC answers KDC_ERR_S_PRINCIPAL_UNKNOWN for HTTP/<mp> instead of
a referral TGT, and the client cannot be auto-approved.
"""

from __future__ import annotations

from kerbtrace.checks import fixes
from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.beside import directory_evidence
from kerbtrace.checks.common import (
    kdc_errors,
    kerberos_accepted,
    mp_service_errors,
    ntlm_legs,
    realm_related,
    referrals,
)
from kerbtrace.codes import krb_error
from kerbtrace.constants import Cause, KrbError, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.NO_TRUST_PATH
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "CSS article 'how client approval works': client and MP in domains with only an external trust",
    'Forest trusts: Kerberos across forests (technet cc773178)',
    'KB 2008039: logon over an external trust uses NTLM',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client) or referrals(client):
        return None
    errors = mp_service_errors(client, (7,))
    mp_realm = client.mp_realm
    if not errors or mp_realm is None:
        return None
    error = errors[-1]
    answered_by = (error.rep.realm if error.rep is not None else None) or error.realm
    if realm_related(answered_by, mp_realm):
        return None
    evidence = [Evidence(error.frame, f"{answered_by} KDC {error.kdc_ip} has no referral for {error.sname}: "
                                      "KDC_ERR_S_PRINCIPAL_UNKNOWN")]
    # the client then asks for a TGT of the MP's realm itself: the refusal shows there is no trust path
    evidence += [Evidence(ex.frame, f"{answered_by} KDC {ex.kdc_ip}: KDC_ERR_S_PRINCIPAL_UNKNOWN for {ex.sname}")
                 for ex in kdc_errors(client, (KrbError.KDC_ERR_S_PRINCIPAL_UNKNOWN,))
                 if (ex.sname or "").upper() == f"KRBTGT/{mp_realm}"]
    for leg in ntlm_legs(client)[:1]:
        evidence.append(Evidence(leg.request_frame, "client fell back to NTLM"))
    guessed = client.mp_realm_from_ticket is None
    hedge = (f" (the MP's realm is read from its DNS name; if {client.mp_name} is in the client's forest under a "
             "disjoint DNS namespace, the SPN is missing instead — check `setspn -Q` as well)") if guessed else ""
    trust, fix, commands = _trust(ctx, answered_by or "", mp_realm, evidence)
    return Finding(
        CODE, Severity.ERROR,
        f"The client's realm {answered_by} has no Kerberos trust path to the MP's realm {mp_realm}: its KDC "
        f"answered KDC_ERR_S_PRINCIPAL_UNKNOWN for {error.sname} instead of a referral{hedge}.{trust} Only clients "
        "that authenticate with Kerberos are auto-approved; over an external trust (or none) that cannot happen.",
        fix=fix, codes=[krb_error(7).label()], evidence=evidence, fix_commands=commands)


GENERIC_FIX = ("Use a two-way forest trust between the forests (Kerberos is supported across a forest trust, not an "
               "external trust), with name-suffix routing enabled for the MP's DNS suffix and DNS resolution both "
               "ways; otherwise approve these clients manually or use PKI/HTTPS.")


def _trust(ctx: Context, client_realm: str, mp_realm: str, evidence: list[Evidence]) -> tuple[str, str, list[str]]:
    """(what the directory says of the trust, the fix, its commands), from trust_to(client realm)."""
    mine, theirs = fixes.safe(mp_realm.lower()), fixes.safe(client_realm.lower())
    verify = ["nltest /domain_trusts /v", f"netdom trust {mine} /domain:{theirs} /verify"]
    facts = ctx.beside.directory
    if facts is None or not client_realm:
        return "", GENERIC_FIX, verify
    trust = facts.trust_to(client_realm)
    if trust is None:
        if not facts.trusts_read:
            return "", GENERIC_FIX, verify
        evidence.append(directory_evidence(ctx, f"the directory of {facts.domain or mp_realm} lists no trust "
                                                f"with {client_realm}"))
        return (f" The directory lists no trust at all with {client_realm}.",
                "Create a two-way forest trust between the two forests (with DNS resolution both ways), or approve "
                "these clients manually, or use PKI/HTTPS.", ["nltest /domain_trusts /v"])
    attrs = ", ".join(trust.attribute_names) or "none"
    evidence.append(directory_evidence(ctx, f"trust with {trust.name}: {trust.kind} (type {trust.type_name}, "
                                            f"direction {trust.direction_name}, attributes {attrs})", trust))
    if trust.kind == "external":
        return (f" The directory shows an external trust with {trust.name}: an external trust does not route "
                "host SPNs (no name-suffix routing), so Kerberos to the MP cannot work across it and the client "
                "falls back to NTLM.",
                f"Replace the external trust with a two-way forest trust between the forest roots of {mine} and "
                f"{theirs} (Kerberos crosses forest trusts only), or approve these clients manually, or use "
                "PKI/HTTPS.", verify)
    if trust.kind == "forest":
        suffix = mine
        return (f" The directory shows a forest trust with {trust.name}, so the MP's name suffix ({suffix}) is not "
                "routed over it: the suffix is disabled, excluded, or in conflict in the trust's name-suffix "
                "routing, or the MP's DNS name is outside the suffixes the forest claims.",
                f"In the client's forest, enable name-suffix routing for *.{suffix} on the trust to {mine} "
                "(Active Directory Domains and Trusts > trust properties > Name Suffix Routing, or `netdom trust "
                "/namesuffixes` then `/togglesuffix`), and check the MP's FQDN is under a routed suffix.",
                [f"netdom trust {theirs} /domain:{mine} /namesuffixes:{mine}", *verify])
    if trust.kind == "realm":
        return (f" The directory shows a realm (MIT) trust with {trust.name}: the client's KDC must map the MP's "
                "host to its realm ([domain_realm] on an MIT KDC) to refer it.",
                f"Map .{mine} to {mp_realm} in the client realm's krb5.conf [domain_realm] (and capaths if needed), "
                "or approve these clients manually.", verify)
    return (f" The directory shows a {trust.kind.replace('_', ' ')} trust with {trust.name}, which should give a "
            "referral: the trust is broken or the client's DC does not see it.",
            "Verify and reset the trust (`netdom trust ... /verify`, `/reset`) and the DCs' replication.", verify)
