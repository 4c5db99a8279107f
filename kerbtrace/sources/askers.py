"""The IPv4 addresses that may become clients, found by a first pass over a capture's files at libpcap speed.

The prefilter skips a DNS message only where decoding it cannot change a result (`prefilter.Prefilter._dns`):
a successful answer, and its query, asked by an address that never becomes a client. An address becomes a
client by Kerberos (port 88), by a registration (an HTTP request on any port), by TLS (a ClientHello on any
port, or any connection on port 443), by an ICMP error quoting a Kerberos datagram, or by a failed lookup of
an MP name with nothing after it (a failure, an empty answer, or a query never answered). Every address that
shows any of these anywhere in the capture is listed here before the analysis starts, so that none of its
lookups is skipped, not even those before it shows it:

- libpcap (pcapy-ng) runs a BPF filter for the TCP and UDP rules, and its flow-head classifier hands Python
  only the first matching packet of each direction of each flow (a bounded table: an evicted flow is reported
  once more, never hidden);
- a second libpcap read hands over the DNS datagrams, ICMP and tunnels in batches; numpy pairs the queries
  the way `DnsPairing` does (asker, server, ID, across the files of a ring): the asker of a query that the
  next message of its pair does not answer is listed, and so are both ends of ICMP and of every DNS datagram
  the prefilter would not read at fixed offsets (tagged, IP options, fragments).

The rules over-approximate (both ends of Kerberos, ICMP and DNS-over-TCP conversations; the sender of anything
that begins like an HTTP request line): listing an address too many only skips less. Tunnels (IP in IP, GRE)
hide the inner addresses from these rules, so a capture with any is not thinned at all (None); nor is a group
of files one of which libpcap cannot read to its end or that is not Ethernet. The two reads cost about 1 s per
GB: on `office` 1 GB (DNS 18 % of the packets) the run is 13 % faster for them, on `mp` (6 %) they cost what
the skip saves (docs/benchmarks.md). In a run partitioned by client, two processes make one read each at the
same time and exchange what they found (`share_of`, `union`).
"""

from __future__ import annotations

import struct

from kerbtrace.sources import prefilter

#: The start of the TCP payload, for the payload rules.
_P = "((tcp[12:1] & 0xf0) >> 2)"
#: Conversations whose ends may be clients. Payload tests come last: BPF rejects a packet at a load past its end.
_RULES = ("port 88 or tcp port 53 or tcp port 443"
          " or (udp port 53 and udp[10] & 0x80 != 0 and (udp[11] & 0x0f != 0 or udp[14:2] = 0))")
#: Three upper-case letters (a request method, or HTTP/ of a response), or a TLS ClientHello, on any port.
_PAYLOAD = (f"tcp and ((tcp[{_P}:1] - 65 < 26 and tcp[{_P} + 1:1] - 65 < 26 and tcp[{_P} + 2:1] - 65 < 26)"
            f" or (tcp[{_P}:1] = 22 and tcp[{_P} + 5:1] = 1))")
#: libpcap's `vlan` moves every later offset of the expression: the tagged variants go last.
FILTER = f"({_RULES}) or ({_PAYLOAD}) or (vlan and (({_RULES}) or ({_PAYLOAD})))"
#: Every DNS datagram; ICMP and tunnels too, which are no flow's head (the flow-head classifier takes TCP and UDP).
_EVERY = ("udp port 53 or icmp or ip proto 4 or ip proto 41 or ip proto 47"
          " or ip6 proto 4 or ip6 proto 41 or ip6 proto 47")
DNS_FILTER = f"{_EVERY} or (vlan and ({_EVERY}))"
_FLOW_HEAD = 1
_TUNNEL_PROTOCOLS = (4, 41, 47)  # IP in IP, IPv6 in IP, GRE (ERSPAN too)
#: DNS queries waiting for their response from one batch to the next; past this the oldest askers are listed.
MAX_WAITING = 1 << 16
_IPV4, _IPV6 = 0x0800, 0x86DD
_TAGS = (0x8100, 0x88A8, 0x9100)


#: The two reads of the first pass: the flow heads the rules match, and the DNS datagrams (with ICMP and tunnels).
PASSES = ("rules", "dns")


