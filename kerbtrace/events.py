"""Typed events the decoding pipeline hands to the exchange tracker.

Decoders produce protocol records; the pipeline wraps each in an event that says where and when it
was seen (Wireshark frame number, capture time, addresses). Exchanges consume only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kerbtrace.constants import REQUESTS
from kerbtrace.decoders import DecodeError
from kerbtrace.decoders.ccm import CcmMessage
from kerbtrace.decoders.dns import DnsHeader, decode_dns
from kerbtrace.decoders.gss import AuthToken
from kerbtrace.decoders.http import HttpMessage
from kerbtrace.decoders.kerberos import KerberosMessage


@dataclass(slots=True)
class KerberosEvent:
    """One Kerberos message: on port 88 (udp/tcp) or inside an HTTP auth header (transport "http")."""

    frame: int
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    transport: str
    msg: KerberosMessage
    stream: int | None = None

    @property
    def is_request(self) -> bool:
        return self.msg.msg_type in REQUESTS


@dataclass(slots=True)
class HttpEvent:
    """One HTTP request or response, with its decoded auth tokens and CCM body."""

    frame: int
    time: float
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    stream: int
    msg: HttpMessage
    auth: list[AuthToken] = field(default_factory=list)
    ccm: CcmMessage | None = None
    request: HttpMessage | None = None  # for a response: the request it answers

    @property
    def is_request(self) -> bool:
        return self.msg.is_request


@dataclass(slots=True)
class DnsEvent:
    """One DNS message; the answers are decoded only when asked for (`answers`)."""

    frame: int
    time: float
    src: str
    dst: str
    header: DnsHeader

    def answers(self) -> list[tuple[str, int, str]]:
        """(name, type, value) of the answer section; [] when it cannot be decoded."""
        try:
            return decode_dns(self.header.payload).answers
        except DecodeError:
            return []


@dataclass(slots=True)
class KdcFailureEvent:
    """A contact to a KDC (port 88) that failed before any Kerberos message: reset, unanswered, ICMP error."""

    frame: int
    time: float
    client_ip: str
    kdc_ip: str
    transport: str
    how: str


@dataclass(slots=True)
class CaptureGapEvent:
    """Bytes of an HTTP connection that are not in the capture (lost segments, capture started mid-stream)."""

    frame: int
    time: float
    client_ip: str
    server_ip: str
    stream: int
    missing: int  # 0: unknown (the capture started inside the connection)


@dataclass(slots=True)
class TlsEvent:
    """A TLS handshake on a TCP connection, as far as it is readable in clear (emitted once per connection,
    when the client's second flight has been seen and the clear part of the handshake is over, at a fatal
    alert, or when the connection ends).

    An HTTPS or Enhanced HTTP MP carries the registration inside TLS: only this much of it can be seen.
    `client_certificate` is True/False when TLS 1.2 or older shows whether the client sent a non-empty
    Certificate message (PKI client authentication), None when it cannot be seen (TLS 1.3 encrypts it,
    or the capture lacks that part of the handshake).
    """

    frame: int  # the ClientHello (the first TLS frame seen when the capture lacks the ClientHello)
    time: float
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    stream: int
    sni: str | None = None
    version: str | None = None  # negotiated, e.g. "TLS 1.2", from the ServerHello; None when not seen
    certificate_requested: bool | None = None  # the server sent a CertificateRequest (TLS <= 1.2)
    client_certificate: bool | None = None
    server_frame: int | None = None  # the ServerHello
    alert: str | None = None  # a clear-text fatal alert, e.g. "handshake_failure", with no data after it
    offered_versions: list[str] = field(default_factory=list)  # ClientHello: supported_versions (or legacy)
    client_certificate_frame: int | None = None  # the client's Certificate message (TLS <= 1.2)
    alert_from_client: bool | None = None  # who sent `alert`
    alert_frame: int | None = None
    midstream: bool = False  # the capture started inside the connection: no handshake in it, `frame` is
    #                          the first frame seen of it and every other field is None


Event = KerberosEvent | HttpEvent | DnsEvent | KdcFailureEvent | CaptureGapEvent | TlsEvent
