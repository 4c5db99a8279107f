"""HTTP `Authorization` / `WWW-Authenticate` tokens: SPNEGO, raw krb5 GSS, NTLMSSP, NEGOEX.

Classifies a token by its first bytes (kerberos-failures.md 3.2) and reads what a diagnosis needs:
the SPNEGO form and negState, the offered mechanisms, and the inner Kerberos (AP-REQ / AP-REP /
KRB-ERROR) or NTLMSSP message. It accepts what the maintained libraries trip over: reqFlags before
mechToken, a NegTokenResp without responseToken (IIS's final `oRQwEqADCgEAoQsGCSqGSIL3EgECAg==`),
Microsoft's NegTokenInit2 negHints, raw NTLMSSP or raw krb5 under `Negotiate`, bare Kerberos under
WinRM's `Authorization: Kerberos`.

Both entry points never raise: what cannot be read is reported in `AuthToken.error`.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

from kerbtrace.constants import KrbMsg

from . import DecodeError
from .der import OID, SEQUENCE, children, ctx_fields, enumerated, expect, header, octets, oid_dotted, tlv
from .kerberos import KerberosMessage, decode_kerberos
from .ntlm import SIGNATURE as NTLMSSP_SIGNATURE
from .ntlm import NtlmMessage, decode_ntlm

MAX_HEADER = 64 * 1024
NEGOEX_SIGNATURE = b"NEGOEXTS"

# DER content bytes of the mechanism OIDs (kerberos-failures.md 3.4).
OID_SPNEGO = bytes.fromhex("2b0601050502")
OID_KRB5 = bytes.fromhex("2a864886f712010202")
OID_MS_KRB5 = bytes.fromhex("2a864882f712010202")
OID_KRB5_U2U = bytes.fromhex("2a864886f71201020203")
OID_NTLMSSP = bytes.fromhex("2b06010401823702020a")
OID_NEGOEX = bytes.fromhex("2b06010401823702021e")
MECH_OF_OID = {
    OID_KRB5: "kerberos",
    OID_MS_KRB5: "kerberos",
    OID_KRB5_U2U: "kerberos",
    OID_NTLMSSP: "ntlm",
    OID_NEGOEX: "negoex",
}
# RFC 4121 4.1 TOK_ID -> the Kerberos message it must carry.
TOK_ID_MSG_TYPE = {b"\x01\x00": 14, b"\x02\x00": 15, b"\x03\x00": 30}
_KRB_FIRST_BYTES = frozenset((0x6E, 0x6F, 0x7E))


@dataclass(slots=True)
class AuthToken:
    """One HTTP authentication token, classified and decoded as far as it goes."""

    scheme: str  # as written: "Negotiate", "Kerberos", "NTLM", ...
    # "empty" | "spnego-init" | "spnego-resp" | "krb5" | "ntlmssp" | "negoex" | "unknown" | "invalid"
    form: str
    mech: str | None = None  # "kerberos" | "ntlm" | "negoex" | None: inner token's, else supportedMech's
    mech_types: tuple[str, ...] = ()  # OIDs offered in NegTokenInit (dotted)
    neg_state: int | None = None  # NegTokenResp negState (0 completed, 1 incomplete, 2 reject, 3 mic)
    kerberos: KerberosMessage | None = None  # inner AP-REQ / AP-REP / KRB-ERROR, GSS framing stripped
    ntlm: NtlmMessage | None = None
    error: str | None = None  # why (part of) the token could not be decoded
    size: int = 0  # decoded token length in bytes
    #: The inner AP-REQ's DER bytes, kept only so a keytab given beside the capture can open the ticket;
    #: never printed, never written to a report (repr=False keeps it out of debug output too).
    ap_req_der: bytes | None = field(default=None, repr=False, compare=False)


def decode_auth_header(value: str) -> AuthToken:
    """Decode the value of an Authorization / WWW-Authenticate header ("Negotiate YII..."); never raises."""
    if len(value) > MAX_HEADER:
        return AuthToken(value[:32].partition(" ")[0], "invalid", error=f"header longer than {MAX_HEADER}")
    scheme, _, token = value.strip().partition(" ")
    scheme = scheme.rstrip(",")
    token = token.strip()
    if "," in token:  # "Negotiate <token>, NTLM": the first challenge's token
        token = token.partition(",")[0].rstrip()
    if not token:
        return AuthToken(scheme, "empty")
    if len(token) % 4:
        token += "=" * (-len(token) % 4)
    try:
        raw = binascii.a2b_base64(token, strict_mode=True)
    except (binascii.Error, ValueError):
        return AuthToken(scheme, "invalid", error="invalid base64")
    return decode_gss_token(raw, scheme)


def decode_gss_token(raw: bytes, scheme: str = "Negotiate") -> AuthToken:
    """Classify and decode a binary authentication token; never raises."""
    raw = bytes(raw)
    tok = AuthToken(scheme, "unknown", size=len(raw))
    if not raw:
        tok.form = "empty"
        return tok
    try:
        _outer(raw, tok)
    except DecodeError as exc:
        # The token itself (not just a message inside SPNEGO) is unreadable.
        tok.form = "invalid"
        tok.error = f"truncated or malformed {_what(raw)}: {exc}"
    return tok


def _what(raw: bytes) -> str:
    """Name of the structure a broken token started as, for the error text."""
    first = raw[0]
    if raw[:8] == NTLMSSP_SIGNATURE:
        return "NTLMSSP"
    if first in (0xA0, 0xA1) or (first == 0x60 and OID_SPNEGO in raw[:16]):
        return "SPNEGO"
    if first == 0x60:
        return "GSS token"
    if first in _KRB_FIRST_BYTES:
        return "Kerberos message"
    return "token"


def _outer(raw: bytes, tok: AuthToken) -> None:
    end = len(raw)
    head = raw[:8]
    first = raw[0]
    if head == NTLMSSP_SIGNATURE or head == NEGOEX_SIGNATURE or first in _KRB_FIRST_BYTES:
        tok.form = _inner(raw, 0, end, tok)
    elif first == 0x60:
        _t, s, e = tlv(raw, 0, end)
        os_, oe = expect(raw, s, e, OID, "GSS mechanism OID")
        if raw[os_:oe] == OID_SPNEGO:
            _negotiation_token(raw, oe, e, tok)
        else:
            tok.form = _inner(raw, 0, end, tok)
    elif first in (0xA0, 0xA1):
        _negotiation_token(raw, 0, end, tok)
    else:
        tok.error = f"unrecognised token (first byte 0x{first:02x})"


def _negotiation_token(raw: bytes, pos: int, end: int, tok: AuthToken) -> None:
    """NegotiationToken ::= CHOICE { negTokenInit [0], negTokenResp [1] } (RFC 4178 4.2)."""
    t, s, e = tlv(raw, pos, end)
    s, e = expect(raw, s, e, SEQUENCE, "NegTokenInit" if t == 0xA0 else "NegTokenResp")
    f = ctx_fields(raw, s, e)
    token = None
    if t == 0xA0:
        tok.form = "spnego-init"
        if (x := f.get(0)) is not None:
            ms, me = expect(raw, x[0], x[1], SEQUENCE, "mechTypes")
            oids = children(raw, ms, me)
            tok.mech_types = tuple(oid_dotted(raw, cs, ce) for ct, cs, ce in oids if ct == OID)
        # [1] reqFlags, [3] mechListMIC or (NegTokenInit2) negHints, [4] mechListMIC: not needed.
        if (x := f.get(2)) is not None:
            token = octets(raw, x)
    elif t == 0xA1:
        tok.form = "spnego-resp"
        if (x := f.get(0)) is not None:
            tok.neg_state = enumerated(raw, x)
        if (x := f.get(1)) is not None:
            ms, me = expect(raw, x[0], x[1], OID, "supportedMech")
            tok.mech = MECH_OF_OID.get(raw[ms:me])
        if (x := f.get(2)) is not None:
            token = octets(raw, x)
    else:
        raise DecodeError(f"NegotiationToken tag 0x{t:02x}")
    if token is not None and token[1] > token[0]:
        try:
            _inner(raw, token[0], token[1], tok)
        except DecodeError as exc:
            # Keep the SPNEGO reading; say why the mechanism token is unreadable.
            tok.error = f"truncated or malformed mechanism token: {exc}"


def _inner(raw: bytes, s: int, e: int, tok: AuthToken) -> str:
    """Decode the mechanism token raw[s:e]: set mech and the inner message, return its form.

    Raises DecodeError when the token is malformed; unknown but well-formed tokens only set error.
    """
    head = raw[s : s + 8]
    if head == NTLMSSP_SIGNATURE:
        tok.mech = "ntlm"
        tok.ntlm = decode_ntlm(raw[s:e])
        return "ntlmssp"
    if head == NEGOEX_SIGNATURE:
        tok.mech = "negoex"
        return "negoex"
    first = raw[s]
    if first in _KRB_FIRST_BYTES:
        tok.mech = "kerberos"
        _set_kerberos(tok, raw[s:e])
        return "krb5"
    if first != 0x60:
        tok.error = f"unrecognised mechanism token (first byte 0x{first:02x})"
        return "unknown"
    # GSS InitialContextToken framing: 60 len | 06 len OID | inner token (RFC 2743 3.1). The OID is
    # read before the outer length is checked, so a cut token still tells which mechanism it was.
    _t, gs, n = header(raw, s, e)
    ge = gs + n
    os_, oe = expect(raw, gs, min(ge, e), OID, "GSS mechanism OID")
    mech = MECH_OF_OID.get(raw[os_:oe])
    tok.mech = mech
    if ge > e:
        raise DecodeError(f"GSS token of {n} bytes cut at {e - gs}")
    if mech == "ntlm" and raw[oe : oe + 8] == NTLMSSP_SIGNATURE:
        tok.ntlm = decode_ntlm(raw[oe:ge])
        return "ntlmssp"
    if mech != "kerberos":
        tok.error = f"GSS mechanism {oid_dotted(raw, os_, oe)} not decoded"
        return "unknown"
    tok_id = raw[oe : oe + 2]
    if len(tok_id) < 2 or oe + 2 > ge:
        raise DecodeError("krb5 token without TOK_ID")
    want = TOK_ID_MSG_TYPE.get(tok_id)
    if want is None:
        tok.error = f"krb5 TOK_ID {tok_id.hex()} not decoded"
        return "krb5"
    _set_kerberos(tok, raw[oe + 2 : ge])
    message = tok.kerberos
    if message is not None and message.msg_type != want:
        tok.error = f"krb5 TOK_ID {tok_id.hex()} carries msg-type {message.msg_type}"
    return "krb5"


def _set_kerberos(tok: AuthToken, der: bytes) -> None:
    tok.kerberos = decode_kerberos(der)
    if tok.kerberos.msg_type == KrbMsg.AP_REQ:
        tok.ap_req_der = der