def may_become_clients(paths: list[str], passes: tuple[str, ...] = PASSES):
    """Sorted uint32 array of the IPv4 addresses that may become clients in the capture made of `paths` (a
    ring's files together), or None when the capture cannot be thinned (read by libpcap, Ethernet, no tunnels).

    `passes`: the reads to make (`PASSES`). The processes of a run partitioned by client each make their share
    (`share_of`) at the same time, and `union` joins what they found into what all the reads find."""
    if not prefilter.available():
        return None
    np = prefilter.np
    found: list = [np.zeros(0, dtype=np.uint32)]
    waiting = _nothing_waiting()
    try:
        for path in paths:
            if "rules" in passes:
                found.append(_rule_pass(path))
            if "dns" in passes:
                listed, waiting = _dns_pass(path, waiting)  # a ring's query may be answered in the next file
                found.append(listed)
    except (prefilter.pcapy.PcapError, OSError):
        return None
    return union([*found, waiting[2]])


def share_of(part: int, parts: int) -> tuple[str, ...]:
    """The reads of the first pass that process `part` of `parts` makes: one each for the first two, none for
    the others (a capture is read twice, not twice per process)."""
    if parts <= 1:
        return PASSES
    return PASSES[part:part + 1]


def union(found: list):
    """The addresses all the reads find, from what each read (or each process's share) found (None from any: the
    capture is not thinned at all)."""
    if any(part is None for part in found):
        return None
    np = prefilter.np
    return np.unique(np.concatenate(found)).astype(np.uint32)


def _nothing_waiting():
    np = prefilter.np
    return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32)


def _open(path: str, expression: str):
    reader = prefilter.pcapy.open_offline(path)
    if reader.datalink() != 1:
        reader.close()
        return None
    reader.setfilter(expression)
    return reader


def _rule_pass(path: str):
    """Addresses of the packets matching `FILTER`, first packet of each flow direction only."""
    np = prefilter.np
    reader = _open(path, FILTER)
    if reader is None:
        return None
    out: list[int] = []
    chunks = []

    def head(_header, data: bytes, _cls: int) -> None:
        out.extend(_ends(data))
        if len(out) >= 1 << 16:
            chunks.append(np.unique(np.array(out, dtype=np.uint32)))
            out.clear()

    try:
        reader.loop_filtered(0, head, 1 << _FLOW_HEAD, flow_cutoff=1)
    finally:
        reader.close()
    chunks.append(np.array(out, dtype=np.uint32))
    return np.unique(np.concatenate(chunks))


def _ends(data: bytes) -> tuple[int, ...]:
    """The ends of a matching packet that may be clients (see the module's rules)."""
    o = 14
    et = data[12] << 8 | data[13] if len(data) >= 14 else 0
    while et in _TAGS and len(data) >= o + 4:
        et = data[o + 2] << 8 | data[o + 3]
        o += 4
    if et != _IPV4 or len(data) < o + 20:
        return ()
    proto = data[o + 9]
    src, dst = struct.unpack_from("!II", data, o + 12)
    t = o + (data[o] & 15) * 4
    if proto != 6 or len(data) < t + 14 or data[o + 6] & 0x1F or data[o + 7]:
        return src, dst  # Kerberos and DNS datagrams, ICMP, fragments: both ends
    sport, dport = struct.unpack_from("!HH", data, t)
    if 88 in (sport, dport) or 53 in (sport, dport):
        return src, dst
    payload = t + (data[t + 12] >> 4) * 4
    if sport == 443 and dport != 443 or data[payload:payload + 5] == b"HTTP/":
        return (dst,)  # the client of a TLS server, or of an HTTP response
    return (src,)


def _dns_pass(path: str, waiting):
    """Askers of a DNS query that the next message of the same (asker, server, ID) does not answer, and both
    ends of every DNS datagram the prefilter would not read at fixed offsets (tagged, IP options, fragments);
    with the queries still waiting at the end of the file (None instead of the addresses: not Ethernet)."""
    np = prefilter.np
    reader = _open(path, DNS_FILTER)
    if reader is None:
        return None, waiting
    listed = [np.zeros(0, dtype=np.uint32)]
    try:
        while True:
            raw, meta = reader.next_batch(prefilter.BATCH)
            if not len(meta):
                break
            data = np.frombuffer(raw + bytes(64), dtype=np.uint8)
            rows = np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4)
            both, asked, tunnel = _dns_batch(data, rows)
            if tunnel:  # the inner addresses are out of these rules' sight: nothing is skipped
                return None, waiting
            waiting, unanswered = _pair(waiting, *asked)
            listed += [both, unanswered]
            if len(listed) > 64:  # bounded: what a batch lists is mostly listed already
                listed = [np.unique(np.concatenate(listed))]
    finally:
        reader.close()
    return np.unique(np.concatenate(listed)), waiting


