"""Skip the packets that cannot matter at C speed: libpcap reads the records, numpy classifies them.

About 90 % of an MP capture is traffic the analysis drops at once (SMB, SQL, TLS to other servers, NetBIOS,
UDP on other ports). The pure-Python reader spends most of its time reading and dropping those packets one
by one. Here libpcap (through pcapy-ng, a maintained binding; its `next_batch` hands over thousands of
records per call) reads the file, and each batch is classified with numpy array operations; Python sees only
the packets that the network layer would not drop, with their Wireshark frame numbers and the same
timestamps as the pure-Python readers.

What always reaches the analysis (a superset of what `reassembly/network.py` keeps):
- every packet that is not untagged Ethernet + IPv4 without options, TCP or UDP (IPv6, VLAN, tunnels,
  ICMP, other link types), every IP fragment, and every packet whose lengths look wrong (so the same
  warnings are given);
- UDP on the pipeline's ports (Kerberos 88, DNS 53);
- TCP with either port among the pipeline's (88, 53, the HTTP and TLS ports);
- every packet of a TCP connection on other ports one of whose segments starts like HTTP (a request or
  status line) or a TLS handshake record: a first pass over the file collects these connections, so an MP
  on an unusual port is found before its connection's first packet.

A dropped TCP connection is one the network layer would have ignored after its first payload; the only
traces it would have left are counters, TCP stream numbers and pressure on the connection table. The
connection table's idle sweep runs at the times of the packets that reach it, so a connection idle for
about the idle timeout (10 minutes) may be closed a little later or earlier than by the pure-Python path.

Where libpcap cannot stand in exactly (gzip, NetMon, nanosecond pcap, pcapng with several link types or
clocks other than microseconds, any read error), `records` returns None and the pure-Python reader is used.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from kerbtrace.ownership import owners_ipv4
from kerbtrace.sources import pcapng

if TYPE_CHECKING:
    from kerbtrace.sources import Capture

#: Records per libpcap call: large enough that the call costs nothing per packet, small enough for the cache.
BATCH = 8192
#: KERBTRACE_PREFILTER=1 turns the prefilter on. Off by default: on the benchmark's MP mixes it keeps about
#: 40 % of the records (TLS on 443 must reach the analysis for HTTPS MPs) and then costs more CPU than it
#: saves (docs/benchmarks.md); it pays where the share it keeps is small.
ENABLED = os.environ.get("KERBTRACE_PREFILTER", "0") == "1"

_ETHERNET = 1
MAX_SKIPPED_SYNS = 1 << 18
_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MAX_METHOD = 32  # decoders/http.py: a request line's method is at most this long
_WINDOW = _MAX_METHOD + 1

# numpy and pcapy-ng are imported on first use (0.1 s that a run without the prefilter does not pay).
np = None
pcapy = None
_HTTP_TOKEN = None
_HASH = None


def available() -> bool:
    """numpy and pcapy-ng import (loading them now); False without the binding."""
    global np, pcapy, _HTTP_TOKEN, _HASH  # noqa: PLW0603 - loaded once, on first use
    if pcapy is None:
        try:
            import numpy
            import pcapy as binding
        except ImportError:  # pragma: no cover - both are declared dependencies
            return False
        np, pcapy = numpy, binding
        _HTTP_TOKEN = np.zeros(256, dtype=bool)
        _HTTP_TOKEN[list(_TOKEN_CHARS)] = True
        _HASH = np.uint64(0x9E3779B97F4A7C15)
    return True


def _port_table(ports: Iterable[int]) -> np.ndarray:
    table = np.zeros(65536, dtype=bool)
    table[list(ports)] = True
    return table


class Prefilter:
    """The classification of one file's records: what the network layer needs, and nothing it would drop."""

    def __init__(self, udp_ports: Iterable[int], tcp_ports: Iterable[int],
                 partition: tuple[int, int] | None = None) -> None:
        self.udp = _port_table(udp_ports)
        self.tcp = _port_table(tcp_ports)
        self.partition = partition  # (part, parts) of a run partitioned by client: skip the others' packets
        self.connections = np.zeros(0, dtype=np.uint64)  # hashed keys of TCP connections to keep
        self.skipped = np.zeros(0, dtype=np.uint64)  # hashed keys of TCP connections skipped so far
        self.isn: dict[int, int] = {}  # initial sequence of the last SYN of a skipped connection

    # -- per batch -------------------------------------------------------------------------------------
    def _fields(self, data: np.ndarray, meta: np.ndarray):
        """(simple, proto, sport, dport, payload offset, payload length, connection key) of each record;
        `simple` marks untagged Ethernet + IPv4 without options, not a fragment, lengths consistent."""
        off = meta[:, 2].astype(np.int64)
        caplen = meta[:, 3].astype(np.int64)
        long_enough = caplen >= 54
        o = np.where(long_enough, off, 0)  # short records read harmless bytes, and are kept below

        def at(k: int) -> np.ndarray:
            return data[o + k]

        def word(k: int) -> np.ndarray:
            return data[o + k].astype(np.int64) << 8 | data[o + k + 1]

        iplen = word(16)
        # 0: segmentation offload, the frame holds the packet; longer than the frame: cut by the snap length,
        # read as far as captured (a segment of an ignored connection cut short is dropped without a word)
        end = np.where(iplen == 0, caplen, np.minimum(14 + iplen, caplen))
        simple = (long_enough & (at(12) == 8) & (at(13) == 0) & (at(14) == 0x45) & ((at(20) & 0x3F) == 0)
                  & (at(21) == 0) & ((iplen == 0) | (iplen >= 28)))
        proto = at(23)
        sport, dport = word(34), word(36)
        thl = (at(46) >> 4).astype(np.int64) * 4
        tcp = simple & (proto == 6)
        simple &= ~tcp | ((thl >= 20) & (34 + thl <= end))  # a bad TCP header goes to the analysis
        start = off + 34 + thl
        plen = np.where(tcp & simple, end - 34 - thl, 0)
        a = (word(26) << 32 | word(28) << 16 | sport).astype(np.uint64)
        b = (word(30) << 32 | word(32) << 16 | dport).astype(np.uint64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = lo * _HASH ^ hi  # collisions only keep a connection more: harmless
        self._syn = (at(47) & 0x12) == 0x02
        self._addresses = (a >> np.uint64(16), b >> np.uint64(16))
        self._seq = word(38) << 16 | word(40)
        return simple, proto, sport, dport, start, plen, key

    def learn(self, data: np.ndarray, meta: np.ndarray) -> None:
        """First pass: remember TCP connections on other ports whose segments start like HTTP or TLS."""
        simple, proto, sport, dport, start, plen, key = self._fields(data, meta)
        cand = np.flatnonzero(simple & (proto == 6) & (plen > 0) & ~self.tcp[sport] & ~self.tcp[dport])
        if not len(cand):
            return
        s, n = start[cand], plen[cand]
        window = data[np.minimum(s[:, None] + np.arange(_WINDOW), len(data) - 1)]
        inside = np.arange(_WINDOW) < n[:, None]
        window = np.where(inside, window, 0)
        tls = (window[:, 0] == 0x16) & (window[:, 1] == 3) & (window[:, 2] <= 4)
        token = _HTTP_TOKEN[window]
        first_other = np.argmin(token, axis=1)  # first byte that is not a token character (0 bytes pad)
        request = (first_other >= 1) & (window[np.arange(len(cand)), first_other] == 0x20)
        status = np.all(window[:, :7] == np.frombuffer(b"HTTP/1.", dtype=np.uint8), axis=1)
        found = key[cand[tls | request | status]]
        if len(found):
            self.connections = np.union1d(self.connections, found)

    def keep(self, data: np.ndarray, meta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Second pass: indices (in the batch) of the records the analysis must see, and for each record
        how many TCP stream numbers the skipped connections took before it (one more entry: the batch's total)."""
        simple, proto, sport, dport, _start, _plen, key = self._fields(data, meta)
        udp = proto == 17
        tcp = proto == 6
        wanted = ~simple | ~(udp | tcp)
        wanted |= udp & (self.udp[sport] | self.udp[dport])
        tcp_wanted = tcp & (self.tcp[sport] | self.tcp[dport])
        if len(self.connections):
            tcp_wanted |= tcp & np.isin(key, self.connections)
        keep = wanted | tcp_wanted
        if self.partition is not None:
            keep &= ~(simple & (udp | tcp)) | self._owned(sport, dport, udp)
        return np.flatnonzero(keep), self._streams(simple & tcp & ~keep, key)

    def _owned(self, sport: np.ndarray, dport: np.ndarray, udp: np.ndarray) -> np.ndarray:
        """Records of a run partitioned by client that this part may need (`ownership.client_of`): the client
        is the side not on a server port; when both or neither side is, either side's owner keeps it (the
        pipeline decides exactly)."""
        part, parts = self.partition  # type: ignore[misc]
        src, dst = (owners_ipv4(x, parts) == part for x in self._addresses)
        src_server = np.where(udp, self.udp[sport], self.tcp[sport])
        dst_server = np.where(udp, self.udp[dport], self.tcp[dport])
        return np.where(src_server != dst_server, np.where(src_server, dst, src), src | dst)

    def _streams(self, skipped: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Stream numbers the reassembler would have given the skipped connections (Wireshark's tcp.stream:
        one per connection in order of first appearance, and one more for a SYN with a new initial sequence
        on the same addresses and ports), counted before each record of the batch."""
        opens = np.zeros(len(key) + 1, dtype=np.int64)
        idx = np.flatnonzero(skipped)
        if len(idx):
            keys, first = np.unique(key[idx], return_index=True)
            new = ~np.isin(keys, self.skipped, assume_unique=True)
            opens[idx[first[new]] + 1] = 1
            self.skipped = np.union1d(self.skipped, keys[new])
            isn = self.isn
            syn = idx[self._syn[idx]]
            for j, k, seq in zip(*(a.tolist() for a in (syn, key[syn], self._seq[syn])), strict=True):
                before = isn.get(k)
                if before is not None and before != seq:
                    opens[j + 1] = 1
                isn[k] = seq
            if len(isn) > MAX_SKIPPED_SYNS:  # a SYN flood: forget the oldest half (their retries count once more)
                for k in list(isn)[:len(isn) // 2]:
                    del isn[k]
        return np.cumsum(opens)


def _batches(path: str) -> Iterator[tuple[bytes, np.ndarray, np.ndarray]]:
    """(packet bytes, the same as an array, records [sec, usec, offset, caplen]) per libpcap batch;
    PcapError on a file libpcap cannot read to its end."""
    reader = pcapy.open_offline(path)
    try:
        while True:
            raw, meta = reader.next_batch(BATCH)
            if not len(meta):
                return
            yield raw, np.frombuffer(raw, dtype=np.uint8), np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4)
    finally:
        reader.close()


def _clock(capture: Capture) -> str | None:
    """How the pure-Python reader computes a packet's time ("pcap" or "pcapng"), or None when libpcap's
    microsecond times would not give exactly the same floats."""
    fmt = capture.format
    if fmt == "pcap":
        return "pcap"
    if fmt != "pcapng":
        return None
    # Every interface described before the first packet: one link type, microseconds, no offset.
    with open(capture.path, "rb") as f:
        head = f.read(1 << 16)
    pos, kinds = 0, set()
    while pos + 12 <= len(head):
        endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack_from(endian + "II", head, pos)
        if blen < 12 or pos + blen > len(head) or btype in (2, 3, 6):
            break
        if btype == 1:
            kinds.add(pcapng._interface(head, pos + 8, pos + blen - 4, endian))
        pos += blen
    if len({k[0] for k in kinds}) != 1 or any(k[1] != 1_000_000 or k[2] for k in kinds):
        return None
    return "pcapng"


def records(capture: Capture, udp_ports: Iterable[int], tcp_ports: Iterable[int], *,
            due: Callable[[], float] | None = None, every: int = 0, streams: Callable[[int], None] | None = None,
            partition: tuple[int, int] | None = None) -> Iterator[tuple[int, float, int, bytes]] | None:
    """The records of `capture` the analysis needs, as (frame, time, linktype, data) like `iter(capture)`,
    or None when this file must be read by the pure-Python reader. Reads the file twice (libpcap is fast
    enough that a first pass to find HTTP/TLS on unusual ports costs little).

    So that the analysis runs exactly as over every record, a skipped record comes through with empty data
    when `due()` (the capture time of the connection table's next housekeeping) has come, and when its
    frame number is a multiple of `every` (the caller's progress tick); empty data is dropped at once.
    `partition` (part, parts): this process analyses one part of the clients, the others' packets are skipped."""
    if not ENABLED or not available():
        return None
    clock = _clock(capture)
    if clock is None:
        return None
    flt = Prefilter(udp_ports, tcp_ports, partition)
    try:
        reader = pcapy.open_offline(capture.path)
        linktype = reader.datalink()
        reader.close()
        for _raw, data, meta in _batches(capture.path):
            if linktype == _ETHERNET:
                flt.learn(data, meta)
    except pcapy.PcapError:
        return None  # the pure-Python reader reads what it can and says where the file is damaged
    capture._iterated = True
    return _second_pass(capture, flt, linktype, clock, due or (lambda: float("inf")), every,
                        streams or (lambda n: None))


def _second_pass(capture: Capture, flt: Prefilter, linktype: int, clock: str, due: Callable[[], float],
                 every: int, streams: Callable[[int], None]) -> Iterator[tuple[int, float, int, bytes]]:
    frame = 0
    given = 0  # stream numbers taken by skipped connections in earlier batches and handed over
    try:
        for blob, data, meta in _batches(capture.path):
            times = _times(clock, meta)
            if frame == 0:
                capture.start = float(times[0])
            n = len(meta)
            wanted = np.ones(n, dtype=bool)
            keep = np.arange(n)
            opened = np.zeros(n + 1, dtype=np.int64)
            if linktype == _ETHERNET:
                keep, opened = flt.keep(data, meta)
                wanted[:] = False
                wanted[keep] = True
            owed = opened.tolist()
            if every:  # the caller's tick follows these frame numbers: they come through, empty if skipped
                keep = np.union1d(keep, np.arange(every - frame % every - 1, n, every))
            latest = np.maximum.accumulate(times)
            cur = 0
            for i, (sec, usec, off, caplen), real in zip(keep.tolist(), meta[keep].tolist(), wanted[keep].tolist(),
                                                         strict=True):
                # skipped records before this one at which the connection table's housekeeping fell due
                if i > cur:
                    yield from _due(frame, times, latest, cur, i, due, linktype)
                cur = i + 1
                if owed[i] != given:
                    streams(owed[i] - given)
                    given = owed[i]
                yield frame + i + 1, _time(clock, sec, usec), linktype, blob[off:off + caplen] if real else b""
            if n > cur:
                yield from _due(frame, times, latest, cur, n, due, linktype)
            streams(owed[n] - given)
            given = 0
            frame += n
            capture.packets = frame
            capture.end = float(times[-1])
    finally:
        capture.packets = frame


def _due(frame: int, times: np.ndarray, latest: np.ndarray, lo: int, hi: int, due: Callable[[], float],
         linktype: int) -> Iterator[tuple[int, float, int, bytes]]:
    """Empty records for the skipped records lo..hi-1 of a batch at which housekeeping falls due."""
    while lo < hi:
        when = due()
        if latest[hi - 1] < when:
            return
        hit = np.flatnonzero(times[lo:hi] >= when)
        if not len(hit):
            return
        j = lo + int(hit[0])
        yield frame + j + 1, float(times[j]), linktype, b""
        lo = j + 1


def _times(clock: str, meta: np.ndarray) -> np.ndarray:
    """Each record's time as the float the pure-Python reader computes (pcap.py / pcapng.py)."""
    sec = meta[:, 0].astype(np.float64)
    usec = meta[:, 1].astype(np.float64)
    if clock == "pcap":
        return sec + usec * 1e-6
    return (meta[:, 0].astype(np.int64) * 1_000_000 + meta[:, 1]).astype(np.float64) / 1_000_000


def _time(clock: str, sec: int, usec: int) -> float:
    """The float the pure-Python reader computes for this record (pcap.py / pcapng.py)."""
    if clock == "pcap":
        return sec + usec * 1e-6
    return (sec * 1_000_000 + usec) / 1_000_000
