"""Kerberos decoder: field by field against impacket (pyasn1) and tshark on every real port-88 message,
plus the e-data forms, times and malformed input that the captures do not exercise."""

from __future__ import annotations

import calendar
import random
import struct
import time
from dataclasses import astuple

import pytest

from kerbtrace.decoders import DecodeError, der
from kerbtrace.decoders.kerberos import MSG_TYPE_NAMES, KerberosMessage, decode_kerberos
from tests.conftest import FULL_REAL_SET, real_capture_files
from tests.tshark_reference import (
    is_port88,
    port88_messages,
    prefetch,
    tshark_kerberos,
    tshark_reading,
    values,
)

# impacket and pyasn1 (the test extra) read every message independently of kerbtrace's decoder.
k = pytest.importorskip("impacket.krb5.asn1")
der_decoder = pytest.importorskip("pyasn1.codec.der.decoder")
der_encoder = pytest.importorskip("pyasn1.codec.der.encoder")

CAPTURES = real_capture_files()
IMPACKET_CLASS = {0x6A: k.AS_REQ, 0x6B: k.AS_REP, 0x6C: k.TGS_REQ, 0x6D: k.TGS_REP, 0x6E: k.AP_REQ,
                  0x6F: k.AP_REP, 0x7E: k.KRB_ERROR}


# --- impacket's reading -----------------------------------------------------------------------

def _pname(p) -> str:
    return "/".join(str(s) for s in p["name-string"])


def _time(t, usec=None) -> float:
    sec = t.asDateTime.timestamp()
    return sec + int(usec) / 1e6 if usec is not None and usec.isValue else sec


def _bits32(b) -> int:
    return int.from_bytes(b.asOctets()[:4].ljust(4, b"\0"), "big")


def _ticket(t) -> tuple:
    enc = t["enc-part"]
    return (str(t["realm"]), _pname(t["sname"]), int(enc["etype"]),
            int(enc["kvno"]) if enc["kvno"].isValue else None)


def _padata_types(m, name: str) -> tuple[int, ...]:
    return tuple(int(p["padata-type"]) for p in m[name]) if m[name].isValue else ()


def _impacket_ntstatus(e_data: bytes) -> int | None:
    """NTSTATUS from e-data, decoded with impacket's KERB-ERROR-DATA / METHOD-DATA classes."""
    try:
        d, _ = der_decoder.decode(e_data, asn1Spec=k.KERB_ERROR_DATA())
        if int(d["data-type"]) == 3:
            return struct.unpack("<I", bytes(d["data-value"])[:4])[0]
        return None
    except Exception:  # noqa: BLE001 - not this form; try the next
        pass
    try:
        md, _ = der_decoder.decode(e_data, asn1Spec=k.METHOD_DATA())
    except Exception:  # noqa: BLE001
        return None
    for p in md:
        v = bytes(p["padata-value"])
        if int(p["padata-type"]) == 3 and len(v) == 12 and v[4:8] == b"\0" * 4 and v[3] >= 0xC0:
            return struct.unpack("<I", v[:4])[0]
    return None


