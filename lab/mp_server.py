"""Management-point simulator: IIS Windows auth (SPNEGO via MIT GSS-API) in front of the registration handler.

It answers ``CCM_POST /ccm_system_windowsauth/request`` the way IIS + ccmisapi do, so that the lab's captures
hold a real Negotiate exchange (Kerberos AP-REQ/AP-REP, or NTLM through gss-ntlmssp) and a real CCM reply, and
writes the IIS W3C and MP_RegistrationManager.log lines an administrator would read next to the capture.

IIS ``sc-win32-status`` for failed Negotiate legs: the mapping from GSS minor codes to SEC_E values below is
the lab's own choice. Only ``401 2 5`` (anonymous leg) and ``401 1 2148074254`` (continue leg) are documented
for real MPs; SEC_E_TIME_SKEW / SEC_E_LOGON_DENIED / SEC_E_INVALID_TOKEN on failure are guesses.

Run as a child process: ``python -m lab.mp_server --ip 127.0.0.10 --port 80 --fqdn mp.corp.lab ...``.
Environment of the acceptor: KRB5_KTNAME (HTTP/<fqdn> keys), KRB5_CONFIG, NTLM_USER_FILE (``DOMAIN:USER:PASSWORD``
lines the NTLM responses are checked against, standing in for the DC), optionally NETBIOS_COMPUTER_NAME /
NETBIOS_DOMAIN_NAME (defaults from the fqdn), GSS_MECH_CONFIG, KRB5RCACHEDIR, LD_PRELOAD + FAKETIME.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gssapi

from lab import ccm_message as ccm
from lab.tls import server_context

REGISTRATION_PATH = "/ccm_system_windowsauth/request"
MAX_BODY = ccm.MAX_MESSAGE
RDR_DIR = "C:\\Program Files\\Microsoft Configuration Manager\\inboxes\\auth\\ddm.box\\regreq"
DENIED_PAGE = b"<html><body>401 - Unauthorized: Access is denied due to invalid credentials.</body></html>"
MAX_AUTH_HEADER = 64 * 1024  # IIS's default header limit is 16 KiB per header; be a bit more lenient

OID_KRB5 = "1.2.840.113554.1.2.2"
OID_MS_KRB5 = "1.2.840.48018.1.2.2"
OID_NTLMSSP = "1.3.6.1.4.1.311.2.2.10"
OID_SPNEGO = "1.3.6.1.5.5.2"

# SEC_E values IIS writes as sc-win32-status (unsigned decimal).
SEC_E_NO_CREDENTIALS = 0x8009030E   # documented for the continue leg (401 1 2148074254)
SEC_E_TIME_SKEW = 0x80090324        # guess for KRB_AP_ERR_SKEW at the acceptor
SEC_E_LOGON_DENIED = 0x8009030C     # guess for "ticket/response does not decrypt or verify"
SEC_E_INVALID_TOKEN = 0x80090308    # guess for everything else
ERROR_ACCESS_DENIED = 5             # documented for the anonymous leg (401 2 5)

# MIT's mechglue replaces the mechanism's minor code by a small per-process number (e.g. 100001), so the
# Kerberos/NTLM error is recognised from the status text gss_display_status gives.
_SKEW_TEXT = ("clock skew", "not yet valid")  # KRB_AP_ERR_SKEW; KRB_AP_ERR_TKT_NYV (MP clock behind)
_LOGON_DENIED_TEXT = (
    "cannot decrypt",        # KRB_AP_ERR_BAD_INTEGRITY: ticket does not decrypt with the keytab key
    "integrity check",       # KRB_AP_ERR_BAD_INTEGRITY / KRB_AP_ERR_MODIFIED
    "not found in keytab",   # KRB_AP_ERR_BADKEYVER / KRB_AP_ERR_NOKEY: no key for the ticket's kvno/enctype
    "no key",
)


def sec_e_for_gss_error(message: str, token: bytes = b"") -> int:
    """Map a failed accept_sec_context to the SEC_E code IIS would log (the lab's guess, see module doc)."""
    if b"NTLMSSP\x00\x03\x00\x00\x00" in token:
        return SEC_E_LOGON_DENIED  # AUTHENTICATE rejected; gss-ntlmssp only says "Invalid argument"
    text = message.lower()
    if any(s in text for s in _SKEW_TEXT):
        return SEC_E_TIME_SKEW
    if any(s in text for s in _LOGON_DENIED_TEXT):
        return SEC_E_LOGON_DENIED
    return SEC_E_INVALID_TOKEN


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Logs:
    """IIS W3C log and MP_RegistrationManager.log (CMTrace format), flushed line by line."""

    FIELDS = ("date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
              "cs(Referer) sc-status sc-substatus sc-win32-status time-taken")

    def __init__(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._iis = open(log_dir / "iis.log", "a", encoding="ascii", errors="replace", newline="\r\n")  # noqa: SIM115
        self._mp = open(log_dir / "MP_RegistrationManager.log", "a", encoding="utf-8", newline="\r\n")  # noqa: SIM115
        now = _utcnow()
        self._iis.write("#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
                        f"#Date: {now:%Y-%m-%d %H:%M:%S}\n#Fields: {self.FIELDS}\n")
        self._iis.flush()

    def iis(self, *, s_ip: str, method: str, stem: str, query: str, port: int, user: str, c_ip: str,
            agent: str, referer: str, status: int, substatus: int, win32: int, taken_ms: int) -> None:
        now = _utcnow()

        def f(v: str) -> str:
            return v.replace(" ", "+") if v else "-"

        line = (f"{now:%Y-%m-%d %H:%M:%S} {s_ip} {method} {f(stem)} {f(query)} {port} {f(user)} {c_ip} "
                f"{f(agent)} {f(referer)} {status} {substatus} {win32} {taken_ms}\n")
        with self._lock:
            self._iis.write(line)
            self._iis.flush()

    def mp(self, text: str, level: int = 1) -> None:
        now = _utcnow()
        line = (f"<![LOG[{text}]LOG]!><time=\"{now:%H:%M:%S}.{now.microsecond // 1000:03d}+000\" "
                f"date=\"{now:%m-%d-%Y}\" component=\"MP_RegistrationManager\" context=\"\" type=\"{level}\" "
                f"thread=\"{threading.get_native_id()}\" file=\"mp_server.py\">\n")
        with self._lock:
            self._mp.write(line)
            self._mp.flush()


class _Registry:
    """SMSID -> NetBIOS name of the machines registered so far (the site database, in memory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}

    def claim(self, smsid: str, netbios: str) -> bool:
        """Record ``smsid`` for ``netbios``; False when another machine already holds it."""
        key = smsid.upper()
        with self._lock:
            owner = self._owners.setdefault(key, netbios.upper())
        return owner == netbios.upper()


def _user_from_principal(name: str) -> str:
    """``WK01$@CORP.LAB`` -> ``CORP\\WK01$`` (first realm label as NetBIOS domain); NTLM names as they are."""
    name = name.rstrip("\x00")  # gss-ntlmssp counts the C string's NUL in the display name
    if "\\" in name or "@" not in name:
        return name
    user, _, realm = name.rpartition("@")
    return f"{realm.split('.')[0].upper()}\\{user}"


def _mech_kind(oid: str | None) -> str:
    if oid in (OID_KRB5, OID_MS_KRB5):
        return "kerberos"
    if oid == OID_NTLMSSP:
        return "ntlm"
    return "unknown"


class _Handler(BaseHTTPRequestHandler):
    """One instance per TCP connection: the GSS context lives here so multi-leg NTLM stays on it."""

    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    server: _MpHttpServer
    timeout = 60  # idle keep-alive connections are dropped like IIS's connectionTimeout would
    _ctx: Any = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # the IIS log is the log

    def version_string(self) -> str:
        return self.server_version

    # ------------------------------------------------------------------ plumbing
    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.isdigit() or int(length) > MAX_BODY:
            return None
        return self.rfile.read(int(length))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"",
              content_type: str | None = "text/html") -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if body and content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _iis(self, status: int, sub: int, win32: int, started: float, user: str = "") -> None:
        stem, _, query = self.path.partition("?")
        self.server.logs.iis(s_ip=self.server.ip, method=self.command, stem=stem, query=query,
                             port=self.server.port, user=user, c_ip=self.client_address[0],
                             agent=self.headers.get("User-Agent", ""),
                             referer=self.headers.get("Referer", ""),
                             status=status, substatus=sub, win32=win32,
                             taken_ms=int((time.monotonic() - started) * 1000))

    def _not_found(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        self._send(404, [], b"<html><body>404 - File or directory not found.</body></html>")
        self._iis(404, 0, 2, started)
        if body is None:
            self.close_connection = True

    do_GET = do_POST = do_HEAD = do_PUT = _not_found  # noqa: N815 - stdlib naming

    # ------------------------------------------------------------------ CCM_POST
    def do_CCM_POST(self) -> None:  # noqa: N802 - verb name
        started = time.monotonic()
        if self.path.partition("?")[0].lower() != REGISTRATION_PATH:
            self._not_found()
            return
        body = self._read_body()
        if body is None:
            self._send(413, [], b"")
            self._iis(413, 0, 0, started)
            self.close_connection = True
            return
        auth = self.headers.get("Authorization", "")
        scheme, _, b64 = auth.partition(" ")
        if scheme.lower() != "negotiate" or not b64.strip():
            self._ctx = None
            self._send(401, [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")], DENIED_PAGE)
            self._iis(401, 2, ERROR_ACCESS_DENIED, started)
            return
        try:
            token = base64.b64decode(b64.strip(), validate=True) if len(b64) <= MAX_AUTH_HEADER else b""
        except ValueError:
            token = b""
        if not token:
            self._ctx = None
            self._send(401, [("WWW-Authenticate", "Negotiate")], b"")
            self._iis(401, 1, SEC_E_INVALID_TOKEN, started)
            return
        self._negotiate(token, body, started)

    def _negotiate(self, token: bytes, body: bytes, started: float) -> None:
        if self._ctx is None or token[:1] == b"\x60":  # an InitialContextToken starts a new handshake
            self._ctx = gssapi.SecurityContext(creds=self.server.creds, usage="accept")
            # raise on failure (with the error token attached) instead of returning the token silently
            setattr(self._ctx, "__DEFER_STEP_ERRORS__", False)  # noqa: B010 - dunder-like flag of python-gssapi
        ctx = self._ctx
        try:
            out = ctx.step(token)
        except gssapi.exceptions.GSSError as exc:
            self._ctx = None
            err_token = getattr(exc, "token", None)
            message = exc.gen_message()
            code = sec_e_for_gss_error(message, token)
            headers = []
            if err_token:
                headers.append(("WWW-Authenticate", "Negotiate " + base64.b64encode(err_token).decode()))
            self.server.note(f"accept failed from {self.client_address[0]}: {message} (error token "
                             f"{err_token.hex() if err_token else 'absent'}, logged as 0x{code:08X}, a guess)")
            self._send(401, headers, DENIED_PAGE)
            self._iis(401, 1, code, started)
            return
        out_header = [("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode())] if out else []
        if not ctx.complete:
            self._send(401, out_header, b"")
            self._iis(401, 1, SEC_E_NO_CREDENTIALS, started)
            return
        self._ctx = None
        try:
            mech = _mech_kind(ctx.mech.dotted_form)
        except gssapi.exceptions.GSSError:
            mech = "unknown"
        principal = str(ctx.initiator_name)
        user = _user_from_principal(principal)
        try:
            reply = self.server.register(body, mech=mech, user=user)
        except Exception as exc:  # noqa: BLE001 - a malformed body must not drop the connection
            self.server.logs.mp(f"MP Reg: Registration failed. ({type(exc).__name__}: {exc})", 3)
            reply = self.server._reply(3, -1, None, "UNKNOWN", None)
        self._send(200, out_header, reply, content_type=ccm.CONTENT_TYPE)
        self._iis(200, 0, 0, started, user=user)


class _MpHttpServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server holding the site state shared by all connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ip: str, port: int, fqdn: str, log_dir: Path, site_code: str,
                 tls: ssl.SSLContext | None = None, reply_root: str = ccm.REPLY_ROOT) -> None:
        self.ip, self.port, self.fqdn, self.site_code = ip, port, fqdn, site_code
        self.tls = tls
        self.reply_root = reply_root
        self.logs = _Logs(log_dir)
        self.registry = _Registry()
        spnego = gssapi.OID.from_int_seq(OID_SPNEGO)
        # Named after the MP: Kerberos then takes HTTP/<fqdn> from the keytab, and gss-ntlmssp puts the MP's
        # names (not this machine's host name) in the NTLM CHALLENGE's target info.
        name = gssapi.Name(f"HTTP@{fqdn}", gssapi.NameType.hostbased_service)
        self.creds = gssapi.Credentials(name=name, usage="accept", mechs=[spnego])
        super().__init__((ip, port), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """HTTPS MP: the TLS handshake runs in the connection's own thread, then HTTP as usual."""
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.note(f"TLS handshake with {client_address[0]} failed: {exc}")
                return
            try:
                super().finish_request(request, client_address)
            finally:  # the raw socket was detached by wrap_socket: close the TLS one here
                self.shutdown_request(request)
            return
        super().finish_request(request, client_address)

    def note(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def register(self, body: bytes, *, mech: str, user: str) -> bytes:
        """Registration endpoint: parse, verify, decide approval, answer; every path writes the MP log."""
        logs = self.logs
        try:
            req = ccm.parse_registration_request(body)
        except ccm.CcmMessageError as exc:
            logs.mp(f"MP Reg: Registration request body is invalid. ({exc})", 3)
            logs.mp("MP Reg: Registration failed.", 3)
            logs.mp("MP Reg: Processing completed. Completion state = 0")
            return self._reply(3, -1, None, "UNKNOWN", None)
        host = req.fqdn or req.netbios or "?"
        logs.mp(f"Processing Registration request from Client '{host}'")
        thumb = hashlib.sha1(req.signing_cert or b"").hexdigest().upper()
        logs.mp(f"Begin validation of Certificate [Thumbprint {thumb}] issued to '{req.netbios}'")
        if req.request_type != "Registration" or not req.netbios or not req.signature_ok():
            logs.mp("MP Reg: Registration request body is invalid.", 3)
            logs.mp("MP Reg: Registration failed.", 3)
            logs.mp("MP Reg: Processing completed. Completion state = 0")
            return self._reply(3, -1, None, req.netbios or "UNKNOWN", req.header.msg_id)
        logs.mp(f"Completed validation of Certificate [Thumbprint {thumb}] issued to '{req.netbios}'")
        smsid = req.smsid or ccm.new_smsid()
        if not self.registry.claim(smsid, req.netbios):
            logs.mp(f"MP Reg: SMSID {smsid} is already registered to another machine; the record is pending "
                    "administrator action (conflicting record).", 2)
            logs.mp("MP Reg: Processing completed. Completion state = 0")
            return self._reply(1, 0, smsid, req.netbios, req.header.msg_id)
        approved = mech == "kerberos"
        logs.mp(f"MP Reg: Client '{user}' authenticated with {mech}; "
                f"{'approved (trusted domain)' if approved else 'not approved'}.")
        logs.mp(f"MP Reg: DDR file written to {RDR_DIR}\\{ccm.rdr_name()}.RDR")
        logs.mp("MP Reg: Processing completed. Completion state = 0")
        return self._reply(0, 1 if approved else 0, smsid, req.netbios, req.header.msg_id)

    def _reply(self, status: int, approval: int, smsid: str | None, client: str,
               request_id: str | None) -> bytes:
        return ccm.build_registration_reply(status=status, approval_status=approval, smsid=smsid,
                                            mp_netbios=self.fqdn.split(".")[0], client_netbios=client,
                                            request_id=request_id, site_code=self.site_code,
                                            root=self.reply_root)


class MpServer:
    """Starts the simulator as a child process with its own GSS environment, and stops it by PID."""

    def __init__(self, ip: str, port: int, fqdn: str, keytab: str, log_dir: Path, *, site_code: str = "LAB",
                 env: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None,
                 client_ca: Path | None = None, reply_root: str = ccm.REPLY_ROOT) -> None:
        self.ip, self.port, self.fqdn, self.keytab = ip, port, fqdn, keytab
        self.tls = tls  # (certificate, key) PEM files: serve HTTPS
        self.client_ca = client_ca  # HTTPS with a required client certificate issued by this CA
        self.reply_root = reply_root
        self.log_dir = Path(log_dir)
        self.site_code = site_code
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 15.0) -> None:
        """Spawn ``python -m lab.mp_server`` and wait for its READY line (printed once it listens)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["KRB5_KTNAME"] = self.keytab
        labels = self.fqdn.upper().split(".")
        env["NETBIOS_COMPUTER_NAME"] = labels[0]            # NTLM CHALLENGE names; the env may override
        env["NETBIOS_DOMAIN_NAME"] = labels[1] if len(labels) > 1 else "WORKGROUP"
        env.update(self.env)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        argv = [sys.executable, "-m", "lab.mp_server", "--ip", self.ip, "--port", str(self.port), "--fqdn",
                self.fqdn, "--log-dir", str(self.log_dir), "--site-code", self.site_code,
                "--reply-root", self.reply_root]
        if self.tls:
            argv += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        if self.client_ca:
            argv += ["--tls-client-ca", str(self.client_ca)]
        err = open(self.log_dir / "mp_server.stderr", "ab")  # noqa: SIM115 - closed right after the spawn
        try:
            self.proc = subprocess.Popen(
                argv,
                env=env, cwd=root, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        finally:
            err.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"READY"):
            self.stop()
            text = (self.log_dir / "mp_server.stderr").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"MP simulator on {self.ip}:{self.port} did not start: {text}")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the child by its PID and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> MpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ConfigMgr MP registration simulator (lab)")
    ap.add_argument("--ip", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--fqdn", required=True)
    ap.add_argument("--log-dir", type=Path, required=True)
    ap.add_argument("--site-code", default="LAB")
    ap.add_argument("--tls-cert", type=Path, help="PEM certificate: serve HTTPS (with --tls-key)")
    ap.add_argument("--tls-key", type=Path)
    ap.add_argument("--tls-client-ca", type=Path, help="require a client certificate issued by this CA")
    ap.add_argument("--reply-root", default=ccm.REPLY_ROOT,
                    help="root element of the registration reply body (other versions/tools may differ)")
    args = ap.parse_args(argv)
    try:
        tls = server_context(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
        server = _MpHttpServer(args.ip, args.port, args.fqdn, args.log_dir, args.site_code, tls, args.reply_root)
    except (OSError, Exception) as exc:  # noqa: B014 - report any start failure to the parent
        print(f"start failed: {exc}", file=sys.stderr, flush=True)
        return 1
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    print("READY", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
