"""The libpcap prefilter changes nothing but speed: every shipped capture gives the same JSON document with
and without it, HTTP on an unusual port still reaches the analysis, and progress ticks and the connection
table's housekeeping fall on the same frames over a capture long enough to tick."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kerbtrace.analysis import analyze
from kerbtrace.diagnostics import Diagnostics
from kerbtrace.pipeline import Pipeline
from kerbtrace.reports.json_report import to_json
from kerbtrace.sources import open_capture, prefilter
from tests.conftest import CAPTURES, REPO, real_capture_files, timeless

sys.path.insert(0, str(REPO / "benchmarks"))
import make_capture  # noqa: E402

pytestmark = pytest.mark.skipif(not prefilter.available(), reason="pcapy-ng or numpy is not installed")


@pytest.fixture(autouse=True)
def _prefilter_on(monkeypatch):
    """The prefilter reads only large files by default: on for every file in these tests, whatever the
    environment."""
    monkeypatch.setattr(prefilter, "ENABLED", True)


def _document(path: Path, monkeypatch, enabled: bool) -> dict:
    monkeypatch.setattr(prefilter, "ENABLED", enabled)
    return timeless(json.loads(json.dumps(to_json(analyze([str(path)], progress=False)))))


def _fast(path: Path) -> bool:
    """Whether the prefilter reads this file (else the pure-Python reader does, and nothing is compared)."""
    with open_capture(path, Diagnostics()) as cap:
        return prefilter.records(cap, Pipeline.udp_ports) is not None


LAB = sorted(CAPTURES.glob("*.pcapng"))
TLS = sorted((CAPTURES / "tls").glob("*.pcapng")) + sorted((CAPTURES / "tls" / "sessions").glob("*.pcapng"))
SHIPPED = LAB + real_capture_files()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_same_document_with_and_without_prefilter(path, monkeypatch):
    assert _document(path, monkeypatch, True) == _document(path, monkeypatch, False)


@pytest.mark.parametrize("path", LAB, ids=lambda p: p.name)
def test_same_document_on_lab_captures_in_microseconds(path, tmp_path, monkeypatch):
    """The lab's pcapng files have nanosecond clocks, which libpcap would round: the pure-Python reader
    reads them. The same packets in a classic (microsecond) pcap go through the prefilter."""
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (Wireshark's tools) is not installed")
    out = tmp_path / (path.stem + ".pcap")
    subprocess.run([editcap, "-F", "pcap", str(path), str(out)], check=True)
    assert _fast(out) and not _fast(path)
    assert _document(out, monkeypatch, True) == _document(out, monkeypatch, False)


def test_prefilter_reads_the_usual_formats():
    fast = [p for p in SHIPPED if _fast(p)]
    assert len([p for p in fast if p.suffix == ".pcap"]) >= 10  # the classic pcaps among the real ones
    assert not any(p.read_bytes()[:4] == b"GMBU" for p in fast)  # NetMon: the pure-Python reader


def _handed(path: Path, monkeypatch) -> tuple[int, int]:
    """(records handed to the analysis with their data, packets in the file) in a run with the prefilter."""
    counted = [0]
    records = prefilter.records
    monkeypatch.setattr(prefilter, "ENABLED", True)

    def counting(*args, **kwargs):
        frames = records(*args, **kwargs)
        assert frames is not None
        for record in frames:
            counted[0] += bool(record[3])
            yield record

    monkeypatch.setattr(prefilter, "records", counting)
    packets = analyze([str(path)], progress=False).inputs[0].packets
    monkeypatch.setattr(prefilter, "records", records)
    return counted[0], packets


def test_http_on_an_unusual_port_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(make_capture, "MP_PORT", 8123)  # the WinRM exchange moves to a port nobody expects
    out = tmp_path / "odd-port.pcap"
    make_capture.generate(out, 8, 20, templates=[])
    kept, packets = _handed(out, monkeypatch)
    assert kept < packets / 2  # the background was skipped
    fast, slow = _document(out, monkeypatch, True), _document(out, monkeypatch, False)
    assert fast == slow
    # Kerberos read from the Negotiate headers on port 8123 is listed (the TCP exchanges on port 88 too)
    assert any(r["transport"] == "http" for r in fast["kerberos"]), {r["transport"] for r in fast["kerberos"]}


def test_same_document_over_progress_ticks_and_idle_sweeps(tmp_path, monkeypatch):
    out = tmp_path / "long.pcap"
    # 150 k packets (two progress ticks) over 40 minutes: idle connections are swept several times
    s = make_capture.generate(out, 48, 300, duration=2400.0)
    assert s["packets"] > 2 * (1 << 16)
    fast, slow = _document(out, monkeypatch, True), _document(out, monkeypatch, False)
    assert fast["clients"] and fast == slow


@pytest.mark.parametrize("cut", [5, 37, 5000])
def test_damaged_file_read_by_python_from_the_damage_with_its_warning(cut, tmp_path, monkeypatch):
    """A file cut short: libpcap reads up to the damage, the pure-Python reader the rest, naming the frame."""
    src = next(p for p in real_capture_files() if p.suffix == ".pcap" and p.stat().st_size > 20000)
    out = tmp_path / "cut.pcap"
    out.write_bytes(src.read_bytes()[:-cut])
    assert _fast(out)
    doc = _document(out, monkeypatch, True)
    assert doc == _document(out, monkeypatch, False)
    assert any("cut short" in w["message"] for w in doc["warnings"]), doc["warnings"]
    assert doc["inputs"][0]["packets"] > 0


def test_damage_in_the_middle_of_a_long_capture(tmp_path, monkeypatch):
    """A record header claiming an impossible length after several batches: what libpcap read is kept, the
    pure-Python reader goes on from there and stops where it stops without the prefilter."""
    out = tmp_path / "long.pcap"
    make_capture.generate(out, 12, 20, templates=[])
    raw = bytearray(out.read_bytes())
    pos, frame = 24, 0
    while frame < 30_000:  # past the first batches
        pos += 16 + int.from_bytes(raw[pos + 8:pos + 12], "little")
        frame += 1
    raw[pos + 8:pos + 12] = (1 << 23).to_bytes(4, "little")  # over libpcap's and kerbtrace's limits
    out.write_bytes(bytes(raw))
    doc = _document(out, monkeypatch, True)
    assert doc == _document(out, monkeypatch, False)
    assert doc["inputs"][0]["packets"] == 30_000, doc["inputs"]
    assert any("damaged" in w["message"] for w in doc["warnings"]), doc["warnings"]


def test_progress_follows_the_file(tmp_path):
    """The progress bar reads `Capture.position()`: with libpcap reading, it still advances batch by batch
    and ends at the file's size (a pcap file: 24 header bytes, 16 per record and the records)."""
    out = tmp_path / "progress.pcap"
    make_capture.generate(out, 6, 20, templates=[])
    seen = []
    with open_capture(out, Diagnostics()) as cap:
        frames = prefilter.records(cap, Pipeline.udp_ports)
        assert frames is not None
        for frame, *_ in frames:
            if frame % 2000 == 0:
                seen.append(cap.position())
        end = cap.position()
    assert end == out.stat().st_size
    assert seen == sorted(seen) and 0 < seen[0] < seen[-1] < end, seen


