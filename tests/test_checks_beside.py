"""Checks with directory facts beside the lab's captures, from the text an admin pastes (setspn, nltest,
ldifde): the owner of the SPN, a duplicate instead of a missing SPN, the kind of trust, the ticket's key
version, the NLB application pool rule, the fix commands and the fix script.

The captures are the lab's (real MIT KDCs and clients); the directory texts are in the shapes the Windows
tools print (tests/data/directory/README.md), written for the lab's names (tests/data/checks/). The same
questions against a real Samba AD DC are in test_checks_samba.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kerbtrace.analysis import Analysis, analyze
from kerbtrace.checks import CAUSE_CODES, fixes
from kerbtrace.context import Beside
from kerbtrace.context.directory import load_directory, parse_directory_text
from kerbtrace.reports.json_report import to_json
from kerbtrace.reports.table import render
from tests.conftest import CAPTURES

DATA = Path(__file__).parent / "data"
CHECKS = DATA / "checks"


def run(scenario: str, *files: Path, trusts: Path | None = None) -> Analysis:
    facts = load_directory(spn_file=[str(f) for f in files], trusts_file=str(trusts) if trusts else None)
    assert facts.problems == []
    return analyze([str(CAPTURES / f"{scenario}.pcapng")], beside=Beside(directory=facts))


def primary(analysis: Analysis, hostname: str | None = None):
    result = next(r for r in analysis.clients if hostname is None or r.client.hostname == hostname)
    return result.verdict, result.findings[0], result.findings


def test_spn_wrong_account_names_the_user_holding_the_spn():
    verdict, finding, findings = primary(run("spn_on_other_account", DATA / "directory" / "export.ldf"))
    assert verdict == "not_approved" and finding.code == "spn_wrong_account"
    assert "user account svc-web" in finding.summary and "web service moved to a user account" in finding.summary
    assert finding.fix_commands[:2] == ["setspn -D HTTP/mp01.corp.lab CORP\\svc-web",
                                        "setspn -D HTTP/mp01 CORP\\svc-web"]
    # HOST/mp01.corp.lab is on MP01$ in the export: nothing to add there
    assert not any(c.startswith("setspn -S") for c in finding.fix_commands)
    assert fixes.PURGE_CLIENT_TICKETS in finding.fix_commands
    directory = [e for e in finding.evidence if e.source == "directory"]
    assert directory and "svc-web" in directory[0].text and directory[0].file.endswith("export.ldf")
    # the ticket's kvno 1 is not svc-web's msDS-KeyVersionNumber 3 in the export
    mismatch = next(f for f in findings if f.code == "ticket_key_mismatch")
    assert mismatch.severity == "warning" and "kvno 1 is not the key version 3 of svc-web" in mismatch.summary


def test_without_facts_the_fix_commands_are_the_checks_to_run():
    verdict, finding, findings = primary(analyze([str(CAPTURES / "spn_on_other_account.pcapng")]))
    assert finding.code == "spn_wrong_account" and "svc-web" not in finding.summary
    assert finding.fix_commands[:2] == ["setspn -Q HTTP/mp01.corp.lab", "setspn -X -F"]
    assert "ticket_key_mismatch" not in [f.code for f in findings]  # AES ticket: the heuristic stays silent


def test_setspn_text_names_the_account_but_not_its_kind():
    _, finding, _ = primary(run("spn_on_other_account", DATA / "directory" / "setspn_Q.txt"))
    assert "svc-web" in finding.summary and "whether it is a user it does not say" in finding.summary
    # setspn -Q showed no HOST/mp01 on the MP: the fix adds it on the MP's computer account
    assert "setspn -S HOST/mp01.corp.lab CORP\\MP01$" in finding.fix_commands


def test_nlb_application_pool_user_is_said_not_flagged():
    _, finding, _ = primary(run("spn_on_other_account", CHECKS / "nlb_export.ldf"))
    assert finding.code == "spn_wrong_account"  # the MP still rejected the ticket
    assert "held on purpose by the user account svc-nlb" in finding.summary
    assert "registered on another account" not in finding.summary
    assert not any(c.startswith("setspn -D") for c in finding.fix_commands)
    assert any("useAppPoolCredentials:true" in c for c in finding.fix_commands)


def test_nlb_rule_does_not_cover_the_mp_own_name():
    # the same user, but a computer account MP01$ exists: HTTP/mp01 on a user is the seed's case again
    text = (CHECKS / "nlb_export.ldf").read_text() + (
        "dn: CN=MP01,OU=Servers,DC=corp,DC=lab\r\nchangetype: add\r\nobjectClass: computer\r\n"
        "sAMAccountName: MP01$\r\nservicePrincipalName: HOST/mp01.corp.lab\r\n\r\n")
    facts = parse_directory_text(text, "nlb+mp01.ldf")
    result = analyze([str(CAPTURES / "spn_on_other_account.pcapng")], beside=Beside(directory=facts)).clients[0]
    assert "svc-nlb" in result.findings[0].summary and "held on purpose" not in result.findings[0].summary
    assert "setspn -D HTTP/mp01.corp.lab CORP\\svc-nlb" in result.findings[0].fix_commands


@pytest.mark.parametrize("facts_file", ["setspn_X_mp04.txt", "setspn_Q_mp04.txt"])
def test_spn_duplicate_replaces_spn_missing(facts_file):
    verdict, finding, findings = primary(run("spn_missing", CHECKS / facts_file))
    assert verdict == "not_approved" and finding.code == "spn_duplicate"
    assert "spn_missing" not in [f.code for f in findings]
    assert "MP04" in finding.summary and "svc-b" in finding.summary
    # the MP's own computer account keeps it; the other holder loses it
    assert finding.fix_commands[0] == "setspn -D HTTP/mp04.corp.lab CORP\\svc-b"
    assert not any("MP04" in c and c.startswith("setspn -D") for c in finding.fix_commands)


def test_spn_missing_stays_when_the_directory_confirms_it_missing():
    verdict, finding, findings = primary(run("spn_missing", CHECKS / "setspn_Q_mp04_missing.txt"))
    assert finding.code == "spn_missing" and "spn_duplicate" not in [f.code for f in findings]
    assert "the directory confirms that no account holds it" in finding.summary
    assert finding.fix_commands[:2] == ["setspn -S HOST/mp04.corp.lab CORP\\MP04$", "setspn -S HOST/MP04 CORP\\MP04$"]


def test_spn_missing_without_facts_is_unchanged():
    _, finding, _ = primary(analyze([str(CAPTURES / "spn_missing.pcapng")]))
    assert finding.code == "spn_missing" and "missing, or registered twice" in finding.summary


@pytest.mark.parametrize(("trusts", "said"), [
    ("nltest_other_external.txt", "shows an external trust with other.lab"),
    ("nltest_other_forest.txt", "name suffix (corp.lab) is not routed"),
])
def test_no_trust_path_names_the_trust(trusts, said):
    verdict, finding, _ = primary(run("no_trust_path", trusts=CHECKS / trusts))
    assert verdict == "not_approved" and finding.code == "no_trust_path"
    assert said in finding.summary
    assert "nltest /domain_trusts /v" in finding.fix_commands
    assert any(e.source == "directory" and "other.lab" in e.text for e in finding.evidence)


def test_no_trust_path_with_no_trust_at_all():
    _, finding, _ = primary(run("no_trust_path", trusts=DATA / "directory" / "nltest_trusts.txt"))
    assert "lists no trust at all with OTHER.LAB" in finding.summary


def test_json_and_table_carry_the_fix_commands():
    analysis = run("spn_on_other_account", DATA / "directory" / "export.ldf")
    doc = json.loads(json.dumps(to_json(analysis)))
    cause = doc["clients"][0]["causes"][0]
    assert cause["fix_commands"][0] == "setspn -D HTTP/mp01.corp.lab CORP\\svc-web"
    assert all(isinstance(c["fix_commands"], list) for c in doc["clients"][0]["causes"])
    assert [e for e in cause["evidence"] if e["source"] == "directory"][0]["frame"] is None
    assert doc["context"]["directory"]["online"] is False  # an LDIF export: read once, no DC queried
    table = render(analysis)
    assert "commands (kerbtrace runs none" in table
    assert table.index("fix: ") < table.index("        setspn -D HTTP/mp01.corp.lab CORP\\svc-web")


def test_fix_script_is_commented_grouped_and_deduplicated():
    facts = load_directory(spn_file=[str(DATA / "directory" / "export.ldf"), str(CHECKS / "setspn_X_mp04.txt")],
                           trusts_file=str(CHECKS / "nltest_other_external.txt"))
    analysis = analyze([str(CAPTURES / "mixed.pcapng"), str(CAPTURES / "spn_on_other_account.pcapng")],
                       beside=Beside(directory=facts))
    script = analysis.fix_script
    assert script is not None
    lines = script.splitlines()
    assert all(line.startswith("#") for line in lines), [x for x in lines if not x.startswith("#")]
    assert "NOTHING IN THIS FILE RUNS BY ITSELF" in script
    for code in ("spn_wrong_account", "spn_duplicate", "no_trust_path"):
        assert f"# ======== {code}: " in script
    # each command once: the svc-web SPN of mp01 is shared by the mixed capture's and the other capture's clients
    assert lines.count("# setspn -D HTTP/mp01.corp.lab CORP\\svc-web") == 1
    assert "# setspn -D HTTP/mp04.corp.lab CORP\\svc-b" in lines
    # the evidence that motivates a command comes before it, in comments
    at = lines.index("# setspn -D HTTP/mp01.corp.lab CORP\\svc-web")
    before = " ".join(x.lstrip("#").strip() for x in lines[:at])  # wrapped comment lines, joined again
    assert "export.ldf:20: HTTP/mp01.corp.lab is registered on the user account svc-web" in before
    # client-side commands run on the clients named, once per block
    purge = [x for x in lines if x.startswith("# Invoke-Command -ComputerName ") and "klist -li 0x3e7 purge" in x]
    assert "# Invoke-Command -ComputerName wk02.corp.lab -ScriptBlock { klist -li 0x3e7 purge; " \
           "Restart-Service -Name CcmExec }" in purge
    assert "# Invoke-Command -ComputerName lap01.child.corp.lab,lap02.child.corp.lab -ScriptBlock " \
           "{ w32tm /query /source; w32tm /resync /rediscover }" in lines


def test_fix_script_is_none_without_commands():
    analysis = analyze([str(CAPTURES / "ok_same_realm.pcapng")])
    assert analysis.fix_script is None


def test_names_from_the_wire_cannot_inject_a_command():
    assert fixes.setspn_delete("HTTP/mp01.corp.lab;Remove-Item C:\\ -Recurse", "CORP\\svc|x") == \
        "setspn -D HTTP/mp01.corp.labRemove-ItemC:\\-Recurse CORP\\svcx"
    assert fixes.safe("a b`c$(d)\n") == "abc$d"


def test_the_new_causes_are_catalogued_in_order():
    assert CAUSE_CODES.index("spn_duplicate") < CAUSE_CODES.index("spn_missing")
    assert "ticket_key_mismatch" in CAUSE_CODES


def test_rc4_ticket_where_aes_was_offered_is_flagged_without_facts():
    """The lab's MIT KDC issues AES tickets; an RC4 one (a user account without AES keys holding the SPN) is
    built here from the decoder's own types, as in test_checks_units."""
    from kerbtrace.checks import Context, evaluate
    from kerbtrace.decoders.kerberos import KerberosMessage, TicketInfo
    from tests.test_checks_units import KERBEROS, client_with, exchange, leg

    def tgs(etype):
        req = KerberosMessage(12, realm="CORP.LAB", sname="HTTP/mp01.corp.lab", etypes=(18, 17, 23))
        rep = KerberosMessage(13, realm="CORP.LAB", ticket=TicketInfo("CORP.LAB", "HTTP/mp01.corp.lab", etype, 2))
        return exchange(10, req, rep)

    _, findings = evaluate(client_with([leg(20, 401), leg(30, 200, KERBEROS)], [tgs(23)]), Context())
    flagged = [f for f in findings if f.code == "ticket_key_mismatch"]
    assert flagged and flagged[0].severity == "warning" and "although the client offered AES" in flagged[0].summary
    _, findings = evaluate(client_with([leg(20, 401), leg(30, 200, KERBEROS)], [tgs(18)]), Context())
    assert "ticket_key_mismatch" not in [f.code for f in findings]


