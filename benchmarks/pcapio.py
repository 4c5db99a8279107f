"""Minimal pcap/pcapng reading and pcap writing for the benchmark generator (no dependencies).

Kept apart from ``kerbtrace.sources`` on purpose: the generator must not depend on the code it measures.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

_ETH_IPV4 = 0x0800
_VLAN = (0x8100, 0x88A8)


def _ip_from_link(linktype: int, data: bytes) -> bytes | None:
    """IPv4 packet bytes from one link-layer frame, or None (IPv6, ARP, unknown links)."""
    if linktype == 1:  # Ethernet
        off, etype = 14, (data[12] << 8 | data[13]) if len(data) >= 14 else 0
        while etype in _VLAN and len(data) >= off + 4:
            etype = data[off + 2] << 8 | data[off + 3]
            off += 4
    elif linktype in (101, 228):  # raw IP / raw IPv4
        off, etype = 0, _ETH_IPV4
    elif linktype == 113:  # Linux cooked v1
        off, etype = 16, (data[14] << 8 | data[15]) if len(data) >= 16 else 0
    elif linktype == 276:  # Linux cooked v2
        off, etype = 20, (data[0] << 8 | data[1]) if len(data) >= 20 else 0
    elif linktype == 0:  # BSD loopback
        off, etype = 4, _ETH_IPV4 if data[:4] in (b"\x02\x00\x00\x00", b"\x00\x00\x00\x02") else 0
    else:
        return None
    if etype != _ETH_IPV4 or len(data) < off + 20 or data[off] >> 4 != 4:
        return None
    total = data[off + 2] << 8 | data[off + 3]
    if total == 0:
        # Segmentation offload on the capturing host leaves the length unset: the frame holds the
        # whole (oversized) packet. Write the length in, so the packet can be replayed and split.
        ip = bytearray(data[off:])
        ip[2:4] = len(ip).to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        ihl = (ip[0] & 15) * 4
        s = sum(int.from_bytes(ip[i:i + 2], "big") for i in range(0, ihl, 2))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        ip[10:12] = (~s & 0xFFFF).to_bytes(2, "big")
        return bytes(ip)
    return bytes(data[off:off + total]) if total >= 20 else None


def read_ipv4(path: Path) -> Iterator[tuple[int, float, bytes]]:
    """Yield (frame number, timestamp, IPv4 packet) from a pcap or pcapng file."""
    data = Path(path).read_bytes()
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        yield from _read_pcapng(data)
        return
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a pcap/pcapng file")
    scale = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    rec = struct.Struct(endian + "IIII")
    off, frame = 24, 0
    while off + 16 <= len(data):
        sec, frac, incl, _orig = rec.unpack_from(data, off)
        off += 16
        frame += 1
        ip = _ip_from_link(linktype, data[off:off + incl])
        off += incl
        if ip is not None:
            yield frame, sec + frac * scale, ip


def _read_pcapng(data: bytes) -> Iterator[tuple[int, float, bytes]]:
    off, frame, endian = 0, 0, "<"
    links: list[tuple[int, float]] = []
    while off + 12 <= len(data):
        btype = struct.unpack_from(endian + "I", data, off)[0]
        if btype == 0x0A0D0D0A:
            endian = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack_from(endian + "I", data, off + 4)[0]
        if blen < 12 or off + blen > len(data):
            break
        body = off + 8
        if btype == 1:  # IDB
            linktype = struct.unpack_from(endian + "H", data, body)[0]
            links.append((linktype, _tsresol(data, body + 8, off + blen - 4, endian)))
        elif btype == 6:  # EPB
            iface, hi, lo, incl = struct.unpack_from(endian + "IIII", data, body)
            frame += 1
            linktype, scale = links[iface] if iface < len(links) else (1, 1e-6)
            ip = _ip_from_link(linktype, data[body + 20:body + 20 + incl])
            if ip is not None:
                yield frame, ((hi << 32) | lo) * scale, ip
        elif btype == 3:  # SPB
            frame += 1
            linktype, _ = links[0] if links else (1, 1e-6)
            orig = struct.unpack_from(endian + "I", data, body)[0]
            ip = _ip_from_link(linktype, data[body + 4:body + 4 + min(orig, blen - 16)])
            if ip is not None:
                yield frame, 0.0, ip
        off += blen


def _tsresol(data: bytes, off: int, end: int, endian: str) -> float:
    """if_tsresol option of an IDB (default microseconds)."""
    while off + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", data, off)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = data[off + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        off += 4 + (length + 3) // 4 * 4
    return 1e-6


class PcapWriter:
    """Buffered classic-pcap writer (Ethernet, microseconds): records are joined and written in chunks."""

    _REC = struct.Struct("<IIII")

    def __init__(self, path: Path, snaplen: int = 262144, chunk: int = 8 << 20) -> None:
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        self._parts: list[bytes] = []
        self._pending = 0
        self._chunk = chunk
        self.packets = 0
        self.bytes = 24

    def write(self, ts: float, eth_header: bytes, ip: bytes) -> None:
        n = 14 + len(ip)
        sec = int(ts)
        self._parts.append(self._REC.pack(sec, int((ts - sec) * 1e6), n, n))
        self._parts.append(eth_header)
        self._parts.append(ip)
        self._pending += 16 + n
        self.packets += 1
        if self._pending >= self._chunk:
            self.flush()

    def flush(self) -> None:
        self._f.write(b"".join(self._parts))
        self.bytes += self._pending
        self._parts.clear()
        self._pending = 0

    def close(self) -> None:
        self.flush()
        self._f.close()