def _dns_batch(data, meta):
    """(both ends of the records read otherwise, (key, ID, is query, asker) of the plain ones in order)."""
    np = prefilter.np
    o = meta[:, 2].astype(np.int64)
    caplen = meta[:, 3].astype(np.int64)
    u2 = np.ndarray((len(data) - 1,), ">u2", data, 0, (1,))
    u4 = np.ndarray((len(data) - 3,), ">u4", data, 0, (1,))
    once, twice = np.isin(u2[o + 12], _TAGS), np.isin(u2[o + 16], _TAGS)
    tagged = once & (u2[o + 16] == _IPV4)
    double = once & twice & (u2[o + 20] == _IPV4)
    ip = np.where(double, o + 22, np.where(tagged, o + 18, o + 14))
    ipv4 = (caplen >= ip - o + 20) & ((u2[o + 12] == _IPV4) | tagged | double)
    tagged |= double
    src, dst = u4[ip + 12], u4[ip + 16]
    end, payload = prefilter.udp_payload(u2, o)
    plain = (ipv4 & ~tagged & (data[o + 14] == 0x45) & ((u2[o + 20] & 0x3FFF) == 0) & (data[o + 23] == 17)
             & (end >= 42) & (end <= caplen) & (payload >= 12))
    other = ipv4 & ~plain
    both = np.concatenate((src[other], dst[other])).astype(np.uint32)
    v6 = np.where(u2[o + 12] == _IPV6, o + 14, np.where(once & (u2[o + 16] == _IPV6), o + 18,
                                                         np.where(once & twice & (u2[o + 20] == _IPV6), o + 22, -1)))
    tunnel = (ipv4 & np.isin(data[ip + 9], _TUNNEL_PROTOCOLS)).any() or (
        (v6 >= 0) & np.isin(data[np.maximum(v6, 0) + 6], _TUNNEL_PROTOCOLS)).any()
    idx = np.flatnonzero(plain)
    query = (data[o[idx] + 44] & 0x80) == 0
    asker = np.where(query, src[idx], dst[idx]).astype(np.uint32)
    server = np.where(query, dst[idx], src[idx]).astype(np.uint64)
    key = asker.astype(np.uint64) << np.uint64(32) | server
    return both, (key, u2[o[idx] + 42].astype(np.int64), query, asker), bool(tunnel)


def _pair(waiting, key, ident, query, asker):
    """The queries still waiting after this batch, and the askers of queries a response did not answer next."""
    np = prefilter.np
    wkey, wid, wasker = waiting
    n = len(wkey)
    key = np.concatenate((wkey, key))
    ident = np.concatenate((wid, ident))
    query = np.concatenate((np.ones(n, dtype=bool), query))
    asker = np.concatenate((wasker, asker))
    order = np.lexsort((np.arange(len(key)), ident, key))  # by (key, ID), then in capture order
    k, i, q, a = key[order], ident[order], query[order], asker[order]
    same_next = np.zeros(len(k), dtype=bool)
    same_next[:-1] = (k[1:] == k[:-1]) & (i[1:] == i[:-1])
    next_query = np.zeros(len(k), dtype=bool)
    next_query[:-1] = q[1:]
    unanswered = q & same_next & next_query  # asked again before any answer: the first one is never answered
    last = q & ~same_next  # no later message of its own yet
    keep = np.flatnonzero(last)
    if len(keep) > MAX_WAITING:  # the oldest wait no longer: their askers are listed
        by_age = keep[np.argsort(order[keep], kind="stable")]
        unanswered[by_age[:len(keep) - MAX_WAITING]] = True
        keep = np.sort(by_age[len(keep) - MAX_WAITING:])
    return (k[keep], i[keep], a[keep]), a[unanswered]


__all__ = ["DNS_FILTER", "FILTER", "PASSES", "may_become_clients", "share_of", "union"]
