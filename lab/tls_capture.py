"""Record real TLS handshakes on loopback for the TLS decoder tests (`captures/tls/`).

```
sudo python -m lab.tls_capture [--out captures/tls]
```

Python's `ssl` (OpenSSL) server and client, with self-signed certificates made by `cryptography`,
talk over 127.0.5.x while dumpcap records them, one capture per case: TLS 1.2 with a client
certificate, with an empty one, without a request; TLS 1.3 with and without SNI; a server that
finds no shared cipher (handshake_failure alert); a server that demands a client certificate the
client lacks (TLS 1.2 alert); a handshake on a port other than 443; a TLS 1.3 HelloRetryRequest; a
TLS 1.2 session resumed by a second connection (abbreviated handshake) and TLS 1.2 and 1.3 connections
with a long application-data phase (thousands of segments after the handshake, which a prefilter may skip).
After the handshake the client sends a CCM_POST inside TLS and the server answers, so the captures
also hold encrypted data.
"""

from __future__ import annotations

import argparse
import datetime
import signal
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab import procs

SERVER_IP = "127.0.5.10"
MP_NAME = "mp01.corp.lab"
REQUEST = (b"CCM_POST /ccm_system/request HTTP/1.1\r\nHost: mp01.corp.lab\r\nUser-Agent: ccmhttp\r\n"
           b"Content-Length: 0\r\n\r\n")
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True)
class Case:
    name: str
    client_ip: str
    port: int = 443
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    sni: str | None = MP_NAME
    request_cert: ssl.VerifyMode = ssl.CERT_NONE  # what the server asks of the client
    client_cert: bool = False
    server_ciphers: str | None = None
    server_curve: str | None = None  # one key-exchange group only: a TLS 1.3 client offering another retries
    client_ciphers: str | None = None
    fails: bool = False
    resume: bool = False  # a second connection resumes the first one's session
    folder: str = ""  # below --out: "sessions" for captures of more than one connection or a long one
    chunks: int = 0  # the answer is followed by this many 256-byte application-data writes, 0.3 ms apart


CASES = (
    Case("tls12_client_cert", "127.0.5.21", request_cert=ssl.CERT_OPTIONAL, client_cert=True),
    Case("tls12_empty_client_cert", "127.0.5.22", request_cert=ssl.CERT_OPTIONAL),
    Case("tls12_no_sni", "127.0.5.23", sni=None),
    Case("tls13_sni", "127.0.5.24", version=ssl.TLSVersion.TLSv1_3),
    Case("tls13_no_sni_client_cert", "127.0.5.25", version=ssl.TLSVersion.TLSv1_3, sni=None,
         request_cert=ssl.CERT_OPTIONAL, client_cert=True),
    Case("tls12_handshake_failure", "127.0.5.26", server_ciphers="ECDHE-ECDSA-AES256-GCM-SHA384",
         client_ciphers="ECDHE-ECDSA-AES128-SHA", fails=True),
    Case("tls12_client_cert_required", "127.0.5.27", request_cert=ssl.CERT_REQUIRED, fails=True),
    Case("tls12_port_10443", "127.0.5.28", port=10443),
    Case("tls13_hello_retry", "127.0.5.29", version=ssl.TLSVersion.TLSv1_3, server_curve="secp384r1"),
    Case("tls12_resumed_long_data", "127.0.5.30", resume=True, chunks=2000, folder="sessions"),
    Case("tls13_long_data", "127.0.5.31", version=ssl.TLSVersion.TLSv1_3, chunks=2000, folder="sessions"),
)
CHUNK = bytes(range(256))


