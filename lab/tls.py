"""TLS for HTTPS management points: a self-signed server certificate and the two ssl contexts.

The certificate is made with ``cryptography`` (the maintained X.509 library the lab already uses for the
clients' SMS certificates); TLS itself is Python's ``ssl`` (OpenSSL). TLS 1.2 is the highest version on both
sides, as on the Windows Server 2016/2019 MPs most sites still run: the server's Certificate message then
crosses the wire in clear, next to the ClientHello's server name (SNI).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_server_certificate(fqdn: str, ip: str, directory: Path) -> tuple[Path, Path]:
    """Write ``<fqdn>.crt`` / ``<fqdn>.key`` (PEM): self-signed, CN and DNS SAN ``fqdn``, IP SAN ``ip``.

    The key is test-only and lives in the scenario's temporary directory, never in the repository.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    san = x509.SubjectAlternativeName([x509.DNSName(fqdn), x509.IPAddress(ipaddress.ip_address(ip))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365)).add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    crt, pem = directory / f"{fqdn}.crt", directory / f"{fqdn}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    return crt, pem


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The MP's side: its certificate, TLS 1.2 at most, no client certificate asked for."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(trusted: Path) -> ssl.SSLContext:
    """The client's side: trusts the MP's certificate (as a domain client trusts its PKI) and checks the name."""
    ctx = ssl.create_default_context(cafile=str(trusted))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx
