"""TCP stream reassembly per direction, with bounded flow state.

Policy (documented in docs/readers.md):
- A direction starts at its SYN (ISN + 1) or, mid-stream, at the first segment seen; the latter is
  announced with `on_tcp_gap(..., missing=0, ...)` (an unknown amount was never captured).
- Sequence numbers are turned into 64-bit stream offsets relative to what was delivered, so
  wrap-around and streams over 4 GiB need no special case.
- Retransmissions and overlaps are trimmed: bytes delivered (or buffered) first win, like Wireshark's
  default. Keep-alives (one old byte) and zero-window probes therefore never corrupt the stream.
- Out-of-order segments wait (at most `max_pending_bytes` / `_MAX_PENDING_SEGMENTS` per direction)
  and are delivered, at the frame of the segment that fills the hole, when it fills. A hole is given
  up, with `on_tcp_gap`, when the buffer limit is hit, when the peer acknowledged data beyond it (it
  will never be sent again), or when the connection ends.
- Connections the sink does not want (`wants_tcp` False on the first payload) and closed ones are
  remembered only by their address keys, in two bounded generations; later packets cost one dict
  lookup. A SYN (without ACK) on such a key starts a new connection, as in Wireshark's tcp.stream.
  A connection the sink detaches (`TcpConn.detached`, e.g. TLS once encryption starts) is forgotten
  the same way.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter, deque

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.model import TcpConn, TransportSink

_M = 0xFFFFFFFF
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_MAX_PENDING_SEGMENTS = 4096
#: Packets of a connection to wait, after the peer acknowledged past a hole, before giving the hole up:
#: captures taken on multi-queue NICs may show an ACK before the data it acknowledges.
REORDER_PATIENCE = 16
#: Capture seconds a connection stays open after a RST, for data already in flight (Wireshark keeps it).
RST_LINGER = 2.0
_HEADER = struct.Struct("!HHIIH").unpack_from

#: Server ports for guessing roles when the SYN was not captured.
WELL_KNOWN_SERVER_PORTS = frozenset({
    20, 21, 22, 23, 25, 53, 80, 88, 110, 111, 135, 139, 143, 389, 443, 445, 464, 465, 587, 593, 636,
    993, 995, 1433, 1434, 1723, 2179, 3268, 3269, 3389, 5722, 5985, 5986, 8080, 8443, 8530, 8531, 9389,
    10123,
})


class _Half:
    """One direction: `base` is the sequence number of stream offset 0."""

    __slots__ = ("base", "delivered", "pending", "pending_at", "pending_bytes", "fin", "syn", "ack", "acked_mark")

    def __init__(self) -> None:
        self.base: int | None = None
        self.delivered = 0
        self.pending: dict[int, bytes] = {}
        self.pending_at: dict[int, tuple[int, float]] = {}  # frame and time each buffered segment arrived in
        self.pending_bytes = 0
        self.fin: int | None = None
        self.syn = False
        self.ack: int | None = None  # latest acknowledgement the peer sent for this direction
        self.acked_mark: int | None = None  # flow packet count when the peer first acked past a hole

    def offset(self, seq: int) -> int:
        d = self.delivered
        diff = (seq - self.base - d) & _M  # type: ignore[operator]
        return d + (diff - 0x100000000 if diff & 0x80000000 else diff)


class _Flow:
    __slots__ = ("conn", "c", "s", "ckey", "skey", "last", "last_frame", "accepted", "reset", "open", "packets")

    def __init__(self, conn: TcpConn, ckey: bytes, skey: bytes, time: float) -> None:
        self.conn = conn
        self.c = _Half()
        self.s = _Half()
        self.ckey = ckey
        self.skey = skey
        self.last = time
        self.last_frame = conn.first_frame
        self.accepted = False
        self.reset = False
        self.open = True
        self.packets = 0


def _reverse(key: bytes) -> bytes:
    a = (len(key) - 4) // 2
    return key[a:2 * a] + key[:a] + key[2 * a + 2:] + key[2 * a:2 * a + 2]


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw) if len(raw) == 4 else socket.inet_ntop(socket.AF_INET6, raw)


def server_is_destination(sport: int, dport: int) -> bool:
    """Role guess without a SYN: a well-known or privileged port is the server's."""
    if (dport in WELL_KNOWN_SERVER_PORTS) != (sport in WELL_KNOWN_SERVER_PORTS):
        return dport in WELL_KNOWN_SERVER_PORTS
    if (dport < 1024) != (sport < 1024):
        return dport < 1024
    return dport <= sport