def _certificate(name: str, usage: ExtendedKeyUsageOID, directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate and key for `name`, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _contexts(case: Case, tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_cert, server_key = _certificate(MP_NAME, ExtendedKeyUsageOID.SERVER_AUTH, tmp)
    client_cert, client_key = _certificate("wk01.corp.lab", ExtendedKeyUsageOID.CLIENT_AUTH, tmp)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = server.maximum_version = case.version
    server.load_cert_chain(server_cert, server_key)
    server.verify_mode = case.request_cert
    if case.request_cert != ssl.CERT_NONE:
        server.load_verify_locations(client_cert)
    if case.server_ciphers:
        server.set_ciphers(case.server_ciphers)
    if case.server_curve:
        server.set_ecdh_curve(case.server_curve)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = client.maximum_version = case.version
    client.check_hostname = False
    client.load_verify_locations(server_cert)
    if case.client_cert:
        client.load_cert_chain(client_cert, client_key)
    if case.client_ciphers:
        client.set_ciphers(case.client_ciphers)
    return server, client


def _serve(listener: socket.socket, ctx: ssl.SSLContext, errors: list[str], case: Case) -> None:
    for _ in range(2 if case.resume else 1):
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one segment per write
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                tls.sendall(RESPONSE)
                for _ in range(case.chunks):
                    tls.sendall(CHUNK)
                    time.sleep(0.0003)  # each write its own segment, as a slow transfer's
        except (ssl.SSLError, OSError) as exc:
            errors.append(f"server: {exc}")
            conn.close()


def _exchange(client_ctx: ssl.SSLContext, case: Case, errors: list[str],
              session: ssl.SSLSession | None = None) -> ssl.SSLSession | None:
    """One connection: the request, the answer and the application data after it; the session to resume."""
    with socket.create_connection((SERVER_IP, case.port), source_address=(case.client_ip, 0)) as raw:
        with client_ctx.wrap_socket(raw, server_hostname=case.sni, session=session) as tls:
            tls.sendall(REQUEST)
            reply = tls.recv(len(RESPONSE))
            if not reply.startswith(b"HTTP/1.1 200"):
                errors.append(f"client: reply {reply[:40]!r}")
            want, got = case.chunks * len(CHUNK), 0
            while got < want:
                more = tls.recv(65536)
                if not more:
                    errors.append(f"client: {got} of {want} bytes of application data")
                    break
                got += len(more)
            if session is not None and not tls.session_reused:
                errors.append("client: the session was not resumed")
            return tls.session


def run_case(case: Case, out: Path, tmp: Path) -> Path:
    """Record one handshake (and one request inside it) into out/<case>.pcapng."""
    path = out / case.folder / f"{case.name}.pcapng"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    log = tmp / f"{case.name}.dumpcap.log"
    dumpcap = procs.start(["dumpcap", "-i", "lo", "-f", f"host {SERVER_IP} and host {case.client_ip}", "-n",
                           "-q", "-s", "0", "-w", str(path)], log=log)
    try:
        procs.wait_until(lambda: "Capturing on" in (log.read_text(errors="replace") if log.exists() else ""),
                         10.0, "dumpcap")
        time.sleep(0.3)
        server_ctx, client_ctx = _contexts(case, tmp)
        errors: list[str] = []
        with socket.create_server((SERVER_IP, case.port)) as listener:
            thread = threading.Thread(target=_serve, args=(listener, server_ctx, errors, case))
            thread.start()
            try:
                session = _exchange(client_ctx, case, errors)
                if case.resume:
                    _exchange(client_ctx, case, errors, session)
            except (ssl.SSLError, OSError) as exc:
                errors.append(f"client: {exc}")
            thread.join(timeout=10)
        if bool(errors) != case.fails:
            raise RuntimeError(f"{case.name}: expected {'a failure' if case.fails else 'success'}, got {errors}")
        time.sleep(0.5)
    finally:
        procs.stop(dumpcap, signal.SIGINT, timeout=15.0)
    path.chmod(0o644)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("captures/tls"))
    parser.add_argument("--only", nargs="*", help="case names")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kerbtrace-tls-") as tmp:
        for case in CASES:
            if args.only and case.name not in args.only:
                continue
            path = run_case(case, args.out, Path(tmp))
            print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