def test_default_reads_large_files_only(tmp_path, monkeypatch):
    """Unset, KERBTRACE_PREFILTER leaves small files to the pure-Python reader (the prefilter would not win
    back what importing numpy costs) and reads files of MIN_BYTES and more; 0 and 1 decide for every file."""
    path = next(p for p in real_capture_files() if p.suffix == ".pcap")
    monkeypatch.setattr(prefilter, "ENABLED", None)
    assert not _fast(path)
    monkeypatch.setattr(prefilter, "MIN_BYTES", path.stat().st_size)
    assert _fast(path)
    show = "from kerbtrace.sources import prefilter; print(prefilter.ENABLED)"
    for value, expected in (("0", False), ("1", True), ("", None)):
        env = {**os.environ, "KERBTRACE_PREFILTER": value}
        out = subprocess.run([sys.executable, "-c", show], cwd=REPO, env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        assert out == str(expected)


def _tls_handshakes(path: Path, monkeypatch, enabled: bool) -> list[tuple]:
    """What the pipeline read of each TLS connection (stream, versions, SNI, certificate facts, frames)."""
    from kerbtrace import pipeline

    seen: list[tuple] = []
    original = pipeline.Pipeline._tls_event

    def recording(self, conn, app):
        info = app.reader.info
        seen.append((conn.stream, info.version, info.sni, info.client_certificate, info.certificate_requested,
                     info.alert, info.client_hello_frame, info.server_hello_frame))
        original(self, conn, app)

    monkeypatch.setattr(pipeline.Pipeline, "_tls_event", recording)
    monkeypatch.setattr(prefilter, "ENABLED", enabled)
    analyze([str(path)], progress=False)
    monkeypatch.setattr(pipeline.Pipeline, "_tls_event", original)
    return seen


@pytest.mark.parametrize("path", TLS, ids=lambda p: p.name)
def test_same_tls_handshakes_with_and_without_prefilter(path, tmp_path, monkeypatch):
    """The lab's real TLS handshakes (TLS 1.2 and 1.3, client certificates, a HelloRetryRequest, failures, a
    resumed session, long application-data phases), in microsecond pcap: the same handshakes are read and the
    same document comes out; after a handshake the connection's packets are skipped."""
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (Wireshark's tools) is not installed")
    out = tmp_path / (path.stem + ".pcap")
    subprocess.run([editcap, "-F", "pcap", str(path), str(out)], check=True)
    fast = _tls_handshakes(out, monkeypatch, True)
    assert fast and fast == _tls_handshakes(out, monkeypatch, False)
    assert _document(out, monkeypatch, True) == _document(out, monkeypatch, False)
    if "long_data" in path.name:
        kept, packets = _handed(out, monkeypatch)
        assert kept < packets / 4, (kept, packets)  # the application data after the handshake was skipped
    if "resumed" in path.name:
        assert [h[1] for h in fast] == ["TLS 1.2", "TLS 1.2"], fast  # the full handshake and the abbreviated one
    tshark = shutil.which("tshark")
    if tshark is not None:  # each connection's ClientHello and ServerHello frames as tshark reads them
        rows = subprocess.run([tshark, "-n", "-r", str(out), "-Y", "tls.handshake.type == 1 || tls.handshake.type == 2",
                               "-T", "fields", "-e", "tcp.stream", "-e", "frame.number", "-e", "tls.handshake.type"],
                              capture_output=True, text=True, check=True).stdout.split("\n")
        hellos: dict[int, list[int | None]] = {}
        for row in filter(None, rows):
            stream, frame, types = row.split("\t")
            first = hellos.setdefault(int(stream), [None, None])
            for kind in types.split(","):
                if kind in ("1", "2") and first[int(kind) - 1] is None:
                    first[int(kind) - 1] = int(frame)
        if "hello_retry" in path.name:  # tshark's first ServerHello is the HelloRetryRequest
            hellos = {stream: [client, None] for stream, (client, _server) in hellos.items()}
            fast = [(*h[:7], None) for h in fast]
        assert {h[0]: [h[6], h[7]] for h in fast} == hellos
