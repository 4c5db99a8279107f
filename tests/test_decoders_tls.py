"""TLS handshake decoding, compared with tshark on real OpenSSL handshakes (captures/tls, made by
lab/tls_capture.py), plus the pipeline's one-event-per-connection contract and hostile input.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from kerbtrace.decoders import DecodeError
from kerbtrace.decoders.tls import MAX_HANDSHAKE_BYTES, TlsHandshakeReader, looks_like_client_hello
from kerbtrace.events import HttpEvent, TlsEvent
from kerbtrace.exchanges.correlator import Correlator
from tests.conftest import CAPTURES, real_capture_files
from tests.loopback import pipeline_events, recording

TLS_CAPTURES = sorted((CAPTURES / "tls").glob("*.pcapng"))
HOSTILE_SERVER = "127.0.5.90"


@functools.lru_cache(maxsize=64)
def _pdml(path: str) -> tuple[tuple[int, str, str, tuple[tuple[str, str, str], ...]], ...]:
    """(frame, src ip, tcp stream, ((field, show, showname), ...)) of every TLS frame, from tshark."""
    out = subprocess.run(["tshark", "-n", "-r", path, "-Y", "tls", "-T", "pdml"], capture_output=True, text=True,
                         check=True).stdout
    frames = []
    for packet in ElementTree.fromstring(out).iter("packet"):
        fields = {"frame": "", "src": "", "stream": ""}
        tls: list[tuple[str, str, str]] = []
        for f in packet.iter("field"):
            name = f.get("name", "")
            if name == "frame.number":
                fields["frame"] = f.get("show", "")
            elif name == "ip.src":
                fields["src"] = f.get("show", "")
            elif name == "tcp.stream":
                fields["stream"] = f.get("show", "")
            elif name.startswith("tls."):
                tls.append((name, f.get("show", ""), f.get("showname", "")))
        frames.append((int(fields["frame"]), fields["src"], fields["stream"], tuple(tls)))
    return tuple(frames)


def _label(showname: str) -> str:
    """'Supported Version: TLS 1.3 (0x0304)' -> 'TLS 1.3'; 'Description: Handshake Failure (40)' -> same."""
    return showname.split(": ", 1)[1].rsplit(" (", 1)[0]


def _reference(path: Path, stream: str = "0") -> dict:
    """What tshark shows of one connection's handshake, in TlsEvent terms."""
    ref: dict = {"frame": None, "sni": None, "version": None, "server_frame": None, "certificate_requested": None,
                 "client_certificate": None, "alert": None, "alert_frame": None, "offered": []}
    client_ip = None
    for frame, src, s, fields in _pdml(str(path)):
        if s != stream:
            continue
        types = [show for name, show, _ in fields if name == "tls.handshake.type"]
        if "1" in types and ref["frame"] is None:
            ref["frame"], client_ip = frame, src
            ref["sni"] = next((show for name, show, _ in fields
                               if name == "tls.handshake.extensions_server_name"), None)
            offered = [_label(sn) for name, _, sn in fields if name == "tls.handshake.extensions.supported_version"]
            ref["offered"] = offered or [_label(sn) for name, _, sn in fields if name == "tls.handshake.version"][:1]
        if "2" in types and src != client_ip:
            ref["server_frame"] = frame
            chosen = [_label(sn) for name, _, sn in fields if name == "tls.handshake.extensions.supported_version"]
            ref["version"] = (chosen or [_label(sn) for name, _, sn in fields if name == "tls.handshake.version"])[0]
        if src != client_ip and ref["version"] != "TLS 1.3":
            if "13" in types:
                ref["certificate_requested"] = True
            elif "14" in types and ref["certificate_requested"] is None:
                ref["certificate_requested"] = False
        if src == client_ip and ref["version"] != "TLS 1.3":
            if "11" in types:
                length = next(show for name, show, _ in fields if name == "tls.handshake.certificates_length")
                ref["client_certificate"] = int(length) > 0
            elif "16" in types and ref["client_certificate"] is None:
                ref["client_certificate"] = False
        alerts = [_label(sn) for name, _, sn in fields if name == "tls.alert_message.desc"]
        if alerts and ref["alert"] is None:
            ref["alert"], ref["alert_frame"] = alerts[0].lower().replace(" ", "_"), frame
    return ref


