"""Capture readers against tshark: frame counts, frame numbers, time stamps, link types and damage."""

from __future__ import annotations

import gzip
import struct
import subprocess
import time
from pathlib import Path

import pytest

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.model import TcpConn
from kerbtrace.reassembly.network import NetworkLayer
from kerbtrace.sources import CaptureError, open_capture
from tests.conftest import needs_tshark, real_capture, real_capture_files

ALL_REAL = real_capture_files()

pytestmark = needs_tshark


def read_all(path: Path | str) -> tuple[list[tuple[int, float, int, bytes]], Diagnostics, object]:
    diag = Diagnostics()
    with open_capture(path, diag) as cap:
        frames = list(cap)
    return frames, diag, cap


def tshark_times(path: Path | str) -> list[tuple[int, float]]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_epoch"], capture_output=True, text=True).stdout
    return [(int(a), float(b)) for a, b in (line.split("\t") for line in out.splitlines() if line)]


def tshark_encaps(path: Path | str) -> list[int]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.interface_id"],
                         capture_output=True, text=True).stdout
    return [int(x or 0) for x in out.split()]


def write_pcap(path: Path, frames: list[tuple[float, bytes]], linktype: int, endian: str = "<") -> None:
    """A minimal libpcap writer (microsecond stamps), used to build captures tshark then checks."""
    with open(path, "wb") as f:
        f.write(struct.pack(endian + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for t, data in frames:
            sec = int(t)
            usec = round((t - sec) * 1e6)
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            f.write(struct.pack(endian + "IIII", sec, usec, len(data), len(data)) + data)


def assert_same_as_tshark(path: Path | str, frames: list) -> None:
    ref = tshark_times(path)
    assert len(frames) == len(ref)
    assert [f[0] for f in frames] == [n for n, _ in ref]
    worst = max((abs(f[1] - t) for f, (_, t) in zip(frames, ref, strict=True)), default=0.0)
    assert worst < 1e-6, f"time stamps differ from tshark by up to {worst} s"


# -- every real capture ------------------------------------------------------------------------------
def test_every_real_capture_has_tshark_frame_count() -> None:
    proc = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", *map(str, ALL_REAL)], capture_output=True,
                          text=True)
    expected = {Path(line.split("\t")[0]).name: int(line.split("\t")[1])
                for line in proc.stdout.splitlines() if line}
    assert len(expected) == len(ALL_REAL)
    cut_short = {p.name for p in ALL_REAL if f'"{p}" appears to have been cut short' in proc.stderr}
    warned = set()
    for path in ALL_REAL:
        frames, diag, cap = read_all(path)
        assert len(frames) == expected[path.name], path.name
        assert cap.packets == len(frames)
        assert [f[0] for f in frames] == list(range(1, len(frames) + 1))
        assert cap.position() == cap.size
        if diag.warnings:
            assert len(diag.warnings) == 1 and diag.warnings[0].frame == len(frames) + 1, path.name
            assert "cut short" in diag.warnings[0].message
            warned.add(path.name)
    assert warned == cut_short  # the same files tshark calls cut short, and no others


@pytest.mark.parametrize(("name", "fmt"), [("otrf__NEWYORK.cap", "pcap"), ("elc__aug19.pcap.gz", "pcapng.gz"),
                                           ("zeek__kerberos_tso.pcapng", "pcapng"), ("ndpi__webdav.pcap", "pcapng"),
                                           ("elc__remote_recon_toolie.pcapng", "pcapng"),
                                           ("elc__wmi_query.pcap.gz", "pcapng.gz")])
def test_timestamps_of_every_frame_match_tshark(name: str, fmt: str) -> None:
    frames, _diag, cap = read_all(real_capture(name))
    assert_same_as_tshark(real_capture(name), frames)
    assert cap.start == frames[0][1] and cap.end == frames[-1][1]
    assert cap.format == fmt


# -- formats made with editcap / mergecap / our own writer -------------------------------------------
@pytest.mark.parametrize("name", ["otrf__SCRANTON.cap", "zeek__kerberos_tso.pcapng", "elc__wmi_query.pcap.gz"])
def test_netmon2_copy_reads_like_the_original(tmp_path: Path, name: str) -> None:
    out = tmp_path / "copy.cap"
    subprocess.run(["editcap", "-F", "netmon2", str(real_capture(name)), str(out)], check=True)
    assert out.read_bytes()[:4] == b"GMBU"
    frames, diag, cap = read_all(out)
    original, _, _ = read_all(real_capture(name))
    assert cap.format == "netmon2" and diag.warnings == []
    assert [(f[0], f[2], f[3]) for f in frames] == [(f[0], f[2], f[3]) for f in original]
    assert_same_as_tshark(out, frames)


def write_netmon(path: Path, frames: list[tuple[float, int, bytes]], minor: int) -> None:
    """A minimal NetMon 2.x writer; `minor` 1..3 adds the per-frame trailers editcap never writes."""
    start_ms = int(frames[0][0] * 1000)
    tm = time.gmtime(start_ms // 1000)
    body = bytearray()
    table = []
    for t, media, data in frames:
        table.append(128 + len(body))
        body += struct.pack("<QII", round(t * 1e6) - start_ms * 1000, len(data), len(data)) + data
        if minor >= 1:
            body += struct.pack("<H", media)
        if minor >= 2:
            body += struct.pack("<I", 0)
        if minor >= 3:
            body += struct.pack("<QB", round(t * 1e7) + 116_444_736_000_000_000, 0)
    header = b"GMBU" + struct.pack("<BBH8H10I", minor, 2, 1, tm.tm_year, tm.tm_mon, (tm.tm_wday + 1) % 7, tm.tm_mday,
                                   tm.tm_hour, tm.tm_min, tm.tm_sec, start_ms % 1000, 128 + len(body),
                                   4 * len(table), 0, 0, 0, 0, 0, 0, 0, 0)
    path.write_bytes(header.ljust(128, b"\0") + bytes(body) + struct.pack(f"<{len(table)}I", *table))


@pytest.mark.parametrize("minor", [1, 2, 3])
def test_netmon_per_frame_media_types(tmp_path: Path, minor: int) -> None:
    eth = read_all(real_capture("suri__kerberoast.pcap"))[0]
    sll = [(n, t, 113, _sll(d)) for n, t, _, d in read_all(real_capture("zeek__auth.pcap"))[0]]
    mixed = sorted(eth + sll, key=lambda f: f[1])
    path = tmp_path / "mixed.cap"
    write_netmon(path, [(t, 1 if lt == 1 else 0xE000 | 113, d) for _, t, lt, d in mixed], minor)
    frames, diag, cap = read_all(path)
    assert cap.format == "netmon2" and diag.warnings == []
    assert_same_as_tshark(path, frames)
    assert [(lt, d) for _, _, lt, d in frames] == [(lt, d) for _, _, lt, d in mixed]
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.protocols"],
                         capture_output=True, text=True).stdout.split()
    assert [p.split(":")[0] for p in out] == ["eth" if lt == 1 else "sll" for _, _, lt, _ in frames]


def test_netmon2_gzip(tmp_path: Path) -> None:
    out = tmp_path / "copy.cap"
    subprocess.run(["editcap", "-F", "netmon2", str(real_capture("ndpi__kerberos.pcap")), str(out)], check=True)
    gz = tmp_path / "copy.cap.gz"
    gz.write_bytes(gzip.compress(out.read_bytes()))
    frames, diag, cap = read_all(gz)
    assert cap.format == "netmon2.gz" and diag.warnings == []
    assert_same_as_tshark(out, frames)


def test_nanosecond_pcap(tmp_path: Path) -> None:
    out = tmp_path / "ns.pcap"
    subprocess.run(["editcap", "-F", "nsecpcap", str(real_capture("zeek__kinit.pcap")), str(out)], check=True)
    frames, _diag, cap = read_all(out)
    assert cap.format == "pcap-nsec"
    assert_same_as_tshark(out, frames)


def test_big_endian_pcap(tmp_path: Path) -> None:
    original, _, _ = read_all(real_capture("elc__winrm_psremote_05-16.pcap"))
    out = tmp_path / "be.pcap"
    write_pcap(out, [(t, d) for _, t, _, d in original], 1, ">")
    assert out.read_bytes()[:4] == b"\xa1\xb2\xc3\xd4"
    frames, _diag, _cap = read_all(out)
    assert [f[3] for f in frames] == [f[3] for f in original]
    assert_same_as_tshark(out, frames)


@pytest.mark.parametrize(("name", "fmt"), [("zeek__kerberos_tso.pcapng", "pcapng.gz"),
                                           ("otrf__SCRANTON.cap", "pcap.gz")])
def test_gzip_copies(tmp_path: Path, name: str, fmt: str) -> None:
    gz = tmp_path / "copy.gz"
    gz.write_bytes(gzip.compress((real_capture(name)).read_bytes()))
    frames, _diag, cap = read_all(gz)
    plain, _, _ = read_all(real_capture(name))
    assert cap.format == fmt and frames == plain
    assert cap.position() == cap.size


def _sll(frame: bytes) -> bytes:
    """Re-wrap an Ethernet frame as Linux cooked capture (SLL): same IP packet, other link layer."""
    return struct.pack("!HHH8sH", 0, 1, 6, frame[6:12] + b"\0\0", frame[12] << 8 | frame[13]) + frame[14:]


class _Recorder:
    udp_ports = frozenset({88})

    def __init__(self) -> None:
        self.data: dict[tuple[str, bool], list[bytes]] = {}

    def wants_tcp(self, conn: TcpConn, payload: bytes, from_client: bool) -> bool:
        return True

    def on_tcp_data(self, conn: TcpConn, from_client: bool, data: bytes, frame: int, time: float) -> None:
        self.data.setdefault((conn.describe(), from_client), []).append(data)

    def on_tcp_gap(self, conn: TcpConn, from_client: bool, missing: int, frame: int) -> None:
        self.data.setdefault((conn.describe(), from_client), []).append(b"<gap>")

    def on_tcp_close(self, conn: TcpConn, frame: int | None, time: float | None) -> None:
        pass

    def on_udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes, frame: int, time: float) -> None:
        self.data.setdefault((f"{src}:{sport}>{dst}:{dport}", True), []).append(payload)


