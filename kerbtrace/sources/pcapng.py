"""pcapng files: several sections of either byte order, interfaces with their own link type and clock.

Packets come from Enhanced (EPB), Simple (SPB) and obsolete Packet (OPB) blocks; every other block
type is skipped by its length, as the format intends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.sources.common import CHUNK, CaptureError, read_chunk, truncated

if TYPE_CHECKING:
    from kerbtrace.sources import Capture

SHB_TYPE = b"\x0a\x0d\x0d\x0a"
_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
MAX_BLOCK = 1 << 26

_EPB, _IDB, _SPB, _OPB = 6, 1, 3, 2
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14


@dataclass(slots=True)
class PcapngHeader:
    head: bytes  # the first 12 bytes of the file, re-read by `records`


def read_header(name: str, magic: bytes, stream: BinaryIO) -> PcapngHeader:
    rest = stream.read(8)
    if len(rest) < 8:
        raise CaptureError(f"{name} is a pcapng file cut short inside its first block")
    if rest[4:8] not in _BOM:
        raise CaptureError(f"{name} starts like a pcapng file but its byte-order mark is wrong "
                           f"({rest[4:8].hex(' ')}): not a capture, or damaged")
    return PcapngHeader(magic + rest)


def _interface(body: bytes, start: int, stop: int, endian: str) -> tuple[int, int, int, int]:
    """(linktype, ticks per second, offset seconds, snaplen) from an Interface Description Block."""
    linktype, _res, snaplen = struct.unpack_from(endian + "HHI", body, start)
    div, offset = 1_000_000, 0
    pos = start + 8
    while pos + 4 <= stop:
        code, length = struct.unpack_from(endian + "HH", body, pos)
        if code == 0:
            break
        value = body[pos + 4:pos + 4 + length]
        if code == _OPT_TSRESOL and length >= 1:
            exp = value[0]
            div = 2 ** (exp & 0x7F) if exp & 0x80 else 10 ** exp
        elif code == _OPT_TSOFFSET and length >= 8:
            offset = struct.unpack(endian + "q", value[:8])[0]
        pos += 4 + ((length + 3) & ~3)
    return linktype, div, offset, snaplen


def records(cap: Capture, stream: BinaryIO, hdr: PcapngHeader, diag: Diagnostics) -> Iterator[tuple]:
    structs = {e: (struct.Struct(e + "II").unpack_from, struct.Struct(e + "I").unpack_from,
                   struct.Struct(e + "IIIII").unpack_from) for e in "<>"}
    endian = "<"
    unpack2, unpack1, unpack5 = structs[endian]
    interfaces: list[tuple[int, int, int, int]] = []
    buf = hdr.head
    off = 0
    frame = 0
    t = 0.0
    try:
        while True:
            have = len(buf) - off
            if have < 12:
                more = read_chunk(stream, CHUNK, diag, frame + 1)
                if not more:
                    if have and more is not None:
                        truncated(diag, frame + 1, have, 12)
                    return
                buf = buf[off:] + more
                off = 0
                continue
            if buf[off:off + 4] == SHB_TYPE:
                bom = buf[off + 8:off + 12]
                if bom not in _BOM:
                    diag.warn(frame + 1, f"a section header after frame {frame} has a wrong byte-order mark: "
                                         "the file is damaged there; reading stopped")
                    return
                endian = _BOM[bom]
                unpack2, unpack1, unpack5 = structs[endian]
                interfaces = []
            btype, blen = unpack2(buf, off)
            if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                diag.warn(frame + 1, f"block after frame {frame} has an impossible length ({blen}): the file "
                                     "is damaged there; reading stopped")
                return
            if blen > have:
                more = read_chunk(stream, max(CHUNK, blen), diag, frame + 1)
                if not more:
                    if more is not None:
                        truncated(diag, frame + 1, have, blen)
                    return
                buf = buf[off:] + more
                off = 0
                continue
            if unpack1(buf, off + blen - 4)[0] != blen:
                diag.warn(frame + 1, f"block after frame {frame} does not end with its own length: the file "
                                     "is damaged there; reading stopped")
                return
            if btype == _EPB or btype == _OPB:
                if btype == _EPB:
                    iface, hi, lo, caplen, _orig = unpack5(buf, off + 8)
                    start = off + 28
                else:
                    iface, _drops, hi, lo, caplen, _orig = struct.unpack_from(endian + "HHIIII", buf, off + 8)
                    start = off + 28
                if caplen > blen - 32 or iface >= len(interfaces):
                    why = (f"claims {caplen} bytes in a {blen}-byte block" if caplen > blen - 32
                           else f"refers to interface {iface}, which the file never describes")
                    diag.warn(frame + 1, f"frame {frame + 1} {why}: the file is damaged there; reading stopped")
                    return
                linktype, div, toff, _snap = interfaces[iface]
                frame += 1
                t = (hi << 32 | lo) / div + toff
                if frame == 1:
                    cap.start = t
                cap.packets = frame
                yield frame, t, linktype, buf[start:start + caplen]
            elif btype == _IDB:
                interfaces.append(_interface(buf, off + 8, off + blen - 4, endian))
            elif btype == _SPB:
                if not interfaces:
                    diag.warn(frame + 1, f"frame {frame + 1} comes before any interface description: the file "
                                         "is damaged there; reading stopped")
                    return
                linktype, _div, _toff, snap = interfaces[0]
                size = min(unpack1(buf, off + 8)[0], blen - 16)
                if snap:
                    size = min(size, snap)
                frame += 1
                if frame == 1:
                    cap.start = t
                cap.packets = frame
                # A simple packet block has no time stamp: keep the previous frame's time.
                yield frame, t, linktype, buf[off + 12:off + 12 + size]
            off += blen
    finally:
        cap.packets = frame
        if frame:
            cap.end = t
