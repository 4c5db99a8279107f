"""Every lab capture gives the verdicts and causes its manifest records.

The manifests come from what the lab configured and were checked against tshark's reading of the
same capture (tests/test_lab_manifests.py), so agreement here means kerbtrace reads real traffic right.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from kerbtrace import checks
from kerbtrace.analysis import analyze
from kerbtrace.reports.json_report import to_json
from tests.conftest import CAPTURES, lab_manifests

MANIFESTS = lab_manifests()
# codes kerbtrace reports: per-client causes, and findings about several clients (fleet) once it has them
KNOWN_CODES = set(checks.CAUSE_CODES) | set(getattr(checks, "FLEET_CODES", ()))


def _codes(manifest: dict) -> set[str]:
    clients = manifest["clients"]
    return ({c["cause"] for c in clients} | {s for c in clients for s in c["secondary_causes"]}
            | {f["code"] for f in manifest.get("fleet", [])})


def _tls_decoded() -> bool:
    return importlib.util.find_spec("kerbtrace.decoders.tls") is not None


def _case(path):
    """A manifest that needs a code kerbtrace does not have yet, or HTTPS MPs before kerbtrace reads TLS
    handshakes, is expected to fail, and only then."""
    manifest = json.loads(path.read_text())
    missing = sorted(_codes(manifest) - KNOWN_CODES)
    marks = [pytest.mark.xfail(strict=True, reason=f"kerbtrace does not report {missing} yet")] if missing else []
    if not marks and any(m.get("port") == 443 for m in manifest.get("mps", [])) and not _tls_decoded():
        marks = [pytest.mark.xfail(strict=True, reason="HTTPS MPs: kerbtrace does not decode TLS handshakes yet")]
    return pytest.param(path, marks=marks, id=path.stem)


def test_lab_captures_are_shipped():
    names = {p.stem for p in MANIFESTS}
    assert {"ok_same_realm", "ok_child_referral", "spn_on_other_account", "spn_missing", "mixed"} <= names


@pytest.mark.parametrize("manifest_path", [_case(p) for p in MANIFESTS])
def test_manifest_verdicts(manifest_path):
    manifest = json.loads(manifest_path.read_text())
    result = analyze([str(CAPTURES / manifest["capture"])], progress=False)
    by_ip = {r.client.ip: r for r in result.clients}
    problems = []
    for expected in manifest["clients"]:
        got = by_ip.get(expected["client_ip"])
        if got is None:
            problems.append(f"{expected['client_ip']}: client not found")
            continue
        primary = got.primary.code if got.primary else None
        if got.verdict != expected["verdict"]:
            problems.append(f"{expected['client_ip']}: verdict {got.verdict} != {expected['verdict']}")
        if primary != expected["cause"]:
            problems.append(f"{expected['client_ip']}: cause {primary} != {expected['cause']}")
        if expected.get("auth") and got.client.auth != expected["auth"]:
            problems.append(f"{expected['client_ip']}: auth {got.client.auth} != {expected['auth']}")
        for code in expected.get("secondary_causes", []):
            if code not in {f.code for f in got.findings}:
                problems.append(f"{expected['client_ip']}: secondary cause {code} missing")
        if expected.get("hostname") and got.client.hostname and \
                got.client.hostname.upper() != expected["hostname"].upper():
            problems.append(f"{expected['client_ip']}: hostname {got.client.hostname}")
        # The findings' own evidence, frame for frame (not the timeline: it lists every frame of the client).
        wanted = set(expected.get("evidence_frames", []))
        shown = {e.frame for f in got.findings for e in f.evidence}
        if not wanted <= shown:
            problems.append(f"{expected['client_ip']}: evidence frames {sorted(wanted - shown)} of "
                            f"{sorted(wanted)} not in the findings' evidence {sorted(shown)}")
    # findings about several clients: the JSON document's top-level "fleet" list, sources in any order; the
    # manifests record lockouts (fleet_common_cause is an inference of kerbtrace, tested in test_checks_units)
    wanted = [(f["code"], f["principal"], sorted(f["sources"])) for f in manifest.get("fleet", [])]
    reported = [(f.get("code"), f.get("principal"), sorted(f.get("sources", [])))
                for f in to_json(result).get("fleet", []) if f.get("code") == "lockout_sources"]
    if wanted != reported:
        problems.append(f"fleet findings {reported} != {wanted}")
    extra = set(by_ip) - {c["client_ip"] for c in manifest["clients"]}
    if extra:
        problems.append(f"clients not in the manifest: {sorted(extra)}")
    assert not problems, "\n".join(problems)


def _offset_seconds(text: str) -> float:
    hours = {"h": 3600, "m": 60, "s": 1}
    return float(text[1:-1]) * hours[text[-1]] * (-1 if text[0] == "-" else 1)


def test_clock_skew_is_measured_and_blamed_on_the_client():
    import re

    # The offset the lab gave the client's clock, as its manifest describes it ("clock moved +2h").
    description = json.loads((CAPTURES / "clock_skew.json").read_text())["description"]
    skew = re.search(r"clock moved ([+-]\d+[hms])", description)
    assert skew, description
    result = analyze([str(CAPTURES / "clock_skew.pcapng")], progress=False)
    (client,) = result.clients
    finding = client.findings[0]
    assert finding.code == "clock_skew"
    measured = re.search(r"client ([+-]\d+) s \(SentTime of its CCM message, frame (\d+)\)", finding.summary)
    assert measured, finding.summary
    assert abs(int(measured.group(1)) - _offset_seconds(skew.group(1))) < 2.0
    assert "Off by more than 5 minutes: the client's clock." in finding.summary
    assert int(measured.group(2)) in {e.frame for e in finding.evidence}


def test_unreachable_kdc_cites_the_icmp_error_and_the_reset():
    manifest = json.loads((CAPTURES / "kdc_unreachable.json").read_text())
    (expected,) = manifest["clients"]
    wanted = {e["frame"] for e in expected["evidence"] if e["kind"] in ("icmp_unreachable", "tcp_reset")}
    assert wanted, "the lab records the ICMP error and the TCP reset"
    (got,) = analyze([str(CAPTURES / manifest["capture"])], progress=False).clients
    assert got.primary.code == "kdc_unreachable"
    assert wanted <= {e.frame for e in got.primary.evidence}
