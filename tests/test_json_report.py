"""The JSON document has one shape whether it is written piece by piece or built in memory."""

from __future__ import annotations

import io
import json

import pytest

from kerbtrace.analysis import analyze
from kerbtrace.reports.json_report import to_json, write_json
from tests.conftest import CAPTURES


def test_in_memory_document_is_the_written_one():
    result = analyze([str(CAPTURES / "mixed.pcapng"), str(CAPTURES / "clock_skew.pcapng")], progress=False)
    out = io.StringIO()
    write_json(result, out)
    written = json.loads(out.getvalue())
    assert written["clients"] and written["kerberos"]
    # the streamed document gathers the fix script in its pass over the clients; the property reads them again
    assert written["fix_script"] and written["fix_script"].count("========") >= 2
    assert json.loads(json.dumps(to_json(result))) == written


def test_iso_is_datetime_isoformat_exactly() -> None:
    """`iso` formats each whole second once; the text must stay what datetime gives (half-even rounding of the
    microseconds, carries into the next second, errors for times out of range)."""
    import random
    from datetime import UTC, datetime

    from kerbtrace.analysis import iso

    def reference(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

    rng = random.Random(10)
    edges = [0.0, 1.9999995, 1.0000005, 1795343845.4999995, 1795343845.9999996, -1.5, -0.0000004, 253402300799.0]
    near_ties = [rng.randrange(1_700_000_000, 1_800_000_000) + k / 1e6 + 5e-7 for k in range(0, 1_000_000, 97)]
    spread = [rng.uniform(0, 4e9) for _ in range(20_000)]
    for ts in edges + near_ties + spread:
        assert iso(ts) == reference(ts), ts
    for ts in (1e15, 1e20, float("nan"), float("inf")):
        with pytest.raises((ValueError, OverflowError)):
            reference(ts)
        with pytest.raises((ValueError, OverflowError)):
            iso(ts)
    assert iso(None) is None


def test_lists_are_written_as_json_arrays_whatever_their_length():
    """`_write_list` encodes a batch of entries per call: the text is the array json writes in one piece."""
    from kerbtrace.reports import json_report

    encode = json.JSONEncoder(separators=(",", ":")).encode
    for n in (0, 1, 2, json_report.BATCH - 1, json_report.BATCH, json_report.BATCH + 1, 3 * json_report.BATCH + 7):
        items = [{"frame": i, "text": f"é{i}", "nested": [i, None, {"k": i / 3}]} for i in range(n)]
        out = io.StringIO()
        json_report._write_list(out, "things", (x for x in items), encode)
        assert out.getvalue() == ',"things":' + json.dumps(items, separators=(",", ":")), n
