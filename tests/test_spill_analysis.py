"""Results kept on disk (kerbtrace.spill) give the same report as results kept in memory: forced here with a
threshold of one item, so every client and Kerberos record goes through the file."""

from __future__ import annotations

import gc
import io
import json

import pytest

from kerbtrace import analysis as analysis_module
from kerbtrace import spill
from kerbtrace.analysis import analyze
from kerbtrace.cli import main
from kerbtrace.parallel import analyze_files
from kerbtrace.reports import json_report
from kerbtrace.reports.json_report import to_json, write_json
from kerbtrace.reports.table import render
from tests.conftest import CAPTURES, real_capture_files
from tests.test_ring_inputs import _split
from tests.test_spill import temp_files


def _outputs(paths: list[str], **options) -> tuple[dict, str, str]:
    result = analyze(paths, progress=False, **options)
    doc = to_json(result)
    doc.pop("fix_script", None)  # it carries the time it was made; compared below without it
    out = io.StringIO()
    write_json(result, out)
    streamed = json.loads(out.getvalue())
    streamed.pop("fix_script", None)
    assert streamed == json.loads(json.dumps(doc))
    return doc, render(result, verbose=True), render(result)


def _spilled(monkeypatch) -> None:
    monkeypatch.setattr(spill, "THRESHOLD", 1)


@pytest.mark.parametrize("names", [["duplicate_guid.pcapng"], ["mixed.pcapng"],
                                   ["mixed.pcapng", "duplicate_guid.pcapng"]])
def test_same_report_with_results_on_disk(monkeypatch, names):
    paths = [str(CAPTURES / n) for n in names]
    # a check every frame: clients are handed out while the capture is read, so the late findings (a duplicate
    # GUID registered after a client) must reach clients already on disk
    monkeypatch.setattr(analysis_module, "PROGRESS_EVERY", 1)
    kept = _outputs(paths)
    _spilled(monkeypatch)
    result = analyze(paths, progress=False)
    assert all(part.spilled == len(part) for part in result.clients.parts)
    assert _outputs(paths) == kept
    assert kept[0]["clients"] and kept[0]["kerberos"]
    if "duplicate_guid.pcapng" in names:
        assert any(f["code"] == "duplicate_guid" for c in kept[0]["clients"] for f in c["causes"])


def test_same_report_for_real_captures_and_a_ring(monkeypatch, tmp_path):
    paths = [str(p) for p in real_capture_files()[:6]]
    assert paths, "the shipped real captures are always at hand"
    ring = _split(CAPTURES / "mixed.pcapng", 100, tmp_path / "ring")
    kept = _outputs(paths), _outputs(ring)
    _spilled(monkeypatch)
    assert (_outputs(paths), _outputs(ring)) == kept
    assert kept[1][0]["clients"]


def test_jobs_merge_results_on_disk(monkeypatch):
    paths = [str(p) for p in sorted(CAPTURES.glob("*.pcapng"))[:5]]
    kept = to_json(analyze_files(paths, jobs=1, progress=False))
    _spilled(monkeypatch)
    merged = analyze_files(paths, jobs=2, progress=False)
    parts = [leaf for part in merged.clients.parts for leaf in getattr(part, "parts", [part])]
    assert any(isinstance(part, spill.SpillList) and part.spilled for part in parts)
    doc = to_json(merged)
    for d in (doc, kept):
        d.pop("fix_script", None)
    assert doc == kept


def test_report_command_with_results_on_disk(monkeypatch, tmp_path):
    capture = str(CAPTURES / "duplicate_guid.pcapng")
    assert main(["report", capture, "--format", "md", "-o", str(tmp_path / "a.md"), "--no-progress"]) in (0, 1)
    _spilled(monkeypatch)
    assert main(["report", capture, "--format", "md", "-o", str(tmp_path / "b.md"), "--no-progress"]) in (0, 1)
    a, b = (tmp_path / "a.md").read_text(), (tmp_path / "b.md").read_text()
    assert "duplicate_guid" in a and a.splitlines()[2:] == b.splitlines()[2:] or a == b


def test_no_spill_file_is_left_after_a_run_or_an_error(monkeypatch, tmp_path, capsys):
    _spilled(monkeypatch)
    capture = str(CAPTURES / "mixed.pcapng")
    gc.collect()
    before = temp_files()
    assert main(["analyze", capture, "--json", str(tmp_path / "out.json"), "--no-progress"]) == 1
    gc.collect()
    assert temp_files() == before

    def broken(result):
        raise RuntimeError("report failed")
    monkeypatch.setattr(json_report, "client_json", broken)
    with pytest.raises(RuntimeError):
        main(["analyze", capture, "--json", str(tmp_path / "broken.json"), "--no-progress"])
    gc.collect()
    assert temp_files() == before
    capsys.readouterr()
