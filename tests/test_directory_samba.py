"""Directory facts from a real Samba AD DC (see samba_dc.py for what the directory holds and how).

The online source runs inside the DC's network namespace (``ip netns exec``), prints the facts as JSON,
and the tests read them back; the offline LDIF reader is then checked against an export of the same
directory taken with Samba's own ``ldbsearch``.
"""

from __future__ import annotations

import json
import sys

import pytest

from kerbtrace.context.directory import DirectoryFacts, mp_spns, parse_directory_text
from kerbtrace.context.directory.entries import ACCOUNT_ATTRIBUTES, MAPPING_ATTRIBUTES, TRUST_ATTRIBUTES
from tests import samba_dc

SPNS = [*mp_spns("mp01.corp.lab"), *mp_spns("mp02.corp.lab"), *mp_spns("mp03.corp.lab")]
ACCOUNTS = ["MP01$", "disabled-user", "locked-user", "CORP\\svc-web"]


@pytest.fixture(scope="session")
def dc():
    reason = samba_dc.unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = samba_dc.start()
    try:
        yield server
    finally:
        samba_dc.stop(server)


def query(dc, uri: str, *, user: str = "Administrator@corp.lab", password: str = samba_dc.ADMIN_PASSWORD,
          **options) -> tuple[DirectoryFacts | None, str]:
    """Run load_directory inside the namespace; (facts, "") or (None, the error text it printed)."""
    code = (
        "import json, sys\n"
        "from kerbtrace.context.directory import DirectoryError, load_directory\n"
        "try:\n"
        f"    f = load_directory({uri!r}, spns={SPNS!r}, accounts={ACCOUNTS!r}, user={user!r}, **{options!r})\n"
        "except DirectoryError as exc:\n"
        "    print('ERROR ' + str(exc)); sys.exit(0)\n"
        "print(json.dumps(f.as_json()))\n"
    )
    res = dc.python(code, env={"KERBTRACE_LDAP_PASSWORD": password})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stdout + res.stderr
    out = res.stdout.strip()
    if out.startswith("ERROR "):
        return None, out[6:]
    return DirectoryFacts.from_json(json.loads(out)), ""


@pytest.fixture(scope="session")
def online(dc) -> DirectoryFacts:
    facts, err = query(dc, "ldaps://dc1.corp.lab", ca_file=dc.ca_file)
    assert facts is not None, err
    return facts


def test_http_spn_on_a_user_account(online):
    owners = online.owners("HTTP/mp01.corp.lab")
    assert [(a.sam, a.kind) for a in owners] == [("svc-web", "user")]
    assert online.lookup("http/MP01.corp.lab@CORP.LAB").status == "ok"  # any case, realm ignored
    assert not online.is_duplicate("HTTP/mp01.corp.lab")


def test_short_name_served_by_host_through_spn_mappings(online):
    assert online.spn_mappings is not None and online.spn_mappings["http"] == "host"  # read from the forest
    lookup = online.lookup("HTTP/mp01")
    assert lookup.direct == ()
    assert [(a.sam, a.kind) for a in lookup.via_mapping] == [("MP01$", "computer")]


def test_duplicate_spn(online):
    owners = online.owners("HTTP/mp02.corp.lab")
    assert sorted((a.sam, a.kind) for a in owners) == [("MP02$", "computer"), ("svc-a", "user")]
    assert online.is_duplicate("HTTP/mp02.corp.lab")


def test_missing_spn(online):
    assert online.owners("HTTP/mp03.corp.lab") == ()
    assert online.is_missing("HTTP/mp03.corp.lab") is True
    assert online.is_missing("HTTP/mp01.corp.lab") is False
    assert online.is_missing("HTTP/never-asked.corp.lab") is None  # not searched: unknown, not missing


def test_account_states(online):
    disabled = online.account("disabled-user")
    locked = online.account("CORP\\locked-user")
    assert disabled is not None and disabled.disabled is True and disabled.locked is False
    assert locked is not None and locked.locked is True and locked.disabled is False
    assert locked.lockout_time and locked.lockout_time > 0
    web = online.account("svc-web")
    assert web is not None and web.disabled is False and web.locked is False and web.kvno and web.kvno >= 1


def test_mp_computer_account(online):
    mp = online.account("MP01")  # "$" optional
    assert mp is not None and mp.sam == "MP01$" and mp.kind == "computer"
    assert mp.disabled is False and "WORKSTATION_TRUST_ACCOUNT" in mp.uac_flags
    assert mp.etype_names == ("aes128-cts-hmac-sha1-96", "aes256-cts-hmac-sha1-96")
    assert mp.kvno is not None and mp.kvno >= 1


