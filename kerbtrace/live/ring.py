"""A rotating ring of pcapng files holding the packets the live capture read.

dumpcap cannot write a ring and a pipe at once, so kerbtrace writes what it reads (the packets the
capture filter kept: the MP's HTTP(S), Kerberos, DNS and IP fragments). Each file is a complete pcapng
(section header, one interface per link type, enhanced packet blocks, microsecond time stamps) that
`kerbtrace analyze`, Wireshark and mergecap read; the oldest file is deleted when the ring is full.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_SHB = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)


def _idb(linktype: int) -> bytes:
    # snaplen 0 (no limit); if_tsresol option (9) = 6: microseconds; end of options
    options = struct.pack("<HHB3x", 9, 1, 6) + struct.pack("<HH", 0, 0)
    length = 16 + len(options) + 4
    return struct.pack("<IIHHI", 1, length, linktype, 0, 0) + options + struct.pack("<I", length)


def _epb(iface: int, time: float, data: bytes) -> bytes:
    ticks = round(time * 1_000_000)
    pad = -len(data) % 4
    length = 32 + len(data) + pad
    return (struct.pack("<IIIIIII", 6, length, iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
            + data + b"\0" * pad + struct.pack("<I", length))


class PcapngRing:
    """`write` packets; files `<stem>_NNNNN.pcapng` of at most `file_bytes`, at most `files` of them."""

    def __init__(self, path: str | Path, file_bytes: int, files: int) -> None:
        if file_bytes < 4096 or files < 1:
            raise ValueError("a ring needs files of at least 4 KB and at least one file")
        path = Path(path)
        self.directory = path.parent
        self.stem = path.name.removesuffix(".pcapng").removesuffix(".pcap")
        self.file_bytes = file_bytes
        self.files = files
        self.number = 0
        self.written: list[Path] = []  # files of the ring still on disk, oldest first
        self._out: BinaryIO | None = None
        self._size = 0
        self._interfaces: dict[int, int] = {}

    def write(self, time: float, linktype: int, data: bytes) -> None:
        if self._out is None or self._size >= self.file_bytes:
            self._rotate()
        assert self._out is not None
        iface = self._interfaces.get(linktype)
        if iface is None:
            iface = self._interfaces[linktype] = len(self._interfaces)
            self._put(_idb(linktype))
        self._put(_epb(iface, time, data))

    def _put(self, block: bytes) -> None:
        assert self._out is not None
        self._out.write(block)
        self._size += len(block)

    def _rotate(self) -> None:
        self.close()
        self.number += 1
        path = self.directory / f"{self.stem}_{self.number:05d}.pcapng"
        self._out = open(path, "wb")  # noqa: SIM115 - closed by close()/_rotate()
        self.written.append(path)
        self._size = 0
        self._interfaces = {}
        self._put(_SHB)
        while len(self.written) > self.files:
            self.written.pop(0).unlink(missing_ok=True)

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
