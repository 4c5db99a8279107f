"""Every real public capture reads without error, and its Kerberos list equals tshark's."""

from __future__ import annotations

import hashlib
import re

import pytest

from kerbtrace.analysis import analyze
from tests.conftest import CAPTURE_SUFFIXES, SHARED_REAL_CAPTURES, SHIPPED_REAL_CAPTURES, real_capture_files
from tests.tshark_reference import tshark_kerberos

FILES = real_capture_files()
# | file | repository | path | commit | sha256 | size | licence ([text](LICENSES/...)) |
ROW = re.compile(r"^\| `([^`]+)` \| [^|]+ \| [^|]+ \| `[0-9a-f]{12}` \| `([0-9a-f]{64})` \| (\d+) \| "
                 r"[^|]*\]\(([^)]+)\)")


def test_shipped_captures_are_the_listed_bytes_with_their_licence():
    """captures/real/SOURCES.md lists every shipped capture with its SHA-256, size and licence text."""
    rows = [m.groups() for line in (SHIPPED_REAL_CAPTURES / "SOURCES.md").read_text().splitlines()
            if (m := ROW.match(line))]
    shipped = sorted(p.name for p in SHIPPED_REAL_CAPTURES.iterdir() if p.suffix in CAPTURE_SUFFIXES)
    assert sorted(name for name, *_ in rows) == shipped
    for name, sha, size, licence in rows:
        data = (SHIPPED_REAL_CAPTURES / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (int(size), sha), name
        assert (SHIPPED_REAL_CAPTURES / licence).is_file(), licence
        assert not name.startswith(("elc__", "pcapattack__")), f"{name}: its source states no licence"


def test_full_real_set_is_beside_the_repository():
    if not SHARED_REAL_CAPTURES.is_dir():
        pytest.skip(f"../shared/real-captures is not beside the repository: only the {len(FILES)} shipped "
                    "real captures are tested")
    assert len(FILES) >= 40


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
