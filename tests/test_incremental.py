"""Packets in, verdicts out as each exchange completes: the same pipeline a live capture will drive."""

from __future__ import annotations

import json

from kerbtrace.analysis import Session, analyze
from kerbtrace.diagnostics import Diagnostics
from kerbtrace.sources import open_capture
from tests.conftest import CAPTURES


def test_verdicts_come_out_before_the_end_of_input_and_match_the_file_mode():
    path = CAPTURES / "mixed.pcapng"
    whole = {r.client.ip: (r.verdict, r.primary.code if r.primary else None)
             for r in analyze([str(path)], progress=False).clients}
    diag = Diagnostics()
    session = Session(diag, settle=2.0)
    early: dict[str, tuple[int, tuple]] = {}
    last_frame = 0
    with open_capture(path, diag) as capture:
        for frame, time, linktype, data in capture:
            session.feed(frame, time, linktype, data)
            last_frame = frame
            if frame % 50 == 0:
                for r in session.poll():
                    early[r.client.ip] = (frame, (r.verdict, r.primary.code if r.primary else None))
    late = {r.client.ip: (r.verdict, r.primary.code if r.primary else None) for r in session.finish()}
    assert len(early) >= len(whole) // 2, "most clients are decided while packets still come in"
    assert all(frame < last_frame for frame, _ in early.values())
    got = {ip: v for ip, (_, v) in early.items()} | late
    assert got == whole


def test_a_client_checked_early_still_learns_of_a_later_duplicate_guid():
    path = CAPTURES / "duplicate_guid.pcapng"
    manifest = {c["client_ip"]: c for c in json.loads(path.with_suffix(".json").read_text())["clients"]}
    diag = Diagnostics()
    session = Session(diag, settle=0.05)
    early = []
    with open_capture(path, diag) as capture:
        for frame, time, linktype, data in capture:
            session.feed(frame, time, linktype, data)
            early.extend(session.poll())
    assert early, "the first clone's exchange completes before the second one starts"
    assert all(not r.client.legs for r in early), "checked clients keep only their results"
    results = {r.client.ip: r for r in early + session.finish(early)}
    for ip, expected in manifest.items():
        got = results[ip]
        assert got.verdict == expected["verdict"]
        assert got.primary.code == expected["cause"]
        codes = {f.code for f in got.findings}
        assert "duplicate_guid" in codes, (ip, codes)
