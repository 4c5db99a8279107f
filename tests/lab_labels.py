"""Each lab client's label re-derived from tshark's reading of its capture alone.

The lab writes a manifest from what it configured (verdict, auth, cause per client). This module derives the
same labels a second time from the packets only -- KRB-ERROR codes and the exchange they answer, ticket
names, HTTP statuses and the KRB-ERROR inside the MP's SPNEGO answer, the registration reply's Status and
ApprovalStatus, the SMSIDs of the requests, NTLMSSP, DNS rcodes, ICMP errors and resets, TLS ClientHellos --
without importing kerbtrace or the lab's scenario code. A manifest whose label the capture does not support
fails, whatever the lab meant to build.

Inputs taken from the manifest are the question, never the answer: the client's address and the MPs' realm.
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REG_URI = "/ccm_system_windowsauth/request"
AS_REQ, AS_REP, TGS_REQ, TGS_REP, AP_REQ, KRB_ERROR = 10, 11, 12, 13, 14, 30
REVOKED = {1, 6, 12, 18, 23}  # NAME_EXP, C_PRINCIPAL_UNKNOWN, POLICY, CLIENT_REVOKED, KEY_EXPIRED on the AS exchange
TRUST_ERRORS = {12, 31, 41, 68}  # POLICY, BAD_INTEGRITY, MODIFIED, WRONG_REALM on a cross-realm TGS exchange
MAX_INFLATE = 1 << 20
FIELDS = ("frame.number", "ip.src", "ip.dst", "udp.stream", "tcp.stream", "udp.dstport", "tcp.srcport",
          "tcp.dstport", "kerberos.msg_type", "kerberos.error_code", "kerberos.SNameString", "kerberos.realm",
          "kerberos.CNameString", "http.request.method", "http.request.uri", "http.response.code",
          "http.response_for.uri", "http.host", "http.authorization", "ntlmssp.messagetype",
          "dns.flags.response", "dns.qry.name", "dns.qry.type", "dns.flags.rcode", "icmp.type",
          "tcp.flags.reset", "tls.handshake.type", "tls.handshake.extensions_server_name")
FILTER = ("dns || kerberos || http || ntlmssp || icmp.type == 3 || (tcp.flags.reset == 1 && tcp.srcport == 88) "
          "|| tls.handshake.type == 1")


@dataclass(frozen=True)
class Pkt:
    """The fields of one frame the labels depend on (first occurrence = outer header for ICMP errors)."""

    frame: int
    src: str
    dst: str
    stream: str          # "u<n>" / "t<n>": udp.stream or tcp.stream, to pair a KRB-ERROR with its request
    msg_types: tuple[int, ...]
    error: int | None
    sname: tuple[str, ...]  # every SNameString part, in order
    realm: str           # first kerberos.realm: the request's or error's realm
    cname: str
    method: str
    uri: str
    status: int | None
    response_for: str
    host: str
    authorization: str
    ntlm: tuple[int, ...]
    dns_response: bool
    dns_name: str
    dns_type: int | None
    rcode: int | None
    icmp: int | None
    reset: bool
    tls_sni: str | None
    dport: int | None
    sport: int | None

    @property
    def http(self) -> bool:
        return bool(self.method) or self.status is not None

    @property
    def krb(self) -> bool:  # Kerberos on port 88 (not inside HTTP, not quoted by an ICMP error)
        return bool(self.msg_types) and not self.http and self.icmp is None

    def has_sname(self, name: str) -> bool:
        return "/".join(self.sname) == name


def _int(text: str) -> int | None:
    text = text.strip()
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def _ints(cell: str) -> tuple[int, ...]:
    return tuple(v for v in (_int(x) for x in cell.split("|")) if v is not None)


def _one(cell: str) -> str:
    return cell.split("|")[0]


@cache
def read_packets(pcap: Path) -> tuple[Pkt, ...]:
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y", FILTER, "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=|", "-E", "separator=\t"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    pkts = []
    for line in out.splitlines():
        c = dict(zip(FIELDS, line.split("\t") + [""] * len(FIELDS), strict=False))
        uri_for = c["http.response_for.uri"].split("://", 1)[-1]
        stream = f"u{_one(c['udp.stream'])}" if c["udp.stream"] else f"t{_one(c['tcp.stream'])}"
        errors = _ints(c["kerberos.error_code"])
        tls = 1 in _ints(c["tls.handshake.type"])
        pkts.append(Pkt(
            frame=int(c["frame.number"]), src=_one(c["ip.src"]), dst=_one(c["ip.dst"]), stream=stream,
            msg_types=_ints(c["kerberos.msg_type"]), error=errors[0] if errors else None,
            sname=tuple(p for p in c["kerberos.SNameString"].split("|") if p),
            realm=_one(c["kerberos.realm"]), cname=_one(c["kerberos.CNameString"]),
            method=c["http.request.method"], uri=c["http.request.uri"],
            status=_int(_one(c["http.response.code"])) if c["http.response.code"] else None,
            response_for=uri_for[uri_for.find("/"):] if "/" in uri_for else uri_for,
            host=_one(c["http.host"]).lower(), authorization=c["http.authorization"],
            ntlm=_ints(c["ntlmssp.messagetype"]), dns_response=_one(c["dns.flags.response"]) in ("1", "True"),
            dns_name=_one(c["dns.qry.name"]).lower(), dns_type=_int(_one(c["dns.qry.type"])),
            rcode=_int(_one(c["dns.flags.rcode"])), icmp=_int(_one(c["icmp.type"])),
            reset=_one(c["tcp.flags.reset"]) in ("1", "True"),
            tls_sni=_one(c["tls.handshake.extensions_server_name"]).lower() if tls else None,
            dport=_int(_one(c["udp.dstport"]) or _one(c["tcp.dstport"])), sport=_int(_one(c["tcp.srcport"]))))
    return tuple(pkts)


@dataclass(frozen=True)
class Body:
    """What a registration request or reply body says (read from the multipart parts tshark exposes)."""

    frame: int
    src: str
    dst: str
    smsid: str | None
    status: int | None
    approval: int | None


def _part_texts(raw: bytes) -> list[str]:
    """The text of one multipart part: UTF-16 header part, or zlib-compressed UTF-16LE body (bounded)."""
    payload = raw.split(b"\r\n\r\n", 1)[-1]
    texts = []
    try:
        payload = zlib.decompressobj().decompress(payload, MAX_INFLATE)
    except zlib.error:
        pass
    for enc in ("utf-16", "utf-16-le"):
        try:
            texts.append(payload.decode(enc))
            break
        except UnicodeDecodeError:
            continue
    return texts


def _attr(text: str, element: str, name: str) -> str | None:
    m = re.search(rf"<{element}\b[^>]*\s{name}=\"([^\"]*)\"", text)
    return m.group(1) if m else None


@cache
def read_bodies(pcap: Path) -> tuple[Body, ...]:
    """Registration requests (SMSID of <Data>) and replies (Status, ApprovalStatus) from tshark's PDML."""
    proc = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "mime_multipart", "-T", "pdml"],
                          capture_output=True, check=True)
    bodies = []
    for packet in ET.fromstring(proc.stdout).iter("packet"):
        fields = {f.get("name"): f for f in packet.iter("field")}
        frame = int(fields["frame.number"].get("show", "0"))
        texts = [t for f in packet.iter("field") if f.get("name") == "mime_multipart.part"
                 for t in _part_texts(bytes.fromhex(f.get("value") or ""))]
        text = "\n".join(texts)
        status, approval = (_attr(text, "ClientRegistrationResponse", a) for a in ("Status", "ApprovalStatus"))
        bodies.append(Body(frame, fields["ip.src"].get("show", ""), fields["ip.dst"].get("show", ""),
                           _attr(text, "Data", "SMSID"), _int(status) if status else None,
                           _int(approval) if approval else None))
    return tuple(bodies)


