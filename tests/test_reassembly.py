"""IP defragmentation, TCP reassembly and Kerberos TCP framing, checked against tshark and scapy."""

from __future__ import annotations

import random
import struct
import subprocess
from pathlib import Path

import pytest

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.model import TcpConn
from kerbtrace.reassembly.kerberos_framing import KerberosTcpFramer
from kerbtrace.reassembly.network import NetworkLayer
from kerbtrace.sources import open_capture
from tests.conftest import needs_tshark, real_capture

needs_real = needs_tshark  # each test also skips when its real capture is absent (real_capture)

Frame = tuple[int, float, int, bytes]


class Recorder:
    """A TransportSink that writes down everything, with Wireshark's marker where bytes are missing."""

    def __init__(self, udp_ports: frozenset[int] = frozenset({88}), want=lambda conn, payload: True) -> None:
        self.udp_ports = udp_ports
        self.want = want
        self.conns: dict[int, TcpConn] = {}
        self.data: dict[tuple[int, bool], list[bytes]] = {}
        self.events: list[tuple] = []
        self.udp: list[tuple] = []
        self.closed: list[int] = []

    def wants_tcp(self, conn: TcpConn, payload: bytes, from_client: bool) -> bool:
        self.events.append(("wants", conn.stream, from_client))
        if not self.want(conn, payload):
            return False
        self.conns[conn.stream] = conn
        return True

    def on_tcp_data(self, conn: TcpConn, from_client: bool, data: bytes, frame: int, time: float) -> None:
        assert conn.stream not in self.closed
        self.data.setdefault((conn.stream, from_client), []).append(data)
        self.events.append(("data", conn.stream, from_client, len(data), frame))

    def on_tcp_gap(self, conn: TcpConn, from_client: bool, missing: int, frame: int) -> None:
        if missing:
            self.data.setdefault((conn.stream, from_client), []).append(
                b"[%d bytes missing in capture file]\x00" % missing)
        self.events.append(("gap", conn.stream, from_client, missing, frame))

    def on_tcp_close(self, conn: TcpConn, frame: int | None, time: float | None) -> None:
        self.closed.append(conn.stream)

    def on_udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes, frame: int, time: float) -> None:
        self.udp.append((frame, src, sport, dst, dport, payload))

    def stream(self, n: int, from_client: bool) -> bytes:
        return b"".join(self.data.get((n, from_client), []))


def read(path: Path | str) -> list[Frame]:
    with open_capture(path, Diagnostics()) as cap:
        return list(cap)


def run(frames: list[Frame], sink: Recorder | None = None, **limits) -> tuple[Recorder, Diagnostics, NetworkLayer]:
    sink = sink or Recorder()
    diag = Diagnostics()
    net = NetworkLayer(sink, diag, **limits)
    for f in frames:
        net.feed(*f)
    net.flush()
    return sink, diag, net


def write_pcap(path: Path, frames: list[Frame], linktype: int = 1) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for _, t, _, data in frames:
            usec = round(t * 1e6)
            f.write(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(data), len(data)) + data)


