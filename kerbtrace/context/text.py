"""Reading text an admin saved on Windows: UTF-16 from PowerShell's ``>``, UTF-8 with or without a BOM,
or the console's ANSI code page — bounded in size, with a clear error instead of a traceback."""

from __future__ import annotations

from pathlib import Path

MAX_TEXT_BYTES = 64 * 1024 * 1024


class ContextInputError(Exception):
    """A context file (directory export, log) that cannot be read at all; the message names the file."""


def decode_text(data: bytes) -> str:
    """Decode by BOM (UTF-16 LE/BE, UTF-8), else UTF-16 LE when every other byte is NUL, else UTF-8,
    else cp1252 (never fails)."""
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le", "replace")
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be", "replace")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    head = data[:200]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return data.decode("utf-16-le", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def read_text(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The file's text, line ends kept; raises ContextInputError when missing, unreadable or too big."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise ContextInputError(f"{p}: {size} bytes, more than the {max_bytes} bytes read from a text file")
        data = p.read_bytes()
    except OSError as exc:
        raise ContextInputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in data[:4096] and not (data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[1:200:2].count(0) > 10):
        raise ContextInputError(f"{p}: binary data, not text")
    return decode_text(data)
