"""IIS W3C extended logs (IIS 6 and 7+): fields in whatever order `#Fields:` gives, several header blocks
per file, `date`/`time` in UTC as IIS writes them.

Only the requests that speak to registration are kept: every request on the Windows-auth registration
endpoint, and failed requests (status >= 400) of the ConfigMgr client (`/ccm_system*`, `/sms_mp`, `CCM_*`
methods or the `ccmhttp` user agent). An MP's IIS log also holds every client's hourly policy and location
traffic and every other site's requests; holding those would cost memory and explain nothing.
"""

from __future__ import annotations

import calendar
import time as _time

from kerbtrace.codes import iis_status
from kerbtrace.context.logs.reader import read_lines
from kerbtrace.context.logs.records import LogFile, LogRecord

MAX_RECORDS = 100_000  # per file (about 1.3 KB each held): past this the rest of the file is not kept
# The fields the join and the verdicts read; the rest of a line stays in its text only.
KEEP = frozenset({"date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-username", "c-ip", "cs(user-agent)",
                  "sc-status", "sc-substatus", "sc-win32-status", "time-taken", "sc-bytes", "cs-host"})



def _int(value: str | None) -> int | None:
    if value is None or value == "-":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def status_of(record: LogRecord) -> tuple[int | None, int | None, int | None]:
    """(sc-status, sc-substatus, sc-win32-status) of an IIS record; None where the field is absent."""
    f = record.fields
    return _int(f.get("sc-status")), _int(f.get("sc-substatus")), _int(f.get("sc-win32-status"))


def leg_kind(record: LogRecord) -> str:
    """challenge | continue | success | failure | other: what one request on the registration endpoint
    did, as `codes.iis_status` classifies it. 401.2 (with 5 on IIS 7+, 2148074254 on IIS 6) is the normal
    challenge to the anonymous first request; 401.1 with 2148074254 (SEC_E_NO_CREDENTIALS) is a handshake
    leg still in progress."""
    status, sub, win32 = status_of(record)
    if status is None:
        return "other"
    if 200 <= status < 300:
        return "success"
    return {"challenge": "challenge", "handshake": "continue"}.get(iis_status(status, sub or 0, win32).outcome,
                                                                   "failure")


def describe_status(record: LogRecord) -> str:
    """`401.1 Logon failed; sc-win32-status 2148074252 = SEC_E_LOGON_DENIED (0x8009030C): …`"""
    status, sub, win32 = status_of(record)
    if status is None:
        return "no sc-status"
    decoded = iis_status(status, sub or 0, win32)
    code = f"{status}.{sub}" if sub is not None else str(status)
    words = decoded.code.name if not decoded.code.name.startswith("HTTP ") else ""
    out = f"{code} {words}".strip()
    kind = leg_kind(record)
    if kind == "challenge":
        out += " — the normal challenge to the anonymous first request, not a failure"
    elif kind == "continue":
        out += " — a handshake leg in progress (a multi-leg exchange such as NTLM)"
    if win32 and decoded.win32_info is not None:
        info = decoded.win32_info
        out += f"; sc-win32-status {win32} = {info.label()}: {info.meaning}"
    return out


def is_registration(record: LogRecord) -> bool:
    return "/ccm_system_windowsauth/request" in record.fields.get("cs-uri-stem", "").lower()


def _kept(fields: dict[str, str]) -> bool:
    stem = fields.get("cs-uri-stem", "").lower()
    if "/ccm_system_windowsauth/" in stem:
        return True
    ccm = (stem.startswith(("/ccm_system", "/sms_mp")) or fields.get("cs-method", "").upper().startswith("CCM_")
           or "ccmhttp" in fields.get("cs(user-agent)", "").lower())
    return ccm and (_int(fields.get("sc-status")) or 0) >= 400


_DAYS: dict[str, float | None] = {}


def _day(date: str) -> float | None:
    """Midnight UTC of a `YYYY-MM-DD` date (cached: a log has few dates and many lines)."""
    if date not in _DAYS:
        if len(_DAYS) > 10_000:
            _DAYS.clear()
        try:
            _DAYS[date] = float(calendar.timegm(_time.strptime(date, "%Y-%m-%d")))
        except ValueError:
            _DAYS[date] = None
    return _DAYS[date]


def _timestamp(date: str, clock: str) -> float | None:
    day = _day(date)
    parts = clock.split(".")[0].split(":")
    if day is None or len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    hh, mm, ss = (int(p) for p in parts)
    if hh > 23 or mm > 59 or ss > 60:
        return None
    return day + hh * 3600 + mm * 60 + ss


def read_iis(path: str) -> LogFile:
    """Read an IIS W3C log; lines the `#Fields:` directive does not describe are warnings."""
    log = LogFile(path, "iis", "iis")
    fields: list[str] | None = None
    header_date: str | None = None
    kept = 0
    for number, line in read_lines(log):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            key = key.strip().lower()
            if key == "fields":
                fields = [f.lower() for f in value.split()]
                if "time" not in fields:
                    log.warn(number, "#Fields has no 'time' field: times of this block are unknown")
            elif key == "date":
                header_date = value.strip().split(" ")[0] or None
                stamp = value.strip().split(" ")
                if log.opened is None and len(stamp) == 2:
                    log.opened = _timestamp(stamp[0], stamp[1])
            continue
        if fields is None:
            log.warn(number, "data line before any #Fields: directive; skipped")
            continue
        values = line.split()
        if len(values) != len(fields):
            log.warn(number, f"{len(values)} values where #Fields names {len(fields)}; line skipped")
            continue
        row = {k: v for k, v in zip(fields, values, strict=True) if k in KEEP}
        if not _kept(row):
            continue
        date = row.get("date") or header_date
        when = _timestamp(date, row["time"]) if date and row.get("time") else None
        if when is None:
            log.warn(number, "date/time not readable; kept without a time")
        if _int(row.get("sc-status")) is None and "sc-status" in row:
            log.warn(number, f"sc-status {row['sc-status']!r} is not a number")
        if kept >= MAX_RECORDS:
            log.warn(number, f"more than {MAX_RECORDS} registration requests; the rest of the file is not read")
            break
        log.records.append(LogRecord("iis", path, number, when, line, row, precision=1.0))
        kept += 1
    return log
