"""Lab topology: realms, KDCs, DNS, management points and client identities of one scenario.

Every scenario builds a fresh world in its own temporary directory (new KDC databases, keytabs, logs), so
re-keying or locking an account in one scenario cannot leak into another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from lab.dns_server import DnsServer, SrvRecord
from lab.kdc import Kdc, RealmSpec, client_krb5_conf
from lab.mp_server import MpServer
from lab.tls import Pki, make_server_certificate


@dataclass(frozen=True)
class Realm:
    name: str
    domain: str
    netbios: str
    kdc_ip: str
    kdc_host: str


REALMS: dict[str, Realm] = {
    "CORP.LAB": Realm("CORP.LAB", "corp.lab", "CORP", "127.0.0.88", "dc01"),
    "CHILD.CORP.LAB": Realm("CHILD.CORP.LAB", "child.corp.lab", "CHILD", "127.0.0.89", "dc02"),
    "OTHER.LAB": Realm("OTHER.LAB", "other.lab", "OTHER", "127.0.0.90", "dc03"),
}
DNS_IP = "127.0.0.53"
WEB_IP = "127.0.0.80"
BULK_IP = "127.0.0.81"
DEAD_KDC_IP = "127.0.0.87"  # named as a KDC in some client configs; nothing listens there
SITE_CODE = "LAB"
TRUST_PASSWORD = "lab-trust-CORP-CHILD"  # test-only inter-realm key seed
MP_REALM = "CORP.LAB"
# Realm of each MP simulator's acceptor; referral table of each KDC (KDC-side host referrals).
KDC_REFERRALS: dict[str, dict[str, str]] = {
    "CORP.LAB": {"child.corp.lab": "CHILD.CORP.LAB"},
    "CHILD.CORP.LAB": {"corp.lab": "CORP.LAB"},
    "OTHER.LAB": {},
}


@dataclass(frozen=True)
class Mp:
    """A management point: HTTP/<fqdn> service principal in CORP.LAB, simulator on ``ip``:80 (443 if HTTPS)."""

    name: str
    ip: str
    spn_registered: bool = True  # False: in DNS and holding a keytab, but the KDC has no HTTP/<fqdn>
    https: bool = False  # True: TLS on port 443 with a self-signed certificate for <fqdn>
    client_cert: bool = False  # HTTPS MP that requires a client certificate from the lab's PKI

    @property
    def port(self) -> int:
        return 443 if self.https else 80

    @property
    def fqdn(self) -> str:
        return f"{self.name}.corp.lab"

    @property
    def spn(self) -> str:
        return f"HTTP/{self.fqdn}"


@dataclass
class Client:
    """One ConfigMgr client machine: its computer account, address, SMSID and the MP name it uses."""

    hostname: str
    realm: str
    ip: str
    mp: Mp
    smsid: str = ""
    ntlm: bool = False  # client holds NTLM credentials (gss-ntlmssp user file) for SPNEGO fallback
    kerberos_tcp: bool = False  # krb5.conf udp_preference_limit = 1: every KDC exchange over TCP
    srv: str | None = None  # SRV name the client locates its MP with; None: resolves the MP's A name directly
    kdc_ip: str | None = None  # KDC address of its own realm in its krb5.conf, if not the real KDC's
    enctypes: str | None = None  # krb5.conf default_tkt/tgs_enctypes: the only etypes it offers
    credentials: bool = True  # False: no keytab, no NTLM secret (a machine that cannot authenticate at all)
    kerberos: bool = True  # offer Kerberos in SPNEGO; False: NTLM only
    ntlm_at_mp: bool = True  # False: the MP's NTLM store lacks the account (pass-through to its DC fails)
    principal: str | None = None  # registration identity other than the machine account (a shared user)
    pki: bool = False  # holds a client authentication certificate from the lab's PKI

    def __post_init__(self) -> None:
        if not self.smsid:
            self.smsid = smsid_for(self.hostname)

    @property
    def account(self) -> str:
        return self.principal or f"{self.hostname.upper()}$@{self.realm}"

    @property
    def fqdn(self) -> str:
        return f"{self.hostname.lower()}.{REALMS[self.realm].domain}"

    @property
    def netbios_domain(self) -> str:
        return REALMS[self.realm].netbios


def mp_srv_name(domain: str, site: str = SITE_CODE) -> str:
    """The SRV name ConfigMgr publishes for a site's MPs: ``_mssms_mp_<sitecode>._tcp.<domain>``."""
    return f"_mssms_mp_{site.lower()}._tcp.{domain}"