@dataclass
class Label:
    verdict: str
    auth: str | None
    cause: str | None
    secondary: set[str] = field(default_factory=set)
    mp_name: str | None = None
    why: list[str] = field(default_factory=list)


@dataclass
class View:
    """One client's packets, grouped the way the rules read them."""

    ip: str
    pkts: list[Pkt]
    bodies: list[Body]
    all_bodies: tuple[Body, ...]
    mp_realms: set[str]

    def krb_to_client(self) -> list[Pkt]:
        return [p for p in self.pkts if p.krb and p.dst == self.ip]

    def request_of(self, reply: Pkt) -> Pkt | None:
        """The client's last Kerberos request in the same UDP/TCP stream before ``reply``."""
        reqs = [p for p in self.pkts if p.krb and p.src == self.ip and p.stream == reply.stream
                and p.frame < reply.frame and {AS_REQ, TGS_REQ} & set(p.msg_types)]
        return reqs[-1] if reqs else None

    def errors(self, exchange: int) -> list[Pkt]:
        """KRB-ERRORs answering the client's AS-REQs (10) or TGS-REQs (12)."""
        out = []
        for p in self.krb_to_client():
            req = self.request_of(p) if KRB_ERROR in p.msg_types else None
            if req is not None and exchange in req.msg_types:
                out.append(p)
        return out

    def error_codes(self, exchange: int) -> set[int]:
        return {p.error for p in self.errors(exchange) if p.error is not None}

    def tgs_reps(self) -> list[Pkt]:
        return [p for p in self.krb_to_client() if TGS_REP in p.msg_types]

    def as_rep_kdcs(self) -> set[str]:
        return {p.src for p in self.krb_to_client() if AS_REP in p.msg_types}

    def registration_requests(self) -> list[Pkt]:
        return [p for p in self.pkts if p.src == self.ip and p.method and p.uri.lower().startswith(REG_URI)]

    def registration_responses(self) -> list[Pkt]:
        return [p for p in self.pkts if p.dst == self.ip and p.status is not None
                and p.response_for.lower().startswith(REG_URI)]

    def ap_req_sent(self) -> bool:
        return any(AP_REQ in p.msg_types for p in self.registration_requests())

    def ntlm_auth_sent(self) -> bool:
        return any(3 in p.ntlm for p in self.registration_requests())

    def mp_krb_error_after_ap_req(self) -> set[int]:
        """Error codes of KRB-ERRORs the MP put in a 401 answering a request that carried an AP-REQ."""
        codes = set()
        reqs = self.registration_requests()
        for resp in self.registration_responses():
            before = [r for r in reqs if r.frame < resp.frame and r.stream == resp.stream]
            if (resp.status == 401 and KRB_ERROR in resp.msg_types and resp.error is not None and before
                    and AP_REQ in before[-1].msg_types):
                codes.add(resp.error)
        return codes

    def final_reply(self) -> Body | None:
        mine = [b for b in self.bodies if b.dst == self.ip and b.status is not None]
        return mine[-1] if mine else None

    def smsid_sent(self) -> str | None:
        mine = [b.smsid for b in self.bodies if b.src == self.ip and b.smsid]
        return mine[0] if mine else None

    def smsid_shared(self) -> bool:
        """Another address sent a registration request with the same SMSID."""
        mine = self.smsid_sent()
        return bool(mine) and any(b.smsid and b.smsid.upper() == mine.upper() and b.src != self.ip
                                  for b in self.all_bodies)

    def tls_hellos(self) -> list[Pkt]:
        return [p for p in self.pkts if p.tls_sni is not None and p.src == self.ip and p.dport == 443]

    def nxdomain(self) -> list[Pkt]:
        return [p for p in self.pkts if p.dns_response and p.dst == self.ip and p.dns_type == 1 and p.rcode == 3]

    def unanswered_kdcs(self) -> set[str]:
        """KDC addresses the client sent AS-REQs to that never answered, but sent ICMP errors or resets."""
        asked = {p.dst for p in self.pkts if p.krb and p.src == self.ip and AS_REQ in p.msg_types}
        answered = {p.src for p in self.krb_to_client()}
        refused = {p.src for p in self.pkts if p.dst == self.ip and ((p.icmp == 3 and p.dport == 88)
                                                                       or (p.reset and p.sport == 88))}
        return (asked - answered) & refused

    def mp_name(self) -> str | None:
        """The MP the client went to: Host header, else TLS server name, else the name that got NXDOMAIN."""
        hosts = [p.host for p in self.registration_requests() if p.host]
        if hosts:
            return hosts[0]
        if self.tls_hellos():
            return self.tls_hellos()[0].tls_sni
        if self.nxdomain():
            return self.nxdomain()[-1].dns_name
        return None


