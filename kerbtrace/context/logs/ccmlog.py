"""ConfigMgr logs in the CMTrace format and the older SMS trace format, multi-line entries included.

CMTrace: ``<![LOG[text]LOG]!><time="HH:MM:SS.fff+BIAS" date="MM-DD-YYYY" component="…" context="" type="1"
thread="…" file="…">``, the bias in minutes with UTC = local + bias. SMS trace: ``text $$<component><MM-DD-YYYY
HH:MM:SS.fff+BIAS><thread=…>``. A message may span several lines; the entry keeps the number of its
first line.
"""

from __future__ import annotations

import calendar
import itertools
import re
import time as _time
from collections.abc import Iterator

from kerbtrace.context.logs.reader import read_lines
from kerbtrace.context.logs.records import LogFile, LogRecord

MAX_ENTRY_LINES = 200  # a multi-line entry longer than this is cut (with a warning)
MAX_RECORDS = 200_000  # per file; ConfigMgr rolls its logs over long before this
_KEEP = ("component", "thread", "type")  # the attributes the join reads; time and date become `time`

_CM_START = "<![LOG["
_CM_END = re.compile(r"\]LOG\]!><(?P<attrs>[^>]*)>")
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')
_CM_TIME = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([+-])(\d+))?")
_SMS_TAIL = re.compile(r"\$\$<(?P<component>[^>]*)><(?P<when>[^>]*)><thread=(?P<thread>[^>]*)>\s*$")
_SMS_TIME = re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([+-])(\d+))?")
_SMS_OLD_TIME = re.compile(r"\w{3} (\w{3}) (\d{1,2}) (\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))? (\d{4})")


def _utc(year: int, month: int, day: int, hh: int, mm: int, ss: int, frac: str | None, sign: str | None,
         bias: str | None) -> float | None:
    try:
        base = calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0))
        _time.gmtime(base)
    except (ValueError, OverflowError):
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61):
        return None
    seconds = base + (float(f"0.{frac}") if frac else 0.0)
    if bias:
        seconds += int(bias) * 60 * (-1 if sign == "-" else 1)  # UTC = local + bias
    return seconds


def cmtrace_time(clock: str, date: str) -> float | None:
    """UTC seconds of a CMTrace `time`/`date` pair (date may lack zero padding)."""
    t = _CM_TIME.fullmatch(clock.strip())
    parts = date.strip().split("-")
    if t is None or len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    month, day, year = (int(p) for p in parts)
    hh, mm, ss, frac, sign, bias = t.groups()
    return _utc(year, month, day, int(hh), int(mm), int(ss), frac, sign, bias)


def sms_time(when: str) -> float | None:
    m = _SMS_TIME.search(when)
    if m is not None:
        month, day, year, hh, mm, ss, frac, sign, bias = m.groups()
        return _utc(int(year), int(month), int(day), int(hh), int(mm), int(ss), frac, sign, bias)
    m = _SMS_OLD_TIME.search(when)  # 1999 form, named time zone: taken as UTC, the join estimates the offset
    if m is not None:
        mon, day, hh, mm, ss, frac, year = m.groups()
        try:
            month = _time.strptime(mon, "%b").tm_mon
        except ValueError:
            return None
        return _utc(int(year), month, int(day), int(hh), int(mm), int(ss), frac, None, None)
    return None


def _one_line(parts: list[str]) -> str:
    return " / ".join(p.strip() for p in parts if p.strip())


def _entries(log: LogFile, lines: Iterator[tuple[int, str]], marker: str | None, end: re.Pattern[str]
             ) -> Iterator[tuple[int, list[str], re.Match[str]]]:
    """(first line number, message lines, end match) per entry: lines gather until `end` matches; with a
    `marker`, an entry starts only at it (text before it is reported and skipped)."""
    pending: list[str] = []
    start = 0
    for number, line in lines:
        if not pending:
            if marker is not None:
                if marker not in line:
                    if line.strip():
                        log.warn(number, "text outside a log entry; skipped")
                    continue
                line = line[line.index(marker) + len(marker):]
            start = number
        pending.append(line)
        m = end.search(line)
        if m is None:
            if len(pending) >= MAX_ENTRY_LINES:
                log.warn(start, f"entry not closed after {MAX_ENTRY_LINES} lines; cut")
                pending.clear()
            continue
        pending[-1] = line[:m.start()]
        yield start, pending, m
        if marker is not None and marker in line[m.end():]:
            log.warn(number, "several entries on one line; only the first is read")
        pending = []
    if pending:
        log.warn(start, "file ends inside an entry (truncated); the partial entry is skipped")


def read_ccm_log(path: str, source: str, kind: str) -> LogFile:
    """Read a CMTrace or SMS-trace log (the first entry tells which); unreadable entries become warnings
    with their line number."""
    log = LogFile(path, source, kind)
    lines = read_lines(log)
    found = next(((n, text) for n, text in lines if text.strip()), None)
    if found is None:
        return log
    number, first = found
    lines = itertools.chain([found], lines)
    if _CM_START in first:
        for start, body, m in _entries(log, lines, _CM_START, _CM_END):
            attrs = dict(_ATTR.findall(m.group("attrs")))
            when = cmtrace_time(attrs.get("time", ""), attrs.get("date", ""))
            _add(log, start, _one_line(body), when, attrs, m.group(0))
    elif "$$<" in first:
        for start, body, m in _entries(log, lines, None, _SMS_TAIL):
            attrs = {"component": m.group("component"), "thread": m.group("thread").split(" ")[0]}
            _add(log, start, _one_line(body), sms_time(m.group("when")), attrs, m.group(0))
    else:
        log.warn(number, "neither a CMTrace nor an SMS trace entry: not read")
    return log


def _add(log: LogFile, number: int, text: str, when: float | None, attrs: dict[str, str], tail: str) -> None:
    if len(log.records) >= MAX_RECORDS:
        if not log.dropped_records:
            log.warn(number, f"more than {MAX_RECORDS} entries; the rest of the file is not kept")
        log.dropped_records += 1
        return
    if when is None:
        log.warn(number, f"entry time not readable ({tail[:120]!r}); kept without a time")
    kept = {k: attrs[k] for k in _KEEP if k in attrs}
    log.records.append(LogRecord(log.source, log.path, number, when, text, kept))
