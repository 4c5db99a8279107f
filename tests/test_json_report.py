"""The JSON document has one shape whether it is written piece by piece or built in memory."""

from __future__ import annotations

import io
import json

from kerbtrace.analysis import analyze
from kerbtrace.reports.json_report import to_json, write_json
from tests.conftest import CAPTURES


def test_in_memory_document_is_the_written_one():
    result = analyze([str(CAPTURES / "mixed.pcapng"), str(CAPTURES / "clock_skew.pcapng")], progress=False)
    out = io.StringIO()
    write_json(result, out)
    written = json.loads(out.getvalue())
    assert written["clients"] and written["kerberos"]
    assert json.loads(json.dumps(to_json(result))) == written