def _cause(v: View, mp: str | None, why: list[str]) -> str | None:
    """The first rule the client's packets satisfy, in order of precedence; ``why`` gets the reason."""
    spn = f"HTTP/{mp}"
    tgs_errors = v.errors(TGS_REQ)
    as_codes = v.error_codes(AS_REQ)
    reply = v.final_reply()
    if not v.registration_requests() and v.tls_hellos():
        if any(p.has_sname(spn) for p in v.tgs_reps()):
            why.append(f"TLS to {mp}:443 and a TGS-REP for {spn}: the registration's outcome is inside TLS")
            return "registration_encrypted"
        if any(p.error == 7 and p.has_sname(spn) for p in tgs_errors):
            why.append(f"TLS to {mp}:443 and KDC_ERR_S_PRINCIPAL_UNKNOWN for {spn}")
            return "spn_missing"
    if v.nxdomain() and not v.registration_requests() and not v.tls_hellos():
        why.append(f"NXDOMAIN for {v.nxdomain()[-1].dns_name} and no HTTP")
        return "dns_failure"
    if reply and reply.status not in (None, 0) and reply.approval == 0 and v.smsid_shared():
        why.append(f"reply Status={reply.status} ApprovalStatus=0 to an SMSID another host also sent")
        return "duplicate_guid"
    if reply and reply.status == 0 and reply.approval == 1 and v.ap_req_sent():
        why.append("AP-REQ sent, reply ApprovalStatus=1")
        return "ok"
    mp_errors = v.mp_krb_error_after_ap_req()
    if 37 in mp_errors or 37 in v.error_codes(TGS_REQ) | as_codes:
        why.append("KRB_AP_ERR_SKEW (37) from the MP after an AP-REQ, or from a KDC")
        return "clock_skew"
    if mp_errors & {31, 41}:
        why.append(f"MP answered the AP-REQ with {sorted(mp_errors & {31, 41})}")
        return "spn_wrong_account"
    referrals = [p for p in v.tgs_reps() if p.sname and p.sname[0] == "krbtgt"]
    if referrals and any(p.error in TRUST_ERRORS and p.src not in v.as_rep_kdcs() and p.frame > referrals[0].frame
                         for p in tgs_errors):
        why.append("referral TGT issued, then a cross-realm TGS-REQ refused with 12/31/41/68")
        return "trust_broken"
    unknown = [p for p in tgs_errors if p.error == 7 and p.has_sname(spn)]
    if unknown:
        if any(p.realm in v.mp_realms for p in unknown) or referrals:
            why.append(f"KDC_ERR_S_PRINCIPAL_UNKNOWN for {spn} from the MP's realm")
            return "spn_missing"
        why.append(f"KDC_ERR_S_PRINCIPAL_UNKNOWN for {spn} from realm {unknown[0].realm}, no referral")
        return "no_trust_path"
    if as_codes & REVOKED:
        why.append(f"AS exchange refused with {sorted(as_codes & REVOKED)}")
        return "account_revoked"
    if 14 in as_codes:
        why.append("AS exchange refused with KDC_ERR_ETYPE_NOSUPP (14)")
        return "etype_unsupported"
    if v.unanswered_kdcs():
        why.append(f"AS-REQs to {sorted(v.unanswered_kdcs())} answered only by ICMP errors or resets")
        return "kdc_unreachable"
    tgs_sent = any(p.krb and p.src == v.ip and TGS_REQ in p.msg_types for p in v.pkts)
    if v.ntlm_auth_sent() and not v.ap_req_sent() and not tgs_sent and reply and reply.approval == 0:
        why.append("NTLM AUTHENTICATE, no TGS-REQ, reply ApprovalStatus=0")
        return "ntlm_fallback"
    krb_sent = any(p.krb and p.src == v.ip for p in v.pkts)
    if v.registration_requests() and not krb_sent and not any(p.authorization for p in v.registration_requests()):
        why.append("anonymous requests only, no Kerberos and no NTLM")
        return "no_kerberos_attempt"
    return None


