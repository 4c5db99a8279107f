"""Partial views of every lab capture, cut with tshark as an admin would get them, never contradict the
full view.

MP-only (the capture taken on the MP: port 80 only), KDC-only (a capture on a DC, or of an HTTPS MP:
everything but port 80, with the MP names given as --mp-name would) and one-client views (the client's
own traffic). A verdict from a partial view is the full view's, or `inconclusive` where the view hides
the MP's answer; a cause is the full view's, or a hedged cause that names it among its candidates, or
a note that the view cannot show the outcome.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache

import pytest

from kerbtrace.analysis import ClientResult, analyze
from tests.conftest import CAPTURES, lab_manifests

MANIFESTS = lab_manifests()
#: causes that say what the view cannot show, allowed with an inconclusive verdict
VIEW_NOTES = {"incomplete_capture", "registration_encrypted"}


@cache
def _full(name: str) -> dict[str, ClientResult]:
    return {r.client.ip: r for r in analyze([str(CAPTURES / name)], progress=False).clients}


def _cut(tmp_path, name: str, display_filter: str, tag: str):
    out = tmp_path / f"{tag}.pcapng"
    subprocess.run(["tshark", "-r", str(CAPTURES / name), "-Y", display_filter, "-w", str(out)], check=True,
                   capture_output=True)
    return out


def _compare(full: dict[str, ClientResult], partial: list[ClientResult], view: str) -> list[str]:
    problems = []
    for r in partial:
        ip = r.client.ip
        whole = full.get(ip)
        if whole is None:
            problems.append(f"{view} {ip}: a client the full view does not have")
            continue
        primary = r.primary
        if primary is None:
            problems.append(f"{view} {ip}: {r.verdict} without a cause")
            continue
        if r.verdict == "inconclusive":
            if whole.verdict != "inconclusive" and r.view["mp_http"] == "clear" and \
                    all(leg.status is not None for leg in r.client.legs or ()):
                problems.append(f"{view} {ip}: inconclusive though the MP's answer is in the view")
            if primary.code not in VIEW_NOTES and primary.code != whole.primary.code and \
                    whole.primary.code not in primary.candidates:
                problems.append(f"{view} {ip}: inconclusive with cause {primary.code}")
            continue
        if r.verdict != whole.verdict:
            problems.append(f"{view} {ip}: verdict {r.verdict} contradicts the full view's {whole.verdict}")
        if primary.code != whole.primary.code and whole.primary.code not in primary.candidates:
            problems.append(f"{view} {ip}: cause {primary.code} ({primary.candidates}) is neither the full view's "
                            f"{whole.primary.code} nor a hedge naming it")
    return problems


@pytest.mark.parametrize("manifest_path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_partial_views_never_contradict_the_full_view(manifest_path, tmp_path, tshark):
    manifest = json.loads(manifest_path.read_text())
    if any(m.get("port") == 443 for m in manifest.get("mps", [])):
        pytest.importorskip("kerbtrace.decoders.tls", reason="HTTPS MPs: their views need the TLS handshake decoder")
    name = manifest["capture"]
    full = _full(name)
    assert full, "the full view has clients"
    mp_names = tuple(sorted({c["mp"]["name"] for c in manifest["clients"] if c.get("mp", {}).get("name")}))
    ports = sorted({m.get("port", 80) for m in manifest.get("mps", [])} or {80})
    mp_filter = " || ".join(f"tcp.port == {p}" for p in ports)
    problems = []

    mp_only = analyze([str(_cut(tmp_path, name, mp_filter, "mp"))], progress=False)
    problems += _compare(full, mp_only.clients, "MP-only")
    reaching = {ip for ip, r in full.items() if r.client.timeline and any(
        e.event.startswith(("CCM_POST", "TLS")) for e in r.client.timeline)}
    if ports == [80]:  # (an HTTPS MP seen from its side alone is known only by name: --mp-name)
        assert {r.client.ip for r in mp_only.clients} == reaching, "every client that reached the MP is seen from it"
        assert all(r.view["label"] == "mp_side" for r in mp_only.clients)

    kdc_only = analyze([str(_cut(tmp_path, name, f"!({mp_filter})", "kdc"))], progress=False, mp_names=mp_names)
    problems += _compare(full, kdc_only.clients, "KDC-only")
    assert all(r.view["mp_http"] == "not_seen" for r in kdc_only.clients)

    for ip in sorted(full)[:3]:
        one = analyze([str(_cut(tmp_path, name, f"ip.addr == {ip}", "one"))], progress=False)
        problems += _compare(full, one.clients, f"one-client {ip}")
        assert ip in {r.client.ip for r in one.clients}, f"{ip} is a client of its own view"
    assert not problems, "\n".join(problems)


def test_kdc_side_view_reports_a_failed_ticket_with_its_cause(tmp_path, tshark):
    """spn_missing with port 80 removed: the TGS-REQ for HTTP/<mp> fails in the capture, so the client cannot
    authenticate with Kerberos: not_approved, spn_missing, on the KDC side."""
    view = _cut(tmp_path, "spn_missing.pcapng", "!(tcp.port == 80)", "kdc")
    (expected,) = json.loads((CAPTURES / "spn_missing.json").read_text())["clients"]
    unnamed = analyze([str(view)], progress=False)
    assert not unnamed.clients, "an HTTP/ ticket of a host not known as an MP makes no client"
    assert any(f"pass --mp-name {expected['mp']['name']}" in n for n in unnamed.inputs[0].notes)
    named = analyze([str(view)], progress=False, mp_names=(expected["mp"]["name"],))
    (r,) = named.clients
    assert (r.client.ip, r.verdict, r.primary.code) == (expected["client_ip"], "not_approved", "spn_missing")
    assert r.view == {"mp_http": "not_seen", "kdc": "seen", "dns": "seen", "label": "kdc_side"}
    assert named.inputs[0].legs.label == "kdc_side"


def test_mp_side_view_hedges_instead_of_claiming_a_kerberos_cause(tmp_path, tshark):
    view = _cut(tmp_path, "mixed.pcapng", "tcp.port == 80", "mp")
    result = analyze([str(view)], progress=False)
    full = _full("mixed.pcapng")
    hedged = [r for r in result.clients if r.primary.code == "no_ticket_kdc_not_visible"]
    # every client whose full-view cause is a Kerberos failure before the MP is hedged on the MP side
    kerberos_side = {"spn_missing", "no_trust_path", "trust_broken", "kdc_unreachable", "account_revoked",
                     "etype_unsupported", "no_kerberos_attempt", "preauth_failed", "ntlm_fallback"}
    assert hedged and {r.client.ip for r in hedged} == {
        ip for ip, r in full.items() if r.primary.code in kerberos_side and ip in {c.client.ip for c in result.clients}}
    assert all(full[r.client.ip].primary.code in r.primary.candidates for r in hedged)
    assert any("MP side only: no KDC traffic" in n for n in result.inputs[0].notes)
    assert result.inputs[0].legs.kdc == 0


def test_the_json_document_carries_views_legs_notes_and_fleet(tmp_path, tshark):
    import io

    from kerbtrace.reports.json_report import write_json
    from kerbtrace.reports.table import render

    view = _cut(tmp_path, "mixed.pcapng", "tcp.port == 80", "mp")
    result = analyze([str(view)], progress=False)
    out = io.StringIO()
    write_json(result, out)
    doc = json.loads(out.getvalue())
    (entry,) = doc["inputs"]
    assert entry["legs"]["kdc"] == 0 and entry["legs"]["mp_http"] > 0 and entry["legs"]["label"] == "mp_side"
    assert any(n.startswith("MP side only: no KDC traffic for these 36 client(s)") for n in entry["notes"])
    assert {c["view"]["label"] for c in doc["clients"]} == {"mp_side"}
    hedged = [c for c in doc["clients"] if c["causes"][0]["code"] == "no_ticket_kdc_not_visible"]
    assert hedged and all("spn_missing" in c["causes"][0]["candidates"] for c in hedged)
    assert [(f["code"], f["subject"]) for f in doc["fleet"]] == [("fleet_common_cause", "mp03.corp.lab")]
    text = render(result)
    assert "MP side only: no KDC traffic for these 36 client(s)" in text and "fleet_common_cause" in text
    assert "(view: mp_side)" in text and "candidates: spn_missing" in text