def impacket_fields(raw: bytes) -> dict:
    """The KerberosMessage fields as impacket's ASN.1 classes read them."""
    m, _ = der_decoder.decode(raw, asn1Spec=IMPACKET_CLASS[raw[0]]())
    mt = int(m["msg-type"])
    out: dict = {"msg_type": mt}
    if mt in (10, 12):
        b = m["req-body"]
        out.update(realm=str(b["realm"]), etypes=tuple(int(e) for e in b["etype"]),
                   sname=_pname(b["sname"]) if b["sname"].isValue else None,
                   cname=_pname(b["cname"]) if b["cname"].isValue else None,
                   till=_time(b["till"]) if b["till"].isValue else None,
                   kdc_options=_bits32(b["kdc-options"]), padata_types=_padata_types(m, "padata"), ticket=None)
        for p in m["padata"] if m["padata"].isValue else ():
            if int(p["padata-type"]) == 1:
                ap, _ = der_decoder.decode(bytes(p["padata-value"]), asn1Spec=k.AP_REQ())
                out["ticket"] = _ticket(ap["ticket"])
                break
    elif mt in (11, 13):
        out.update(crealm=str(m["crealm"]), cname=_pname(m["cname"]), ticket=_ticket(m["ticket"]),
                   enc_etype=int(m["enc-part"]["etype"]), padata_types=_padata_types(m, "padata"))
        out["realm"], out["sname"] = out["ticket"][:2]
    elif mt == 14:
        out.update(ticket=_ticket(m["ticket"]), enc_etype=int(m["authenticator"]["etype"]),
                   ap_options=_bits32(m["ap-options"]))
        out["realm"], out["sname"] = out["ticket"][:2]
    elif mt == 15:
        out["enc_etype"] = int(m["enc-part"]["etype"])
    else:
        out.update(error_code=int(m["error-code"]), realm=str(m["realm"]), sname=_pname(m["sname"]),
                   crealm=str(m["crealm"]) if m["crealm"].isValue else None,
                   cname=_pname(m["cname"]) if m["cname"].isValue else None,
                   e_text=str(m["e-text"]) if m["e-text"].isValue else None,
                   stime=_time(m["stime"], m["susec"]),
                   ctime=_time(m["ctime"], m["cusec"]) if m["ctime"].isValue else None,
                   nt_status=_impacket_ntstatus(bytes(m["e-data"])) if m["e-data"].isValue else None)
    return out


def assert_same_as_impacket(raw: bytes, where: str) -> KerberosMessage:
    mine = decode_kerberos(raw)
    ref = impacket_fields(raw)
    for name, want in ref.items():
        got = getattr(mine, name)
        if name == "ticket" and got is not None:
            got = astuple(got)
        if isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-6), f"{where}: {name}"
        else:
            assert got == want, f"{where}: {name}"
    return mine


# --- every real port-88 message ---------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _tshark_cache():
    prefetch(CAPTURES)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_real_port88_messages_match_impacket_and_tshark(path):
    messages = port88_messages(path)
    rows = [r for r in tshark_reading(path) if is_port88(r)]
    port88_frames = {int(r["frame.number"]) for r in rows}
    # The extraction finds exactly the messages tshark counts on port 88 (nested AP-REQs excluded).
    want = [m for m in tshark_kerberos(path) if m[0] in port88_frames]
    decoded = [(frame, assert_same_as_impacket(raw, f"{path.name} frame {frame}")) for frame, raw in messages]
    assert [(f, m.msg_type, m.error_code) for f, m in decoded] == want
    by_frame = {int(r["frame.number"]): r for r in rows}
    for frame, m in decoded:
        row = by_frame[frame]
        realms, snames, cnames = (set(values(row[f"kerberos.{n}"])) for n in ("realm", "SNameString", "CNameString"))
        if m.realm is not None:
            assert m.realm in realms, f"{path.name} frame {frame}"
        if m.sname is not None:
            assert set(m.sname.split("/")) <= snames, f"{path.name} frame {frame}"
        if m.cname is not None:
            assert set(m.cname.split("/")) <= cnames, f"{path.name} frame {frame}"


def test_real_captures_cover_every_message_type_and_edata_form():
    """The comparison above is only as good as what the captures hold: make sure that is a lot."""
    seen: dict[int, int] = {}
    ext_status = method = tgs_tickets = 0
    for path in CAPTURES:
        for _frame, raw in port88_messages(path):
            m = decode_kerberos(raw)
            seen[m.msg_type] = seen.get(m.msg_type, 0) + 1
            ext_status += m.e_data_type == 3 and m.nt_status is not None
            method += bool(m.method_data)
            tgs_tickets += m.msg_type == 12 and m.ticket is not None
    # AP-REQ / AP-REP never travel alone on port 88; they are checked inside HTTP in test_decoders_gss.
    assert set(seen) == {10, 11, 12, 13, 30}
    # Floors for the full set beside the repository, else for the shipped captures alone.
    messages, ext_floor, method_floor, tgs_floor = (800, 10, 60, 100) if FULL_REAL_SET else (400, 1, 25, 90)
    assert sum(seen.values()) > messages
    assert ext_status >= ext_floor and method >= method_floor and tgs_tickets >= tgs_floor


