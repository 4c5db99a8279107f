"""SPNEGO / GSS / NTLMSSP decoding of HTTP auth headers: every header of the real captures against
tshark, then the token shapes that trip the maintained libraries, and broken input."""

from __future__ import annotations

import base64
import random
import struct
from datetime import UTC, datetime

import pytest

from kerbtrace.decoders import DecodeError
from kerbtrace.decoders.gss import (
    MAX_HEADER,
    OID_KRB5,
    OID_MS_KRB5,
    OID_NEGOEX,
    OID_NTLMSSP,
    OID_SPNEGO,
    decode_auth_header,
    decode_gss_token,
)
from kerbtrace.decoders.kerberos import decode_kerberos
from kerbtrace.decoders.ntlm import decode_ntlm
from tests.conftest import FULL_REAL_SET, real_capture, real_capture_files
from tests.tshark_reference import (
    is_port88,
    message_rows,
    prefetch,
    tshark_kerberos,
    tshark_reading,
    values,
)

# impacket and pyasn1 (the test extra) build the Kerberos messages the GSS tests wrap.
k = pytest.importorskip("impacket.krb5.asn1")
der_encoder = pytest.importorskip("pyasn1.codec.der.encoder")

CAPTURES = real_capture_files()
MECH_OF = {"1.2.840.48018.1.2.2": "kerberos", "1.2.840.113554.1.2.2": "kerberos",
           "1.3.6.1.4.1.311.2.2.10": "ntlm", "1.3.6.1.4.1.311.2.2.30": "negoex"}
IIS_FINAL = "oRQwEqADCgEAoQsGCSqGSIL3EgECAg=="


@pytest.fixture(scope="module", autouse=True)
def _tshark_cache():
    prefetch(CAPTURES)


def _headers(path) -> list[tuple[int, list[str], dict[str, str]]]:
    """(frame, header values, tshark row) for each frame with auth headers."""
    out = []
    for row in tshark_reading(path):
        hdrs = [v.strip() for f in ("http.authorization", "http.www_authenticate") for v in values(row[f])]
        if hdrs:
            out.append((int(row["frame.number"]), hdrs, row))
    return out


def _tshark_time(cell: str) -> float:
    stamp, frac = cell.removesuffix(" UTC").split(".")
    dt = datetime.strptime(stamp, "%b %d, %Y %H:%M:%S").replace(tzinfo=UTC)
    return dt.timestamp() + int(frac) / 10 ** len(frac)


# --- every auth header of the real captures -------------------------------------------------------

@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_real_auth_headers_match_tshark(path):
    mine_krb = []
    for frame, hdrs, row in _headers(path):
        tokens = [decode_auth_header(v) for v in hdrs]
        where = f"{path.name} frame {frame}"

        def ts(field: str, row=row) -> list[str]:
            return values(row[field])

        for t in tokens:
            assert t.error is None and t.form not in ("invalid", "unknown"), where
            if t.form == "krb5":
                assert t.scheme in ("Kerberos", "Negotiate") and t.mech == "kerberos", where
            if t.form.startswith("spnego") and t.kerberos is not None:
                assert t.mech == "kerberos", where
            if t.ntlm is not None:
                assert t.mech == "ntlm" and t.form == "ntlmssp", where
        mine_krb += [(frame, t.kerberos.msg_type, t.kerberos.error_code) for t in tokens if t.kerberos]
        # Raw krb5 GSS tokens (WinRM "Kerberos") and SPNEGO-wrapped ones: one TOK_ID each, as tshark shows.
        assert len([t for t in tokens if t.kerberos]) == len(ts("spnego.krb5.tok_id")), where
        assert [t.ntlm.msg_type for t in tokens if t.ntlm] == [int(x, 16) for x in ts("ntlmssp.messagetype")], where
        assert [t.neg_state for t in tokens if t.neg_state is not None] == list(map(int, ts("spnego.negResult")))
        assert [m for t in tokens for m in t.mech_types] == ts("spnego.MechType"), where
        supported = [t.mech for t in tokens if t.form == "spnego-resp" and t.kerberos is None and t.ntlm is None]
        assert supported == [MECH_OF[x] for x in ts("spnego.supportedMech")][: len(supported)], where

        auths = [t.ntlm for t in tokens if t.ntlm and t.ntlm.msg_type == 3]
        names = zip(ts("ntlmssp.auth.username"), ts("ntlmssp.auth.domain"), ts("ntlmssp.auth.hostname"), strict=True)
        for n, want in zip(auths, names, strict=True):
            assert (n.user, n.domain, n.workstation) == tuple("" if x == "NULL" else x for x in want), where
            assert n.nt_response_len > 24, where  # NTLMv2 in every capture
        challenges = [t.ntlm for t in tokens if t.ntlm and t.ntlm.msg_type == 2]
        assert [c.target_name for c in challenges] == ts("ntlmssp.challenge.target_name"), where
        stamps = [c.timestamp for c in challenges if c.timestamp is not None]
        want_stamps = [_tshark_time(x) for x in ts("ntlmssp.challenge.target_info.timestamp")]
        assert stamps == pytest.approx(want_stamps, abs=1e-6), where
    http_krb = [m for m, r in zip(tshark_kerberos(path), message_rows(path), strict=True) if not is_port88(r)]
    assert mine_krb == http_krb


