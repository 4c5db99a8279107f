"""A real Samba AD DC for the directory tests, alone in a network namespace of its own.

Provisioned with ``samba-tool domain provision`` (realm CORP.LAB) into a temporary directory, bound to
127.0.0.53 inside the namespace only, started as ``samba -i -M single`` and stopped by its PID. The
accounts the tests need are created with samba-tool and ldbmodify on the DC's own database:

- ``MP01$`` (computer, enabled) holding HOST/mp01.corp.lab and HOST/MP01, AES-only etypes;
- ``svc-web`` (user) holding HTTP/mp01.corp.lab — the seed's case, an HTTP SPN on a user account
  (Samba allows it locally with a warning, like Windows);
- HTTP/mp02.corp.lab on ``svc-a`` and on ``MP02$`` — a duplicate. Samba refuses duplicate SPNs on every
  write path through its modules, so the second value is written into the domain partition's database
  directly, as a duplicate replicated from an older DC would sit there;
- nothing for mp03 (missing SPN);
- ``disabled-user`` (disabled) and ``locked-user`` (locked out by failed LDAP binds with a lockout
  threshold of 3);
- trustedDomain objects: Samba's ``domain trust create`` needs a second live domain, so they are added
  as entries through the DC's database with the attributes of a real trust but no trust keys
  (trustAuthIncoming/Outgoing): child.corp.lab within the forest, fabrikam.com forest trust,
  partner.org external (quarantined), EXAMPLE.ORG MIT realm. Each needs its securityIdentifier, or
  Samba's KDC fails every TGS-REQ.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ADDRESS = "127.0.0.53"
ADMIN_PASSWORD = "Adm1n-Pass!x"
USER_PASSWORD = "Svc-Pass1!x"
REPO = Path(__file__).resolve().parents[1]

# (trustPartner, flatName, trustType, trustDirection, trustAttributes, securityIdentifier)
TRUSTS = [
    ("child.corp.lab", "CHILD", 2, 3, 0x20, "S-1-5-21-1004336348-1177238915-682003330"),
    ("fabrikam.com", "FABRIKAM", 2, 3, 0x08, "S-1-5-21-1111111111-2222222222-3333333333"),
    ("partner.org", "PARTNER", 2, 2, 0x04, "S-1-5-21-1444444444-555555555-666666666"),
    ("EXAMPLE.ORG", "EXAMPLE.ORG", 3, 3, 0x01, "S-1-5-21-1777777777-888888888-999999999"),
]
TRUSTS_LDIF = "\n".join(
    f"dn: CN={name},CN=System,DC=corp,DC=lab\nobjectClass: trustedDomain\ntrustPartner: {name}\n"
    f"flatName: {flat}\ntrustType: {ttype}\ntrustDirection: {direction}\ntrustAttributes: {attrs}\n"
    f"securityIdentifier: {sid}\n"
    for name, flat, ttype, direction, attrs, sid in TRUSTS
)


@dataclass
class SambaDC:
    netns: str
    workdir: Path
    pid: int

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "private" / "tls" / "ca.pem")

    def run(self, *argv: str, env: dict | None = None, timeout: float = 60, check: bool = True
            ) -> subprocess.CompletedProcess:
        """A command inside the DC's namespace."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})}, check=check)

    def python(self, code: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Python code inside the namespace, importing this checkout's kerbtrace."""
        return self.run(sys.executable, "-c", code, env={"PYTHONPATH": str(REPO), **(env or {})},
                        timeout=timeout, check=False)

    def tool(self, *argv: str) -> str:
        out = self.run("samba-tool", *argv, "-H", str(self.workdir / "private" / "sam.ldb"),
                       "-s", str(self.workdir / "etc" / "smb.conf"))
        return out.stdout

    def ldb_modify(self, ldif: str, url: str | None = None, add: bool = False) -> None:
        path = self.workdir / "change.ldif"
        path.write_text(ldif)
        cmd = "ldbadd" if add else "ldbmodify"
        out = self.run(cmd, "-H", url or str(self.workdir / "private" / "sam.ldb"), str(path))
        if " 0 records" in out.stdout:
            raise RuntimeError(f"{cmd} changed nothing: {out.stdout} {out.stderr}")

    def kinit(self, principal: str, password: str) -> dict:
        """A ticket cache for `principal` from the DC's KDC; returns the environment that selects it."""
        conf = self.workdir / "krb5.conf"
        conf.write_text("[libdefaults]\n default_realm = CORP.LAB\n dns_lookup_kdc = false\n rdns = false\n"
                        f"[realms]\n CORP.LAB = {{\n  kdc = {ADDRESS}\n }}\n")
        env = {"KRB5_CONFIG": str(conf), "KRB5CCNAME": f"FILE:{self.workdir}/ccache-{principal.split('@')[0]}"}
        subprocess.run(["ip", "netns", "exec", self.netns, "kinit", principal], input=password + "\n", text=True,
                       capture_output=True, env={**os.environ, **env}, check=True, timeout=30)
        return env

    def ldbsearch(self, flt: str, *attrs: str) -> str:
        return self.run("ldbsearch", "-H", str(self.workdir / "private" / "sam.ldb"), flt, *attrs).stdout


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the Samba AD DC tests need root (network namespaces)"
    for tool in ("samba", "samba-tool", "ldbmodify", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages samba, samba-ad-dc, samba-ad-provision, ldb-tools)"
    if not Path("/usr/share/samba/setup/ad-schema").is_dir():
        return "the AD schema files are missing (Debian package samba-ad-provision)"
    return None


def start(name: str = "kt-samba") -> SambaDC:
    """A provisioned, populated DC; `name` prefixes its namespace, so test modules can each run their own."""
    netns = f"{name}-{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="kt-samba-"))
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    dc: SambaDC | None = None
    try:
        etc = Path("/etc/netns") / netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{ADDRESS} dc1.corp.lab dc1\n")
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", netns, "ip", "addr", "add", f"{ADDRESS}/8", "dev", "lo"],
                       check=True)
        options = {
            "interfaces": "lo", "bind interfaces only": "yes", "server services": "ldap kdc",
            "pid directory": f"{workdir}/run", "log file": f"{workdir}/log.%m",
            "winbindd socket directory": f"{workdir}/winbindd", "ntp signd socket directory": f"{workdir}/ntp",
            "dns forwarder": ADDRESS,
        }
        cmd = ["ip", "netns", "exec", netns, "samba-tool", "domain", "provision", "--realm=CORP.LAB",
               "--domain=CORP", "--server-role=dc", "--dns-backend=SAMBA_INTERNAL", f"--adminpass={ADMIN_PASSWORD}",
               "--use-rfc2307", f"--targetdir={workdir}", "--host-name=dc1", f"--host-ip={ADDRESS}"]
        cmd += [f"--option={k}={v}" for k, v in options.items()]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=180)
        # Like a Windows DC over LDAPS: SASL (GSSAPI) binds without a signing layer inside TLS; simple binds
        # still need TLS. ldap3 has no GSSAPI security layer, which Samba otherwise demands.
        conf = workdir / "etc" / "smb.conf"
        conf.write_text(conf.read_text().replace(
            "[global]\n", "[global]\n\tldap server require strong auth = allow_sasl_over_tls\n", 1))
        (workdir / "run").mkdir(exist_ok=True)
        log = open(workdir / "samba.out", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(["ip", "netns", "exec", netns, "samba", "-i", "-M", "single", "-s",
                                 str(workdir / "etc" / "smb.conf")], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        dc = SambaDC(netns, workdir, proc.pid)
        _wait_for_ldap(dc, proc)
        _populate(dc)
        return dc
    except BaseException:
        stop(dc, netns, workdir)
        raise


def stop(dc: SambaDC | None, netns: str | None = None, workdir: Path | None = None) -> None:
    """Stop samba by its PID, delete the namespace and the directory, whatever state they are in."""
    if dc is not None:
        netns, workdir = dc.netns, dc.workdir
        try:
            os.killpg(dc.pid, signal.SIGTERM)
            for _ in range(50):
                if os.waitpid(dc.pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.1)
            else:
                os.killpg(dc.pid, signal.SIGKILL)
                os.waitpid(dc.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    if netns:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        shutil.rmtree(Path("/etc/netns") / netns, ignore_errors=True)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_ldap(dc: SambaDC, proc: subprocess.Popen) -> None:
    probe = (
        "import socket, time\n"
        "for _ in range(300):\n"
        "    try:\n"
        f"        socket.create_connection(('{ADDRESS}', 636), 1).close(); break\n"
        "    except OSError: time.sleep(0.1)\n"
        "else: raise SystemExit(1)\n"
    )
    res = dc.run(sys.executable, "-c", probe, check=False, timeout=60)
    if res.returncode != 0 or proc.poll() is not None:
        raise RuntimeError(f"samba did not start: {(dc.workdir / 'samba.out').read_text()[-2000:]}")


def _populate(dc: SambaDC) -> None:
    base = "DC=corp,DC=lab"
    dc.tool("domain", "passwordsettings", "set", "--account-lockout-threshold=3",
            "--account-lockout-duration=30", "--reset-account-lockout-after=30")
    for name in ("MP01", "MP02"):
        dc.tool("computer", "create", name)
    # Computer accounts come disabled from samba-tool; the MP's is enabled, with HOST SPNs and AES only.
    dc.ldb_modify(f"dn: CN=MP01,CN=Computers,{base}\nchangetype: modify\nreplace: userAccountControl\n"
                  "userAccountControl: 4096\n-\nreplace: msDS-SupportedEncryptionTypes\n"
                  "msDS-SupportedEncryptionTypes: 24\n-\nadd: servicePrincipalName\n"
                  "servicePrincipalName: HOST/mp01.corp.lab\nservicePrincipalName: HOST/MP01\n")
    for user in ("svc-web", "svc-a", "disabled-user", "locked-user"):
        dc.tool("user", "create", user, USER_PASSWORD)
    dc.tool("user", "disable", "disabled-user")
    # The LDAP SPN samba_spnupdate would register at a full start (only the ldap and kdc services run here).
    dc.tool("spn", "add", "ldap/dc1.corp.lab", "DC1$")
    dc.tool("spn", "add", "HTTP/mp01.corp.lab", "svc-web")
    dc.tool("spn", "add", "HTTP/mp02.corp.lab", "svc-a")
    partition = f"tdb://{dc.workdir}/private/sam.ldb.d/DC=CORP,DC=LAB.ldb"
    dc.ldb_modify(f"dn: CN=MP02,CN=Computers,{base}\nchangetype: modify\nadd: servicePrincipalName\n"
                  "servicePrincipalName: HTTP/mp02.corp.lab\n", url=partition)
    dc.ldb_modify(TRUSTS_LDIF, add=True)
    # Lock locked-user out with three wrong passwords over LDAPS, as a client retrying a bad one would.
    bad_binds = (
        "import ldap3, ssl\n"
        f"s = ldap3.Server('{ADDRESS}', use_ssl=True, tls=ldap3.Tls(validate=ssl.CERT_NONE), connect_timeout=5)\n"
        "for _ in range(4):\n"
        "    ldap3.Connection(s, user='locked-user@corp.lab', password='wrong-Pass9', receive_timeout=5).bind()\n"
    )
    res = dc.python(bad_binds)
    if res.returncode != 0:
        raise RuntimeError(f"failed binds could not run: {res.stderr[-1000:]}")
