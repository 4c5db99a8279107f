"""Kerberos V5 messages (RFC 4120) -> `KerberosMessage`: the cleartext fields a diagnosis needs.

Reads AS/TGS-REQ, AS/TGS-REP, AP-REQ, AP-REP and KRB-ERROR, including the ticket inside PA-TGS-REQ
and the Windows e-data forms (METHOD-DATA, KERB-ERROR-DATA / KERB-EXT-ERROR, the PA-PW-SALT NTSTATUS
blob). Encrypted parts are not opened; only their etype/kvno are read.

The outer element's length governs: bytes after it are ignored (as impacket and Wireshark do; UDP
and the TCP record mark already delimit a message). Anything malformed or truncated raises
`DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kerbtrace.codes import MSG_TYPES
from kerbtrace.constants import KrbMsg

from . import DecodeError
from .der import (
    INTEGER,
    SEQUENCE,
    STRING_TAGS,
    bit_string32,
    ctx_fields,
    expect,
    generalized_time,
    int_sequence,
    integer,
    integer_content,
    octets,
    string,
    tlv,
)

#: The messages this decoder reads, named as in kerbtrace.codes (the one table of message types).
MSG_TYPE_NAMES: dict[int, str] = {t: MSG_TYPES[t] for t in KrbMsg}
# First byte ([APPLICATION n] constructed) -> msg-type.
_APP_TAG = {0x60 | n: n for n in MSG_TYPE_NAMES}

PA_TGS_REQ = 1
PA_PW_SALT = 3
# KERB-ERROR-DATA data-type values (MS-KILE 2.2.2).
KERB_AP_ERR_TYPE_NTSTATUS = 1
KERB_AP_ERR_TYPE_SKEW_RECOVERY = 2
KERB_ERR_TYPE_EXTENDED = 3


@dataclass(slots=True)
class TicketInfo:
    """Cleartext of a Ticket: who it is for and which key encrypts it."""

    realm: str  # issuing realm
    sname: str  # service principal, components joined with "/" (e.g. "HTTP/mp01.corp.lab")
    etype: int | None  # enc-part etype: the key of the account the KDC mapped the SPN to
    kvno: int | None  # enc-part kvno (key version of that account)


@dataclass(slots=True)
class KerberosMessage:
    """One Kerberos message, reduced to its cleartext fields."""

    msg_type: int  # 10 AS-REQ, 11 AS-REP, 12 TGS-REQ, 13 TGS-REP, 14 AP-REQ, 15 AP-REP, 30 KRB-ERROR
    realm: str | None = None  # KDC-REQ: req-body realm; KRB-ERROR: realm; KDC-REP / AP-REQ: ticket realm
    sname: str | None = None  # KDC-REQ: req-body sname; KRB-ERROR: sname; KDC-REP / AP-REQ: ticket sname
    cname: str | None = None  # KDC-REQ req-body / KDC-REP / KRB-ERROR cname
    crealm: str | None = None  # KDC-REP / KRB-ERROR crealm
    error_code: int | None = None  # KRB-ERROR error-code
    e_text: str | None = None  # KRB-ERROR e-text
    stime: float | None = None  # KRB-ERROR stime+susec, epoch seconds: the clock of the error's sender
    ctime: float | None = None  # KRB-ERROR ctime+cusec when present: the client's clock
    e_data_type: int | None = None  # KERB-ERROR-DATA data-type (2 = skew recovery, 3 = extended error)
    nt_status: int | None = None  # NTSTATUS from KERB-EXT-ERROR or the PA-PW-SALT 12-byte blob
    method_data: tuple[int, ...] = ()  # PA types listed in e-data METHOD-DATA
    kdc_options: int | None = None  # KDC-REQ kdc-options, bit 0 = most significant bit
    etypes: tuple[int, ...] = ()  # KDC-REQ etype list, client preference order
    padata_types: tuple[int, ...] = ()  # KDC-REQ / KDC-REP padata types
    ticket: TicketInfo | None = None  # KDC-REP ticket, AP-REQ ticket, TGS-REQ: TGT inside PA-TGS-REQ
    enc_etype: int | None = None  # enc-part etype (KDC-REP / AP-REQ authenticator / AP-REP)
    ap_options: int | None = None  # AP-REQ ap-options, bit 0 = most significant bit
    till: float | None = None  # KDC-REQ req-body till (epoch)


def principal_name(buf: bytes, span: tuple[int, int]) -> str:
    """PrincipalName inside a wrapper -> name-string components joined with "/"."""
    s, e = expect(buf, span[0], span[1], SEQUENCE, "PrincipalName")
    names = ctx_fields(buf, s, e).get(1)
    if names is None:
        raise DecodeError("PrincipalName without name-string")
    s, e = expect(buf, names[0], names[1], SEQUENCE, "name-string")
    parts = []
    while s < e:  # each component read and checked in turn, as `children` + `string_content` would
        t, cs, s = tlv(buf, s, e)
        if t not in STRING_TAGS:
            raise DecodeError(f"string: unexpected tag 0x{t:02x}")
        parts.append(buf[cs:s].decode("utf-8", "replace"))
    return parts[0] if len(parts) == 1 else "/".join(parts)


def _encrypted_data(buf: bytes, span: tuple[int, int]) -> tuple[int | None, int | None]:
    """EncryptedData inside a wrapper -> (etype, kvno)."""
    s, e = expect(buf, span[0], span[1], SEQUENCE, "EncryptedData")
    f = ctx_fields(buf, s, e)
    et = f.get(0)
    kv = f.get(1)
    return (integer(buf, et) if et else None), (integer(buf, kv) if kv else None)


def _ticket(buf: bytes, span: tuple[int, int]) -> TicketInfo:
    """Ticket ([APPLICATION 1]) inside a wrapper."""
    s, e = expect(buf, span[0], span[1], 0x61, "Ticket")
    s, e = expect(buf, s, e, SEQUENCE, "Ticket")
    f = ctx_fields(buf, s, e)
    realm, sname = f.get(1), f.get(2)
    if realm is None or sname is None:
        raise DecodeError("Ticket without realm or sname")
    etype = kvno = None
    enc = f.get(3)
    if enc is not None:
        etype, kvno = _encrypted_data(buf, enc)
    return TicketInfo(string(buf, realm), principal_name(buf, sname), etype, kvno)


def _padata(buf: bytes, span: tuple[int, int]) -> list[tuple[int, tuple[int, int] | None]]:
    """SEQUENCE OF PA-DATA inside a wrapper -> [(padata-type, value content span)]."""
    s, e = expect(buf, span[0], span[1], SEQUENCE, "PA-DATA list")
    return _padata_body(buf, s, e)


def _padata_body(buf: bytes, s: int, e: int) -> list[tuple[int, tuple[int, int] | None]]:
    out = []
    while s < e:
        t, cs, ce = tlv(buf, s, e)
        s = ce
        if t != SEQUENCE:
            raise DecodeError(f"PA-DATA: tag 0x{t:02x}")
        f = ctx_fields(buf, cs, ce)
        ptype = f.get(1)
        if ptype is None:
            raise DecodeError("PA-DATA without padata-type")
        value = f.get(2)
        out.append((integer(buf, ptype), octets(buf, value) if value else None))
    return out


def _time_usec(buf: bytes, t: tuple[int, int] | None, us: tuple[int, int] | None) -> float | None:
    if t is None:
        return None
    sec = generalized_time(buf, t)
    return sec + integer(buf, us) / 1e6 if us else sec


def _kdc_req(buf: bytes, f: dict, msg: KerberosMessage) -> None:
    pa = f.get(3)
    if pa is not None:
        padata = _padata(buf, pa)
        msg.padata_types = tuple(p for p, _ in padata)
        for ptype, val in padata:
            if ptype == PA_TGS_REQ and val is not None:
                inner = decode_kerberos(buf[val[0] : val[1]])
                msg.ticket = inner.ticket
                break
    body = f.get(4)
    if body is None:
        raise DecodeError("KDC-REQ without req-body")
    s, e = expect(buf, body[0], body[1], SEQUENCE, "KDC-REQ-BODY")
    b = ctx_fields(buf, s, e)
    if (x := b.get(0)) is not None:
        msg.kdc_options = bit_string32(buf, x)
    if (x := b.get(1)) is not None:
        msg.cname = principal_name(buf, x)
    if (x := b.get(2)) is not None:
        msg.realm = string(buf, x)
    if (x := b.get(3)) is not None:
        msg.sname = principal_name(buf, x)
    if (x := b.get(5)) is not None:
        msg.till = generalized_time(buf, x)
    if (x := b.get(8)) is not None:
        msg.etypes = int_sequence(buf, x)


def _kdc_rep(buf: bytes, f: dict, msg: KerberosMessage) -> None:
    if (x := f.get(2)) is not None:
        msg.padata_types = tuple(p for p, _ in _padata(buf, x))
    if (x := f.get(3)) is not None:
        msg.crealm = string(buf, x)
    if (x := f.get(4)) is not None:
        msg.cname = principal_name(buf, x)
    if (x := f.get(5)) is None:
        raise DecodeError("KDC-REP without ticket")
    msg.ticket = _ticket(buf, x)
    msg.realm, msg.sname = msg.ticket.realm, msg.ticket.sname
    if (x := f.get(6)) is not None:
        msg.enc_etype = _encrypted_data(buf, x)[0]


def _ap_req(buf: bytes, f: dict, msg: KerberosMessage) -> None:
    if (x := f.get(2)) is not None:
        msg.ap_options = bit_string32(buf, x)
    if (x := f.get(3)) is None:
        raise DecodeError("AP-REQ without ticket")
    msg.ticket = _ticket(buf, x)
    msg.realm, msg.sname = msg.ticket.realm, msg.ticket.sname
    if (x := f.get(4)) is not None:
        msg.enc_etype = _encrypted_data(buf, x)[0]


def _ap_rep(buf: bytes, f: dict, msg: KerberosMessage) -> None:
    if (x := f.get(2)) is not None:
        msg.enc_etype = _encrypted_data(buf, x)[0]


def _krb_error(buf: bytes, f: dict, msg: KerberosMessage) -> None:
    code = f.get(6)
    if code is None:
        raise DecodeError("KRB-ERROR without error-code")
    msg.error_code = integer(buf, code)
    msg.ctime = _time_usec(buf, f.get(2), f.get(3))
    msg.stime = _time_usec(buf, f.get(4), f.get(5))
    if (x := f.get(7)) is not None:
        msg.crealm = string(buf, x)
    if (x := f.get(8)) is not None:
        msg.cname = principal_name(buf, x)
    if (x := f.get(9)) is not None:
        msg.realm = string(buf, x)
    if (x := f.get(10)) is not None:
        msg.sname = principal_name(buf, x)
    if (x := f.get(11)) is not None:
        msg.e_text = string(buf, x)
    if (x := f.get(12)) is not None:
        span = octets(buf, x)
        try:
            _e_data(buf, span, msg)
        except DecodeError:
            # e-data is implementation-defined and opaque to the rest of the message: an
            # unknown or broken inner form leaves the e-data fields unset, not the error unread.
            msg.method_data, msg.e_data_type, msg.nt_status = (), None, None


def _e_data(buf: bytes, span: tuple[int, int], msg: KerberosMessage) -> None:
    """KRB-ERROR e-data (kerberos-failures.md 7.2): dispatch on shape, not on trial and error.

    METHOD-DATA is a SEQUENCE OF SEQUENCE; KERB-ERROR-DATA a SEQUENCE whose first element is [1].
    Any other shape (raw bytes, unknown vendor forms) is left undecoded.
    """
    s, e = span
    if e - s < 2 or buf[s] != SEQUENCE:
        return
    s, e = expect(buf, s, e, SEQUENCE, "e-data")
    if s == e:
        return
    first = buf[s]
    if first == SEQUENCE:
        padata = _padata_body(buf, s, e)
        msg.method_data = tuple(p for p, _ in padata)
        for ptype, val in padata:
            if ptype == PA_PW_SALT and val is not None:
                msg.nt_status = _ntstatus_blob(buf, val[0], val[1])
    elif first == 0xA1:
        f = ctx_fields(buf, s, e)
        msg.e_data_type = integer(buf, f[1])
        value = f.get(2)
        if value is None:
            return
        vs, ve = octets(buf, value)
        if msg.e_data_type == KERB_ERR_TYPE_EXTENDED and ve - vs >= 4:
            msg.nt_status = int.from_bytes(buf[vs : vs + 4], "little")
        elif msg.e_data_type == KERB_AP_ERR_TYPE_NTSTATUS and ve - vs == 4:
            msg.nt_status = int.from_bytes(buf[vs:ve], "little")


def _ntstatus_blob(buf: bytes, s: int, e: int) -> int | None:
    """The Windows 12-byte {NTSTATUS, 0, flags} blob in PA-PW-SALT, told apart from a real salt.

    Accepted only when 12 bytes long, the reserved word is zero and the status has the error
    severity bits (0xC...) — a salt string cannot meet all three.
    """
    if e - s != 12 or any(buf[s + 4 : s + 8]):
        return None
    status = int.from_bytes(buf[s : s + 4], "little")
    return status if status >> 30 == 3 else None


_BODY = {10: _kdc_req, 12: _kdc_req, 11: _kdc_rep, 13: _kdc_rep, 14: _ap_req, 15: _ap_rep, 30: _krb_error}
# Context tag of msg-type in each message: [2] in KDC-REQ, [1] elsewhere.
_MSG_TYPE_TAG = {10: 2, 12: 2, 11: 1, 13: 1, 14: 1, 15: 1, 30: 1}


def decode_kerberos(data: bytes | memoryview) -> KerberosMessage:
    """Decode one Kerberos message (first byte 0x6A..0x6F or 0x7E); DecodeError if malformed."""
    buf = data if type(data) is bytes else bytes(data)
    if not buf:
        raise DecodeError("empty Kerberos message")
    mt = _APP_TAG.get(buf[0])
    if mt is None:
        raise DecodeError(f"not a Kerberos message (first byte 0x{buf[0]:02x})")
    _t, s, e = tlv(buf, 0, len(buf))
    s, e = expect(buf, s, e, SEQUENCE, MSG_TYPE_NAMES[mt])
    f = ctx_fields(buf, s, e)
    declared = f.get(_MSG_TYPE_TAG[mt])
    if declared is not None:
        ds, de = expect(buf, declared[0], declared[1], INTEGER, "msg-type")
        if integer_content(buf, ds, de) != mt:
            raise DecodeError(f"msg-type {integer_content(buf, ds, de)} inside a {MSG_TYPE_NAMES[mt]}")
    msg = KerberosMessage(mt)
    _BODY[mt](buf, f, msg)
    return msg