def derive(pcap: Path, client_ip: str, mp_realms: set[str]) -> Label:
    pkts = [p for p in read_packets(pcap) if client_ip in (p.src, p.dst)]
    bodies = read_bodies(pcap)
    v = View(client_ip, pkts, [b for b in bodies if client_ip in (b.src, b.dst)], bodies, mp_realms)
    mp = v.mp_name()
    why: list[str] = []
    cause = _cause(v, mp, why)
    verdict = {"ok": "approved", "registration_encrypted": "inconclusive"}.get(cause or "", "not_approved")
    if v.registration_requests():
        auth: str | None = "kerberos" if v.ap_req_sent() else "ntlm" if v.ntlm_auth_sent() else "none"
    else:
        auth = None if v.tls_hellos() else "none"
    secondary = set()
    if 24 in v.error_codes(AS_REQ):
        secondary.add("preauth_failed")
    if v.ntlm_auth_sent() and cause != "ntlm_fallback":
        secondary.add("ntlm_fallback")
    if cause == "ok" and v.smsid_shared():
        secondary.add("duplicate_guid")
    return Label(verdict, auth, cause, secondary, mp, why)


def lockout_sources(pcap: Path) -> list[dict[str, object]]:
    """Shared principals (AS-REQs from two or more addresses) locked after failed pre-authentication.

    Sources are the addresses whose AS-REQs for the principal got KDC_ERR_PREAUTH_FAILED (24).
    """
    pkts = read_packets(pcap)
    requests = {(p.src, p.stream): p for p in pkts if p.krb and AS_REQ in p.msg_types}
    by_principal: dict[str, dict[str, list[int]]] = {}
    for p in pkts:
        req = requests.get((p.dst, p.stream))
        if not p.krb or KRB_ERROR not in p.msg_types or req is None or p.error is None:
            continue
        principal = f"{req.cname}@{req.realm}"
        by_principal.setdefault(principal, {}).setdefault(p.dst, []).append(p.error)
    for p in pkts:  # every address that asked for the principal, answered or not
        if p.krb and AS_REQ in p.msg_types:
            by_principal.setdefault(f"{p.cname}@{p.realm}", {}).setdefault(p.src, [])
    out = []
    for principal, per_ip in sorted(by_principal.items()):
        codes = [c for cs in per_ip.values() for c in cs]
        if len(per_ip) >= 2 and 24 in codes and 18 in codes:
            out.append({"code": "lockout_sources", "principal": principal,
                        "sources": sorted(ip for ip, cs in per_ip.items() if 24 in cs)})
    return out


def label_problems(manifest: dict, pcap: Path) -> list[str]:
    """Every client whose manifest label the capture does not support, and fleet findings that differ."""
    realms = {m["realm"] for m in manifest["mps"]}
    out = []
    for c in manifest["clients"]:
        got = derive(pcap, c["client_ip"], realms)
        want = (c["verdict"], c["auth"], c["cause"], set(c["secondary_causes"]), c["mp"]["name"])
        have = (got.verdict, got.auth, got.cause, got.secondary, got.mp_name)
        if want != have:
            out.append(f"{c['hostname']} {c['client_ip']}: manifest {want}, capture shows {have} "
                       f"({'; '.join(got.why)})")
    fleet = lockout_sources(pcap)
    claimed = [dict(f, sources=sorted(f.get("sources", []))) for f in manifest.get("fleet", [])]
    if claimed != fleet:
        out.append(f"fleet: manifest {manifest.get('fleet', [])}, capture shows {fleet}")
    return out
