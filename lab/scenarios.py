"""The lab scenarios: what each sets up, what its clients do, and the outcome the lab expects.

A scenario returns one :class:`Outcome` per client; the build then locates the evidence in the capture and
refuses to write a manifest whose expected outcome the capture does not show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab.dns_server import SrvRecord
from lab.runner import Runner
from lab.world import DEAD_KDC_IP, TRUST_PASSWORD, Client, Mp, World, mp_srv_name, smsid_for

MP01 = Mp("mp01", "127.0.0.10")
MP02 = Mp("mp02", "127.0.0.11")
MP03 = Mp("mp03", "127.0.0.12")
MP04 = Mp("mp04", "127.0.0.13", spn_registered=False)  # HTTP/mp04.corp.lab missing from the KDC
MP05 = Mp("mp05", "127.0.0.14", https=True)  # HTTPS MP
MP06 = Mp("mp06", "127.0.0.15", spn_registered=False, https=True)  # HTTPS MP whose SPN is missing
MP07 = Mp("mp07", "127.0.0.16", https=True, client_cert=True)  # HTTPS MP requiring a PKI client certificate
SHARED_USER = "smsclient"  # registration identity shared by several clients (SMS client connection account)
SHARED_OLD_PASSWORD = "lab-sms-old-pw"  # test-only; the stale clients still hold it
SHARED_NEW_PASSWORD = "lab-sms-new-pw"  # test-only; set in the KDC by the password change
STALE_NAME = "mp-old.corp.lab"  # retired MP name, gone from DNS
SKEW = "+2h"  # libfaketime offset; MIT's default clockskew is 300 s
CORP_SRV = mp_srv_name("corp.lab")  # _mssms_mp_lab._tcp.corp.lab
CHILD_SRV = mp_srv_name("child.corp.lab")
CLIENT_ONLY_ETYPES = "camellia256-cts-cmac"  # valid for MIT, but the realm has AES keys only


@dataclass
class Outcome:
    """What the lab configured for one client and what the client reported."""

    client: Client
    mp_name: str
    verdict: str
    auth: str | None  # None: the capture cannot show the mechanism (it is inside TLS)
    cause: str
    secondary: list[str] = field(default_factory=list)
    result: dict[str, object] | None = None
    # what the lab knows but the capture cannot show (e.g. the outcome of a registration inside TLS);
    # verdict/auth/cause above are what the capture shows
    truth: dict[str, object] | None = None


@dataclass
class Scenario:
    name: str
    description: str
    clients: list[Client]
    mps: list[Mp]
    run: Callable[[Runner], list[Outcome]]
    max_dgram_reply: int | None = None
    extra_dns: dict[str, str] = field(default_factory=dict)
    background: bool = False
    srv_records: dict[str, list[SrvRecord]] = field(default_factory=dict)
    # findings about several clients at once, e.g. the sources of an account's lockout; filled in by run()
    fleet: list[dict[str, object]] = field(default_factory=list)

    def world(self, root: Path) -> World:
        return World(root, self.clients, self.mps, self.max_dgram_reply, dict(self.extra_dns),
                     dict(self.srv_records))


def srv_set(*targets: str) -> list[SrvRecord]:
    """One SRV rrset as ConfigMgr publishes it: every MP at priority 0, weight 0, port 80."""
    return [(0, 0, 80, t) for t in targets]


# ---- building blocks shared by the single scenarios and the mixed one ----------------------------------

def ok(r: Runner, c: Client) -> Outcome:
    r.kinit(c)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "approved", "kerberos", "ok", result=res)


def spn_wrong_account(r: Runner, c: Client) -> Outcome:
    r.kinit(c)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "kerberos", "spn_wrong_account", result=res)


def spn_missing(r: Runner, c: Client) -> Outcome:
    r.kinit(c)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "ntlm", "spn_missing", ["ntlm_fallback"], res)


def clock_skew(r: Runner, c: Client) -> Outcome:
    r.kinit(c)
    r.kvno(c, c.mp.spn)  # service ticket fetched with the right clock: the TGS exchange succeeds
    res = r.register(c, faketime=SKEW)
    return Outcome(c, c.mp.fqdn, "not_approved", "kerberos", "clock_skew", result=res)


def locked(r: Runner, c: Client, maxfailure: int = 3) -> Outcome:
    kdc = r.world.kdcs[c.realm]
    principal = c.account.split("@")[0]
    kdc.kadmin(f"addpol -maxfailure {maxfailure} -failurecountinterval 0 -lockoutduration 0 "
               f"lockout-{c.hostname}")
    kdc.kadmin(f"modprinc -policy lockout-{c.hostname} {principal}")
    kdc.kadmin(f"cpw -randkey {principal}")  # the machine's keytab is now stale: wrong password
    for _ in range(maxfailure):
        r.kinit(c, expect_ok=False)  # PREAUTH_FAILED each time, then the account is locked
    r.kinit(c, expect_ok=False)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "none", "account_revoked", ["preauth_failed"], res)


def disabled(r: Runner, c: Client) -> Outcome:
    r.world.kdcs[c.realm].kadmin(f"modprinc -allow_tix {c.account.split('@')[0]}")
    r.kinit(c, expect_ok=False)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "none", "account_revoked", result=res)


def no_trust(r: Runner, c: Client) -> Outcome:
    r.kinit(c)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "ntlm", "no_trust_path", ["ntlm_fallback"], res)


def dns_failure(r: Runner, c: Client) -> Outcome:
    """The client's SRV answer names only the retired MP; its A lookup gets NXDOMAIN."""
    r.kinit(c)
    res = r.register(c)
    return Outcome(c, STALE_NAME, "not_approved", "none", "dns_failure", result=res)