def _streams(frames: list, diag: Diagnostics | None = None) -> dict:
    sink = _Recorder()
    net = NetworkLayer(sink, diag or Diagnostics())
    for f in frames:
        net.feed(*f)
    net.flush()
    return {k: b"".join(v) for k, v in sink.data.items()}


def test_pcapng_with_two_link_types(tmp_path: Path) -> None:
    """mergecap puts an Ethernet capture and a Linux-cooked one in one pcapng, one interface each."""
    eth_src = real_capture("suri__kerberoast.pcap")
    eth, _, _ = read_all(eth_src)
    sll_file = tmp_path / "sll.pcap"
    sll_frames = read_all(real_capture("zeek__auth.pcap"))[0]
    write_pcap(sll_file, [(t, _sll(d)) for _, t, _, d in sll_frames], 113)
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), str(eth_src), str(sll_file)], check=True)
    frames, diag, _ = read_all(merged)
    assert_same_as_tshark(merged, frames)
    assert sorted({f[2] for f in frames}) == [1, 113]
    assert [1 if lt == 1 else 113 for _, _, lt, _ in frames] == [1 if i == 0 else 113 for i in tshark_encaps(merged)]
    # The cooked frames decode to the same transport data as the Ethernet originals.
    mixed = _streams(frames)
    assert mixed == {**_streams(eth), **_streams(sll_frames)}
    assert mixed and diag.warnings == []


