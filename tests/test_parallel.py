"""Several capture files read at once (`--jobs N`) give the same report as one process, for any N."""

from __future__ import annotations

import json

from kerbtrace.analysis import Analysis
from kerbtrace.cli import main
from kerbtrace.parallel import analyze_files, merge
from kerbtrace.reports.json_report import to_json
from tests.conftest import CAPTURES, real_capture_files, timeless


def _doc(result: Analysis) -> dict:
    return timeless(json.loads(json.dumps(to_json(result))))


def test_same_document_for_any_number_of_processes(tmp_path):
    bad = tmp_path / "not-a-capture.pcap"
    bad.write_bytes(b"hello, this is text")
    paths = [str(p) for p in sorted(CAPTURES.glob("*.pcapng"))[:6]] + [str(bad)] + \
        [str(p) for p in real_capture_files()[:4]]
    one = _doc(analyze_files(paths, jobs=1, progress=False))
    assert one["clients"] and any(i.get("error") for i in one["inputs"])
    assert {c["input"] for c in one["clients"]} != {0}  # clients of several files, numbered by file
    for jobs in (2, 3):
        assert _doc(analyze_files(paths, jobs=jobs, progress=False)) == one


def test_merged_warnings_keep_the_first_of_all_files():
    parts = []
    for n, more in ((300, 0), (300, 7)):
        a = Analysis()
        for i in range(n):
            a.diag.warn(i + 1, f"problem {i}", "packet")
        a.diag.dropped["packet"] += more  # warnings the file's own run already counted and did not list
        parts.append(a)
    merged = merge(parts)
    assert len(merged.diag.warnings) == merged.diag.keep == 500
    assert [(w.input, w.frame) for w in merged.diag.warnings[299:301]] == [(0, 300), (1, 1)]
    assert merged.diag.warnings[-1].frame == 200
    assert merged.diag.dropped == {"packet": 100 + 7}


def test_cli_jobs_option(tmp_path, capsys):
    paths = [str(p) for p in sorted(CAPTURES.glob("*.pcapng"))[:3]]
    out1, out2 = tmp_path / "1.json", tmp_path / "2.json"
    rc1 = main(["analyze", *paths, "--jobs", "1", "--json", str(out1), "--no-progress"])
    rc2 = main(["analyze", *paths, "-j", "2", "--json", str(out2), "--no-progress"])
    assert rc1 == rc2
    a, b = timeless(json.loads(out1.read_text())), timeless(json.loads(out2.read_text()))
    assert a == b and a["clients"]
    capsys.readouterr()
    try:
        main(["analyze", paths[0], "--jobs", "0"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "must be at least 1" in capsys.readouterr().err
