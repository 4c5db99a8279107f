"""CCM message building/parsing, and the MP simulator + client against a throw-away MIT KDC.

The integration tests need root (ports 80/88 on 127.x) and krb5-kdc; they run only with KERBTRACE_LAB=1.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

from lab import ccm_message as ccm  # noqa: E402

BOUNDARY = b"--aAbBcCdDv1234567890VxXyYzZ"
SMSID = "GUID:0B1F5036-1111-4A2B-9C3D-4E5F60718293"


def _request(**kw: object) -> tuple[bytes, ccm.ClientIdentity]:
    ident = ccm.make_identity("wk01", key_bits=1024)
    args = dict(netbios="wk01", fqdn="wk01.corp.lab", smsid=SMSID, mp_fqdn="mp.corp.lab", identity=ident)
    args.update(kw)
    return ccm.build_registration_request(**args), ident  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ message tests


def test_request_round_trip_values() -> None:
    body, ident = _request()
    req = ccm.parse_registration_request(body)
    assert req.netbios == "WK01" and req.fqdn == "wk01.corp.lab"
    assert req.smsid == SMSID and req.request_type == "Registration"
    assert req.agent_identity == "CcmExec.exe" and req.agent_version == "5.00.9128.1000"
    assert req.properties["Locale ID"] == "1033" and req.properties["InternetFlag"] == "0"
    assert req.properties["HardwareID1"].startswith("2:") and len(req.properties["HardwareID1"]) == 42
    assert req.signing_cert == ident.cert_der == req.encryption_cert
    h = req.header
    assert h.source_host == "WK01" and h.target_host == "mp.corp.lab"
    assert h.target_address == "mp:[http]MP_ClientRegistration" and h.target_endpoint == "MP_ClientRegistration"
    assert h.reply_to == "direct:WK01:SccmMessaging" and h.compressed and h.reply_compression == "zlib"
    assert re.fullmatch(r"\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}", h.msg_id or "")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", h.sent_time or "")


def test_fresh_message_id_per_message() -> None:
    a = ccm.parse_registration_request(_request()[0]).header.msg_id
    b = ccm.parse_registration_request(_request()[0]).header.msg_id
    assert a != b


def test_wire_layout_bom_length_zlib() -> None:
    body, _ = _request()
    parts = body.split(b"\r\n" + BOUNDARY)
    first = parts[0]
    assert first.startswith(BOUNDARY + b"\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n")
    header = first.split(b"\r\n\r\n", 1)[1]
    assert header.startswith(b"\xff\xfe<\x00M\x00s\x00g\x00")       # UTF-16LE with BOM
    assert parts[1].startswith(b"\r\ncontent-type: application/octet-stream\r\n\r\n")
    compressed = parts[1].split(b"\r\n\r\n", 1)[1]
    assert compressed[0] == 0x78                                       # zlib header 78 xx
    assert (compressed[0] * 256 + compressed[1]) % 31 == 0
    plain = zlib.decompress(compressed)
    assert plain.endswith(b">\x00\x00\x00\r\n")                         # '>' NUL CRLF
    assert not plain.startswith(b"\xff\xfe")                            # body has no BOM
    length = int(re.search(rb'L\x00e\x00n\x00g\x00t\x00h\x00=\x00"\x00([0-9\x00]+)"', header)
                 .group(1).replace(b"\x00", b""))
    assert length == len(plain) - 2                                     # incl. NUL, excl. CRLF
    assert parts[2] == b"--"


def test_signature_verifies_with_certificate() -> None:
    body, _ = _request()
    req = ccm.parse_registration_request(body)
    cert = x509.load_der_x509_certificate(req.signing_cert or b"")
    sig = bytes.fromhex(req.signature_hex)[::-1]                         # stored reversed
    assert req.signature_hex == req.signature_hex.upper()
    cert.public_key().verify(sig, req.data_xml.encode("utf-16-le"), padding.PKCS1v15(), hashes.SHA256())
    assert req.data_xml.startswith("<Data ") and req.data_xml.endswith("</Data>")
    ekus = {o.dotted_string for o in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value}
    assert ekus == {"1.3.6.1.4.1.311.101", "1.3.6.1.4.1.311.101.2"}
    assert req.signature_ok()
    tampered = ccm.parse_registration_request(body)
    tampered.data_xml = tampered.data_xml.replace("wk01.corp.lab", "wk02.corp.lab")
    assert not tampered.signature_ok()


def test_reply_round_trip() -> None:
    raw = ccm.build_registration_reply(status=1, approval_status=0, smsid=SMSID, mp_netbios="MP",
                                       client_netbios="wk01", request_id="{AB}")
    rep = ccm.parse_registration_reply(raw)
    assert (rep.status, rep.approval_status, rep.smsid, rep.response_type) == (1, 0, SMSID, "Registration")
    assert rep.header.correlation_id == "{AB}"
    parts = raw.split(b"\r\n" + BOUNDARY)
    plain = zlib.decompress(parts[1].split(b"\r\n\r\n", 1)[1])
    assert plain.endswith(b"/\x00>\x00\x00\x00")                         # NUL-terminated, no CRLF
    assert plain.decode("utf-16-le").startswith('<ClientRegistrationResponse ResponseType="Registration"')


def _corrupt_zlib(body: bytes) -> bytes:
    head, sep, rest = body.partition(b"application/octet-stream\r\n\r\n")
    return head + sep + b"\x78\x9c\xff\xff" + rest[4:]


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b.replace(BOUNDARY, b"--other", 1), "boundary"),
    (lambda b: b[: b.rfind(BOUNDARY) - 2], "not closed"),
    (_corrupt_zlib, "zlib"),
    (lambda b: b.replace(b"<\x00M\x00s\x00g\x00", b"<\x00X\x00s\x00g\x00", 1), "Msg|XML"),
    (lambda b: b + b"\x00" * (2 << 20), "exceeds"),
])
def test_parser_rejects_bad_input(mutate, message) -> None:  # type: ignore[no-untyped-def]
    bad = mutate(_request()[0])
    with pytest.raises(ccm.CcmMessageError, match=message):
        ccm.parse_registration_request(bad)


def test_inflate_is_bounded() -> None:
    bomb = zlib.compress(b"\x00" * (4 << 20))
    with pytest.raises(ccm.CcmMessageError, match="exceeds"):
        ccm.inflate(bomb)
    assert ccm.inflate(zlib.compress(b"abc", 1)) == b"abc"             # 78 01 accepted too


# ------------------------------------------------------------------------------------ MP location (DNS)

SRV_NAME = "_mssms_mp_lab._tcp.corp.lab"


def _zone():  # type: ignore[no-untyped-def]
    from lab.dns_server import ZoneResolver

    return ZoneResolver({"mp01.corp.lab": "127.0.0.10", "MP02.corp.lab.": "127.0.0.11"},
                        {SRV_NAME: [(0, 0, 80, "mp01.corp.lab"), (0, 0, 80, "mp02.corp.lab")],
                         "_mssms_mp_lab._tcp.child.corp.lab": [(0, 0, 80, "mp-old.corp.lab")]})


def test_zone_srv_answer_read_by_scapy() -> None:
    """The SRV reply, packed by dnslib, as scapy (an independent DNS implementation) reads it."""
    from dnslib import DNSRecord
    from scapy.layers.dns import DNS

    wire = _zone().resolve(DNSRecord.question(SRV_NAME.upper(), "SRV"), None).pack()
    msg = DNS(wire)
    assert msg.qr == 1 and msg.aa == 1 and msg.rcode == 0 and msg.ancount == 2 and msg.arcount == 0
    answers = [msg.an[i] for i in range(msg.ancount)]
    assert [a.type for a in answers] == [33, 33]
    assert [(a.priority, a.weight, a.port) for a in answers] == [(0, 0, 80), (0, 0, 80)]
    assert [a.target.decode().lower() for a in answers] == ["mp01.corp.lab.", "mp02.corp.lab."]


@pytest.mark.parametrize("name, qtype, rcode, count", [
    ("mp-old.corp.lab", "A", 3, 0),         # stale SRV target: NXDOMAIN
    (SRV_NAME, "A", 0, 0),                  # known name, other type: NODATA
    ("mp02.corp.lab", "A", 0, 1),           # names are case- and trailing-dot-insensitive
    ("mp01.corp.lab", "SRV", 0, 0),
    ("_mssms_mp_xyz._tcp.corp.lab", "SRV", 3, 0),
])
def test_zone_rcodes(name: str, qtype: str, rcode: int, count: int) -> None:
    from dnslib import DNSRecord
    from scapy.layers.dns import DNS

    msg = DNS(_zone().resolve(DNSRecord.question(name, qtype), None).pack())
    assert (msg.rcode, msg.ancount) == (rcode, count)


def test_pick_target() -> None:
    from lab.ccm_client import pick_target

    recs = [(10, 0, 80, "b.corp.lab"), (0, 5, 8080, "c.corp.lab"), (0, 50, 80, "d.corp.lab")]
    assert pick_target(recs, "B.corp.lab") == recs[0]       # the scenario's MP, wherever it is listed
    assert pick_target(recs, "x.corp.lab") == recs[2]       # else best priority, then highest weight
    assert pick_target(recs, None) == recs[2]
    assert pick_target([(0, 0, 80, "mp-old.corp.lab")], "mp01.corp.lab")[3] == "mp-old.corp.lab"


# --------------------------------------------------------------------------------------- lab integration

LAB = os.environ.get("KERBTRACE_LAB") == "1"
lab = pytest.mark.lab
needs_lab = pytest.mark.skipif(not LAB, reason="set KERBTRACE_LAB=1 (root, krb5-kdc) to run the lab tests")
NTLM_PASSWORD = "Lab-only-wk01-secret"  # test-only machine password for the NTLM user file
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@dataclass
class Realm:
    dir: Path
    ip: str
    mp_ip: str
    client_ip: str
    krb5_conf: Path
    mp_keytab: Path
    client_keytab: Path
    ntlm_file: Path

    def client_env(self, name: str) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5CCNAME": f"FILE:{self.dir / (name + '.ccache')}",
                "KRB5_CLIENT_KTNAME": str(self.client_keytab), "NTLM_USER_FILE": str(self.ntlm_file)}

    def mp_env(self) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.krb5_conf), "NTLM_USER_FILE": str(self.ntlm_file),
                "KRB5RCACHEDIR": str(self.dir)}


def _wrong_keytab(path: Path, principal: str, realm: str, kvno: int) -> None:
    """A keytab (format 0x0502) holding a random aes256 key under the right name and kvno."""
    def counted(s: str) -> bytes:
        return struct.pack(">H", len(s)) + s.encode()

    comps = principal.split("/")
    entry = (struct.pack(">H", len(comps)) + counted(realm) + b"".join(counted(c) for c in comps)
             + struct.pack(">IIB", 1, int(time.time()), kvno & 0xFF) + struct.pack(">HH", 18, 32)
             + os.urandom(32) + struct.pack(">I", kvno))
    path.write_bytes(b"\x05\x02" + struct.pack(">i", len(entry)) + entry)


def _run(cmd: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{cmd}: {out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    if not shutil.which("krb5kdc") or os.geteuid() != 0:
        pytest.fail("KERBTRACE_LAB=1 needs root and krb5-kdc")
    pytest.importorskip("gssapi", reason="the lab extra is not installed: pip install -e '.[lab]' (needs libkrb5-dev)")
    d = tmp_path_factory.mktemp("kdc")
    net = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
    ip, mp_ip, client_ip = f"{net}.1", f"{net}.2", f"{net}.3"
    (d / "kdc.conf").write_text(
        f"[kdcdefaults]\n kdc_listen = {ip}:88\n kdc_tcp_listen = {ip}:88\n"
        f"[realms]\n TEST.LAB = {{\n  database_name = {d / 'principal'}\n  key_stash_file = {d / 'stash'}\n"
        f"  acl_file = {d / 'kadm5.acl'}\n  supported_enctypes = aes256-cts-hmac-sha1-96:normal\n"
        "  default_principal_flags = +preauth\n }\n"
        f"[logging]\n kdc = FILE:{d / 'kdc.log'}\n")
    krb5_conf = d / "krb5.conf"
    krb5_conf.write_text(
        "[libdefaults]\n default_realm = TEST.LAB\n dns_lookup_kdc = false\n dns_lookup_realm = false\n"
        " dns_canonicalize_hostname = false\n rdns = false\n"
        f"[realms]\n TEST.LAB = {{\n  kdc = {ip}\n }}\n[domain_realm]\n .test.lab = TEST.LAB\n")
    (d / "kadm5.acl").write_text("")
    env = {"KRB5_CONFIG": str(krb5_conf), "KRB5_KDC_PROFILE": str(d / "kdc.conf")}
    _run(["kdb5_util", "create", "-s", "-r", "TEST.LAB", "-P", "lab-test-master"], env)
    mp_kt, wk_kt = d / "mp.keytab", d / "wk01.keytab"
    for q in ("addprinc -randkey HTTP/mp.test.lab", "addprinc -randkey WK01$",
              f"ktadd -norandkey -k {mp_kt} HTTP/mp.test.lab", f"ktadd -norandkey -k {wk_kt} WK01$"):
        _run(["kadmin.local", "-r", "TEST.LAB", "-q", q], env)
    ntlm = d / "ntlm_users"
    ntlm.write_text(f"TEST:WK01$:{NTLM_PASSWORD}\n")
    proc = subprocess.Popen(["krb5kdc", "-n", "-r", "TEST.LAB"], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "commencing operation" not in ((d / "kdc.log").read_text() if (d / "kdc.log").exists() else ""):
            assert proc.poll() is None and time.monotonic() < deadline, "krb5kdc did not start"
            time.sleep(0.05)
        yield Realm(d, ip, mp_ip, client_ip, krb5_conf, mp_kt, wk_kt, ntlm)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def _iis_lines(log_dir: Path) -> list[str]:
    return [ln for ln in (log_dir / "iis.log").read_text().splitlines() if not ln.startswith("#")]


def _mp(realm: Realm, log_dir: Path, keytab: Path, fqdn: str = "mp.test.lab", **env: str):  # type: ignore[no-untyped-def]
    from lab.mp_server import MpServer

    return MpServer(realm.mp_ip, 80, fqdn, str(keytab), log_dir, env={**realm.mp_env(), **env})


@lab
@needs_lab
def test_kerberos_registration_is_approved(realm: Realm, tmp_path: Path) -> None:
    from lab.ccm_client import register

    with _mp(realm, tmp_path, realm.mp_keytab):
        t0 = time.monotonic()
        res = register("mp.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID, dns_server=None,
                       mp_ip=realm.mp_ip, env=realm.client_env("wk01-ok"))
        print(res, f"registration took {time.monotonic() - t0:.2f} s")
    assert res.error is None, res
    assert res.statuses == [401, 200] and res.auth == "kerberos" and res.mutual_ok is True
    assert (res.status, res.approval_status, res.smsid) == (0, 1, SMSID)
    lines = _iis_lines(tmp_path)
    print("\n".join(lines))
    assert re.search(rf" {realm.mp_ip} CCM_POST /ccm_system_windowsauth/request - 80 - {realm.client_ip} "
                     r"ccmhttp - 401 2 5 \d+$", lines[0])
    assert re.search(rf" {realm.mp_ip} CCM_POST /ccm_system_windowsauth/request - 80 TEST\\WK01\$ "
                     rf"{realm.client_ip} ccmhttp - 200 0 0 \d+$", lines[1])
    mplog = (tmp_path / "MP_RegistrationManager.log").read_text()
    print(mplog)
    assert "Processing Registration request from Client 'wk01.test.lab'" in mplog
    assert re.search(r"MP Reg: DDR file written to .*\\regreq\\[A-Z0-9]{8}\.RDR\]LOG\]!><time=\"\d\d:\d\d:\d\d\.\d{3}"
                     r"\+000\" date=\"\d\d-\d\d-\d{4}\" component=\"MP_RegistrationManager\"", mplog)


@lab
@needs_lab
def test_wrong_key_is_rejected(realm: Realm, tmp_path: Path) -> None:
    from lab.ccm_client import register

    bad = tmp_path / "wrong.keytab"
    kvno = int(re.search(r"^\s*(\d+)\s", _run(["klist", "-k", str(realm.mp_keytab)], {}), re.M).group(1))
    _wrong_keytab(bad, "HTTP/mp.test.lab", "TEST.LAB", kvno)
    with _mp(realm, tmp_path, bad):
        res = register("mp.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID, dns_server=None,
                       mp_ip=realm.mp_ip, env=realm.client_env("wk01-bad"))
    print(res)
    print((tmp_path / "mp_server.stderr").read_text())
    print("\n".join(_iis_lines(tmp_path)))
    assert res.statuses == [401, 401] and res.auth == "kerberos" and res.approval_status is None
    # the client decoded the MP's error token: a KRB-ERROR inside a SPNEGO reject
    assert res.error and res.error.startswith("auth: 401") and "integrity" in res.error.lower()
    token = re.search(r"error token ([0-9a-f]+)", (tmp_path / "mp_server.stderr").read_text()).group(1)
    assert token.startswith("a1") and "a0030a0102" in token                # NegTokenResp, negState reject
    assert "06092a864886f712010202" + "0300" + "7e" in token                # krb5 token, TOK_ID 03 00 KRB-ERROR
    assert "a60302011f" in token                                            # error-code 31 BAD_INTEGRITY
    assert _iis_lines(tmp_path)[1].split()[-4:-1] == ["401", "1", str(0x8009030C)]


@lab
@needs_lab
def test_unknown_spn_falls_back_to_ntlm(realm: Realm, tmp_path: Path) -> None:
    from lab.ccm_client import register

    with _mp(realm, tmp_path, realm.mp_keytab, fqdn="mp2.test.lab"):
        res = register("mp2.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID, dns_server=None,
                       mp_ip=realm.mp_ip, env=realm.client_env("wk01-ntlm"))
    print(res)
    print((tmp_path / "mp_server.stderr").read_text())
    print("\n".join(_iis_lines(tmp_path)))
    assert res.error is None
    assert res.statuses == [401, 401, 200] and res.auth == "ntlm"
    assert (res.status, res.approval_status) == (0, 0)
    codes = [ln.split()[-4:-1] for ln in _iis_lines(tmp_path)]
    assert codes == [["401", "2", "5"], ["401", "1", "2148074254"], ["200", "0", "0"]]
    assert " TEST\\WK01$ " in _iis_lines(tmp_path)[2]


@lab
@needs_lab
def test_clock_skew_at_mp(realm: Realm, tmp_path: Path) -> None:
    from lab.ccm_client import register

    if not Path(FAKETIME_LIB).exists():
        pytest.fail("libfaketime is needed for the skew test")
    with _mp(realm, tmp_path, realm.mp_keytab, LD_PRELOAD=FAKETIME_LIB, FAKETIME="+10m",
             FAKETIME_DONT_FAKE_MONOTONIC="1"):
        res = register("mp.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID, dns_server=None,
                       mp_ip=realm.mp_ip, env=realm.client_env("wk01-skew"))
    note = (tmp_path / "mp_server.stderr").read_text()
    print(res, note, sep="\n")
    assert res.statuses == [401, 401] and res.auth == "kerberos"
    assert "skew" in (res.error or "").lower()
    token = re.search(r"error token ([0-9a-f]+)", note).group(1)
    assert "a0030a0102" in token and "a603020125" in token                 # reject + error-code 37 SKEW
    assert _iis_lines(tmp_path)[1].split()[-4:-1] == ["401", "1", str(0x80090324)]


@pytest.fixture()
def dns_stub(realm: Realm) -> Iterator[tuple[str, int]]:
    """A tiny authoritative DNS answering mp.test.lab only; everything else is NXDOMAIN."""
    import socket
    import threading

    from dnslib import QTYPE, RCODE, RR, A, DNSRecord

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((realm.ip.rsplit(".", 1)[0] + ".53", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            q = DNSRecord.parse(data)
            reply = q.reply()
            if str(q.q.qname).rstrip(".") == "mp.test.lab" and q.q.qtype == QTYPE.A:
                reply.add_answer(RR("mp.test.lab", QTYPE.A, rdata=A(realm.mp_ip), ttl=60))
            else:
                reply.header.rcode = RCODE.NXDOMAIN
            sock.sendto(reply.pack(), peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        t.join(2)
        sock.close()


@lab
@needs_lab
def test_dns_resolution_and_duplicate_smsid(realm: Realm, tmp_path: Path, dns_stub: tuple[str, int]) -> None:
    from lab.ccm_client import register

    with _mp(realm, tmp_path, realm.mp_keytab):
        missing = register("nomp.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID,
                           dns_server=dns_stub, env=realm.client_env("wk01-dns"))
        first = register("mp.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID, dns_server=dns_stub,
                         env=realm.client_env("wk01-dns"))
        # another machine presenting the same SMSID: conflicting record, pending
        clash = register("mp.test.lab", realm.client_ip, "WK02", "wk02.test.lab", SMSID, dns_server=dns_stub,
                         env=realm.client_env("wk01-dns"))
    print(missing, first, clash, sep="\n")
    assert missing.error == "dns" and missing.statuses == []
    assert first.error is None and (first.status, first.approval_status) == (0, 1)
    assert clash.statuses == [401, 200] and (clash.status, clash.approval_status) == (1, 0)
    lines = _iis_lines(tmp_path)
    assert len(lines) == 4                                                  # no HTTP for the NXDOMAIN client
    assert "conflicting record" in (tmp_path / "MP_RegistrationManager.log").read_text()


@lab
@needs_lab
def test_no_fallback_when_ntlm_disabled_and_bad_ntlm_password(realm: Realm, tmp_path: Path) -> None:
    from lab.ccm_client import register

    wrong = tmp_path / "wrong_ntlm"
    wrong.write_text("TEST:WK01$:not-the-password\n")
    with _mp(realm, tmp_path, realm.mp_keytab, fqdn="mp2.test.lab"):
        krb_only = register("mp2.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID, dns_server=None,
                            mp_ip=realm.mp_ip, env=realm.client_env("wk01-k"), use_ntlm=False)
        bad_pw = register("mp2.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID, dns_server=None,
                          mp_ip=realm.mp_ip, env={**realm.client_env("wk01-n"), "NTLM_USER_FILE": str(wrong)})
    print(krb_only, bad_pw, (tmp_path / "mp_server.stderr").read_text(), sep="\n")
    assert krb_only.statuses == [401] and krb_only.auth == "none"
    assert krb_only.error and krb_only.error.startswith("gss:") and "not found" in krb_only.error
    assert bad_pw.statuses == [401, 401, 401] and bad_pw.auth == "ntlm"
    assert _iis_lines(tmp_path)[-1].split()[-4:-1] == ["401", "1", str(0x8009030C)]


@lab
@needs_lab
def test_other_paths_get_404(realm: Realm, tmp_path: Path) -> None:
    import http.client

    with _mp(realm, tmp_path, realm.mp_keytab):
        conn = http.client.HTTPConnection(realm.mp_ip, 80, timeout=5)
        conn.request("CCM_POST", "/ccm_system/request", body=b"x")
        resp = conn.getresponse()
        status_other, _ = resp.status, resp.read()
        conn.request("GET", "/SMS_MP/.sms_aut?MPLIST")              # same keep-alive connection
        resp = conn.getresponse()
        status_get, _ = resp.status, resp.read()
        conn.close()
    assert (status_other, status_get) == (404, 404)
    assert [ln.split()[-4] for ln in _iis_lines(tmp_path)] == ["404", "404"]


@lab
@needs_lab
def test_registration_locates_mp_through_srv(realm: Realm, tmp_path: Path) -> None:
    """SRV first, then the A record of the target, all from the client's address; a stale target stops there."""
    from lab.ccm_client import register
    from lab.dns_server import DnsServer

    dns_ip = realm.ip.rsplit(".", 1)[0] + ".53"
    dns = DnsServer(dns_ip, {"mp.test.lab": realm.mp_ip}, tmp_path / "dns",
                    srv={"_mssms_mp_lab._tcp.test.lab": [(0, 0, 80, "mp.test.lab")],
                         "_mssms_mp_old._tcp.test.lab": [(0, 0, 80, "mp-old.test.lab")]})
    dns.start()
    try:
        with _mp(realm, tmp_path, realm.mp_keytab):
            found = register("ignored.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID,
                             dns_server=(dns_ip, 53), env=realm.client_env("wk01-srv"),
                             locate_srv="_mssms_mp_lab._tcp.test.lab")
            stale = register("ignored.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID,
                             dns_server=(dns_ip, 53), env=realm.client_env("wk01-srv"),
                             locate_srv="_mssms_mp_old._tcp.test.lab")
            missing = register("ignored.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID,
                               dns_server=(dns_ip, 53), env=realm.client_env("wk01-srv"),
                               locate_srv="_mssms_mp_zzz._tcp.test.lab")
    finally:
        dns.stop()
    print(found, stale, missing, sep="\n")
    assert found.srv_targets == ["mp.test.lab"] and found.mp_fqdn == "mp.test.lab"
    assert found.statuses == [401, 200] and found.approval_status == 1 and found.auth == "kerberos"
    assert stale.srv_targets == ["mp-old.test.lab"] and stale.mp_fqdn == "mp-old.test.lab"
    assert stale.error == "dns" and stale.statuses == []
    assert missing.srv_targets == [] and missing.error == "dns" and missing.mp_fqdn is None
    assert len(_iis_lines(tmp_path)) == 2                                  # only the located client posted


