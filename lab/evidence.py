"""Locate, in a finished capture, the packets that decide each client's outcome (read with tshark).

The lab knows what it configured; this module finds where that shows on the wire so manifests point at
real Wireshark frame numbers. Each evidence item carries a machine-checkable ``kind`` and its key values,
which tests/test_lab_manifests.py re-checks with Wireshark display filters.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

REGISTRATION_URI = "/ccm_system_windowsauth/request"
FIELDS = ("frame.number", "ip.src", "ip.dst", "ip.proto", "dns.flags.response", "dns.flags.rcode",
          "dns.qry.name", "kerberos.msg_type", "kerberos.error_code", "kerberos.SNameString",
          "kerberos.CNameString", "http.request.method", "http.request.uri", "http.response.code",
          "http.response_for.uri", "ntlmssp.messagetype", "dns.qry.type", "dns.srv.target", "icmp.type",
          "icmp.code", "udp.dstport", "tcp.flags.reset", "tcp.srcport", "tls.handshake.type",
          "tls.handshake.extensions_server_name", "tcp.dstport")
# frames worth a row: the protocols above, ICMP errors, and TCP resets from a Kerberos port
DISPLAY_FILTER = ("dns || kerberos || http || ntlmssp || icmp || (tcp.flags.reset == 1 && tcp.srcport == 88) "
                  "|| tls.handshake.type == 1")
KRB_ERRORS = {1: "KDC_ERR_NAME_EXP", 6: "KDC_ERR_C_PRINCIPAL_UNKNOWN", 7: "KDC_ERR_S_PRINCIPAL_UNKNOWN",
              12: "KDC_ERR_POLICY", 14: "KDC_ERR_ETYPE_NOSUPP", 18: "KDC_ERR_CLIENT_REVOKED",
              24: "KDC_ERR_PREAUTH_FAILED",
              25: "KDC_ERR_PREAUTH_REQUIRED", 31: "KRB_AP_ERR_BAD_INTEGRITY", 37: "KRB_AP_ERR_SKEW",
              41: "KRB_AP_ERR_MODIFIED", 52: "KRB_ERR_RESPONSE_TOO_BIG", 68: "KDC_ERR_WRONG_REALM"}


@dataclass(frozen=True)
class Row:
    """tshark's reading of one frame, reduced to the fields the outcome depends on."""

    frame: int
    src: str
    dst: str
    proto: int
    dns_response: bool
    dns_rcode: int | None
    dns_name: str
    krb_types: tuple[int, ...]
    krb_error: int | None
    sname_parts: tuple[str, ...]
    cname: str
    method: str
    uri: str
    status: int | None
    response_for: str
    ntlm_types: tuple[int, ...]
    dns_qtype: int | None = None
    srv_targets: tuple[str, ...] = ()
    icmp: tuple[int, int] | None = None  # (type, code) of an ICMP error
    udp_dport: int | None = None         # inside an ICMP error: the port of the datagram it refers to
    tcp_reset: bool = False
    tcp_sport: int | None = None
    tls_sni: str | None = None           # server name of a TLS ClientHello (None: not a ClientHello)
    tcp_dport: int | None = None

    @property
    def sname(self) -> str:
        return "/".join(self.sname_parts)

    @property
    def transport(self) -> str:
        return "tcp" if self.proto == 6 else "udp"


def _int(text: str) -> int | None:
    text = text.strip()
    if text.startswith("0x"):
        return int(text, 16) if len(text) > 2 and all(ch in "0123456789abcdefABCDEF" for ch in text[2:]) else None
    return int(text) if text.lstrip("-").isdigit() else None


def _ints(cell: str) -> tuple[int, ...]:
    """tshark prints some integer fields in hex (ntlmssp.messagetype); accept both forms."""
    return tuple(v for v in (_int(x) for x in cell.split(",")) if v is not None)


def _first(cell: str) -> int | None:
    return (_ints(cell) or (None,))[0]


