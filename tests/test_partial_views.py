"""Captures that see only part of the exchange: on the MP, or one direction of a span port.

kerbtrace must still decide what the MP's answer shows, and say what is missing instead of guessing.
"""

from __future__ import annotations

import json
import subprocess

from kerbtrace.analysis import analyze
from tests.conftest import CAPTURES, needs_tshark

pytestmark = needs_tshark  # tshark cuts the partial views out of the lab captures


def _filtered(tmp_path, source: str, display_filter: str):
    out = tmp_path / "view.pcapng"
    subprocess.run(["tshark", "-r", str(CAPTURES / source), "-Y", display_filter, "-w", str(out)], check=True,
                   capture_output=True)
    return out


def _expected(source: str) -> dict[str, dict]:
    manifest = json.loads((CAPTURES / source.replace(".pcapng", ".json")).read_text())
    return {c["client_ip"]: c for c in manifest["clients"]}


def test_capture_on_the_mp_keeps_verdicts_and_says_tgs_is_missing(tmp_path):
    expected = _expected("mixed.pcapng")
    mp = "127.0.0.10"
    view = _filtered(tmp_path, "mixed.pcapng", f"ip.addr == {mp}")
    result = analyze([str(view)], progress=False)
    assert result.clients
    for r in result.clients:
        want = expected[r.client.ip]
        assert r.client.mp_ip == mp
        assert r.verdict == want["verdict"], (r.client.ip, r.verdict, want)
        if r.verdict == "approved":
            missing = [f for f in r.findings if f.code == "incomplete_capture"]
            assert missing and "ticket request" in missing[0].summary, r.client.ip
            assert not r.client.kdc, "no KDC traffic is visible from the MP"


def test_one_direction_only_is_inconclusive_not_guessed(tmp_path):
    # a span port that mirrors only client -> MP traffic
    view = _filtered(tmp_path, "ok_same_realm.pcapng", "tcp.dstport == 80")
    result = analyze([str(view)], progress=False)
    assert result.clients
    for r in result.clients:
        assert r.verdict == "inconclusive"
        assert r.findings and r.findings[0].code == "incomplete_capture"
        assert "no answer from the MP" in r.findings[0].summary


def test_a_capture_started_inside_the_registration_says_so(tmp_path):
    # drop the first packets of the client's HTTP connection: the capture starts mid-stream
    first = "tcp.stream == 0 && tcp.len > 0"
    rows = subprocess.run(["tshark", "-r", str(CAPTURES / "ok_same_realm.pcapng"), "-Y", first, "-T", "fields",
                           "-e", "frame.number", "-e", "tcp.dstport"], check=True, capture_output=True,
                          text=True).stdout.split()
    assert rows, "the lab capture has an HTTP connection"
    cut = int(rows[0])
    view = _filtered(tmp_path, "ok_same_realm.pcapng", f"frame.number > {cut}")
    result = analyze([str(view)], progress=False)
    notes = [f for r in result.clients for f in r.findings if f.code == "incomplete_capture"]
    assert notes and any("not in the capture" in e.text for f in notes for e in f.evidence)
