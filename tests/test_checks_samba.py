"""Checks with directory facts read over LDAPS from a real Samba AD DC (tests/samba_dc.py) whose directory
mirrors the lab's: HTTP/mp01.corp.lab on the user svc-web (the MP of spn_on_other_account),
HTTP/mp04.corp.lab (the MP of spn_missing) on both MP04$ and the user svc-b, an external trust with
other.lab (the client realm of no_trust_path), and WK07$ disabled (the client of account_disabled). The
captures are the lab's; the facts are what kerbtrace's LDAP source reads from the DC, so owner,
duplicate, trust type and account state come from a real directory.
"""

from __future__ import annotations

import json

import pytest

from kerbtrace.analysis import analyze
from kerbtrace.context import Beside
from kerbtrace.context.directory import DirectoryFacts, mp_spns
from tests import samba_dc
from tests.conftest import CAPTURES

BASE = "DC=corp,DC=lab"
SPNS = [*mp_spns("mp01.corp.lab"), *mp_spns("mp04.corp.lab")]
ACCOUNTS = ["MP01$", "MP04$", "svc-web", "svc-b", "WK07$"]
OTHER_TRUST = (f"dn: CN=other.lab,CN=System,{BASE}\nobjectClass: trustedDomain\ntrustPartner: other.lab\n"
               "flatName: OTHER\ntrustType: 2\ntrustDirection: 3\ntrustAttributes: 0\n"
               "securityIdentifier: S-1-5-21-1222222222-333333333-444444444\n")


@pytest.fixture(scope="module")
def facts() -> DirectoryFacts:
    reason = samba_dc.unavailable_reason()
    if reason:
        pytest.skip(reason)
    dc = samba_dc.start("kt-samba-checks")
    try:
        _mirror_the_lab(dc)
        code = (
            "import json\n"
            "from kerbtrace.context.directory import load_directory\n"
            f"f = load_directory('ldaps://dc1.corp.lab', spns={SPNS!r}, accounts={ACCOUNTS!r},\n"
            f"                   user='Administrator@corp.lab', ca_file={dc.ca_file!r})\n"
            "print(json.dumps(f.as_json()))\n"
        )
        res = dc.python(code, env={"KERBTRACE_LDAP_PASSWORD": samba_dc.ADMIN_PASSWORD})
        assert res.returncode == 0, res.stderr[-2000:]
        return DirectoryFacts.from_json(json.loads(res.stdout))
    finally:
        samba_dc.stop(dc)


def _mirror_the_lab(dc: samba_dc.SambaDC) -> None:
    """What the base DC lacks for the lab's scenarios: MP04 with its HOST SPNs and HTTP/mp04 twice, the trust."""
    dc.tool("computer", "create", "MP04")
    dc.ldb_modify(f"dn: CN=MP04,CN=Computers,{BASE}\nchangetype: modify\nreplace: userAccountControl\n"
                  "userAccountControl: 4096\n-\nadd: servicePrincipalName\n"
                  "servicePrincipalName: HOST/mp04.corp.lab\nservicePrincipalName: HOST/MP04\n")
    dc.tool("user", "create", "svc-b", samba_dc.USER_PASSWORD)
    dc.tool("spn", "add", "HTTP/mp04.corp.lab", "svc-b")
    # Samba refuses a duplicate SPN on every write path: written into the partition as samba_dc does for mp02
    partition = f"tdb://{dc.workdir}/private/sam.ldb.d/DC=CORP,DC=LAB.ldb"
    dc.ldb_modify(f"dn: CN=MP04,CN=Computers,{BASE}\nchangetype: modify\nadd: servicePrincipalName\n"
                  "servicePrincipalName: HTTP/mp04.corp.lab\n", url=partition)
    dc.ldb_modify(OTHER_TRUST, add=True)
    dc.tool("computer", "create", "WK07")  # samba-tool creates it disabled: the client of account_disabled


def primary(facts: DirectoryFacts, scenario: str):
    result = analyze([str(CAPTURES / f"{scenario}.pcapng")], beside=Beside(directory=facts)).clients[0]
    return result.verdict, result.findings


def test_the_directory_mirrors_the_lab(facts):
    assert [(a.sam, a.kind) for a in facts.owners("HTTP/mp01.corp.lab")] == [("svc-web", "user")]
    assert facts.lookup("HTTP/mp04.corp.lab").status == "duplicate"
    assert facts.trust_to("OTHER.LAB").kind == "external"


def test_spn_wrong_account_names_svc_web_as_a_user(facts):
    verdict, findings = primary(facts, "spn_on_other_account")
    finding = findings[0]
    assert verdict == "not_approved" and finding.code == "spn_wrong_account"
    assert "user account svc-web (CN=svc-web,CN=Users,DC=corp,DC=lab)" in finding.summary
    assert "setspn -D HTTP/mp01.corp.lab CORP\\svc-web" in finding.fix_commands
    assert not any(c.startswith("setspn -S") for c in finding.fix_commands)  # MP01$ holds HOST/mp01.corp.lab


def test_spn_duplicate_instead_of_spn_missing(facts):
    verdict, findings = primary(facts, "spn_missing")
    codes = [f.code for f in findings]
    assert verdict == "not_approved" and codes[0] == "spn_duplicate" and "spn_missing" not in codes
    assert "MP04$" in findings[0].summary and "svc-b" in findings[0].summary
    assert findings[0].fix_commands[0] == "setspn -D HTTP/mp04.corp.lab CORP\\svc-b"


def test_no_trust_path_says_external_trust(facts):
    verdict, findings = primary(facts, "no_trust_path")
    assert verdict == "not_approved" and findings[0].code == "no_trust_path"
    assert "external trust with other.lab" in findings[0].summary
    assert "netdom trust corp.lab /domain:other.lab /verify" in findings[0].fix_commands


def test_account_revoked_reads_disabled_from_the_dc(facts):
    verdict, findings = primary(facts, "account_disabled")
    assert verdict == "not_approved" and findings[0].code == "account_revoked"
    assert "WK07$: disabled (directory)" in findings[0].summary
    assert findings[0].fix_commands == ["Enable-ADAccount -Identity 'WK07$'"]