@pytest.mark.parametrize(("scenario", "state", "command", "line"), [
    ("account_disabled", "WK07$: disabled (directory)", "Enable-ADAccount -Identity 'WK07$'", 2),
    ("account_locked", "WK06$: locked out (directory)", "Unlock-ADAccount -Identity 'WK06$'", 7),
])
def test_account_revoked_says_which_state_from_the_directory(scenario, state, command, line):
    """The lab's MIT KDC answers KDC_ERR_CLIENT_REVOKED without the NTSTATUS a Windows DC adds: the capture
    alone cannot tell disabled from locked out, the directory can."""
    plain = primary(analyze([str(CAPTURES / f"{scenario}.pcapng")]))[1]
    assert "the KDC sent no NTSTATUS that says which" in plain.summary
    _, finding, _ = primary(run(scenario, CHECKS / "client_accounts.ldf"))
    assert finding.code == "account_revoked" and state in finding.summary
    assert finding.fix_commands[0] == command
    assert [e.line for e in finding.evidence if e.source == "directory"] == [line]


def test_rc4_heuristic_on_real_windows_tickets():
    """Real Windows KDCs: the kerberoasting capture (ired.team's lab, an HTTP SPN on a service account) got an
    RC4 ticket although the client offered AES — flagged; the OTRF captures' HTTP tickets for computers (WEC)
    are AES — not flagged. The HTTP hosts are passed as MPs, as --mp-name does, so the checks look at them."""
    from tests.conftest import real_capture

    roast = analyze([str(real_capture("suri__kerberoast.pcap"))], mp_names=("dc-mantvydas.offense.local",))
    found = [f for r in roast.clients for f in r.findings if f.code == "ticket_key_mismatch"]
    assert len(found) == 1 and found[0].severity == "warning"
    assert "HTTP/dc-mantvydas.offense.local (rc4-hmac, kvno 2) although the client offered AES" in found[0].summary
    for name, host in (("otrf__NEWYORK.cap", "WEC.dmevals.local"),
                       ("otrf__purplesharp_ad_playbook_I_2020-10-22042947.cap", "WEC.theshire.local")):
        result = analyze([str(real_capture(name))], mp_names=(host,))
        assert result.clients and not [f for r in result.clients for f in r.findings if f.code == "ticket_key_mismatch"]


def test_fix_script_keeps_hostile_text_commented():
    """Text from a capture or a pasted file may hold line breaks: none of it may start a line of its own."""
    from kerbtrace.checks.base import Evidence, Finding

    analysis = analyze([str(CAPTURES / "spn_on_other_account.pcapng")])
    result = analysis.clients[0]
    result.findings = [Finding("spn_wrong_account", "error", "summary\nRemove-Item C:\\ -Recurse\r\nexit",
                               fix="fix\rStop-Computer", evidence=[Evidence(3, "x\nStop-Computer -Force")],
                               fix_commands=["setspn -Q HTTP/x\nStop-Computer", "klist -li 0x3e7 purge"])]
    lines = analysis.fix_script.splitlines()
    assert all(line.startswith("#") for line in lines), [x for x in lines if not x.startswith("#")]
    assert "# setspn -Q HTTP/x Stop-Computer" in lines
