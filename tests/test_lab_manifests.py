"""The lab's capture manifests against Wireshark's own reading of the captures.

Every evidence item is turned into a Wireshark display filter from its kind and values (not from the lab's
code), and the frame must match it. Manifest-wide claims (client addresses, 200 for approved clients, no
HTTP after NXDOMAIN, Kerberos sent from the client's own address) are checked the same way. Each client's
verdict, auth and cause are derived a second time from the capture alone (tests/lab_labels.py), so a label
the packets do not support fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab_labels import derive, label_problems, lockout_sources

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
MANIFESTS = sorted(CAPTURES.glob("*.json"))
REG_URI = "/ccm_system_windowsauth/request"
CAUSES = {"ok", "spn_wrong_account", "spn_missing", "no_trust_path", "trust_broken", "clock_skew",
          "account_revoked", "preauth_failed", "ntlm_fallback", "no_kerberos_attempt", "kdc_unreachable",
          "dns_failure", "duplicate_guid", "etype_unsupported", "approval_pending", "incomplete_capture",
          "registration_encrypted"}
EXPECTED_SCENARIOS = {"ok_same_realm", "ok_child_referral", "spn_on_other_account", "spn_missing", "clock_skew",
                      "account_locked", "account_disabled", "no_trust_path", "duplicate_guid",
                      "kerberos_over_tcp", "dns_failure", "trust_broken", "kdc_unreachable", "etype_unsupported",
                      "no_kerberos_attempt", "ntlm_only", "https_mp", "user_lockout", "mixed"}
# every new failure kind also appears inside the mixed capture
MIXED_MUST_HOLD = {"ok", "spn_wrong_account", "spn_missing", "no_trust_path", "trust_broken", "clock_skew",
                   "account_revoked", "dns_failure", "duplicate_guid", "kdc_unreachable", "etype_unsupported",
                   "no_kerberos_attempt", "ntlm_fallback"}

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def _tshark(pcap: Path, display_filter: str, *fields: str) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields"]
    for f in fields or ("frame.number",):
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()]


def _q(text: object) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sname(sname: object) -> str:
    return " && ".join(f"kerberos.SNameString == {_q(p)}" for p in str(sname).split("/"))


def _port88(transport: object) -> str:
    return "tcp.srcport == 88" if transport == "tcp" else "udp.srcport == 88"


def evidence_filter(e: dict[str, object]) -> str:
    """Display filter that frame ``e['frame']`` must match for the evidence item to be true."""
    f = _kind_filter(e)
    if "kdc" in e:  # the KDC that answered (or was asked, for an unanswered request)
        f += f" && ip.{'dst' if e['kind'] == 'krb_request_unanswered' else 'src'} == {e['kdc']}"
    return f


def _kind_filter(e: dict[str, object]) -> str:
    ip = e["client_ip"]
    kind = e["kind"]
    if kind == "dns_response":
        return (f"dns.flags.response == 1 && ip.dst == {ip} && dns.qry.name == {_q(e['name'])} "
                f"&& dns.qry.type == 1 && dns.flags.rcode == {e['rcode']}")
    if kind == "dns_srv_response":
        targets = list(e["targets"])  # type: ignore[call-overload]
        f = (f"dns.flags.response == 1 && ip.dst == {ip} && dns.qry.name == {_q(e['name'])} "
             f"&& dns.qry.type == 33 && dns.flags.rcode == {e['rcode']} && count(dns.srv.target) == {len(targets)}")
        return f + "".join(f" && dns.srv.target == {_q(t)}" for t in targets)
    if kind == "krb_request_unanswered":
        return (f"kerberos.msg_type == {e['msg_type']} && ip.src == {ip} && !icmp "
                f"&& {'tcp' if e['transport'] == 'tcp' else 'udp'}.dstport == 88")
    if kind == "icmp_unreachable":  # the ICMP error quotes the client's datagram to the KDC port
        return (f"icmp.type == 3 && icmp.code == {e['code']} && ip.src == {e['from_ip']} && ip.dst == {ip} "
                f"&& udp.dstport == {e['port']}")
    if kind == "tcp_reset":
        return f"tcp.flags.reset == 1 && ip.src == {e['from_ip']} && ip.dst == {ip} && tcp.srcport == {e['port']}"
    if kind == "krb_error":
        return (f"kerberos.msg_type == 30 && kerberos.error_code == {e['error_code']} && ip.dst == {ip} "
                f"&& {_port88(e['transport'])} && {_sname(e['sname'])}")
    if kind == "as_rep":
        return (f"kerberos.msg_type == 11 && ip.dst == {ip} && {_port88(e['transport'])} "
                f"&& kerberos.CNameString == {_q(e['cname'])}")
    if kind == "tgs_rep":  # the only sname of a TGS-REP is the one of the ticket it carries
        return f"kerberos.msg_type == 13 && ip.dst == {ip} && {_port88(e['transport'])} && {_sname(e['sname'])}"
    if kind == "http_ap_req":
        return (f"http.request.uri == {_q(REG_URI)} && ip.src == {ip} && kerberos.msg_type == 14 "
                f"&& {_sname(e['sname'])}")
    if kind == "tls_client_hello":
        return (f"tls.handshake.type == 1 && ip.src == {ip} && ip.dst == {e['server_ip']} "
                f"&& tcp.dstport == {e['port']} && tls.handshake.extensions_server_name == {_q(e['sni'])}")
    if kind == "http_ntlm_auth":
        return f"http.request.uri == {_q(REG_URI)} && ip.src == {ip} && ntlmssp.messagetype == 3"
    if kind == "http_response":
        f = f"http.response.code == {e['status']} && ip.dst == {ip} && http.response_for.uri contains {_q(REG_URI)}"
        if "error_code" in e:
            f += f" && kerberos.msg_type == 30 && kerberos.error_code == {e['error_code']}"
        return f
    raise AssertionError(f"unknown evidence kind {kind!r}")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_all_scenarios_present() -> None:
    assert {p.stem for p in MANIFESTS} == EXPECTED_SCENARIOS
    for name in EXPECTED_SCENARIOS:
        for suffix in (".pcapng", ".iis.log", ".MP_RegistrationManager.log"):
            assert (CAPTURES / f"{name}{suffix}").is_file(), f"{name}{suffix}"


def test_capture_sizes() -> None:
    sizes = {p.name: p.stat().st_size for p in CAPTURES.glob("*.pcapng")}
    assert all(s < 2 * 1024 * 1024 for s in sizes.values()), sizes
    assert sum(sizes.values()) < 12 * 1024 * 1024
    for p in CAPTURES.glob("*.pcapng"):
        assert p.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a", f"{p.name} is not pcapng"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_schema(manifest: Path) -> None:
    m = _load(manifest)
    assert m["capture"] == f"{manifest.stem}.pcapng" and m["scenario"] == manifest.stem
    assert m["mps"] and m["clients"] and m["description"]
    shared = {f["principal"] for f in m.get("fleet", [])}
    for c in m["clients"]:
        assert c["verdict"] in {"approved", "not_approved", "inconclusive"}
        https = c["mp"].get("port") == 443
        # null auth: the mechanism is inside TLS; the lab's own knowledge then sits in "truth"
        assert c["auth"] in {"kerberos", "ntlm", "none"} or (https and c["auth"] is None)
        if "truth" in c:
            assert https and c["truth"]["verdict"] in {"approved", "not_approved"}
            assert c["truth"]["auth"] in {"kerberos", "ntlm", "none"}
        assert c["cause"] in CAUSES and set(c["secondary_causes"]) <= CAUSES
        assert c["approved"] == (c["verdict"] == "approved")
        assert c["approved"] == (c["cause"] == "ok"), c["hostname"]
        assert c["account"] in {f"{c['hostname']}$@{c['realm']}", *shared}
        assert c["smsid"].startswith("GUID:")
        assert c["evidence_frames"] == sorted({e["frame"] for e in c["evidence"]})
        assert all(e["client_ip"] == c["client_ip"] for e in c["evidence"])


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_evidence_frames_hold_what_manifest_says(manifest: Path) -> None:
    m = _load(manifest)
    pcap = CAPTURES / m["capture"]
    by_frame: dict[int, list[str]] = {}
    for c in m["clients"]:
        for e in c["evidence"]:
            by_frame.setdefault(int(e["frame"]), []).append(f"({evidence_filter(e)})")
    terms = [f"(frame.number == {n} && {' && '.join(conds)})" for n, conds in by_frame.items()]
    matched: set[int] = set()
    for i in range(0, len(terms), 60):  # keep each filter a reasonable size
        matched |= {int(r[0]) for r in _tshark(pcap, " || ".join(terms[i:i + 60]))}
    missing = sorted(set(by_frame) - matched)
    assert not missing, [(n, by_frame[n]) for n in missing[:5]]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_clients_against_capture(manifest: Path) -> None:
    m = _load(manifest)
    pcap = CAPTURES / m["capture"]
    rows = _tshark(pcap, "ip", "ip.src", "ip.dst")
    addrs = {a for r in rows for a in r}
    ok_200 = {r[0] for r in _tshark(pcap, f"http.response.code == 200 && http.response_for.uri contains "
                                          f"{_q(REG_URI)}", "ip.dst")}
    http_from = {r[0] for r in _tshark(pcap, "http.request", "ip.src")}
    for c in m["clients"]:
        ip = c["client_ip"]
        assert ip in addrs, f"{c['hostname']} {ip} never appears"
        kinds = [e["kind"] for e in c["evidence"]]
        if c["approved"]:
            assert ip in ok_200, f"approved {c['hostname']} has no 200 on {REG_URI}"
            snames = {e["sname"] for e in c["evidence"] if e["kind"] == "tgs_rep"}
            assert f"HTTP/{c['mp']['name']}" in snames
        if c["cause"] == "dns_failure":
            assert ip not in http_from and any(e.get("rcode") == 3 for e in c["evidence"])
        if c["cause"] in ("spn_missing", "no_trust_path"):
            assert any(e.get("error_code") == 7 for e in c["evidence"] if e["kind"] == "krb_error")
        if c["auth"] == "ntlm":
            assert "http_ntlm_auth" in kinds
        if c["auth"] == "kerberos":
            assert "http_ap_req" in kinds
        if c["realm"] == "CHILD.CORP.LAB" and c["approved"]:
            referral = [e for e in c["evidence"] if e["kind"] == "tgs_rep" and e["sname"] == "krbtgt/CORP.LAB"]
            assert referral, f"{c['hostname']}: no referral TGS-REP"
        if c["cause"] in ("kdc_unreachable", "etype_unsupported", "no_kerberos_attempt"):
            assert ip in http_from and ip not in ok_200 and "http_ap_req" not in kinds, c["hostname"]
            assert c["auth"] == "none" and "http_ntlm_auth" not in kinds


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_srv_location_precedes_a_lookup(manifest: Path) -> None:
    """Clients located through SRV: the SRV answer names the MP, then the same client asks for its A record."""
    m = _load(manifest)
    pcap = CAPTURES / m["capture"]
    srv = _tshark(pcap, "dns.flags.response == 1 && dns.qry.type == 33", "frame.number", "ip.dst", "dns.qry.name",
                  "dns.srv.target", "dns.srv.port")
    a_queries = _tshark(pcap, "dns.flags.response == 0 && dns.qry.type == 1", "frame.number", "ip.src",
                        "dns.qry.name")
    located = [c for c in m["clients"] if c["mp"]["located_by"] == "dns_srv"]
    for c in located:
        answers = [r for r in srv if r[1] == c["client_ip"] and r[2] == c["mp"]["srv_name"]]
        assert answers, c["hostname"]
        frame, _, _, targets, ports = answers[0]
        assert c["mp"]["name"] in targets.split(",") and set(ports.split(",")) == {"80"}
        after = [r for r in a_queries if r[1] == c["client_ip"] and int(r[0]) > int(frame)]
        assert after and after[0][2] == c["mp"]["name"], c["hostname"]
    for c in m["clients"]:
        if c["mp"]["located_by"] == "dns_a":
            assert not [r for r in srv if r[1] == c["client_ip"]], c["hostname"]


def test_stale_srv_record_in_dns_failure() -> None:
    """The MP name of a dns_failure client comes from the capture: SRV target, then NXDOMAIN for it."""
    for name in ("dns_failure", "mixed"):
        m = _load(CAPTURES / f"{name}.json")
        (c,) = [c for c in m["clients"] if c["cause"] == "dns_failure"]
        assert c["mp"]["located_by"] == "dns_srv" and c["mp"]["ip"] is None
        kinds = {e["kind"]: e for e in c["evidence"]}
        assert kinds["dns_srv_response"]["targets"] == [c["mp"]["name"]]
        assert kinds["dns_response"]["rcode"] == 3 and kinds["dns_response"]["name"] == c["mp"]["name"]
        assert kinds["dns_srv_response"]["frame"] < kinds["dns_response"]["frame"]


def test_trust_broken_referral_then_integrity_error() -> None:
    """The child KDC issues the referral; the TGS-REQ presenting it to the parent gets error 31."""
    pcap = CAPTURES / "trust_broken.pcapng"
    (c,) = _load(CAPTURES / "trust_broken.json")["clients"]
    ip = c["client_ip"]
    types = "kerberos.msg_type == 12 || kerberos.msg_type == 13 || kerberos.msg_type == 30"
    rows = _tshark(pcap, f"({types}) && ip.addr == {ip} && !(kerberos.error_code == 25)",
                   "kerberos.msg_type", "ip.src", "ip.dst", "kerberos.SNameString", "kerberos.realm",
                   "kerberos.error_code")
    kinds = [r[0].split(",")[0] for r in rows]  # a TGS-REQ also holds its AP-REQ (14)
    assert kinds == ["12", "13", "12", "30"], rows
    assert rows[1][1] == "127.0.0.89" and rows[1][3] == "krbtgt,CORP.LAB" and rows[1][4].startswith("CHILD.CORP.LAB")
    # the second TGS-REQ goes to the parent KDC and carries the referral ticket krbtgt/CORP.LAB@CHILD.CORP.LAB
    assert rows[2][2] == "127.0.0.88" and "krbtgt,CORP.LAB" in rows[2][3] and "CHILD.CORP.LAB" in rows[2][4]
    assert rows[3][1] == "127.0.0.88" and rows[3][5] == "31"
    assert c["cause"] == "trust_broken" and c["secondary_causes"] == ["ntlm_fallback"]
    finals = _tshark(pcap, f"http.response.code && ip.dst == {ip}", "http.response.code")
    assert [r[0] for r in finals] == ["401", "401", "401"]


def test_kdc_unreachable_gets_no_kerberos_answer() -> None:
    pcap = CAPTURES / "kdc_unreachable.pcapng"
    (c,) = _load(CAPTURES / "kdc_unreachable.json")["clients"]
    dead = {e["kdc"] for e in c["evidence"] if e["kind"] == "krb_request_unanswered"}
    assert len(dead) == 1
    (kdc,) = dead
    assert not _tshark(pcap, f"kerberos && ip.src == {kdc} && !icmp")  # nothing ever answered
    reqs = _tshark(pcap, f"kerberos.msg_type == 10 && ip.dst == {kdc} && !icmp", "ip.src")
    assert reqs and {r[0] for r in reqs} == {c["client_ip"]}
    assert _tshark(pcap, f"icmp.type == 3 && ip.src == {kdc}") or _tshark(pcap, f"tcp.flags.reset == 1 && "
                                                                            f"ip.src == {kdc}")
    assert [r[0] for r in _tshark(pcap, "http.response.code", "http.response.code")] == ["401"]


def test_etype_unsupported_offers_only_unkeyed_etype() -> None:
    pcap = CAPTURES / "etype_unsupported.pcapng"
    req = _tshark(pcap, "kerberos.msg_type == 10", "kerberos.ENCTYPE")
    err = _tshark(pcap, "kerberos.msg_type == 30", "kerberos.error_code")
    assert req and all(r[0] == "26" for r in req)  # camellia256-cts-cmac only
    assert [r[0] for r in err] == ["14"]
    assert not _tshark(pcap, "kerberos.msg_type == 11 || kerberos.msg_type == 12")


def test_no_kerberos_attempt_is_anonymous_only() -> None:
    pcap = CAPTURES / "no_kerberos_attempt.pcapng"
    assert not _tshark(pcap, "kerberos || ntlmssp || http.authorization")
    assert [r[0] for r in _tshark(pcap, "http.request", "http.request.method")] == ["CCM_POST"]
    (offered,) = _tshark(pcap, "http.response", "http.www_authenticate")
    assert "Negotiate" in offered[0].split(",")


def test_ntlm_only_never_asks_for_a_service_ticket() -> None:
    pcap = CAPTURES / "ntlm_only.pcapng"
    assert not _tshark(pcap, "kerberos.msg_type == 12")
    assert [r[0] for r in _tshark(pcap, "ntlmssp.messagetype", "ntlmssp.messagetype")] == \
        ["0x00000001", "0x00000002", "0x00000003"]
    assert [r[0] for r in _tshark(pcap, "http.response.code", "http.response.code")] == ["401", "401", "200"]


def test_mixed_holds_every_cause() -> None:
    m = _load(CAPTURES / "mixed.json")
    assert MIXED_MUST_HOLD <= {c["cause"] for c in m["clients"]}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_kerberos_leaves_from_client_addresses(manifest: Path) -> None:
    """libkrb5 binds no source address: the lab's routing must still put the client's own address on it."""
    m = _load(manifest)
    clients = {c["client_ip"] for c in m["clients"]}
    rows = _tshark(CAPTURES / m["capture"], "kerberos && !icmp && (udp.dstport == 88 || tcp.dstport == 88)",
                   "ip.src")
    krb_kinds = {"as_rep", "tgs_rep", "krb_error", "krb_request_unanswered"}
    if any(e["kind"] in krb_kinds for c in m["clients"] for e in c["evidence"]):
        assert rows, "no Kerberos requests"
    assert {r[0] for r in rows} <= clients


def test_referral_ticket_is_cross_realm_tgt() -> None:
    """The child-domain client's first TGS-REP carries krbtgt/CORP.LAB issued by CHILD.CORP.LAB."""
    rows = _tshark(CAPTURES / "ok_child_referral.pcapng", "kerberos.msg_type == 13",
                   "kerberos.SNameString", "kerberos.realm", "ip.src")
    assert rows[0][0] == "krbtgt,CORP.LAB" and rows[0][1].split(",")[0] == "CHILD.CORP.LAB"
    assert rows[-1][0] == "HTTP,mp01.corp.lab" and rows[-1][1].split(",")[0] == "CORP.LAB"
    assert rows[0][2] != rows[-1][2]  # two different KDCs