# --- synthetic messages built with impacket's classes -------------------------------------------

def _krb_error(e_data: bytes | None = None, ctime: str | None = None, code: int = 18) -> bytes:
    e = k.KRB_ERROR()
    e["pvno"] = 5
    e["msg-type"] = 30
    if ctime:
        e["ctime"] = ctime
        e["cusec"] = 250000
    e["stime"] = "20240229235959Z"
    e["susec"] = 500000
    e["error-code"] = code
    e["realm"] = "CORP.LAB"
    e["sname"]["name-type"] = 2
    e["sname"]["name-string"][0] = "krbtgt"
    e["sname"]["name-string"][1] = "CORP.LAB"
    if e_data is not None:
        e["e-data"] = e_data
    return der_encoder.encode(e)


def _kerb_error_data(data_type: int, value: bytes) -> bytes:
    d = k.KERB_ERROR_DATA()
    d["data-type"] = data_type
    d["data-value"] = value
    return der_encoder.encode(d)


def _method_data(*pas: tuple[int, bytes]) -> bytes:
    md = k.METHOD_DATA()
    for i, (ptype, value) in enumerate(pas):
        md[i] = k.PA_DATA()
        md[i]["padata-type"] = ptype
        md[i]["padata-value"] = value
    return der_encoder.encode(md)


def test_krb_error_times_and_names():
    raw = _krb_error(ctime="20240229235000Z")
    m = assert_same_as_impacket(raw, "synthetic")
    assert m.stime == calendar.timegm((2024, 2, 29, 23, 59, 59)) + 0.5
    assert m.ctime == calendar.timegm((2024, 2, 29, 23, 50, 0)) + 0.25
    assert (m.realm, m.sname, m.error_code, m.cname) == ("CORP.LAB", "krbtgt/CORP.LAB", 18, None)


def test_kerb_ext_error_ntstatus_is_little_endian():
    blob = struct.pack("<III", 0xC0000234, 0, 1)
    m = assert_same_as_impacket(_krb_error(_kerb_error_data(3, blob)), "ext-error")
    assert (m.e_data_type, m.nt_status, m.method_data) == (3, 0xC0000234, ())


def test_skew_recovery_edata():
    # KERB-ERROR-DATA { data-type [1] 2 } without data-value (impacket's class cannot encode it).
    m = decode_kerberos(_krb_error(bytes.fromhex("3005a103020102"), code=37))
    assert (m.e_data_type, m.nt_status) == (2, None)


def test_pw_salt_ntstatus_blob_and_real_salts():
    blob = struct.pack("<III", 0xC0000072, 0, 1)
    m = assert_same_as_impacket(_krb_error(_method_data((3, blob))), "pw-salt blob")
    assert (m.method_data, m.nt_status, m.e_data_type) == ((3,), 0xC0000072, None)
    for salt in (b"CORP.LABhostpc01.corp.lab", b"ABCDEFGHIJKL"):
        m = decode_kerberos(_krb_error(_method_data((3, salt)), code=25))
        assert (m.method_data, m.nt_status) == ((3,), None)


def test_method_data_lists_pa_types():
    m = decode_kerberos(_krb_error(_method_data((19, b"0\x00"), (2, b""), (16, b"")), code=25))
    assert m.method_data == (19, 2, 16)