def trust_broken(r: Runner, c: Client) -> Outcome:
    """The parent KDC holds another key for krbtgt/CORP.LAB@CHILD.CORP.LAB than the child KDC (same kvno).

    The child KDC still issues the referral TGT; the parent cannot decrypt it. SPNEGO then falls back to
    NTLM, which the MP cannot verify either (the client is built with ``ntlm_at_mp=False``): in AD, NTLM
    pass-through to the child domain runs over the same broken trust. The trust is repaired afterwards so
    the other child clients of a mixed capture keep working.
    """
    corp = r.world.kdcs["CORP.LAB"]
    name = "krbtgt/CORP.LAB@CHILD.CORP.LAB"
    corp.kadmin(f"delprinc -force {name}")
    corp.kadmin(f"addprinc -randkey {name}")
    try:
        r.kinit(c)
        res = r.register(c)
    finally:
        corp.kadmin(f"delprinc -force {name}")
        corp.add_principal(name, password=TRUST_PASSWORD + "-down")
    return Outcome(c, c.mp.fqdn, "not_approved", "ntlm", "trust_broken", ["ntlm_fallback"], res)


def kdc_unreachable(r: Runner, c: Client) -> Outcome:
    """Its krb5.conf names a KDC address where nothing listens: no TGT, no service ticket."""
    r.kinit(c, expect_ok=False)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "none", "kdc_unreachable", result=res)


def etype_unsupported(r: Runner, c: Client) -> Outcome:
    """The AS-REQ offers only an etype the realm has no keys of: KDC_ERR_ETYPE_NOSUPP, no TGT.

    MIT's client only uses a TGT whose session key is one of its TGS etypes, so the mismatch cannot be
    confined to the TGS exchange on the client side; it shows on the AS exchange, as for a Windows
    machine restricted to DES against DCs that no longer allow it.
    """
    r.kinit(c, expect_ok=False)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "none", "etype_unsupported", result=res)


def no_credentials(r: Runner, c: Client) -> Outcome:
    """No keytab, no NTLM secret: anonymous request, 401, and the Negotiate step fails on the client."""
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "none", "no_kerberos_attempt", result=res)


