"""The collector policy of long runs: survivors frozen while the run lasts, everything restored after."""

from __future__ import annotations

import gc

from kerbtrace import analysis, collector
from kerbtrace.analysis import analyze
from tests.conftest import CAPTURES


def test_analysis_freezes_survivors_and_restores_the_collector(monkeypatch):
    monkeypatch.setattr(analysis, "PROGRESS_EVERY", 64)  # tick often on a small capture
    seen = {"frozen": 0, "threshold": 0}
    real_tick = collector.RelaxedCollector.tick

    def spy() -> None:
        real_tick()
        seen["frozen"] = max(seen["frozen"], gc.get_freeze_count())
        seen["threshold"] = max(seen["threshold"], gc.get_threshold()[0])

    monkeypatch.setattr(collector.RelaxedCollector, "tick", staticmethod(spy))
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    result = analyze([str(CAPTURES / "mixed.pcapng")], progress=False)
    assert result.clients
    assert seen["frozen"] > 0, "the run never froze its survivors"
    assert seen["threshold"] >= collector.GC_THRESHOLD
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_reports_make_no_reference_cycle_so_the_collector_may_stay_off(monkeypatch, tmp_path, capsys):
    """The CLI writes its reports with the collector off (`RelaxedCollector.off`): safe only because writing them
    makes no garbage that reference counting cannot free. Checked on results read back from disk, with every
    finding, context line and fix command the shipped captures give."""
    from kerbtrace import cli, spill

    monkeypatch.setattr(spill, "THRESHOLD", 4)  # the results (and the table's cells) go through the disk
    states = []
    real_report = cli._report

    def report(args, result):
        gc.collect()
        states.append(gc.isenabled())
        rc = real_report(args, result)
        states.append(gc.collect())  # garbage only the collector could free: cycles the report made
        return rc

    monkeypatch.setattr(cli, "_report", report)
    captures = sorted(str(p) for p in CAPTURES.glob("*.pcapng"))
    rc = cli.main(["analyze", *captures, "--json", str(tmp_path / "out.json"), "--fix-script",
               str(tmp_path / "fix.ps1"), "-v", "--no-progress"])
    out = capsys.readouterr().out
    assert rc in (0, 1) and "not_approved" in out and (tmp_path / "fix.ps1").stat().st_size > 0
    assert states == [False, 0], states  # off while writing; nothing cyclic left behind
    assert gc.isenabled()  # and on again after the run