def tshark_follow(path: Path | str, streams: list[int]) -> dict[int, tuple[str, bytes, bytes]]:
    """tshark -z follow,tcp,raw: (first node, bytes sent by it, bytes sent by the other) per stream."""
    cmd = ["tshark", "-n", "-r", str(path), "-q"]
    for n in streams:
        cmd += ["-z", f"follow,tcp,raw,{n}"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    res: dict[int, list] = {}
    cur = None
    for line in out.splitlines():
        if line.startswith("Filter: tcp.stream eq"):
            cur = int(line.split()[-1])
            res[cur] = ["", [], []]
        elif cur is None or not line or line.startswith(("=", "Follow")):
            continue
        elif line.startswith("Node 0: "):
            res[cur][0] = line[8:]
        elif line.startswith("Node 1: "):
            pass
        else:
            res[cur][2 if line.startswith("\t") else 1].append(bytes.fromhex(line.strip()))
    return {n: (node, b"".join(a), b"".join(b)) for n, (node, a, b) in res.items()}


def assert_streams_match_tshark(path: Path, sink: Recorder, streams: list[int]) -> None:
    ref = tshark_follow(path, streams)
    for n in streams:
        conn = sink.conns[n]
        node, first, second = ref[n]
        client_first = node in (f"{conn.client_ip}:{conn.client_port}", f"[{conn.client_ip}]:{conn.client_port}")
        to_server, to_client = (first, second) if client_first else (second, first)
        assert sink.stream(n, True) == to_server, f"stream {n} client->server"
        assert sink.stream(n, False) == to_client, f"stream {n} server->client"


# -- against tshark's Follow TCP Stream ----------------------------------------------------------------
@needs_real
@pytest.mark.parametrize(("name", "limit"), [
    ("elc__winrm_psremote_05-16.pcap", 99),   # WinRM / HTTP Negotiate, 12 streams
    ("otrf__NEWYORK.cap", 60),                # retransmissions, lost and snaplen-cut segments
    ("zeek__kerberos_tso.pcapng", 99),        # segmentation offload: segments larger than the MTU
    ("zeek__erspan.pcap", 99),                # GRE/ERSPAN tunnel, outer IP fragments, lost segments
    ("elc__aug_16_par4.pcap.gz", 140),        # stream 131: data after a RST
])
def test_streams_equal_tshark_follow(name: str, limit: int) -> None:
    sink, diag, net = run(read(real_capture(name)), idle_timeout=3600)
    streams = [n for n in sorted(sink.conns) if n < limit]  # numbers must be tshark's tcp.stream
    assert_streams_match_tshark(real_capture(name), sink, streams)
    assert sorted(sink.closed) == sorted(sink.conns)
    assert not [w for w in diag.warnings if w.kind != "packet"]


@needs_real
def test_ip_fragments_of_a_tunnel_are_reassembled() -> None:
    sink, _diag, net = run(read(real_capture("zeek__erspan.pcap")))
    out = subprocess.run(["tshark", "-n", "-r", str(real_capture("zeek__erspan.pcap")), "-Y", "ip.fragments",
                          "-T", "fields", "-e", "frame.number"], capture_output=True, text=True).stdout.split()
    assert net.stats["ip_reassembled"] == len(out) > 0 and net.stats["ip_incomplete"] == 0
    # Inner TCP data is delivered at frames that complete a datagram, as tshark shows it (the bytes
    # themselves are compared with tshark's Follow TCP Stream above).
    data_frames = {e[4] for e in sink.events if e[0] == "data"}
    assert len({int(x) for x in out} & data_frames) >= len(out) // 2


@needs_real
def test_truncated_segment_keeps_captured_bytes_then_a_gap() -> None:
    """Frame 43 of zeek__smb2_krb.pcap was captured 10014 of 12018 bytes."""
    sink, diag, _ = run(read(real_capture("zeek__smb2_krb.pcap")))
    gaps = [e for e in sink.events if e[0] == "gap"]
    assert [g[:4] for g in gaps] == [("gap", 0, False, 12018 - 10014)] and gaps[0][4] > 43
    assert [w.frame for w in diag.warnings] == [43]
    ref = tshark_follow(real_capture("zeek__smb2_krb.pcap"), [0])[0]
    marker = b"[2004 bytes missing in capture file]\x00"
    assert sink.stream(0, False).replace(marker, b"") == ref[2]  # tshark shows no marker there


# -- Kerberos over TCP and UDP -----------------------------------------------------------------------
def _tshark_krb_tcp(path: Path) -> list[tuple[int, bytes]]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "kerberos && tcp.port==88", "-T", "fields",
                          "-e", "frame.number", "-e", "tcp.reassembled.data", "-e", "tcp.payload"],
                         capture_output=True, text=True).stdout
    msgs = []
    for line in out.splitlines():
        frame, reassembled, payload = (line.split("\t") + ["", ""])[:3]
        data = bytes.fromhex((reassembled or payload).replace(":", ""))
        while len(data) >= 4:
            n = int.from_bytes(data[:4], "big")
            msgs.append((int(frame), data[4:4 + n]))
            data = data[4 + n:]
    return msgs


class KerberosRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__(want=lambda conn, payload: conn.server_port == 88)
        self.framers: dict[tuple[int, bool], KerberosTcpFramer] = {}
        self.messages: list[tuple[int, bytes]] = []

    def on_tcp_data(self, conn: TcpConn, from_client: bool, data: bytes, frame: int, time: float) -> None:
        framer = self.framers.setdefault((conn.stream, from_client), KerberosTcpFramer())
        self.messages += [(frame, m) for m in framer.feed(data)]


@needs_real
@pytest.mark.parametrize("name", ["suri__krb5-frag.pcap", "zeek__kerberos_tso.pcapng", "otrf__NEWYORK.cap",
                                  "pcapattack__CA_kerbrute_passwordspray_kerberos_AS-REQ.pcapng"])
def test_kerberos_tcp_messages_equal_tshark(name: str) -> None:
    sink = KerberosRecorder()
    run(read(real_capture(name)), sink)
    expected = _tshark_krb_tcp(real_capture(name))
    assert expected and sink.messages == expected
    assert all(f.error is None for f in sink.framers.values())


