"""A minimal DER walker: just enough ASN.1 to read the cleartext fields of Kerberos and SPNEGO.

Why not a full ASN.1 library: pyasn1 (through impacket) spends ~350 µs on one Kerberos message, this
walker 3-20 µs (numbers in docs/asn1.md), and the pipeline decodes every Kerberos and Negotiate
message of a capture. The decoders built on it are checked field by field against impacket in tests.

Everything works on `bytes` with explicit (start, end) offsets, so no slice or object is made for a
field that is not read. Every length is checked against its enclosing element; indefinite lengths,
high tag numbers and lengths over 2**32 are refused (Kerberos and SPNEGO are DER). The decoders are
schema-driven and never recurse on input; `walk` is the one generic traversal and stops at
`MAX_DEPTH`.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import DecodeError

MAX_DEPTH = 32

# Universal tags used here.
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
ENUMERATED = 0x0A
UTF8_STRING = 0x0C
SEQUENCE = 0x30
GENERALIZED_TIME = 0x18
# Character string types a KerberosString may arrive as (GeneralString in practice).
STRING_TAGS = _STRING_TAGS = frozenset((0x1B, 0x0C, 0x16, 0x13, 0x1A, 0x14))


def tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read the element at `pos`; return (tag byte, content start, content end).

    Raises DecodeError when the header or the content does not fit before `end`.
    """
    # header() inlined: this is the innermost loop of every decoder.
    if pos + 2 > end:
        raise DecodeError("truncated DER header")
    tag = buf[pos]
    n = buf[pos + 1]
    if tag & 0x1F == 0x1F:
        tag, pos, n = header(buf, pos, end)
    elif n < 0x80:
        pos += 2
    elif n == 0x81 and pos + 3 <= end:
        n = buf[pos + 2]
        pos += 3
    elif n == 0x82 and pos + 4 <= end:
        n = buf[pos + 2] << 8 | buf[pos + 3]
        pos += 4
    else:
        tag, pos, n = header(buf, pos, end)
    if pos + n > end:
        raise DecodeError(f"DER length {n} exceeds the {end - pos} bytes left")
    return tag, pos, pos + n