def ntlm_only(r: Runner, c: Client) -> Outcome:
    """TGT at boot, but the client's Negotiate offers NTLM only; registered, not approved."""
    r.kinit(c)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", "ntlm", "ntlm_fallback", result=res)


def duplicate(r: Runner, first: Client, second: Client) -> list[Outcome]:
    a = ok(r, first)
    a.secondary.append("duplicate_guid")
    r.kinit(second)
    res = r.register(second)
    return [a, Outcome(second, second.mp.fqdn, "not_approved", "kerberos", "duplicate_guid", result=res)]


def https_registered(r: Runner, c: Client) -> Outcome:
    """Kerberos registration with an HTTPS MP: ticket in clear on port 88, AP-REQ and reply inside TLS."""
    r.kinit(c)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "inconclusive", None, "registration_encrypted", result=res,
                   truth={"verdict": "approved", "auth": "kerberos", "approval_status": 1})


def https_spn_missing(r: Runner, c: Client) -> Outcome:
    """HTTPS MP without its SPN: error 7 in clear; the NTLM fallback and the pending reply stay inside TLS."""
    r.kinit(c)
    res = r.register(c)
    return Outcome(c, c.mp.fqdn, "not_approved", None, "spn_missing", result=res,
                   truth={"verdict": "not_approved", "auth": "ntlm", "approval_status": 0})


def shared_user_lockout(r: Runner, stale: list[Client], fresh: list[Client], maxfailure: int = 3
                        ) -> list[Outcome]:
    """One user principal registers several clients; its password changed, ``stale`` clients keep the old one.

    Each stale client's AS-REQ fails pre-authentication until ``maxfailure`` locks the account; after that the
    KDC refuses everyone, the clients that hold the new password too. No client holds NTLM credentials, so
    each stops at the anonymous 401, as a machine whose account is locked does.
    """
    kdc = r.world.kdcs["CORP.LAB"]
    policy = f"lockout-{SHARED_USER}"
    kdc.kadmin(f"addpol -maxfailure {maxfailure} -failurecountinterval 0 -lockoutduration 0 {policy}")
    kdc.add_principal(SHARED_USER, password=SHARED_OLD_PASSWORD, options=f"-policy {policy}")
    for c in stale:
        kdc.export_keytab(SHARED_USER, r.world.client_keytab(c))
    kdc.kadmin(f"cpw -pw {SHARED_NEW_PASSWORD} {SHARED_USER}")
    for c in fresh:
        kdc.export_keytab(SHARED_USER, r.world.client_keytab(c))
    for c in stale:  # PREAUTH_FAILED for each; the last one reaches maxfailure and locks the account
        r.kinit(c, expect_ok=False)
    out = []
    for c in fresh + stale:  # CLIENT_REVOKED for everyone now, the right password included
        r.kinit(c, expect_ok=False)
        res = r.register(c)
        out.append(Outcome(c, c.mp.fqdn, "not_approved", "none", "account_revoked",
                           ["preauth_failed"] if c in stale else [], res))
    return out


def rekey_mp(r: Runner, mp: Mp) -> None:
    """The KDC now encrypts HTTP/<mp> tickets under a key the MP's keytab does not hold (same kvno).

    Stands for the SPN being registered on another account: the ticket is valid, just not for this server.
    """
    kdc = r.world.kdcs["CORP.LAB"]
    kdc.kadmin(f"delprinc -force {mp.spn}")
    kdc.kadmin(f"addprinc -randkey {mp.spn}")


# ---- the scenarios ----------------------------------------------------------------------------------

def _single(name: str, description: str, client: Client, step: Callable[[Runner, Client], Outcome],
            **kw: object) -> Scenario:
    if client.srv and "srv_records" not in kw:  # the site publishes its MP, as ConfigMgr does by default
        kw["srv_records"] = {client.srv: srv_set(client.mp.fqdn)}
    return Scenario(name, description, [client], [client.mp], lambda r: [step(r, client)], **kw)  # type: ignore[arg-type]


