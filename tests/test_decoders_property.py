"""Property-based tests (hypothesis): no decoder lets anything but DecodeError escape, whatever the bytes,
and the pipeline never raises. Inputs are random bytes and real messages from the lab captures, damaged
(bytes changed, cut, inserted, removed)."""

from __future__ import annotations

import base64
import sys
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerbtrace.analysis import Session
from kerbtrace.decoders import DecodeError
from kerbtrace.decoders.ccm import decode_ccm
from kerbtrace.decoders.dns import decode_dns, decode_dns_tcp, peek_dns, split_dns_tcp
from kerbtrace.decoders.gss import decode_auth_header, decode_gss_token
from kerbtrace.decoders.http import HttpStreamParser, looks_like_http
from kerbtrace.decoders.kerberos import decode_kerberos
from kerbtrace.decoders.ntlm import decode_ntlm
from kerbtrace.decoders.tls import TlsHandshakeReader, looks_like_client_hello
from kerbtrace.diagnostics import Diagnostics
from tests.conftest import CAPTURES, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from pcapio import read_ipv4  # noqa: E402 - the generator's small independent reader

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@cache
def _seeds() -> dict[str, list[bytes]]:
    """Payloads by service port from a few lab captures (IP packets too, for the pipeline)."""
    out: dict[str, list[bytes]] = {"88": [], "53": [], "80": [], "443": [], "ip": []}
    for name in ("ok_same_realm", "https_mp", "ntlm_only", "kerberos_over_tcp"):
        path = CAPTURES / f"{name}.pcapng"
        if not path.exists():
            continue
        for _frame, _t, ip in read_ipv4(path):
            out["ip"].append(ip)
            ihl = (ip[0] & 15) * 4
            if ip[9] not in (6, 17) or len(ip) < ihl + 8:
                continue
            sport, dport = int.from_bytes(ip[ihl:ihl + 2], "big"), int.from_bytes(ip[ihl + 2:ihl + 4], "big")
            head = ihl + (8 if ip[9] == 17 else (ip[ihl + 12] >> 4) * 4)
            payload = ip[head:]
            for port in (sport, dport):
                if str(port) in out and payload:
                    out[str(port)].append(payload)
    for key, values in out.items():
        if not values:
            pytest.skip(f"no lab capture with {key} traffic")
    return out


@st.composite
def damaged(draw, kind: str) -> bytes:
    """A real message of this kind, damaged a few times; or plain random bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=600))
    b = bytearray(draw(st.sampled_from(_seeds()[kind])))
    for _ in range(draw(st.integers(0, 6))):
        if not b:
            break
        i = draw(st.integers(0, len(b) - 1))
        op = draw(st.integers(0, 3))
        if op == 0:
            b[i] = draw(st.integers(0, 255))
        elif op == 1:
            del b[i:]
        elif op == 2:
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del b[i:i + draw(st.integers(1, 16))]
    return bytes(b)


def _only_decode_error(func, *args):
    try:
        return func(*args)
    except DecodeError:
        return None


@FAST
@given(damaged("88"))
def test_kerberos(raw):
    _only_decode_error(decode_kerberos, raw)
    if len(raw) > 4:  # the TCP framing's 4-byte length prefix
        _only_decode_error(decode_kerberos, raw[4:])


@FAST
@given(damaged("53"))
def test_dns(raw):
    _only_decode_error(decode_dns, raw)
    _only_decode_error(peek_dns, raw)
    _only_decode_error(decode_dns_tcp, raw)
    _only_decode_error(split_dns_tcp, raw)


@FAST
@given(damaged("80"))
def test_gss_ntlm_and_auth_headers(raw):
    _only_decode_error(decode_gss_token, raw)
    _only_decode_error(decode_ntlm, raw)
    for scheme in ("Negotiate", "NTLM", "Kerberos"):
        _only_decode_error(decode_auth_header, f"{scheme} {base64.b64encode(raw).decode()}")
    _only_decode_error(decode_auth_header, raw.decode("latin-1"))


@FAST
@given(damaged("80"), st.sampled_from([None, "text/html", "multipart/mixed; boundary=aAbBcCdDv1234567890VxXyYzZ",
                                        "multipart/mixed", "application/octet-stream"]), st.booleans())
def test_ccm(raw, content_type, answers):
    _only_decode_error(lambda: decode_ccm(content_type, raw, max_inflate=1 << 16, answers_registration=answers))


@FAST
@given(st.lists(damaged("80"), max_size=6), st.booleans())
def test_http_stream(chunks, is_request):
    parser = HttpStreamParser(is_request, Diagnostics())
    for i, chunk in enumerate(chunks, 1):
        looks_like_http(chunk)
        _only_decode_error(parser.feed, chunk, i, float(i))


@FAST
@given(st.lists(st.tuples(st.booleans(), damaged("443")), max_size=6))
def test_tls_handshake(flights):
    reader = TlsHandshakeReader()
    for i, (from_client, data) in enumerate(flights, 1):
        looks_like_client_hello(data)
        _only_decode_error(reader.feed, from_client, data, i, float(i))


_ETH = b"\x00\x15\x5d\x0a\x0b\x0c\x00\x15\x5d\x01\x02\x03\x08\x00"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(st.lists(damaged("ip"), min_size=1, max_size=30), st.sampled_from([1, 101, 113, 0, 228, 276, 147]))
def test_pipeline_never_raises(packets, linktype):
    diag = Diagnostics()
    session = Session(diag)
    for frame, ip in enumerate(packets, 1):
        data = _ETH + ip if linktype == 1 else ip
        session.feed(frame, 1_700_000_000.0 + frame / 100, linktype, data)  # no exception of any kind
    done = session.poll()
    session.finish(done)
    assert not [w for w in diag.warnings if w.kind == "internal"], [w.message for w in diag.warnings]
