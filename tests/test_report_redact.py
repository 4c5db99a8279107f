"""`kerbtrace report --redact`: no identifier of any lab capture survives in any format, the
pseudonyms keep the structure readable, are keyed and stable, and no ticket or key ever appears."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kerbtrace.analysis import analyze
from kerbtrace.reports.json_report import to_json
from kerbtrace.reports.redact import redact
from kerbtrace.reports.render import render
from tests.conftest import CAPTURES, lab_manifests

KEY = b"test-key-1"
FORMATS = ("html", "md", "json")
MANIFESTS = lab_manifests()


@cache
def document(capture: str) -> dict:
    return to_json(analyze([str(CAPTURES / capture)], progress=False))


def occurs(identifier: str, text: str) -> bool:
    """`identifier` in `text`, in any case, also inside a hyphenated word (`dc01-Security.evtx`), but not
    inside a longer name or number (`127.0.0.1` is not inside `127.0.0.10`, `wk1` not inside `wk10`)."""
    return re.search(rf"(?<![A-Za-z0-9])(?<!\d\.){re.escape(identifier)}(?![A-Za-z0-9]|\.\d)",
                     text, re.I) is not None


def manifest_identifiers(manifest: dict) -> set[str]:
    ids: set[str] = set()
    for mp in manifest.get("mps", []):
        ids |= {mp.get("ip"), mp.get("name"), mp.get("realm")}
    for c in manifest["clients"]:
        ids |= {c.get(k) for k in ("client_ip", "hostname", "fqdn", "realm", "account")}
        ids |= {c["mp"].get("ip"), c["mp"].get("name")}
        if c.get("smsid"):
            ids.add(c["smsid"].split(":", 1)[-1])
        if c.get("account"):
            ids.add(c["account"].split("@")[0].rstrip("$"))
        for e in c.get("evidence", []):
            ids |= {e.get("kdc"), e.get("client_ip")}
    for f in manifest.get("fleet", []):
        ids.add(f.get("principal"))
        ids |= set(f.get("sources", []))
    return {i for i in ids if isinstance(i, str) and i}


def document_identifiers(doc: dict) -> set[str]:
    ids: set[str] = set()
    for c in doc["clients"]:
        ids |= {c.get(k) for k in ("client_ip", "hostname", "fqdn", "realm", "account")}
        ids |= {(c.get("mp") or {}).get("ip"), (c.get("mp") or {}).get("name")}
        ids |= {s.get(k) for s in c["timeline"] for k in ("src", "dst")}
        if c.get("smsid"):
            ids.add(c["smsid"].split(":", 1)[-1])
    for k in doc["kerberos"]:
        ids |= {k.get("src"), k.get("dst"), k.get("realm"), k.get("cname")}
        if k.get("sname") and "/" in k["sname"]:
            ids.add(k["sname"].split("/", 1)[1])
    ids = {i for i in ids if isinstance(i, str) and i}
    ids |= {i.split("@")[0].rstrip("$") for i in ids if "@" in i}
    return ids


def outputs(doc: dict) -> dict[str, str]:
    return {fmt: render(doc, fmt) for fmt in FORMATS}


@pytest.mark.parametrize("manifest_path", MANIFESTS, ids=lambda p: p.stem)
def test_no_identifier_of_a_lab_capture_survives_redaction(manifest_path: Path):
    manifest = json.loads(manifest_path.read_text())
    doc = document(manifest["capture"])
    identifiers = manifest_identifiers(manifest) | document_identifiers(doc)
    assert identifiers, "the manifest names its clients"
    plain = outputs(doc)
    # the check can fail: the unredacted report shows the clients' identifiers
    if doc["clients"]:
        assert any(occurs(i, plain["html"]) for i in identifiers)
    redacted = outputs(redact(doc, KEY))
    for fmt, text in redacted.items():
        leaked = sorted(i for i in identifiers if occurs(i, text))
        assert not leaked, f"{fmt} report of {manifest['capture']} still shows {leaked}"
    assert redacted["html"].encode("utf-8").decode("utf-8") == redacted["html"]
    # the embedded document is redacted too (it is part of the HTML checked above), and parses back
    embedded = re.search(r'<script type="application/json" id="kerbtrace-document">(.*?)</script>',
                         redacted["html"], re.S)
    assert embedded and json.loads(embedded.group(1))["redacted"]["key"] == "given"


def test_structure_stays_readable():
    doc = redact(document("mixed.pcapng"), KEY)
    clients = doc["clients"]
    realms = {c["realm"] for c in clients if c["realm"]}
    assert len(realms) == 3, realms  # CORP.LAB, CHILD.CORP.LAB, OTHER.LAB stay three realms
    parents = [r for r in realms if any(o != r and o.endswith("." + r) for o in realms)]
    assert len(parents) == 1, "the child realm still reads as a child of its parent"
    for c in clients:
        assert c["mp"]["name"].startswith("mp-"), c["mp"]
        if c["account"] and c["hostname"]:
            assert c["account"].startswith(c["hostname"] + "$@"), c["account"]
            assert not c["fqdn"] or c["fqdn"].split(".")[0] == c["hostname"].lower()
    snames = {k["sname"] for k in doc["kerberos"] if k["sname"]}
    assert any(s.startswith("HTTP/mp-") for s in snames)
    assert any(s.startswith("krbtgt/") for s in snames)
    # one MP is the same pseudonym wherever it appears: in the mp field and in the SPN of the ticket
    mp_names = {c["mp"]["name"] for c in clients}
    assert {s.split("/", 1)[1].split("@")[0].lower() for s in snames if s.startswith("HTTP/")} <= mp_names
    assert doc["inputs"][0]["path"] == "mixed.pcapng"  # the folder may name a user or a server
    # a client's address in the timeline is the one of its client_ip field
    for c in clients:
        assert all(c["client_ip"] in (s["src"], s["dst"]) for s in c["timeline"])


def test_same_key_same_pseudonyms_other_key_other_pseudonyms():
    doc = document("ok_child_referral.pcapng")
    first, again = redact(doc, KEY), redact(copy.deepcopy(doc), KEY)
    assert render(first, "html") == render(again, "html")
    other = redact(doc, b"another key")
    assert first["clients"][0]["hostname"] != other["clients"][0]["hostname"]
    assert first["clients"][0]["client_ip"] != other["clients"][0]["client_ip"]
    assert first["clients"][0]["realm"] != other["clients"][0]["realm"]


def test_cli_redact_key_is_stable_and_random_key_is_not(tmp_path: Path, monkeypatch):
    from kerbtrace.cli import main

    monkeypatch.delenv("KERBTRACE_REDACT_KEY", raising=False)
    capture = str(CAPTURES / "ok_same_realm.pcapng")
    outs = []
    for i, extra in enumerate((["--redact-key", "k1"], ["--redact-key", "k1"], ["--redact"], ["--redact"])):
        out = tmp_path / f"r{i}.json"
        assert main(["report", capture, "--no-progress", "-o", str(out), *extra]) == 0
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1]
    assert outs[2]["clients"][0]["hostname"] != outs[3]["clients"][0]["hostname"]
    assert outs[2]["redacted"]["key"] == "random"
    assert "k1" not in json.dumps(outs[0])
    monkeypatch.setenv("KERBTRACE_REDACT_KEY", "k1")
    out = tmp_path / "env.json"
    assert main(["report", capture, "--no-progress", "--redact", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["clients"] == outs[0]["clients"]


BLOB = re.compile(r"[A-Za-z0-9+/]{41,}={0,2}")


@pytest.mark.parametrize("capture", ["mixed.pcapng", "ntlm_only.pcapng", "user_lockout.pcapng"])
def test_no_ticket_token_or_key_in_any_output(capture: str):
    doc = document(capture)
    for variant in (doc, redact(doc, KEY)):
        for fmt, text in outputs(variant).items():
            assert "YII" not in text and "TlRMTVNT" not in text, fmt  # SPNEGO/Kerberos and NTLMSSP in base64
            blobs = BLOB.findall(text)
            assert not blobs, f"{fmt}: base64-like blob {blobs[:1]}"


# -- property test on generated names ---------------------------------------------------------------

LABEL = st.from_regex(r"[a-z][a-z0-9]{2,9}", fullmatch=True)
OCTET = st.integers(1, 254)


@cache
def _vocabulary() -> frozenset[str]:
    """Words every redacted report has anyway (template text, pseudonym prefixes, code names)."""
    text = " ".join(render(redact(document("ok_child_referral.pcapng"), KEY), f) for f in FORMATS)
    return frozenset(w.lower() for w in re.findall(r"[A-Za-z0-9]+", text))


def synthetic(host: str, mp: str, child: str, parent: str, top: str, user: str, ip: tuple[int, ...]) -> dict:
    """A real document (the lab's child-realm referral) with every identifier replaced by generated names."""
    doc = copy.deepcopy(document("ok_child_referral.pcapng"))
    text = json.dumps(doc)
    swaps = {"wk05": host, "mp01": mp, "child.corp.lab": f"{child}.{parent}.{top}", "corp.lab": f"{parent}.{top}",
             "127.0.2.5": ".".join(map(str, ip)), "127.0.0.10": ".".join(map(str, (ip[0], ip[1], ip[2], ip[3] ^ 1)))}
    for old, new in swaps.items():  # names as names, not as words of the prose (`a child realm`)
        before = r"(?<![\d.])" if old[0].isdigit() else r"(?<![A-Za-z0-9-])"
        after = r"(?![A-Za-z0-9-]|\.\d)"
        text = re.sub(before + re.escape(old.upper()) + after, new.upper(), text)
        text = re.sub(before + re.escape(old) + after, new, text, flags=re.I)
    out = json.loads(text)
    out["clients"][0]["causes"][0]["summary"] += f" Seen as {parent.upper()}\\{user} and {user}@{parent}.{top}."
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(host=LABEL, mp=LABEL, child=LABEL, parent=LABEL, top=LABEL, user=LABEL,
       ip=st.tuples(OCTET, OCTET, OCTET, OCTET))
def test_property_generated_names_never_survive(host, mp, child, parent, top, user, ip):
    names = [host, mp, child, parent, user]
    assume(len(set(names + [top])) == 6)
    assume(not any(n in _vocabulary() for n in names + [top]))
    doc = synthetic(host, mp, child, parent, top, user, ip)
    address = ".".join(map(str, ip))
    plain = render(doc, "html")
    assert occurs(host, plain) and occurs(address, plain)  # the generated names are really in the report
    for fmt, text in outputs(redact(doc, KEY)).items():
        for identifier in (host, mp, user, f"{parent}.{top}", f"{child}.{parent}.{top}", f"{parent.upper()}\\{user}",
                           address):
            assert not occurs(identifier, text), f"{identifier} in the {fmt} report"


def test_context_evidence_fleet_and_fix_script_are_redacted_too():
    """Fields that log, DC-event and directory sources add are rewritten like the rest."""
    doc = copy.deepcopy(document("user_lockout.pcapng"))
    client = doc["clients"][0]
    client["causes"][0]["evidence"] += [
        {"source": "iis", "file": "C:\\inetpub\\logs\\LogFiles\\W3SVC1\\u_ex261204.log", "line": 17,
         "text": "2026-12-04 16:05:01 127.0.0.10 CCM_POST /ccm_system_windowsauth/request - 80 CORP\\smsclient "
                 "127.0.1.21 ccmhttp - 401 1 2148074254"},
        {"source": "dc_event", "file": "dc01-Security.evtx", "line": 4, "computer": "dc01.corp.lab",
         "workstation": "WK21", "target_user": "smsclient", "text": "4740 smsclient locked out, caller WK21 on DC01"},
    ]
    doc["fleet"] = [{"code": "lockout_sources", "principal": "smsclient@CORP.LAB",
                     "sources": ["127.0.1.21", "127.0.1.22", "fe80::1:21"],
                     "summary": "smsclient@CORP.LAB is locked out by WK21 (127.0.1.21) and fe80::1:21."}]
    doc["fix_script"] = "# SPN\nsetspn -D HTTP/mp01.corp.lab CORP\\websvc\nGet-ADUser websvc -Server dc01.corp.lab\n"
    red = redact(doc, KEY)
    for fmt, text in outputs(red).items():
        for identifier in ("smsclient", "WK21", "dc01", "dc01.corp.lab", "corp.lab", "websvc", "127.0.1.21",
                           "127.0.0.10", "fe80::1:21", "inetpub", "CORP\\"):
            assert not occurs(identifier, text), f"{identifier} in the {fmt} report"
    evidence = red["clients"][0]["causes"][0]["evidence"]
    assert evidence[-2]["file"] == "u_ex261204.log" and evidence[-2]["line"] == 17
    assert "HTTP/mp-" in red["fix_script"] and "setspn -D" in red["fix_script"]
