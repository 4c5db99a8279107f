"""HTTP/1.x stream parser: real captures against tshark, then the mechanics on small synthetic streams."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from kerbtrace.decoders.http import HttpMessage, HttpStreamParser, looks_like_http
from kerbtrace.diagnostics import Diagnostics
from tests.conftest import needs_tshark, real_capture

# Every capture of the set in which tshark dissects HTTP over TCP.
HTTP_CAPTURES = [
    "elc__winrm_psremote_05-16.pcap",
    "otrf__NEWYORK.cap",
    "otrf__SCRANTON.cap",
    "ndpi__webdav.pcap",
    "zeek__erspan.pcap",
    "elc__aug_16_par4.pcap.gz",
    "elc__aug19.pcap.gz",
    "elc__chip_host_signin.pcap.gz",
    "elc__remote_recon_toolie.pcapng",
    "elc__windows_miscellany.pcap.gz",
    "elc__wmi_query.pcap.gz",
    "otrf__covenant_dcom_iertutil_dll_hijack_WORKSTATION5_2020-10-09183000.cap",
    "otrf__covenant_dcom_registerxll_2020-09-18145959.cap",
    "otrf__covenant_psremoting_command_2020-08-06115603.cap",
    "otrf__empire_dcom_shellwindows_WORKSTATION5_2020-09-18130751.cap",
    "otrf__empire_psremoting_stager_WORKSTATION5_2020-09-20170827.cap",
    "otrf__empire_psremoting_stager_WORKSTATION6_2020-09-20170827.cap",
    "otrf__empire_shell_rubeus_asktgt_createnetonly_2020-09-21230246.cap",
    "otrf__empire_shell_rubeus_asktgt_ptt_2020-09-21223848.cap",
    "otrf__purplesharp_ad_playbook_I_2020-10-22042947.cap",
]
FIELDS = ["http.request.method", "http.request.uri", "http.authorization", "http.response.code",
          "http.www_authenticate", "http.content_length_header"]


def _tshark(args: list[str]) -> str:
    # Exit status 2 with output means a capture cut short in its last packet: the output is usable.
    proc = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, errors="replace")
    if proc.returncode not in (0, 2) or (proc.returncode == 2 and not proc.stdout):
        raise RuntimeError(proc.stderr)
    return proc.stdout


def _segments(path: Path):
    out = _tshark(["-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "occurrence=l", "-e", "frame.number",
                   "-e", "frame.time_epoch", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.seq",
                   "-e", "tcp.len", "-e", "tcp.payload"])
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 7 or not f[5] or f[5] == "0":
            continue
        yield int(f[0]), float(f[1]), int(f[2]), int(f[3]), int(f[4]), bytes.fromhex(f[6].replace(":", ""))


def _reference(path: Path) -> dict[int, dict[str, list[str]]]:
    out = _tshark(["-r", str(path), "-Y", "tcp && http", "-T", "json", "-e", "frame.number", "-e", "tcp.stream",
                   *sum((["-e", f] for f in FIELDS), [])])
    ref = {}
    for pkt in json.loads(out or "[]"):
        layers = pkt["_source"]["layers"]
        ref[int(layers["frame.number"][0])] = {k: layers[k] for k in FIELDS if layers.get(k)} | {
            "stream": int(layers["tcp.stream"][0])}
    return ref


def _run_parsers(path: Path, streams: set[int]) -> tuple[list[HttpMessage], Diagnostics, dict[int, float]]:
    """Feed each direction of each stream segment by segment, as the reassembler would."""
    diag = Diagnostics(keep=100000)
    dirs: dict[tuple[int, int], dict] = {}
    msgs: list[HttpMessage] = []
    times: dict[int, float] = {}
    early: dict[int, list[str]] = defaultdict(list)  # methods of requests seen before any response byte
    for frame, t, stream, sport, seq, payload in _segments(path):
        if stream not in streams:
            continue
        times[frame] = t
        d = dirs.setdefault((stream, sport), {"next": None, "parser": None})
        if d["next"] is None:
            d["next"] = seq
        if seq + len(payload) <= d["next"]:
            continue  # retransmission
        if seq < d["next"]:
            payload, seq = payload[d["next"] - seq :], d["next"]
        if d["parser"] is None:
            is_req = looks_like_http(payload) and not payload.startswith(b"HTTP/")
            d["parser"] = HttpStreamParser(is_req, diag)
            if not is_req:
                for method in early.pop(stream, []):
                    d["parser"].expect_response_to(method)
        parser = d["parser"]
        if seq > d["next"]:
            parser.gap(seq - d["next"], frame)
        d["next"] = seq + len(payload)
        for m in parser.feed(payload, frame, t):
            msgs.append(m)
            if m.is_request:
                # The response parser of the other direction learns the request methods in order.
                other = [d2 for (s2, p2), d2 in dirs.items() if s2 == stream and p2 != sport and d2["parser"]]
                if other:
                    other[0]["parser"].expect_response_to(m.method)
                else:
                    early[stream].append(m.method)
    for d in dirs.values():
        if d["parser"] is not None:
            msgs.extend(d["parser"].close(None, None))
    return msgs, diag, times


@needs_tshark
@pytest.mark.parametrize("name", HTTP_CAPTURES)
def test_real_capture_matches_tshark(name: str) -> None:
    path = real_capture(name)
    ref = _reference(path)
    assert ref, "tshark finds HTTP in this capture"
    msgs, diag, times = _run_parsers(path, {v["stream"] for v in ref.values()})
    ours: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    cut = 0
    for m in msgs:
        if m.body_truncated:
            # Body bytes were never captured; tshark cannot reassemble such a message and omits it.
            cut += 1
            continue
        assert m.time == pytest.approx(times[m.frame])
        assert m.first_frame <= m.frame
        e = ours[m.frame]
        if m.is_request:
            e["http.request.method"].append(m.method)
            e["http.request.uri"].append(m.uri)
            e["http.authorization"] += m.headers_named("Authorization")
        else:
            e["http.response.code"].append(str(m.status))
            e["http.www_authenticate"] += m.headers_named("WWW-Authenticate")
        e["http.content_length_header"] += m.headers_named("Content-Length")
        cl = m.header("Content-Length")
        if cl is not None and m.header("Transfer-Encoding") is None:
            # Responses to HEAD, 204 and 304 carry a Content-Length but no body.
            assert len(m.body) in ((int(cl),) if m.is_request else (int(cl), 0)), (name, m.frame)
    mismatches = []
    for frame in sorted(set(ref) | set(ours)):
        want = {k: v for k, v in ref.get(frame, {}).items() if k != "stream"}
        got = {k: v for k, v in ours.get(frame, {}).items() if v}
        if want != got:
            mismatches.append((frame, want, got))
    assert not mismatches, mismatches[:3]
    # Every message the parser dropped or cut is accounted for by a warning.
    assert len(diag.warnings) >= cut


@needs_tshark
def test_real_capture_auth_headers_seen() -> None:
    """The WinRM captures carry the schemes the later stages rely on (Negotiate and bare Kerberos)."""
    schemes = set()
    for name in ("elc__winrm_psremote_05-16.pcap", "otrf__SCRANTON.cap", "ndpi__webdav.pcap"):
        ref = _reference(real_capture(name))
        msgs, _, _ = _run_parsers(real_capture(name), {v["stream"] for v in ref.values()})
        for m in msgs:
            for v in m.headers_named("Authorization") + m.headers_named("WWW-Authenticate"):
                schemes.add(v.split(" ", 1)[0])
    assert {"Negotiate", "Kerberos", "NTLM"} <= schemes


# -- synthetic streams ------------------------------------------------------------------------------

def _parse_all(data: bytes, is_request: bool, chunks: list[int] | None = None, methods=()):
    diag = Diagnostics()
    p = HttpStreamParser(is_request, diag)
    for m in methods:
        p.expect_response_to(m)
    out = []
    if chunks is None:
        out += p.feed(data, 1, 1.0)
    else:
        pos = 0
        for i, n in enumerate(chunks):
            out += p.feed(data[pos : pos + n], i + 1, float(i + 1))
            pos += n
        assert pos == len(data)
    out += p.close(None, None)
    return out, diag


def _summary(msgs):
    return [(m.method, m.uri, m.status, m.headers, m.body, m.body_truncated) for m in msgs]


REQS = (b"CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nHost: mp.corp.local\r\n"
        b"Content-Type: multipart/mixed; boundary=\"x\"\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n"
        b"PROPFIND /dav HTTP/1.1\nDepth: 1\nX-Folded: a\n  b\n\tc\n\n")


def test_pipelined_requests_in_one_segment() -> None:
    msgs, diag = _parse_all(REQS, True)
    assert [(m.method, m.uri) for m in msgs] == [("CCM_POST", "/ccm_system_windowsauth/request"), ("GET", "/a"),
                                                ("POST", "/c"), ("PROPFIND", "/dav")]
    assert msgs[0].body == b"hello" and msgs[0].header("content-type") == 'multipart/mixed; boundary="x"'
    assert msgs[2].body == b"Wikipedia" and msgs[2].header("X-Trailer") == "yes"
    assert msgs[3].header("x-folded") == "a b c" and msgs[3].header("Depth") == "1"
    assert not diag.warnings


def test_every_split_point_gives_the_same_messages() -> None:
    whole = _summary(_parse_all(REQS, True)[0])
    for i in range(1, len(REQS)):
        msgs, diag = _parse_all(REQS, True, [i, len(REQS) - i])
        assert _summary(msgs) == whole, i
        assert not diag.warnings
    msgs, _ = _parse_all(REQS, True, [1] * len(REQS))
    assert _summary(msgs) == whole


def test_frames_of_a_message_split_across_segments() -> None:
    diag = Diagnostics()
    p = HttpStreamParser(False, diag)
    assert p.feed(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\n",
                  10, 10.5) == []
    assert p.feed(b"Content-Length: 4\r\n\r\nab", 11, 11.5) == []
    (m,) = p.feed(b"cdHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 12, 12.5)[:1]
    assert (m.status, m.reason, m.first_frame, m.frame, m.time, m.body) == (401, "Unauthorized", 10, 12, 12.5,
                                                                            b"abcd")
    assert m.headers_named("www-authenticate") == ["Negotiate", "NTLM"]


def test_responses_without_body_and_interim() -> None:
    stream = (b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
              b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"  # answer to HEAD: no body
              b"HTTP/1.1 204 No Content\r\n\r\n"
              b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
              b"HTTP/1.0 200 OK\r\n\r\nuntil close")
    msgs, diag = _parse_all(stream, False, methods=["POST", "HEAD", "GET", "GET", "GET"])
    assert [(m.status, m.body) for m in msgs] == [(100, b""), (200, b"abc"), (200, b""), (204, b""),
                                                   (304, b""), (200, b"until close")]
    assert not diag.warnings


def test_read_until_close_completes_at_close_frame() -> None:
    diag = Diagnostics()
    p = HttpStreamParser(False, diag)
    assert p.feed(b"HTTP/1.0 200 OK\r\n\r\npart1", 5, 5.0) == []
    assert p.feed(b"part2", 6, 6.0) == []
    (m,) = p.close(9, 9.0)
    assert (m.body, m.frame, m.time, m.first_frame) == (b"part1part2", 9, 9.0, 5)


def test_body_limit_keeps_stream_in_sync() -> None:
    body = bytes(range(256)) * 40
    stream = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body +
              b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + b"z" * 4096 + b"\r\n0\r\n\r\n"
              b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")
    diag = Diagnostics()
    p = HttpStreamParser(False, diag, max_body=1000)
    msgs = []
    for i in range(0, len(stream), 1460):
        msgs += p.feed(stream[i : i + 1460], i, 0.0)
    assert [(m.status, m.body_truncated, len(m.body)) for m in msgs] == [(200, True, 1000), (200, True, 1000),
                                                                          (404, False, 2)]
    assert msgs[0].body == body[:1000]


def test_header_limit_warns_and_resyncs() -> None:
    stream = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\nGET /next HTTP/1.1\r\n\r\n"
    diag = Diagnostics()
    p = HttpStreamParser(True, diag, max_header=1024)
    msgs = []
    for i in range(0, len(stream), 700):
        msgs += p.feed(stream[i : i + 700], i, 0.0)
    assert [m.uri for m in msgs] == ["/next"]
    assert any("header block" in w.message for w in diag.warnings)


def test_gap_in_headers_drops_message_and_resyncs() -> None:
    diag = Diagnostics()
    p = HttpStreamParser(True, diag)
    assert p.feed(b"GET /lost HTTP/1.1\r\nHost: x\r\n", 1, 1.0) == []
    p.gap(100, 2)
    msgs = p.feed(b"-Length: 3\r\n\r\nabcGET /ok HTTP/1.1\r\n\r\n", 3, 3.0)
    assert [m.uri for m in msgs] == ["/ok"]
    assert diag.warnings and diag.warnings[0].frame == 2 and diag.warnings[0].kind == "http"


def test_gap_in_body_keeps_headers_and_sync() -> None:
    diag = Diagnostics()
    p = HttpStreamParser(False, diag)
    p.feed(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 30\r\n\r\n0123456789", 1, 1.)
    p.gap(10, 2)
    msgs = p.feed(b"0123456789HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3, 3.0)
    assert [(m.status, m.body_truncated, m.frame) for m in msgs] == [(401, True, 3), (200, False, 3)]
    # A gap that swallows the end of a body and the start of the next message.
    p.feed(b"HTTP/1.1 500 Error\r\nContent-Length: 10\r\n\r\n01", 4, 4.0)
    p.gap(50, 5)
    msgs = p.feed(b"tail of something\r\nHTTP/1.1 204 No Content\r\n\r\n", 6, 6.0)
    assert [(m.status, m.body_truncated) for m in msgs] == [(500, True), (204, False)]


def test_resync_on_segment_boundary_after_loss() -> None:
    """After a lost header the next message begins on a segment, not after a newline."""
    diag = Diagnostics()
    p = HttpStreamParser(False, diag)
    p.gap(1460, 1)
    assert p.feed(b"\x89PNG binary body without newline", 2, 2.0) == []
    msgs = p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 3, 3.0)
    assert [(m.status, m.body, m.first_frame) for m in msgs] == [(200, b"x", 3)]


def test_garbage_warns_and_never_raises() -> None:
    msgs, diag = _parse_all(b"\x16\x03\x01\x02\x00binary tls hello\r\n\r\nGET /x HTTP/1.1\r\n\r\n", True)
    assert [m.uri for m in msgs] == ["/x"] and len(diag.warnings) == 1
    msgs, diag = _parse_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False)
    assert [m.status for m in msgs] == [200] and "chunk-size" in diag.warnings[0].message
    rng = random.Random(7)
    valid = REQS * 3
    for trial in range(300):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if trial % 3 == 0:
            data = bytearray(rng.randbytes(rng.randint(0, 3000)))
        cuts = []
        left = len(data)
        while left:
            n = min(left, rng.randint(1, 400))
            cuts.append(n)
            left -= n
        diag = Diagnostics()
        p = HttpStreamParser(trial % 2 == 0, diag, max_header=512, max_body=64)
        pos = 0
        for i, n in enumerate(cuts):
            if rng.random() < 0.05:
                p.gap(rng.randint(1, 100), i)
            for m in p.feed(bytes(data[pos : pos + n]), i, 0.0):
                assert len(m.body) <= 64
            pos += n
        p.close(None, None)


def test_incomplete_message_at_close_is_reported() -> None:
    msgs, diag = _parse_all(b"GET / HTTP/1.1\r\nHost: a\r\n", True)
    assert msgs == [] and "header" in diag.warnings[0].message
    msgs, diag = _parse_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 9\r\n\r\nab",
                            False)
    assert [(m.status, m.body_truncated, m.header("WWW-Authenticate")) for m in msgs] == [(401, True, "NTLM")]
    assert "body" in diag.warnings[0].message


def test_switching_protocols_stops_parsing() -> None:
    msgs, diag = _parse_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello", False)
    assert [m.status for m in msgs] == [101] and not diag.warnings


def test_looks_like_http() -> None:
    assert looks_like_http(b"CCM_POST /ccm_system/request HTTP/1.1\r\nHost: x\r\n")
    assert looks_like_http(b"PROPFIND /dav HTTP/1.1\r\n")
    assert looks_like_http(b"HTTP/1.1 401 Unauthorized\r\n")
    assert looks_like_http(b"GET /very/long")  # start line continues in the next segment
    assert not looks_like_http(b"\x16\x03\x01\x00\xa5\x01")
    assert not looks_like_http(b"SSH-2.0-OpenSSH_9.0\r\n")
    assert not looks_like_http(b"GET / HTTP/2.0\r\n")
    assert not looks_like_http(b"\x00\x00\x05\xd2j\x82\x05\xce0\x82")  # Kerberos over TCP


def test_throughput() -> None:
    """Large bodies in 1460-byte segments: the per-byte cost must stay far below tshark's."""
    body = b"x" * 200_000
    msg = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    small = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n"
    stream = (msg + small * 50) * 100
    segs = [stream[i : i + 1460] for i in range(0, len(stream), 1460)]
    p = HttpStreamParser(False, Diagnostics())
    t0 = time.perf_counter()
    n = 0
    for i, s in enumerate(segs):
        n += len(p.feed(s, i, 0.0))
    dt = time.perf_counter() - t0
    assert n == 100 * 51
    mb_s = len(stream) / dt / 1e6
    print(f"HTTP parser: {mb_s:.0f} MB/s, {len(segs) / dt / 1000:.0f} k segments/s, {n / dt / 1000:.0f} k msgs/s")
    assert mb_s > 20
