"""Write a large MP-like capture: N ConfigMgr clients registering amid mostly unrelated traffic.

Client registrations are replayed from real packets: the lab captures in ``captures/`` when present, otherwise
the WinRM/Kerberos exchange of the public ``otrf__NEWYORK.cap`` (401 -> TGS over TCP -> Negotiate -> 200),
with a UDP variant whose TGS-REP (real bytes from the same exchange) is IP-fragmented. For each client the
template's client address and ports are rewritten (IPv4 header checksum recomputed, TCP/UDP checksums
adjusted incrementally, payload bytes unchanged) and its packets are interleaved in time with synthetic
background traffic (SMB 445, TLS 443, TDS 1433, DNS with paired answers, LDAP TCP/UDP 389, NTP) of
realistic sizes, mostly small packets as on a server-side LAN.

    python benchmarks/make_capture.py [--size-mb 1024] [--clients 10000] [--out benchmarks/out/mp-1g.pcap]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pcapio import PcapWriter, read_ipv4  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The public NEWYORK capture ships in captures/real (MIT); ../shared/real-captures holds the same file.
NEWYORK_CAPTURES = (REPO / "captures" / "real" / "otrf__NEWYORK.cap",
                    REPO.parent / "shared" / "real-captures" / "otrf__NEWYORK.cap")
DEFAULT_OUT = REPO / "benchmarks" / "out" / "mp-1g.pcap"

UNLISTED = "unlisted"  # truth of a client the report must not list (it does not register)
MP_IP = bytes([10, 0, 0, 4])  # NEWYORK (DC and web server in the public capture) plays DC and MP
MP_PORT = 80
_MAC_CLIENT = b"\x00\x15\x5d\x01\x02\x03"
_MAC_SERVER = b"\x00\x15\x5d\x0a\x0b\x0c"
ETH_TO_SERVER = _MAC_SERVER + _MAC_CLIENT + b"\x08\x00"
ETH_TO_CLIENT = _MAC_CLIENT + _MAC_SERVER + b"\x08\x00"


# --------------------------------------------------------------------------------------------- checksums


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip_checksum(header: bytes | bytearray) -> int:
    words = struct.unpack(f"!{len(header) // 2}H", header)
    return ~_fold(sum(words)) & 0xFFFF


def _adjust(cksum: int, old_sum: int, new_sum: int) -> int:
    """RFC 1624 incremental update: HC' = ~(~HC + ~m + m'), m/m' the one's-complement sums of changed words."""
    return ~_fold((~cksum & 0xFFFF) + (~_fold(old_sum) & 0xFFFF) + _fold(new_sum)) & 0xFFFF


# --------------------------------------------------------------------------------------------- templates


@dataclass(slots=True)
class TemplatePacket:
    dt: float  # seconds after the template's first packet
    ip: bytes  # IPv4 packet, checksums valid
    src_client: int  # index into Template.clients, -1 when the source is a server
    dst_client: int


@dataclass(slots=True)
class Template:
    name: str
    clients: list[bytes]
    packets: list[TemplatePacket] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)  # expected verdict per client (the truth)

    @property
    def nbytes(self) -> int:
        return sum(16 + 14 + len(p.ip) for p in self.packets)


def _ports(ip: bytes) -> tuple[int, int, int] | None:
    """(protocol, sport, dport) of a first fragment, else None."""
    if ip[9] not in (6, 17) or (ip[6] << 8 | ip[7]) & 0x1FFF:
        return None
    ihl = (ip[0] & 15) * 4
    return ip[9], ip[ihl] << 8 | ip[ihl + 1], ip[ihl + 2] << 8 | ip[ihl + 3]


def _l4_checksum(src: bytes, dst: bytes, proto: int, seg: bytes | bytearray) -> int:
    data = bytes(seg) + (b"\0" if len(seg) & 1 else b"")
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s += (src[0] << 8 | src[1]) + (src[2] << 8 | src[3]) + (dst[0] << 8 | dst[1]) + (dst[2] << 8 | dst[3])
    s += proto + len(seg)
    ck = ~_fold(s) & 0xFFFF
    return ck or (0xFFFF if proto == 17 else 0)


def _ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int, frag: int = 0) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 128, proto, 0,
                                src, dst))
    struct.pack_into("!H", hdr, 10, ip_checksum(hdr))
    return bytes(hdr) + payload


def _udp_fragments(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, ident: int,
                   mtu: int = 1500) -> list[bytes]:
    """One UDP datagram, IP-fragmented like a KDC reply larger than the path MTU."""
    dgram = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
    struct.pack_into("!H", dgram, 6, _l4_checksum(src, dst, 17, dgram))
    step = (mtu - 20) // 8 * 8
    out = []
    for off in range(0, len(dgram), step):
        more = 0x2000 if off + step < len(dgram) else 0
        out.append(_ipv4(src, dst, 17, bytes(dgram[off:off + step]), ident, more | off // 8))
    return out


def _normalise(ip: bytes, remap: dict[bytes, bytes], mtu: int = 1500) -> list[bytes]:
    """Give a lab packet (captured on loopback) the shape it has on a LAN: 10.x addresses, TCP segments of at
    most one MSS, UDP datagrams above the MTU IP-fragmented. Payload bytes are unchanged."""
    src, dst = remap.get(ip[12:16], ip[12:16]), remap.get(ip[16:20], ip[16:20])
    ihl = (ip[0] & 15) * 4
    ident = ip[4] << 8 | ip[5]
    body = ip[ihl:]
    if ip[9] == 17 and not (ip[6] << 8 | ip[7]) & 0x3FFF and len(body) >= 8:
        sport, dport = struct.unpack_from("!HH", body)
        payload = body[8:]
        if 53 in (sport, dport):  # A records name the servers where they now are (length 4, then the address)
            for old, new in remap.items():
                payload = payload.replace(b"\x00\x04" + old, b"\x00\x04" + new)
        return _udp_fragments(src, dst, sport, dport, payload, ident, mtu)
    if ip[9] != 6 or len(body) < 20:
        return [_ipv4(src, dst, ip[9], body, ident, ip[6] << 8 | ip[7])]
    doff = (body[12] >> 4) * 4
    hdr, data = bytearray(body[:doff]), body[doff:]
    mss = mtu - 20 - doff
    seq = struct.unpack_from("!I", hdr, 4)[0]
    flags = hdr[13]
    out = []
    for off in range(0, max(len(data), 1), mss):
        piece = data[off:off + mss]
        h = bytearray(hdr)
        struct.pack_into("!I", h, 4, (seq + off) & 0xFFFFFFFF)
        last = off + mss >= len(data)
        h[13] = flags if last else flags & ~0x09  # PSH/FIN only on the last piece
        h[16:18] = b"\0\0"
        seg = bytes(h) + piece
        struct.pack_into("!H", h, 16, _l4_checksum(src, dst, 6, seg))
        out.append(_ipv4(src, dst, 6, bytes(h) + piece, (ident + off // mss) & 0xFFFF, 0x4000))
    return out


def _legs_from(packets: list[tuple[int, float, bytes]], client: bytes,
               legs: list[tuple[int, int, int]]) -> list[TemplatePacket]:
    """Concatenate conversations (first frame, last frame, client port) in the order given, 2 ms apart."""
    out: list[TemplatePacket] = []
    t_next = 0.0
    for first, last, cport in legs:
        sel = []
        for frame, ts, ip in packets:
            if not first <= frame <= last:
                continue
            p = _ports(ip)
            is_src = ip[12:16] == client
            if p and (p[1] if is_src else p[2]) == cport and (is_src or ip[16:20] == client):
                sel.append((ts, ip, is_src))
        base = sel[0][0]
        out += [TemplatePacket(t_next + ts - base, ip, 0 if s else -1, -1 if s else 0) for ts, ip, s in sel]
        t_next = out[-1].dt + 0.002
    return out


def _tcp_payloads(pkts: list[TemplatePacket], from_client: bool) -> bytes:
    data = b""
    for p in pkts:
        if (p.src_client == 0) == from_client and p.ip[9] == 6:
            ihl = (p.ip[0] & 15) * 4
            doff = (p.ip[ihl + 12] >> 4) * 4
            data += p.ip[ihl + doff:]
    return data


def _with_port(pkts: list[TemplatePacket], old: int, new: int) -> list[TemplatePacket]:
    """Move the server side of a conversation to another port (WinRM 5985 -> MP 80), checksums kept valid."""
    out = []
    for p in pkts:
        b = bytearray(p.ip)
        ihl = (b[0] & 15) * 4
        off = ihl if p.src_client < 0 else ihl + 2
        if (b[off] << 8 | b[off + 1]) == old:
            struct.pack_into("!H", b, off, new)
            ck_off = ihl + 16
            struct.pack_into("!H", b, ck_off, _adjust(b[ck_off] << 8 | b[ck_off + 1], old, new))
        out.append(TemplatePacket(p.dt, bytes(b), p.src_client, p.dst_client))
    return out


def newyork_templates() -> list[Template]:
    """Windows packets from the public NEWYORK capture (client UTICA 10.0.1.5, DC and web server 10.0.0.4):
    401 -> TGS over TCP -> Negotiate -> 200; the same with AS exchange first; and a UDP variant carrying the
    same TGS-REQ/TGS-REP bytes with the reply IP-fragmented."""
    path = next((p for p in NEWYORK_CAPTURES if p.is_file()), None)
    if path is None:
        raise SystemExit(f"the public NEWYORK capture is missing: looked at {', '.join(map(str, NEWYORK_CAPTURES))}")
    pkts = []
    for frame, ts, ip in read_ipv4(path):
        if 1500 <= frame <= 1660:
            # The capture was taken on the sending host: segments above one MTU (the TGS-REP) are
            # offloaded ones. Split them as the wire carried them.
            pieces = _normalise(ip, {}) if ip[9] == 6 and len(ip) > 1500 else [ip]
            pkts += [(frame, ts + k * 1e-6, piece) for k, piece in enumerate(pieces)]
    client = bytes([10, 0, 1, 5])
    http401, as_pre, as_rep, tgs, auth200 = (1633, 1644, 61143), (1509, 1516, 61089), (1517, 1525, 61090), \
        (1526, 1536, 61091), (1645, 1657, 61144)

    def legs(spec: list[tuple[int, int, int]]) -> list[TemplatePacket]:
        return _with_port(_legs_from(pkts, client, spec), 5985, MP_PORT)

    tcp = Template("win-tgs-tcp", [client], legs([http401, tgs, auth200]))
    cold = Template("win-as-tgs-tcp", [client], legs([http401, as_pre, as_rep, tgs, auth200]))
    tgs_pkts = _legs_from(pkts, client, [tgs])
    req, rep = _tcp_payloads(tgs_pkts, True)[4:], _tcp_payloads(tgs_pkts, False)[4:]
    if not req or not rep:  # never replay an empty datagram as Kerberos
        raise ValueError("NEWYORK template: TGS-REQ/TGS-REP bytes not found")
    udp_pkts = legs([http401])
    t = udp_pkts[-1].dt + 0.002
    req_ip = _udp_fragments(client, MP_IP, 61092, 88, req, 0x1234)
    udp_pkts += [TemplatePacket(t, ip, 0, -1) for ip in req_ip]
    for i, frag in enumerate(_udp_fragments(MP_IP, client, 88, 61092, rep, 0x4321)):
        udp_pkts.append(TemplatePacket(t + 0.001 + i * 1e-6, frag, -1, 0))
    t = udp_pkts[-1].dt + 0.002
    udp_pkts += [TemplatePacket(t + p.dt, p.ip, p.src_client, p.dst_client) for p in legs([auth200])]
    udp = Template("win-tgs-udp-fragmented", [client], udp_pkts)
    for tpl in (tcp, udp, cold):
        tpl.verdicts = [UNLISTED]  # WinRM, not a ConfigMgr registration: no client in the report
    return [tcp, udp, cold]


def _lab_clients(path: Path, pkts: list[tuple[int, float, bytes]]) -> tuple[list[bytes], list[str]]:
    """Registering clients and their expected verdicts: from the scenario's JSON sidecar, else whoever first
    talks to port 88/80 (verdict unknown, "?")."""
    meta = path.with_suffix(".json")
    if meta.exists():
        try:
            clients = json.loads(meta.read_text())["clients"]
            return ([bytes(int(x) for x in c["client_ip"].split(".")) for c in clients],
                    [str(c.get("verdict", "?")) for c in clients])
        except (ValueError, KeyError, TypeError):
            pass
    for _, _, ip in pkts:
        p = _ports(ip)
        if p and p[2] in (88, 80):
            return [ip[12:16]], ["?"]
    return [], []


def lab_templates(files: list[Path]) -> list[Template]:
    """One template per lab capture: every IPv4 packet to or from its registering clients."""
    out = []
    for path in files:
        try:
            pkts = list(read_ipv4(path))
        except (OSError, ValueError, struct.error, IndexError) as exc:
            print(f"skipping template {path.name}: {exc}", file=sys.stderr)
            continue
        clients, verdicts = _lab_clients(path, pkts)
        mine = [(ts, ip) for _, ts, ip in pkts if ip[12:16] in clients or ip[16:20] in clients]
        if not clients or not mine:
            print(f"skipping template {path.name}: no registering client found", file=sys.stderr)
            continue
        remap = {}
        for _, ip in mine:  # servers on loopback addresses move to 10.0.x.y
            for a in (ip[12:16], ip[16:20]):
                if a not in clients and a[0] == 127:
                    remap[a] = bytes([10, 0, a[2], a[3]])
        t0 = mine[0][0]
        tpl = Template(path.stem, clients, verdicts=verdicts)
        for ts, ip in mine:
            s, d = ip[12:16], ip[16:20]
            si, di = (clients.index(s) if s in clients else -1), (clients.index(d) if d in clients else -1)
            for k, piece in enumerate(_normalise(ip, remap)):
                tpl.packets.append(TemplatePacket(ts - t0 + k * 1e-6, piece, si, di))
        out.append(tpl)
    return out


def load_templates(files: list[Path] | None, windows_share: float) -> list[tuple[Template, float]]:
    """Lab captures (captures/*.pcapng by default) share 1 - windows_share of the clients evenly; the NEWYORK
    Windows variants share the rest (all of it when no lab capture is available)."""
    if files is None:
        files = sorted((REPO / "captures").glob("*.pcap*"))
    lab = lab_templates(files) if files else []
    win = newyork_templates()
    if not lab:
        return [(win[0], 0.6), (win[1], 0.25), (win[2], 0.15)]
    ws = min(max(windows_share, 0.0), 1.0)
    # weights per template instance, so that each lab scenario gets about the same number of *clients*
    return [(t, (1 - ws) / len(lab) / len(t.clients)) for t in lab] + [(win[0], ws * 0.6), (win[1], ws * 0.25),
                                                       (win[2], ws * 0.15)]


def instantiate(tpl: Template, new_ips: list[bytes], port_shift: int,
                t0: float) -> list[tuple[float, bytes, bool]]:
    """Rewrite a template for its clients: addresses and ephemeral ports; checksums updated incrementally."""
    out = []
    sums = [((a[0] << 8 | a[1]) + (a[2] << 8 | a[3])) for a in tpl.clients]
    nsums = [((a[0] << 8 | a[1]) + (a[2] << 8 | a[3])) for a in new_ips]
    for p in tpl.packets:
        b = bytearray(p.ip)
        ihl = (b[0] & 15) * 4
        old = new = 0
        if p.src_client >= 0:
            b[12:16] = new_ips[p.src_client]
            old, new = sums[p.src_client], nsums[p.src_client]
        if p.dst_client >= 0:
            b[16:20] = new_ips[p.dst_client]
            old, new = old + sums[p.dst_client], new + nsums[p.dst_client]
        b[10:12] = b"\x00\x00"
        struct.pack_into("!H", b, 10, ip_checksum(b[:ihl]))
        if b[9] in (6, 17) and not (b[6] << 8 | b[7]) & 0x1FFF and len(b) >= ihl + 8:
            sport, dport = struct.unpack_from("!HH", b, ihl)
            nsport = 49152 + ((sport + port_shift) & 0x3FFF) if p.src_client >= 0 and sport > 1023 else sport
            ndport = 49152 + ((dport + port_shift) & 0x3FFF) if p.dst_client >= 0 and dport > 1023 else dport
            struct.pack_into("!HH", b, ihl, nsport, ndport)
            ck_off = ihl + (16 if b[9] == 6 else 6)
            if len(b) >= ck_off + 2:
                ck = b[ck_off] << 8 | b[ck_off + 1]
                if ck or b[9] == 6:
                    ck = _adjust(ck, old + sport + dport, new + nsport + ndport)
                    if b[9] == 17 and ck == 0:
                        ck = 0xFFFF
                    struct.pack_into("!H", b, ck_off, ck)
        out.append((t0 + p.dt, bytes(b), p.src_client >= 0))
    return out


# --------------------------------------------------------------------------------------------- background


def _dns_pair(rng: random.Random, i: int) -> tuple[bytes, bytes]:
    name = f"srv{i:04d}.{rng.choice(['corp', 'eu', 'us', 'lab'])}.contoso.com"
    qname = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
    question = qname + b"\x00\x01\x00\x01"
    query = struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0) + question
    answers = b"".join(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04" + bytes([10, 1, i % 250, k + 1])
                       for k in range(1 + i % 4))
    response = struct.pack("!HHHHHH", 0, 0x8180, 1, 1 + i % 4, 0, 0) + question + answers
    return query, response


@dataclass(slots=True)
class Flow:
    proto: int
    cli: bytes
    srv: bytes
    cport: int
    sport: int
    kind: str
    cseq: int = 0
    sseq: int = 0


# (kind, proto, server port, share of background packets, [(direction, payload-size choices, weight)])
# Shaped like a server-side LAN capture: bulk data in 1460-byte segments, but most packets small -
# acknowledgements (about one per two data segments), requests, short replies and keep-alives.
_MIX = [
    ("smb", 6, 445, 0.30, [("s", (1460,), 0.14), ("c", (117, 150, 190), 0.26), ("s", (100, 140, 220), 0.16),
                           ("a", (0,), 0.44)]),
    ("tls", 6, 443, 0.27, [("s", (1460,), 0.12), ("c", (100, 250, 517, 600), 0.2), ("s", (31, 90, 300), 0.25),
                           ("a", (0,), 0.43)]),
    ("tds", 6, 1433, 0.12, [("s", (1460,), 0.1), ("c", (200, 350, 500), 0.25), ("s", (60, 120, 240), 0.2),
                            ("a", (0,), 0.45)]),
    ("dns", 17, 53, 0.03, [("q", (0,), 1.0)]),  # each query brings its response: 6 % of packets
    ("ldap", 6, 389, 0.12, [("s", (1460,), 0.08), ("c", (160, 250, 400), 0.3), ("s", (120, 200), 0.17),
                            ("a", (0,), 0.45)]),
    ("cldap", 17, 389, 0.05, [("c", (180, 210), 0.5), ("s", (140, 160), 0.5)]),
    ("ntp", 17, 123, 0.08, [("c", (48,), 0.5), ("s", (48,), 0.5)]),
]
# A branch-office file server's mix, unlike the MP's: SMB and NetBIOS (name service, datagrams, session
# service) lead, SQL and TLS follow, and DNS is three times as common (18 % of packets with the answers).
_OFFICE_MIX = [
    ("smb", 6, 445, 0.34, [("s", (1460,), 0.2), ("c", (117, 150, 190), 0.22), ("s", (100, 140, 220), 0.14),
                           ("a", (0,), 0.44)]),
    ("nbss", 6, 139, 0.07, [("s", (1460,), 0.15), ("c", (90, 160), 0.25), ("s", (80, 120), 0.2), ("a", (0,), 0.4)]),
    ("nbns", 17, 137, 0.07, [("c", (50,), 0.6), ("s", (62,), 0.4)]),
    ("nbdgm", 17, 138, 0.04, [("c", (201, 229), 1.0)]),
    ("tds", 6, 1433, 0.18, [("s", (1460,), 0.15), ("c", (200, 350, 500), 0.25), ("s", (60, 120, 240), 0.2),
                            ("a", (0,), 0.4)]),
    ("tls", 6, 443, 0.15, [("s", (1460,), 0.12), ("c", (100, 250, 517, 600), 0.2), ("s", (31, 90, 300), 0.25),
                           ("a", (0,), 0.43)]),
    ("dns", 17, 53, 0.09, [("q", (0,), 1.0)]),
    ("ntp", 17, 123, 0.06, [("c", (48,), 0.5), ("s", (48,), 0.5)]),
]
MIXES = {"mp": _MIX, "office": _OFFICE_MIX}
_KINDS = [k for k, *_ in _MIX] + [k for k, *_ in _OFFICE_MIX if k not in {m[0] for m in _MIX}]


_SMB2_HDR = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ16s", 64, 0, 0, 8, 1, 0x1, 0, 1, 0xFEFF, 1, 0x1000, b"\x11" * 16)
_LDAP_DN = b"CN=srv01,OU=Servers,DC=contoso,DC=com"


def _pdu_prefix(kind: str, n: int) -> bytes:
    """Header that makes a TCP/UDP payload of n bytes one whole, well-formed PDU of its protocol (the rest of
    the payload is opaque data), so dissectors do real work instead of stopping at garbage."""
    if kind == "smb":  # NBSS + SMB2 READ response carrying n - 84 bytes of file data
        body = struct.pack("<HBBIII", 17, 0x50, 0, n - 84, 0, 0)
        return struct.pack("!I", n - 4) + _SMB2_HDR + body
    if kind == "tls":
        return b"\x17\x03\x03" + struct.pack("!H", n - 5)
    if kind == "nbss":  # NetBIOS session message carrying the rest
        return b"\x00\x00" + struct.pack("!H", n - 4)
    if kind == "nbns":  # name query (or its positive answer) for a 16-byte encoded NetBIOS name
        flags, counts = (0x0110, (1, 0, 0, 0)) if n == 50 else (0x8500, (0, 1, 0, 0))
        name = b"\x20" + b"EOEBEMEFCACACACACACACACACACACAAA" + b"\x00"
        rr = name + b"\x00\x20\x00\x01"
        if flags & 0x8000:
            rr += b"\x00\x04\x93\xe0\x00\x06\x00\x00\x0a\x00\x02\x10"
        return struct.pack("!HHHHHH", n & 0xFFFF, flags, *counts) + rr
    if kind == "nbdgm":  # direct-group datagram header; the SMB mailslot body is the opaque rest
        return struct.pack("!BBI4sHHH", 0x11, 0x0A, 1, b"\x0a\x14\x01\x02", 138, n - 14, 0)
    if kind == "ntp":  # NTPv4 client/server header; the timestamps are the opaque rest
        return b"\x23\x02\x06\xec"
    if kind == "tds":
        return b"\x04\x01" + struct.pack("!H", n) + b"\x00\x00\x01\x00"
    if kind in ("ldap", "cldap"):  # searchResEntry with one attribute whose value fills the payload
        value_len = n - 6 - 3 - 6 - (2 + len(_LDAP_DN)) - 6 - 6 - 6 - 13 - 6
        attr = b"\x30\x84" + struct.pack("!I", 13 + 6 + 6 + value_len) + b"\x04\x0bdescription"
        attr += b"\x31\x84" + struct.pack("!I", value_len + 6) + b"\x04\x84" + struct.pack("!I", value_len)
        entry_len = 2 + len(_LDAP_DN) + 6 + len(attr) + value_len  # attr = PartialAttribute headers
        return b"\x30\x84" + struct.pack("!I", n - 6) + b"\x02\x01\x07" + b"\x64\x84" + struct.pack("!I", entry_len) \
            + bytes([4, len(_LDAP_DN)]) + _LDAP_DN + b"\x30\x84" + struct.pack("!I", len(attr) + value_len) + attr
    return b""


class Background:
    """Synthetic unrelated traffic with continuous TCP sequence numbers per flow."""

    def __init__(self, rng: random.Random, nflows: int = 3000, mix: str = "mp") -> None:
        self.rng = rng
        self.blob = rng.randbytes(1 << 20)
        self.dns = [_dns_pair(rng, i) for i in range(500)]
        self.flows: dict[str, list[Flow]] = {}
        self.plans = {}
        table = MIXES[mix]
        for kind, proto, port, share, plan in table:
            n = max(8, int(nflows * share))
            self.flows[kind] = [self._new_flow(kind, proto, port, i) for i in range(n)]
            self.plans[kind] = ([p for p in plan], [w for *_, w in plan])
        self.kinds = [k for k, *_ in table]
        self.kind_w = [m[3] for m in table]
        self._queue: list[tuple[bytes, bytes]] = []
        self.ident = 0

    def _new_flow(self, kind: str, proto: int, port: int, i: int) -> Flow:
        r = self.rng
        cli = bytes([10, 20 + (i >> 12) % 8, (i >> 4) & 0xFF, 1 + r.randrange(250)])
        srv = bytes([10, 0, 2, 10 + _KINDS.index(kind)])
        return Flow(proto, cli, srv, 49152 + r.randrange(16000), port, kind, r.getrandbits(32), r.getrandbits(32))

    def _tcp(self, f: Flow, to_server: bool, flags: int, payload: bytes) -> tuple[bytes, bytes]:
        if to_server:
            seg = struct.pack("!HHIIBBHHH", f.cport, f.sport, f.cseq, f.sseq, 0x50, flags, 1024, 0, 0) + payload
            f.cseq = (f.cseq + len(payload) + (1 if flags & 0x02 else 0)) & 0xFFFFFFFF
            src, dst = f.cli, f.srv
        else:
            seg = struct.pack("!HHIIBBHHH", f.sport, f.cport, f.sseq, f.cseq, 0x50, flags, 1024, 0, 0) + payload
            f.sseq = (f.sseq + len(payload) + (1 if flags & 0x02 else 0)) & 0xFFFFFFFF
            src, dst = f.srv, f.cli
        self.ident = (self.ident + 1) & 0xFFFF
        return (ETH_TO_SERVER if to_server else ETH_TO_CLIENT), _ipv4(src, dst, 6, seg, self.ident, 0x4000)

    def _udp(self, f: Flow, to_server: bool, payload: bytes) -> tuple[bytes, bytes]:
        a, b = (f.cport, f.sport) if to_server else (f.sport, f.cport)
        self.ident = (self.ident + 1) & 0xFFFF
        src, dst = (f.cli, f.srv) if to_server else (f.srv, f.cli)
        return (ETH_TO_SERVER if to_server else ETH_TO_CLIENT), \
            _ipv4(src, dst, 17, struct.pack("!HHHH", a, b, 8 + len(payload), 0) + payload, self.ident)

    def packets(self, count: int):
        """Yield ``count`` (ethernet header, ip packet) pairs."""
        r = self.rng
        blob = self.blob
        made = 0
        while made < count:
            batch = min(65536, count - made)
            kinds = r.choices(self.kinds, self.kind_w, k=batch)
            for kind in kinds:
                if self._queue:
                    yield self._queue.pop()
                    made += 1
                    continue
                flows = self.flows[kind]
                fi = r.randrange(len(flows))
                f = flows[fi]
                plan, weights = self.plans[kind]
                direction, sizes, _ = r.choices(plan, weights)[0]
                if f.proto == 17:
                    if kind == "dns":  # a query, and its answer (same ID) in the next packet slot
                        q, resp = self.dns[r.randrange(len(self.dns))]
                        txid = struct.pack("!H", r.getrandbits(16))
                        self._queue.append(self._udp(f, False, txid + resp[2:]))
                        yield self._udp(f, True, txid + q[2:])
                    else:
                        n = sizes[r.randrange(len(sizes))]
                        off = r.randrange(len(blob) - n)
                        pre = _pdu_prefix(kind, n)
                        yield self._udp(f, direction == "c", pre + blob[off + len(pre):off + n])
                    made += 1
                    continue
                if r.random() < 0.002:  # a flow ends and a new connection starts: SYN, SYN-ACK, ACK
                    f = flows[fi] = self._new_flow(kind, 6, f.sport, r.getrandbits(16))
                    syn, synack, ack = self._tcp(f, True, 0x02, b""), self._tcp(f, False, 0x12, b""), \
                        self._tcp(f, True, 0x10, b"")
                    self._queue += [ack, synack]
                    yield syn
                    made += 1
                    continue
                n = sizes[r.randrange(len(sizes))]
                if n:
                    off = r.randrange(len(blob) - n)
                    pre = _pdu_prefix(kind, n)
                    yield self._tcp(f, direction == "c", 0x18, pre + blob[off + len(pre):off + n])
                else:
                    yield self._tcp(f, r.random() < 0.5, 0x10, b"")
                made += 1


# --------------------------------------------------------------------------------------------- main


def client_address(i: int) -> bytes:
    return bytes([10, 100 + i // 62500, (i // 250) % 250, 1 + i % 250])


def clients_for_share(variants: list[tuple[Template, float]], size_mb: float, share: float, mix: str,
                      seed: int = 1) -> int:
    """How many clients make `share` of the packets of a `size_mb` capture registration traffic.

    With c clients of p packets and b bytes each (weighted over the templates) and background packets of
    e bytes: c*p = share * (c*p + (T - c*b)/e), so c = share*T / ((1-share)*p*e + share*b)."""
    total_w = sum(w for _, w in variants)
    per_client = [(t, w / total_w) for t, w in variants]
    p = sum(len(t.packets) / len(t.clients) * w * len(t.clients) for t, w in per_client) / \
        sum(w * len(t.clients) for t, w in per_client)
    b = sum((t.nbytes + 30 * len(t.packets)) / len(t.clients) * w * len(t.clients) for t, w in per_client) / \
        sum(w * len(t.clients) for t, w in per_client)
    e = _background_packet_bytes(seed, mix)
    return max(1, int(share * size_mb * 1024 * 1024 / ((1 - share) * p * e + share * b)))


def _background_packet_bytes(seed: int, mix: str) -> float:
    """Mean bytes a background packet takes in the file (record header and Ethernet included)."""
    sample = Background(random.Random(seed + 1), mix=mix)
    return sum(16 + 14 + len(ip) for _, ip in sample.packets(20000)) / 20000


def generate(out: Path, size_mb: float, clients: int, seed: int = 1, duration: float = 900.0,
             templates: list[Path] | None = None, windows_share: float = 0.25, mix: str = "mp",
             client_share: float | None = None) -> dict:
    """Write the capture and its sidecar; `client_share` (e.g. 0.2) sets the number of clients so that this
    share of the packets belongs to registrations, overriding `clients`."""
    t_start = time.perf_counter()
    rng = random.Random(seed)
    variants = load_templates(templates, windows_share)
    if client_share:
        clients = clients_for_share(variants, size_mb, client_share, mix, seed)
    weights = [w for _, w in variants]
    choice: list[int] = []
    placed = 0
    while placed < clients:  # a template may hold several clients (duplicate GUID, mixed)
        v = rng.choices(range(len(variants)), weights)[0]
        choice.append(v)
        placed += len(variants[v][0].clients)
    starts = sorted(rng.uniform(0.0, duration * 0.97) for _ in choice)
    client_bytes = sum(variants[c][0].nbytes for c in choice)
    bg = Background(rng, mix=mix)
    est = _background_packet_bytes(seed, mix)
    target = int(size_mb * 1024 * 1024)
    n_bg = max(1000, int((target - client_bytes) / est))
    step = duration / n_bg
    base_ts = 1_700_000_000.0

    out.parent.mkdir(parents=True, exist_ok=True)
    w = PcapWriter(out)
    heap: list[tuple[float, int, bytes, bytes]] = []
    seq = 0
    nxt = 0
    next_addr = 0
    client_packets = 0
    per_variant = [0] * len(variants)
    truth: Counter[str] = Counter()
    t = 0.0
    for eth, ip in bg.packets(n_bg):
        t += step
        while nxt < len(choice) and starts[nxt] <= t:
            tpl = variants[choice[nxt]][0]
            per_variant[choice[nxt]] += len(tpl.clients)
            truth.update(tpl.verdicts or ["?"] * len(tpl.clients))
            addrs = [client_address(next_addr + k) for k in range(len(tpl.clients))]
            next_addr += len(addrs)
            for ts, pkt, from_client in instantiate(tpl, addrs, nxt * 37, starts[nxt]):
                heapq.heappush(heap, (ts, seq, ETH_TO_SERVER if from_client else ETH_TO_CLIENT, pkt))
                seq += 1
            nxt += 1
        while heap and heap[0][0] <= t:
            ts, _, e, pkt = heapq.heappop(heap)
            w.write(base_ts + ts, e, pkt)
            client_packets += 1
        w.write(base_ts + t, eth, ip)
    while heap:
        ts, _, e, pkt = heapq.heappop(heap)
        w.write(base_ts + max(ts, t), e, pkt)
        client_packets += 1
    w.close()
    elapsed = time.perf_counter() - t_start
    summary = {
        "file": str(out),
        "bytes": w.bytes,
        "packets": w.packets,
        "clients": next_addr,
        "client_packets": client_packets,
        "client_packet_share": round(client_packets / w.packets, 4),
        "clients_per_template": {variants[i][0].name: per_variant[i] for i in range(len(variants))},
        "verdicts": dict(sorted(truth.items())),  # the truth: expected verdicts of the clients placed
        "mix": mix,
        "duration_s": duration,
        "seed": seed,
        "generation_s": round(elapsed, 1),
    }
    out.with_suffix(out.suffix + ".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--size-mb", type=float, default=1024.0)
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--duration", type=float, default=900.0, help="capture span in seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--templates", type=Path, nargs="*", help="lab captures to replay (default: captures/*)")
    ap.add_argument("--windows-share", type=float, default=0.25,
                    help="share of clients replayed from the public Windows capture when lab captures exist")
    ap.add_argument("--mix", choices=sorted(MIXES), default="mp", help="unrelated traffic: an MP's or an office's")
    ap.add_argument("--client-share", type=float, default=None,
                    help="share of packets that belong to registrations (sets the number of clients)")
    args = ap.parse_args(argv)
    s = generate(args.out, args.size_mb, args.clients, args.seed, args.duration, args.templates,
                 args.windows_share, args.mix, args.client_share)
    print(f"wrote {s['file']}: {s['bytes'] / 1e6:.0f} MB, {s['packets']:,} packets, {s['clients']:,} clients "
          f"({s['client_packets']:,} packets, {100 * s['client_packet_share']:.1f} %) in {s['generation_s']} s; "
          f"clients per template {s['clients_per_template']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
