"""HTTPS MPs: the registration inside TLS is a client all the same, with the Kerberos side's verdict.

The TLS handshakes are given to the correlator as `TlsEvent`s read by tshark from the lab's https_mp
capture (the TLS decoder of the pipeline is tested on its own), so this tests the exchanges and checks
against the lab's manifest whatever decodes the handshakes.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from kerbtrace.analysis import Session, _read
from kerbtrace.diagnostics import Diagnostics
from kerbtrace.events import TlsEvent
from kerbtrace.sources import open_capture
from tests.conftest import CAPTURES

CAPTURE = CAPTURES / "https_mp.pcapng"
FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.stream",
          "tls.handshake.type", "tls.handshake.extensions_server_name")


def _tls_events(tshark: str) -> dict[int, TlsEvent]:
    """ClientHello/ServerHello pairs by tshark, keyed by the ServerHello frame (when the decoder would emit)."""
    cmd = [tshark, "-r", str(CAPTURE), "-Y", "tls.handshake.type == 1 || tls.handshake.type == 2", "-T", "fields"]
    for f in FIELDS:
        cmd += ["-e", f]
    hellos, ready = {}, {}
    for row in subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines():
        frame, time, src, sport, dst, dport, stream, types, sni = (row.split("\t") + [""] * 9)[:9]
        if "1" in types.split(","):
            hellos[stream] = TlsEvent(int(frame), float(time), src, int(sport), dst, int(dport), int(stream),
                                      sni=sni or None, version="TLS 1.2")
        if "2" in types.split(",") and stream in hellos:
            hellos[stream].server_frame = int(frame)
            ready[int(frame)] = hellos[stream]
    return ready


def test_https_mp_clients_get_the_kerberos_side_verdict(tshark):
    if not CAPTURE.exists():
        pytest.skip(f"{CAPTURE.name} is not in captures/ (the lab's https_mp scenario)")
    manifest = json.loads(CAPTURE.with_suffix(".json").read_text())
    tls = _tls_events(tshark)
    assert len(tls) >= len(manifest["clients"])
    diag = Diagnostics()
    session = Session(diag)

    def feed(frame, time, linktype, data):
        session.feed(frame, time, linktype, data)
        if frame in tls:
            session.correlator.feed(tls[frame])

    with open_capture(str(CAPTURE), diag) as capture:
        _read(capture, feed, diag, lambda time: None)
    by_ip = {r.client.ip: r for r in session.finish()}
    assert set(by_ip) == {c["client_ip"] for c in manifest["clients"]}
    for expected in manifest["clients"]:
        got = by_ip[expected["client_ip"]]
        assert (got.verdict, got.primary.code) == (expected["verdict"], expected["cause"]), expected["client_ip"]
        assert got.view["mp_http"] == "tls" and got.client.mp_name == expected["mp"]["name"]
        assert set(expected["evidence_frames"]) <= {e.frame for f in got.findings for e in f.evidence}