class TcpReassembler:
    def __init__(self, sink: TransportSink, diag: Diagnostics, stats: Counter, *, max_conns: int,
                 max_pending_bytes: int, idle_timeout: float) -> None:
        self.sink = sink
        self.diag = diag
        self.stats = stats
        self.watch = frozenset(getattr(sink, "watch_ports", ()))
        self.max_conns = max_conns
        self.max_pending_bytes = max_pending_bytes
        self.idle_timeout = idle_timeout
        self.conns: dict[bytes, tuple[_Flow, bool]] = {}
        #: Keys of ignored or closed connections: the hot path's first (and usually only) lookup.
        self.ignored: dict[bytes, bool] = {}
        self._ignored_old: dict[bytes, bool] = {}
        self._ignored_limit = max(2 * max_conns, 1024)
        #: For a prefilter that skips what the hot path would drop: when a list, every key that enters
        #: `ignored` is appended as (key, True), every key taken out as (key, False), and a turn of the
        #: generations (every key leaves `ignored` for `_ignored_old`) as (None, False), in order.
        self.ignored_log: list[tuple[bytes | None, bool]] | None = None
        self.generations = 0  # turns of the generations so far
        self.next_stream = 0
        #: Capture time of the next housekeeping call (`sweep`); the network layer checks it per frame.
        self.next_sweep = float("-inf")
        self._sweep_step = max(1.0, idle_timeout / 8)
        self._idle_scan_at: float | None = None
        self._resets: deque[tuple[float, _Flow]] = deque()

    # -- entry point -------------------------------------------------------------------------------
    def segment(self, frame: int, time: float, key: bytes, data: bytes, t: int, end: int) -> None:
        """One TCP segment: header at data[t:], segment ends at `end`; `key` = src, dst, ports."""
        if end - t < 20:
            self._malformed(frame, "TCP header cut short")
            return
        sport, dport, seq, ack, offflags = _HEADER(data, t)
        hl = (offflags >> 12) * 4
        if hl < 20 or t + hl > end:
            self._malformed(frame, f"TCP header length {hl} does not fit the segment")
            return
        flags = offflags & 0x3F
        entry = self.conns.get(key)
        if entry is None:
            if key in self.ignored or key in self._ignored_old:
                if flags & (_SYN | _ACK) != _SYN:
                    if key not in self.ignored:
                        self._mark(key)
                    return
                self._unmark(key)
                self._unmark(_reverse(key))
            flow, from_client = self._new_flow(frame, time, key, sport, dport, flags)
        else:
            flow, from_client = entry
            if (flags & (_SYN | _ACK) == _SYN and from_client and flow.c.syn
                    and flow.c.base != (seq + 1) & _M):
                # Same addresses and ports, new initial sequence: the port was reused.
                self._close(flow, None, None)
                self._unmark(key)
                self._unmark(_reverse(key))
                flow, from_client = self._new_flow(frame, time, key, sport, dport, flags)
        flow.last = time
        flow.last_frame = frame
        flow.packets += 1
        if from_client:
            half, other = flow.c, flow.s
        else:
            half, other = flow.s, flow.c
        start = t + hl
        if (flags & 0x17 == _ACK and end > start and flow.accepted and not half.pending
                and half.base is not None and seq == (half.base + half.delivered) & _M):
            # Fast path, most segments of a registration: data that continues the stream exactly, no
            # SYN/FIN/RST and nothing buffered; what `_data` and the flag handling below would do.
            other.ack = ack
            half.delivered += end - start
            self.sink.on_tcp_data(flow.conn, from_client, data[start:end], frame, time)
            if flow.conn.detached:
                self.stats["tcp_detached_connections"] += 1
                self._forget(flow)
                return
        elif not self._flags(flow, half, other, from_client, flags, seq, ack, data, start, end, frame, time):
            return
        if other.pending and other.ack is not None and flow.accepted:
            self._give_up_acked(flow, other, not from_client, frame, time)
        c, s = flow.c, flow.s
        if c.fin is not None and s.fin is not None and c.delivered >= c.fin and s.delivered >= s.fin:
            self._close(flow, frame, time)

    def _flags(self, flow: _Flow, half: _Half, other: _Half, from_client: bool, flags: int, seq: int, ack: int,
               data: bytes, start: int, end: int, frame: int, time: float) -> bool:
        """Every other segment: RST, SYN, FIN, the first payload, out of order or overlapping data. False when
        the segment ends here (a reset, or a connection now forgotten)."""
        if flags & _RST:
            if not flow.accepted and not from_client and not flow.reset and flow.conn.server_port in self.watch:
                self._connect_failed(flow, "TCP connection reset by the server", frame, time)
            if not flow.reset:
                flow.reset = True
                self._resets.append((time + RST_LINGER, flow))
                self.next_sweep = min(self.next_sweep, time + RST_LINGER)
            return False
        if flags & _SYN:
            half.syn = True
            seq = (seq + 1) & _M
            if half.base is None or (half.delivered == 0 and not half.pending):
                half.base = seq
        if flags & _ACK:
            other.ack = ack
        if end > start:
            if not flow.accepted:
                if not self.sink.wants_tcp(flow.conn, data[start:end], from_client):
                    self.stats["tcp_ignored_connections"] += 1
                    self._forget(flow)
                    return False
                flow.accepted = True
            if half.base is None:
                half.base = seq
                if not half.syn:
                    self.stats["tcp_midstream_starts"] += 1
                    self.sink.on_tcp_gap(flow.conn, from_client, 0, frame)
            self._data(flow, half, from_client, seq, data, start, end, frame, time)
            if flow.conn.detached:
                self.stats["tcp_detached_connections"] += 1
                self._forget(flow)
                return False
        if flags & _FIN:
            if half.base is None:
                half.base = seq
            half.fin = half.offset((seq + end - start) & _M)
        return True

    # -- data --------------------------------------------------------------------------------------
    def _data(self, flow: _Flow, half: _Half, from_client: bool, seq: int, data: bytes, start: int,
              end: int, frame: int, time: float) -> None:
        off = half.offset(seq)
        d = half.delivered
        if off <= d:
            if off + end - start <= d:
                self.stats["tcp_retransmitted_segments"] += 1
                return
            chunk = data[start + d - off:end]
            half.delivered = d + len(chunk)
            if half.pending:
                chunk = self._drain(half, chunk)
            self.sink.on_tcp_data(flow.conn, from_client, chunk, frame, time)
            return
        self.stats["tcp_out_of_order_segments"] += 1
        seg = data[start:end]
        pending = half.pending
        old = pending.get(off)
        if old is None:
            pending[off] = seg
            half.pending_at[off] = (frame, time)
            half.pending_bytes += len(seg)
        elif len(seg) > len(old):
            pending[off] = old + seg[len(old):]
            half.pending_bytes += len(seg) - len(old)
        while half.pending and (half.pending_bytes > self.max_pending_bytes
                                or len(half.pending) > _MAX_PENDING_SEGMENTS):
            self._skip_hole(flow, half, from_client, frame, time, "the out-of-order buffer is full")
        if half.pending and half.ack is not None:
            self._give_up_acked(flow, half, from_client, frame, time)

    def _drain(self, half: _Half, first: bytes) -> bytes:
        """Append buffered segments that are now contiguous; old bytes win overlaps."""
        parts = [first]
        d = half.delivered
        pending = half.pending
        for k in sorted(pending):
            if k > d:
                break
            seg = pending.pop(k)
            half.pending_at.pop(k, None)
            half.pending_bytes -= len(seg)
            if k + len(seg) > d:
                parts.append(seg[d - k:])
                d = k + len(seg)
        half.delivered = d
        half.acked_mark = None
        return b"".join(parts) if len(parts) > 1 else first

    def _skip_hole(self, flow: _Flow, half: _Half, from_client: bool, frame: int, time: float,
                   why: str) -> None:
        first = min(half.pending)
        missing = first - half.delivered
        self.stats["tcp_gaps"] += 1
        self.sink.on_tcp_gap(flow.conn, from_client, missing, frame)
        half.delivered = first
        # Past a hole, each buffered segment is delivered with the frame it arrived in, so a message that
        # lies wholly after the hole is shown where Wireshark shows it, not at the packet that gave up.
        pending, at = half.pending, half.pending_at
        while pending:
            k = min(pending)
            d = half.delivered
            if k > d:
                break
            seg = pending.pop(k)
            seg_frame, seg_time = at.pop(k, (frame, time))
            half.pending_bytes -= len(seg)
            if k + len(seg) > d:
                half.delivered = k + len(seg)
                self.sink.on_tcp_data(flow.conn, from_client, seg[d - k:], seg_frame, seg_time)
        half.acked_mark = None

    def _give_up_acked(self, flow: _Flow, half: _Half, from_client: bool, frame: int, time: float) -> None:
        """The peer acknowledged bytes past a hole: that hole was lost to the capture, not the network.
        Given up only after REORDER_PATIENCE more packets, in case the capture merely reordered."""
        acked = half.offset(half.ack)  # type: ignore[arg-type]
        if acked < min(half.pending):
            half.acked_mark = None
            return
        if half.acked_mark is None:
            half.acked_mark = flow.packets
            return
        if flow.packets - half.acked_mark < REORDER_PATIENCE:
            return
        while half.pending and acked >= min(half.pending):
            self._skip_hole(flow, half, from_client, frame, time, "the peer acknowledged past it")

    # -- connection table --------------------------------------------------------------------------
    def _new_flow(self, frame: int, time: float, key: bytes, sport: int, dport: int,
                  flags: int) -> tuple[_Flow, bool]:
        if flags & _SYN:
            from_client = not flags & _ACK
        else:
            from_client = server_is_destination(sport, dport)
        rkey = _reverse(key)
        ckey, skey = (key, rkey) if from_client else (rkey, key)
        a = (len(key) - 4) // 2
        src, dst = _ip(key[:a]), _ip(key[a:2 * a])
        if from_client:
            conn = TcpConn(self.next_stream, src, sport, dst, dport, frame, bool(flags & _SYN))
        else:
            conn = TcpConn(self.next_stream, dst, dport, src, sport, frame, bool(flags & _SYN))
        self.next_stream += 1
        self.stats["tcp_connections"] += 1
        flow = _Flow(conn, ckey, skey, time)
        self.conns[ckey] = (flow, True)
        self.conns[skey] = (flow, False)
        if len(self.conns) > 2 * self.max_conns:
            self._evict_oldest(flow)
        return flow, from_client

    def _mark(self, key: bytes) -> None:
        ignored = self.ignored
        ignored[key] = True
        log = self.ignored_log
        if log is not None:
            log.append((key, True))
        if len(ignored) >= self._ignored_limit:
            # Two generations: keys not seen for a whole generation are forgotten.
            self._ignored_old = dict(ignored)
            ignored.clear()
            self.generations += 1
            if log is not None:
                log.append((None, False))

    def _unmark(self, key: bytes) -> None:
        if self.ignored.pop(key, None) and self.ignored_log is not None:
            self.ignored_log.append((key, False))
        self._ignored_old.pop(key, None)

    def _forget(self, flow: _Flow, remember: bool = True) -> None:
        """Drop a flow's state; with `remember`, keep its keys so later packets are dropped cheaply."""
        flow.open = False
        conns = self.conns
        if conns.get(flow.ckey, (None,))[0] is flow:
            del conns[flow.ckey]
            del conns[flow.skey]
        if remember:
            self._mark(flow.ckey)
            self._mark(flow.skey)

    def _close(self, flow: _Flow, frame: int | None, time: float | None, remember: bool = True) -> None:
        """Finish a connection. Idle or evicted ones are not remembered: if they wake up, their
        packets start a new (mid-stream) connection instead of being dropped."""
        if not flow.open:
            return
        if (not flow.accepted and not flow.reset and flow.c.syn and not flow.s.syn
                and flow.conn.server_port in self.watch):
            self._connect_failed(flow, "TCP SYN never answered", flow.last_frame, flow.last)
        if flow.accepted:
            at = frame if frame is not None else flow.last_frame
            for half, from_client in ((flow.c, True), (flow.s, False)):
                while half.pending:
                    self._skip_hole(flow, half, from_client, at, time or flow.last, "the connection ended")
                if half.fin is not None and half.delivered < half.fin:
                    self.stats["tcp_gaps"] += 1
                    self.sink.on_tcp_gap(flow.conn, from_client, half.fin - half.delivered, at)
                    half.delivered = half.fin
            self.sink.on_tcp_close(flow.conn, frame, time)
        self.stats["tcp_closed_connections"] += 1
        self._forget(flow, remember)

    def _evict_oldest(self, keep: _Flow) -> None:
        flows = [f for f, fc in self.conns.values() if fc and f is not keep]
        flows.sort(key=lambda f: f.last)
        for f in flows[:max(1, len(flows) // 10)]:
            self.stats["tcp_evicted_connections"] += 1
            self._close(f, None, None, remember=False)

    def sweep(self, now: float) -> None:
        """Housekeeping in capture time: close reset connections after their linger, and (every
        `idle_timeout / 8`) connections idle for longer than the timeout."""
        resets = self._resets
        while resets and resets[0][0] <= now:
            _, flow = resets.popleft()
            self._close(flow, flow.last_frame, flow.last)
        if self._idle_scan_at is None:
            self._idle_scan_at = now + self._sweep_step
        elif now >= self._idle_scan_at:
            limit = now - self.idle_timeout
            for f in [f for f, fc in self.conns.values() if fc and f.last < limit]:
                self.stats["tcp_idle_connections"] += 1
                self._close(f, None, None, remember=False)
            self._idle_scan_at = now + self._sweep_step
        self.next_sweep = min(self._idle_scan_at, resets[0][0]) if resets else self._idle_scan_at

    def flush(self) -> None:
        while self._resets:
            _, flow = self._resets.popleft()
            self._close(flow, flow.last_frame, flow.last)
        for f in [f for f, fc in self.conns.values() if fc]:
            self._close(f, None, None)

    def _connect_failed(self, flow: _Flow, how: str, frame: int, time: float) -> None:
        c = flow.conn
        self.sink.on_connect_failed(c.client_ip, c.client_port, c.server_ip, c.server_port, "tcp", how, frame, time)

    def _malformed(self, frame: int, what: str) -> None:
        self.stats["malformed_packets"] += 1
        self.diag.warn(frame, f"frame {frame}: {what}; packet skipped", "packet")