def test_unknown_edata_forms_leave_the_error_readable():
    odd = bytes.fromhex("300b3009a003020180a1020400")  # scapy's "KERB_ERROR_UNK" (-128) shape
    for e_data in (odd, b"\x01\x02\x03", b"\x30\x05\xa1\x03\x02", b""):
        m = decode_kerberos(_krb_error(e_data, code=7))
        assert (m.error_code, m.nt_status, m.e_data_type, m.method_data) == (7, None, None, ())


# --- malformed input ----------------------------------------------------------------------------

def _samples() -> dict[int, bytes]:
    """One real message per type (the first of each in the captures)."""
    out: dict[int, bytes] = {}
    for path in CAPTURES:
        for _f, raw in port88_messages(path):
            out.setdefault(raw[0], raw)
    return out


def test_every_truncation_raises_decode_error():
    samples = _samples()
    assert len(samples) >= 5
    for raw in samples.values():
        for n in range(len(raw)):
            with pytest.raises(DecodeError):
                decode_kerberos(raw[:n])


def test_trailing_bytes_are_ignored_and_memoryview_accepted():
    for raw in _samples().values():
        ref = decode_kerberos(raw)
        assert decode_kerberos(raw + b"\x00junk") == ref
        assert decode_kerberos(memoryview(bytearray(raw))) == ref


def test_random_corruption_never_escapes_as_another_exception():
    rng = random.Random(4120)
    samples = list(_samples().values())
    decoded = 0
    for _ in range(3000):
        raw = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        try:
            decode_kerberos(bytes(raw))
            decoded += 1
        except DecodeError:
            pass
    assert 0 < decoded < 3000


def test_length_beyond_buffer_indefinite_and_bad_first_byte():
    raw = _samples()[0x6D]
    with pytest.raises(DecodeError):
        decode_kerberos(b"\x6d\x84\x7f\xff\xff\xff" + raw[6:])
    with pytest.raises(DecodeError):
        decode_kerberos(b"\x6d\x80" + raw[4:])
    with pytest.raises(DecodeError):
        decode_kerberos(b"\x30\x03\x02\x01\x05")
    with pytest.raises(DecodeError):
        decode_kerberos(b"")


def test_msg_type_disagreeing_with_the_tag_is_refused():
    raw = bytearray(_krb_error())
    i = raw.index(bytes.fromhex("a10302011e"))  # msg-type [1] INTEGER 30
    raw[i + 4] = 0x0B
    with pytest.raises(DecodeError):
        decode_kerberos(bytes(raw))


def _wrap(content: bytes) -> bytes:
    n = len(content)
    return bytes([0x30, n]) + content if n < 128 else bytes([0x30, 0x81, n]) + content


def test_nesting_deeper_than_32_is_refused():
    def build(depth: int) -> bytes:
        b = b"\x05\x00"
        for _ in range(depth):
            b = _wrap(b)
        return b

    assert max(d for d, *_ in der.walk(build(31))) == 31
    with pytest.raises(DecodeError):
        list(der.walk(build(33)))
    # A deeply nested blob where a Kerberos message should be is refused, not walked.
    with pytest.raises(DecodeError):
        decode_kerberos(b"\x7e" + build(40)[1:])


def test_generalized_time_matches_calendar():
    rng = random.Random(5)
    for _ in range(500):
        t = rng.randrange(0, 4102444800)
        s = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))
        buf = b"\xa0\x11\x18\x0f" + s.encode()
        assert der.generalized_time(buf, (2, len(buf))) == t
    buf = b"\xa0\x14\x18\x12" + b"20200501123456.25Z"
    assert der.generalized_time(buf, (2, len(buf))) == calendar.timegm((2020, 5, 1, 12, 34, 56)) + 0.25


def test_msg_type_names():
    assert MSG_TYPE_NAMES[12] == "TGS-REQ" and MSG_TYPE_NAMES[30] == "KRB-ERROR" and len(MSG_TYPE_NAMES) == 7