@needs_real
@pytest.mark.parametrize("name", ["zeek__kinit.pcap", "ndpi__kerberos-error.pcap",
                                  "pcapattack__CA_kerbrute_passwordspray_kerberos_AS-REQ.pcapng"])
def test_udp_only_on_wanted_ports_and_equal_tshark(name: str) -> None:
    sink, _, _ = run(read(real_capture(name)))
    out = subprocess.run(["tshark", "-n", "-r", str(real_capture(name)), "-Y", "udp.port==88 && !icmp", "-T", "fields",
                          "-e", "frame.number", "-e", "udp.payload"], capture_output=True, text=True).stdout
    expected = [(int(f), bytes.fromhex(p.replace(":", ""))) for f, p in (x.split("\t") for x in out.splitlines())]
    assert expected and [(u[0], u[5]) for u in sink.udp] == expected
    assert all(88 in (u[2], u[4]) for u in sink.udp)


@needs_real
def test_fragmented_udp_datagrams_like_tshark(tmp_path: Path) -> None:
    """Real Kerberos datagrams cut into IP fragments by scapy, sent out of order and overlapping."""
    pytest.importorskip("scapy.all")  # the test extra
    from scapy.all import IP, Ether, fragment  # a maintained library builds the fragments

    frames = read(real_capture("zeek__kinit.pcap"))
    sink, _, _ = run(frames)
    originals = sink.udp[:40]
    out: list[Frame] = []
    rng = random.Random(7)
    t = 1_600_000_000.0
    for i, (_frame, *_rest) in enumerate(originals):
        pkt = Ether(frames[_frame - 1][3])
        pkt[IP].id = 1000 + i
        frags = [Ether(src=pkt.src, dst=pkt.dst) / f for f in fragment(pkt[IP], fragsize=96)]
        if len(frags) > 2:
            rest = frags[1:]
            rng.shuffle(rest)
            frags = [frags[0], *rest, frags[1]]  # out of order, and the second fragment twice
        for f in frags:
            t += 0.001
            out.append((len(out) + 1, t, 1, bytes(f)))
    path = tmp_path / "frag.pcap"
    write_pcap(path, out)
    sink2, diag, net = run(read(path))
    assert [u[1:] for u in sink2.udp] == [u[1:] for u in originals]
    assert net.stats["ip_reassembled"] == len(originals) and not diag.warnings
    shark = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "udp.port==88", "-T", "fields",
                            "-e", "frame.number"], capture_output=True, text=True).stdout.split()
    assert [u[0] for u in sink2.udp] == [int(x) for x in shark]


# -- synthetic disorder made from real packets ---------------------------------------------------------
def _stream_frames(frames: list[Frame], port: int) -> list[Frame]:
    """The frames of the first TCP connection using `port` (Ethernet/IPv4 captures)."""
    out = []
    for f in frames:
        d = f[3]
        if d[12:14] == b"\x08\x00" and d[23] == 6:
            t = 14 + (d[14] & 15) * 4
            if port in struct.unpack_from("!HH", d, t):
                out.append(f)
    return out


def _renumber(frames: list[Frame]) -> list[Frame]:
    return [(i + 1, f[1], f[2], f[3]) for i, f in enumerate(frames)]


@needs_real
def test_shuffled_and_duplicated_segments_reassemble_to_the_same_bytes() -> None:
    frames = _stream_frames(read(real_capture("elc__winrm_psremote_05-16.pcap")), 49394)
    assert len(frames) > 100
    ref, _, _ = run(_renumber(frames))
    rng = random.Random(3)
    body = frames[3:]  # keep the handshake first so roles stay known
    shuffled = []
    for i in range(0, len(body), 8):  # disorder within windows of 8, as reordering on a path does
        window = body[i:i + 8]
        rng.shuffle(window)
        shuffled += window + [rng.choice(window)]  # and a duplicate in each window
    sink, diag, net = run(_renumber(frames[:3] + shuffled))
    assert sink.stream(0, True) == ref.stream(0, True) and sink.stream(0, False) == ref.stream(0, False)
    assert len(sink.stream(0, True)) > 10_000
    assert not [e for e in sink.events if e[0] == "gap"] and not diag.warnings
    assert net.stats["tcp_out_of_order_segments"] > 0 and net.stats["tcp_retransmitted_segments"] > 0


