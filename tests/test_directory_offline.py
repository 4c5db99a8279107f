"""Directory facts from pasted tool output and exports (tests/data/directory, shapes named in its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kerbtrace import codes
from kerbtrace.context.directory import (
    Account,
    DirectoryError,
    DirectoryFacts,
    load_directory,
    mp_spns,
    parse_directory_text,
    read_directory_file,
)
from kerbtrace.context.directory.exports import parse_csv

DATA = Path(__file__).parent / "data" / "directory"


def read(name: str) -> DirectoryFacts:
    return read_directory_file(DATA / name)


# --- setspn ------------------------------------------------------------------------------------------------


def test_setspn_list_names_the_accounts_and_their_spns():
    facts = read("setspn_L.txt")
    assert facts.problems == []
    web = facts.account("svc-web")
    assert web is not None and web.dn == "CN=svc-web,OU=Service Accounts,DC=corp,DC=lab"
    assert web.kind == "unknown"  # setspn does not say; not guessed from an OU name
    mp = facts.account("MP01")
    assert mp is not None and mp.kind == "computer" and len(mp.spns) == 8  # its own HOST/MP01 tells
    assert [a.name for a in facts.owners("HTTP/mp01.corp.lab")] == ["svc-web"]
    assert facts.is_missing("HTTP/mp03.corp.lab") is None  # -L searched nothing


def test_setspn_query_found_and_not_found():
    facts = read("setspn_Q.txt")
    assert facts.problems == [] and facts.domain == "corp.lab"
    assert [a.name for a in facts.owners("HTTP/MP01.corp.lab")] == ["svc-web"]
    assert facts.is_missing("HTTP/mp01.corp.lab") is False
    assert facts.is_missing("HTTP/mp03.corp.lab") is True  # HTTP/ and HOST/ both queried, neither found


def test_setspn_not_found_without_the_command_line_is_unknown():
    facts = read("setspn_Q_no_command.txt")
    assert facts.is_missing("HTTP/mp03.corp.lab") is None
    assert len(facts.problems) == 1 and "line 3" in facts.problems[0] and "command" in facts.problems[0]


def test_setspn_duplicates():
    facts = read("setspn_X.txt")
    assert facts.problems == []
    assert facts.is_duplicate("http/MP02.corp.lab")
    assert sorted(a.dn for a in facts.owners("HTTP/mp02.corp.lab")) == [
        "CN=MP02,CN=Computers,DC=corp,DC=lab", "CN=SMS Web Pool,OU=Service Accounts,DC=corp,DC=lab"]
    assert facts.account("CN=MP02,CN=Computers,DC=corp,DC=lab").kind == "computer"
    assert [s for s, _ in facts.duplicate_groups] == ["HTTP/mp02.corp.lab", "MSSQLSvc/sql01.corp.lab:1433"]
    assert not facts.is_duplicate("HTTP/mp01.corp.lab")


def test_setspn_garbage_lines_are_reported_with_their_number_and_the_rest_is_read():
    text = (DATA / "setspn_X.txt").read_text().replace("Processing entry 112\n", "Processing entry 112\n%%garbage%%\n")
    text += "Ldap Error(0x51 -- Server Down): ldap_connect\n"
    facts = parse_directory_text(text, "pasted.txt")
    assert facts.is_duplicate("HTTP/mp02.corp.lab")
    assert facts.problems == [
        "pasted.txt line 4: not setspn output, skipped: '%%garbage%%'",
        "pasted.txt line 14: setspn reported: Ldap Error(0x51 -- Server Down): ldap_connect",
    ]


def test_utf16_file_as_powershell_redirect_writes_it(tmp_path):
    path = tmp_path / "spns.txt"
    path.write_bytes(b"\xff\xfe" + (DATA / "setspn_Q.txt").read_text().replace("\n", "\r\n").encode("utf-16-le"))
    facts = read_directory_file(path)
    assert facts.problems == [] and facts.is_missing("HTTP/mp03.corp.lab") is True


# --- nltest ------------------------------------------------------------------------------------------------


def test_nltest_trusts():
    facts = read("nltest_trusts.txt")
    assert facts.problems == []
    assert facts.domain == "corp.lab" and facts.trusts_read
    assert facts.trust_to("corp.lab") is None  # the primary domain is not a trust
    seen = {t.name: (t.kind, t.direction_name, t.attribute_names, t.direct) for t in facts.trusts}
    assert seen == {
        "child.corp.lab": ("within_forest", "BIDIRECTIONAL", ("WITHIN_FOREST",), True),
        "sales.child.corp.lab": ("within_forest", None, ("WITHIN_FOREST",), False),
        "fabrikam.com": ("forest", "BIDIRECTIONAL", ("FOREST_TRANSITIVE",), True),
        "partner.org": ("external", "OUTBOUND", ("QUARANTINED_DOMAIN",), True),
        "example.org": ("realm", "BIDIRECTIONAL", ("NON_TRANSITIVE",), True),
    }
    assert facts.trust_to("PARTNER").transitive is False
    assert facts.trust_to("fabrikam.com").transitive is True
    assert facts.trust_to("FABRIKAM").type_name == "UPLEVEL"


def test_nltest_failure_and_unknown_words_are_reported():
    text = ("List of domain trusts:\n    0: ODD odd.example (NT 5) (Direct Outbound) ( Attr: foresttrans sparkly )\n"
            "Enumerating domain trusts failed: Status = 1722 0x6ba RPC_S_SERVER_UNAVAILABLE\n")
    facts = parse_directory_text(text, "trusts.txt")
    assert facts.trust_to("odd.example").kind == "forest"
    assert facts.problems == [
        "trusts.txt line 2: unknown trust attribute word 'sparkly' ignored",
        "trusts.txt line 3: nltest reported: Enumerating domain trusts failed: Status = 1722 0x6ba "
        "RPC_S_SERVER_UNAVAILABLE",
    ]
    assert not facts.trusts_read  # a failed listing does not prove a trust absent


# --- ldifde / csvde ----------------------------------------------------------------------------------------


@pytest.fixture(params=["export.ldf", "export.csv"])
def export(request) -> DirectoryFacts:
    return read(request.param)


def test_export_owners_kinds_and_states(export):
    assert export.problems == [] and export.domain == "corp.lab"
    assert [(a.name, a.kind) for a in export.owners("HTTP/mp01.corp.lab")] == [("svc-web", "user")]
    assert [a.name for a in export.owners("HTTP/mp01")] == ["svc-web"]  # base64 value in the LDIF
    assert export.is_duplicate("HTTP/mp02.corp.lab")
    owners = {a.name: (a.kind, a.disabled) for a in export.owners("HTTP/mp02.corp.lab")}
    assert owners == {"MP02$": ("computer", False), "jmüller": ("user", True)}
    assert export.is_missing("HTTP/mp03.corp.lab") is True  # a full export: absent means missing
    mp = export.account("CORP\\MP01$")
    assert mp.kvno == 7 and mp.etype_names == ("rc4-hmac", "aes128-cts-hmac-sha1-96", "aes256-cts-hmac-sha1-96")
    web = export.account("svc-web")
    assert web.locked is False and "DONT_EXPIRE_PASSWORD" in web.uac_flags
    assert export.account("CN=Jürgen Müller,OU=Service Accounts,DC=corp,DC=lab").name == "jmüller"
    kinds = {t.name: t.kind for t in export.trusts}
    assert kinds == {"fabrikam.com": "forest", "partner.org": "external"}


def test_ldif_folded_dn_lockout_and_ports():
    facts = read("export.ldf")
    locked = facts.account("svc-locked")
    assert locked.dn == ("CN=svc-locked-with-a-rather-long-common-name-that-ldifde-folds,"
                         "OU=Service Accounts,DC=corp,DC=lab")
    assert locked.locked is True and locked.lockout_time == 134090208000000000
    assert [a.name for a in facts.owners("HTTP/mp04.corp.lab:8080")] == ["svc-locked"]
    lookup = facts.lookup("HTTP/mp04.corp.lab")
    assert lookup.owners == () and [a.name for a in lookup.port_variants] == ["svc-locked"]


def test_ldif_and_csv_agree():
    ldif_facts, csv_facts = read("export.ldf"), read("export.csv")
    for spn in (*mp_spns("mp01.corp.lab"), *mp_spns("mp02.corp.lab"), *mp_spns("mp03.corp.lab")):
        assert ldif_facts.lookup(spn).status == csv_facts.lookup(spn).status, spn
        assert sorted(a.dn for a in ldif_facts.owners(spn)) == sorted(a.dn for a in csv_facts.owners(spn)), spn


def test_export_keeps_no_other_attribute():
    text = (DATA / "export.ldf").read_text().replace("msDS-KeyVersionNumber: 7",
                                                     "msDS-KeyVersionNumber: 7\nunicodePwd:: c2VjcmV0")
    facts = parse_directory_text(text, "x.ldf")
    assert "c2VjcmV0" not in str(facts.as_json()) and "unicodepwd" not in str(facts.as_json()).lower()


def test_bad_ldif_records_are_reported_with_their_line_and_skipped():
    text = (DATA / "export.ldf").read_text()
    text = text.replace("userAccountControl: 66048", "this line has no colon")
    text = text.replace("sAMAccountName: MP02$", "sAMAccountName:: !!not base64!!")
    text = text.replace("msDS-KeyVersionNumber: 5", "msDS-KeyVersionNumber:five")  # no space is allowed
    facts = parse_directory_text(text, "bad.ldf")
    lines = text.splitlines()
    no_colon = lines.index("this line has no colon") + 1
    web_start = lines.index("dn: CN=svc-web,OU=Service Accounts,DC=corp,DC=lab") + 1
    mp02_start = lines.index("dn: CN=MP02,OU=Servers,DC=corp,DC=lab") + 1
    assert facts.problems[0] == f"bad.ldf line {no_colon}: not an LDIF 'attribute: value' line, record skipped: " \
                                "'this line has no colon'"
    assert facts.problems[1].startswith(f"bad.ldf line {mp02_start}: unreadable LDIF record skipped")
    assert facts.problems[2].endswith("msds-keyversionnumber is not a number: 'five'")
    assert facts.account("svc-web") is None and facts.account("MP02$") is None and web_start
    assert facts.account("MP01$") is not None and facts.account("svc-locked").kvno is None  # the rest is read


def test_bad_csv_rows_are_reported():
    text = (DATA / "export.csv").read_text(encoding="utf-8")
    rows = text.splitlines()
    rows.insert(2, '"CN=broken,DC=corp,DC=lab",user,broken')
    facts = parse_directory_text("\n".join(rows) + "\n", "bad.csv")
    assert facts.problems == ["bad.csv line 3: 3 fields where the header has 14, row skipped"]
    assert facts.account("svc-web") is not None


# --- loading, errors ----------------------------------------------------------------------------------------


def test_load_directory_merges_files():
    facts = load_directory(spn_file=[DATA / "setspn_X.txt", DATA / "export.ldf"],
                           trusts_file=DATA / "nltest_trusts.txt")
    assert facts.is_duplicate("MSSQLSvc/sql01.corp.lab:1433")
    assert facts.account("svc-web").kind == "user"
    assert facts.trust_to("sales.child.corp.lab").kind == "within_forest"
    assert len(facts.sources) == 3


@pytest.mark.parametrize(("content", "message"), [
    (b"hello, this is not a directory listing\n", "not setspn -L/-Q/-X, nltest /domain_trusts, LDIF or csvde output"),
    (b"\x00\x01\x02\x03PK\x03\x04" * 20, "binary data"),
    (b"", "not setspn"),
    (b"\xff\xfe" + "nothing useful\r\n".encode("utf-16-le"), "first line: 'nothing useful'"),
])
def test_unreadable_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "facts.txt"
    path.write_bytes(content)
    with pytest.raises(DirectoryError, match=message):
        read_directory_file(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DirectoryError, match="cannot read"):
        load_directory(spn_file=tmp_path / "absent.txt")


def test_csv_without_a_dn_column():
    with pytest.raises(ValueError, match="x.csv line 1: a csvde export starts with a 'DN' column"):
        parse_csv("sAMAccountName,DN\nsvc-web,CN=svc-web\n", "x.csv")


# --- lookups -----------------------------------------------------------------------------------------------


def _facts(*accounts: Account, mappings: dict[str, str] | None = None) -> DirectoryFacts:
    facts = DirectoryFacts(spn_mappings=mappings, complete_spns=True)
    for a in accounts:
        facts.add_account(a)
    return facts


def test_two_computers_with_the_same_host_spn_make_the_http_spn_a_duplicate():
    facts = _facts(Account("CN=A,DC=x", "A$", "computer", ("HOST/web.x",)),
                   Account("CN=B,DC=x", "B$", "computer", ("host/WEB.x",)))
    assert facts.is_duplicate("HTTP/web.x") and len(facts.owners("HTTP/web.x")) == 2


def test_spn_mappings_decide_whether_host_serves_http():
    mp = Account("CN=MP,DC=x", "MP$", "computer", ("HOST/mp.x",))
    assert _facts(mp).owners("HTTP/mp.x") == (mp,)  # unread mappings: the Windows default maps http
    assert _facts(mp, mappings={"cifs": "host"}).owners("HTTP/mp.x") == ()
    assert _facts(mp, mappings={"cifs": "host"}).is_missing("HTTP/mp.x") is True


def test_merge_keeps_known_values_and_json_round_trip():
    facts = _facts(Account("CN=MP,DC=x", "MP$", "computer", ("HOST/mp.x",), uac=4096, disabled=False, kvno=3))
    facts.add_account(Account("CN=mp,DC=x", spns=("HTTP/mp.x",), source="setspn"))
    (mp,) = facts.accounts
    assert (mp.kind, mp.kvno, mp.spns) == ("computer", 3, ("HOST/mp.x", "HTTP/mp.x"))
    again = DirectoryFacts.from_json(facts.as_json())
    assert again.as_json() == facts.as_json()


def test_flag_tables():
    assert codes.flag_names(codes.USER_ACCOUNT_CONTROL, 0x2 | 0x10 | 0x8000_0000) == (
        "ACCOUNTDISABLE", "LOCKOUT", "0x80000000")
    assert codes.supported_etypes(0x24) == ("rc4-hmac", "FAST-supported")
    assert codes.flag_names(codes.TRUST_ATTRIBUTES, 0x48) == ("FOREST_TRANSITIVE", "TREAT_AS_EXTERNAL")


def test_descriptions_for_findings():
    facts = read("export.ldf")
    assert facts.lookup("HTTP/mp01.corp.lab").describe() == (
        "HTTP/mp01.corp.lab is registered on the user account svc-web (CN=svc-web,OU=Service Accounts,DC=corp,DC=lab).")
    assert facts.lookup("HTTP/mp02.corp.lab").describe().startswith("HTTP/mp02.corp.lab is registered on 2 accounts: ")
    assert "user account jmüller (CN=Jürgen Müller,OU=Service Accounts,DC=corp,DC=lab), disabled" in \
        facts.lookup("HTTP/mp02.corp.lab").describe()
    assert facts.lookup("HOST/mp01").describe().endswith("computer account MP01$ (CN=MP01,OU=Servers,DC=corp,DC=lab).")
    assert facts.lookup("HTTP/mp04.corp.lab").describe() == (
        "No account holds HTTP/mp04.corp.lab (only with another port, on user account svc-locked (CN=svc-locked-with-"
        "a-rather-long-common-name-that-ldifde-folds,OU=Service Accounts,DC=corp,DC=lab), locked out).")
    assert read("setspn_L.txt").lookup("HTTP/mp03.corp.lab").describe() == (
        "The directory facts do not cover HTTP/mp03.corp.lab.")


def test_allowed_etypes():
    facts = read("export.ldf")
    assert facts.account("MP01$").allows_etype(18) is True
    assert facts.account("MP01$").allows_etype(1) is False
    assert facts.account("svc-web").allows_etype(23) is None  # attribute unset: the DC's default decides


def test_module_command_prints_facts_or_one_clear_error(tmp_path):
    import json
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    ok = subprocess.run([sys.executable, "-m", "kerbtrace.context.directory", "--spn-file", str(DATA / "export.csv"),
                         "--trusts-file", str(DATA / "nltest_trusts.txt"), "--mp", "mp02.corp.lab"],
                        capture_output=True, text=True, cwd=repo, timeout=60)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["lookups"]["HTTP/mp02.corp.lab"] == {"status": "duplicate", "owners": ["MP02$", "jmüller"]}
    assert out["lookups"]["HTTP/mp02"]["status"] == "missing"
    bad = tmp_path / "junk.txt"
    bad.write_text("junk\n")
    err = subprocess.run([sys.executable, "-m", "kerbtrace.context.directory", "--spn-file", str(bad)],
                         capture_output=True, text=True, cwd=repo, timeout=60)
    assert err.returncode == 2 and "Traceback" not in err.stderr
    assert err.stderr.startswith(f"kerbtrace: {bad}: not setspn -L/-Q/-X")


@pytest.mark.parametrize(("uri", "options", "env", "message"), [
    ("ldap://dc1", {"user": "CORP\\admin"}, {}, "password in the environment variable KERBTRACE_LDAP_PASSWORD"),
    ("ldap://dc1", {"user": "CORP\\admin"}, {"KERBTRACE_LDAP_PASSWORD": ""}, "password in the environment"),
    ("http://dc1", {}, {}, "expected ldap://HOST"),
    ("ldap://dc1", {"bind": "digest"}, {}, "unknown bind 'digest'"),
])
def test_ldap_settings_refused_before_connecting(monkeypatch, uri, options, env, message):
    monkeypatch.delenv("KERBTRACE_LDAP_PASSWORD", raising=False)
    monkeypatch.delenv("KERBTRACE_LDAP_USER", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(DirectoryError, match=message):
        load_directory(uri, **options)
