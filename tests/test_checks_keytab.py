"""The MP's keytab beside the capture: a capture and the MP's keytab from the same lab run (real MIT KDC,
real GSSAPI client and MP; tests/data/keytab/README.md). The wrong-account ticket does not open under the
MP's keys, the approved client's does and names it, its authenticator carries the client's clock, and no
key byte reaches any output."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import kerbtrace.analysis
from kerbtrace.analysis import Analysis, analyze
from kerbtrace.checks.base import Context
from kerbtrace.checks.clock_skew import authenticator_offset
from kerbtrace.context import Beside
from kerbtrace.context.directory import parse_directory_text
from kerbtrace.context.keytab import Keytab
from kerbtrace.reports.json_report import to_json
from kerbtrace.reports.table import render
from tests.conftest import needs_tshark

DATA = Path(__file__).parent / "data" / "keytab"
DIRECTORY = Path(__file__).parent / "data" / "directory" / "export.ldf"


def keytab(scenario: str) -> Keytab:
    return Keytab(DATA / f"{scenario}.mp01.keytab")


def run(scenario: str, monkeypatch=None, *, directory: bool = False) -> tuple[Analysis, list]:
    """Analyse the scenario with its MP keytab; with `monkeypatch`, also keep the clients' AP-REQ legs
    (the analysis lets decoded messages go once the checks ran)."""
    legs: list = []
    if monkeypatch is not None:
        judge = kerbtrace.analysis.judge

        def keep(client, ctx):
            legs.extend(leg for leg in client.legs if leg.ap_req is not None)
            return judge(client, ctx)
        monkeypatch.setattr(kerbtrace.analysis, "judge", keep)
    facts = parse_directory_text(DIRECTORY.read_text(), str(DIRECTORY)) if directory else None
    analysis = analyze([str(DATA / f"{scenario}.pcapng")], beside=Beside(keytab=keytab(scenario), directory=facts))
    return analysis, legs


def test_wrong_account_ticket_does_not_open_under_the_mp_keys():
    analysis, _ = run("spn_on_other_account")
    result = analysis.clients[0]
    finding = result.findings[0]
    assert result.verdict == "not_approved" and finding.code == "spn_wrong_account"
    proof = [e for e in finding.evidence if e.source == "keytab"]
    assert len(proof) == 1 and proof[0].frame == 21 and proof[0].file.endswith("spn_on_other_account.mp01.keytab")
    assert "does not open with any key of the keytab" in proof[0].text
    assert "tried HTTP/mp01.corp.lab@CORP.LAB kvno 1" in proof[0].text  # names the keytab's principal and kvno
    assert "proven by the MP's keytab" in finding.summary


def test_ok_ticket_opens_and_names_the_client(monkeypatch):
    analysis, legs = run("ok_same_realm", monkeypatch)
    result = analysis.clients[0]
    assert result.verdict == "approved" and result.findings[0].code == "ok"
    proof_text = [e.text for e in result.findings[0].evidence if e.source == "keytab"]
    assert proof_text and "opens with the key of HTTP/mp01.corp.lab@CORP.LAB (kvno 1)" in proof_text[0]
    assert "issued to WK01$@CORP.LAB" in proof_text[0]
    leg = legs[-1]
    proof = keytab("ok_same_realm").open_ap_req(leg.token.ap_req_der)
    assert proof.opened and proof.client == "WK01$@CORP.LAB"
    assert proof.pac_client == "WK01$"  # MIT krb5 1.15+ issues a PAC with the client info buffer
    # the client's clock, from inside the authenticator, against the capture clock of the AP-REQ frame
    assert abs(proof.authenticator_time - leg.request_time) < 1.0
    # what clock_skew reads: the same offset, from the last AP-REQ the keytab opens
    offset = authenticator_offset(SimpleNamespace(legs=legs), Context(beside=Beside(keytab=keytab("ok_same_realm"))))
    assert offset is not None and abs(offset[0]) < 1.0 and offset[1].request_frame == leg.request_frame


@needs_tshark
def test_ap_req_frame_time_is_tsharks(monkeypatch):
    _, legs = run("ok_same_realm", monkeypatch)
    leg = legs[-1]
    out = subprocess.run([shutil.which("tshark"), "-r", str(DATA / "ok_same_realm.pcapng"), "-Y",
                          f"frame.number == {leg.request_frame}", "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "kerberos.msg_type"], capture_output=True, text=True, check=True, timeout=60)
    epoch, msg_type = out.stdout.split()
    assert abs(float(epoch) - leg.request_time) < 1e-5 and msg_type == "14"  # the frame tshark sees as the AP-REQ


def _keys() -> list[bytes]:
    """Every key of both keytabs and the session key inside the approved client's ticket, read with impacket
    independently of kerbtrace, to search the outputs for."""
    from impacket.krb5.keytab import Keytab as ImpacketKeytab

    keys = []
    for path in DATA.glob("*.keytab"):
        for entry in ImpacketKeytab.loadFile(str(path)).entries:
            keys.append(bytes(entry.main_part["keyblock"]["keyvalue"]["data"]))
    assert len(keys) == 6 and all(len(k) in (16, 32) for k in keys)
    return keys


def _encodings(key: bytes) -> list[str]:
    return [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode(),
            base64.b64encode(key).decode().rstrip("=")]


@pytest.mark.parametrize("scenario", ["spn_on_other_account", "ok_same_realm", "clock_skew"])
def test_no_key_material_in_any_output(scenario, monkeypatch):
    analysis, legs = run(scenario, monkeypatch, directory=True)
    outputs = {"json": json.dumps(to_json(analysis)), "table": render(analysis, verbose=True),
               "fix script": analysis.fix_script or ""}
    assert "keytab" in outputs["json"]  # the keytab's evidence is there at all
    secrets = _keys()
    if scenario != "spn_on_other_account":  # the ticket's session key, as the MP's key opens it
        from impacket.krb5.asn1 import AP_REQ, EncTicketPart
        from impacket.krb5.crypto import Key, _enctype_table
        from pyasn1.codec.der import decoder

        ap = decoder.decode(legs[-1].token.ap_req_der, asn1Spec=AP_REQ())[0]
        enc = ap["ticket"]["enc-part"]
        for k in secrets:
            try:
                plain = _enctype_table[int(enc["etype"])].decrypt(Key(int(enc["etype"]), k), 2, bytes(enc["cipher"]))
            except Exception:  # noqa: BLE001,S112 - the other keys do not open it
                continue
            secrets.append(bytes(decoder.decode(plain, asn1Spec=EncTicketPart())[0]["key"]["keyvalue"]))
            break
        assert len(secrets) == 7
    for name, text in outputs.items():
        for key in secrets:
            for form in _encodings(key):
                assert form not in text, f"key material in the {name}"


def test_clock_skew_is_exact_with_the_keytab(monkeypatch):
    """The lab moves the client's clock by +2 h (libfaketime) when it builds the AP-REQ: the authenticator the
    MP's keytab opens carries it, to the second; the CCM SentTime read without the keytab is a rounder guess."""
    _, legs = run("clock_skew", monkeypatch)
    leg = legs[-1]
    proof = keytab("clock_skew").open_ap_req(leg.token.ap_req_der)
    assert proof.opened and proof.client == "WK04$@CORP.LAB"
    assert abs(proof.authenticator_time - leg.request_time - 7200) < 1.0
    analysis, _ = run("clock_skew")
    finding = analysis.clients[0].findings[0]
    assert finding.code == "clock_skew"
    assert "client +7200 s (authenticator time in the AP-REQ, opened with the MP's keytab, frame 21)" in finding.summary
    assert [e.frame for e in finding.evidence if e.source == "keytab"] == [21]
    assert finding.fix_commands == ["w32tm /query /source", "w32tm /resync /rediscover"]
    plain = analyze([str(DATA / "clock_skew.pcapng")]).clients[0].findings[0]
    assert "authenticator time" not in plain.summary and "SentTime" in plain.summary


