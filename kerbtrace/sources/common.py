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
_unfrozen_bytes = 0
_froze = False


class CaptureError(Exception):
    """The input is not a capture file this tool can read (the message says why, in plain words)."""


def read_chunk(stream: BinaryIO, size: int, diag: Diagnostics, frame: int) -> bytes | None:
    """Up to `size` bytes (b"" at the end); None after a read error or damaged gzip stream, which is
    reported here, so the caller just stops."""
    global _unfrozen_bytes, _froze
    try:
        data = stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        diag.warn(frame, f"reading stopped before frame {frame}: the file cannot be read further ({exc})")
        return None
    # A long capture piles up live state (connections, clients, their messages) that CPython's
    # cyclic collector would rescan on every full collection: 15-20 % of a 1 GB run. Every
    # FREEZE_EVERY bytes the survivors are moved to the permanent generation; reference counting
    # still frees them, and `thaw` hands them back to the collector when the read ends.
    _unfrozen_bytes += len(data)
    if _unfrozen_bytes >= FREEZE_EVERY:
        _unfrozen_bytes = 0
        _froze = True
        gc.freeze()
    return data


def thaw() -> None:
    """End of a read: objects frozen by `read_chunk` are collectable again (cycles among them too)."""
    global _froze
    if _froze:
        _froze = False
        gc.unfreeze()


def truncated(diag: Diagnostics, frame: int, have: int, need: int) -> None:
    diag.warn(frame, f"frame {frame} is cut short: the file ends {have} bytes into a record of {need} bytes; "
                     f"the {frame - 1} frames before it were read")
