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


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_real_captures_hold_no_configmgr_client(path):
    """WinRM and other web servers use HTTP/ SPNs too: a ticket for a host not known as an MP is a note, not a
    client row."""
    result = analyze([str(path)], progress=False)
    assert result.clients == []
    for note in result.inputs[0].notes:
        assert "client" not in note or "pass --mp-name" in note


def test_an_http_spn_host_named_as_an_mp_becomes_a_client():
    path = next((p for p in FILES if p.name == "otrf__NEWYORK.cap"), None)
    if path is None:
        pytest.skip("otrf__NEWYORK.cap is not beside the repository")
    plain = analyze([str(path)], progress=False)
    assert any("pass --mp-name newyork " in n for n in plain.inputs[0].notes)
    named = analyze([str(path)], progress=False, mp_names=("newyork",))
    assert named.clients and all(r.findings for r in named.clients)
    assert {r.client.mp_name for r in named.clients} == {"newyork"}
    assert all(r.view["mp_http"] == "not_seen" and r.view["kdc"] == "seen" for r in named.clients)