def _spn_other(r: Runner, c: Client) -> Outcome:
    rekey_mp(r, c.mp)
    return spn_wrong_account(r, c)


def _duplicate_scenario() -> Scenario:
    a = Client("WK10", "CORP.LAB", "127.0.1.10", MP01)
    b = Client("WK11", "CORP.LAB", "127.0.1.11", MP01, smsid=a.smsid)
    return Scenario("duplicate_guid", "Two machines present the same SMSID (cloned image): the first is "
                    "approved, the second gets a pending conflicting record.", [a, b], [MP01],
                    lambda r: duplicate(r, a, b))


def _https_scenario() -> Scenario:
    a = Client("WK19", "CORP.LAB", "127.0.1.19", MP05)
    b = Client("WK20", "CORP.LAB", "127.0.1.20", MP06, ntlm=True)
    c = Client("WK25", "CORP.LAB", "127.0.1.25", MP07, pki=True)
    return Scenario("https_mp", "HTTPS MPs (TLS 1.2 on port 443): WK19 gets its ticket for HTTP/mp05 and "
                    "registers inside TLS (approved, which the capture cannot show); WK20 gets "
                    "KDC_ERR_S_PRINCIPAL_UNKNOWN for HTTP/mp06, whose SPN is missing, and falls back to NTLM "
                    "inside TLS; WK25 presents its PKI client certificate to mp07, which requires one, then "
                    "registers with Kerberos inside TLS.", [a, b, c], [MP05, MP06, MP07],
                    lambda r: [https_registered(r, a), https_spn_missing(r, b), https_registered(r, c)])


def _user_lockout_scenario() -> Scenario:
    def client(host: str, ip: str) -> Client:
        return Client(host, "CORP.LAB", ip, MP01, principal=f"{SHARED_USER}@CORP.LAB")

    stale = [client("WK21", "127.0.1.21"), client("WK22", "127.0.1.22"), client("WK23", "127.0.1.23")]
    fresh = [client("WK24", "127.0.1.24")]
    sc = Scenario("user_lockout", f"Clients register as the user {SHARED_USER}@CORP.LAB (a shared client "
                  "connection account). Its password was changed; three clients still use the old one: "
                  "PREAUTH_FAILED until the lockout policy locks the account, then CLIENT_REVOKED for every "
                  "client, the one with the new password too.", stale + fresh, [MP01], lambda r: [])

    def run(r: Runner) -> list[Outcome]:
        out = shared_user_lockout(r, stale, fresh)
        sc.fleet = [{"code": "lockout_sources", "principal": f"{SHARED_USER}@CORP.LAB",
                     "sources": [c.ip for c in stale]}]
        return out

    sc.run = run
    return sc


