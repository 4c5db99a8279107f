"""Streaming, bounded, line-numbered reading of text logs (UTF-8, UTF-16, ANSI; gzip-compressed too).

A log can be gigabytes and can hold anything: lines are read one at a time with a length bound, an
over-long line is skipped to its end without being held, and a line of binary data is reported with
its number instead of being parsed.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kerbtrace.context.logs.records import LogFile
from kerbtrace.context.text import text_encoding

MAX_LINE = 64 * 1024  # characters; longer lines are skipped with a warning
MAX_BINARY_LINES = 20  # after this many binary lines the file is not read further
SNIFF_BYTES = 4096
GZIP_MAGIC = b"\x1f\x8b"


class _Gunzip(io.RawIOBase):
    """A gzip stream read one member chunk at a time; a stream cut short ends the data (keeping every byte
    decompressed before the cut) and says why in `cut`, instead of losing a buffer's worth to the error."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self._raw = raw
        self.cut: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.cut is not None:
            return 0
        try:
            data = self._gz.read1(len(buffer))
        except (EOFError, OSError, zlib.error) as exc:
            self.cut = str(exc) or type(exc).__name__
            return 0
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gz.close()
        self._raw.close()
        super().close()


def _open(path: str | Path) -> io.BufferedReader:
    """The file's bytes, gunzipped on the fly when it is gzip (logs are often collected compressed)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if raw.peek(2)[:2] == GZIP_MAGIC:
        return io.BufferedReader(_Gunzip(raw))
    return raw


def sniff(path: str | Path, limit: int = SNIFF_BYTES) -> str:
    """The first few KiB of a file as text (for recognising the kind of log by content)."""
    with _open(path) as f:
        try:
            head = f.read(limit)
        except (OSError, EOFError):
            return ""
    return head.decode(text_encoding(head), errors="replace")


def _binary(line: str) -> bool:
    if "\x00" in line:
        return True
    bad = sum(1 for ch in line if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\r\n\x0c"))
    return bad > max(4, len(line) // 10)


def read_lines(log: LogFile) -> Iterator[tuple[int, str]]:
    """(line number, text without line end) for every readable line of `log.path`; problems become
    warnings on `log` with their line number and reading goes on."""
    try:
        raw = _open(log.path)
        head = raw.peek(4)[:4]
    except (OSError, EOFError) as exc:
        log.warn(None, f"cannot be read: {getattr(exc, 'strerror', None) or exc}")
        return
    gunzip = raw.raw if isinstance(raw.raw, _Gunzip) else None
    with raw:
        text = io.TextIOWrapper(raw, encoding=text_encoding(head), errors="replace", newline=None)
        number = 0
        binary = 0
        while True:
            try:
                line = text.readline(MAX_LINE + 1)
            except (OSError, EOFError, UnicodeError) as exc:  # EOFError: a gzip stream cut short
                log.warn(number + 1, f"read error ({exc}); rest of the file skipped")
                return
            if not line:
                if gunzip is not None and gunzip.cut is not None:
                    log.warn(number, f"gzip stream cut short ({gunzip.cut}): nothing after this line")
                return
            number += 1
            log.lines = number
            if len(line) > MAX_LINE and not line.endswith("\n"):
                log.warn(number, f"line longer than {MAX_LINE} characters; skipped")
                while line and not line.endswith("\n"):  # drop the rest of the line, a bounded piece at a time
                    line = text.readline(MAX_LINE)
                continue
            line = line.rstrip("\r\n")
            if _binary(line):
                binary += 1
                log.warn(number, "binary data, not text; line skipped")
                if binary >= MAX_BINARY_LINES:
                    log.warn(number, f"{binary} binary lines: not a text log, rest of the file skipped")
                    return
                continue
            yield number, line
