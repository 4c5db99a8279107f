"""TLS handshake reader: what a TLS connection shows in clear before encryption starts.

An HTTPS or Enhanced HTTP MP carries the registration inside TLS. What stays readable is the record
layer and the first handshake messages (RFC 5246 §6-7, RFC 8446 §4-5): the ClientHello (SNI, offered
versions), the ServerHello (negotiated version; TLS 1.3 names it in supported_versions), in TLS 1.2
and older the server's CertificateRequest and the client's Certificate message, and clear-text alerts.
Once ChangeCipherSpec or application data starts, nothing more is readable and the reader stops.

A small walker of the record and handshake framing, not a library: dpkt.ssl wants each handshake
message whole inside one record (NeedData otherwise) and does not read supported_versions; scapy's
TLS layer dissects every field and certificate: 12.6 ms per TLS 1.2 handshake with a client
certificate, against 34 us here. Both would buffer whole messages where this reads a Certificate's
emptiness from its length and skips the rest.
Buffers are bounded: each direction reads at most `MAX_HANDSHAKE_BYTES`, then stops looking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kerbtrace.codes import tls_alert_name, tls_version_name
from kerbtrace.decoders import DecodeError

#: Bytes of one direction read at most (records and handshake messages included), then reading stops.
MAX_HANDSHAKE_BYTES = 64 * 1024
#: Largest TLSCiphertext fragment (RFC 5246 §6.2.3: 2^14 + 2048).
MAX_RECORD = (1 << 14) + 2048

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
CLIENT_HELLO, SERVER_HELLO, CERTIFICATE, CERTIFICATE_REQUEST, SERVER_HELLO_DONE, CLIENT_KEY_EXCHANGE = \
    1, 2, 11, 13, 14, 16
EXT_SERVER_NAME, EXT_SUPPORTED_VERSIONS = 0, 43
TLS13 = 0x0304
#: ServerHello.random of a HelloRetryRequest (RFC 8446 §4.1.3).
HELLO_RETRY_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
_HELLOS = (CLIENT_HELLO, SERVER_HELLO)


def looks_like_client_hello(payload: bytes) -> bool:
    """A handshake record of SSL 3.0 - TLS 1.3 framing that (when long enough to tell) holds a ClientHello."""
    return (len(payload) >= 3 and payload[0] == HANDSHAKE and payload[1] == 3 and payload[2] <= 4
            and (len(payload) < 6 or payload[5] == CLIENT_HELLO))


@dataclass(slots=True)
class TlsHandshake:
    """The clear-text facts of one TLS handshake (None: not seen in the capture)."""

    first_frame: int | None = None  # first TLS record read (the ClientHello's frame when it was captured)
    first_time: float | None = None
    client_hello_frame: int | None = None
    sni: str | None = None
    offered_versions: list[str] = field(default_factory=list)  # supported_versions, else legacy_version
    server_hello_frame: int | None = None
    version: str | None = None  # negotiated
    hello_retry: bool = False  # a TLS 1.3 HelloRetryRequest was seen
    certificate_requested: bool | None = None  # TLS <= 1.2: CertificateRequest in the server's flight
    client_certificate: bool | None = None  # TLS <= 1.2: client Certificate message non-empty
    client_certificate_frame: int | None = None
    alert: str | None = None  # description name of a clear-text alert (a fatal one wins)
    alert_fatal: bool = False
    alert_from_client: bool | None = None
    alert_frame: int | None = None


class _Direction:
    __slots__ = ("records", "handshake", "skip", "read", "stopped", "stop_frame")

    def __init__(self) -> None:
        self.records = bytearray()  # record layer bytes not yet framed
        self.handshake = bytearray()  # handshake message bytes not yet framed (hellos are kept whole)
        self.skip = 0  # bytes of an uninteresting handshake message still to pass over
        self.read = 0
        self.stopped = False
        self.stop_frame: int | None = None


class TlsHandshakeReader:
    """Reads both directions of one connection until encryption starts; `done` says when to stop feeding.

    A side stops at its ChangeCipherSpec (TLS <= 1.2), its first encrypted record, a framing error or
    the byte limit. The reader is done when both sides stopped (so a TLS 1.2 server's alert answering
    the client's second flight is still read), when a stopped side sends more in a later packet (the other
    side may be missing from the capture), or at a fatal alert.
    """

    __slots__ = ("info", "_dirs", "_version", "done")

    def __init__(self) -> None:
        self.info = TlsHandshake()
        self._dirs = {True: _Direction(), False: _Direction()}
        self._version: int | None = None
        self.done = False

    def unfinished(self, from_client: bool) -> str | None:
        """What of a side was cut off by the end of its connection (a record or message begun, not ended)."""
        d = self._dirs[from_client]
        if d.stopped or self.done:
            return None
        if d.records:
            want = 5 + int.from_bytes(d.records[3:5], "big") if len(d.records) >= 5 else 5
            return f"the connection ended inside a TLS record ({len(d.records)} of {want} bytes)"
        if d.handshake or d.skip:
            return "the connection ended inside a TLS handshake message"
        return None

    def gap(self, from_client: bool) -> None:
        """Bytes of a direction are missing: its framing is lost, stop reading it."""
        self._stop(from_client)

    def feed(self, from_client: bool, data: bytes, frame: int, time: float) -> None:
        """In-order bytes of one direction. Raises DecodeError on malformed framing (that direction stops)."""
        d = self._dirs[from_client]
        if d.stopped or self.done:
            # More encrypted data, in a later packet, after this side stopped: the handshake is over,
            # whether or not the capture holds the other side.
            if d.stop_frame is None or frame != d.stop_frame:
                self.done = True
            return
        room = MAX_HANDSHAKE_BYTES - d.read - len(d.records)
        if room <= 0:
            self._stop(from_client, frame)
            return
        d.records += data[:room]
        try:
            self._records(d, from_client, frame, time)
        except DecodeError:
            self._stop(from_client, frame)
            raise
        if not d.stopped and d.read + len(d.records) >= MAX_HANDSHAKE_BYTES:
            self._stop(from_client, frame)

    def _stop(self, from_client: bool, frame: int | None = None) -> None:
        d = self._dirs[from_client]
        d.stopped, d.stop_frame = True, frame
        d.records = bytearray()
        d.handshake = bytearray()
        if self._dirs[True].stopped and self._dirs[False].stopped:
            self.done = True

    def _records(self, d: _Direction, from_client: bool, frame: int, time: float) -> None:
        buf = d.records
        while len(buf) >= 5 and not d.stopped:
            ctype, major, n = buf[0], buf[1], int.from_bytes(buf[3:5], "big")
            if ctype not in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT) or major != 3:
                raise DecodeError(f"not a TLS record (bytes {bytes(buf[:3]).hex()} at offset {d.read})")
            if n > MAX_RECORD:
                raise DecodeError(f"TLS record of {n} bytes exceeds the maximum {MAX_RECORD}")
            fragment = _pop(buf, 5, n)
            if fragment is None:
                return
            d.read += 5 + n
            if self.info.first_frame is None:
                self.info.first_frame, self.info.first_time = frame, time
            if ctype == HANDSHAKE:
                self._handshake(d, from_client, fragment, frame)
            elif ctype == ALERT:
                self._alert(from_client, fragment, frame)
            elif ctype == CHANGE_CIPHER_SPEC:
                # TLS 1.3 sends it only for middlebox compatibility; older versions encrypt from here on.
                if self._version != TLS13:
                    self._stop(from_client, frame)
            elif ctype == APPLICATION_DATA:
                self._stop(from_client, frame)

    def _alert(self, from_client: bool, fragment: bytes, frame: int) -> None:
        if len(fragment) != 2:
            return  # not a clear-text alert
        fatal = fragment[0] == 2
        info = self.info
        if info.alert is None or (fatal and not info.alert_fatal):
            info.alert, info.alert_fatal = tls_alert_name(fragment[1]), fatal
            info.alert_from_client, info.alert_frame = from_client, frame
        if fatal:
            self.done = True  # the connection ends with it

    def _handshake(self, d: _Direction, from_client: bool, fragment: bytes, frame: int) -> None:
        if d.skip:
            take = min(d.skip, len(fragment))
            d.skip -= take
            fragment = fragment[take:]
        hs = d.handshake
        hs += fragment
        while len(hs) >= 4 and not d.stopped and not self.done:
            mtype, n = hs[0], int.from_bytes(hs[1:4], "big")
            if mtype in _HELLOS:
                if n > MAX_HANDSHAKE_BYTES:
                    raise DecodeError(f"TLS hello message of {n} bytes")
                body = _pop(hs, 4, n)
                if body is None:
                    return
                if mtype == CLIENT_HELLO:
                    if from_client:
                        self._client_hello(body, frame)
                elif not from_client:
                    self._server_hello(body, frame)
                continue
            del hs[:4]
            take = min(n, len(hs))
            del hs[:take]
            d.skip = n - take
            self._message(mtype, n, from_client, frame)

    def _message(self, mtype: int, n: int, from_client: bool, frame: int) -> None:
        """A handshake message other than the hellos: its type and length are enough."""
        info = self.info
        if self._version == TLS13:
            return  # a clear message after the ServerHello cannot be told apart from garbage: ignore
        if from_client:
            if mtype == CERTIFICATE:
                # TLS <= 1.2 Certificate: a 3-byte list length, then the certificates; empty when n == 3.
                info.client_certificate, info.client_certificate_frame = n > 3, frame
            elif mtype == CLIENT_KEY_EXCHANGE and info.client_certificate is None:
                info.client_certificate = False  # no Certificate message before the key exchange
        elif mtype == CERTIFICATE_REQUEST:
            info.certificate_requested = True
        elif mtype == SERVER_HELLO_DONE and info.certificate_requested is None:
            info.certificate_requested = False

    def _client_hello(self, body: bytes, frame: int) -> None:
        info = self.info
        if info.client_hello_frame is not None:
            return  # the second ClientHello after a HelloRetryRequest repeats the first
        info.client_hello_frame = frame
        r = _Reader(body, "ClientHello")
        legacy = r.u16()
        r.skip(32)
        r.skip(r.u8())  # session id
        r.skip(r.u16())  # cipher suites
        r.skip(r.u8())  # compression methods
        offered: list[int] = [legacy]
        for etype, ext in r.extensions():
            if etype == EXT_SERVER_NAME:
                info.sni = _server_name(ext)
            elif etype == EXT_SUPPORTED_VERSIONS:
                e = _Reader(ext, "supported_versions")
                e = _Reader(e.take(e.u8()), "supported_versions")
                listed = [e.u16() for _ in range(len(e.data) // 2)]
                offered = [v for v in listed if v & 0x0F0F != 0x0A0A]  # without GREASE values
        info.offered_versions = [tls_version_name(v) for v in offered]

    def _server_hello(self, body: bytes, frame: int) -> None:
        info = self.info
        r = _Reader(body, "ServerHello")
        version = r.u16()
        retry = r.take(32) == HELLO_RETRY_RANDOM
        r.skip(r.u8())  # session id
        r.skip(3)  # cipher suite, compression method
        for etype, ext in r.extensions():
            if etype == EXT_SUPPORTED_VERSIONS:
                version = _Reader(ext, "supported_versions").u16()
        self._version = version
        info.version = tls_version_name(version)
        info.server_hello_frame = frame
        info.hello_retry = info.hello_retry or retry


def _pop(buf: bytearray, header: int, n: int) -> bytes | None:
    """The `n` bytes after a `header`-byte header, removed from `buf` with it; None until all have arrived."""
    if len(buf) < header + n:
        return None
    out = bytes(buf[header:header + n])
    del buf[:header + n]
    return out


def _server_name(ext: bytes) -> str | None:
    """The host_name entry of a server_name extension (RFC 6066 §3)."""
    r = _Reader(ext, "server_name")
    r = _Reader(r.take(r.u16()), "server_name")
    while r.pos < len(r.data):
        kind = r.u8()
        name = r.take(r.u16())
        if kind == 0:
            return name.decode("ascii", errors="replace")
    return None


class _Reader:
    """Bounds-checked big-endian reads; running out of bytes is a DecodeError naming the message."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError(f"TLS {self.what} truncated ({n} bytes wanted at offset {self.pos} of "
                              f"{len(self.data)})")
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def skip(self, n: int) -> None:
        self.take(n)

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def extensions(self) -> list[tuple[int, bytes]]:
        """(type, data) of the extension block, if the message has one."""
        if self.pos == len(self.data):
            return []
        block = _Reader(self.take(self.u16()), f"{self.what} extensions")
        out = []
        while block.pos < len(block.data):
            etype = block.u16()
            out.append((etype, block.take(block.u16())))
        return out
