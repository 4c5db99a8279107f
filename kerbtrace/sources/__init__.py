"""Capture file readers: pcap, pcapng and NetMon 2.x, plain or gzip-compressed.

Every reader streams the file in large chunks and yields one tuple per frame, numbered exactly as
Wireshark numbers them (`frame.number`), so a finding can always be checked in Wireshark. A damaged
or cut-short file yields every frame before the damage and a warning naming the frame.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.sources import netmon, pcap, pcapng
from kerbtrace.sources.common import CaptureError

__all__ = ["Capture", "CaptureError", "open_capture", "open_stream"]

Record = tuple[int, float, int, bytes]


class Capture:
    """An opened capture; iterate it once for (frame_number, epoch_time, linktype, data)."""

    def __init__(self, path: str, fmt: str, raw: BinaryIO, stream: BinaryIO, header: object,
                 diag: Diagnostics, size: int) -> None:
        self.path = path
        self.format = fmt
        self.packets = 0
        self.start: float | None = None
        self.end: float | None = None
        self.size = size
        self._raw = raw
        self._stream = stream
        self._header = header
        self._diag = diag
        self._iterated = False
        #: Set by a reader other than this object's own (the prefilter's libpcap): bytes it consumed so far.
        self.read_position: int | None = None

    def position(self) -> int:
        """Bytes of the file consumed so far (compressed bytes for .gz), for progress bars."""
        if self.read_position is not None:
            return self.read_position
        if self._raw.closed:
            return self.size
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return self.size

    def __iter__(self) -> Iterator[Record]:
        if self._iterated:
            raise RuntimeError("a Capture can be iterated only once")
        self._iterated = True
        kind = self.format.removesuffix(".gz")
        if kind == "pcapng":
            return pcapng.records(self, self._stream, self._header, self._diag)
        if kind == "netmon2":
            return netmon.records(self, self._stream, self._header, self._diag)
        return pcap.records(self, self._stream, self._header, self._diag)

    def close(self) -> None:
        try:
            if self._stream is not self._raw:
                self._stream.close()
        finally:
            self._raw.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_GZIP_MAGIC = b"\x1f\x8b"


def open_capture(path: str | os.PathLike, diag: Diagnostics) -> Capture:
    """Open a capture and read its file header; CaptureError says in plain words why it is unusable."""
    name = os.fspath(path)
    try:
        raw = open(name, "rb")  # noqa: SIM115 - closed by Capture.close
    except OSError as exc:
        raise CaptureError(f"cannot open {name}: {exc.strerror or exc}") from None
    try:
        size = os.fstat(raw.fileno()).st_size
        head = raw.read(4)
        compressed = head[:2] == _GZIP_MAGIC
        stream: BinaryIO = raw
        if compressed:
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
            try:
                head = stream.read(4)
            except (OSError, EOFError, zlib.error) as exc:
                raise CaptureError(f"{name} is gzip-compressed but cannot be decompressed: {exc}") from None
        fmt, header = _read_header(name, head, stream)
        if compressed:
            fmt += ".gz"
        return Capture(name, fmt, raw, stream, header, diag, size)
    except CaptureError:
        raw.close()
        raise
    except (OSError, EOFError, struct.error) as exc:
        raw.close()
        raise CaptureError(f"cannot read {name}: {exc}") from None


def open_stream(stream: BinaryIO, name: str, diag: Diagnostics) -> Capture:
    """A capture arriving on a stream (dumpcap writing pcap or pcapng to a pipe): read as it comes, never
    sought; CaptureError if it does not start like a capture."""
    try:
        fmt, header = _read_header(name, stream.read(4), stream)
    except (OSError, EOFError, struct.error) as exc:
        raise CaptureError(f"cannot read {name}: {exc}") from None
    return Capture(name, fmt, stream, stream, header, diag, 0)


def _read_header(name: str, head: bytes, stream: BinaryIO) -> tuple[str, object]:
    if len(head) < 4:
        raise CaptureError(f"{name} is not a capture file: it is empty or shorter than any capture header")
    if head in pcap.MAGICS:
        header = pcap.read_header(name, head, stream)
        return ("pcap-nsec" if header.nsec else "pcap"), header
    if head == pcapng.SHB_TYPE:
        return "pcapng", pcapng.read_header(name, head, stream)
    if head == netmon.MAGIC:
        return "netmon2", netmon.read_header(name, head, stream)
    if head == netmon.MAGIC_1X:
        raise CaptureError(f"{name} is a NetMon 1.x capture; only NetMon 2.x (NetMon 3.x files) is read. "
                           "Convert it with: editcap -F pcapng <in> <out>")
    raise CaptureError(f"{name} is not a capture file this tool reads (pcap, pcapng, NetMon 2.x, or "
                       f"those gzip-compressed): it starts with bytes {head.hex(' ')}")