def _mixed_scenario() -> Scenario:
    plan: list[tuple[Client, Callable[[Runner, Client], Outcome]]] = []
    n = 0

    def add(host: str, realm: str, mp: Mp, step: Callable[[Runner, Client], Outcome], **kw: object) -> Client:
        nonlocal n
        n += 1
        net = {"CORP.LAB": 1, "CHILD.CORP.LAB": 2, "OTHER.LAB": 3}[realm]
        if realm == "CORP.LAB":  # CORP machines locate their MP through the site's SRV record
            kw.setdefault("srv", CORP_SRV)
        c = Client(host, realm, f"127.0.{net}.{100 + n}", mp, **kw)  # type: ignore[arg-type]
        plan.append((c, step))
        return c

    mps = [MP01, MP02, MP03, MP04]
    for i in range(8):
        add(f"PC{i + 1:02d}", "CORP.LAB", mps[i % 2], ok)
    for i in range(6):
        add(f"CPC{i + 1:02d}", "CHILD.CORP.LAB", mps[i % 2], ok, kerberos_tcp=(i == 5))
    for i in range(3):
        add(f"SRV{i + 1:02d}", "CORP.LAB", MP03, spn_wrong_account)
    for i in range(3):
        add(f"XPC{i + 1:02d}", "OTHER.LAB", mps[i % 2], no_trust, ntlm=True)
    for i in range(2):
        add(f"KIOSK{i + 1:02d}", "CORP.LAB", MP04, spn_missing, ntlm=True)
    for i in range(2):
        add(f"LAP{i + 1:02d}", "CHILD.CORP.LAB", MP02, clock_skew)
    add("OLD01", "CORP.LAB", MP01, disabled)
    add("OLD02", "CORP.LAB", MP02, locked)
    # a child-domain machine; the child zone still holds an SRV record naming the retired MP
    add("VM01", "CHILD.CORP.LAB", MP01, dns_failure, srv=CHILD_SRV)
    add("TRUST01", "CHILD.CORP.LAB", MP02, trust_broken, ntlm=True, ntlm_at_mp=False)
    add("NOKDC01", "CORP.LAB", MP01, kdc_unreachable, kdc_ip=DEAD_KDC_IP)
    add("ETYPE01", "CORP.LAB", MP02, etype_unsupported, enctypes=CLIENT_ONLY_ETYPES)
    add("WG01", "CORP.LAB", MP01, no_credentials, ntlm=True, credentials=False)
    add("NTLM01", "CORP.LAB", MP02, ntlm_only, ntlm=True, kerberos=False)
    dup_a = add("CLONE01", "CORP.LAB", MP01, ok)  # one site database: same MP process
    dup_b = add("CLONE02", "CORP.LAB", MP01, ok, smsid=smsid_for("CLONE01"))
    for i in range(3):  # these still have an MP from an earlier lookup: they resolve its name directly
        add(f"PC{i + 9:02d}", "CORP.LAB", mps[i % 2], ok, srv=None)
    # interleave the outcomes: round-robin over kinds instead of one block per kind
    order = [c for c, _ in plan]
    steps = dict((c.hostname, s) for c, s in plan)
    order = order[::3] + order[1::3] + order[2::3]

    def run(r: Runner) -> list[Outcome]:
        rekey_mp(r, MP03)
        r.start_background()
        out: list[Outcome] = []
        for i, c in enumerate(order):
            if c is dup_b:
                continue
            if c is dup_a:
                out += duplicate(r, dup_a, dup_b)
            else:
                out.append(steps[c.hostname](r, c))
            if i % 5 == 2:
                r.background_step(i)
        r.stop_background()
        return out

    return Scenario("mixed", "Busy site: clients of three realms over four MPs with every outcome "
                    "interleaved, plus unrelated web, DNS and bulk TCP traffic.", order, mps, run,
                    background=True, srv_records={CORP_SRV: srv_set(*(mp.fqdn for mp in mps)),
                                                  CHILD_SRV: srv_set(STALE_NAME)})


