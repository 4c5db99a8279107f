"""TLS for HTTPS management points: server certificates, a lab PKI for client certificates, ssl contexts.

Certificates are made with ``cryptography`` (the maintained X.509 library the lab already uses for the
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

Issuer = tuple[x509.Certificate, rsa.RSAPrivateKey]


def _issue(cn: str, sans: list[x509.GeneralName], usage: x509.ObjectIdentifier | None, directory: Path,
           stem: str, issuer: Issuer | None = None) -> tuple[Path, Path, Issuer]:
    """Write ``<stem>.crt`` / ``<stem>.key`` (PEM); self-signed unless ``issuer`` signs it.

    Keys are test-only and live in the scenario's temporary directory, never in the repository.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer[0].subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=0 if issuer is None else None),
                        critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = b.sign(issuer[1] if issuer else key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    crt, pem = directory / f"{stem}.crt", directory / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    return crt, pem, (cert, key)


def make_server_certificate(fqdn: str, ip: str, directory: Path) -> tuple[Path, Path]:
    """``<fqdn>.crt`` / ``.key``: self-signed, CN and DNS SAN ``fqdn``, IP SAN ``ip``, server authentication."""
    crt, key, _ = _issue(fqdn, [x509.DNSName(fqdn), x509.IPAddress(ipaddress.ip_address(ip))],
                         ExtendedKeyUsageOID.SERVER_AUTH, directory, fqdn)
    return crt, key


class Pki:
    """The lab's issuing CA for client authentication certificates (a site's PKI in ConfigMgr terms)."""

    def __init__(self, directory: Path, name: str = "CORP Lab Issuing CA") -> None:
        self.directory = directory
        self.ca_cert, _, self._issuer = _issue(name, [], None, directory, "issuing-ca")

    def client_certificate(self, fqdn: str) -> tuple[Path, Path]:
        """``<fqdn>.crt`` / ``.key`` issued by the CA: CN and DNS SAN ``fqdn``, client authentication."""
        crt, key, _ = _issue(fqdn, [x509.DNSName(fqdn)], ExtendedKeyUsageOID.CLIENT_AUTH, self.directory,
                             fqdn, self._issuer)
        return crt, key


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The MP's side: its certificate, TLS 1.2 at most; with ``client_ca``, a client certificate is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca))
    return ctx


def client_context(trusted: Path, client_cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """The client's side: trusts the MP's certificate (as a domain client trusts its PKI) and checks the name;
    presents ``client_cert`` (certificate, key) when the MP asks for one."""
    ctx = ssl.create_default_context(cafile=str(trusted))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None:
        ctx.load_cert_chain(*client_cert)
    return ctx