def read_rows(pcap: Path) -> list[Row]:
    """One tshark pass over the capture: DNS, Kerberos (UDP, TCP and inside HTTP) and HTTP frames."""
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y", DISPLAY_FILTER, "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=\t"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        c = line.split("\t") + [""] * len(FIELDS)
        uri_for = c[14].split("://", 1)[-1]
        uri_for = uri_for[uri_for.find("/"):] if "/" in uri_for else uri_for
        err = _ints(c[8])
        # an ICMP error quotes the IP header it refers to: the first occurrence is the outer header
        icmp_type, icmp_code = _first(c[18]), _first(c[19])
        rows.append(Row(int(c[0]), c[1].split(",")[0], c[2].split(",")[0], _first(c[3]) or 0,
                        c[4] in ("1", "True"), _first(c[5]), c[6].split(",")[0].lower(), _ints(c[7]),
                        err[0] if err else None, tuple(p for p in c[9].split(",") if p),
                        c[10], c[11], c[12], _first(c[13]), uri_for, _ints(c[15]),
                        _first(c[16]), tuple(t.lower().rstrip(".") for t in c[17].split(",") if t),
                        (icmp_type, icmp_code or 0) if icmp_type is not None else None, _first(c[20]),
                        c[21].split(",")[0] in ("1", "True"), _first(c[22]),
                        c[24].lower() if 1 in _ints(c[23]) else None, _first(c[25])))
    return rows


