"""ConfigMgr client registration as CcmExec does it: DNS for the MP, anonymous CCM_POST, 401, Negotiate.

With ``locate_srv`` the client first asks for the site's ``_mssms_mp_<sitecode>._tcp.<domain>`` SRV record,
as a client without an MP list does, and then resolves the A record of the target it picked.

Each registration runs in its own child process (``python -m lab.ccm_client --json ...``) so every simulated
machine has its own Kerberos/NTLM environment (KRB5_CONFIG, KRB5CCNAME, KRB5_CLIENT_KTNAME, NTLM_USER_FILE)
and, when the lab skews its clock, its own libfaketime (LD_PRELOAD, FAKETIME). SPNEGO through MIT GSS-API
behaves like Windows Negotiate where the lab needs it: a Kerberos failure at the KDC (unknown SPN) falls
back to NTLM (gss-ntlmssp) before anything is sent, while a Kerberos failure at the MP does not.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab import ccm_message as ccm

REGISTRATION_PATH = "/ccm_system_windowsauth/request"
USER_AGENT = "ccmhttp"
MAX_REPLY = ccm.MAX_MESSAGE
MAX_LEGS = 6  # anonymous + NTLM negotiate/authenticate + margin; bounds any ping-pong with a broken MP

OID_SPNEGO = "1.3.6.1.5.5.2"
OID_KRB5 = "1.2.840.113554.1.2.2"
OID_NTLMSSP = "1.3.6.1.4.1.311.2.2.10"
_KRB5_OID_DER = bytes.fromhex("2a864886f712010202")


@dataclass
class RegistrationResult:
    """What one registration attempt saw: HTTP statuses in order, the mechanism used and the MP's answer."""

    statuses: list[int] = field(default_factory=list)
    auth: str = "none"                  # "kerberos" | "ntlm" | "none": mechanism in the Authorization headers
    approval_status: int | None = None  # ClientRegistrationResponse/@ApprovalStatus
    status: int | None = None           # ClientRegistrationResponse/@Status
    smsid: str | None = None            # SMSID the MP assigned
    mutual_ok: bool | None = None       # final Negotiate token verified (None: none expected, e.g. no 200)
    error: str | None = None            # None on a 200 with a parsed reply; "dns" for NXDOMAIN; else a reason
    mp_fqdn: str | None = None          # MP name the client used (the SRV target when located through SRV)
    srv_targets: list[str] = field(default_factory=list)  # targets of the SRV answer, in answer order


