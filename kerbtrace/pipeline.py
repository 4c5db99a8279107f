"""The decoding pipeline: transport bytes in, typed events out.

It implements the reassembly layer's `TransportSink`: Kerberos on port 88 (UDP datagrams and the
TCP length framing), DNS on port 53, HTTP recognised by content on any TCP port (WinRM on
5985 as well as an MP on 80), and TLS (an HTTPS MP) by its ClientHello on any port or on 443.
Every decoded message becomes an event for the exchange tracker.
Nothing here knows about clients or verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from kerbtrace.decoders import DecodeError
from kerbtrace.decoders.ccm import CcmMessage, decode_ccm
from kerbtrace.decoders.dns import peek_dns, split_dns_tcp
from kerbtrace.decoders.gss import AuthToken, decode_auth_header
from kerbtrace.decoders.http import HttpMessage, HttpStreamParser, looks_like_http
from kerbtrace.decoders.kerberos import decode_kerberos
from kerbtrace.decoders.tls import TlsHandshakeReader, looks_like_client_hello
from kerbtrace.diagnostics import Diagnostics
from kerbtrace.events import (
    CaptureGapEvent,
    DnsEvent,
    Event,
    HttpEvent,
    KdcFailureEvent,
    KerberosEvent,
    TlsEvent,
)
from kerbtrace.model import TcpConn
from kerbtrace.reassembly.kerberos_framing import KerberosTcpFramer

KERBEROS_PORT = 88
DNS_PORT = 53
#: Ports where a connection caught in its middle is still taken as HTTP (MP default, alternate, WinRM).
HTTP_PORTS = frozenset({80, 8080, 8530, 5985})
#: Ports where a connection caught in its middle is taken as TLS (an HTTPS or Enhanced HTTP MP).
TLS_PORTS = frozenset({443})
AUTH_HEADERS_REQUEST = ("authorization",)
AUTH_HEADERS_RESPONSE = ("www-authenticate",)
#: The registration body is small; anything larger than this is not kept for CCM decoding.
MAX_DNS_TCP_BUFFER = 1 << 16
MAX_PENDING_REQUESTS = 64  # per HTTP connection, the oldest let go


class _KerberosConn:
    __slots__ = ("framers",)

    def __init__(self) -> None:
        self.framers = {True: KerberosTcpFramer(), False: KerberosTcpFramer()}


class _DnsConn:
    __slots__ = ("buffers",)

    def __init__(self) -> None:
        self.buffers: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}


class _HttpConn:
    __slots__ = ("requests", "responses", "pending")

    def __init__(self, diag: Diagnostics) -> None:
        self.requests = HttpStreamParser(True, diag)
        self.responses = HttpStreamParser(False, diag)
        #: Requests awaiting their response, each with whether it went to a registration endpoint (the latest
        #: MAX_PENDING_REQUESTS; a list: an empty deque costs 600 bytes a connection, and connections wait).
        self.pending: list[tuple[HttpMessage, bool]] = []


class _TlsConn:
    __slots__ = ("reader", "midstream", "last_frame")

    def __init__(self, midstream: bool) -> None:
        self.reader = TlsHandshakeReader()
        self.midstream = midstream
        self.last_frame: int | None = None  # for a warning at the connection's end


class Pipeline:
    """TransportSink that turns reassembled bytes into Kerberos, HTTP, DNS and TLS events."""

    udp_ports: ClassVar[frozenset[int]] = frozenset({KERBEROS_PORT, DNS_PORT})
    #: TCP server ports whose connections `wants_tcp` takes without looking at the payload: a partitioned run
    #: takes the other side of a connection to one of these as its client (`kerbtrace.ownership`).
    tcp_ports: ClassVar[frozenset[int]] = frozenset({KERBEROS_PORT, DNS_PORT}) | HTTP_PORTS | TLS_PORTS
    watch_ports: ClassVar[frozenset[int]] = frozenset({KERBEROS_PORT})

    def __init__(self, diag: Diagnostics, emit: Callable[[Event], None]) -> None:
        self.diag = diag
        self.emit = emit
        self.counts = {"kerberos": 0, "http": 0, "dns": 0, "tls": 0}
        self._last_time = 0.0  # gaps are reported without a time: the latest one seen stands in

    # --- connection selection -------------------------------------------------------------
    def wants_tcp(self, conn: TcpConn, payload: bytes, from_client: bool) -> bool:
        if conn.server_port == KERBEROS_PORT or conn.client_port == KERBEROS_PORT:
            conn.app = _KerberosConn()
            return True
        if conn.server_port == DNS_PORT:
            conn.app = _DnsConn()
            return True
        if from_client and looks_like_client_hello(payload):
            conn.app = _TlsConn(False)
            return True
        if looks_like_http(payload) or conn.server_port in HTTP_PORTS:
            # A connection seen from its middle starts inside a message: on a usual HTTP port it is
            # taken anyway, and the parser finds the next message start.
            conn.app = _HttpConn(self.diag)
            return True
        if conn.server_port in TLS_PORTS:
            # No ClientHello first: caught mid-connection (or the server's side only, from its SYN-ACK on).
            conn.app = _TlsConn(not conn.saw_syn)
            return True
        return False

    # --- TCP ------------------------------------------------------------------------------
    def on_tcp_data(self, conn: TcpConn, from_client: bool, data: bytes, frame: int, time: float) -> None:
        app = conn.app
        self._last_time = time
        if isinstance(app, _HttpConn):
            self._http_data(conn, app, from_client, data, frame, time)
        elif isinstance(app, _TlsConn):
            self._tls_data(conn, app, from_client, data, frame, time)
        elif isinstance(app, _KerberosConn):
            framer = app.framers[from_client]
            if framer.error:
                return
            for raw in framer.feed(data):
                self._kerberos(raw, conn_src(conn, from_client), conn_dst(conn, from_client), "tcp", frame, time,
                               conn.stream)
            if framer.error:
                self.diag.warn(frame, f"TCP stream {conn.stream} on port 88 is not Kerberos framing: "
                               f"{framer.error}", "kerberos")
        elif isinstance(app, _DnsConn):
            buf = app.buffers[from_client]
            buf += data
            if len(buf) > MAX_DNS_TCP_BUFFER:
                buf.clear()
                return
            # messages are length-prefixed; decode whole ones only
            while len(buf) >= 2:
                n = int.from_bytes(buf[:2], "big")
                if len(buf) < 2 + n:
                    break
                chunk = bytes(buf[: 2 + n])
                del buf[: 2 + n]
                try:
                    for message in split_dns_tcp(chunk):
                        src, dst = conn_src(conn, from_client), conn_dst(conn, from_client)
                        self.emit(DnsEvent(frame, time, src[0], dst[0], peek_dns(message)))
                except DecodeError as exc:
                    self.diag.warn(frame, f"malformed DNS over TCP: {exc}", "dns")

    def on_tcp_gap(self, conn: TcpConn, from_client: bool, missing: int, frame: int) -> None:
        app = conn.app
        if isinstance(app, _HttpConn):
            (app.requests if from_client else app.responses).gap(missing, frame)
            self.emit(CaptureGapEvent(frame, self._last_time, conn.client_ip, conn.server_ip, conn.stream, missing))
        elif isinstance(app, _TlsConn):
            if missing:
                app.reader.gap(from_client)
        elif isinstance(app, _KerberosConn):
            app.framers[from_client] = KerberosTcpFramer()
            if missing:
                self.diag.warn(frame, f"{missing} bytes missing in Kerberos TCP stream {conn.stream}; "
                               "messages spanning the hole are lost", "capture")
            else:
                self.diag.warn(frame, f"Kerberos TCP stream {conn.stream} was caught mid-connection: a message "
                               "it started before the capture cannot be read", "capture")

    def on_tcp_close(self, conn: TcpConn, frame: int | None, time: float | None) -> None:
        app = conn.app
        if isinstance(app, _HttpConn):
            for msg in app.requests.close(frame, time):
                self._http_message(conn, app, msg)
            for msg in app.responses.close(frame, time):
                self._http_message(conn, app, msg)
        elif isinstance(app, _TlsConn):
            for from_client in (True, False):
                cut = app.reader.unfinished(from_client)
                if cut:
                    side = "client" if from_client else "server"
                    self.diag.warn(frame or app.last_frame, f"TLS stream {conn.stream} ({side} side): {cut}",
                                   "tls")
            self._tls_event(conn, app)
        conn.app = None

    def _tls_data(self, conn: TcpConn, app: _TlsConn, from_client: bool, data: bytes, frame: int,
                  time: float) -> None:
        """Feed the handshake reader; once it has read all that is clear, emit and let the connection go."""
        if app.midstream:
            self.counts["tls"] += 1
            self.emit(TlsEvent(frame, time, conn.client_ip, conn.client_port, conn.server_ip, conn.server_port,
                               conn.stream, midstream=True))
            self._detach(conn)
            return
        reader = app.reader
        app.last_frame = frame
        try:
            reader.feed(from_client, data, frame, time)
        except DecodeError as exc:
            side = "client" if from_client else "server"
            self.diag.warn(frame, f"TLS stream {conn.stream} ({side} side): {exc}; the rest of that side "
                           "is not read", "tls")
        if reader.done:
            self._tls_event(conn, app)
            self._detach(conn)

    def _tls_event(self, conn: TcpConn, app: _TlsConn) -> None:
        info = app.reader.info
        if info.first_frame is None or info.first_time is None:
            return  # nothing of the handshake was readable: the warning said why
        self.counts["tls"] += 1
        self.emit(TlsEvent(
            info.client_hello_frame or info.first_frame, info.first_time, conn.client_ip, conn.client_port,
            conn.server_ip, conn.server_port, conn.stream, sni=info.sni, version=info.version,
            certificate_requested=info.certificate_requested, client_certificate=info.client_certificate,
            server_frame=info.server_hello_frame, alert=info.alert, offered_versions=info.offered_versions,
            client_certificate_frame=info.client_certificate_frame, alert_from_client=info.alert_from_client,
            alert_frame=info.alert_frame))

    @staticmethod
    def _detach(conn: TcpConn) -> None:
        """Nothing more to read on this connection: the reassembler forgets it (no per-packet cost)."""
        conn.app = None
        conn.detached = True

    def _http_data(self, conn: TcpConn, app: _HttpConn, from_client: bool, data: bytes, frame: int,
                   time: float) -> None:
        parser = app.requests if from_client else app.responses
        for msg in parser.feed(data, frame, time):
            self._http_message(conn, app, msg)

    def _http_message(self, conn: TcpConn, app: _HttpConn, msg: HttpMessage) -> None:
        self.counts["http"] += 1
        request = None
        answers_registration = False
        if msg.is_request:
            app.responses.expect_response_to(msg.method or "GET")
            header_names = AUTH_HEADERS_REQUEST
        else:
            if msg.status is not None and msg.status >= 200 and app.pending:
                request, answers_registration = app.pending.pop(0)
            header_names = AUTH_HEADERS_RESPONSE
        tokens: list[AuthToken] = []
        for name in header_names:
            for value in msg.headers_named(name):
                token = decode_auth_header(value)
                tokens.append(token)
                if token.error and token.form == "invalid":
                    self.diag.warn(msg.frame, f"undecodable {name} header: {token.error}", "auth")
        ccm = None
        if msg.body and (msg.method if msg.is_request else request.method if request is not None else None) \
                == "CCM_POST":
            ccm = decode_ccm(msg.header("content-type"), msg.body, answers_registration=answers_registration)
            if ccm is not None:
                for text in ccm.warnings:
                    self.diag.warn(msg.frame, f"CCM message: {text}", "ccm")
        if msg.is_request:
            app.pending.append((msg, is_registration_request(msg, ccm)))
            if len(app.pending) > MAX_PENDING_REQUESTS:
                del app.pending[0]
        client = (conn.client_ip, conn.client_port)
        server = (conn.server_ip, conn.server_port)
        event = HttpEvent(msg.frame, msg.time, conn.client_ip, conn.client_port, conn.server_ip,
                          conn.server_port, conn.stream, msg, tokens, ccm, request)
        # Kerberos messages carried in the auth headers are listed like those on port 88.
        src, dst = (client, server) if msg.is_request else (server, client)
        for token in tokens:
            if token.kerberos is not None:
                self.counts["kerberos"] += 1
                self.emit(KerberosEvent(msg.frame, msg.time, src[0], src[1], dst[0], dst[1], "http",
                                        token.kerberos, conn.stream))
        self.emit(event)

    def on_connect_failed(self, client_ip: str, client_port: int, server_ip: str, server_port: int,
                          transport: str, how: str, frame: int, time: float) -> None:
        self.emit(KdcFailureEvent(frame, time, client_ip, server_ip, transport, how))

    # --- UDP ------------------------------------------------------------------------------
    def on_udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes, frame: int, time: float) -> None:
        if sport == KERBEROS_PORT or dport == KERBEROS_PORT:
            self._kerberos(payload, (src, sport), (dst, dport), "udp", frame, time, None)
        elif sport == DNS_PORT or dport == DNS_PORT:
            try:
                header = peek_dns(payload)
            except DecodeError as exc:
                self.diag.warn(frame, f"malformed DNS message: {exc}", "dns")
                return
            self.counts["dns"] += 1
            self.emit(DnsEvent(frame, time, src, dst, header))

    def _kerberos(self, raw: bytes, src: tuple[str, int], dst: tuple[str, int], transport: str, frame: int,
                  time: float, stream: int | None) -> None:
        try:
            msg = decode_kerberos(raw)
        except DecodeError as exc:
            self.diag.warn(frame, f"malformed Kerberos message on port 88 ({transport}): {exc}", "kerberos")
            return
        self.counts["kerberos"] += 1
        self.emit(KerberosEvent(frame, time, src[0], src[1], dst[0], dst[1], transport, msg, stream))


def is_registration_request(msg: HttpMessage, ccm: CcmMessage | None) -> bool:
    """A request to a registration endpoint: /ccm_system_windowsauth/request, or a /ccm_system*/request
    whose CCM message is a registration. Its answer is read as a registration reply whatever the reply's
    root element is called."""
    path = (msg.uri or "").lower().split("?", 1)[0]
    if not (path.startswith("/ccm_system") and path.endswith("/request")):
        return False
    return "windowsauth" in path or (ccm is not None and ccm.kind == "registration_request")


def conn_src(conn: TcpConn, from_client: bool) -> tuple[str, int]:
    return (conn.client_ip, conn.client_port) if from_client else (conn.server_ip, conn.server_port)


def conn_dst(conn: TcpConn, from_client: bool) -> tuple[str, int]:
    return (conn.server_ip, conn.server_port) if from_client else (conn.client_ip, conn.client_port)