def locate(rows: list[Row], client_ip: str, mp_name: str) -> list[dict[str, object]]:
    """Decisive frames of one client, in capture order.

    SRV answer of the MP location record and DNS answer for the MP name; Kerberos AS/TGS replies and
    errors (the routine PREAUTH_REQUIRED left out); referral and service TGS-REPs; Kerberos requests to an
    address that never answers this client, with the ICMP errors and TCP resets it got instead; AP-REQ /
    NTLM AUTHENTICATE carried in HTTP; the MP's 401/200 answers on the registration endpoint; the TLS
    ClientHello of a registration with an HTTPS MP (whose HTTP the capture cannot show).
    """
    ev: list[dict[str, object]] = []
    mp_name = mp_name.lower()
    # KDC addresses that sent this client any Kerberos message; requests to any other went unanswered
    answering = {r.src for r in rows if r.dst == client_ip and r.krb_types and r.icmp is None
                 and not (r.method or r.status is not None)}
    for r in rows:
        to_client, from_client = r.dst == client_ip, r.src == client_ip
        if not (to_client or from_client):
            continue
        is_http = bool(r.method or r.status is not None)
        if r.icmp is not None:
            if to_client and r.icmp[0] == 3 and r.src not in answering and r.udp_dport == 88:
                ev.append({"frame": r.frame, "what": f"ICMP destination unreachable (code {r.icmp[1]}) from "
                           f"{r.src} for the Kerberos datagram to port 88", "kind": "icmp_unreachable",
                           "client_ip": client_ip, "from_ip": r.src, "code": r.icmp[1], "port": 88})
            continue
        if r.tcp_reset:
            if to_client and r.tcp_sport == 88 and r.src not in answering:
                ev.append({"frame": r.frame, "what": f"TCP reset from {r.src}:88 (nothing listens)",
                           "kind": "tcp_reset", "client_ip": client_ip, "from_ip": r.src, "port": 88})
            continue
        if r.tls_sni is not None and from_client:
            ev.append({"frame": r.frame, "what": f"TLS ClientHello to {r.dst}:{r.tcp_dport}, server name "
                       f"{r.tls_sni or '(none)'}: the registration runs inside TLS", "kind": "tls_client_hello",
                       "client_ip": client_ip, "server_ip": r.dst, "port": r.tcp_dport, "sni": r.tls_sni})
            continue
        if r.dns_response and to_client and r.dns_qtype == 33:
            targets = list(r.srv_targets)
            what = f"DNS SRV answer for {r.dns_name}: {', '.join(targets) or 'no record'}"
            ev.append({"frame": r.frame, "what": what if r.dns_rcode == 0 else f"DNS rcode {r.dns_rcode} for "
                       f"{r.dns_name}", "kind": "dns_srv_response", "client_ip": client_ip,
                       "name": r.dns_name, "rcode": r.dns_rcode, "targets": targets})
        elif r.dns_response and to_client and r.dns_name == mp_name:
            what = "DNS NXDOMAIN" if r.dns_rcode == 3 else f"DNS answer rcode {r.dns_rcode}"
            ev.append({"frame": r.frame, "what": f"{what} for {mp_name}", "kind": "dns_response",
                       "client_ip": client_ip, "name": mp_name, "rcode": r.dns_rcode})
        if r.krb_types and not is_http:
            if from_client and r.dst not in answering and (10 in r.krb_types or 12 in r.krb_types):
                req = "AS-REQ" if 10 in r.krb_types else "TGS-REQ"
                ev.append({"frame": r.frame, "what": f"{req} to {r.dst} over {r.transport.upper()}, never "
                           "answered", "kind": "krb_request_unanswered", "client_ip": client_ip,
                           "kdc": r.dst, "msg_type": 10 if req == "AS-REQ" else 12, "transport": r.transport})
            elif 30 in r.krb_types and to_client and r.krb_error not in (None, 25):
                name = KRB_ERRORS.get(r.krb_error or 0, str(r.krb_error))
                ev.append({"frame": r.frame, "what": f"KRB-ERROR {name} ({r.krb_error}) for {r.sname} "
                           f"over {r.transport.upper()}", "kind": "krb_error", "client_ip": client_ip,
                           "error_code": r.krb_error, "sname": r.sname, "transport": r.transport,
                           "kdc": r.src})
            elif 11 in r.krb_types and to_client:
                ev.append({"frame": r.frame, "what": f"AS-REP for {r.cname} over {r.transport.upper()}",
                           "kind": "as_rep", "client_ip": client_ip, "cname": r.cname,
                           "transport": r.transport, "kdc": r.src})
            elif 13 in r.krb_types and to_client:
                label = "referral TGS-REP, ticket" if r.sname.startswith("krbtgt/") else "TGS-REP ticket"
                ev.append({"frame": r.frame, "what": f"{label} {r.sname} over {r.transport.upper()}",
                           "kind": "tgs_rep", "client_ip": client_ip, "sname": r.sname,
                           "transport": r.transport, "kdc": r.src})
        if not is_http:
            continue
        if from_client and r.uri.lower().startswith(REGISTRATION_URI):
            if 14 in r.krb_types:
                ev.append({"frame": r.frame, "what": f"{r.method} with Negotiate AP-REQ for {r.sname}",
                           "kind": "http_ap_req", "client_ip": client_ip, "sname": r.sname})
            elif 3 in r.ntlm_types:
                ev.append({"frame": r.frame, "what": f"{r.method} with NTLMSSP AUTHENTICATE",
                           "kind": "http_ntlm_auth", "client_ip": client_ip})
        elif to_client and r.status is not None and r.response_for.lower().startswith(REGISTRATION_URI):
            item: dict[str, object] = {"frame": r.frame, "what": f"HTTP {r.status} on {REGISTRATION_URI}",
                                       "kind": "http_response", "client_ip": client_ip, "status": r.status}
            if 30 in r.krb_types and r.krb_error is not None:
                item["what"] = f"{item['what']} carrying KRB-ERROR {KRB_ERRORS.get(r.krb_error, r.krb_error)}"
                item["error_code"] = r.krb_error
            ev.append(item)
    return ev


def client_seen(rows: list[Row], client_ip: str) -> bool:
    return any(r.src == client_ip or r.dst == client_ip for r in rows)
