"""DNS decoder: every DNS packet on UDP port 53 of the real captures against dnslib and tshark."""

from __future__ import annotations

import random
import struct
import subprocess
from pathlib import Path

import pytest

from kerbtrace.decoders import DecodeError
from kerbtrace.decoders.dns import QTYPE_NAMES, RCODE_NAMES, decode_dns, decode_dns_tcp
from tests.conftest import FULL_REAL_SET, needs_tshark, real_capture_files

dnslib = pytest.importorskip("dnslib")  # the test extra: an independent reading of every DNS message
CAPTURES = real_capture_files()
COMPARED = (1, 28, 2, 5, 12, 33)  # A, AAAA, NS, CNAME, PTR, SRV


def _dns_packets(path: Path) -> list[tuple[int, bytes, str, list[str], list[str]]]:
    proc = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "dns && udp.port==53", "-T", "fields", "-e", "frame.number",
         "-e", "udp.payload", "-e", "dns.flags.rcode", "-e", "dns.qry.name", "-e", "dns.a",
         "-E", "occurrence=a", "-E", "aggregator=|"], capture_output=True, text=True)
    rows = []
    for line in proc.stdout.splitlines():
        frame, payload, rcode, names, addrs = (line.split("\t") + [""] * 5)[:5]
        rows.append((int(frame), bytes.fromhex(payload), rcode, [n for n in names.split("|") if n],
                     [a for a in addrs.split("|") if a]))
    return rows


def _root(name: str) -> str:
    name = name.rstrip(".")
    return name if name and name != "<Root>" else "."


def _dnslib_view(data: bytes):
    rec = dnslib.DNSRecord.parse(data)
    questions = [(_root(str(q.qname)), q.qtype) for q in rec.questions]
    answers = []
    for rr in rec.rr:
        if rr.rtype in (1, 28):
            value = str(rr.rdata)
        elif rr.rtype in (2, 5, 12):
            value = _root(str(rr.rdata.label))
        elif rr.rtype == 33:
            value = f"{rr.rdata.priority} {rr.rdata.weight} {rr.rdata.port} {_root(str(rr.rdata.target))}"
        else:
            continue
        answers.append((_root(str(rr.rname)), rr.rtype, value))
    return rec.header.id, rec.header.rcode, questions, answers


@needs_tshark
def test_real_captures_agree_with_dnslib_and_tshark() -> None:
    total = by_dnslib = srv = 0
    for path in CAPTURES:
        for frame, payload, rcode, names, addrs in _dns_packets(path):
            total += 1
            m = decode_dns(payload)
            where = (path.name, frame)
            # tshark: rcode (responses), question names, A addresses (answers come first in dns.a).
            if rcode:
                assert m.rcode == int(rcode), where
            assert [_root(q) for q, _ in m.questions] == [_root(n) for n in names], where
            ours_a = [v for _, t, v in m.answers if t == 1]
            assert addrs[: len(ours_a)] == ours_a, where
            try:
                ref = _dnslib_view(payload)
            except dnslib.DNSError:
                # dnslib rejects RFC 2136 update records with empty rdata; tshark checked them above.
                assert m.opcode == 5, where
                continue
            by_dnslib += 1
            ours = (m.id, m.rcode, m.questions, [a for a in m.answers if a[1] in COMPARED])
            assert ours == ref, where
            srv += sum(1 for a in m.answers if a[1] == 33)
    floor = 1500 if FULL_REAL_SET else 300  # the full set beside the repository, or the shipped captures
    assert total > floor and by_dnslib > floor and srv > 10, (total, by_dnslib, srv)


def _built_response() -> bytes:
    q = dnslib.DNSRecord.question("_kerberos._tcp.corp.local", "SRV")
    r = q.reply()
    r.header.rcode = 0
    r.add_answer(dnslib.RR("_kerberos._tcp.corp.local", dnslib.QTYPE.SRV, ttl=600,
                           rdata=dnslib.SRV(0, 100, 88, "dc01.corp.local")))
    r.add_answer(dnslib.RR("mp.corp.local", dnslib.QTYPE.CNAME, rdata=dnslib.CNAME("mp01.corp.local")))
    r.add_answer(dnslib.RR("mp01.corp.local", dnslib.QTYPE.A, rdata=dnslib.A("10.0.0.7")))
    r.add_answer(dnslib.RR("mp01.corp.local", dnslib.QTYPE.AAAA, rdata=dnslib.AAAA("fd00::7")))
    r.add_answer(dnslib.RR("7.0.0.10.in-addr.arpa", dnslib.QTYPE.PTR, rdata=dnslib.PTR("mp01.corp.local")))
    r.add_answer(dnslib.RR("corp.local", dnslib.QTYPE.TXT, rdata=dnslib.TXT("v=1")))
    return r.pack()


