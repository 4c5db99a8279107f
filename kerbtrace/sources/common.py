"""Pieces shared by the readers: the error type and bounded, failure-tolerant chunk reads."""

from __future__ import annotations

import gc
import zlib
from typing import BinaryIO

from kerbtrace.diagnostics import Diagnostics

#: Bytes read per refill: big enough that the per-chunk overhead vanishes, small enough to stay cheap.
CHUNK = 1 << 20

#: Largest record accepted. Wireshark refuses records over 256 KiB; TSO captures stay far below.
MAX_RECORD = 1 << 22


#: Bytes read between two moves of the live objects out of the cyclic collector's sight (see `read_chunk`).
FREEZE_EVERY = 16 * CHUNK
#: Allocations between young collections while a long read lasts (CPython's default is 700).
GC_THRESHOLD = 20_000
_unfrozen_bytes = 0
_saved_threshold: tuple[int, ...] | None = None


class CaptureError(Exception):
    """The input is not a capture file this tool can read (the message says why, in plain words)."""


def read_chunk(stream: BinaryIO, size: int, diag: Diagnostics, frame: int) -> bytes | None:
    """Up to `size` bytes (b"" at the end); None after a read error or damaged gzip stream, which is
    reported here, so the caller just stops."""
    global _unfrozen_bytes, _saved_threshold
    try:
        data = stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        diag.warn(frame, f"reading stopped before frame {frame}: the file cannot be read further ({exc})")
        return None
    # A long capture piles up live state (connections, clients, their messages) that CPython's
    # cyclic collector would rescan on every full collection: 15-20 % of a 1 GB run, and young
    # collections every 700 allocations cost 4 % more. Every FREEZE_EVERY bytes the survivors are
    # moved to the permanent generation and collections are made rarer while the read lasts; reference
    # counting still frees each object as soon as it is unused, and `thaw` restores both at the end.
    _unfrozen_bytes += len(data)
    if _unfrozen_bytes >= FREEZE_EVERY:
        _unfrozen_bytes = 0
        if _saved_threshold is None:
            _saved_threshold = gc.get_threshold()
            gc.set_threshold(max(_saved_threshold[0], GC_THRESHOLD), *_saved_threshold[1:])
        gc.freeze()
    return data


def thaw() -> None:
    """End of a read: objects frozen by `read_chunk` are collectable again (cycles among them too)."""
    global _saved_threshold
    if _saved_threshold is not None:
        gc.set_threshold(*_saved_threshold)
        _saved_threshold = None
        gc.unfreeze()


def truncated(diag: Diagnostics, frame: int, have: int, need: int) -> None:
    diag.warn(frame, f"frame {frame} is cut short: the file ends {have} bytes into a record of {need} bytes; "
                     f"the {frame - 1} frames before it were read")