def test_real_captures_hold_every_token_form():
    forms: dict[tuple[str, str], int] = {}
    for path in CAPTURES:
        for _frame, hdrs, _row in _headers(path):
            for v in hdrs:
                t = decode_auth_header(v)
                key = (t.scheme, t.form)
                forms[key] = forms.get(key, 0) + 1
    # Floors for the full set beside the repository, else for the shipped captures alone (NTLM inside
    # Negotiate is only in elc__winrm_psremote_05-16.pcap, which has no licence to ship).
    floors = {("Negotiate", "spnego-init"): 10, ("Negotiate", "spnego-resp"): 10, ("Kerberos", "krb5"): 50,
              ("NTLM", "ntlmssp"): 25, ("Negotiate", "ntlmssp"): 12, ("Negotiate", "empty"): 2}
    if not FULL_REAL_SET:
        floors.update({("Negotiate", "spnego-init"): 8, ("Negotiate", "spnego-resp"): 8, ("Negotiate", "ntlmssp"): 0})
    assert {key: min(forms.get(key, 0), floor) for key, floor in floors.items()} == floors, forms


# --- shapes the maintained libraries get wrong ------------------------------------------------------

def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def oid(content: bytes) -> bytes:
    return der(0x06, content)


def spnego_init(mech_token: bytes | None, req_flags: bool = False, neg_hints: bool = False,
                wrap: bool = True) -> bytes:
    mechs = der(0x30, oid(OID_MS_KRB5) + oid(OID_KRB5) + oid(OID_NEGOEX) + oid(OID_NTLMSSP))
    body = der(0xA0, mechs)
    if req_flags:
        body += der(0xA1, der(0x03, b"\x01\x00"))  # reqFlags BIT STRING, before mechToken
    if mech_token is not None:
        body += der(0xA2, der(0x04, mech_token))
    if neg_hints:
        body += der(0xA3, der(0x30, der(0xA0, der(0x1B, b"not_defined_in_RFC4178@please_ignore"))))
    token = der(0xA0, der(0x30, body))
    return der(0x60, oid(OID_SPNEGO) + token) if wrap else token


def spnego_resp(neg_state: int | None, mech: bytes | None = None, token: bytes | None = None) -> bytes:
    body = b""
    if neg_state is not None:
        body += der(0xA0, der(0x0A, bytes([neg_state])))
    if mech is not None:
        body += der(0xA1, oid(mech))
    if token is not None:
        body += der(0xA2, der(0x04, token))
    return der(0xA1, der(0x30, body))


def gss_krb5(tok_id: bytes, message: bytes, mech: bytes = OID_KRB5) -> bytes:
    return der(0x60, oid(mech) + tok_id + message)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _real_krb5_tokens() -> tuple[bytes, bytes]:
    """The first AP-REQ and AP-REP of WinRM 'Authorization: Kerberos' tokens (SCRANTON), GSS framing removed."""
    path = real_capture("otrf__SCRANTON.cap")
    req = rep = None
    for _frame, hdrs, _row in _headers(path):
        for v in hdrs:
            if v.startswith("Kerberos "):
                raw = base64.b64decode(v.split(" ", 1)[1])
                start = 4 if raw[1] == 0x82 else 3  # 60 82 LL LL / 60 81 LL, then 11 bytes of OID
                tok_id = raw[start + 11 : start + 13]
                if tok_id == b"\x01\x00":
                    req = req or raw[start + 13 :]
                elif tok_id == b"\x02\x00":
                    rep = rep or raw[start + 13 :]
    assert req and rep
    return req, rep


def _krb_error(code: int = 41) -> bytes:
    e = k.KRB_ERROR()
    e["pvno"] = 5
    e["msg-type"] = 30
    e["stime"] = "20250102030405Z"
    e["susec"] = 7
    e["error-code"] = code
    e["realm"] = "CORP.LAB"
    e["sname"]["name-type"] = 2
    e["sname"]["name-string"][0] = "HTTP"
    e["sname"]["name-string"][1] = "mp01.corp.lab"
    return der_encoder.encode(e)


def test_iis_final_token_without_response_token():
    t = decode_auth_header("Negotiate " + IIS_FINAL)
    assert (t.form, t.neg_state, t.mech, t.kerberos, t.error, t.size) == ("spnego-resp", 0, "kerberos", None,
                                                                           None, 22)


