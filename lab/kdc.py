"""MIT Kerberos KDCs, one realm per KDC, each on its own loopback address with private config and database.

Each realm lives in its own directory; the KDC process gets ``KRB5_CONFIG``/``KRB5_KDC_PROFILE`` pointing
there, so realms never see each other's files and nothing under /etc is touched.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lab import procs

ENCTYPES = "aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal"
MASTER_PASSWORD = "lab-master-key"  # test-only database master key, never a real secret


@dataclass
class RealmSpec:
    """What one KDC serves and how it answers for names outside its realm."""

    realm: str
    ip: str
    # KDC-side host referral table (domain -> realm): a TGS-REQ for an unknown host-based SPN in one of
    # these domains is answered with a referral TGT krbtgt/<realm>, like an AD DC consulting the GC.
    referrals: dict[str, str] = field(default_factory=dict)
    max_dgram_reply: int | None = None  # kdc_max_dgram_reply_size: small -> KRB_ERR_RESPONSE_TOO_BIG


class Kdc:
    """One MIT ``krb5kdc`` with its database, principals and keytabs."""

    def __init__(self, spec: RealmSpec, root: Path) -> None:
        self.spec = spec
        self.dir = root / spec.realm.lower()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for MIT admin tools and the KDC itself."""
        return {"KRB5_CONFIG": str(self.dir / "krb5.conf"), "KRB5_KDC_PROFILE": str(self.dir / "kdc.conf")}

    @property
    def log(self) -> Path:
        return self.dir / "kdc.log"

    def create(self) -> None:
        """Write the config files and create the database with its stash file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        s = self.spec
        dgram = f" kdc_max_dgram_reply_size = {s.max_dgram_reply}\n" if s.max_dgram_reply else ""
        (self.dir / "kdc.conf").write_text(
            "[kdcdefaults]\n"
            f" kdc_listen = {s.ip}:88\n"
            f" kdc_tcp_listen = {s.ip}:88\n"
            f"{dgram}"
            "[realms]\n"
            f" {s.realm} = {{\n"
            f"  database_name = {self.dir / 'principal'}\n"
            f"  key_stash_file = {self.dir / 'stash'}\n"
            f"  acl_file = {self.dir / 'kadm5.acl'}\n"
            "  master_key_type = aes256-cts-hmac-sha1-96\n"
            f"  supported_enctypes = {ENCTYPES}\n"
            "  default_principal_flags = +preauth\n"
            "  max_life = 10h 0m 0s\n"
            "  max_renewable_life = 7d 0h 0m 0s\n"
            "  host_based_services = HTTP host\n"
            " }\n"
            "[logging]\n"
            f" kdc = FILE:{self.log}\n"
        )
        mapping = "".join(f" .{d} = {r}\n {d} = {r}\n" for d, r in s.referrals.items())
        (self.dir / "krb5.conf").write_text(
            "[libdefaults]\n"
            f" default_realm = {s.realm}\n"
            " dns_lookup_kdc = false\n dns_lookup_realm = false\n"
            "[realms]\n"
            f" {s.realm} = {{\n  kdc = {s.ip}\n }}\n"
            "[domain_realm]\n" + mapping
        )
        (self.dir / "kadm5.acl").write_text("")
        procs.run(["kdb5_util", "create", "-s", "-r", s.realm, "-P", MASTER_PASSWORD], env=self.env)

    def kadmin(self, query: str) -> str:
        """Run one kadmin.local query against this realm's database; MIT prints failures on stderr only."""
        out = procs.run(["kadmin.local", "-r", self.spec.realm, "-q", query], env=self.env)
        if "error" in out.stderr.lower() or "failed" in out.stderr.lower():
            raise procs.LabError(f"kadmin.local -q {query!r}: {out.stderr.strip()}")
        return out.stdout

    def add_principal(self, name: str, *, password: str | None = None, keytab: Path | None = None,
                      options: str = "") -> None:
        """Create a principal (random key unless a password is given) and optionally export its keytab."""
        key = f"-pw {password}" if password else "-randkey"
        self.kadmin(f"addprinc {options} {key} {name}")
        if keytab is not None:
            self.export_keytab(name, keytab)

    def export_keytab(self, name: str, keytab: Path) -> None:
        """Export the current keys without re-keying (``-norandkey``), so the KDC and keytab agree."""
        keytab.parent.mkdir(parents=True, exist_ok=True)
        self.kadmin(f"ktadd -k {keytab} -norandkey {name}")

    def start(self) -> None:
        """Start krb5kdc in the foreground (-n) and wait until it logs that it serves requests."""
        self.proc = procs.start(["krb5kdc", "-n", "-r", self.spec.realm], env=self.env,
                                log=self.dir / "krb5kdc.out")

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise procs.LabError(f"krb5kdc for {self.spec.realm} exited; see {self.dir}/krb5kdc.out")
            return self.log.exists() and "commencing operation" in self.log.read_text(errors="replace")

        procs.wait_until(ready, 10.0, f"KDC {self.spec.realm}")

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


def client_krb5_conf(path: Path, default_realm: str, kdcs: dict[str, str], *,
                     udp_preference_limit: int | None = None, enctypes: str | None = None) -> Path:
    """krb5.conf of a lab client: KDC addresses for every realm but *no* domain_realm mapping.

    Without a mapping for corp.lab, libkrb5 asks the client's own KDC with the referral realm and the
    canonicalize flag, which is what a Windows client does; the KDC then refers it across the trust.
    """
    udp = f" udp_preference_limit = {udp_preference_limit}\n" if udp_preference_limit else ""
    if enctypes:  # the only etypes the client offers, in AS-REQs and TGS-REQs alike
        udp += f" default_tkt_enctypes = {enctypes}\n default_tgs_enctypes = {enctypes}\n"
    realms = "".join(f" {r} = {{\n  kdc = {ip}\n }}\n" for r, ip in kdcs.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[libdefaults]\n"
        f" default_realm = {default_realm}\n"
        " dns_lookup_kdc = false\n dns_lookup_realm = false\n"
        " dns_canonicalize_hostname = false\n rdns = false\n"
        " ignore_acceptor_hostname = true\n"
        f"{udp}"
        "[realms]\n" + realms
    )
    return path