def smsid_for(hostname: str) -> str:
    """Stable SMSID per host name, so rebuilt captures keep the same identities."""
    return "GUID:" + str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{hostname.lower()}.kerbtrace.lab")).upper()


def ntlm_password(client: Client) -> str:
    return f"ntlm-{client.hostname.lower()}-pw"  # test-only machine password for the NTLM user files


@dataclass
class World:
    """All lab services of one scenario plus the files each client and MP needs."""

    root: Path
    clients: list[Client]
    mps: list[Mp]
    max_dgram_reply: int | None = None
    extra_dns: dict[str, str] = field(default_factory=dict)
    srv_records: dict[str, list[SrvRecord]] = field(default_factory=dict)
    kdcs: dict[str, Kdc] = field(default_factory=dict)
    dns: DnsServer | None = None
    mp_servers: list[MpServer] = field(default_factory=list)

    # ---- setup -------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for r in REALMS.values():
            dgram = self.max_dgram_reply if r.name != "OTHER.LAB" else None
            kdc = Kdc(RealmSpec(r.name, r.kdc_ip, KDC_REFERRALS[r.name], dgram), self.root / "kdc")
            kdc.create()
            self.kdcs[r.name] = kdc
        corp, child = self.kdcs["CORP.LAB"], self.kdcs["CHILD.CORP.LAB"]
        for kdc in (corp, child):  # two-way parent/child trust: same key on both sides of each direction
            kdc.add_principal("krbtgt/CORP.LAB@CHILD.CORP.LAB", password=TRUST_PASSWORD + "-down")
            kdc.add_principal("krbtgt/CHILD.CORP.LAB@CORP.LAB", password=TRUST_PASSWORD + "-up")
        for mp in self.mps:
            corp.add_principal(mp.spn, keytab=self.mp_keytab(mp))
            if not mp.spn_registered:  # the server keeps its keys, the directory lost the SPN
                corp.kadmin(f"delprinc -force {mp.spn}")
        for c in self.clients:
            # a machine without credentials has no account (a workgroup machine); a shared user principal is
            # created by its scenario, which also decides whose keytab holds which password
            if c.credentials and c.principal is None:
                self.kdcs[c.realm].add_principal(c.account.split("@")[0], keytab=self.client_keytab(c))
        kdc_ips = {r.name: r.kdc_ip for r in REALMS.values()}
        for r in REALMS.values():
            client_krb5_conf(self.client_conf(r.name), r.name, kdc_ips)
            client_krb5_conf(self.client_conf(r.name, tcp=True), r.name, kdc_ips, udp_preference_limit=1)
        for c in self.clients:
            if c.kdc_ip or c.enctypes:
                client_krb5_conf(self.client_conf_of(c), c.realm, {**kdc_ips, c.realm: c.kdc_ip or kdc_ips[c.realm]},
                                 udp_preference_limit=1 if c.kerberos_tcp else None, enctypes=c.enctypes)
        client_krb5_conf(self.root / "mp" / "krb5.conf", MP_REALM, kdc_ips)
        for mp in self.mps:
            if mp.https:
                make_server_certificate(mp.fqdn, mp.ip, self.root / "mp" / "tls")
        if any(mp.client_cert for mp in self.mps) or any(c.pki for c in self.clients):
            pki = Pki(self.root / "pki")
            for c in self.clients:
                if c.pki:
                    pki.client_certificate(c.fqdn)
        # NTLM: the MP (acceptor) knows every machine password, as a DC would through netlogon.
        lines = [f"{c.netbios_domain}:{c.hostname.upper()}$:{ntlm_password(c)}" for c in self.clients
                 if c.ntlm_at_mp]
        (self.root / "mp" / "ntlm_users").write_text("\n".join(lines) + "\n")
        for c in [c for c in self.clients if c.credentials]:
            self.client_ntlm_file(c).parent.mkdir(parents=True, exist_ok=True)
            self.client_ntlm_file(c).write_text(f"{c.netbios_domain}:{c.hostname.upper()}$:{ntlm_password(c)}\n")

    def mp_tls(self, mp: Mp) -> tuple[Path, Path] | None:
        """(certificate, key) of an HTTPS MP; clients trust the certificate file."""
        if not mp.https:
            return None
        d = self.root / "mp" / "tls"
        return d / f"{mp.fqdn}.crt", d / f"{mp.fqdn}.key"

    def mp_client_ca(self, mp: Mp) -> Path | None:
        return self.root / "pki" / "issuing-ca.crt" if mp.client_cert else None

    def client_tls(self, c: Client) -> tuple[Path, Path] | None:
        """(certificate, key) of a client's PKI certificate."""
        d = self.root / "pki"
        return (d / f"{c.fqdn}.crt", d / f"{c.fqdn}.key") if c.pki else None

    def mp_keytab(self, mp: Mp) -> Path:
        return self.root / "mp" / f"{mp.name}.keytab"

    def client_keytab(self, c: Client) -> Path:
        return self.root / "clients" / f"{c.hostname.lower()}.keytab"

    def client_ccache(self, c: Client) -> Path:
        return self.root / "clients" / f"{c.hostname.lower()}.ccache"

    def client_ntlm_file(self, c: Client) -> Path:
        return self.root / "clients" / f"{c.hostname.lower()}.ntlm"

    def client_conf(self, realm: str, tcp: bool = False) -> Path:
        return self.root / "clients" / f"krb5-{realm.lower()}{'-tcp' if tcp else ''}.conf"

    def client_conf_of(self, c: Client) -> Path:
        """The realm's shared krb5.conf, or the client's own when it names another KDC or other etypes."""
        if c.kdc_ip or c.enctypes:
            return self.root / "clients" / f"krb5-{c.hostname.lower()}.conf"
        return self.client_conf(c.realm, c.kerberos_tcp)

    @property
    def dns_records(self) -> dict[str, str]:
        recs = {f"{r.kdc_host}.{r.domain}": r.kdc_ip for r in REALMS.values()}
        recs.update({mp.fqdn: mp.ip for mp in self.mps})
        recs.update({c.fqdn: c.ip for c in self.clients})
        recs.update(self.extra_dns)
        return recs

    def mp_env(self) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.root / "mp" / "krb5.conf"),
                "NTLM_USER_FILE": str(self.root / "mp" / "ntlm_users")}

    def client_env(self, c: Client) -> dict[str, str]:
        env = {"KRB5_CONFIG": str(self.client_conf_of(c)),
               "KRB5CCNAME": f"FILE:{self.client_ccache(c)}",
               "KRB5_KTNAME": "FILE:/nonexistent", "KRB5_CLIENT_KTNAME": "FILE:/nonexistent"}
        if c.ntlm and c.credentials:
            env["NTLM_USER_FILE"] = str(self.client_ntlm_file(c))
        else:
            env["NTLM_USER_FILE"] = str(self.root / "clients" / "no-ntlm-users")
        return env

    @property
    def server_ips(self) -> list[str]:
        """Addresses a client talks to; their local routes get the client's source while it runs."""
        ips = [r.kdc_ip for r in REALMS.values()] + [DEAD_KDC_IP, DNS_IP] + [mp.ip for mp in self.mps]
        return ips + [WEB_IP, BULK_IP]

    # ---- run ---------------------------------------------------------------------------------------
    def start(self) -> None:
        for kdc in self.kdcs.values():
            kdc.start()
        self.dns = DnsServer(DNS_IP, self.dns_records, self.root / "dns", srv=self.srv_records)
        self.dns.start()
        for mp in self.mps:
            srv = MpServer(mp.ip, mp.port, mp.fqdn, str(self.mp_keytab(mp)), self.mp_log_dir(mp),
                           site_code="LAB", env=self.mp_env(), tls=self.mp_tls(mp),
                           client_ca=self.mp_client_ca(mp))
            srv.start()
            self.mp_servers.append(srv)

    def mp_log_dir(self, mp: Mp) -> Path:
        return self.root / "mp" / mp.name

    def stop(self) -> None:
        for srv in self.mp_servers:
            srv.stop()
        self.mp_servers.clear()
        if self.dns is not None:
            self.dns.stop()
        for kdc in self.kdcs.values():
            kdc.stop()