def test_neg_token_init_with_req_flags_before_mech_token():
    ap_req, _ = _real_krb5_tokens()
    direct = decode_kerberos(ap_req)
    for wrap in (True, False):
        t = decode_gss_token(spnego_init(gss_krb5(b"\x01\x00", ap_req), req_flags=True, wrap=wrap))
        assert (t.form, t.mech, t.error) == ("spnego-init", "kerberos", None)
        assert t.kerberos == direct and t.kerberos.msg_type == 14
        assert t.mech_types == ("1.2.840.48018.1.2.2", "1.2.840.113554.1.2.2", "1.3.6.1.4.1.311.2.2.30",
                                "1.3.6.1.4.1.311.2.2.10")


def test_neg_token_init2_with_neg_hints_and_no_token():
    for wrap in (True, False):
        t = decode_gss_token(spnego_init(None, neg_hints=True, wrap=wrap))
        assert (t.form, t.mech, t.kerberos, t.error, len(t.mech_types)) == ("spnego-init", None, None, None, 4)


def test_neg_token_resp_variants():
    only_state = decode_gss_token(spnego_resp(1))
    assert (only_state.form, only_state.neg_state, only_state.mech, only_state.error) == ("spnego-resp", 1,
                                                                                          None, None)
    ntlm = decode_gss_token(spnego_resp(1, OID_NTLMSSP))
    assert (ntlm.mech, ntlm.neg_state) == ("ntlm", 1)
    err = _krb_error(41)
    for state in (1, 2):
        t = decode_gss_token(spnego_resp(state, OID_MS_KRB5, gss_krb5(b"\x03\x00", err)))
        assert (t.form, t.mech, t.neg_state, t.error) == ("spnego-resp", "kerberos", state, None)
        assert (t.kerberos.msg_type, t.kerberos.error_code, t.kerberos.sname) == (30, 41, "HTTP/mp01.corp.lab")
    _, ap_rep = _real_krb5_tokens()
    t = decode_gss_token(spnego_resp(0, OID_MS_KRB5, gss_krb5(b"\x02\x00", ap_rep)))
    assert t.kerberos.msg_type == 15 and t.error is None


def test_raw_krb5_tokens_both_oids_and_bare_kerberos():
    ap_req, ap_rep = _real_krb5_tokens()
    err = _krb_error(37)
    for mech in (OID_KRB5, OID_MS_KRB5):
        for tok_id, message, want in ((b"\x01\x00", ap_req, 14), (b"\x02\x00", ap_rep, 15),
                                      (b"\x03\x00", err, 30)):
            for scheme in ("Negotiate", "Kerberos"):
                t = decode_auth_header(f"{scheme} {b64(gss_krb5(tok_id, message, mech))}")
                assert (t.scheme, t.form, t.mech, t.error, t.kerberos.msg_type) == (scheme, "krb5", "kerberos",
                                                                                     None, want)
    bare = decode_auth_header("Kerberos " + b64(ap_req))
    assert (bare.form, bare.kerberos.msg_type) == ("krb5", 14)
    mismatch = decode_gss_token(gss_krb5(b"\x02\x00", ap_req))
    assert mismatch.kerberos.msg_type == 14 and "TOK_ID" in mismatch.error


def test_raw_ntlmssp_under_negotiate_and_ntlm_and_negoex():
    challenge = _ntlm_challenge(timestamp=133_000_000_000_000_000)
    for scheme in ("Negotiate", "NTLM"):
        t = decode_auth_header(f"{scheme} {b64(challenge)}")
        assert (t.form, t.mech, t.ntlm.msg_type, t.ntlm.target_name) == ("ntlmssp", "ntlm", 2, "CORP")
    wrapped = decode_gss_token(spnego_resp(1, OID_NTLMSSP, challenge))
    assert (wrapped.form, wrapped.mech, wrapped.ntlm.msg_type) == ("spnego-resp", "ntlm", 2)
    negoex = b"NEGOEXTS" + bytes(40)
    assert decode_gss_token(negoex).form == "negoex"
    t = decode_gss_token(spnego_init(negoex))
    assert (t.form, t.mech, t.error) == ("spnego-init", "negoex", None)


def test_header_forms_empty_and_schemes():
    assert decode_auth_header("Negotiate").form == "empty"
    assert decode_auth_header("  NTLM  ").scheme == "NTLM"
    t = decode_auth_header("Negotiate " + IIS_FINAL.rstrip("="))  # padding dropped by some clients
    assert t.form == "spnego-resp" and t.error is None


# --- broken input ------------------------------------------------------------------------------