@lab
@needs_lab
def test_https_mp_requires_a_client_certificate(realm: Realm, tmp_path: Path) -> None:
    """HTTPS MP asking for a PKI certificate: refused in the handshake without one, Kerberos inside TLS with one."""
    from lab.ccm_client import register
    from lab.mp_server import MpServer
    from lab.tls import Pki, make_server_certificate

    crt, key = make_server_certificate("mp.test.lab", realm.mp_ip, tmp_path / "tls")
    pki = Pki(tmp_path / "pki")
    client = pki.client_certificate("wk01.test.lab")
    stranger = make_server_certificate("wk01.test.lab", realm.client_ip, tmp_path / "self-signed")
    with MpServer(realm.mp_ip, 443, "mp.test.lab", str(realm.mp_keytab), tmp_path, env=realm.mp_env(),
                  tls=(crt, key), client_ca=pki.ca_cert):
        args = ("mp.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID)
        kw = {"dns_server": None, "mp_ip": realm.mp_ip, "env": realm.client_env("wk01-tls"), "port": 443,
              "tls_trust": str(crt)}
        ok = register(*args, **kw, tls_client=(str(client[0]), str(client[1])))  # type: ignore[arg-type]
        bare = register(*args, **kw)  # type: ignore[arg-type]
        wrong_ca = register(*args, **kw, tls_client=(str(stranger[0]), str(stranger[1])))  # type: ignore[arg-type]
        untrusted = register(*args, **{**kw, "tls_trust": str(pki.ca_cert)},  # type: ignore[arg-type]
                             tls_client=(str(client[0]), str(client[1])))
    print(ok, bare, wrong_ca, untrusted, sep="\n")
    assert ok.statuses == [401, 200] and ok.auth == "kerberos" and ok.approval_status == 1 and ok.mutual_ok
    for refused in (bare, wrong_ca, untrusted):
        assert refused.statuses == [] and refused.error and refused.error.startswith("http:"), refused
    assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.error or "")  # the client checks the MP's certificate
    lines = _iis_lines(tmp_path)
    assert len(lines) == 2 and all(ln.split()[6] == "443" for ln in lines)  # refused handshakes log nothing