def register(mp_fqdn: str, source_ip: str, netbios: str, fqdn: str, smsid: str, *,
             dns_server: tuple[str, int] | None, mp_ip: str | None = None, env: dict[str, str] | None = None,
             use_kerberos: bool = True, use_ntlm: bool = True, timeout: float = 10.0,
             port: int = 80, locate_srv: str | None = None, tls_trust: str | None = None,
             tls_client: tuple[str, str] | None = None) -> RegistrationResult:
    """Register one client from its own child process; never raises, errors come back in the result.

    ``locate_srv``: SRV name to locate the MP with first; ``mp_fqdn`` is then only the preferred target.
    ``tls_trust``: PEM certificate the client trusts; the registration then runs over HTTPS.
    ``tls_client``: (certificate, key) PEM files the client presents when the MP asks for a certificate.
    """
    root = str(Path(__file__).resolve().parents[1])
    argv = [sys.executable, "-m", "lab.ccm_client", "--json", "--mp-fqdn", mp_fqdn, "--source-ip", source_ip,
            "--netbios", netbios, "--fqdn", fqdn, "--smsid", smsid, "--timeout", str(timeout),
            "--port", str(port)]
    if dns_server:
        argv += ["--dns-server", f"{dns_server[0]}:{dns_server[1]}"]
    if mp_ip:
        argv += ["--mp-ip", mp_ip]
    if locate_srv:
        argv += ["--locate-srv", locate_srv]
    if tls_trust:
        argv += ["--tls-trust", tls_trust]
    if tls_client:
        argv += ["--tls-client-cert", tls_client[0], "--tls-client-key", tls_client[1]]
    if not use_kerberos:
        argv.append("--no-kerberos")
    if not use_ntlm:
        argv.append("--no-ntlm")
    full_env = dict(os.environ)
    full_env["NETBIOS_COMPUTER_NAME"] = netbios.upper()  # NTLM workstation name instead of this host's
    full_env.update(env or {})
    old_path = full_env.get("PYTHONPATH")
    full_env["PYTHONPATH"] = root + (os.pathsep + old_path if old_path else "")
    try:
        proc = subprocess.run(argv, env=full_env, cwd=root, capture_output=True, text=True,
                              timeout=timeout * 4 + 20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return RegistrationResult(error=f"child: {exc}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                data = json.loads(line)
                fields = {k: data[k] for k in RegistrationResult.__dataclass_fields__ if k in data}
                return RegistrationResult(**fields)
            except (ValueError, TypeError) as exc:
                return RegistrationResult(error=f"child: bad JSON ({exc})")
    return RegistrationResult(error=f"child: rc={proc.returncode} {proc.stderr.strip()[-500:]}")


# ------------------------------------------------------------------------------------------- child side


def query(name: str, qtype: str, server: tuple[str, int], source_ip: str,
          timeout: float):  # type: ignore[no-untyped-def]
    """One DNS question to ``server`` from ``source_ip`` (two tries); returns (reply or None, error)."""
    from dnslib import RCODE, DNSRecord

    question = DNSRecord.question(name, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source_ip, 0))
        sock.settimeout(max(0.5, min(2.0, timeout / 2)))
        for _ in range(2):
            sock.sendto(question.pack(), server)
            try:
                while True:
                    data, peer = sock.recvfrom(4096)
                    if peer[0] != server[0]:
                        continue
                    try:
                        reply = DNSRecord.parse(data)
                    except Exception:  # noqa: BLE001 - dnslib raises several types on garbage
                        continue
                    if reply.header.id == question.header.id:
                        break
            except TimeoutError:
                continue
            if reply.header.rcode == RCODE.NXDOMAIN:
                return None, "dns"
            if reply.header.rcode != RCODE.NOERROR:
                return None, f"dns: rcode {RCODE.get(reply.header.rcode)}"
            return reply, None
    return None, "dns: timeout"


def resolve(name: str, server: tuple[str, int], source_ip: str,
            timeout: float) -> tuple[str | None, str | None]:
    """A query for ``name``; returns (address, error)."""
    from dnslib import QTYPE

    reply, error = query(name, "A", server, source_ip, timeout)
    if reply is None:
        return None, error
    for rr in reply.rr:
        if rr.rtype == QTYPE.A:
            return str(rr.rdata), None
    return None, "dns: no A record"


SrvTarget = tuple[int, int, int, str]  # priority, weight, port, target


def pick_target(records: list[SrvTarget], prefer: str | None) -> SrvTarget:
    """The SRV target the client uses.

    A real client picks at random among the MPs of the best priority (preferring its own forest); the lab
    takes the MP the scenario assigned when the answer lists it, else the best by priority and weight.
    """
    for rec in records:
        if prefer and rec[3].lower() == prefer.lower():
            return rec
    return min(records, key=lambda r: (r[0], -r[1], r[3]))


def locate(srv_name: str, server: tuple[str, int], source_ip: str,
           timeout: float) -> tuple[list[SrvTarget], str | None]:
    """SRV query for the site's MP record; returns (records in answer order, error)."""
    from dnslib import QTYPE

    reply, error = query(srv_name, "SRV", server, source_ip, timeout)
    if reply is None:
        return [], error
    recs = [(rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target).rstrip("."))
            for rr in reply.rr if rr.rtype == QTYPE.SRV]
    return recs, None if recs else "dns: no SRV record"


def classify_token(token: bytes) -> str:
    """Which mechanism an outgoing Negotiate token carries: NTLMSSP, a Kerberos AP-REQ, or neither."""
    if b"NTLMSSP\x00" in token:
        return "ntlm"
    # the OID also sits in the SPNEGO mech list; only the one framing a token is followed by TOK_ID 01 00
    if _KRB5_OID_DER + b"\x01\x00" in token:
        return "kerberos"
    return "none"


def _negotiate_token(resp: http.client.HTTPResponse) -> tuple[bool, bytes | None]:
    """(Negotiate offered?, its token) from the WWW-Authenticate headers of a response."""
    offered, token = False, None
    for value in resp.msg.get_all("WWW-Authenticate") or []:
        scheme, _, data = value.strip().partition(" ")
        if scheme.lower() == "negotiate":
            offered = True
            if data.strip():
                try:
                    token = base64.b64decode(data.strip(), validate=True)
                except ValueError:
                    token = None
    return offered, token