def _label_problems_of(manifest: Path) -> list[str]:
    m = _load(manifest)
    return label_problems(m, manifest.parent / m["capture"])


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_labels_derived_from_capture(manifest: Path) -> None:
    """Verdict, auth, cause, secondary causes, MP and fleet findings as tshark shows them, rule by rule."""
    problems = _label_problems_of(manifest)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("scenario, host, field, wrong", [
    ("clock_skew", "WK04", "cause", "spn_wrong_account"),
    ("spn_on_other_account", "WK02", "cause", "clock_skew"),
    ("spn_missing", "WK03", "cause", "no_trust_path"),
    ("trust_broken", "WK14", "cause", "no_trust_path"),
    ("account_locked", "WK06", "cause", "kdc_unreachable"),
    ("duplicate_guid", "WK11", "cause", "ok"),
    ("https_mp", "WK19", "cause", "ok"),
    ("https_mp", "WK20", "secondary_causes", ["ntlm_fallback"]),
    ("user_lockout", "WK24", "secondary_causes", ["preauth_failed"]),
    ("ntlm_only", "WK18", "auth", "kerberos"),
    ("mixed", "LAP02", "cause", "spn_wrong_account"),
])
def test_relabelled_copy_fails(tmp_path: Path, scenario: str, host: str, field: str, wrong: object) -> None:
    """A manifest copy with one wrong label, next to a copy of its capture, fails the derivation."""
    m = _load(CAPTURES / f"{scenario}.json")
    (c,) = [c for c in m["clients"] if c["hostname"] == host]
    assert c[field] != wrong
    c[field] = wrong
    (tmp_path / f"{scenario}.json").write_text(json.dumps(m))
    shutil.copy(CAPTURES / m["capture"], tmp_path / m["capture"])
    problems = _label_problems_of(tmp_path / f"{scenario}.json")
    assert [p for p in problems if p.startswith(f"{host} ")], problems
    assert _label_problems_of(CAPTURES / f"{scenario}.json") == []


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_every_other_cause_disagrees(manifest: Path) -> None:
    """No client's capture supports a second cause label: each wrong cause is rejected."""
    m = _load(manifest)
    pcap = CAPTURES / m["capture"]
    realms = {mp["realm"] for mp in m["mps"]}
    for c in m["clients"]:
        got = derive(pcap, c["client_ip"], realms)
        assert got.cause == c["cause"], (c["hostname"], got.why)
        for wrong in CAUSES - {c["cause"]}:
            bad = dict(m, clients=[dict(c, cause=wrong)], fleet=m.get("fleet", []))
            assert label_problems(bad, pcap), (c["hostname"], wrong)


