"""Minimal DNS message decoder (RFC 1035): enough to see which SRV/A/CNAME lookups a client made
(DC locator `_kerberos._tcp...`, the MP's name) and whether they failed.

Strict on structure (truncation, bad pointers and compression loops raise `DecodeError`), light
on content: rdata of types that are not needed is kept as hex.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from kerbtrace.decoders import DecodeError

RCODE_NAMES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI",
    16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG",
    22: "BADTRUNC", 23: "BADCOOKIE",
}

QTYPE_NAMES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 17: "RP",
    18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX",
    37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG",
    47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA",
    55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB",
    65: "HTTPS", 99: "SPF", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR",
    252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA",
}

_MAX_POINTERS = 64  # a legitimate name never needs more jumps than it has labels
_MAX_NAME = 255  # RFC 1035 2.3.4, wire length
_NAME_RDATA = frozenset((2, 5, 12, 39))  # NS, CNAME, PTR, DNAME: rdata is one (compressible) name
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_SRV = struct.Struct("!HHH")
_PRINTABLE = frozenset(range(0x21, 0x7F)) - {ord("."), ord("\\")}
_PRINTABLE_BYTES = bytes(sorted(_PRINTABLE))


@dataclass(slots=True)
class DnsMessage:
    """One DNS query or response."""

    id: int
    is_response: bool
    opcode: int
    rcode: int  # header RCODE (4 bits); see RCODE_NAMES
    questions: list[tuple[str, int]]  # (name, qtype)
    answers: list[tuple[str, int, str]]  # (name, type, value): A/AAAA address, CNAME/PTR/NS target,
    #                                      SRV "priority weight port target"; other types: rdata hex


def _label(raw: bytes) -> str:
    if not raw.translate(None, _PRINTABLE_BYTES):
        return raw.decode("ascii")
    return "".join(chr(b) if b in _PRINTABLE else f"\\{b:03d}" for b in raw)


#: Per message: offset of a name already read -> (dotted name, wire bytes, pointer jumps). Answers
#: nearly always point back at the question name (``c0 0c``), which is then spelled out only once.
_Names = dict[int, tuple[str, int, int]]


def _name(data: bytes, pos: int, cache: _Names | None = None) -> tuple[str, int]:
    """Read a possibly compressed name at `pos`; return (dotted name, offset after it in place).

    A pointer to a name found in `cache` ends the walk; the 255-byte and pointer limits are applied
    to the cached totals, and when they are exceeded the plain walk is repeated to raise its error.
    """
    first = pos
    raw: list[bytes] = []
    end = -1  # where the name ends in place (after the first pointer)
    jumps = 0
    wire = 0
    n = len(data)
    tail = None
    while True:
        if pos >= n:
            raise DecodeError("DNS name runs past the end of the message")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                raise DecodeError("DNS compression pointer truncated")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            jumps += 1
            if jumps > _MAX_POINTERS or target >= n:
                raise DecodeError("DNS compression loop or bad pointer")
            if cache is not None:
                tail = cache.get(target)
                if tail is not None:
                    if wire + tail[1] > _MAX_NAME or jumps + tail[2] > _MAX_POINTERS:
                        return _name(data, first)
                    break
            pos = target
            continue
        if kind:
            raise DecodeError(f"DNS label type {kind:#x} not supported")
        wire += length + 1
        if wire > _MAX_NAME:
            raise DecodeError("DNS name longer than 255 bytes")
        if pos + 1 + length > n:
            raise DecodeError("DNS label runs past the end of the message")
        raw.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length
    if raw:
        if len(raw) == 1:
            text = _label(raw[0])
        elif not b"".join(raw).translate(None, _PRINTABLE_BYTES):
            text = b".".join(raw).decode("ascii")
        else:
            text = ".".join([_label(r) for r in raw])
        if tail is not None:
            text = f"{text}.{tail[0]}"
    else:
        text = tail[0] if tail is not None else "."
    if cache is not None and raw:
        cache[first] = (text, wire + tail[1], jumps + tail[2]) if tail is not None else (text, wire, jumps)
    return text, (end if end >= 0 else pos)


def _rdata_value(data: bytes, rtype: int, start: int, rdlen: int, names: _Names) -> str:
    rd = data[start : start + rdlen]
    if not rdlen:
        return ""  # dynamic-update prerequisites and deletions carry no rdata (RFC 2136)
    if rtype == 1 and rdlen == 4:
        return f"{rd[0]}.{rd[1]}.{rd[2]}.{rd[3]}"
    if rtype == 28 and rdlen == 16:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rtype in _NAME_RDATA:
        name, after = _name(data, start, names)
        if after > start + rdlen:
            raise DecodeError("DNS rdata name runs past its length")
        return name
    if rtype == 33 and rdlen >= 7:
        prio, weight, port = _SRV.unpack_from(data, start)
        target, after = _name(data, start + 6, names)
        if after > start + rdlen:
            raise DecodeError("DNS SRV target runs past its length")
        return f"{prio} {weight} {port} {target}"
    return rd.hex()


def _parse(data: bytes, base: int, end: int) -> DnsMessage:
    msg = data[base:end] if base or end != len(data) else data
    if type(msg) is not bytes:
        msg = bytes(msg)  # bytearray / memoryview from the caller
    if len(msg) < 12:
        raise DecodeError("DNS message shorter than its 12-byte header")
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(msg, 0)
    # Each question takes at least 5 bytes and each record 11: counts beyond that are lies.
    if qd * 5 + (an + ns + ar) * 11 > len(msg) - 12:
        raise DecodeError("DNS record counts exceed the message size")
    pos = 12
    names: _Names = {}
    questions: list[tuple[str, int]] = []
    for _ in range(qd):
        name, pos = _name(msg, pos, names)
        if pos + 4 > len(msg):
            raise DecodeError("DNS question truncated")
        questions.append((name, (msg[pos] << 8) | msg[pos + 1]))
        pos += 4
    answers: list[tuple[str, int, str]] = []
    n = len(msg)
    get = names.get
    rr = _RR.unpack_from
    for i in range(an + ns + ar):
        # The usual owner name is one pointer to a name already read (``c0 0c``): taken from the
        # cache here, with the limits `_name` would apply; anything else is walked by `_name`.
        if pos + 1 < n and msg[pos] >= 0xC0 and (hit := get((msg[pos] & 0x3F) << 8 | msg[pos + 1])) is not None \
                and hit[2] < _MAX_POINTERS:
            name = hit[0]
            pos += 2
        else:
            name, pos = _name(msg, pos, names)
        if pos + 10 > n:
            raise DecodeError("DNS resource record truncated")
        rtype, _cls, _ttl, rdlen = rr(msg, pos)
        pos += 10
        if pos + rdlen > n:
            raise DecodeError("DNS rdata runs past the end of the message")
        if i < an:
            if rtype == 1 and rdlen == 4:
                answers.append((name, 1, socket.inet_ntoa(msg[pos : pos + 4])))
            else:
                answers.append((name, rtype, _rdata_value(msg, rtype, pos, rdlen, names)))
        pos += rdlen
    return DnsMessage(ident, bool(flags & 0x8000), (flags >> 11) & 0xF, flags & 0xF, questions, answers)


class DnsHeader:
    """A DNS message's header, with its first question read only on demand: most DNS in a capture is
    unrelated to ConfigMgr, and neither its names nor its answers are ever needed."""

    __slots__ = ("id", "is_response", "rcode", "answer_count", "first_label", "payload", "_question")

    def __init__(self, payload: bytes) -> None:
        if len(payload) < 12:
            raise DecodeError("DNS message shorter than its 12-byte header")
        ident, flags, qd, an, _ns, _ar = _HEADER.unpack_from(payload, 0)
        self.id = ident
        self.is_response = bool(flags & 0x8000)
        self.rcode = flags & 0xF
        self.answer_count = an
        self.payload = payload
        self._question: tuple[str, int] | None = None if qd else ("", 0)
        # The first label in place, lower case ("" when compressed or absent): enough to rule most names out.
        size = payload[12] if qd and len(payload) > 12 else 0
        self.first_label = payload[13:13 + size].decode("ascii", "replace").lower() if size < 64 else ""

    def question(self) -> tuple[str, int]:
        """(name in lower case without the trailing dot, qtype) of the first question; `DecodeError` if
        it is malformed."""
        if self._question is None:
            name, pos = _name(self.payload, 12)
            if pos + 4 > len(self.payload):
                raise DecodeError("DNS question truncated")
            self._question = (name.lower().rstrip("."), (self.payload[pos] << 8) | self.payload[pos + 1])
        return self._question


def peek_dns(payload: bytes) -> DnsHeader:
    """The header of one DNS message. Raises `DecodeError` when it is too short."""
    return DnsHeader(payload)


def split_dns_tcp(data: bytes) -> list[bytes]:
    """DNS over TCP: the messages, each preceded by a 2-byte length (RFC 1035 4.2.2)."""
    out: list[bytes] = []
    pos, n = 0, len(data)
    while pos < n:
        if pos + 2 > n:
            raise DecodeError("DNS/TCP length prefix truncated")
        length = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if pos + length > n:
            raise DecodeError("DNS/TCP message truncated")
        out.append(bytes(data[pos:pos + length]))
        pos += length
    return out


def decode_dns(payload: bytes) -> DnsMessage:
    """Decode one DNS message (a UDP payload). Raises `DecodeError` when it is malformed."""
    return _parse(payload, 0, len(payload))


def decode_dns_tcp(data: bytes) -> list[DnsMessage]:
    """Decode DNS over TCP: messages each preceded by a 2-byte length (RFC 1035 4.2.2).

    Raises `DecodeError` if any message is malformed or the data ends inside one.
    """
    return [decode_dns(message) for message in split_dns_tcp(data)]