def header(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read only the header at `pos`: (tag byte, content start, declared length), content unchecked.

    Lets a caller name what a truncated element was (e.g. the mechanism OID of a cut GSS token).
    """
    if pos + 2 > end:
        raise DecodeError("truncated DER header")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DecodeError("DER high tag number form not supported")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0:
            raise DecodeError("indefinite length (BER) not allowed")
        if k > 4:
            raise DecodeError("DER length field too long")
        if pos + k > end:
            raise DecodeError("truncated DER length")
        n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    return tag, pos, n


def expect(buf: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """Read the element at `pos`, which must carry `tag`; return its content span."""
    t, s, e = tlv(buf, pos, end)
    if t != tag:
        raise DecodeError(f"{what}: expected tag 0x{tag:02x}, found 0x{t:02x}")
    return s, e


def ctx_fields(buf: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """Map the context tags [n] of a SEQUENCE body to the content span of each explicit wrapper.

    Kerberos and SPNEGO tag every SEQUENCE component explicitly ([n] constructed, 0xA0 | n), so a
    component is found by number (the last of a number wins). Universal or application elements between
    them are skipped.
    """
    # The element header is read inline, straight into the dict: this runs for every SEQUENCE decoded.
    out = {}
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise DecodeError("truncated DER header")
        t = buf[pos]
        n = buf[pos + 1]
        if t & 0x1F == 0x1F:
            t, s, n = header(buf, pos, end)
        elif n < 0x80:
            s = pos + 2
        elif n == 0x81 and pos + 3 <= end:
            n = buf[pos + 2]
            s = pos + 3
        elif n == 0x82 and pos + 4 <= end:
            n = buf[pos + 2] << 8 | buf[pos + 3]
            s = pos + 4
        else:
            t, s, n = header(buf, pos, end)
        pos = s + n
        if pos > end:
            raise DecodeError(f"DER length {n} exceeds the {end - s} bytes left")
        if t & 0xE0 == 0xA0:
            out[t & 0x1F] = (s, pos)
    return out


def children(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield (tag, start, end) of each element in a constructed value's content."""
    pos = start
    while pos < end:
        t, s, e = tlv(buf, pos, end)
        yield t, s, e
        pos = e


def integer(buf: bytes, span: tuple[int, int]) -> int:
    """INTEGER inside an explicit wrapper span (signed, at most 9 content bytes)."""
    s, e = expect(buf, span[0], span[1], INTEGER, "INTEGER")
    if e - s == 1:
        v = buf[s]
        return v - 256 if v & 0x80 else v
    return integer_content(buf, s, e)


def integer_content(buf: bytes, s: int, e: int) -> int:
    if e - s < 1 or e - s > 9:
        raise DecodeError(f"INTEGER of {e - s} bytes")
    return int.from_bytes(buf[s:e], "big", signed=True)


def enumerated(buf: bytes, span: tuple[int, int]) -> int:
    s, e = expect(buf, span[0], span[1], ENUMERATED, "ENUMERATED")
    return integer_content(buf, s, e)


def string(buf: bytes, span: tuple[int, int]) -> str:
    """KerberosString (GeneralString; other character string tags accepted) inside a wrapper."""
    t, s, e = tlv(buf, span[0], span[1])
    if t not in _STRING_TAGS:
        raise DecodeError(f"string: unexpected tag 0x{t:02x}")
    return buf[s:e].decode("utf-8", "replace")


def string_content(buf: bytes, tag: int, s: int, e: int) -> str:
    if tag not in _STRING_TAGS:
        raise DecodeError(f"string: unexpected tag 0x{tag:02x}")
    return buf[s:e].decode("utf-8", "replace")


def octets(buf: bytes, span: tuple[int, int]) -> tuple[int, int]:
    """Content span of an OCTET STRING inside a wrapper."""
    return expect(buf, span[0], span[1], OCTET_STRING, "OCTET STRING")


def bit_string32(buf: bytes, span: tuple[int, int]) -> int:
    """First 32 bits of a BIT STRING as an int, bit 0 = most significant (KDCOptions, APOptions)."""
    s, e = expect(buf, span[0], span[1], BIT_STRING, "BIT STRING")
    if e - s < 1:
        raise DecodeError("empty BIT STRING")
    bits = buf[s + 1 : min(e, s + 5)]
    return int.from_bytes(bits, "big") << (8 * (4 - len(bits)))


def int_sequence(buf: bytes, span: tuple[int, int]) -> tuple[int, ...]:
    """SEQUENCE OF INTEGER inside a wrapper (the KDC-REQ etype list)."""
    s, e = expect(buf, span[0], span[1], SEQUENCE, "SEQUENCE OF INTEGER")
    out = []
    while s < e:
        t, cs, ce = tlv(buf, s, e)
        s = ce
        if t != INTEGER:
            raise DecodeError(f"SEQUENCE OF INTEGER: tag 0x{t:02x}")
        if ce - cs == 1:  # every etype number in use fits one byte
            v = buf[cs]
            out.append(v - 256 if v & 0x80 else v)
        else:
            out.append(integer_content(buf, cs, ce))
    return tuple(out)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def generalized_time(buf: bytes, span: tuple[int, int]) -> float:
    """KerberosTime "YYYYMMDDHHMMSSZ" (fraction tolerated) inside a wrapper -> epoch seconds (UTC)."""
    s, e = expect(buf, span[0], span[1], GENERALIZED_TIME, "GeneralizedTime")
    raw = buf[s:e]
    if len(raw) < 15 or raw[-1] != 0x5A or not raw[:14].isdigit():
        raise DecodeError(f"bad KerberosTime {raw[:32]!r}")
    y, mo, d = int(raw[0:4]), int(raw[4:6]), int(raw[6:8])
    h, mi, sec = int(raw[8:10]), int(raw[10:12]), int(raw[12:14])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and sec <= 60):
        raise DecodeError(f"bad KerberosTime {raw!r}")
    frac = 0.0
    if len(raw) > 15:
        tail = raw[14:-1]
        if tail[:1] not in (b".", b",") or not tail[1:].isdigit():
            raise DecodeError(f"bad KerberosTime {raw[:32]!r}")
        frac = int(tail[1:]) / 10 ** (len(tail) - 1)
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec + frac


def oid_dotted(buf: bytes, s: int, e: int) -> str:
    """Dotted form of OID content bytes (arcs bounded to what fits in the content)."""
    if e <= s:
        raise DecodeError("empty OID")
    arcs: list[int] = []
    val = 0
    for b in buf[s:e]:
        val = (val << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(val)
            val = 0
    if buf[e - 1] & 0x80:
        raise DecodeError("truncated OID arc")
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return ".".join(map(str, (*head, *arcs[1:])))


def walk(buf: bytes, start: int = 0, end: int | None = None, max_depth: int = MAX_DEPTH):
    """Yield (depth, tag, start, end) for every element, descending into constructed ones.

    A generic, iterative traversal for content of unknown shape (e.g. e-data of an unknown form);
    refuses nesting deeper than `max_depth` and any length that overruns its parent.
    """
    stack = [(start, len(buf) if end is None else end)]
    while stack:
        pos, lim = stack[-1]
        if pos >= lim:
            stack.pop()
            continue
        t, s, e = tlv(buf, pos, lim)
        stack[-1] = (e, lim)
        depth = len(stack) - 1
        yield depth, t, s, e
        if t & 0x20:
            if depth + 1 >= max_depth:
                raise DecodeError(f"DER nesting deeper than {max_depth}")
            stack.append((s, e))