def test_a_rejected_ticket_the_keytab_opens_clears_the_spn(monkeypatch):
    """The approved client's real AP-REQ, as if the MP had answered 401 with KRB_AP_ERR_MODIFIED: the MP's own
    key opens it, so the finding no longer blames the SPN's owner but the MP's use of its key."""
    import dataclasses

    from kerbtrace.checks import evaluate
    from kerbtrace.decoders.kerberos import KerberosMessage
    from kerbtrace.exchanges.client import ClientExchange

    _, legs = run("ok_same_realm", monkeypatch)
    leg = dataclasses.replace(legs[-1], status=401, reply=None)
    modified = KerberosMessage(30, error_code=41)
    leg.response_tokens = [dataclasses.replace(legs[-1].token, kerberos=modified, ap_req_der=None)]
    exchange = ClientExchange(leg.client_ip, mp_ip=leg.mp_ip, mp_name="mp01.corp.lab")
    exchange.legs = [leg]
    _, findings = evaluate(exchange, Context(beside=Beside(keytab=keytab("ok_same_realm"))))
    finding = next(f for f in findings if f.code == "spn_wrong_account")
    assert "The MP's keytab opens the ticket (issued to WK01$@CORP.LAB)" in finding.summary
    assert "registered on another account" not in finding.summary
    assert finding.fix_commands[0] == \
        "Invoke-Command -ComputerName mp01.corp.lab -ScriptBlock { Test-ComputerSecureChannel -Repair }"