def test_the_lab_captures_are_there():
    names = {p.stem for p in TLS_CAPTURES}
    assert {"tls12_client_cert", "tls12_empty_client_cert", "tls12_no_sni", "tls13_sni", "tls12_handshake_failure",
            "tls12_client_cert_required", "tls12_port_10443", "tls13_hello_retry"} <= names


@pytest.mark.parametrize("path", TLS_CAPTURES, ids=lambda p: p.stem)
def test_handshake_matches_tshark(path, tshark):
    events, diag, stats = pipeline_events(path)
    tls = [e for e in events if isinstance(e, TlsEvent)]
    assert len(tls) == 1, tls
    ev = tls[0]
    ref = _reference(path)
    assert ref["frame"] is not None
    got = {"frame": ev.frame, "sni": ev.sni, "version": ev.version, "server_frame": ev.server_frame,
           "certificate_requested": ev.certificate_requested, "client_certificate": ev.client_certificate,
           "alert": ev.alert, "alert_frame": ev.alert_frame, "offered": ev.offered_versions}
    assert got == ref
    assert not diag.warnings, diag.warnings
    # the request inside TLS is never taken for HTTP, and the reassembler let the connection go
    assert not [e for e in events if isinstance(e, HttpEvent)]
    assert stats.get("tcp_detached_connections") == 1


#: Public captures of real Windows traffic holding TLS handshakes (42 of them, TLS 1.0 and 1.2, with SNI).
REAL_TLS = [p for p in real_capture_files()
            if p.name in ("elc__aug_16_par4.pcap.gz", "elc__aug19.pcap.gz", "elc__windows_miscellany.pcap.gz")]


@pytest.mark.parametrize("path", REAL_TLS, ids=lambda p: p.name)
def test_real_windows_handshakes_match_tshark(path, tshark):
    events, diag, _ = pipeline_events(path)
    tls = [e for e in events if isinstance(e, TlsEvent)]
    hello_streams = {s for _, _, s, fields in _pdml(str(path))
                     if ("tls.handshake.type", "1") in {(n, v) for n, v, _ in fields}}
    assert tls and {str(e.stream) for e in tls} == hello_streams
    for ev in tls:
        ref = _reference(path, str(ev.stream))
        got = {"frame": ev.frame, "sni": ev.sni, "version": ev.version, "server_frame": ev.server_frame,
               "certificate_requested": ev.certificate_requested, "client_certificate": ev.client_certificate,
               "alert": ev.alert, "alert_frame": ev.alert_frame, "offered": ev.offered_versions}
        assert got == ref, ev.stream
    assert not [w for w in diag.warnings if w.kind == "tls"]


def test_facts_each_case_was_built_for():
    """The lab's intent, independently of tshark: a guard against both readings going wrong together."""
    by_name = {p.stem: [e for e in pipeline_events(p)[0] if isinstance(e, TlsEvent)][0] for p in TLS_CAPTURES}
    assert by_name["tls12_client_cert"].client_certificate is True
    assert by_name["tls12_client_cert"].certificate_requested is True
    assert by_name["tls12_empty_client_cert"].client_certificate is False
    assert by_name["tls12_empty_client_cert"].certificate_requested is True
    assert by_name["tls12_no_sni"].sni is None and by_name["tls12_no_sni"].certificate_requested is False
    assert by_name["tls13_sni"].version == "TLS 1.3" and by_name["tls13_sni"].sni == "mp01.corp.lab"
    assert by_name["tls13_sni"].client_certificate is None  # encrypted in TLS 1.3
    assert by_name["tls12_handshake_failure"].alert == "handshake_failure"
    assert by_name["tls12_handshake_failure"].alert_from_client is False
    assert by_name["tls12_handshake_failure"].version is None
    assert by_name["tls12_client_cert_required"].alert == "handshake_failure"
    assert by_name["tls12_client_cert_required"].client_certificate is False
    assert by_name["tls12_port_10443"].server_port == 10443


