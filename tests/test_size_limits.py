"""A capture larger than the tables: what the size limits forgot is counted in the input's notes, and the
limits change no verdict below them."""

from __future__ import annotations

from kerbtrace.analysis import analyze
from kerbtrace.exchanges import correlator
from tests.conftest import CAPTURES


def _verdicts(result) -> list[tuple[str, str]]:
    return sorted((r.client.ip, r.verdict) for r in result.clients)


def test_dropped_state_is_counted_in_the_notes(monkeypatch):
    capture = [str(CAPTURES / "mixed.pcapng")]
    whole = analyze(capture, progress=False)
    assert not any("size limits" in n for n in whole.inputs[0].notes)  # nothing forgotten: nothing said
    monkeypatch.setattr(correlator, "MAX_HANDED_OUT", 3)
    small = analyze(capture, progress=False)
    note = next(n for n in small.inputs[0].notes if n.startswith("size limits dropped state"))
    assert f"handed_out {len(whole.clients) - 3:,}" in note, note
    assert _verdicts(small) == _verdicts(whole)  # the addresses forgotten sent nothing later