def test_unknown_link_type_is_reported_and_the_rest_analysed(tmp_path: Path) -> None:
    other = tmp_path / "user0.pcap"
    subprocess.run(["editcap", "-T", "user0", str(real_capture("zeek__auth.pcap")), str(other)], check=True)
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), str(real_capture("suri__kerberoast.pcap")),
                    str(other)], check=True)
    frames, diag, _ = read_all(merged)
    assert_same_as_tshark(merged, frames)
    assert {f[2] for f in frames} == {1, 147}
    streams = _streams(frames, diag)
    assert streams == _streams(read_all(real_capture("suri__kerberoast.pcap"))[0])
    link_warnings = [w for w in diag.warnings if w.kind == "link"]
    assert len(link_warnings) == 1
    assert "link type 147 is not supported; its 2 frames were skipped" in link_warnings[0].message
    assert link_warnings[0].frame == min(f[0] for f in frames if f[2] == 147)


# -- damage ------------------------------------------------------------------------------------------
def _last_packet_record(raw: bytes) -> int:
    """Offset of the last packet record of a little-endian pcap or pcapng file."""
    if raw[:4] != b"\x0a\x0d\x0d\x0a":
        pos, last = 24, 24
        while pos < len(raw):
            last, pos = pos, pos + 16 + struct.unpack_from("<I", raw, pos + 8)[0]
        return last
    pos, last = 0, 0
    while pos < len(raw):
        btype, blen = struct.unpack_from("<II", raw, pos)
        last = pos if btype in (2, 3, 6) else last
        pos += blen
    return last