def test_one_event_per_connection_in_a_merged_capture(tmp_path, tshark):
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), *map(str, TLS_CAPTURES)], check=True)
    events, diag, stats = pipeline_events(merged)
    tls = [e for e in events if isinstance(e, TlsEvent)]
    assert len(tls) == len(TLS_CAPTURES) == stats["tcp_connections"]
    assert len({e.stream for e in tls}) == len(tls)
    for ev in tls:
        ref = _reference(merged, str(ev.stream))
        assert (ev.frame, ev.server_frame, ev.alert_frame, ev.sni, ev.version) == \
            (ref["frame"], ref["server_frame"], ref["alert_frame"], ref["sni"], ref["version"])
    assert not diag.warnings


def test_capture_started_mid_connection(tmp_path, tshark):
    """Without the SYN and the ClientHello, a connection to 443 is still reported as TLS, as such."""
    src = CAPTURES / "tls" / "tls12_client_cert.pcapng"
    cut = tmp_path / "midstream.pcapng"
    subprocess.run(["editcap", "-r", str(src), str(cut), "6-100"], check=True)
    events, diag, stats = pipeline_events(cut)
    tls = [e for e in events if isinstance(e, TlsEvent)]
    assert len(tls) == 1 and tls[0].midstream
    first_data = subprocess.run(["tshark", "-n", "-r", str(cut), "-Y", "tcp.len > 0", "-T", "fields", "-e",
                                 "frame.number"], capture_output=True, text=True, check=True).stdout.split()[0]
    assert tls[0].frame == int(first_data)
    assert tls[0].version is None and tls[0].sni is None
    assert stats.get("tcp_detached_connections") == 1


def test_tls_to_an_unknown_host_is_no_client_and_to_a_known_mp_is_an_encrypted_leg():
    events, _, _ = pipeline_events(CAPTURES / "tls" / "tls12_client_cert.pcapng")
    (sni,) = {e.sni for e in events if isinstance(e, TlsEvent)}
    assert sni
    unknown = Correlator()
    for ev in events:
        unknown.feed(ev)
    assert unknown.finish() == []  # HTTPS to a host nobody named as an MP is not a registration
    known = Correlator(mp_names=(sni,))
    for ev in events:
        known.feed(ev)
    (client,) = known.finish()
    assert client.view["mp_http"] == "tls"


# ------------------------------------------------------------------------------------------ reader


def _flights(path: Path) -> list[tuple[bool, bytes, int]]:
    """(from client, TCP payload, frame) of every data segment, in capture order (tshark's reading)."""
    rows = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp.len > 0", "-T", "fields", "-e", "frame.number",
                           "-e", "tcp.dstport", "-e", "tcp.payload"], capture_output=True, text=True,
                          check=True).stdout.split("\n")
    out = []
    for row in filter(None, rows):
        frame, dport, payload = row.split("\t")
        out.append((dport in ("443", "10443"), bytes.fromhex(payload), int(frame)))
    return out


@pytest.mark.parametrize("name", ["tls12_client_cert", "tls13_no_sni_client_cert", "tls12_client_cert_required"])
def test_reader_is_indifferent_to_segment_boundaries(name, tshark):
    flights = _flights(CAPTURES / "tls" / f"{name}.pcapng")
    whole = TlsHandshakeReader()
    for from_client, payload, frame in flights:
        whole.feed(from_client, payload, frame, 0.0)
    split = TlsHandshakeReader()
    for from_client, payload, frame in flights:
        for i in range(0, len(payload), 7):
            split.feed(from_client, payload[i:i + 7], frame, 0.0)
    assert whole.info.client_hello_frame is not None
    assert split.info == whole.info
    assert whole.done and split.done


def test_reader_bounds_what_it_buffers():
    reader = TlsHandshakeReader()
    hello = _flights(CAPTURES / "tls" / "tls12_no_sni.pcapng")[0][1]
    reader.feed(True, hello, 1, 0.0)
    # A Certificate message of 16 MiB announced, its records keep coming: the side stops at the limit.
    record = b"\x16\x03\x03\x40\x00" + b"\x0b\xff\xff\xff" + bytes(0x4000 - 4)
    for i in range(20):
        reader.feed(True, record, 2 + i, 0.0)
    d = reader._dirs[True]
    assert d.stopped and d.read <= MAX_HANDSHAKE_BYTES and not d.records
    assert reader.info.client_hello_frame == 1 and reader.info.client_certificate is True


