"""`kerbtrace explain`: every notation an admin meets gives the right entry; names agree with impacket."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kerbtrace import codes
from kerbtrace.cli import build_parser, main
from kerbtrace.explain import ExplainError, explain, to_json

REPO = Path(__file__).resolve().parents[1]
# Real DC Security logs: shipped in tests/data/evtx, or the reference copies beside the repository.
REAL_EVENT_DIRS = (REPO / "tests" / "data" / "evtx", REPO.parent / "shared" / "real-events")

krb = pytest.importorskip("impacket.krb5.constants")
nt_errors = pytest.importorskip("impacket.nt_errors")
hresult_errors = pytest.importorskip("impacket.hresult_errors")
system_errors = pytest.importorskip("impacket.system_errors")


def _krb_name(value: int) -> str:
    return krb.ErrorCodes(value).name


def _names(text: str) -> list[str]:
    return [m.info.name for m in explain(text).matches]


def _only(text: str):
    result = explain(text)
    assert len(result.matches) == 1, [m.info.label() for m in result.matches]
    return result.matches[0]


# --------------------------------------------------------------------------------------------- notations


@pytest.mark.parametrize("text", ["2148074254", "0x8009030E", "0x8009030e", "8009030E", "-2146893042",
                                  "sec_e_no_credentials", "SEC_E_NO_CREDENTIALS", "hresult 0x8009030E"])
def test_sec_e_no_credentials_in_every_notation(text):
    match = _only(text)
    assert match.info.name == hresult_errors.ERROR_MESSAGES[0x8009030E][0] == "SEC_E_NO_CREDENTIALS"
    assert match.info.kind == "hresult" and match.info.value == 0x8009030E
    assert match.info.meaning and match.info.approval


def test_sec_i_names_and_values():
    for text in ("sec_i_continue_needed", "0x00090312", "590610"):
        match = _only(text)
        assert match.info.name == hresult_errors.ERROR_MESSAGES[0x00090312][0]
        assert match.info.normal


@pytest.mark.parametrize("text", ["41", "0x29", "KRB_AP_ERR_MODIFIED", "krb_ap_err_modified",
                                  "KRB5KRB_AP_ERR_MODIFIED", "krb-ap-err-modified", "krb 41"])
def test_kerberos_numbers_and_names(text):
    match = explain(text).matches[0]
    assert match.info.kind == "krb" and match.info.value == 41
    assert match.info.name == _krb_name(41)
    assert "setspn" in match.info.fix and "not auto-approved" in match.info.approval


def test_mit_kdc_spelling_and_every_impacket_kerberos_name():
    assert _only("KRB5KDC_ERR_PREAUTH_FAILED").info.value == 24
    for error in krb.ErrorCodes:
        match = next(m for m in explain(error.name).matches if m.info.kind == "krb")
        assert match.info.value == error.value, error


@pytest.mark.parametrize("text", ["0xC0000234", "C0000234", "3221226036", "-1073741260", "status_account_locked_out"])
def test_ntstatus(text):
    match = _only(text)
    assert match.info.kind == "ntstatus"
    assert match.info.name == nt_errors.ERROR_MESSAGES[0xC0000234][0] == "STATUS_ACCOUNT_LOCKED_OUT"


def test_every_listed_ntstatus_hresult_and_win32_is_found_by_its_hex_and_matches_impacket():
    for value, info in codes.NTSTATUS.items():
        assert info in [m.info for m in explain(f"0x{value:08X}").matches]
        assert nt_errors.ERROR_MESSAGES[value][0] == info.name
    for value, info in codes.HRESULTS.items():
        found = [m.info for m in explain(f"0x{value:08X}").matches]
        assert info in found, info.label()
        if value in hresult_errors.ERROR_MESSAGES:
            assert hresult_errors.ERROR_MESSAGES[value][0] == info.name
    for value, info in codes.WIN32.items():
        assert info in [m.info for m in explain(str(value)).matches]
        if value in system_errors.ERROR_MESSAGES:
            assert system_errors.ERROR_MESSAGES[value][0] == info.name


def test_winhttp_in_an_hresult_and_as_win32():
    wrapped = _only("0x80072EE7").info
    plain = next(m.info for m in explain("12007").matches if m.info.kind == "win32")
    assert wrapped.name == plain.name == "ERROR_WINHTTP_NAME_NOT_RESOLVED"
    assert wrapped.kind == "hresult" and wrapped.value == 0x80072EE7 and wrapped.approval == plain.approval
    # An HRESULT_FROM_WIN32 whose Win32 code impacket knows carries impacket's name.
    assert _only("0x8007052E").info.name == system_errors.ERROR_MESSAGES[1326][0]


def test_logs_print_hresults_as_eight_digits_without_0x():
    match = _only("80070005")
    assert match.info.name == hresult_errors.ERROR_MESSAGES[0x80070005][0] == "E_ACCESSDENIED"
    assert "read as hex" in match.reading


@pytest.mark.parametrize("text", ["0x87D00231", "0x87d00231", "87D00231", "2278556209", "-2016411087"])
def test_configmgr_code(text):
    match = _only(text)
    assert match.info.kind == "ccm" and match.info.value == 0x87D00231
    assert match.info.name == "CCM_TRANSIENT_ERROR"
    assert match.info.fix and match.info.approval


def test_every_configmgr_entry_is_in_the_0x87d0_range_and_carries_all_texts():
    assert len(codes.CCM_HRESULTS) >= 20
    for value, info in codes.CCM_HRESULTS.items():
        assert value & 0xFFFF0000 == 0x87D00000 and info.name.startswith("CCM_")
        assert info.meaning.startswith("CMTrace: '") and info.approval
        assert _only(str(value)).info is info  # IIS-style unsigned decimal


# --------------------------------------------------------------------------------------------- events


@pytest.mark.parametrize("text", ["4771 0x18", "4771:0x18", "event 4771 0x18", "EVENT 4771 0x18",
                                  "eventid=4771 0x18", "4771 24"])
def test_event_with_its_result_code(text):
    match = _only(text)
    assert match.info.kind == "event" and match.info.value == 4771
    assert [(f, c.name) for f, c in match.results] == [("Failure Code", _krb_name(24))]


def test_event_4625_status_and_sub_status_are_ntstatus():
    match = _only("4625 0xC000006D 0xC000006A")
    assert [(f, c.name) for f, c in match.results] == [
        ("Status", nt_errors.ERROR_MESSAGES[0xC000006D][0]), ("Sub Status", nt_errors.ERROR_MESSAGES[0xC000006A][0])]


def test_event_4776_error_code_is_ntstatus_and_4768_result_is_kerberos():
    assert _only("4776 0xC0000234").results[0][1].name == "STATUS_ACCOUNT_LOCKED_OUT"
    assert _only("4768 0x12").results[0][1].name == _krb_name(18)
    assert _only("4769 0x7").results[0][1].name == _krb_name(7)


def test_event_without_a_result_field_says_so():
    result = explain("4740 0x18")
    assert [m.info.value for m in result.matches] == [4740] and not result.matches[0].results
    assert any("no result code" in h for h in result.hints)


def test_every_event_with_a_code_field_decodes_with_the_right_table():
    for event_id, (field_name, kind) in codes.EVENT_CODE_FIELDS.items():
        assert event_id in codes.DC_EVENTS and field_name
        assert codes.event_result(event_id, 0).kind == kind
    assert codes.event_result(4740, 0x18) is None


def test_real_dc_security_log_result_codes():
    """Result codes as a real DC wrote them (a password spray), read with the maintained evtx parser."""
    evtx = pytest.importorskip("evtx")
    path = next((d / "kerberos_pwd_spray_4771.evtx" for d in REAL_EVENT_DIRS
                 if (d / "kerberos_pwd_spray_4771.evtx").exists()), None)
    if path is None:
        pytest.skip("real DC event log kerberos_pwd_spray_4771.evtx not present")
    seen: dict[tuple[int, str], str] = {}
    for record in evtx.PyEvtxParser(str(path)).records_json():
        event = json.loads(record["data"])["Event"]
        event_id = event["System"]["EventID"]
        if event_id in (4768, 4771):
            status = event["EventData"]["Status"]
            match = _only(f"{event_id} {status}")
            seen[(event_id, status)] = match.results[0][1].name
    assert seen == {(4768, "0x6"): _krb_name(6), (4768, "0x0"): _krb_name(0), (4771, "0x18"): _krb_name(24)}


# --------------------------------------------------------------------------------------------- IIS


@pytest.mark.parametrize("text", ["401 2 5", "401.2 5", "401.2.5", "iis 401 2 5", "401 2 2148074254",
                                  "401.2 2148074254"])
def test_first_401_2_is_the_normal_challenge(text):
    match = _only(text)
    assert match.iis is not None and match.iis.outcome == "challenge" and match.iis.normal
    assert match.info.kind == "iis" and match.iis.status == 401 and match.iis.substatus == 2


def test_iis_status_decodes_failures_and_success():
    wrong = codes.iis_status(401, 1, 2148074274)
    assert wrong.outcome == "auth_failure" and not wrong.normal
    assert wrong.win32_info.name == hresult_errors.ERROR_MESSAGES[0x80090322][0]
    assert wrong.label() == "401.1 SEC_E_WRONG_PRINCIPAL (0x80090322)"
    leg = codes.iis_status(401, 1, 2148074254)
    assert leg.outcome == "handshake" and "NTLM" in leg.note
    broken = codes.iis_status(500, 19, 126)
    assert broken.outcome == "server_error" and broken.win32_info.name == system_errors.ERROR_MESSAGES[126][0]
    assert codes.iis_status(200, 0, 0).outcome == "success"
    assert codes.iis_status(403, 7).outcome == "client_error" and codes.iis_status(403, 7).win32_info is None
    odd = codes.iis_status(418, 9, 0xFFFFFFFF)
    assert odd.code.name == "HTTP 418.9" and odd.win32_info.name == "HRESULT_0xFFFFFFFF"


def test_bare_iis_substatus():
    match = _only("500.19")
    assert match.info.name == "Configuration data is invalid" and match.iis.outcome == "server_error"


# --------------------------------------------------------------------------------------------- ambiguity


def test_a_small_number_lists_every_table_that_holds_it():
    result = explain("5")
    kinds = [m.info.kind for m in result.matches]
    assert set(kinds) == {"win32", "krb", "dns-rcode"}
    assert kinds[0] == "win32"  # ERROR_ACCESS_DENIED is what IIS logs as sc-win32-status 5
    assert result.matches[0].info.name == system_errors.ERROR_MESSAGES[5][0]
    assert next(m for m in result.matches if m.info.kind == "krb").info.name == _krb_name(5)


def test_kerberos_numbers_that_are_also_event_ids():
    for number in (4, 11):
        kinds = [m.info.kind for m in explain(str(number)).matches]
        assert kinds[0] == "krb" and "event" in kinds, kinds
        assert explain(str(number)).matches[0].info.name == _krb_name(number)
    assert [m.info.kind for m in explain("event 11").matches] == ["event"]


def test_zero_is_success_everywhere():
    names = _names("0")
    assert {"KDC_ERR_NONE", "ERROR_SUCCESS", "STATUS_SUCCESS", "S_OK", "NOERROR"} <= set(names)


def test_a_kind_word_narrows_the_search():
    assert [m.info.kind for m in explain("win32 5").matches] == ["win32"]
    assert [m.info.kind for m in explain("krb 5").matches] == ["krb"]
    assert [m.info.kind for m in explain("dns 3").matches] == ["dns-rcode"]


def test_part_of_a_name_lists_the_names_containing_it():
    names = _names("LOCKED_OUT")
    assert {"STATUS_ACCOUNT_LOCKED_OUT", "ERROR_ACCOUNT_LOCKED_OUT"} <= set(names)
    many = explain("KDC_ERR")
    assert len(many.matches) == 20 and "more names contain KDC_ERR" in many.hints[0]


# --------------------------------------------------------------------------------------------- unknown, garbage


def test_unknown_codes_give_no_match_and_a_hint():
    assert not explain("0x80071234").found
    assert "HRESULT_FROM_WIN32(4660)" in explain("0x80071234").hints[0]
    assert "ConfigMgr" in explain("0x87D0FFFF").hints[0]
    assert "32 bits" in explain("99999999999999").hints[0]
    assert not explain("NO_SUCH_CODE_NAME").found


@pytest.mark.parametrize("text", ["", "   ", "0xZZ", "0x", "-", "--5", "401.", "4771 0xZZ", "1 2 3 4",
                                  "41 0x18", "999 1", "x" * 500, "0x" + "F" * 300, "1.5", "0x1g", "4771 KDC_ERR",
                                  "\x00", "💥"])
def test_malformed_arguments_raise_the_usage_error_only(text):
    with pytest.raises(ExplainError):
        explain(text)


@pytest.mark.parametrize("text", ["event", "ZZ", "1e5", "-0", "+5", "0", "65535", "4294967295", "-2147483648",
                                  "4294967296", "-2147483649", "event 9999 0x1", "100 0", "599 999 1"])
def test_odd_but_wellformed_arguments_never_raise(text):
    result = explain(text)
    assert isinstance(result.found, bool)
    json.dumps(to_json(result))


# --------------------------------------------------------------------------------------------- CLI


def test_cli_exit_codes(capsys):
    assert main(["explain", "41"]) == 0
    assert "KRB_AP_ERR_MODIFIED (41)" in capsys.readouterr().out
    assert main(["explain", "-2146893042"]) == 0  # a negative number is a code, not an option
    assert "SEC_E_NO_CREDENTIALS" in capsys.readouterr().out
    assert main(["explain", "0x80071234"]) == 1
    err = capsys.readouterr().err
    assert "none of kerbtrace's code tables" in err and "HRESULT_FROM_WIN32(4660)" in err
    assert main(["explain", ""]) == 2
    assert "usage" in capsys.readouterr().err
    assert main(["explain", "0xZZ"]) == 2
    assert main(["explain", "4771", "0x18"]) == 0
    out = capsys.readouterr().out
    assert "event 4771" in out and "Failure Code: KDC_ERR_PREAUTH_FAILED (24)" in out


def test_cli_json(capsys):
    assert main(["explain", "--json", "24"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "kerbtrace-explain/1" and doc["found"] and doc["query"] == "24"
    first = doc["matches"][0]
    assert first["name"] == _krb_name(24) and first["kind"] == "krb" and first["approval"] and first["fix"]
    assert main(["explain", "--json", "401", "2", "2148074254"]) == 0
    iis = json.loads(capsys.readouterr().out)["matches"][0]["iis"]
    assert iis["outcome"] == "challenge" and iis["win32_code"]["hex"] == "0x8009030E"
    assert main(["explain", "--json", "0x80071234"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert not doc["found"] and doc["matches"] == [] and doc["hints"]


def test_help_teaches_every_notation():
    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command")
    text = sub.choices["explain"].format_help()
    for example in ("2148074254", "0x8009030E", "-2146893042", "SEC_E_", "41", "KRB_AP_ERR_MODIFIED",
                    "0xC0000234", "0x80072EE7", "0x87D00231", "4771 0x18", "4771:0x18", "event 4771 0x18",
                    "401 2 5", "--json", "exit status"):
        assert example in text, example
    for line in text.splitlines():  # every example in the help really answers
        if line.startswith("  kerbtrace explain "):
            args = line.split("kerbtrace explain ", 1)[1].split("  ")[0].split()
            args = [a for a in args if a != "--json"]
            assert explain(" ".join(args)).found, line


def test_garbage_never_tracebacks_from_the_command_line():
    for arg in ("", "0xZZ", "99999999999999", "\u00ff\u00fe", "4771 0x18 0x18 0x18"):
        proc = subprocess.run([sys.executable, "-m", "kerbtrace", "explain", arg], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode in (1, 2), (arg, proc.returncode)
        assert "Traceback" not in proc.stderr and proc.stderr.strip(), arg


# --------------------------------------------------------------------------------------------- tables


def test_every_entry_says_what_it_means_for_approval():
    for info in codes.all_codes():
        assert info.approval.strip(), info.label()
    # The tables the checks use carry the same texts as explain prints.
    assert codes.krb_error(7).approval == _only("krb 7").info.approval
    assert "NTLM" in codes.krb_error(7).approval and "pending" in codes.krb_error(7).approval
    assert codes.krb_error(25).approval.startswith("Normal")