@pytest.mark.parametrize("name", ["ndpi__kerberos.pcap",
                                  "pcapattack__CA_kerbrute_passwordspray_kerberos_AS-REQ.pcapng"])
def test_truncated_file_gives_earlier_frames_and_a_warning(tmp_path: Path, name: str) -> None:
    original, _, _ = read_all(real_capture(name))
    raw = (real_capture(name)).read_bytes()
    cut = tmp_path / ("cut." + name.rsplit(".", 1)[1])
    cut.write_bytes(raw[:_last_packet_record(raw) + 20 + len(original[-1][3]) // 2])  # inside the last record
    frames, diag, cap = read_all(cut)
    assert frames == original[:-1]
    assert cap.packets == len(original) - 1
    assert len(diag.warnings) == 1 and diag.warnings[0].frame == len(original)
    assert f"frame {len(original)} is cut short" in diag.warnings[0].message
    gz = tmp_path / "cut.gz"
    gz.write_bytes(gzip.compress(cut.read_bytes())[:-40])  # a damaged gzip stream, too
    frames_gz, diag_gz, _ = read_all(gz)
    assert frames_gz == original[:len(frames_gz)] and len(diag_gz.warnings) == 1


def test_corrupt_block_length_stops_cleanly(tmp_path: Path) -> None:
    raw = bytearray((real_capture("ndpi__webdav.pcap")).read_bytes())  # a pcapng despite its name
    original, _, _ = read_all(real_capture("ndpi__webdav.pcap"))
    # Find the 10th packet block and give it an impossible length.
    pos, seen = 0, 0
    while True:
        btype, blen = struct.unpack_from("<II", raw, pos)
        if btype == 6:
            seen += 1
            if seen == 10:
                break
        pos += blen
    struct.pack_into("<I", raw, pos + 4, 7)
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(bytes(raw))
    frames, diag, _ = read_all(bad)
    assert frames == original[:9]
    assert len(diag.warnings) == 1 and diag.warnings[0].frame == 10 and "damaged" in diag.warnings[0].message


@pytest.mark.parametrize("content", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 4,
                                     b"\x1f\x8b\x08\x00garbage-not-deflate"])
def test_garbage_is_a_capture_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as err:
        open_capture(path, Diagnostics())
    assert str(path) in str(err.value)


def test_missing_file_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open"):
        open_capture(tmp_path / "nope.pcap", Diagnostics())