def all_scenarios() -> list[Scenario]:
    return [
        _single("ok_same_realm", "Client and MP in the same realm: TGT, service ticket, approved.",
                Client("WK01", "CORP.LAB", "127.0.1.1", MP01), ok),
        _single("ok_child_referral", "Client in a child domain with no realm mapping for the MP: its KDC "
                "returns a referral TGT krbtgt/CORP.LAB, the parent KDC issues HTTP/mp01.",
                Client("WK05", "CHILD.CORP.LAB", "127.0.2.5", MP01), ok),
        _single("spn_on_other_account", "HTTP/mp01 tickets are encrypted under a key the MP does not hold "
                "(SPN registered on another account): the MP cannot decrypt the AP-REQ.",
                Client("WK02", "CORP.LAB", "127.0.1.2", MP01), _spn_other),
        _single("spn_missing", "MP mp04 has its keytab but HTTP/mp04.corp.lab is not registered in the "
                "directory: KDC_ERR_S_PRINCIPAL_UNKNOWN, then NTLM inside SPNEGO; registered but not approved.",
                Client("WK03", "CORP.LAB", "127.0.1.3", MP04, ntlm=True), spn_missing),
        _single("clock_skew", f"Service ticket obtained normally, AP-REQ built with the clock moved {SKEW}: "
                "the MP rejects it as skewed.", Client("WK04", "CORP.LAB", "127.0.1.4", MP01), clock_skew),
        _single("account_locked", "Machine account with a stale password: PREAUTH_FAILED until the lockout "
                "policy locks it, then the KDC refuses the AS-REQ.",
                Client("WK06", "CORP.LAB", "127.0.1.6", MP01), locked),
        _single("account_disabled", "Machine account disabled (MIT: -allow_tix): the KDC refuses the AS-REQ.",
                Client("WK07", "CORP.LAB", "127.0.1.7", MP01), disabled),
        _single("no_trust_path", "Client in OTHER.LAB, no trust to CORP.LAB: its KDC cannot find or refer "
                "HTTP/mp01, the client falls back to NTLM; registered but not approved.",
                Client("WK09", "OTHER.LAB", "127.0.3.9", MP01, ntlm=True), no_trust),
        _duplicate_scenario(),
        _single("kerberos_over_tcp", "KDC replies larger than its UDP limit: KRB_ERR_RESPONSE_TOO_BIG, the "
                "client retries over TCP; approved.", Client("WK12", "CORP.LAB", "127.0.1.12", MP01), ok,
                max_dgram_reply=400),
        _single("dns_failure", f"The site's MP SRV record {CORP_SRV} still names the retired MP {STALE_NAME}; "
                "its A lookup gets NXDOMAIN, no HTTP.",
                Client("WK13", "CORP.LAB", "127.0.1.13", MP01, srv=CORP_SRV), dns_failure,
                srv_records={CORP_SRV: srv_set(STALE_NAME)}),
        _single("trust_broken", "Child-domain client; the parent KDC holds another key for the inter-realm "
                "TGT krbtgt/CORP.LAB@CHILD.CORP.LAB than the child KDC: referral issued, then refused.",
                Client("WK14", "CHILD.CORP.LAB", "127.0.2.14", MP01, ntlm=True, ntlm_at_mp=False), trust_broken),
        _single("kdc_unreachable", f"The client's KDC address {DEAD_KDC_IP} has no KDC: its AS-REQs go "
                "unanswered, no ticket; no NTLM fallback.",
                Client("WK15", "CORP.LAB", "127.0.1.15", MP01, srv=CORP_SRV, kdc_ip=DEAD_KDC_IP),
                kdc_unreachable),
        _single("etype_unsupported", f"The client offers only {CLIENT_ONLY_ETYPES}; the realm has AES keys "
                "only: the KDC refuses the AS-REQ, no ticket, no NTLM fallback.",
                Client("WK16", "CORP.LAB", "127.0.1.16", MP01, srv=CORP_SRV, enctypes=CLIENT_ONLY_ETYPES),
                etype_unsupported),
        _single("no_kerberos_attempt", "Client with no credentials at all (no machine keytab, no NTLM "
                "secret): anonymous request, 401 Negotiate, nothing else.",
                Client("WK17", "CORP.LAB", "127.0.1.17", MP01, srv=CORP_SRV, ntlm=True, credentials=False),
                no_credentials),
        _single("ntlm_only", "Client whose Negotiate offers NTLM only, against a healthy MP: registered, "
                "not approved.", Client("WK18", "CORP.LAB", "127.0.1.18", MP01, srv=CORP_SRV, ntlm=True,
                                        kerberos=False), ntlm_only),
        _https_scenario(),
        _user_lockout_scenario(),
        _mixed_scenario(),
    ]
