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
