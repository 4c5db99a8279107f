"""Build and parse ConfigMgr registration messages byte for byte as client and MP put them on the wire.

Layout (multipart boundary, UTF-16LE header with BOM, zlib UTF-16LE body with NUL + CRLF, reversed-byte
signature) follows the CCM protocol notes; the lab needs captures whose CCM bodies the decoders meet in the
field, so nothing here is simplified.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
import zlib
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

BOUNDARY = "aAbBcCdDv1234567890VxXyYzZ"
CONTENT_TYPE = f'multipart/mixed; boundary="{BOUNDARY}"'
HEADER_PART_TYPE = b"content-type: text/plain; charset=UTF-16"
BODY_PART_TYPE = b"content-type: application/octet-stream"
SHA256_RSA_OID = "1.2.840.113549.1.1.11"
EKU_SMS_SIGNING = "1.3.6.1.4.1.311.101"
EKU_SMS_ENCRYPTION = "1.3.6.1.4.1.311.101.2"
AGENT_IDENTITY = "CcmExec.exe"
AGENT_VERSION = "5.00.9128.1000"
REGISTRATION_ENDPOINT = "MP_ClientRegistration"
REPLY_ROOT = "ClientRegistrationResponse"  # the SDK's name; other versions/tools may differ

MAX_MESSAGE = 1 << 20      # a registration is a few KiB; anything this big is not one
MAX_INFLATED = 1 << 20     # bound for every zlib inflate (decompression bombs)
MAX_PARTS = 8


class CcmMessageError(ValueError):
    """The bytes are not a well-formed CCM message; the text says which part is wrong."""


@dataclass
class ClientIdentity:
    """The self-signed key pair a client registers with (CcmExec keeps it in the machine's SMS store)."""

    key: rsa.RSAPrivateKey
    cert_der: bytes

    @property
    def thumbprint(self) -> str:
        """SHA-1 of the DER certificate, upper hex, as MP_RegistrationManager.log prints it."""
        return hashlib.sha1(self.cert_der).hexdigest().upper()


def make_identity(netbios: str, *, key_bits: int = 2048) -> ClientIdentity:
    """Create the client's self-signed SMS certificate (subject CN=<host>, CN=SMS as on real clients)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, netbios.upper()),
                      x509.NameAttribute(NameOID.COMMON_NAME, "SMS")])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ekus = x509.ExtendedKeyUsage([x509.ObjectIdentifier(EKU_SMS_SIGNING),
                                  x509.ObjectIdentifier(EKU_SMS_ENCRYPTION)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=36500)).add_extension(ekus, critical=False)
            .sign(key, hashes.SHA256()))
    return ClientIdentity(key, cert.public_bytes(serialization.Encoding.DER))


def _utc_stamp(when: dt.datetime | None = None) -> str:
    return (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _attr(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def sign_data(key: rsa.RSAPrivateKey, data_xml: str) -> str:
    """RSA PKCS#1 v1.5 / SHA-256 over UTF-16LE of the <Data> element; bytes reversed (CryptoAPI order)."""
    sig = key.sign(data_xml.encode("utf-16-le"), padding.PKCS1v15(), hashes.SHA256())
    return sig[::-1].hex().upper()


def verify_signature(cert_der: bytes, data_xml: str, signature_hex: str) -> bool:
    """Check a registration signature against the certificate the request carries."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        sig = bytes.fromhex(signature_hex)[::-1]
        cert.public_key().verify(sig, data_xml.encode("utf-16-le"), padding.PKCS1v15(),  # type: ignore[call-arg, union-attr]
                                 hashes.SHA256())
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def build_header(*, body_length: int, source_host: str, target_host: str, reply_to: str,
                 msg_id: str | None = None, correlation_id: str | None = None,
                 target_endpoint: str = REGISTRATION_ENDPOINT, sent_time: dt.datetime | None = None,
                 target_address: str | None = None, properties: dict[str, str] | None = None,
                 source_id: str | None = None) -> str:
    """The <Msg> header XML, one line, in the element order of the SDK's outgoing serializer.

    `source_id` adds a <SourceID> (the tools omit it on registration; other versions may send the GUID)."""
    mid = msg_id or "{" + str(uuid.uuid4()).upper() + "}"
    corr = correlation_id or "{00000000-0000-0000-0000-000000000000}"
    address = target_address or f"mp:[http]{target_endpoint}"
    return (
        '<Msg ReplyCompression="zlib" SchemaVersion="1.1">'
        f"<ID>{mid}</ID>" + (f"<SourceID>{_attr(source_id)}</SourceID>" if source_id else "")
        + f"<SourceHost>{_attr(source_host)}</SourceHost>"
        f"<TargetAddress>{_attr(address)}</TargetAddress><ReplyTo>{_attr(reply_to)}</ReplyTo>"
        f"<CorrelationID>{corr}</CorrelationID><Priority>0</Priority><Timeout>60000</Timeout>"
        + "".join(f'<Property Name="{_attr(k)}" Value="{_attr(v)}" />' for k, v in (properties or {}).items())
        +
        f"<SentTime>{_utc_stamp(sent_time)}</SentTime>"
        f'<Body Type="ByteRange" Length="{body_length}" Offset="0" />'
        '<Hooks><Hook3 Name="zlib-compress" /></Hooks><Payload Type="inline" />'
        f"<TargetHost>{_attr(target_host)}</TargetHost><TargetEndpoint>{_attr(target_endpoint)}</TargetEndpoint>"
        "<ReplyMode>Sync</ReplyMode><Protocol>http</Protocol></Msg>"
    )


def build_multipart(header_xml: str, body_plain: bytes) -> bytes:
    """Two-part body: UTF-16 header with BOM, then the zlib-compressed UTF-16LE body."""
    b = BOUNDARY.encode()
    return (b"--" + b + b"\r\n" + HEADER_PART_TYPE + b"\r\n\r\n" + header_xml.encode("utf-16")
            + b"\r\n--" + b + b"\r\n" + BODY_PART_TYPE + b"\r\n\r\n" + zlib.compress(body_plain)
            + b"\r\n--" + b + b"--")


def _utf16z(xml: str, crlf: bool) -> bytes:
    """UTF-16LE without BOM, NUL-terminated; the request body also carries an ASCII CRLF after the NUL."""
    return xml.encode("utf-16-le") + b"\x00\x00" + (b"\r\n" if crlf else b"")


def hardware_id(netbios: str) -> str:
    """A stable HardwareID1 in the client's '2:<sha1>' form, derived from the host name for the lab."""
    return "2:" + hashlib.sha1(("lab-hw:" + netbios.upper()).encode()).hexdigest().upper()


def build_registration_request(*, netbios: str, fqdn: str, smsid: str, mp_fqdn: str,
                               identity: ClientIdentity, locale: int = 1033,
                               hw_id: str | None = None, sent_time: dt.datetime | None = None,
                               msg_id: str | None = None, source_id: str | None = None,
                               declared_length: int | None = None) -> bytes:
    """Full multipart body of a ClientRegistrationRequest as CcmExec posts it to the windowsauth vdir.

    Variants seen between versions and tools: `source_id` puts a <SourceID> in the header (with
    `smsid=""` the GUID is then only there); `declared_length` overrides the header's Body Length."""
    cert_hex = identity.cert_der.hex().upper()
    stamp = _utc_stamp(sent_time)
    props = (("Netbios Name", netbios.upper()), ("FQ Name", fqdn), ("Locale ID", str(locale)),
             ("InternetFlag", "0"), ("HardwareID1", hw_id or hardware_id(netbios)))
    data = (
        f'<Data HashAlgorithm="{SHA256_RSA_OID}" SMSID="{_attr(smsid)}" RequestType="Registration" '
        f'TimeStamp="{stamp}">'
        f'<AgentInformation AgentIdentity="{AGENT_IDENTITY}" AgentVersion="{AGENT_VERSION}" AgentType="0" />'
        f'<Certificates><Encryption Encoding="HexBinary" KeyType="1">{cert_hex}</Encryption>'
        f'<Signing Encoding="HexBinary" KeyType="1">{cert_hex}</Signing></Certificates>'
        "<DiscoveryProperties>"
        + "".join(f'<Property Name="{n}" Value="{_attr(v)}" />' for n, v in props)
        + "</DiscoveryProperties></Data>"
    )
    xml = (f"<ClientRegistrationRequest>{data}<Signature><SignatureValue>{sign_data(identity.key, data)}"
           "</SignatureValue></Signature></ClientRegistrationRequest>")
    body = _utf16z(xml, crlf=True)
    length = len(body) - 2 if declared_length is None else declared_length
    header = build_header(body_length=length, source_host=netbios.upper(), target_host=mp_fqdn,
                          reply_to=f"direct:{netbios.upper()}:SccmMessaging", msg_id=msg_id,
                          sent_time=sent_time, source_id=source_id)
    return build_multipart(header, body)


def build_registration_reply(*, status: int, approval_status: int, smsid: str | None, mp_netbios: str,
                             client_netbios: str, request_id: str | None, site_code: str = "LAB",
                             sent_time: dt.datetime | None = None, root: str = REPLY_ROOT,
                             declared_length: int | None = None) -> bytes:
    """Multipart MP reply: reply header plus the zlib ClientRegistrationResponse (NUL-terminated, no CRLF).

    Variants: `root` names the body's root element otherwise; `declared_length` overrides Body Length."""
    sms = f' SMSID="{_attr(smsid)}"' if smsid else ""
    xml = (f'<{root} ResponseType="Registration" TimeStamp="{_utc_stamp(sent_time)}" '
           f'Status="{status}"{sms} ApprovalStatus="{approval_status}"/>')
    body = _utf16z(xml, crlf=False)
    # SiteCode property: the SDK compares the "site code from reply message" with the request's.
    header = build_header(body_length=len(body) if declared_length is None else declared_length,
                          source_host=mp_netbios.upper(),
                          target_host=client_netbios.upper(), reply_to=f"mp:[http]{REGISTRATION_ENDPOINT}",
                          correlation_id=request_id, target_endpoint="SccmMessaging",
                          target_address=f"direct:{client_netbios.upper()}:SccmMessaging",
                          sent_time=sent_time, properties={"SiteCode": site_code})
    return build_multipart(header, body)


# ---------------------------------------------------------------------------------------------- parsing


@dataclass
class Part:
    """One MIME part: its lower-cased header lines and payload bytes."""

    headers: dict[str, str]
    payload: bytes


@dataclass
class MsgHeader:
    """Fields of the <Msg> header that the lab and the decoders look at."""

    msg_id: str | None = None
    source_host: str | None = None
    source_id: str | None = None
    target_address: str | None = None
    target_endpoint: str | None = None
    target_host: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    sent_time: str | None = None
    body_length: int | None = None
    compressed: bool = False
    reply_compression: str | None = None
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class RegistrationRequest:
    """A parsed ClientRegistrationRequest with the exact <Data> text needed for signature checks."""

    header: MsgHeader
    body_bytes: int
    smsid: str
    request_type: str
    timestamp: str | None
    hash_algorithm: str | None
    agent_identity: str | None
    agent_version: str | None
    agent_type: str | None
    properties: dict[str, str]
    signing_cert: bytes | None
    encryption_cert: bytes | None
    signature_hex: str
    data_xml: str

    @property
    def netbios(self) -> str | None:
        return self.properties.get("Netbios Name")

    @property
    def fqdn(self) -> str | None:
        return self.properties.get("FQ Name")

    def signature_ok(self) -> bool:
        return self.signing_cert is not None and verify_signature(self.signing_cert, self.data_xml,
                                                                  self.signature_hex)


@dataclass
class RegistrationReply:
    """A parsed ClientRegistrationResponse."""

    header: MsgHeader
    response_type: str | None
    status: int | None
    smsid: str | None
    approval_status: int | None
    timestamp: str | None


def split_multipart(data: bytes, boundary: str = BOUNDARY) -> list[Part]:
    """Split a multipart/mixed body into its parts (CRLF before each delimiter belongs to the delimiter)."""
    if len(data) > MAX_MESSAGE:
        raise CcmMessageError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    delim = b"--" + boundary.encode()
    if not data.startswith(delim):
        raise CcmMessageError("body does not start with the multipart boundary")
    parts: list[Part] = []
    pos = len(delim)
    while True:
        if data.startswith(b"--", pos):
            break  # closing delimiter
        if not data.startswith(b"\r\n", pos):
            raise CcmMessageError("boundary not followed by CRLF")
        head_end = data.find(b"\r\n\r\n", pos + 2)
        if head_end < 0:
            raise CcmMessageError("part headers not terminated")
        headers: dict[str, str] = {}
        for line in data[pos + 2:head_end].split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        nxt = data.find(b"\r\n" + delim, head_end + 4)
        if nxt < 0:
            raise CcmMessageError("part not closed by a boundary")
        parts.append(Part(headers, data[head_end + 4:nxt]))
        if len(parts) > MAX_PARTS:
            raise CcmMessageError("too many MIME parts")
        pos = nxt + 2 + len(delim)
    return parts


def inflate(data: bytes, limit: int = MAX_INFLATED) -> bytes:
    """zlib-inflate with an output bound; any zlib header (78 01/5E/9C/DA) is accepted."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error as exc:
        raise CcmMessageError(f"zlib: {exc}") from None
    if d.unconsumed_tail:
        raise CcmMessageError(f"inflated body exceeds {limit} bytes")
    if not d.eof:
        raise CcmMessageError("zlib stream truncated")
    return out


def _decode_utf16_body(raw: bytes) -> str:
    """UTF-16LE text without BOM; strip the ASCII CRLF and the UTF-16 NUL the sender appended."""
    if raw.endswith(b"\x00\x00\r\n"):
        raw = raw[:-2]
    if len(raw) % 2:
        raise CcmMessageError(f"UTF-16 body has odd length {len(raw)}")
    try:
        text = raw.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise CcmMessageError(f"body is not UTF-16LE: {exc}") from None
    return text.rstrip("\x00")


def _xml(text: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise CcmMessageError(f"{what} XML: {exc}") from None


def parse_header(payload: bytes) -> MsgHeader:
    """Parse part 1: UTF-16 with BOM (tolerate a missing BOM) holding <Msg>."""
    if payload.startswith(b"\xff\xfe"):
        payload = payload[2:]
    try:
        text = payload.decode("utf-16-le").rstrip("\x00")
    except UnicodeDecodeError as exc:
        raise CcmMessageError(f"header is not UTF-16LE: {exc}") from None
    root = _xml(text, "header")
    if root.tag != "Msg":
        raise CcmMessageError(f"header root is <{root.tag}>, not <Msg>")
    h = MsgHeader(reply_compression=root.get("ReplyCompression"))
    for tag, attr in (("ID", "msg_id"), ("SourceHost", "source_host"), ("SourceID", "source_id"),
                      ("TargetAddress", "target_address"), ("TargetEndpoint", "target_endpoint"),
                      ("TargetHost", "target_host"), ("ReplyTo", "reply_to"),
                      ("CorrelationID", "correlation_id"), ("SentTime", "sent_time")):
        el = root.find(tag)
        if el is not None:
            setattr(h, attr, (el.text or "").strip())
    body = root.find("Body")
    if body is not None and (body.get("Length") or "").isdigit():
        h.body_length = int(body.get("Length") or 0)
    hooks = root.find("Hooks")
    if hooks is not None:
        h.compressed = any(el.get("Name") == "zlib-compress" for el in hooks)
    for prop in root.findall("Property"):
        h.properties[prop.get("Name") or ""] = prop.get("Value") or ""
    return h


def _two_parts(data: bytes) -> tuple[MsgHeader, bytes]:
    parts = split_multipart(data)
    if len(parts) != 2:
        raise CcmMessageError(f"expected 2 MIME parts, got {len(parts)}")
    header = parse_header(parts[0].payload)
    raw = inflate(parts[1].payload) if header.compressed else parts[1].payload
    return header, raw


def parse_registration_request(data: bytes) -> RegistrationRequest:
    """Parse a registration request body; raises CcmMessageError on any malformed piece."""
    header, raw = _two_parts(data)
    text = _decode_utf16_body(raw)
    start, end = text.find("<Data"), text.find("</Data>")
    if start < 0 or end < 0:
        raise CcmMessageError("no <Data> element in the registration body")
    data_xml = text[start:end + len("</Data>")]
    root = _xml(text, "body")
    if root.tag != "ClientRegistrationRequest":
        raise CcmMessageError(f"body root is <{root.tag}>")
    d = root.find("Data")
    if d is None:
        raise CcmMessageError("no <Data> element")
    agent = d.find("AgentInformation")
    props = {p.get("Name") or "": p.get("Value") or "" for p in d.iterfind("DiscoveryProperties/Property")}

    def cert(tag: str) -> bytes | None:
        el = d.find(f"Certificates/{tag}")
        if el is None or not el.text:
            return None
        try:
            return bytes.fromhex(el.text.strip())
        except ValueError:
            raise CcmMessageError(f"certificate {tag} is not hex") from None

    sig = root.find("Signature/SignatureValue")
    return RegistrationRequest(
        header=header, body_bytes=len(raw), smsid=d.get("SMSID") or "",
        request_type=d.get("RequestType") or "",
        timestamp=d.get("TimeStamp"), hash_algorithm=d.get("HashAlgorithm"),
        agent_identity=agent.get("AgentIdentity") if agent is not None else None,
        agent_version=agent.get("AgentVersion") if agent is not None else None,
        agent_type=agent.get("AgentType") if agent is not None else None,
        properties=props, signing_cert=cert("Signing"), encryption_cert=cert("Encryption"),
        signature_hex=(sig.text or "").strip() if sig is not None else "", data_xml=data_xml)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_registration_reply(data: bytes) -> RegistrationReply:
    """Parse the MP's registration reply; raises CcmMessageError on any malformed piece."""
    header, raw = _two_parts(data)
    root = _xml(_decode_utf16_body(raw), "reply")
    if root.tag != "ClientRegistrationResponse":
        raise CcmMessageError(f"reply root is <{root.tag}>")
    return RegistrationReply(header=header, response_type=root.get("ResponseType"),
                             status=_int_or_none(root.get("Status")), smsid=root.get("SMSID"),
                             approval_status=_int_or_none(root.get("ApprovalStatus")),
                             timestamp=root.get("TimeStamp"))


def new_smsid() -> str:
    """A client GUID in the 'GUID:XXXXXXXX-…' form (upper case, as ClientIDManagerStartup logs it)."""
    return "GUID:" + str(uuid.uuid4()).upper()


def rdr_name() -> str:
    """Eight upper-case alphanumerics, the shape of the .RDR names MP_RegistrationManager logs."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))
