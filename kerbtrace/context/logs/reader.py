"""Streaming, bounded, line-numbered reading of text logs (UTF-8, UTF-16 with BOM, ANSI).

A log can be gigabytes and can hold anything: lines are read one at a time with a length bound, an
over-long line is skipped to its end without being held, and a line of binary data is reported with
its number instead of being parsed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from kerbtrace.context.logs.records import LogFile

MAX_LINE = 64 * 1024  # characters; longer lines are skipped with a warning
MAX_BINARY_LINES = 20  # after this many binary lines the file is not read further
SNIFF_BYTES = 4096


def _encoding(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) >= 4 and head[1:2] == b"\x00" and head[3:4] == b"\x00" and head[0:1] != b"\x00":
        return "utf-16-le"  # UTF-16 without BOM (CMTrace logs copied out of some tools)
    return "utf-8-sig"


def sniff(path: str | Path, limit: int = SNIFF_BYTES) -> str:
    """The first few KiB of a file as text (for recognising the kind of log by content)."""
    with open(path, "rb") as f:
        head = f.read(limit)
    return head.decode(_encoding(head), errors="replace")


def _binary(line: str) -> bool:
    if "\x00" in line:
        return True
    bad = sum(1 for ch in line if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\r\n\x0c"))
    return bad > max(4, len(line) // 10)


def read_lines(log: LogFile) -> Iterator[tuple[int, str]]:
    """(line number, text without line end) for every readable line of `log.path`; problems become
    warnings on `log` with their line number and reading goes on."""
    try:
        raw = open(log.path, "rb")  # noqa: SIM115 - closed below, also on early exit
    except OSError as exc:
        log.warn(None, f"cannot be read: {exc.strerror or exc}")
        return
    with raw:
        head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
        text = io.TextIOWrapper(raw, encoding=_encoding(head), errors="replace", newline=None)
        number = 0
        binary = 0
        while True:
            try:
                line = text.readline(MAX_LINE + 1)
            except (OSError, UnicodeError) as exc:
                log.warn(number + 1, f"read error ({exc}); rest of the file skipped")
                return
            if not line:
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