def _rewrite_seq(frame: Frame, client_port: int, shift_client: int, shift_server: int) -> Frame:
    d = bytearray(frame[3])
    t = 14 + (d[14] & 15) * 4
    sport, _dport, seq, ack = struct.unpack_from("!HHII", d, t)
    mine, theirs = (shift_client, shift_server) if sport == client_port else (shift_server, shift_client)
    struct.pack_into("!II", d, t + 4, (seq + mine) & 0xFFFFFFFF, (ack + theirs) & 0xFFFFFFFF if d[t + 13] & 0x10
                     else ack)
    return frame[0], frame[1], frame[2], bytes(d)


@needs_real
def test_sequence_numbers_wrapping_around() -> None:
    frames = _renumber(_stream_frames(read(real_capture("elc__winrm_psremote_05-16.pcap")), 49394))
    d = frames[0][3]
    t = 14 + (d[14] & 15) * 4
    isn_c = struct.unpack_from("!I", d, t + 4)[0]
    isn_s = struct.unpack_from("!I", frames[1][3], t + 4)[0]
    # Move both initial sequence numbers to 3000 bytes before the wrap.
    moved = [_rewrite_seq(f, 49394, (2**32 - 3000 - isn_c) % 2**32, (2**32 - 3000 - isn_s) % 2**32) for f in frames]
    ref, _, _ = run(frames)
    sink, diag, _ = run(moved)
    assert sink.stream(0, True) == ref.stream(0, True) and len(ref.stream(0, True)) > 3000
    assert sink.stream(0, False) == ref.stream(0, False) and not diag.warnings


@needs_real
def test_capture_starting_mid_stream_gives_a_gap_then_data() -> None:
    frames = _stream_frames(read(real_capture("elc__winrm_psremote_05-16.pcap")), 49394)
    full, _, _ = run(_renumber(frames))
    late = _renumber(frames[20:])
    sink, _, _ = run(late)
    conn = sink.conns[0]
    assert (conn.client_port, conn.server_port, conn.saw_syn) == (49394, 5985, False)
    first_per_side = {}
    for e in sink.events:
        if e[0] in ("gap", "data"):
            first_per_side.setdefault(e[2], e)
    assert all(e[0] == "gap" and e[3] == 0 for e in first_per_side.values())
    for side in (True, False):
        got = sink.stream(0, side)
        assert got and full.stream(0, side).endswith(got)


@needs_real
def test_lost_segment_is_a_gap_when_the_peer_acknowledged_past_it() -> None:
    frames = _stream_frames(read(real_capture("elc__winrm_psremote_05-16.pcap")), 49394)
    full, _, _ = run(_renumber(frames))
    # Drop one full-size client segment in the middle.
    victim = next(i for i, f in enumerate(frames) if i > 20 and struct.unpack_from("!H", f[3], 34)[0] == 49394
                  and len(f[3]) > 1000)
    lost = len(frames[victim][3]) - 54
    sink, _, _ = run(_renumber(frames[:victim] + frames[victim + 1:]))
    gaps = [e for e in sink.events if e[0] == "gap"]
    assert [(g[2], g[3]) for g in gaps] == [(True, lost)]
    marker = b"[%d bytes missing in capture file]\x00" % lost
    got = sink.stream(0, True)
    before, after = got.split(marker)
    whole = full.stream(0, True)
    assert whole.startswith(before) and whole.endswith(after) and len(before) + lost + len(after) == len(whole)
    assert sink.stream(0, False) == full.stream(0, False)


@needs_real
def test_unwanted_connections_are_dropped_cheaply_and_numbered() -> None:
    frames = read(real_capture("otrf__NEWYORK.cap"))
    all_sink, _, _ = run(frames, idle_timeout=3600)
    http = Recorder(want=lambda conn, payload: conn.server_port == 5985)
    sink, _, net = run(frames, http, idle_timeout=3600)
    wanted = [n for n, c in all_sink.conns.items() if c.server_port == 5985]
    assert sorted(sink.conns) == wanted and wanted
    for n in wanted:  # same stream numbers and bytes as when everything is wanted
        assert sink.stream(n, True) == all_sink.stream(n, True)
    assert net.stats["tcp_ignored_connections"] == len([e for e in sink.events if e[0] == "wants"]) - len(wanted)
    assert not {e[1] for e in sink.events if e[0] == "data"} - set(wanted)


@needs_real
def test_state_stays_bounded() -> None:
    frames = read(real_capture("otrf__NEWYORK.cap"))
    sink, _, net = run(frames, max_tcp_conns=8)
    assert len(net._tcp.conns) <= 2 * 8
    assert net.stats["tcp_evicted_connections"] > 0
    assert len(set(sink.closed)) == len(sink.conns)  # every evicted connection was finalised