def test_fleet_lockout_needs_the_failed_sources() -> None:
    """Dropping a lockout source, or adding one that never failed pre-authentication, is caught."""
    m = _load(CAPTURES / "user_lockout.json")
    pcap = CAPTURES / m["capture"]
    (item,) = m["fleet"]
    assert item["code"] == "lockout_sources" and len(item["sources"]) == 3
    for sources in (item["sources"][:-1], item["sources"] + ["127.0.1.24"]):
        assert label_problems(dict(m, fleet=[dict(item, sources=sources)]), pcap)
    assert label_problems(dict(m, fleet=[]), pcap)
    for name in ("account_locked", "mixed"):  # one address per locked account: no shared-principal lockout
        assert lockout_sources(CAPTURES / f"{name}.pcapng") == []


def test_user_lockout_order_on_the_wire() -> None:
    """Stale clients fail pre-authentication until the lock; afterwards every AS-REQ gets CLIENT_REVOKED."""
    m = _load(CAPTURES / "user_lockout.json")
    pcap = CAPTURES / m["capture"]
    rows = _tshark(pcap, "kerberos.msg_type == 30 && kerberos.error_code != 25", "frame.number", "ip.dst",
                   "kerberos.error_code")
    codes = [r[2] for r in rows]
    assert codes == ["24"] * 3 + ["18"] * 4, rows
    fresh = [c["client_ip"] for c in m["clients"] if not c["secondary_causes"]]
    assert len(fresh) == 1 and [r[1] for r in rows if r[2] == "24"] == m["fleet"][0]["sources"]
    assert fresh[0] in {r[1] for r in rows if r[2] == "18"}
    cnames = {r[0] for r in _tshark(pcap, "kerberos.msg_type == 10", "kerberos.CNameString")}
    assert cnames == {"smsclient"}