class _Http:
    """One keep-alive connection from the client's own address; every response is read in full."""

    def __init__(self, mp_ip: str, port: int, mp_fqdn: str, source_ip: str, timeout: float,
                 tls_trust: str | None = None, tls_client: tuple[str, str] | None = None) -> None:
        if tls_trust:
            self.conn: http.client.HTTPConnection = _TlsConnection(mp_ip, port, mp_fqdn, tls_trust, timeout,
                                                                    source_ip, tls_client)
        else:
            self.conn = http.client.HTTPConnection(mp_ip, port, timeout=timeout, source_address=(source_ip, 0))
        self.mp_fqdn = mp_fqdn

    def post(self, body: bytes, authorization: str | None) -> tuple[http.client.HTTPResponse, bytes]:
        c = self.conn
        c.putrequest("CCM_POST", REGISTRATION_PATH, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", self.mp_fqdn)
        c.putheader("User-Agent", USER_AGENT)
        c.putheader("Content-Type", ccm.CONTENT_TYPE)
        c.putheader("Content-Length", str(len(body)))
        if authorization:
            c.putheader("Authorization", authorization)
        c.endheaders(body)
        resp = c.getresponse()
        length = resp.getheader("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > MAX_REPLY):
            raise ValueError(f"reply Content-Length {length!r} out of bounds")
        data = resp.read(MAX_REPLY + 1)
        if len(data) > MAX_REPLY:
            raise ValueError("reply body too large")
        return resp, data

    def close(self) -> None:
        self.conn.close()


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS to the MP's address with the MP's name as SNI and as the name its certificate must carry."""

    def __init__(self, ip: str, port: int, sni: str, trust: str, timeout: float, source_ip: str,
                 client: tuple[str, str] | None = None) -> None:
        from lab.tls import client_context

        ctx = client_context(Path(trust), (Path(client[0]), Path(client[1])) if client else None)
        super().__init__(ip, port, timeout=timeout, source_address=(source_ip, 0), context=ctx)
        self.sni = sni

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.sni)  # type: ignore[attr-defined]


def _context(mp_fqdn: str, use_kerberos: bool, use_ntlm: bool):  # type: ignore[no-untyped-def]
    """SPNEGO initiator for HTTP@<mp> with the negotiable mechanisms limited as asked."""
    import gssapi
    import gssapi.raw

    spnego = gssapi.OID.from_int_seq(OID_SPNEGO)
    wanted = ([gssapi.OID.from_int_seq(OID_KRB5)] if use_kerberos else []) + \
             ([gssapi.OID.from_int_seq(OID_NTLMSSP)] if use_ntlm else [])
    creds = gssapi.Credentials(usage="initiate", mechs=[spnego])
    gssapi.raw.set_neg_mechs(creds, wanted)
    target = gssapi.Name(f"HTTP@{mp_fqdn}", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=target, creds=creds, usage="initiate", mech=spnego)
    setattr(ctx, "__DEFER_STEP_ERRORS__", False)  # noqa: B010 - raise on failure, do not return error tokens
    return ctx


def run(mp_fqdn: str, source_ip: str, netbios: str, fqdn: str, smsid: str, *,
        dns_server: tuple[str, int] | None, mp_ip: str | None, use_kerberos: bool, use_ntlm: bool,
        timeout: float, port: int, locate_srv: str | None = None, tls_trust: str | None = None,
        tls_client: tuple[str, str] | None = None) -> RegistrationResult:
    """The registration itself (child side); every failure ends up in ``error``."""
    import gssapi

    result = RegistrationResult()
    if (mp_ip is None or locate_srv) and dns_server is None:
        result.error = "dns: no server given"
        return result
    if locate_srv and dns_server is not None:
        try:
            records, result.error = locate(locate_srv, dns_server, source_ip, timeout)
        except OSError as exc:
            records, result.error = [], f"dns: {exc}"
        result.srv_targets = [r[3] for r in records]
        if not records:
            return result
        _, _, port, mp_fqdn = pick_target(records, mp_fqdn)
    result.mp_fqdn = mp_fqdn
    if mp_ip is None and dns_server is not None:
        try:
            mp_ip, result.error = resolve(mp_fqdn, dns_server, source_ip, timeout)
        except OSError as exc:
            result.error = f"dns: {exc}"
        if mp_ip is None:
            return result
    body = ccm.build_registration_request(netbios=netbios, fqdn=fqdn, smsid=smsid, mp_fqdn=mp_fqdn,
                                          identity=ccm.make_identity(netbios))
    http_conn = _Http(mp_ip, port, mp_fqdn, source_ip, timeout, tls_trust, tls_client)
    ctx = None
    try:
        resp, data = http_conn.post(body, None)
        result.statuses.append(resp.status)
        offered, in_token = _negotiate_token(resp)
        if resp.status == 401 and not (use_kerberos or use_ntlm):
            result.error = "auth: no mechanism allowed"
            return result
        if resp.status == 401 and not offered:
            result.error = "auth: MP offers no Negotiate"
            return result
        if resp.status == 401:
            try:
                ctx = _context(mp_fqdn, use_kerberos, use_ntlm)
                out_token = ctx.step(None)
            except gssapi.exceptions.GSSError as exc:
                result.error = f"gss: {exc.gen_message()}"
                return result
            for _ in range(MAX_LEGS):
                kind = classify_token(out_token or b"")
                if kind != "none":
                    result.auth = kind
                resp, data = http_conn.post(body, "Negotiate " + base64.b64encode(out_token or b"").decode())
                result.statuses.append(resp.status)
                _, in_token = _negotiate_token(resp)
                if resp.status != 401 or in_token is None or ctx.complete:
                    break
                try:
                    out_token = ctx.step(in_token)
                except gssapi.exceptions.GSSError as exc:
                    result.error = f"auth: 401 ({exc.gen_message()})"
                    return result
        if resp.status == 200:
            result.mutual_ok = _finish(ctx, in_token, result.auth)
            _read_reply(data, result)
        elif resp.status == 401:
            result.error = "auth: 401" + _explain_rejection(ctx, in_token)
        else:
            result.error = f"http: {resp.status}"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        result.error = f"http: {type(exc).__name__}: {exc}"
    finally:
        http_conn.close()
    return result


def _finish(ctx, token: bytes | None, auth: str) -> bool | None:  # type: ignore[no-untyped-def]
    """Verify the final Negotiate token of the 200 (Kerberos AP-REP / SPNEGO accept-completed with MIC)."""
    import gssapi

    if ctx is None:
        return None
    if token is None:
        return None if (ctx.complete and auth == "ntlm") else ctx.complete
    try:
        ctx.step(token)
    except gssapi.exceptions.GSSError:
        return False
    return bool(ctx.complete)


def _explain_rejection(ctx, token: bytes | None) -> str:  # type: ignore[no-untyped-def]
    """Feed the MP's error token (e.g. a KRB-ERROR in a SPNEGO reject) to the context to name the cause."""
    import gssapi

    if ctx is None or token is None:
        return ""
    try:
        ctx.step(token)
    except gssapi.exceptions.GSSError as exc:
        return f" ({exc.gen_message()})"
    return ""


def _read_reply(data: bytes, result: RegistrationResult) -> None:
    try:
        reply = ccm.parse_registration_reply(data)
    except ccm.CcmMessageError as exc:
        result.error = f"reply: {exc}"
        return
    result.status, result.approval_status, result.smsid = reply.status, reply.approval_status, reply.smsid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Register one lab client with a ConfigMgr MP (simulator)")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    ap.add_argument("--mp-fqdn", required=True)
    ap.add_argument("--source-ip", required=True)
    ap.add_argument("--netbios", required=True)
    ap.add_argument("--fqdn", required=True)
    ap.add_argument("--smsid", required=True)
    ap.add_argument("--dns-server", help="ip:port")
    ap.add_argument("--mp-ip")
    ap.add_argument("--locate-srv", help="SRV name to locate the MP with, e.g. _mssms_mp_lab._tcp.corp.lab")
    ap.add_argument("--tls-trust", help="PEM certificate to trust: register over HTTPS")
    ap.add_argument("--tls-client-cert", help="PEM client certificate to present (with --tls-client-key)")
    ap.add_argument("--tls-client-key")
    ap.add_argument("--no-kerberos", action="store_true")
    ap.add_argument("--no-ntlm", action="store_true")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--port", type=int, default=80)
    a = ap.parse_args(argv)
    dns = None
    if a.dns_server:
        host, _, p = a.dns_server.rpartition(":")
        dns = (host, int(p))
    try:
        result = run(a.mp_fqdn, a.source_ip, a.netbios, a.fqdn, a.smsid, dns_server=dns, mp_ip=a.mp_ip,
                     use_kerberos=not a.no_kerberos, use_ntlm=not a.no_ntlm, timeout=a.timeout, port=a.port,
                     locate_srv=a.locate_srv, tls_trust=a.tls_trust,
                     tls_client=(a.tls_client_cert, a.tls_client_key) if a.tls_client_cert else None)
    except Exception as exc:  # noqa: BLE001 - the parent must always get a JSON answer
        result = RegistrationResult(error=f"client: {type(exc).__name__}: {exc}")
    if a.json:
        print(json.dumps(asdict(result)), flush=True)
    else:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