def _rewrap(frame: Frame, linktype: int, vlan: int = 0) -> Frame:
    n, t, _, d = frame
    ip = d[14:]
    et = d[12:14]
    if linktype == 1:
        tags = b"".join(struct.pack("!HH", 0x88A8 if i < vlan - 1 else 0x8100, 100 + i) for i in range(vlan))
        return n, t, 1, d[:12] + tags + et + ip
    if linktype == 113:
        return n, t, 113, struct.pack("!HHH8s", 0, 1, 6, d[6:12] + b"\0\0") + et + ip
    if linktype == 276:
        return n, t, 276, et + struct.pack("!HIHBB8s", 0, 2, 1, 0, 6, d[6:12] + b"\0\0") + ip
    if linktype == 0:
        return n, t, 0, struct.pack(">I", 2) + ip  # BSD loopback written on a big-endian host
    if linktype == 108:
        return n, t, 108, struct.pack(">I", 2) + ip
    return n, t, linktype, ip  # raw IP and IPv4 link types


@needs_real
@pytest.mark.parametrize(("linktype", "vlan"), [(1, 1), (1, 2), (113, 0), (276, 0), (101, 0), (12, 0),
                                                (228, 0), (0, 0), (108, 0)])
def test_link_types_decode_like_ethernet(tmp_path: Path, linktype: int, vlan: int) -> None:
    frames = read(real_capture("suri__krb5-frag.pcap")) + read(real_capture("zeek__auth.pcap"))
    frames = _renumber(sorted(frames, key=lambda f: f[1]))
    ref, _, _ = run(frames)
    sink, diag, _ = run([_rewrap(f, linktype, vlan) for f in frames])
    assert sink.data == ref.data and sink.udp == ref.udp and ref.udp and ref.data
    assert not diag.warnings
    path = tmp_path / "rewrapped.pcap"
    write_pcap(path, [_rewrap(f, linktype, vlan) for f in frames], linktype)
    ours = run(read(path))[0]
    assert [(u[0], u[5]) for u in ours.udp] == [(u[0], u[5]) for u in ref.udp]


def test_malformed_packets_are_reported_not_raised() -> None:
    eth = b"\0" * 12 + b"\x08\x00"
    bad = [
        (1, 1.0, 1, eth + b"\x45\x00\x00"),                                   # IPv4 header cut short
        (2, 1.0, 1, eth + b"\x4f" + b"\0" * 19),                               # header length past the data
        (3, 1.0, 1, eth + bytes.fromhex("450000280001000040060000") + b"\1\2\3\4\5\6\7\x08" + b"\0\x50\0"),
        (4, 1.0, 1, b"\x86\xdd"),                                               # runt
        (5, 1.0, 229, b"\x60\0\0"),                                             # IPv6 cut short
        (6, 1.0, 1, eth + bytes.fromhex("4500001c0001000040110000") + b"\1\2\3\4\5\6\7\x08" + b"\0\x58\0\x58"),
    ]
    sink, diag, net = run(bad)
    assert {w.frame for w in diag.warnings} == {1, 2, 3, 5, 6}
    assert all(w.kind == "packet" for w in diag.warnings)
    assert not sink.udp and not sink.events


# -- Kerberos TCP framing ------------------------------------------------------------------------------
def _framed(*messages: bytes) -> bytes:
    return b"".join(len(m).to_bytes(4, "big") + m for m in messages)


def test_framer_splits_several_messages_and_joins_one_over_many_segments() -> None:
    a, b, c = b"\x6a\x03abc", b"\x6c" + bytes(range(200)), b"\x7e" * 3000
    framer = KerberosTcpFramer()
    assert framer.feed(_framed(a, b)) == [a, b]
    stream = _framed(c, a)
    got = []
    for i in range(0, len(stream), 7):  # one message over hundreds of tiny segments
        got += framer.feed(stream[i:i + 7])
        if i + 7 < len(stream) - 4 - len(a):
            assert got == []
    assert got == [c, a] and framer.buffered == 0 and framer.error is None


def test_framer_rejects_what_is_not_kerberos() -> None:
    framer = KerberosTcpFramer()
    assert framer.feed(b"GET / HTTP/1.1\r\n") == [] and "exceeds" in (framer.error or "")
    framer = KerberosTcpFramer()
    assert framer.feed(b"\x80\0\0\x10" + b"x" * 16) == [] and "high bit" in (framer.error or "")
    assert framer.feed(_framed(b"ok")) == []  # stays stopped
    small = KerberosTcpFramer(max_message=100)
    assert small.feed(_framed(b"y" * 50)) == [b"y" * 50]
    assert small.feed(_framed(b"z" * 101)) == [] and small.error and small.buffered == 0
