"""Link layer, IP, tunnels and UDP: turns frames into TCP segments and wanted UDP datagrams.

About 97 % of the packets in a real capture belong to traffic nobody asked for, so the common
case — Ethernet, IPv4 without options, TCP of an ignored connection or UDP on an unwanted port —
is decided with a handful of byte reads and one dict lookup, with no object built but the key.
"""

from __future__ import annotations

import socket
from collections import Counter

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.model import TransportSink
from kerbtrace.reassembly.defrag import Defragmenter
from kerbtrace.reassembly.tcp import TcpReassembler

_VLAN = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
_V6_EXT = frozenset({0, 43, 44, 51, 60})
_V6_FAMILIES = frozenset({10, 24, 28, 30})  # AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS
_MAX_DEPTH = 4  # nested tunnels followed at most
_FRAG_TIMEOUT = 60.0

LINKTYPE_NAMES = {
    0: "BSD loopback", 1: "Ethernet", 12: "raw IP", 14: "raw IP", 101: "raw IP", 108: "OpenBSD loopback",
    113: "Linux cooked (SLL)", 228: "IPv4", 229: "IPv6", 276: "Linux cooked v2 (SLL2)",
}


def _ip_str(raw: bytes) -> str:
    return socket.inet_ntoa(raw) if len(raw) == 4 else socket.inet_ntop(socket.AF_INET6, raw)


