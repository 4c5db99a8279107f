"""Context beside the capture, end to end: logs, DC events, directory and keytab options on `kerbtrace analyze`.

Inputs, kept apart:
- LAB: the captures in `captures/` with the IIS and MP logs the lab's MP simulator wrote beside them.
- CONSTRUCTED DC events: records in the schema of 4768/4769/4771, built in memory from the KDC replies of
  the lab's full captures (`tests.test_dc_events.constructed_dc_log`): no real DC logged the lab's
  exchanges, so no real .evtx can hold them, and none is forged; they enter through `Beside` in memory.
- REAL DC events: `tests/data/evtx/` (a password spray recorded on a real DC), read through `--events`.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kerbtrace.analysis import analyze
from kerbtrace.context import Beside
from kerbtrace.context.dc_events import DcEventLog
from kerbtrace.reports.json_report import to_json
from tests.conftest import CAPTURES, lab_manifests
from tests.test_dc_events import SPRAY, constructed_dc_log

MANIFESTS = lab_manifests()
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark makes the MP-side views")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kerbtrace", *args], capture_output=True, text=True, timeout=300)


def _logs(name: str) -> list[str]:
    return ["--iis-log", str(CAPTURES / f"{name}.iis.log"),
            "--mp-log", str(CAPTURES / f"{name}.MP_RegistrationManager.log")]


def _evidence(client: dict) -> list[dict]:
    return [e for cause in client["causes"] for e in cause["evidence"]] + client["context"]


# ---- LAB captures with their own logs, through the command line ----------------------------------------------


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_every_failed_client_gets_log_evidence_through_the_cli(manifest: Path):
    name = manifest.stem
    out = run("analyze", str(CAPTURES / f"{name}.pcapng"), *_logs(name), "--json", "-")
    assert out.returncode in (0, 1), out.stderr
    assert "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    failed = [c for c in doc["clients"] if c["verdict"] != "approved"]
    for client in failed:
        logs = [e for e in _evidence(client) if e["source"] in ("iis", "mp_log")]
        assert logs, (name, client["client_ip"])
        assert all(e["file"].endswith((".iis.log", ".MP_RegistrationManager.log")) for e in logs)
        lined = [e for e in logs if e.get("line")]
        if client["view"].get("mp_http") == "not_seen":
            # It never reached the MP (its lookup of the MP failed): the IIS log says so by its silence.
            assert not lined and any("never reached the MP" in e["text"] for e in logs), client
            continue
        assert lined, (name, client["client_ip"])
        iis = [e for e in lined if e["source"] == "iis"]
        assert iis and all(client["client_ip"] in e["text"] for e in iis)  # the IIS line of this client's address
        text = (CAPTURES / f"{name}.iis.log").read_text().splitlines()
        assert all(text[e["line"] - 1] in e["text"] for e in iis)  # the line number points at that line
        if client["verdict"] == "not_approved":
            assert any(e["source"] in ("iis", "mp_log") for e in client["causes"][0]["evidence"])  # with the cause
    joined = {Path(f["file"]).name: f for f in doc["context"]["logs"]}
    assert set(joined) == {f"{name}.iis.log", f"{name}.MP_RegistrationManager.log"}
    iis_join = joined[f"{name}.iis.log"]
    if doc["clients"] and any(c["view"].get("mp_http") != "not_seen" for c in doc["clients"]):
        # The lab's IIS log writes whole seconds at the end of the request: the offset is under 2 s, estimated.
        assert iis_join["offset_seconds"] is not None and abs(iis_join["offset_seconds"]) < 2.0
        assert iis_join["matched"] >= 1 and iis_join["offset_pairs"] >= 1


def test_the_table_has_a_line_per_log_file_and_the_log_lines_under_the_cause():
    out = run("analyze", str(CAPTURES / "spn_missing.pcapng"), *_logs("spn_missing"))
    assert out.returncode == 1, out.stderr
    beside = out.stdout.split("Beside the capture:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(beside) == 2 and "spn_missing.iis.log (iis): 3 entries matched" in beside[0]
    assert "MP_RegistrationManager.log (mp_log): 6 entries matched" in beside[1]
    assert "spn_missing.iis.log:7: " in out.stdout and "CORP\\WK03$" in out.stdout


# ---- the DC's log settles what an MP-side capture cannot see (CONSTRUCTED events) ----------------------------


def _mp_side(tmp_path: Path, name: str) -> str:
    out = tmp_path / f"{name}.mp.pcapng"
    subprocess.run(["tshark", "-r", str(CAPTURES / f"{name}.pcapng"), "-Y", "tcp.port == 80", "-w", str(out)],
                   check=True, capture_output=True)
    return str(out)


@needs_tshark
@pytest.mark.parametrize(("name", "offset", "cause"), [
    ("spn_missing", 4.0, "spn_missing"),
    ("account_locked", -2.5, "account_revoked"),
])
def test_mp_side_capture_plus_dc_events_gives_the_specific_cause(tmp_path, name, offset, cause):
    full = analyze([str(CAPTURES / f"{name}.pcapng")], progress=False)
    events = constructed_dc_log(full, offset=offset)
    mp = _mp_side(tmp_path, name)
    [alone] = analyze([mp], progress=False).clients
    assert alone.primary.code == "no_ticket_kdc_not_visible"  # the capture alone can only hedge
    assert cause in alone.primary.candidates and cause not in [f.code for f in alone.findings]
    result = analyze([mp], progress=False, beside=Beside(dc_events=DcEventLog(events=events, files=["constructed"])))
    [client] = result.clients
    assert client.verdict == "not_approved" and client.primary.code == cause
    assert client.primary.severity == "error"
    assert client.primary.evidence and all(e.source == "dc_event" and e.file == "constructed"
                                           for e in client.primary.evidence)
    hedge = next(f for f in client.findings if f.code == "no_ticket_kdc_not_visible")
    assert hedge.severity == "info" and cause in hedge.summary  # kept, as a note the DC's log settles
    assert "unexplained" not in [f.code for f in client.findings]
    assert any("the DC's security log given beside it" in n for n in result.inputs[0].notes)
    doc = to_json(result)
    assert doc["clients"][0]["causes"][0]["code"] == cause
    assert doc["context"]["dc_events"]["joins"] == [{"input": 0, "offset_seconds": None, "clients_matched": 1}]


def test_a_dc_statement_joins_the_finding_the_capture_already_has():
    full = analyze([str(CAPTURES / "spn_missing.pcapng")], progress=False)
    events = constructed_dc_log(full, offset=1800.0)  # the DC clock 30 minutes ahead: estimated, not assumed
    result = analyze([str(CAPTURES / "spn_missing.pcapng")], progress=False,
                     beside=Beside(dc_events=DcEventLog(events=events, files=["constructed"])))
    [client] = result.clients
    assert [f.code for f in client.findings].count("spn_missing") == 1
    sources = {e.source for e in client.primary.evidence}
    assert {"capture", "dc_event"} <= sources
    assert result.joins[0].dc_offset == pytest.approx(1800.0, abs=0.01)


def test_an_approved_client_keeps_its_verdict_and_the_dc_events_are_context():
    full = analyze([str(CAPTURES / "ok_same_realm.pcapng")], progress=False)
    events = constructed_dc_log(full, offset=0.25)
    result = analyze([str(CAPTURES / "ok_same_realm.pcapng")], progress=False,
                     beside=Beside(dc_events=DcEventLog(events=events, files=["constructed"])))
    [client] = result.clients
    assert client.verdict == "approved" and client.primary.code == "ok"
    assert client.context and all(e.source == "dc_event" for e in client.context)
    assert any("4769" in e.text and "success" in e.text for e in client.context)


# ---- REAL DC events: lockout sources join the fleet --------------------------------------------------------------


def test_real_spray_log_alone_is_read_and_summarised_without_a_capture():
    out = run("analyze", "--events", str(SPRAY), "--json", "-")
    assert out.returncode == 3, out.stderr  # no client registration in a DC's log
    doc = json.loads(out.stdout)
    assert doc["context"]["dc_events"]["files"] == [str(SPRAY)] and doc["context"]["dc_events"]["events"] == 11
    # One bad password each for Administrator and backdoor, from one address: nothing locked, no source of a
    # lockout (the same rule as for the capture's own failures).
    assert [f for f in doc["fleet"] if f["code"] == "lockout_sources"] == []


@needs_tshark
def test_dc_lockout_sources_become_a_fleet_finding_when_the_capture_has_no_kdc_traffic(tmp_path):
    full = analyze([str(CAPTURES / "user_lockout.pcapng")], progress=False)
    [own] = [f for f in full.fleet if f.code == "lockout_sources"]
    events = constructed_dc_log(full, offset=3.0)
    mp = analyze([_mp_side(tmp_path, "user_lockout")], progress=False,
                 beside=Beside(dc_events=DcEventLog(events=events, files=["constructed"])))
    [dc] = [f for f in mp.fleet if f.code == "lockout_sources"]
    assert dc.input is None and dc.subject.split("@")[0].lower() == own.subject.split("@")[0].lower()
    assert sorted(s["address"] for s in dc.sources) == sorted(s["address"] for s in own.sources)
    assert dc.evidence and all(e.source == "dc_event" for e in dc.evidence)


def test_dc_lockout_sources_merge_into_the_capture_s_own():
    capture = analyze([str(CAPTURES / "user_lockout.pcapng")], progress=False)
    [own] = [f for f in capture.fleet if f.code == "lockout_sources"]
    events = constructed_dc_log(capture, offset=3.0)
    merged = analyze([str(CAPTURES / "user_lockout.pcapng")], progress=False,
                     beside=Beside(dc_events=DcEventLog(events=events, files=["constructed"])))
    lockouts = [f for f in merged.fleet if f.code == "lockout_sources"]
    assert len(lockouts) == 1 and lockouts[0].subject == own.subject  # one finding, not two
    assert "The DC's log shows" in lockouts[0].summary
    assert any(e.source == "dc_event" for e in lockouts[0].evidence)


# ---- logs without a capture (LAB logs) ---------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_logs_only_run_gives_the_manifest_verdicts(manifest: Path):
    name = manifest.stem
    out = run("analyze", *_logs(name), "--json", "-")
    assert "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    assert doc["inputs"] == [] and all(c["source"] == "logs" for c in doc["clients"])
    by_ip = {c["ip"]: c for c in doc["clients"]}
    for client in json.loads(manifest.read_text())["clients"]:
        got = by_ip.get(client["client_ip"])
        if got is None:  # never reached the MP: no log line of it
            assert f" {client['client_ip']} " not in (CAPTURES / f"{name}.iis.log").read_text()
            continue
        truth = client.get("truth") or {}
        assert got["verdict"] == truth.get("verdict", client["verdict"]), client["client_ip"]
        assert got["evidence"] and all(e["file"] and e["line"] for e in got["evidence"])
    verdicts = [c["verdict"] for c in doc["clients"]]
    expected = 3 if not verdicts else (0 if all(v == "approved" for v in verdicts) else 1)
    assert out.returncode == expected


def test_logs_only_table_lists_the_clients_and_explains_the_failed_ones():
    out = run("analyze", *_logs("duplicate_guid"))
    assert out.returncode == 1, out.stderr
    assert "no capture: per-client verdicts from the logs alone" in out.stdout
    assert "WK10" in out.stdout and "WK11 — not_approved (from the logs)" in out.stdout


def test_a_folder_of_logs_works_like_the_files(tmp_path):
    for suffix in ("iis.log", "MP_RegistrationManager.log"):
        shutil.copy(CAPTURES / f"mixed.{suffix}", tmp_path / f"mixed.{suffix}")
    files = json.loads(run("analyze", str(CAPTURES / "mixed.pcapng"), *_logs("mixed"), "--json", "-").stdout)
    folder = json.loads(run("analyze", str(CAPTURES / "mixed.pcapng"), "--logs", str(tmp_path), "--json", "-").stdout)
    assert [c["causes"][0]["code"] for c in folder["clients"]] == [c["causes"][0]["code"] for c in files["clients"]]
    assert sum(f["matched"] for f in folder["context"]["logs"]) == sum(f["matched"] for f in files["context"]["logs"])


# ---- bad context files, help, fix script --------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--iis-log", "--mp-log", "--client-log", "--logs", "--events", "--spn-file",
                                    "--trusts-file", "--keytab"])
def test_an_unusable_context_file_exits_two_with_a_clear_message(tmp_path, option):
    capture = str(CAPTURES / "ok_same_realm.pcapng")
    missing = str(tmp_path / "nothing-here")
    out = run("analyze", capture, option, missing)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "nothing-here" in out.stderr and out.stderr.startswith("kerbtrace: ")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01garbage\xff" * 50)
    if option != "--logs":
        out = run("analyze", capture, option, str(garbage))
        assert out.returncode == 2 and "Traceback" not in out.stderr and "garbage.bin" in out.stderr, out.stderr


def test_a_bad_line_in_a_log_is_a_warning_with_file_and_line(tmp_path):
    log = tmp_path / "u_ex.log"
    text = (CAPTURES / "spn_missing.iis.log").read_text().splitlines()
    log.write_text("\n".join(text[:5] + ["2026-11-21 not a complete line"] + text[5:]) + "\n")
    out = run("analyze", str(CAPTURES / "spn_missing.pcapng"), "--iis-log", str(log), "--json", "-")
    assert out.returncode == 1, out.stderr
    warnings = json.loads(out.stdout)["warnings"]
    assert any(w["message"].startswith(f"{log}:6: ") and w["input"] is None for w in warnings), warnings


def test_help_lists_the_context_options_with_examples():
    out = run("analyze", "--help")
    assert out.returncode == 0
    for option in ("--iis-log", "--mp-log", "--client-log", "--logs", "--events", "--directory", "--spn-file",
                   "--trusts-file", "--keytab", "--fix-script", "--ldap-user"):
        assert option in out.stdout, option
    assert "kerbtrace analyze --logs" in out.stdout and "--events dc01-security.evtx" in out.stdout


def test_no_capture_and_no_context_is_a_usage_error():
    out = run("analyze")
    assert out.returncode == 2 and "needs a CAPTURE" in out.stderr


def test_fix_script_without_fix_commands_writes_nothing_and_says_so(tmp_path):
    script = tmp_path / "fix.ps1"
    out = run("analyze", str(CAPTURES / "ok_same_realm.pcapng"), "--fix-script", str(script))
    assert out.returncode == 0
    assert not script.exists() and f"no fix script written to {script}" in out.stderr


def test_an_unreachable_directory_exits_two_before_reading_the_capture():
    out = run("analyze", str(CAPTURES / "ok_same_realm.pcapng"), "--directory", "ldap://127.0.0.1:1",
              "--ldap-bind", "anonymous", "--ldap-timeout", "2")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("kerbtrace: ldap://127.0.0.1:1") and out.stdout == ""


@pytest.mark.skipif(shutil.which("ktutil") is None, reason="MIT ktutil (krb5-user) writes the keytab")
def test_a_keytab_is_loaded_once_named_in_the_json_and_its_key_never_shown(tmp_path):
    keytab = tmp_path / "mp01.keytab"
    script = (f"addent -password -p HTTP/mp01.corp.lab@CORP.LAB -k 3 -e aes256-cts-hmac-sha1-96\nN0t-the-lab's!\n"
              f"wkt {keytab}\nquit\n")
    subprocess.run(["ktutil"], input=script, text=True, capture_output=True, check=True)
    from impacket.krb5.keytab import Keytab as ImpacketKeytab

    [entry] = ImpacketKeytab(keytab.read_bytes()).entries
    key = bytes(entry.main_part["keyblock"]["keyvalue"]["data"])
    out = run("analyze", str(CAPTURES / "spn_on_other_account.pcapng"), "--keytab", str(keytab), "--json", "-", "-v")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert doc["context"]["keytab"] == {"file": str(keytab), "principals": ["HTTP/mp01.corp.lab@CORP.LAB"]}
    for form in (key.hex(), key.hex().upper(), base64.b64encode(key).decode()):
        assert form not in out.stdout + out.stderr