def test_https_registration_stays_inside_tls() -> None:
    """Port 443: no readable HTTP; the server certificate names the MP; the ticket request follows the hello."""
    m = _load(CAPTURES / "https_mp.json")
    pcap = CAPTURES / m["capture"]
    assert not _tshark(pcap, "http || ntlmssp || (kerberos.msg_type == 14 && !udp.port == 88 && !tcp.port == 88)")
    certs = _tshark(pcap, "tls.handshake.type == 11", "ip.src", "x509ce.dNSName")
    mps = {mp["ip"]: mp["name"] for mp in m["mps"]}
    assert {(r[0], r[1]) for r in certs if r[0] in mps} == set(mps.items())
    # PKI client authentication: the MP asks for a certificate, and TLS 1.2 carries the client's in clear
    asking = {r[0] for r in _tshark(pcap, "tls.handshake.type == 13", "ip.src")}
    presented = {(r[0], r[1]) for r in certs if r[0] not in mps}
    assert len(asking) == 1 and len(presented) == 1
    ((client_ip, name),) = presented
    (c,) = [c for c in m["clients"] if c["client_ip"] == client_ip]
    assert name == c["fqdn"] and c["mp"]["ip"] in asking
    assert {r[0] for r in _tshark(pcap, "tls.handshake.type == 2", "tls.handshake.version")} == {"0x0303"}
    for c in m["clients"]:
        hello = _tshark(pcap, f"tls.handshake.type == 1 && ip.src == {c['client_ip']}", "frame.number")
        tgs = _tshark(pcap, f"kerberos.msg_type == 12 && ip.src == {c['client_ip']}", "frame.number")
        assert hello and tgs and int(tgs[0][0]) > int(hello[0][0]), c["hostname"]


