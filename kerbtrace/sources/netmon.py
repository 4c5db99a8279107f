"""Microsoft Network Monitor 2.x files (`GMBU`), the format NetMon 3.x and Message Analyzer write.

The frame table at the end of the file is the authority on where frames are and in which order
(frames need not be contiguous), so it is read first. Per-frame media types (2.1+) are mapped to
pcap link types; types with no pcap equivalent are yielded as `NETMON_MEDIA_BASE + type` so the
network layer can name them in its "not supported" warning. Wireshark drops three metadata record
types (payload header, network info, DNS cache) without numbering them; so does this reader.
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.sources.common import CHUNK, MAX_RECORD, CaptureError, read_chunk, truncated

if TYPE_CHECKING:
    from kerbtrace.sources import Capture

MAGIC = b"GMBU"
MAGIC_1X = b"RTSS"
#: Link types at or above this are NetMon media types without a pcap link type.
NETMON_MEDIA_BASE = 0x10000

_HEADER = struct.Struct("<BBH8H10I")
_RECORD = struct.Struct("<QII")
_TRAILER_SIZE = {0: 0, 1: 2, 2: 6}  # minor version -> bytes after the frame data; 3 and later: 15
_SKIPPED = {0xFFFC, 0xFFFD, 0xFFFE}
_FILETIME_EPOCH = 116_444_736_000_000_000  # 1601-01-01 to 1970-01-01 in 100 ns units
_NETMON_TO_PCAP = {0: 1, 1: 1, 2: 6, 3: 10, 7: 101, 8: 101, 9: 101}


def media_to_linktype(network: int) -> int:
    """pcap link type for a NetMon media type (see the module docstring for the fallback)."""
    if (network & 0xF000) == 0xE000 and not 0xE080 <= network <= 0xE08A:
        return network & 0x0FFF  # a converted pcap file carries its own link type
    return _NETMON_TO_PCAP.get(network, NETMON_MEDIA_BASE + network)


@dataclass(slots=True)
class NetmonHeader:
    minor: int
    linktype: int
    start_ns: int
    table: bytes


def read_header(name: str, magic: bytes, stream: BinaryIO) -> NetmonHeader:
    raw = stream.read(_HEADER.size)
    if len(raw) < _HEADER.size:
        raise CaptureError(f"{name} is a NetMon file cut short inside its file header")
    minor, major, network, year, month, _dow, day, hour, minute, sec, msec, tab_off, tab_len, *_ = (
        _HEADER.unpack(raw))
    if major != 2:
        raise CaptureError(f"{name} is a NetMon file of version {major}.{minor}; only 2.x is read")
    if tab_len == 0 or tab_len % 4:
        raise CaptureError(f"{name}: NetMon frame table length {tab_len} is impossible; the file is damaged")
    try:
        start = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0))
    except (ValueError, OverflowError):
        raise CaptureError(f"{name}: NetMon start time {year}-{month}-{day} is impossible") from None
    # SYSTEMTIME without a zone: read as UTC (Wireshark uses the local zone of the reading machine).
    start_ns = start * 1_000_000_000 + msec * 1_000_000
    stream.seek(tab_off)
    table = stream.read(tab_len)
    if len(table) < tab_len:
        raise CaptureError(f"{name}: the NetMon frame table lies beyond the end of the file; the file is "
                           "cut short or damaged")
    stream.seek(0)
    return NetmonHeader(minor, media_to_linktype(network), start_ns, table)


def records(cap: Capture, stream: BinaryIO, hdr: NetmonHeader, diag: Diagnostics) -> Iterator[tuple]:
    trailer = _TRAILER_SIZE.get(hdr.minor, 15)
    unpack_rec = _RECORD.unpack_from
    buf = b""
    wstart = 0
    frame = 0
    t = 0.0
    file_linktype = hdr.linktype
    try:
        for (offset,) in struct.iter_unpack("<I", hdr.table):
            rel = offset - wstart
            if rel < 0 or rel > len(buf):
                # Out of sequence: seek. In sequence (the usual case) the window just slides on, so a
                # gzip-compressed file is never rewound.
                stream.seek(offset)
                buf, wstart, rel = b"", offset, 0
            need = 16
            while True:
                if rel + need > len(buf):
                    chunk = read_chunk(stream, max(CHUNK, need), diag, frame + 1)
                    if chunk is None:
                        return
                    if not chunk:
                        truncated(diag, frame + 1, len(buf) - rel, need)
                        return
                    buf, wstart, rel = buf[rel:] + chunk, wstart + rel, 0
                    continue
                if need > 16:
                    break
                delta_us, _orig, incl = unpack_rec(buf, rel)
                if incl > MAX_RECORD:
                    diag.warn(frame + 1, f"frame {frame + 1}: record header claims {incl} bytes, so the file "
                                         "is damaged there; reading stopped")
                    return
                need = 16 + incl + trailer
                if need == 16:
                    break
            data_end = rel + 16 + incl
            linktype = file_linktype
            if trailer:
                network = buf[data_end] | buf[data_end + 1] << 8
                if network in _SKIPPED:
                    continue
                linktype = media_to_linktype(network)
            if trailer == 15:
                filetime = struct.unpack_from("<Q", buf, data_end + 6)[0]
                t = (filetime - _FILETIME_EPOCH) / 10_000_000
            else:
                delta = (delta_us * 10) & 0xFFFFFFFFFFFFFFFF  # Microsoft: scale, then read as signed
                if delta >= 1 << 63:
                    delta -= 1 << 64
                t = (hdr.start_ns + delta * 100) / 1_000_000_000
            frame += 1
            if frame == 1:
                cap.start = t
            cap.packets = frame
            yield frame, t, linktype, buf[rel + 16:data_end]
    finally:
        cap.packets = frame
        if frame:
            cap.end = t