class NetworkLayer:
    """Feeds a TransportSink from raw frames; memory is bounded whatever the capture length."""

    def __init__(self, sink: TransportSink, diag: Diagnostics, *, max_tcp_conns: int = 50_000,
                 max_pending_bytes: int = 1 << 20, idle_timeout: float = 600.0,
                 max_fragment_sets: int = 4096) -> None:
        self.sink = sink
        self.diag = diag
        self.stats: dict[str, int] = Counter()
        self._udp_ports = frozenset(sink.udp_ports)
        self._watch = frozenset(getattr(sink, "watch_ports", ()))
        self._tcp = TcpReassembler(sink, diag, self.stats, max_conns=max_tcp_conns,
                                   max_pending_bytes=max_pending_bytes, idle_timeout=idle_timeout)
        self._ignored = self._tcp.ignored  # the same dict object for the life of the layer
        self._segment = self._tcp.segment
        self._frags = Defragmenter(diag, self.stats, max_sets=max_fragment_sets,
                                   max_bytes=8 * max_pending_bytes, timeout=min(_FRAG_TIMEOUT, idle_timeout))
        self._unsupported: dict[int, list[int]] = {}
        self._feed = self.feed = self._make_feed()  # type: ignore[method-assign]

    def next_sweep(self) -> float:
        """Capture time at which the connection table's housekeeping next falls due (for a prefilter that
        skips packets: it hands over a packet's time there, so the table ages exactly as over every packet)."""
        return self._tcp.next_sweep

    def dropping(self) -> TcpReassembler:
        """The connection table, logging the keys whose packets the hot path drops (`ignored_log`): a prefilter
        may skip those packets itself, as long as the log says they are still dropped."""
        tcp = self._tcp
        if tcp.ignored_log is None:
            tcp.ignored_log = []
        return tcp

    def skip_streams(self, count: int) -> None:
        """`count` TCP connections were skipped before they reached this layer (by a prefilter): the next
        connection's stream number still matches Wireshark's tcp.stream."""
        self._tcp.next_stream += count

    # -- frames ------------------------------------------------------------------------------------
    def feed(self, frame: int, time: float, linktype: int, data: bytes) -> None:
        """One captured frame. Never raises on bad input: problems become `diag` warnings.

        (Replaced per instance by the closure from `_make_feed`, which does the same with every
        name bound locally: this is the per-packet hot path.)"""
        self._feed(frame, time, linktype, data)

    def _make_feed(self):  # noqa: C901 - one flat function on purpose: calls cost more than tests
        tcp = self._tcp
        ignored = self._ignored
        ports = self._udp_ports
        vlan = _VLAN
        ip4, ip6, link, bad = self._ip4, self._ip6, self._link, self._undecodable
        segment = self._segment
        on_udp = self.sink.on_udp
        stats = self.stats
        ntoa = socket.inet_ntoa

        def feed(frame: int, time: float, linktype: int, data: bytes) -> None:
            if time >= tcp.next_sweep:
                tcp.sweep(time)
            try:
                # Untagged Ethernet + IPv4 without options, not a fragment: decided right here, and a
                # wanted segment or datagram whose IP length fits the frame goes straight to its
                # consumer (`_ip4`/`_l4` take every other case, and report what is wrong).
                n = len(data)
                if linktype == 1 and data[12:15] == b"\x08\x00\x45" and n >= 54 and not (
                        data[20] & 0x3F or data[21]):
                    proto = data[23]
                    if proto == 6:
                        key = data[26:38]
                        if key in ignored and data[47] & 0x12 != 0x02:
                            return
                        end = 14 + (data[16] << 8 | data[17])
                        if 34 <= end <= n:
                            segment(frame, time, key, data, 34, end)
                            return
                    elif proto == 17:
                        sport = data[34] << 8 | data[35]
                        dport = data[36] << 8 | data[37]
                        if sport not in ports and dport not in ports:
                            return
                        end = 14 + (data[16] << 8 | data[17])
                        if 42 <= end <= n:
                            ulen = data[38] << 8 | data[39]
                            stats["udp_datagrams"] += 1
                            on_udp(ntoa(data[26:30]), sport, ntoa(data[30:34]), dport,
                                   data[42:34 + ulen if 8 <= ulen <= end - 34 else end], frame, time)
                            return
                    ip4(frame, time, data, 14, 0)
                    return
                if linktype != 1:
                    link(frame, time, linktype, data)
                    return
                if n < 14:
                    return
                et = data[12] << 8 | data[13]
                o = 14
                while et in vlan and n >= o + 4:
                    et = data[o + 2] << 8 | data[o + 3]
                    o += 4
                if et == 0x0800:
                    ip4(frame, time, data, o, 0)
                elif et == 0x86DD:
                    ip6(frame, time, data, o, 0)
            except (IndexError, ValueError) as exc:  # a length check missed: report, never stop the run
                bad(frame, exc)

        return feed

    def _undecodable(self, frame: int, exc: Exception) -> None:
        self.stats["malformed_packets"] += 1
        self.diag.warn(frame, f"frame {frame}: packet could not be decoded ({exc}); skipped", "packet")

    def _link(self, frame: int, time: float, linktype: int, data: bytes) -> None:
        n = len(data)
        if linktype in (101, 12, 14):
            self._ip_any(frame, time, data, 0, 0)
        elif linktype == 113:
            if n >= 16:
                self._ethertype(frame, time, data[14] << 8 | data[15], data, 16, 0)
        elif linktype == 276:
            if n >= 20:
                self._ethertype(frame, time, data[0] << 8 | data[1], data, 20, 0)
        elif linktype == 228:
            self._ip4(frame, time, data, 0, 0)
        elif linktype == 229:
            self._ip6(frame, time, data, 0, 0)
        elif linktype == 0 or linktype == 108:
            if n >= 4:
                fam = int.from_bytes(data[:4], "big" if linktype == 108 else "little")
                if fam > 0xFFFF:
                    fam = int.from_bytes(data[:4], "big")  # written on a host of the other byte order
                if fam == 2:
                    self._ip4(frame, time, data, 4, 0)
                elif fam in _V6_FAMILIES:
                    self._ip6(frame, time, data, 4, 0)
        else:
            seen = self._unsupported.get(linktype)
            if seen is None:
                self._unsupported[linktype] = [frame, 1]
            else:
                seen[1] += 1

    def _ether(self, frame: int, time: float, data: bytes, depth: int) -> None:
        n = len(data)
        if n < 14:
            return
        et = data[12] << 8 | data[13]
        o = 14
        while et in _VLAN and n >= o + 4:
            et = data[o + 2] << 8 | data[o + 3]
            o += 4
        self._ethertype(frame, time, et, data, o, depth)

    def _ethertype(self, frame: int, time: float, et: int, data: bytes, o: int, depth: int) -> None:
        if et == 0x0800:
            self._ip4(frame, time, data, o, depth)
        elif et == 0x86DD:
            self._ip6(frame, time, data, o, depth)

    def _ip_any(self, frame: int, time: float, data: bytes, o: int, depth: int) -> None:
        if len(data) > o:
            version = data[o] >> 4
            if version == 4:
                self._ip4(frame, time, data, o, depth)
            elif version == 6:
                self._ip6(frame, time, data, o, depth)

    # -- IP ----------------------------------------------------------------------------------------
    def _ip4(self, frame: int, time: float, data: bytes, o: int, depth: int) -> None:
        n = len(data)
        if n < o + 20:
            self._malformed(frame, "IPv4 header cut short")
            return
        vihl = data[o]
        ihl = (vihl & 15) * 4
        if vihl >> 4 != 4 or ihl < 20 or n < o + ihl:
            self._malformed(frame, f"IPv4 header is invalid (version/length byte 0x{vihl:02x})")
            return
        total = data[o + 2] << 8 | data[o + 3]
        if total == 0:
            end = n  # segmentation offload: the capturing host left the length unset
        elif total < ihl:
            self._malformed(frame, f"IPv4 total length {total} is shorter than its header")
            return
        else:
            end = o + total  # Ethernet padding beyond the datagram is cut off here
        proto = data[o + 9]
        t = o + ihl
        if data[o + 6] & 0x3F or data[o + 7]:
            if end > n:
                return  # a cut-short fragment can never be reassembled; the set will time out
            ff = data[o + 6] << 8 | data[o + 7]
            key = data[o + 12:o + 20] + bytes((proto,)) + data[o + 4:o + 6]
            whole = self._frags.add(key, (ff & 0x1FFF) * 8, bool(ff & 0x2000), data[t:end], frame, time)
            if whole is not None:
                addrs = data[o + 12:o + 20]
                self._l4(frame, time, proto, addrs + whole, 8, 8 + len(whole), 0, 4, depth)
            return
        self._l4(frame, time, proto, data, t, end, o + 12, 4, depth)

    def _ip6(self, frame: int, time: float, data: bytes, o: int, depth: int) -> None:
        n = len(data)
        if n < o + 40 or data[o] >> 4 != 6:
            self._malformed(frame, "IPv6 header cut short or invalid")
            return
        plen = data[o + 4] << 8 | data[o + 5]
        end = o + 40 + plen if plen else n
        nh = data[o + 6]
        t = o + 40
        while nh in _V6_EXT:
            if t + 8 > min(end, n):
                self._malformed(frame, "IPv6 extension header cut short")
                return
            if nh == 44:
                ff = data[t + 2] << 8 | data[t + 3]
                inner = data[t]
                if ff & 0xFFF9:  # a real fragment (offset or more-fragments set)
                    if end > n:
                        return
                    key = data[o + 8:o + 40] + data[t + 4:t + 8]
                    whole = self._frags.add(key, ff & 0xFFF8, bool(ff & 1), data[t + 8:end], frame, time)
                    if whole is not None:
                        self._ip6_payload(frame, time, inner, data[o + 8:o + 40] + whole, 32, depth)
                    return
                nh, t = inner, t + 8
            elif nh == 51:
                nh, t = data[t], t + (data[t + 1] + 2) * 4
            else:
                nh, t = data[t], t + (data[t + 1] + 1) * 8
        self._l4(frame, time, nh, data, t, end, o + 8, 16, depth)

    def _ip6_payload(self, frame: int, time: float, nh: int, data: bytes, t: int, depth: int) -> None:
        """A reassembled IPv6 datagram (addresses at 0..32): skip extension headers after the fragment one."""
        end = len(data)
        while nh in _V6_EXT and nh != 44 and t + 8 <= end:
            step = (data[t + 1] + 2) * 4 if nh == 51 else (data[t + 1] + 1) * 8
            nh, t = data[t], t + step
        self._l4(frame, time, nh, data, t, end, 0, 16, depth)

    # -- transport ---------------------------------------------------------------------------------
    def _l4(self, frame: int, time: float, proto: int, data: bytes, t: int, end: int, a: int, alen: int,
            depth: int) -> None:
        """Transport header at data[t:end]; the source and destination addresses at data[a:a+2*alen]."""
        cut = end > len(data)
        if proto == 6:
            if t + 14 > len(data):
                self._malformed(frame, "TCP header cut short")
                return
            key = data[a:a + 2 * alen] + data[t:t + 4]
            if key in self._ignored and data[t + 13] & 0x12 != 0x02:
                return
            if cut:
                # Keep what was captured, as Wireshark does; the rest becomes a gap once it is acknowledged.
                self.stats["truncated_segments"] += 1
                self.diag.warn(frame, f"frame {frame}: TCP segment cut short by the capture ({len(data) - t} of "
                                      f"{end - t} bytes captured); the rest is reported as missing", "packet")
                end = len(data)
            self._segment(frame, time, key, data, t, end)
        elif proto == 17:
            if t + 8 > len(data):
                self._malformed(frame, "UDP header cut short")
                return
            sport = data[t] << 8 | data[t + 1]
            dport = data[t + 2] << 8 | data[t + 3]
            ports = self._udp_ports
            if sport not in ports and dport not in ports:
                return
            if cut:
                self._malformed(frame, f"UDP datagram cut short by the capture ({len(data) - t} of {end - t} "
                                       "bytes captured)")
                return
            ulen = data[t + 4] << 8 | data[t + 5]
            stop = t + ulen if 8 <= ulen <= end - t else end
            self.stats["udp_datagrams"] += 1
            self.sink.on_udp(_ip_str(data[a:a + alen]), sport, _ip_str(data[a + alen:a + 2 * alen]), dport,
                             data[t + 8:stop], frame, time)
        elif proto == 1 or proto == 58:
            if self._watch and t + 8 <= len(data) and data[t] == (3 if proto == 1 else 1):
                self._unreachable(frame, time, data, t, min(end, len(data)), a, alen, proto)
        elif depth < _MAX_DEPTH and not cut:
            if proto == 47:
                self._gre(frame, time, data, t, end, depth + 1)
            elif proto == 4:
                self._ip4(frame, time, data[t:end], 0, depth + 1)
            elif proto == 41:
                self._ip6(frame, time, data[t:end], 0, depth + 1)

    def _unreachable(self, frame: int, time: float, data: bytes, t: int, end: int, a: int, alen: int,
                     proto: int) -> None:
        """ICMP(v6) destination unreachable quoting a datagram or segment sent to a watched port."""
        q = t + 8  # the quoted packet follows the 8-byte ICMP header
        if proto == 1:
            if q + 20 > end or data[q] >> 4 != 4:
                return
            ihl = (data[q] & 15) * 4
            inner, src, dst, p = data[q + 9], data[q + 12:q + 16], data[q + 16:q + 20], q + ihl
        else:
            if q + 40 > end or data[q] >> 4 != 6:
                return
            inner, src, dst, p = data[q + 6], data[q + 8:q + 24], data[q + 24:q + 40], q + 40
        if inner not in (6, 17) or p + 4 > end:
            return
        sport = data[p] << 8 | data[p + 1]
        dport = data[p + 2] << 8 | data[p + 3]
        if dport in self._watch:
            reporter = _ip_str(data[a:a + alen])
            how = f"ICMP destination unreachable (code {data[t + 1]}) from {reporter}"
            self.sink.on_connect_failed(_ip_str(src), sport, _ip_str(dst), dport, "tcp" if inner == 6 else "udp",
                                        how, frame, time)

    def _gre(self, frame: int, time: float, data: bytes, t: int, end: int, depth: int) -> None:
        """GRE, including ERSPAN type I/II/III mirror sessions, down to the inner frame."""
        if t + 4 > end:
            return
        flags = data[t]
        if data[t + 1] & 7 or flags & 0x40:  # version 1 (PPTP) or source routing: not followed
            return
        ptype = data[t + 2] << 8 | data[t + 3]
        inner = t + 4 + (4 if flags & 0x80 else 0) + (4 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        if ptype == 0x88BE and flags & 0x10:
            inner += 8  # ERSPAN type II header (type I has none and no sequence number)
        elif ptype == 0x22EB:
            if inner + 12 > end:
                return
            inner += 20 if data[inner + 11] & 1 else 12  # type III, optional platform sub-header
        if inner >= end:
            return
        if ptype in (0x6558, 0x88BE, 0x22EB):
            self._ether(frame, time, data[inner:end], depth)
        elif ptype == 0x0800:
            self._ip4(frame, time, data[inner:end], 0, depth)
        elif ptype == 0x86DD:
            self._ip6(frame, time, data[inner:end], 0, depth)

    # -- housekeeping ------------------------------------------------------------------------------
    def flush(self) -> None:
        """End of input: deliver what waits, close every connection, report unsupported link types."""
        self._tcp.flush()
        self._frags.flush()
        for linktype, (first, count) in sorted(self._unsupported.items()):
            self.stats["unsupported_link_frames"] += count
            if linktype >= 0x10000:
                what = f"NetMon media type 0x{linktype - 0x10000:04x}"
            else:
                what = f"link type {linktype}"
            self.diag.warn(first, f"{what} is not supported; its {count} frames were skipped "
                                  f"(the first is frame {first})", "link")
        self._unsupported.clear()

    def _malformed(self, frame: int, what: str) -> None:
        self.stats["malformed_packets"] += 1
        self.diag.warn(frame, f"frame {frame}: {what}; packet skipped", "packet")