def test_trusts(online):
    assert online.trusts_read and online.domain == "corp.lab"
    kinds = {t.name: (t.kind, t.direction_name, t.attribute_names) for t in online.trusts}
    assert kinds == {
        "child.corp.lab": ("within_forest", "BIDIRECTIONAL", ("WITHIN_FOREST",)),
        "fabrikam.com": ("forest", "BIDIRECTIONAL", ("FOREST_TRANSITIVE",)),
        "partner.org": ("external", "OUTBOUND", ("QUARANTINED_DOMAIN",)),
        "example.org": ("realm", "BIDIRECTIONAL", ("NON_TRANSITIVE",)),
    }
    assert online.trust_to("FABRIKAM").name == "fabrikam.com"
    assert online.trust_to("PARTNER.ORG").transitive is False
    assert online.trust_to("nowhere.example") is None


def test_no_secret_attributes_requested(online):
    dumped = json.dumps(online.as_json()).lower()
    for secret in ("unicodepwd", "supplementalcredentials", "ntpwdhistory", "dbcspwd", "trustauthincoming"):
        assert secret not in dumped


def test_plain_ldap_simple_bind_refused_clearly(dc):
    facts, err = query(dc, f"ldap://{samba_dc.ADDRESS}")
    assert facts is None
    assert "simple bind" in err and "strongerAuthRequired" in err and "ldaps://" in err


def test_wrong_password_is_a_clear_error_without_the_password(dc):
    facts, err = query(dc, "ldaps://dc1.corp.lab", password="Not-The-Pass1", ca_file=dc.ca_file)
    assert facts is None and "invalidCredentials" in err and "Not-The-Pass1" not in err


def test_ldaps_certificate_is_verified(dc):
    facts, err = query(dc, f"ldaps://{samba_dc.ADDRESS}", ca_file=dc.ca_file)  # the name is not the cert's
    assert facts is None and "certificate" in err.lower()
    facts, err = query(dc, f"ldaps://{samba_dc.ADDRESS}", tls_verify=False)
    assert facts is not None, err


def test_unreachable_dc_is_a_clear_error(dc):
    facts, err = query(dc, "ldap://127.0.0.54:3899", timeout=2)
    assert facts is None and "127.0.0.54" in err


def test_ldif_export_gives_the_same_facts(dc, online):
    """The offline reader on Samba's own LDIF export of the same directory agrees with the online one."""
    attrs = sorted(set(ACCOUNT_ATTRIBUTES + TRUST_ATTRIBUTES + MAPPING_ATTRIBUTES))
    spn_filter = "".join(f"(servicePrincipalName={s})" for s in SPNS)
    parts = [
        dc.ldbsearch(f"(&(objectClass=user)(|{spn_filter}(sAMAccountName=MP01$)(sAMAccountName=disabled-user)"
                     "(sAMAccountName=locked-user)(sAMAccountName=svc-web)))", *attrs),
        dc.ldbsearch("(objectClass=trustedDomain)", *attrs),
        dc.run("ldbsearch", "-H", str(dc.workdir / "private" / "sam.ldb"), "-b",
               "CN=Directory Service,CN=Windows NT,CN=Services,CN=Configuration,DC=corp,DC=lab", "-s", "base",
               "sPNMappings").stdout,
    ]
    offline = parse_directory_text("\n".join(parts), "samba-export.ldif")
    assert offline.problems == []
    assert offline.domain == online.domain
    for spn in SPNS:
        assert offline.lookup(spn).status == online.lookup(spn).status, spn
        assert sorted(a.dn for a in offline.owners(spn)) == sorted(a.dn for a in online.owners(spn)), spn
    for name in ("MP01$", "svc-web", "svc-a", "MP02$", "disabled-user", "locked-user"):
        a, b = offline.account(name), online.account(name)
        assert a is not None and b is not None, name
        assert (a.kind, a.disabled, a.locked, a.kvno, a.supported_etypes) == \
               (b.kind, b.disabled, b.locked, b.kvno, b.supported_etypes), name
    assert sorted(t.as_json()["kind"] for t in offline.trusts) == sorted(t.kind for t in online.trusts)
    assert offline.spn_mappings == online.spn_mappings


def test_start_tls_simple_bind(dc):
    facts, err = query(dc, "ldap://dc1.corp.lab", start_tls=True, ca_file=dc.ca_file)
    assert facts is not None, err
    assert [a.sam for a in facts.owners("HTTP/mp01.corp.lab")] == ["svc-web"]


