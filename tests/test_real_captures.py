"""Every real public capture reads without error, and its Kerberos list equals tshark's."""

from __future__ import annotations

import pytest

from kerbtrace.analysis import analyze
from tests.conftest import real_capture_files
from tests.tshark_reference import tshark_kerberos

FILES = real_capture_files()


def test_real_captures_present():
    assert len(FILES) >= 40, "the shared real captures must sit beside the repository (../shared/real-captures)"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_kerberos_list_matches_tshark(path, tshark):
    result = analyze([str(path)], progress=False)
    assert result.inputs[0].error is None
    assert result.inputs[0].packets > 0
    ours = sorted((k.frame, k.msg_type, k.error_code) for k in result.kerberos)
    theirs = sorted(tshark_kerberos(path))
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    assert ours == theirs, f"missing (tshark only): {missing[:20]}; extra (kerbtrace only): {extra[:20]}"
