"""Skip the packets that cannot matter at C speed: libpcap reads the records, numpy classifies them.

About 90 % of an MP capture is traffic the analysis drops at once (SMB, SQL, TLS to other servers, NetBIOS,
UDP on other ports). The pure-Python reader spends most of its time reading and dropping those packets one
by one. Here libpcap (through pcapy-ng, a maintained binding; its `next_batch` hands over thousands of
records per call) reads the file, and each batch is classified with numpy array operations; Python sees only
the packets that the network layer would not drop, with their Wireshark frame numbers and the same
timestamps as the pure-Python readers.

Skipped, because the network layer drops them at its first look without a trace:
- UDP on ports other than the pipeline's (Kerberos 88, DNS 53), in untagged Ethernet + IPv4 without
  options, not a fragment;
- TCP in the same framing whose connection the connection table already ignores (`TcpReassembler.ignored`:
  connections not wanted after their first payload, TLS once the handshake was read, closed ones), except
  a SYN, which starts a new connection. The table logs the keys entering and leaving that set
  (`NetworkLayer.dropping`); the prefilter follows the log batch by batch, skips a connection's records
  up to its next SYN in the batch, and stops skipping for the rest of a batch when the table's two
  generations turn (an old key is renewed by its next packet: not without a trace).

Everything else reaches the analysis: every other link type and framing (IPv6, VLAN, tunnels, ICMP), IP
fragments, packets whose lengths look wrong (so the same warnings are given), and every TCP packet until the
connection table has decided to ignore its connection, whatever the ports (HTTP on an unusual port is found
by its content, as without the prefilter). Skipped records at which the table's housekeeping falls due, or
whose frame number is the caller's progress tick, come through with empty data. So the analysis runs exactly
as over every record: same stream numbers, same table, same sweeps.

On by default for files of at least 128 MiB (`MIN_BYTES`; `KERBTRACE_PREFILTER=1` for every file, `=0` for
none). Where libpcap cannot stand in exactly (gzip, NetMon, nanosecond pcap, pcapng with several link types or
clocks other than microseconds), `records` returns None and the pure-Python reader is used; where libpcap
stops on damage, the pure-Python reader takes over from that record on and names the frame.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kerbtrace.ownership import owners_ipv4
from kerbtrace.sources import pcapng

if TYPE_CHECKING:
    from kerbtrace.reassembly.tcp import TcpReassembler
    from kerbtrace.sources import Capture

#: Records per libpcap call: large enough that the call costs nothing per packet, small enough for the cache.
BATCH = 8192
#: The first call's records: the connections the table ignores are learnt batch by batch, and at the start
#: of a capture every connection is new, so batches grow from this size to BATCH.
FIRST_BATCH = 512
#: KERBTRACE_PREFILTER=1: the prefilter reads every file it can; =0: none; unset (None): files of at least
#: MIN_BYTES, where what it saves exceeds the 0.09 s that importing numpy and pcapy-ng costs (docs/benchmarks.md).
ENABLED: bool | None = {"1": True, "0": False}.get(os.environ.get("KERBTRACE_PREFILTER", ""))
MIN_BYTES = 128 << 20

_ETHERNET = 1
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MAX_SKIPPED_SYNS = 1 << 18
#: More MP names than this (a flood of Host headers): DNS is no longer skipped, the label test would cost more.
MAX_MP_LABELS = 256

# numpy and pcapy-ng are imported on first use (0.1 s that a run without the prefilter does not pay).
np = None
pcapy = None
_HASH = None


def available() -> bool:
    """numpy and pcapy-ng import (loading them now); False without the binding."""
    global np, pcapy, _HASH  # noqa: PLW0603 - loaded once, on first use
    if pcapy is None:
        try:
            import numpy
            import pcapy as binding
        except ImportError:  # pragma: no cover - both are declared dependencies
            return False
        np, pcapy = numpy, binding
        _HASH = np.uint64(0x9E3779B97F4A7C15)
        _fixed_mmap_threshold()
    return True


def _fixed_mmap_threshold() -> None:
    """Blocks of 4 MiB and more straight from the system and back to it when freed; up to 8 MiB free at the
    top of the heap kept for the next batch. glibc otherwise raises both thresholds with every large block
    freed (to 32 and 64 MiB at most) and then keeps that much in the heap: the first pass's 12 MB flow-head
    table (`askers`), once freed, raised them so, and the peak RSS of `dense` 1 GB went from 169 to 185 MB (191
    to 200 MB with two processes). Fixed, it is 173 MB (196), and `office` 1 GB 160 MB instead of 170. Lower
    thresholds (128 KiB, glibc's initial one) cost more memory calls than they save (about 1 s of system time
    on 1 GB; docs/benchmarks.md). Nothing happens on another C library."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return
    except (ValueError, OSError, AttributeError):  # not a GNU system
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 4 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 8 << 20)
    except (OSError, AttributeError):  # pragma: no cover - a libc without mallopt
        pass