def test_kerberos_bind_with_a_ticket_cache(dc):
    """SASL GSSAPI over LDAPS (over plain LDAP the DC demands GSSAPI signing, which ldap3 does not do)."""
    pytest.importorskip("gssapi", reason="ldap3's Kerberos bind needs python gssapi (the lab extra: "
                        "pip install -e '.[lab]', built against libkrb5-dev)")
    env = dc.kinit("administrator@CORP.LAB", samba_dc.ADMIN_PASSWORD)
    code = (
        "import json\n"
        "from kerbtrace.context.directory import load_directory\n"
        f"f = load_directory('ldaps://dc1.corp.lab', spns={SPNS!r}, accounts={ACCOUNTS!r}, bind='kerberos',"
        f" ca_file={dc.ca_file!r})\n"
        "print(json.dumps(f.as_json()))\n"
    )
    res = dc.python(code, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    facts = DirectoryFacts.from_json(json.loads(res.stdout))
    assert facts.is_duplicate("HTTP/mp02.corp.lab") and facts.account("locked-user").locked is True


def test_kerberos_bind_without_a_ticket_is_a_clear_error(dc):
    facts, err = query(dc, "ldap://dc1.corp.lab", bind="kerberos")
    assert facts is None and "kinit" in err


def test_ntlm_bind_refused_by_samba_is_a_clear_error(dc):
    """Samba offers no Sicily NTLM bind (Windows DCs do); the error must still be one clear line."""
    facts, err = query(dc, "ldap://dc1.corp.lab", user="CORP\\Administrator", bind="ntlm")
    assert facts is None and err.startswith("ldap://dc1.corp.lab: ")


def test_global_catalog_port_searches_the_forest(dc):
    facts, err = query(dc, "ldaps://dc1.corp.lab:3269", ca_file=dc.ca_file)
    assert facts is not None, err
    assert [a.sam for a in facts.owners("HTTP/mp01.corp.lab")] == ["svc-web"]
    assert facts.is_duplicate("HTTP/mp02.corp.lab") and facts.is_missing("HTTP/mp03.corp.lab") is True


def test_size_limit_is_reported(dc):
    facts, err = query(dc, "ldaps://dc1.corp.lab", ca_file=dc.ca_file, size_limit=2)
    assert facts is not None, err
    assert len(facts.accounts) <= 2
    assert any("more than 2 entries" in p for p in facts.problems)


def test_command_line_options_reach_the_dc(dc):
    res = dc.run(sys.executable, "-m", "kerbtrace.context.directory", "--directory", "ldaps://dc1.corp.lab",
                 "--ldap-ca-file", dc.ca_file, "--ldap-user", "CORP\\Administrator", "--mp", "mp01.corp.lab",
                 "--account", "locked-user", check=False,
                 env={"PYTHONPATH": str(samba_dc.REPO), "KERBTRACE_LDAP_PASSWORD": samba_dc.ADMIN_PASSWORD})
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["lookups"]["HTTP/mp01.corp.lab"] == {"status": "ok", "owners": ["svc-web"]}
    assert out["lookups"]["HTTP/mp01"] == {"status": "ok", "owners": ["MP01$"]}
    assert [a["locked"] for a in out["accounts"] if a["sam"] == "locked-user"] == [True]
    assert samba_dc.ADMIN_PASSWORD not in res.stdout + res.stderr


def test_analyze_options_ask_the_dc_for_an_spn_the_first_time_a_check_does(dc):
    """`kerbtrace analyze --directory`: the MPs named by --mp-name are asked for up front (an unreachable DC
    fails before any capture is read); any other SPN or account is asked for once, when first looked up."""
    code = (
        "import json\n"
        "from kerbtrace.cli import build_parser\n"
        "from kerbtrace.context.options import load_context\n"
        f"args = build_parser().parse_args(['analyze', 'x.pcapng', '--directory', 'ldaps://dc1.corp.lab', "
        f"'--ldap-ca-file', {dc.ca_file!r}, '--ldap-user', 'CORP\\\\Administrator', '--mp-name', 'mp01.corp.lab'])\n"
        "d = load_context(args).beside.directory\n"
        "first = (d.queries, sorted(d.searched_spns))\n"
        "dup = d.is_duplicate('HTTP/mp02.corp.lab'); again = d.is_duplicate('HTTP/mp02.corp.lab')\n"
        "missing = d.is_missing('HTTP/mp03.corp.lab')\n"
        "locked = d.account('locked-user').locked\n"
        "print(json.dumps({'type': type(d).__name__, 'online': d.online, 'first': first, 'dup': [dup, again],\n"
        "                  'missing': missing, 'locked': locked, 'queries': d.queries, 'problems': d.problems}))\n"
    )
    res = dc.python(code, env={"KERBTRACE_LDAP_PASSWORD": samba_dc.ADMIN_PASSWORD})
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["type"] == "OnlineDirectory" and out["online"] is True
    assert out["first"][0] == 0 and "http/mp01.corp.lab" in out["first"][1]  # asked up front, not lazily
    assert "http/mp02.corp.lab" not in out["first"][1]
    assert out["dup"] == [True, True] and out["missing"] is True and out["locked"] is True
    assert out["queries"] == 3 and out["problems"] == []  # mp02, mp03, locked-user: each asked once
    assert samba_dc.ADMIN_PASSWORD not in res.stdout + res.stderr
