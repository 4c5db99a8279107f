"""A benchmark capture with N registrations reports N clients: clients already counted that look up the
MP again (an empty AAAA answer, normal for an IPv4-only MP) or ask for another ticket never become extra
rows, and every row that is not approved carries a cause."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest

from kerbtrace.analysis import analyze
from tests.conftest import CAPTURES, REPO, lab_manifests

sys.path.insert(0, str(REPO / "benchmarks"))
import make_capture  # noqa: E402


def test_n_registrations_make_n_clients(tmp_path):
    out = tmp_path / "bench.pcap"
    # lab templates of registrations in clear (HTTPS MPs' registrations are counted by the TLS tests)
    templates = [CAPTURES / m.with_suffix(".pcapng").name for m in lab_manifests()
                 if not any(mp.get("port") == 443 for mp in json.loads(m.read_text()).get("mps", []))]
    try:  # lab templates only: each placed client is a ConfigMgr registration
        summary = make_capture.generate(out, 52, 1200, duration=600.0, templates=templates, windows_share=0.0)
    except OSError as exc:
        pytest.skip(f"benchmark templates not available: {exc}")
    assert summary["packets"] > 2 * (1 << 16), "long enough for clients to be handed out while reading"
    result = analyze([str(out)], progress=False)
    assert len(result.clients) == summary["clients"], Counter(r.verdict for r in result.clients)
    assert all(r.findings for r in result.clients if r.verdict != "approved")
    per_template = summary["clients_per_template"]
    approved = sum(1 for r in result.clients if r.verdict == "approved")
    # ok_same_realm, ok_child_referral, kerberos_over_tcp: one approved client each; mixed and duplicate_guid
    # hold approved clients too, so at least the three single-client scenarios' share is approved
    assert approved >= per_template["ok_same_realm"] + per_template["ok_child_referral"] + \
        per_template["kerberos_over_tcp"]