def test_https_truth_matches_the_mp_logs() -> None:
    """What the capture cannot show, the MP's own logs do: the lab's truth must agree with them."""
    m = _load(CAPTURES / "https_mp.json")
    iis = (CAPTURES / "https_mp.iis.log").read_text().splitlines()
    reg = (CAPTURES / "https_mp.MP_RegistrationManager.log").read_text()
    for c in m["clients"]:
        lines = [ln.split() for ln in iis if not ln.startswith("#") and f" {c['client_ip']} " in ln]
        assert lines and all(ln[6] == "443" for ln in lines), c["hostname"]
        assert lines[-1][11] == "200"
        truth = c["truth"]
        user = f"{c['realm'].split('.')[0]}\\{c['hostname']}$"
        decision = "approved (trusted domain)" if truth["verdict"] == "approved" else "not approved"
        assert f"Client '{user}' authenticated with {truth['auth']}; {decision}." in reg, c["hostname"]


@pytest.mark.lab
@pytest.mark.skipif(os.environ.get("KERBTRACE_LAB") != "1", reason="set KERBTRACE_LAB=1 (root, MIT krb5)")
@pytest.mark.parametrize("name", ["ok_child_referral", "trust_broken", "kdc_unreachable", "https_mp",
                                  "user_lockout"])
def test_rebuild_one_scenario(tmp_path: Path, name: str) -> None:
    """End to end: real KDCs, MP and client in a fresh namespace; the new manifest's labels and evidence are
    what tshark reads in the new capture, and they match the shipped manifest's."""
    proc = subprocess.run([sys.executable, "-m", "lab.build", "--only", name, "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = _load(tmp_path / f"{name}.json")
    problems = _label_problems_of(tmp_path / f"{name}.json")
    assert not problems, "\n".join(problems)
    shipped = _load(CAPTURES / f"{name}.json")

    def labels(doc: dict) -> list[tuple]:
        return [(c["client_ip"], c["verdict"], c["auth"], c["cause"]) for c in doc["clients"]]

    assert labels(m) == labels(shipped)
    for c in m["clients"]:
        assert c["evidence"]
        for e in c["evidence"]:
            assert _tshark(tmp_path / f"{name}.pcapng", f"frame.number == {e['frame']} && "
                           f"({evidence_filter(e)})"), e
