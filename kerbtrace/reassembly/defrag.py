"""IP defragmentation (IPv4 and the IPv6 fragment header), bounded in sets, bytes and time.

A datagram is complete once its last fragment has arrived and the fragments cover it without a
hole; it is delivered at the frame of the fragment that completed it, as Wireshark shows it.
Overlapping fragments: the bytes that arrived first win (as with TCP; Wireshark's default).
"""

from __future__ import annotations

from kerbtrace.diagnostics import Diagnostics

MAX_DATAGRAM = 65535 + 65535  # IPv4 limit; IPv6 jumbograms are never fragmented
#: Recently completed datagrams kept to recognise late duplicate fragments (compared byte for byte,
#: so a reused IP identifier with new content still starts a new datagram).
_RECENT = 256


class _FragmentSet:
    __slots__ = ("parts", "total", "size", "first_time", "first_frame")

    def __init__(self, time: float, frame: int) -> None:
        self.parts: list[tuple[int, bytes]] = []
        self.total: int | None = None
        self.size = 0
        self.first_time = time
        self.first_frame = frame


class Defragmenter:
    def __init__(self, diag: Diagnostics, stats: dict[str, int], *, max_sets: int = 4096,
                 max_bytes: int = 8 << 20, timeout: float = 60.0) -> None:
        self.diag = diag
        self.stats = stats
        self.max_sets = max_sets
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._sets: dict[bytes, _FragmentSet] = {}
        self._bytes = 0
        self._recent: dict[bytes, bytes] = {}

    def add(self, key: bytes, offset: int, more: bool, payload: bytes, frame: int,
            time: float) -> bytes | None:
        """Store one fragment; return the whole datagram payload when this fragment completes it."""
        self.stats["ip_fragments"] += 1
        sets = self._sets
        fs = sets.get(key)
        if fs is None:
            done = self._recent.get(key)
            if done is not None and done[offset:offset + len(payload)] == payload:
                self.stats["ip_duplicate_fragments"] += 1
                return None
        if fs is not None and time - fs.first_time > self.timeout:
            self._drop(key, fs, frame, "it timed out")
            fs = None
        if fs is None:
            while len(sets) >= self.max_sets or (sets and self._bytes + len(payload) > self.max_bytes):
                old_key = next(iter(sets))
                self._drop(old_key, sets[old_key], frame, "too many datagrams were waiting for fragments")
            fs = sets[key] = _FragmentSet(time, frame)
        if offset + len(payload) > MAX_DATAGRAM:
            self._drop(key, fs, frame, f"fragment at offset {offset} runs past the largest possible datagram")
            return None
        fs.parts.append((offset, payload))
        fs.size += len(payload)
        self._bytes += len(payload)
        if not more:
            if fs.total is not None and fs.total != offset + len(payload):
                self.diag.warn(frame, "IP fragments disagree on the datagram's length; the first wins", "packet")
            elif fs.total is None:
                fs.total = offset + len(payload)
        if fs.total is None:
            return None
        whole = _assemble(fs.parts, fs.total)
        if whole is not None:
            del sets[key]
            self._bytes -= fs.size
            self.stats["ip_reassembled"] += 1
            recent = self._recent
            recent.pop(key, None)
            recent[key] = whole
            if len(recent) > _RECENT:
                del recent[next(iter(recent))]
        return whole

    def _drop(self, key: bytes, fs: _FragmentSet, frame: int, why: str) -> None:
        del self._sets[key]
        self._bytes -= fs.size
        self.stats["ip_incomplete"] += 1
        self.diag.warn(fs.first_frame, f"IP datagram whose first fragment is frame {fs.first_frame} was "
                                       f"never completed ({why}; noticed at frame {frame})", "packet")

    def flush(self) -> None:
        for key, fs in list(self._sets.items()):
            self._drop(key, fs, fs.first_frame, "the capture ended first")


def _assemble(parts: list[tuple[int, bytes]], total: int) -> bytes | None:
    reach = 0
    for start, data in sorted(parts, key=lambda p: p[0]):
        if start > reach:
            return None
        reach = max(reach, start + len(data))
    if reach < total:
        return None
    buf = bytearray(total)
    for start, data in reversed(parts):  # earlier fragments are written last, so they win overlaps
        chunk = data[:max(0, total - start)]
        buf[start:start + len(chunk)] = chunk
    return bytes(buf)
