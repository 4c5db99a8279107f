"""DC Security events beside the capture: reading exports, joining events to clients, lockout sources.

Two kinds of input, kept apart:
- REAL: the exported Security logs of real Windows DCs in `tests/data/evtx/` (GPL-3.0, see the README
  there), read through the EVTX parser with the counts and codes their provenance lists.
- CONSTRUCTED: event records built in memory, in the schema of 4768/4769/4771 (EventData names and value
  spellings as the real files show them), from the KDC replies the lab's captures contain. They stand
  for a DC's log of the lab's exchanges; no real DC logged them, and no .evtx file is forged from them.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kerbtrace.analysis import Analysis, analyze
from kerbtrace.context.dc_events import DcEvent, load_dc_events, to_event
from kerbtrace.context.dc_join import (
    estimate_offset,
    join_clients,
    keep_for_clients,
    lockout_sources,
)
from kerbtrace.context.text import parse_time
from tests.conftest import CAPTURES

REAL_EVTX = Path(__file__).resolve().parent / "data" / "evtx"
SPRAY = REAL_EVTX / "kerberos_pwd_spray_4771.evtx"
SPOOF = REAL_EVTX / "samaccount_spoofing_CVE-2021-42287_CVE-2021-42278_DC_securitylogs.evtx"
LOGON = REAL_EVTX / "CA_4624_4625_LogonType2_LogonProc_chrome.evtx"
DC = "dc01.corp.lab"
#: The lab names the check `account_revoked`; the DC's log tells the lockout apart.
SAME_CHECK = {"account_locked": "account_revoked"}
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark makes the MP-side views")


# ---- REAL DC logs --------------------------------------------------------------------------------------


def _codes(events: list[DcEvent]) -> dict[tuple[int, int | None], int]:
    out: dict[tuple[int, int | None], int] = {}
    for e in events:
        key = (e.event_id, e.status if e.event_id != 4625 else e.nt_status)
        out[key] = out.get(key, 0) + 1
    return out


def test_real_password_spray_log_counts_and_codes():
    log = load_dc_events([str(SPRAY)])
    assert log.usable and not log.warnings
    assert log.records == 12  # 1102 x1, 4768 x9, 4771 x2
    assert _codes(log.events) == {(4768, 0x6): 7, (4768, 0x0): 2, (4771, 0x18): 2}
    assert {e.computer for e in log.events} == {"01566s-win16-ir.threebeesco.com"}
    assert {e.address for e in log.events} == {"172.16.66.1"}  # one of them is logged as ::ffff:172.16.66.1
    bad = [e for e in log.events if e.event_id == 4771]
    assert [(e.account, e.record, e.port, e.preauth_type) for e in bad] == [
        ("Administrator", 887114, 55967, 2), ("backdoor", 887115, 55968, 2)]
    assert all(e.describe().endswith("failure KDC_ERR_PREAUTH_FAILED (24)") for e in bad)
    unknown = [e for e in log.events if e.status == 6]
    assert all("KDC_ERR_C_PRINCIPAL_UNKNOWN (6)" in e.describe() and e.etype is None for e in unknown)
    assert parse_time("2020-07-22T20:29:36.425365Z") == pytest.approx(bad[0].time)


def test_real_password_spray_gives_the_lockout_sources():
    sources = lockout_sources(load_dc_events([str(SPRAY)]).events)
    assert [(s.principal, s.failures, s.addresses, s.locked) for s in sources] == [
        ("Administrator", 1, [("172.16.66.1", 1)], False), ("backdoor", 1, [("172.16.66.1", 1)], False)]
    evidence = sources[0].evidence[0]
    assert (evidence.source, evidence.frame, evidence.file, evidence.line) == ("dc_event", None, str(SPRAY), 887114)


def test_real_successful_tickets_carry_service_account_etype_and_options():
    log = load_dc_events([str(SPOOF)])
    assert log.records == 18
    assert _codes(log.events) == {(4768, 0): 2, (4769, 0): 2}
    tgs = [e for e in log.events if e.event_id == 4769]
    assert [(e.account, e.service, e.etype, e.ticket_options, e.address, e.port) for e in tgs] == [
        ("lgrove@THREEBEESCO.COM", "01566S-WIN16-IR$", 0x12, 0x40810000, "172.16.66.19", 50612),
        ("01566s-win16-ir@THREEBEESCO.COM", "01566S-WIN16-IR$", 0x12, 0x40800018, "172.16.66.19", 50617)]
    tgt = [e for e in log.events if e.event_id == 4768]
    assert [(e.account, e.etype) for e in tgt] == [("lgrove@threebeesco.com", 0x12), ("01566s-win16-ir@threebeesco.com",
                                                                                      0x17)]
    assert "ticket rc4-hmac" in tgt[1].describe()


def test_real_logon_failure_names_its_ntstatus():
    log = load_dc_events([str(LOGON)])
    assert log.records == 4 and len(log.events) == 1
    event = log.events[0]
    assert (event.event_id, event.nt_status, event.nt_substatus, event.address) == (4625, 0xC000006D, 0xC000006A,
                                                                                    None)
    assert event.code_labels() == ["STATUS_LOGON_FAILURE (0xC000006D)", "STATUS_WRONG_PASSWORD (0xC000006A)"]
    assert [s.principal for s in lockout_sources(log.events)] == ["IEUser@MSEDGEWIN10"]


def test_a_folder_of_exports_is_read_whole():
    log = load_dc_events([str(REAL_EVTX)])
    assert len(log.files) == 3 and log.records == 34 and len(log.events) == 16 and not log.errors


# ---- bad input -----------------------------------------------------------------------------------------


def test_garbage_truncated_and_empty_files_are_clear_errors(tmp_path):
    data = SPRAY.read_bytes()
    (tmp_path / "garbage.evtx").write_bytes(b"\x13\x37" * 300)
    (tmp_path / "truncated.evtx").write_bytes(data[:40000])  # the header, then part of the only chunk
    (tmp_path / "empty.evtx").write_bytes(b"")
    damaged = bytearray(data)
    damaged[0x1200:0x1800] = bytes(b ^ 0x5A for b in damaged[0x1200:0x1800])
    (tmp_path / "damaged.evtx").write_bytes(bytes(damaged))
    names = ["garbage", "truncated", "empty", "damaged", "missing"]
    log = load_dc_events([str(tmp_path / f"{n}.evtx") for n in names] + [str(SPRAY)])
    errors = dict(zip(names, log.errors, strict=True))
    assert "not an EVTX file" in errors["garbage"]
    assert "no event record could be read" in errors["truncated"] and "truncated" in errors["truncated"]
    assert "empty" in errors["empty"]
    assert "damaged records" in errors["damaged"]
    assert "cannot be read" in errors["missing"]
    assert all(str(tmp_path) in e for e in log.errors)
    assert log.files == [str(SPRAY)] and len(log.events) == 11  # the good file is still read


def test_the_command_line_never_shows_a_traceback(tmp_path):
    bad = tmp_path / "bad.evtx"
    bad.write_bytes(b"ElfFile\x00" + b"\xff" * 100)
    out = subprocess.run(["python", "-c", "import sys; from kerbtrace.context.dc_events import load_dc_events; "
                          "log = load_dc_events(sys.argv[1:]); print(log.errors)", str(bad)],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], check=True)
    assert "Traceback" not in out.stderr and str(bad) in out.stdout


# ---- other export formats (CONSTRUCTED text, in the layout each tool writes) -------------------------------

_XML_EVENT = """<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider
Name='Microsoft-Windows-Security-Auditing'/><EventID>4769</EventID>
<TimeCreated SystemTime='2026-12-04T16:01:49.1234567Z'/>
<EventRecordID>{n}</EventRecordID><Channel>Security</Channel><Computer>dc01.corp.lab</Computer></System><EventData>
<Data Name='TargetUserName'>WK03$@CORP.LAB</Data><Data Name='TargetDomainName'>CORP.LAB</Data><Data
Name='ServiceName'>HTTP/mp04.corp.lab</Data><Data Name='ServiceSid'>S-1-0-0</Data><Data
Name='TicketOptions'>0x40810000</Data><Data Name='TicketEncryptionType'>0xffffffff</Data><Data
Name='IpAddress'>::ffff:127.0.1.3</Data><Data Name='IpPort'>50123</Data><Data Name='Status'>0x7</Data>
</EventData></Event>"""


def _check_spn_failure(event: DcEvent, record: int) -> None:
    assert (event.event_id, event.account, event.service, event.address, event.port, event.status, event.etype,
            event.record) == (4769, "WK03$@CORP.LAB", "HTTP/mp04.corp.lab", "127.0.1.3", 50123, 7, None, record)
    assert event.time == pytest.approx(datetime(2026, 12, 4, 16, 1, 49, tzinfo=UTC).timestamp() + 0.1234567)


def test_wevtutil_xml_utf16_and_a_cut_tail(tmp_path):
    path = tmp_path / "security.xml"
    text = _XML_EVENT.format(n=41) + "\r\n" + _XML_EVENT.format(n=42) + "\r\n" + _XML_EVENT.format(n=43)[:200]
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))  # PowerShell's `>` writes UTF-16 with a BOM
    log = load_dc_events([str(path)])
    assert [e.record for e in log.events] == [41, 42]
    _check_spn_failure(log.events[0], 41)
    assert log.warnings and "truncated" in log.warnings[0]


def test_xml_that_is_not_events_is_an_error_with_its_line(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text("<Event>\n<System>\n<EventID>4769</Event>\n")
    log = load_dc_events([str(path)])
    assert log.errors and "line 3" in log.errors[0]


def test_powershell_csv_is_read_from_the_message_text(tmp_path):
    message = ("A Kerberos service ticket was requested.\n\nAccount Information:\n\tAccount Name:\t\tWK03$@CORP.LAB\n"
               "\tAccount Domain:\t\tCORP.LAB\n\tLogon GUID:\t\t{00000000-0000-0000-0000-000000000000}\n\n"
               "Service Information:\n\tService Name:\t\tHTTP/mp04.corp.lab\n\tService ID:\t\tNULL SID\n\n"
               "Network Information:\n\tClient Address:\t\t::ffff:127.0.1.3\n\tClient Port:\t\t50123\n\n"
               "Additional Information:\n\tTicket Options:\t\t0x40810000\n\tTicket Encryption Type:\t0xFFFFFFFF\n"
               "\tFailure Code:\t\t0x7\n\tTransited Services:\t-")
    rows = [["Message", "Id", "RecordId", "MachineName", "TimeCreated"],
            [message, "4769", "77", "dc01.corp.lab", "2026-12-04T16:01:49.1234567Z"]]
    path = tmp_path / "security.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        fh.write("#TYPE System.Diagnostics.Eventing.Reader.EventLogRecord\n")
        csv.writer(fh, quoting=csv.QUOTE_ALL).writerows(rows)
    log = load_dc_events([str(path)])
    assert not log.errors and len(log.events) == 1
    _check_spn_failure(log.events[0], 77)


def test_powershell_json_properties_are_read_by_position(tmp_path):
    values = ["WK03$@CORP.LAB", "CORP.LAB", "HTTP/mp04.corp.lab", "S-1-0-0", "0x40810000", "0xffffffff",
              "::ffff:127.0.1.3", "50123", "0x7"]
    moment = int(datetime(2026, 12, 4, 16, 1, 49, 123456, tzinfo=UTC).timestamp() * 1000)
    item = {"Id": 4769, "RecordId": 78, "MachineName": DC, "TimeCreated": f"/Date({moment})/",
            "Properties": [{"Value": v} for v in values]}
    path = tmp_path / "security.json"
    path.write_text(json.dumps([item, {"Id": 4624, "RecordId": 79}], indent=2))
    log = load_dc_events([str(path)])
    assert log.records == 2 and len(log.events) == 1
    event = log.events[0]
    assert (event.service, event.status, event.address, event.record) == ("HTTP/mp04.corp.lab", 7, "127.0.1.3", 78)
    assert event.time == pytest.approx(moment / 1000)


# ---- joins with the lab's captures (CONSTRUCTED records, see the module docstring) -------------------------


def constructed_dc_log(analysis: Analysis, offset: float, spn_account: str | None = None) -> list[DcEvent]:
    """What a Windows DC would log for the KDC replies in this capture, its clock `offset` seconds ahead:
    4768 for an AS reply or AS error, 4771 for KDC_ERR_PREAUTH_FAILED, 4769 for a TGS reply or TGS error
    (ServiceName = the SPN asked for on a failure, the service's account on success), no event for the
    normal KDC_ERR_PREAUTH_REQUIRED. Values are spelt as in the real files (hex strings, ::ffff: addresses).
    `spn_account` names the account a ticket for an HTTP SPN is issued under (else the host's `NAME$`)."""
    accounts = {r.client.ip: r.client.account for r in analysis.clients}
    request_kind: dict[tuple[str, str], int] = {}
    events = []
    for record in analysis.kerberos:
        if record.transport == "http":
            continue
        if record.msg_type in (10, 12):
            request_kind[(record.src, record.dst)] = record.msg_type
            continue
        if record.msg_type not in (11, 13, 30) or record.error_code in (25, 52):
            continue
        user = (record.cname or accounts.get(record.dst) or "-").split("@")[0]
        realm = record.realm or "-"
        stamp = datetime.fromtimestamp(record.time + offset, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        fields = {"SystemTime": stamp, "Computer": DC, "EventRecordID": str(5000 + record.frame),
                  "IpAddress": f"::ffff:{record.dst}", "IpPort": "50000", "TicketOptions": "0x40810010"}
        code = f"0x{record.error_code or 0:x}"
        tgs = record.msg_type == 13 or (record.msg_type == 30 and request_kind.get((record.dst, record.src)) == 12)
        if record.error_code == 24:
            event_id = 4771
            fields.update(TargetUserName=user, ServiceName=f"krbtgt/{realm}", Status=code, PreAuthType="2")
        elif tgs:
            event_id = 4769
            service = record.sname if record.msg_type == 30 else record.sname.split("/")[-1].split(".")[0].upper() + "$"
            if record.msg_type == 13 and spn_account and record.sname.lower().startswith("http/"):
                service = spn_account
            fields.update(TargetUserName=f"{user}@{realm}", TargetDomainName=realm, ServiceName=service, Status=code,
                          TicketEncryptionType="0x12" if record.msg_type == 13 else "0xffffffff")
        else:
            event_id = 4768
            fields.update(TargetUserName=user, TargetDomainName=realm, ServiceName="krbtgt", Status=code,
                          PreAuthType="2", TicketEncryptionType="0x12" if record.msg_type == 11 else "0xffffffff")
        events.append(to_event(event_id, fields, "constructed"))
    return events


def _mp_side(tmp_path: Path, name: str) -> Analysis:
    """The same exchange as a capture on the MP would hold it: only the HTTP connections (port 80)."""
    out = tmp_path / f"{name}.mp.pcapng"
    subprocess.run(["tshark", "-r", str(CAPTURES / f"{name}.pcapng"), "-Y", "tcp.port == 80", "-w", str(out)],
                   check=True, capture_output=True)
    return analyze([str(out)], progress=False)


def _views(analysis: Analysis, events: list[DcEvent]):
    return join_clients([r.client for r in analysis.clients], events, analysis.kerberos)


def test_client_side_capture_estimates_the_dc_clock_offset_and_confirms_spn_missing():
    full = analyze([str(CAPTURES / "spn_missing.pcapng")], progress=False)
    events = constructed_dc_log(full, offset=1800.0)  # the DC's clock is 30 minutes ahead of the capture's
    offset, pairs = estimate_offset(events, full.kerberos)
    assert offset == pytest.approx(1800.0, abs=0.001) and pairs == 3  # AS-REP + two TGS errors
    [view] = _views(full, events)
    assert view.cause == "spn_missing" and full.clients[0].primary.code == "spn_missing"
    statement = view.says("spn_missing")
    assert "HTTP/mp04.corp.lab" in statement.text and statement.codes == ["KDC_ERR_S_PRINCIPAL_UNKNOWN (7)"]
    [evidence] = statement.evidence
    assert (evidence.source, evidence.frame, evidence.file, evidence.line) == ("dc_event", None, "constructed", 5021)
    assert evidence.locator() == "constructed:5021"


@needs_tshark
def test_mp_side_capture_plus_dc_log_gives_spn_missing(tmp_path):
    full = analyze([str(CAPTURES / "spn_missing.pcapng")], progress=False)
    mp = _mp_side(tmp_path, "spn_missing")
    [result] = mp.clients
    assert not result.client.kdc and all(f.code != "spn_missing" for f in result.findings)  # capture alone: NTLM
    assert result.client.account is None  # the MP saw NTLM: the join goes by host name (WK03$) and address
    [view] = _views(mp, constructed_dc_log(full, offset=4.0))
    assert view.offset is None  # no KDC reply on the MP: the offset is unknown, not assumed zero
    assert view.cause == "spn_missing"
    assert view.says("spn_missing").evidence[0].text.startswith(
        f"DC {DC}: 4769 service ticket request (TGS) for HTTP/mp04.corp.lab by WK03$@CORP.LAB from 127.0.1.3")


@needs_tshark
def test_an_unknown_offset_beyond_the_slack_matches_nothing(tmp_path):
    full = analyze([str(CAPTURES / "spn_missing.pcapng")], progress=False)
    [view] = _views(_mp_side(tmp_path, "spn_missing"), constructed_dc_log(full, offset=1800.0))
    assert view.events == [] and view.cause is None and view.statements == []


@needs_tshark
def test_mp_side_capture_plus_dc_log_gives_the_lockout_and_its_sources(tmp_path):
    full = analyze([str(CAPTURES / "account_locked.pcapng")], progress=False)
    events = constructed_dc_log(full, offset=-2.5)
    [mp_result] = (mp := _mp_side(tmp_path, "account_locked")).clients
    assert mp_result.primary.code == "no_ticket_kdc_not_visible"  # the capture alone can only hedge
    [view] = _views(mp, events)
    assert view.cause == "account_locked"
    statement = view.says("account_locked")
    assert "3 failed pre-authentication(s) for WK06$" in statement.text and "127.0.1.6 (3)" in statement.text
    assert "KDC_ERR_CLIENT_REVOKED (18)" in statement.codes
    [source] = lockout_sources(events)
    assert (source.principal, source.failures, source.addresses, source.locked) == ("WK06$", 3, [("127.0.1.6", 3)],
                                                                                     True)


def test_approved_client_shows_the_ticket_for_the_mp_was_issued():
    full = analyze([str(CAPTURES / "ok_same_realm.pcapng")], progress=False)
    [view] = _views(full, constructed_dc_log(full, offset=0.25))
    assert view.cause is None
    assert [s.cause for s in view.statements] == ["mp_ticket_issued", "tgt_issued"]
    assert "account MP01$" in view.says("mp_ticket_issued").text


@needs_tshark
def test_mixed_capture_on_the_mp_every_kdc_side_cause_comes_from_the_dc_log(tmp_path):
    """On the MP no KDC exchange is visible; the DC's log must give back each client's own cause, and
    no client may get another client's events."""
    manifest = {c["client_ip"]: c for c in json.loads((CAPTURES / "mixed.json").read_text())["clients"]}
    full = analyze([str(CAPTURES / "mixed.pcapng")], progress=False)
    events = constructed_dc_log(full, offset=7.0)
    mp = _mp_side(tmp_path, "mixed")
    kdc_side = {"spn_missing", "no_trust_path", "account_revoked", "trust_broken", "etype_unsupported"}
    seen = set()
    for result, view in zip(mp.clients, _views(mp, events), strict=True):
        want = manifest[result.client.ip]["cause"]
        assert {e.address for e in view.events} <= {result.client.ip}, result.client.ip
        if want in kdc_side:
            assert SAME_CHECK.get(view.cause, view.cause) == want, (result.client.ip, view.statements)
            seen.add(want)
        else:
            assert view.cause is None, (result.client.ip, want, view.cause)
    assert seen == kdc_side



def test_loading_for_known_clients_keeps_their_successes_and_every_failure():
    full = analyze([str(CAPTURES / "ok_same_realm.pcapng")], progress=False)
    keep = keep_for_clients([r.client for r in full.clients])
    log = load_dc_events([str(SPRAY), str(SPOOF)], keep=keep)
    # the lab client is in neither real log: only the failures stay (7 x 4768 0x6, 2 x 4771 0x18)
    assert _codes(log.events) == {(4768, 0x6): 7, (4771, 0x18): 2}
    assert keep(constructed_dc_log(full, 0.0)[0])


@needs_tshark
def test_the_dc_names_the_account_holding_the_spn_when_the_capture_shows_the_ticket(tmp_path):
    """The lab's MP simply lacks the key; the constructed 4769 says what a Windows DC would log if
    HTTP/mp01.corp.lab sat on the user svc-sql (an issued ticket names the account, not the SPN)."""
    full = analyze([str(CAPTURES / "spn_on_other_account.pcapng")], progress=False)
    events = constructed_dc_log(full, offset=-42.0, spn_account="svc-sql")
    [view] = _views(full, events)
    assert view.offset == pytest.approx(-42.0, abs=0.001)
    assert view.cause == "spn_wrong_account"
    statement = view.says("spn_wrong_account")
    assert "under the account svc-sql, not the MP's computer account MP01$" in statement.text
    frame, event = statement.evidence
    assert (frame.source, frame.frame) == ("capture", 19) and (event.source, event.line) == ("dc_event", 5019)
    # The same log beside the MP's capture: nothing pairs the 4769 with the MP's SPN, so nothing is claimed.
    [mp_view] = _views(_mp_side(tmp_path, "spn_on_other_account"), events)
    assert mp_view.offset is None and mp_view.says("spn_wrong_account") is None
    assert mp_view.cause is None and mp_view.events  # the events are listed, without a cause


def test_the_real_logs_read_the_same_as_xml_and_json_lines(tmp_path):
    """The real records re-rendered by the EVTX library as wevtutil-style XML (Event elements without a
    root, each with its own declaration stripped) and as evtx_dump-style JSON lines give the same events."""
    from evtx import PyEvtxParser

    for path in (SPRAY, SPOOF, LOGON):
        xml = "\n".join(r["data"].split("?>", 1)[1] for r in PyEvtxParser(str(path)).records())
        jsonl = "\n".join(json.dumps(json.loads(r["data"])) for r in PyEvtxParser(str(path)).records_json())
        (tmp_path / "a.xml").write_text(xml)
        (tmp_path / "a.jsonl").write_text(jsonl)
        want = [dataclasses.replace(e, file="") for e in load_dc_events([str(path)]).events]
        for other in ("a.xml", "a.jsonl"):
            log = load_dc_events([str(tmp_path / other)])
            assert not log.errors and not log.warnings, other
            assert [dataclasses.replace(e, file="") for e in log.events] == want, (path.name, other)