@lab
@needs_lab
def test_duplicate_guid_reply_with_another_root_is_not_approved(realm: Realm, tmp_path: Path) -> None:
    """Real sockets, recorded: WK01 registers with Kerberos and is approved; WK02 presents the same SMSID and
    gets Status=1 ApprovalStatus=0 in a reply whose root element is not ClientRegistrationResponse. kerbtrace
    must still read that reply, and never report WK02 approved."""
    from kerbtrace.analysis import analyze
    from lab.ccm_client import register
    from lab.mp_server import MpServer
    from tests.loopback import recording

    pcap = tmp_path / "dup_other_root.pcapng"
    with recording(pcap, f"net {realm.ip.rsplit('.', 1)[0]}.0/24"):
        with MpServer(realm.mp_ip, 80, "mp.test.lab", str(realm.mp_keytab), tmp_path, env=realm.mp_env(),
                      reply_root="RegistrationReply"):
            first = register("mp.test.lab", realm.client_ip, "WK01", "wk01.test.lab", SMSID, dns_server=None,
                             mp_ip=realm.mp_ip, env=realm.client_env("wk01-dup"))
            clash = register("mp.test.lab", realm.client_ip, "WK02", "wk02.test.lab", SMSID, dns_server=None,
                             mp_ip=realm.mp_ip, env=realm.client_env("wk01-dup"))
    print(first, clash, sep="\n")
    assert first.statuses == [401, 200] and clash.statuses == [401, 200] and clash.auth == "kerberos"
    result = analyze([str(pcap)], progress=False)
    # Here the clients' Kerberos leaves from 127.0.0.1 (no per-client source route): that address is a
    # Kerberos-side row of its own; the registrations are the rows of the clients' HTTP address.
    verdicts = {r.client.hostname: r.verdict for r in result.clients if r.client.ip == realm.client_ip}
    print(verdicts, [w.message for w in result.diag.warnings])
    assert verdicts == {"WK01": "approved", "WK02": "not_approved"}
    assert any("RegistrationReply" in w.message for w in result.diag.warnings)