def test_garbage_and_oversized_headers():
    bad = decode_auth_header("Negotiate !!not*base64!!")
    assert (bad.form, bad.error) == ("invalid", "invalid base64")
    huge = decode_auth_header("Negotiate " + "A" * (MAX_HEADER + 1))
    assert huge.form == "invalid" and huge.error
    junk = decode_auth_header("Negotiate " + b64(b"\x13\x37garbage"))
    assert junk.form == "unknown" and junk.error


def test_every_truncation_reports_an_error():
    ap_req, _ = _real_krb5_tokens()
    init = spnego_init(gss_krb5(b"\x01\x00", ap_req), req_flags=True)
    for raw in (init, ap_req, spnego_resp(0, OID_MS_KRB5, _krb_error()), _ntlm_challenge(timestamp=1)):
        for n in range(1, len(raw)):
            t = decode_gss_token(raw[:n])
            assert t.error, n
            assert t.kerberos is None and t.ntlm is None, n


def test_truncated_inner_token_keeps_the_spnego_reading():
    ap_req, _ = _real_krb5_tokens()
    t = decode_gss_token(spnego_init(gss_krb5(b"\x01\x00", ap_req)[:200]))
    assert (t.form, t.mech, t.kerberos) == ("spnego-init", "kerberos", None) and "mechanism token" in t.error


def test_random_corruption_never_raises():
    rng = random.Random(4178)
    ap_req, ap_rep = _real_krb5_tokens()
    seeds = [spnego_init(gss_krb5(b"\x01\x00", ap_req), req_flags=True),
             spnego_resp(0, OID_MS_KRB5, gss_krb5(b"\x02\x00", ap_rep)), ap_req,
             _ntlm_challenge(timestamp=1), base64.b64decode(IIS_FINAL)]
    for _ in range(3000):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        t = decode_gss_token(bytes(raw))
        assert t.form in ("spnego-init", "spnego-resp", "krb5", "ntlmssp", "negoex", "unknown", "invalid")
        v = decode_auth_header("Negotiate " + b64(bytes(raw))[: rng.randrange(1, 200)])
        assert isinstance(v.form, str)


# --- NTLMSSP details ---------------------------------------------------------------------------

def _ntlm_challenge(timestamp: int) -> bytes:
    target = "CORP".encode("utf-16-le")
    info = struct.pack("<HH", 2, len(target)) + target + struct.pack("<HHQ", 7, 8, timestamp) + b"\0" * 4
    head = 56
    return (b"NTLMSSP\0" + struct.pack("<I", 2) + struct.pack("<HHI", len(target), len(target), head)
            + struct.pack("<I", 0x628A8215) + b"\x11" * 8 + b"\0" * 8
            + struct.pack("<HHI", len(info), len(info), head + len(target)) + b"\0" * 8 + target + info)


def _ntlm_auth(user: bytes, domain: bytes, host: bytes, flags: int, nt_len: int) -> bytes:
    payload = b"L" * 24 + b"N" * nt_len + domain + user + host
    off = 64
    fields = [(24, off), (nt_len, off + 24), (len(domain), off + 24 + nt_len),
              (len(user), off + 24 + nt_len + len(domain)), (len(host), off + 24 + nt_len + len(domain) + len(user)),
              (0, off + len(payload))]
    head = b"NTLMSSP\0" + struct.pack("<I", 3) + b"".join(struct.pack("<HHI", n, n, o) for n, o in fields)
    return head + struct.pack("<I", flags) + payload


def test_ntlm_challenge_timestamp_is_the_servers_clock():
    # 2025-01-01T00:00:00Z as FILETIME
    ft = (1735689600 + 11644473600) * 10_000_000
    m = decode_ntlm(_ntlm_challenge(ft))
    assert (m.msg_type, m.target_name, m.timestamp) == (2, "CORP", 1735689600.0)


def test_ntlm_authenticate_oem_and_unicode_v1_and_anonymous():
    oem = decode_ntlm(_ntlm_auth(b"bob", b"CORP", b"PC01", 0x00000002, 24))
    assert (oem.user, oem.domain, oem.workstation, oem.nt_response_len) == ("bob", "CORP", "PC01", 24)
    uni = decode_ntlm(_ntlm_auth("bøb".encode("utf-16-le"), "CORP".encode("utf-16-le"), b"", 0x1, 0))
    assert (uni.user, uni.domain, uni.workstation, uni.nt_response_len) == ("bøb", "CORP", "", 0)


def test_ntlm_bad_input_raises_decode_error():
    good = _ntlm_auth(b"bob", b"CORP", b"PC01", 0x2, 24)
    for raw in (good[:40], b"NTLMSSP\0\x09\0\0\0" + bytes(60), b"NTLMSSX\0" + good[8:],
                good[:-3]):  # last field's bytes cut off
        with pytest.raises(DecodeError):
            decode_ntlm(raw)