@dataclass(slots=True)
class QuietDns:
    """What skipping the DNS messages that cannot matter needs (`Prefilter._dns`)."""

    askers: np.ndarray  # sorted uint64: the IPv4 addresses that may become clients (`askers.may_become_clients`)
    labels: Callable[[], Collection[str]]  # the first labels of the MP names known now (grows; its size is checked)
    skipped: Callable[[int, float], None]  # messages skipped, and the latest time among them: counted as read


def udp_payload(u2: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(end of the IP packet, size of the UDP payload) of untagged Ethernet + IPv4 records without options at
    offsets `o` (`u2`: big-endian 16-bit view of the batch), as the network layer's hot path reads them: the
    UDP length where it fits the IP packet, else up to the IP packet's end."""
    end = 14 + u2[o + 16].astype(np.int64)
    ulen = u2[o + 38].astype(np.int64)
    return end, np.where((ulen >= 8) & (ulen <= end - 34), ulen - 8, end - 42)


def _port_table(ports: Iterable[int]) -> np.ndarray:
    table = np.zeros(65536, dtype=bool)
    table[list(ports)] = True
    return table


class Prefilter:
    """The classification of one file's records: what the network layer needs, and nothing it would drop."""

    def __init__(self, udp_ports: Iterable[int], partition: tuple[int, int] | None = None,
                 quiet_dns: QuietDns | None = None) -> None:
        self.udp = _port_table(udp_ports)
        self.partition = partition  # (part, parts) of a run partitioned by client: skip the others' UDP
        self.quiet_dns = quiet_dns
        self.skipped = np.zeros(0, dtype=np.uint64)  # hashed keys of TCP connections skipped so far
        self.isn: dict[int, int] = {}  # initial sequence of the last SYN of a skipped connection
        self.dropped = _Dropped()  # the connection table's `ignored` generation (directional IPv4 keys)

    # -- per batch -------------------------------------------------------------------------------------
    def _fields(self, data: np.ndarray, meta: np.ndarray):
        """(simple, proto, sport, dport, connection key) of each record; `simple` marks untagged Ethernet +
        IPv4 without options, not a fragment, IP length 0 (segmentation offload) or at least 28: records
        the network layer's hot path decides on (network.py `feed`), by their ports or connection key."""
        caplen = meta[:, 3].astype(np.int64)
        long_enough = caplen >= 54
        o = np.where(long_enough, meta[:, 2].astype(np.int64), 0)  # short records read harmless bytes, kept
        # Big-endian 16- and 32-bit fields at any byte offset: overlapping views of the batch (stride 1 byte).
        u2 = np.ndarray((len(data) - 1,), ">u2", data, 0, (1,))
        u4 = np.ndarray((len(data) - 3,), ">u4", data, 0, (1,))
        self._data, self._u2, self._o, self._caplen = data, u2, o, caplen
        iplen = u2[o + 16]
        flags = u4[o + 20]  # fragment bits, TTL, protocol
        simple = (long_enough & ((u4[o + 12] & 0xFFFFFF00) == 0x08004500) & ((flags & 0x3FFF0000) == 0)
                  & ((iplen == 0) | (iplen >= 28)))
        proto = flags & 0xFF
        ports = u4[o + 34]
        sport, dport = ports >> 16, ports & 0xFFFF
        a = u4[o + 26].astype(np.uint64) << 16 | sport
        b = u4[o + 30].astype(np.uint64) << 16 | dport
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = lo * _HASH ^ hi  # one per connection, both directions; collisions only keep records: harmless
        self._a, self._b = a, b
        self._syn = (data[o + 47] & 0x12) == 0x02
        self._seq = u4[o + 38]
        return simple, proto, sport, dport, key

    def keep(self, data: np.ndarray, meta: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """A mask of the records the analysis must see, a mask of those among them that the connection table
        drops anyway (`quiet`: skipped while the table's generations stand), for each record how many TCP
        stream numbers skipped connections took before it (one more entry: the batch's total), and a mask of
        the DNS messages among them that cannot matter (`QuietDns`: skipped while the MP names stand; None
        when none is)."""
        if len(data) < 64:  # a batch of short records only: the fields read a little past them
            data = np.concatenate((data, np.zeros(64, dtype=np.uint8)))
        simple, proto, sport, dport, key = self._fields(data, meta)
        tcp = simple & (proto == 6)
        udp = simple & (proto == 17)
        keep = ~udp | self.udp[sport] | self.udp[dport]
        if self.partition is not None:
            keep &= ~udp | self._owned(sport, dport)
        # No TCP connection is skipped before the connection table has seen it: the table decides what it
        # ignores (by the first payload's content on any port). A mask that skips whole connections passes
        # their records to `_streams`, so that the stream numbers of the others still match Wireshark's.
        dns = self._dns(keep & udp, sport, dport) if self.quiet_dns is not None else None
        return keep, self._quiet(tcp, key), self._streams(tcp & ~keep, key), dns

    def _dns(self, udp: np.ndarray, sport: np.ndarray, dport: np.ndarray) -> np.ndarray | None:
        """DNS messages the pipeline would only hand to the correlator's per-address memory of an address that
        never becomes a client (`DnsPairing`: a successful answer whose first label is neither a locator's nor
        a known MP's, and its query): neither port 88, exactly one port 53, read by the hot path (the IP
        length fits the record), a question whose first label lies in the message, the asker (the sender of a
        query, the receiver of a response) not listed by `askers.may_become_clients`."""
        qd = self.quiet_dns
        labels = qd.labels()
        if len(labels) > MAX_MP_LABELS or not all(label.isascii() for label in labels):
            return None
        one = (sport == 53) != (dport == 53)
        idx = np.flatnonzero(udp & one & (sport != 88) & (dport != 88) & (self._caplen >= 56))
        if not len(idx):
            return None
        data, u2, o = self._data, self._u2, self._o[idx]
        end, size = udp_payload(u2, o)
        flags = data[o + 44]
        response = flags >= 0x80
        label = data[o + 54].astype(np.int64)
        ok = ((end >= 42) & (end <= self._caplen[idx]) & (u2[o + 46] > 0) & (label >= 1) & (label <= 63)
              & (size >= 13 + label) & (data[o + 55] != 0x5F)  # "_": a locator record
              & (~response | (((data[o + 45] & 0x0F) == 0) & (u2[o + 48] > 0))))
        asker = np.where(response, self._b[idx], self._a[idx]) >> np.uint64(16)
        listed = qd.askers
        if len(listed):
            j = np.minimum(np.searchsorted(listed, asker), len(listed) - 1)
            ok &= listed[j] != asker
        for name in labels:  # a known MP's first label: decoded, it teaches the MP's address
            size_ok = np.flatnonzero(ok & (label == len(name)))
            if len(size_ok) and name:
                at = o[size_ok, None] + 55 + np.arange(len(name))
                text = data[at]
                text = np.where((text >= 0x41) & (text <= 0x5A), text | 0x20, text)
                ok[size_ok[(text == np.frombuffer(name.encode(), dtype=np.uint8)).all(axis=1)]] = False
        out = np.zeros(len(udp), dtype=bool)
        out[idx[ok]] = True
        return out if ok.any() else None

    def _quiet(self, tcp: np.ndarray, key: np.ndarray) -> np.ndarray:
        """TCP records whose directional key is in the connection table's `ignored` generation and that the
        hot path therefore drops at its first lookup (network.py: ignored and not a SYN): every such record
        before the pair's first SYN in the batch (a SYN starts a new connection on the same ports)."""
        quiet = np.zeros(len(key), dtype=bool)
        idx = np.flatnonzero(tcp)
        if not len(idx) or not self.dropped.size:
            return quiet
        cand = idx[self.dropped.contains(self._a[idx], self._b[idx])]
        syn = idx[self._syn[idx]]
        if len(syn) and len(cand):
            pairs, first = np.unique(key[syn], return_index=True)
            j = np.minimum(np.searchsorted(pairs, key[cand]), len(pairs) - 1)
            cand = cand[(pairs[j] != key[cand]) | (cand < syn[first][j])]
        quiet[cand] = True
        return quiet

    def _owned(self, sport: np.ndarray, dport: np.ndarray) -> np.ndarray:
        """Datagrams of a run partitioned by client that this part may need (`ownership.client_of`): the client
        is the side not on a server port; when both or neither side is, either side's owner keeps it (the
        pipeline decides exactly)."""
        part, parts = self.partition  # type: ignore[misc]
        src, dst = (owners_ipv4(x >> np.uint64(16), parts) == part for x in (self._a, self._b))
        src_server, dst_server = self.udp[sport], self.udp[dport]
        return np.where(src_server != dst_server, np.where(src_server, dst, src), src | dst)

    def _streams(self, skipped: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Stream numbers the reassembler would have given the skipped connections (Wireshark's tcp.stream:
        one per connection in order of first appearance, and one more for a SYN with a new initial sequence
        on the same addresses and ports), counted before each record of the batch."""
        opens = np.zeros(len(key) + 1, dtype=np.int64)
        idx = np.flatnonzero(skipped)
        if len(idx):
            keys, first = np.unique(key[idx], return_index=True)
            known = self.skipped
            if len(known):
                j = np.minimum(np.searchsorted(known, keys), len(known) - 1)
                new = known[j] != keys
            else:
                new = np.ones(len(keys), dtype=bool)
            if new.any():
                opens[idx[first[new]] + 1] = 1
                self.skipped = np.union1d(known, keys[new])
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


class _Dropped:
    """The connection table's `ignored` generation as directional IPv4 keys (address << 16 | port of each
    side), looked up a batch at a time: a large sorted part and a small recent one, merged when the recent
    one grows, so following the table costs a sort of what changed, not of everything."""

    def __init__(self) -> None:
        self.keys: dict[bytes, None] = {}  # the table's 12-byte keys (source, destination, ports)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (hash, a, b), sorted by hash
        self.size = 0

    def apply(self, log: list[tuple[bytes | None, bool]]) -> None:
        """Follow the table's changes since the last call (its `ignored_log`, which this empties)."""
        keys = self.keys
        added: list[bytes] = []
        removed = False
        for key, present in log:
            if key is None:  # the generations turned: nothing is dropped without a trace any more
                keys.clear()
                added.clear()
                self._parts = []
            elif len(key) == 12:
                if present:
                    if key not in keys:
                        keys[key] = None
                        added.append(key)
                elif keys.pop(key, 0) is None:
                    removed = True
        log.clear()
        if removed:
            self._parts = [_sorted_keys(list(keys))] if keys else []
        elif added:
            recent = _sorted_keys(added)
            if len(self._parts) == 2:
                big, small = self._parts
                if len(small[0]) + len(added) > max(1024, len(big[0]) // 4):
                    self._parts = [_merge(big, _merge(small, recent))]
                else:
                    self._parts = [big, _merge(small, recent)]
            else:
                self._parts.append(recent)
        self.size = len(keys)

    def contains(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Which (a, b) keys are in the set (exactly: a hash match is confirmed on both halves)."""
        # A batch holds few connections: each distinct hash is looked up once (a sort of the batch is cheaper
        # than a binary search per record into a large set), then every record is confirmed on its own key.
        hashes, each = np.unique(a * _HASH ^ b, return_inverse=True)
        found = np.zeros(len(a), dtype=bool)
        for ph, pa, pb in self._parts:
            j = np.minimum(np.searchsorted(ph, hashes), len(ph) - 1)[each]
            found |= (ph[j] == hashes[each]) & (pa[j] == a) & (pb[j] == b)
        return found


def _sorted_keys(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 12).astype(np.uint64)
    a = r[:, 0] << 40 | r[:, 1] << 32 | r[:, 2] << 24 | r[:, 3] << 16 | r[:, 8] << 8 | r[:, 9]
    b = r[:, 4] << 40 | r[:, 5] << 32 | r[:, 6] << 24 | r[:, 7] << 16 | r[:, 10] << 8 | r[:, 11]
    h = a * _HASH ^ b
    order = np.argsort(h, kind="stable")
    return h[order], a[order], b[order]


def _merge(x: tuple[np.ndarray, ...], y: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, a, b = (np.concatenate((p, q)) for p, q in zip(x, y, strict=True))
    order = np.argsort(h, kind="stable")
    return h[order], a[order], b[order]


def _batches(path: str) -> Iterator[tuple[bytes, np.ndarray, np.ndarray]]:
    """(packet bytes, the same as an array, records [sec, usec, offset, caplen]) per libpcap batch;
    PcapError on a file libpcap cannot read to its end."""
    reader = pcapy.open_offline(path)
    size = FIRST_BATCH
    try:
        while True:
            raw, meta = reader.next_batch(size)
            size = min(2 * size, BATCH)
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


def records(capture: Capture, udp_ports: Iterable[int], *, due: Callable[[], float] | None = None,
            every: int = 0, streams: Callable[[int], None] | None = None,
            dropping: Callable[[], TcpReassembler] | None = None,
            partition: tuple[int, int] | None = None, quiet_dns: Callable[[], QuietDns | None] | None = None
            ) -> Iterator[tuple[int, float, int, bytes]] | None:
    """The records of `capture` the analysis needs, as (frame, time, linktype, data) like `iter(capture)`,
    or None when this file must be read by the pure-Python reader.

    So that the analysis runs exactly as over every record, a skipped record comes through with empty data
    when `due()` (the capture time of the connection table's next housekeeping) has come, and when its
    frame number is a multiple of `every` (the caller's progress tick); empty data is dropped at once.
    With `dropping` (`NetworkLayer.dropping`: the connection table, logging the keys it drops), the TCP
    records that table would drop at its first lookup are skipped too; without it only UDP on other ports is.
    `partition` (part, parts): this process analyses one part of the clients; the others' Kerberos and DNS
    datagrams are skipped here (their TCP connections the part's pipeline refuses, and the table then drops).
    `quiet_dns` gives what skipping the DNS messages that cannot matter needs (`QuietDns`; asked only when this
    file is read here, None when that capture cannot be thinned)."""
    if ENABLED is False or (ENABLED is None and capture.size < MIN_BYTES) or not available():
        return None
    clock = _clock(capture)
    if clock is None:
        return None
    try:
        reader = pcapy.open_offline(capture.path)
        linktype = reader.datalink()
        reader.close()
    except pcapy.PcapError:
        return None  # the pure-Python reader says what is wrong with the file
    capture._iterated = True
    capture.read_position = 0
    dns = quiet_dns() if quiet_dns is not None and linktype == _ETHERNET else None
    return _read(capture, Prefilter(udp_ports, partition, dns), linktype, clock, due or (lambda: float("inf")),
                 every, streams or (lambda n: None), dropping() if dropping is not None else None, dns)


def _read(capture: Capture, flt: Prefilter, linktype: int, clock: str, due: Callable[[], float], every: int,
          streams: Callable[[int], None], table: TcpReassembler | None, quiet_dns: QuietDns | None = None
          ) -> Iterator[tuple[int, float, int, bytes]]:
    frame = 0
    given = 0  # stream numbers taken by skipped connections in earlier batches and handed over
    log = table.ignored_log if table is not None else None
    header = 24 if clock == "pcap" else 0
    position = header
    batches = _batches(capture.path)
    try:
        while True:
            try:
                blob, data, meta = next(batches)
            except StopIteration:
                return
            except pcapy.PcapError:
                # damage libpcap will not read past: the pure-Python reader goes on from this record, reads
                # what it can and names the frame, as it does without the prefilter
                capture.read_position = None
                frame = -1  # the pure-Python reader counts the packets from here on
                yield from _python_from(capture, capture.packets)
                return
            times = _times(clock, meta)
            if frame == 0:
                capture.start = float(times[0])
            n = len(meta)
            if linktype == _ETHERNET:
                if log is not None:
                    flt.dropped.apply(log)
                needed, quiet, opened, dns = flt.keep(data, meta)
            else:
                needed, quiet, opened, dns = np.ones(n, dtype=bool), None, np.zeros(n + 1, dtype=np.int64), None
            if quiet is not None and not quiet.any():
                quiet = None
            tally = _Tally(dns, times, quiet_dns) if dns is not None else None  # type: ignore[arg-type]
            if tally is not None:
                quiet = dns if quiet is None else quiet | dns
            counting = int(opened[n]) != 0  # skipped connections took stream numbers in this batch
            latest = np.maximum.accumulate(times)
            turned = table.generations if table is not None else 0
            real = needed if quiet is None else needed & ~quiet
            cur = 0  # records before this one were handed over or passed
            restart: int | None = 0
            while restart is not None:
                rows = np.flatnonzero(real[restart:]) + restart
                if every:  # the caller's tick follows these frame numbers: they come through, empty if skipped
                    first = every - (frame + restart) % every - 1 + restart
                    rows = np.union1d(rows, np.arange(first, n, every))
                restart = None
                # per record handed over, as lists (a batch's own arrays are not turned into lists: most of it
                # is skipped): the latest time before it, stream numbers taken up to it, DNS skipped up to it
                before = latest[np.maximum(rows - 1, 0)].tolist()
                owed = opened[rows].tolist() if counting else [0] * len(rows)
                skipped = tally.count[rows].tolist() if tally is not None else [0] * len(rows)
                for i, when, off, size, whole, latest_before, owed_i, skipped_i in zip(
                        rows.tolist(), times[rows].tolist(), meta[rows, 2].tolist(), meta[rows, 3].tolist(),
                        real[rows].tolist(), before, owed, skipped, strict=True):
                    if i > cur and latest_before >= (table.next_sweep if table is not None else due()):
                        # skipped records before this one at which the connection table's housekeeping fell due
                        stop = yield from _due(frame, times, latest, cur, i, due, linktype, table, turned)
                        if stop is not None:
                            cur = restart = stop
                            break
                    if quiet is not None and _stale(table, turned, tally):
                        restart = i
                        break
                    cur = i + 1
                    if tally is not None and skipped_i != tally.given:
                        tally.settle(i)
                    if counting and owed_i != given:
                        streams(owed_i - given)
                        given = owed_i
                    yield frame + i + 1, when, linktype, blob[off:off + size] if whole else b""
                else:
                    if n > cur:
                        stop = yield from _due(frame, times, latest, cur, n, due, linktype, table, turned)
                        if stop is not None:
                            cur = restart = stop
                    if quiet is not None and cur < n and _stale(table, turned, tally):
                        restart = cur
                if restart is not None:
                    # The table's generations turned: its dropped keys became old keys, which a packet renews
                    # (it is no longer dropped without a trace), so the rest of the batch comes through.
                    real, quiet = needed, None
                    if tally is not None:  # the rest of the batch comes through: what was skipped is counted
                        tally.settle(restart - 1)
                        tally = None
            if tally is not None:
                tally.settle(n - 1)
            streams(int(opened[n]) - given)
            given = 0
            frame += n
            capture.packets = frame
            capture.end = float(times[-1])
            # bytes read: pcap record headers are 16 bytes; pcapng blocks about 32 (progress bars only)
            position += int(meta[:, 3].sum()) + (16 if header else 32) * n
            capture.read_position = min(position, capture.size)
    finally:
        if frame >= 0:
            capture.packets = frame
        if table is not None:
            table.ignored_log = None  # nobody follows it any more (a next file starts its own)


class _Tally:
    """The DNS messages a batch skips (`QuietDns`): counted as read, with the latest of their times, before the
    record after them is handed over, so that a progress tick sees what one pass over every record sees."""

    __slots__ = ("count", "latest", "given", "quiet_dns", "labels", "known")

    def __init__(self, dns: np.ndarray, times: np.ndarray, quiet_dns: QuietDns) -> None:
        self.count = np.cumsum(dns)  # skipped up to and with each record
        self.latest = np.maximum.accumulate(np.where(dns, times, -np.inf))
        self.given = 0
        self.quiet_dns = quiet_dns
        self.labels = quiet_dns.labels()
        self.known = len(self.labels)  # MP names when the batch was classified

    def settle(self, upto: int) -> None:
        """Count the messages skipped up to record `upto` (-1: none)."""
        count = int(self.count[upto]) if upto >= 0 else self.given
        if count != self.given:
            self.quiet_dns.skipped(count - self.given, float(self.latest[upto]))
            self.given = count


def _stale(table: TcpReassembler | None, turned: int, tally: _Tally | None) -> bool:
    """What this batch's skips relied on changed: the connection table's generations turned, or an MP name was
    learned (its lookups are decoded: they teach the MP's address)."""
    return (table is not None and table.generations != turned) or (tally is not None
                                                                     and len(tally.labels) != tally.known)


def _python_from(capture: Capture, done: int) -> Iterator[tuple[int, float, int, bytes]]:
    """The pure-Python reader's records after the first `done` (which libpcap read the same way)."""
    capture._iterated = False
    frames = iter(capture)
    for record in frames:
        if record[0] > done:
            yield record
            break
    yield from frames


def _due(frame: int, times: np.ndarray, latest: np.ndarray, lo: int, hi: int, due: Callable[[], float],
         linktype: int, table: TcpReassembler | None = None, turned: int = 0
         ) -> Generator[tuple[int, float, int, bytes], None, int | None]:
    """Empty records for the skipped records lo..hi-1 of a batch at which housekeeping falls due. Returns
    the record after the one at which the table's generations turned (housekeeping closes connections,
    whose keys may turn them), or None."""
    while lo < hi:
        when = due()
        if latest[hi - 1] < when:
            return None
        hit = np.flatnonzero(times[lo:hi] >= when)
        if not len(hit):
            return None
        j = lo + int(hit[0])
        yield frame + j + 1, float(times[j]), linktype, b""
        lo = j + 1
        if table is not None and table.generations != turned:
            return lo
    return None


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