def _client_hello() -> bytes:
    """A ClientHello made by OpenSSL (through memory BIOs, no socket)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="mp01.corp.lab")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_client_hello_recognised():
    hello = _client_hello()
    assert looks_like_client_hello(hello) and looks_like_client_hello(hello[:3])
    assert not looks_like_client_hello(b"\x17\x03\x03\x00\x10")  # application data
    assert not looks_like_client_hello(b"\x16\x03\x03\x00\x40\x02")  # a ServerHello
    assert not looks_like_client_hello(b"CCM_POST / HTTP/1.1")
    reader = TlsHandshakeReader()
    reader.feed(True, hello, 1, 0.0)
    assert reader.info.sni == "mp01.corp.lab" and "TLS 1.3" in reader.info.offered_versions


def _cut_client_hello() -> bytes:
    """A real ClientHello whose record and handshake lengths are shrunk so its extensions overrun."""
    hello = bytearray(_client_hello())
    n = int.from_bytes(hello[3:5], "big") - 40
    hello[3:5] = n.to_bytes(2, "big")
    hello[6:9] = (n - 4).to_bytes(3, "big")
    return bytes(hello[:5 + n])


def test_malformed_handshakes_raise_decode_errors():
    for bad in (_cut_client_hello(), b"\x16\x03\x01\xff\xff", b"\x16\x03\x01\x00\x04\x01\x00\x00\x00" + b"\x99" * 9):
        reader = TlsHandshakeReader()
        with pytest.raises(DecodeError):
            reader.feed(True, bad, 1, 0.0)
        reader.feed(True, b"\x00" * 100, 2, 0.0)  # the side stopped: nothing more is read, nothing raised


# ------------------------------------------------------------------------------------------ hostile traffic


def _send_all(port: int, source: str, payloads: list[bytes]) -> None:
    with socket.create_connection((HOSTILE_SERVER, port), source_address=(source, 0)) as sock:
        for data in payloads:
            sock.sendall(data)
            time.sleep(0.05)


@pytest.fixture(scope="module")
def hostile_tls_capture(tmp_path_factory):
    """Real sockets on loopback: truncated and garbage handshakes recorded by dumpcap (needs root)."""
    path = tmp_path_factory.mktemp("tls_hostile") / "hostile_tls.pcapng"
    with recording(path, f"host {HOSTILE_SERVER}"):
        hello = _client_hello()
        cases = [
            ("127.0.5.91", [_cut_client_hello()]),  # extensions overrun the message
            ("127.0.5.92", [hello[:40]]),  # the connection ends inside the record
            ("127.0.5.93", [hello, b"\x99\x03\x03\x00\x02ab"]),  # a bogus record type after the hello
            ("127.0.5.94", [b"\x16\x03\x01\xff\xf0" + bytes(200)]),  # a record over the maximum length
        ]
        with socket.create_server((HOSTILE_SERVER, 443)) as listener:
            accepted: list[socket.socket] = []

            def accept() -> None:
                for _ in cases:
                    conn, _ = listener.accept()
                    accepted.append(conn)

            thread = threading.Thread(target=accept)
            thread.start()
            for source, payloads in cases:
                _send_all(443, source, payloads)
            thread.join(timeout=10)
            for conn in accepted:
                conn.close()
    return path


def test_hostile_handshakes_give_warnings_not_tracebacks(hostile_tls_capture):
    out = subprocess.run([sys.executable, "-m", "kerbtrace", "analyze", str(hostile_tls_capture), "--json", "-"],
                         capture_output=True, text=True, timeout=120, env={**os.environ})
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    tls = [w for w in doc["warnings"] if "TLS" in w["message"]]
    messages = " | ".join(w["message"] for w in tls)
    assert "truncated" in messages and "ended inside a TLS record" in messages, messages
    assert "not a TLS record" in messages and "exceeds the maximum" in messages, messages
    assert len(tls) == 4 and all(w["frame"] for w in tls), tls
    events, _, _ = pipeline_events(hostile_tls_capture)
    # the hello before the bogus record is still reported; nothing is reported where nothing was readable
    tls_events = [e for e in events if isinstance(e, TlsEvent)]
    assert [e.client_ip for e in tls_events] == ["127.0.5.91", "127.0.5.93"]
    assert tls_events[1].sni == "mp01.corp.lab" and tls_events[0].sni is None  # the cut hello: framing only
