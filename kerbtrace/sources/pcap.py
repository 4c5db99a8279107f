"""Classic libpcap files: both byte orders, microsecond and nanosecond time stamps."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.sources.common import CHUNK, MAX_RECORD, CaptureError, read_chunk, truncated

if TYPE_CHECKING:
    from kerbtrace.sources import Capture

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}


@dataclass(slots=True)
class PcapHeader:
    endian: str
    nsec: bool
    linktype: int
    snaplen: int


def read_header(name: str, magic: bytes, stream: BinaryIO) -> PcapHeader:
    endian, nsec = MAGICS[magic]
    rest = stream.read(20)
    if len(rest) < 20:
        raise CaptureError(f"{name} is a pcap file cut short inside its 24-byte file header")
    _major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack(endian + "HHiIII", rest)
    # The upper bits of the link-type field carry FCS information, not the link type.
    return PcapHeader(endian, nsec, network & 0xFFFF, snaplen)


def records(cap: Capture, stream: BinaryIO, hdr: PcapHeader, diag: Diagnostics) -> Iterator[tuple]:
    """Yield (frame, time, linktype, data): the hottest loop of the tool, so everything is a local and
    `cap.packets` is brought up to date once per chunk (and exactly at the end)."""
    unpack = struct.Struct(hdr.endian + "IIII").unpack_from
    scale = 1e-9 if hdr.nsec else 1e-6
    linktype = hdr.linktype
    buf = b""
    off = 0
    frame = 0
    t = 0.0
    try:
        while True:
            n = len(buf)
            if frame == 0 and n >= 16:
                sec, frac = unpack(buf, off)[:2]
                cap.start = sec + frac * scale
            while off + 16 <= n:
                sec, frac, incl, _orig = unpack(buf, off)
                end = off + 16 + incl
                if end > n:
                    break
                frame += 1
                t = sec + frac * scale
                yield frame, t, linktype, buf[off + 16:end]
                off = end
            cap.packets = frame
            have = n - off
            need = 16
            if have >= 16:
                incl = unpack(buf, off)[2]
                if incl > MAX_RECORD:
                    diag.warn(frame + 1, f"frame {frame + 1}: record header claims {incl} bytes, so the file "
                                         "is damaged there; reading stopped")
                    return
                need = incl + 16
            more = read_chunk(stream, max(CHUNK, need), diag, frame + 1)
            if not more:
                if have and more is not None:
                    truncated(diag, frame + 1, have, need)
                return
            buf = buf[off:] + more
            off = 0
    finally:
        cap.packets = frame
        if frame:
            cap.end = t