def test_built_response() -> None:
    data = _built_response()
    m = decode_dns(data)
    assert (m.id, m.is_response, m.opcode, RCODE_NAMES[m.rcode]) == (dnslib.DNSRecord.parse(data).header.id, True,
                                                                      0, "NOERROR")
    assert [(n, QTYPE_NAMES[t]) for n, t in m.questions] == [("_kerberos._tcp.corp.local", "SRV")]
    assert m.answers == [
        ("_kerberos._tcp.corp.local", 33, "0 100 88 dc01.corp.local"),
        ("mp.corp.local", 5, "mp01.corp.local"),
        ("mp01.corp.local", 1, "10.0.0.7"),
        ("mp01.corp.local", 28, "fd00::7"),
        ("7.0.0.10.in-addr.arpa", 12, "mp01.corp.local"),
        ("corp.local", 16, b"\x03v=1".hex()),
    ]
    nx = dnslib.DNSRecord.question("nosuch.corp.local").reply()
    nx.header.rcode = 3
    assert RCODE_NAMES[decode_dns(nx.pack()).rcode] == "NXDOMAIN"


def test_tcp_framing() -> None:
    a = _built_response()
    b = dnslib.DNSRecord.question("dc01.corp.local", "A").pack()
    msgs = decode_dns_tcp(struct.pack("!H", len(a)) + a + struct.pack("!H", len(b)) + b)
    assert [len(m.answers) for m in msgs] == [6, 0] and msgs[1].questions == [("dc01.corp.local", 1)]
    with pytest.raises(DecodeError):
        decode_dns_tcp(struct.pack("!H", len(a)) + a[:-1])
    with pytest.raises(DecodeError):
        decode_dns_tcp(b"\x00")
    assert decode_dns_tcp(b"") == []


def test_truncated_at_every_length_raises() -> None:
    data = _built_response()
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode_dns(data[:n])


def test_compression_loops_and_bad_pointers() -> None:
    header = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    with pytest.raises(DecodeError):
        decode_dns(header + b"\xc0\x0c" + b"\x00\x01\x00\x01")  # points at itself
    with pytest.raises(DecodeError):
        decode_dns(header + b"\x01a\xc0\x0e\x01b\xc0\x0c" + b"\x00\x01\x00\x01")  # two names pointing at each other
    with pytest.raises(DecodeError):
        decode_dns(header + b"\xc0\xff" + b"\x00\x01\x00\x01")  # beyond the end
    with pytest.raises(DecodeError):
        decode_dns(header + b"\x41abc" + b"\x00\x01\x00\x01")  # reserved label type 01
    with pytest.raises(DecodeError):
        decode_dns(header + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63
                   + b"\x00\x00\x01\x00\x01")  # 256-byte name
    with pytest.raises(DecodeError):
        decode_dns(struct.pack("!HHHHHH", 1, 0x8180, 0, 60000, 0, 0) + b"\x00" * 40)  # counts beyond size


def test_random_input_only_raises_decode_error() -> None:
    rng = random.Random(3)
    base = _built_response()
    for trial in range(3000):
        if trial % 2:
            data = bytearray(base)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = rng.randbytes(rng.randint(0, 80))
        try:
            m = decode_dns(data)
        except DecodeError:
            continue
        assert len(m.questions) <= 65535 and all(isinstance(v, str) for _, _, v in m.answers)


def _walk_name(data: bytes, pos: int) -> str:
    """Reference reading of a name without any shortcut: labels and pointers followed one by one."""
    labels, jumps = [], 0
    while data[pos]:
        if data[pos] & 0xC0 == 0xC0:
            pos, jumps = (data[pos] & 0x3F) << 8 | data[pos + 1], jumps + 1
            continue
        labels.append(data[pos + 1:pos + 1 + data[pos]].decode())
        pos += 1 + data[pos]
    return ".".join(labels)


def test_names_read_once_per_message_keep_their_limits() -> None:
    """Answer names pointing back at an already-read name give the same text as a full walk, and the
    255-byte limit still counts the bytes of the name pointed at."""
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 2, 0, 0)
    qname = b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x00"  # 193 wire bytes
    question = qname + b"\x00\x01\x00\x01"
    rr_ptr = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01"
    prefixed = b"\x04host\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x0c"
    data = header + question + rr_ptr + prefixed
    m = decode_dns(data)
    at = len(header) + len(question) + len(rr_ptr)
    assert m.answers[0][0] == m.questions[0][0] == _walk_name(data, 12)
    assert m.answers[1] == (_walk_name(data, at), 5, m.questions[0][0])
    assert m.answers[1][0] == "host." + m.questions[0][0]
    # 63 more bytes in front of the 193-byte name pointed at: 257 > 255, refused as by a full walk.
    too_long = b"\x3f" + b"d" * 63 + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01"
    with pytest.raises(DecodeError, match="longer than 255"):
        decode_dns(struct.pack("!HHHHHH", 1, 0x8180, 1, 2, 0, 0) + question + rr_ptr + too_long)
