"""Reading text an admin saved on Windows: UTF-16 from PowerShell's ``>``, UTF-8 with or without a BOM,
or the console's ANSI code page — bounded in size, with a clear error instead of a traceback; and the
time stamps such files hold."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

MAX_TEXT_BYTES = 64 * 1024 * 1024


class ContextInputError(Exception):
    """A context file (directory export, log) that cannot be read at all; the message names the file."""


def text_encoding(head: bytes) -> str:
    """The codec for a file that starts with `head`: UTF-16 by its BOM; UTF-16 LE without a BOM when a
    quarter of the odd bytes are NUL (ASCII text saved as UTF-16); else UTF-8, a BOM skipped."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    head = head[:200]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return "utf-16-le"
    return "utf-8-sig"


def decode_text(data: bytes) -> str:
    """Decode by `text_encoding`; UTF-8 that does not decode is the console's ANSI code page, cp1252
    (never fails)."""
    encoding = text_encoding(data)
    if encoding != "utf-8-sig":
        return data.decode(encoding, "replace")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def read_bounded(path: str | Path, max_bytes: int, what: str = "a text file") -> bytes:
    """A context file's bytes; raises ContextInputError when missing, unreadable or larger than `max_bytes`."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise ContextInputError(f"{p}: {size} bytes, more than the {max_bytes} bytes read from {what}")
        return p.read_bytes()
    except OSError as exc:
        raise ContextInputError(f"{p}: cannot read ({exc.strerror or exc})") from None


def read_text(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The file's text, line ends kept; raises ContextInputError when missing, unreadable or too big."""
    p = Path(path)
    data = read_bounded(p, max_bytes)
    if b"\x00" in data[:4096] and text_encoding(data) == "utf-8-sig":
        raise ContextInputError(f"{p}: binary data, not text")
    return decode_text(data)


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*(Z|UTC|[+-]\d\d:?\d\d)?",
                  re.IGNORECASE)
_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")
_LOCAL_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S")


def parse_time(text: str) -> float | None:
    """UTC epoch seconds from SystemTime (ISO 8601, 7 fractional digits), `/Date(ms)/` (PowerShell 5 JSON),
    or a CSV's local time (read as UTC)."""
    text = text.strip()
    if not text:
        return None
    match = _MS_DATE.search(text)
    if match:
        return int(match.group(1)) / 1000.0
    match = _ISO.match(text)
    if match:
        y, mo, d, h, mi, s = (int(match.group(i)) for i in range(1, 7))
        fraction = float("0." + match.group(7)) if match.group(7) else 0.0
        try:
            moment = datetime(y, mo, d, h, mi, s, tzinfo=UTC)
        except ValueError:
            return None
        zone = (match.group(8) or "").upper()
        if zone and zone not in ("Z", "UTC"):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return moment.timestamp() + fraction
    for fmt in _LOCAL_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    try:
        return float(text)
    except ValueError:
        return None
