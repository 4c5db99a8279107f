"""Pieces shared by the readers: the error type and bounded, failure-tolerant chunk reads."""

from __future__ import annotations

import zlib
from typing import BinaryIO

from kerbtrace.diagnostics import Diagnostics

#: Bytes read per refill: big enough that the per-chunk overhead vanishes, small enough to stay cheap.
CHUNK = 1 << 20

#: Largest record accepted. Wireshark refuses records over 256 KiB; TSO captures stay far below.
MAX_RECORD = 1 << 22



class CaptureError(Exception):
    """The input is not a capture file this tool can read (the message says why, in plain words)."""


def read_chunk(stream: BinaryIO, size: int, diag: Diagnostics, frame: int) -> bytes | None:
    """Up to `size` bytes (b"" at the end); None after a read error or damaged gzip stream, which is
    reported here, so the caller just stops."""
    # read1 piece by piece: a gzip stream cut short raises on the read that hits the cut, and a plain
    # read(size) would throw away everything it had already decompressed in that call.
    parts: list[bytes] = []
    got = 0
    read = getattr(stream, "read1", stream.read)
    # A live stream (a pipe from a capture process) hands over what has arrived: waiting for a full
    # chunk would hold packets back until a megabyte of traffic has passed.
    partial = getattr(stream, "partial_reads", False)
    try:
        while got < size:
            piece = read(size - got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
            if partial:
                break
    except (OSError, EOFError, zlib.error) as exc:
        if parts:
            return b"".join(parts)  # the next call hits the same error with nothing left, and reports it
        diag.warn(frame, f"reading stopped before frame {frame}: the file cannot be read further ({exc})")
        return None
    return b"".join(parts) if len(parts) != 1 else parts[0]


def truncated(diag: Diagnostics, frame: int, have: int, need: int) -> None:
    diag.warn(frame, f"frame {frame} is cut short: the file ends {have} bytes into a record of {need} bytes; "
                     f"the {frame - 1} frames before it were read")
