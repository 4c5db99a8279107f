"""Turns the command line's log options into a loaded log context: each file read by the reader its
content calls for (a folder's files are recognised by content, not by name)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kerbtrace.context.logs.ccmlog import read_ccm_log
from kerbtrace.context.logs.iis import read_iis
from kerbtrace.context.logs.reader import sniff
from kerbtrace.context.logs.records import LogFile, LogWarning
from kerbtrace.diagnostics import Diagnostics

CLIENT_KINDS = ("ClientIDManagerStartup", "CcmMessaging", "ClientLocation")
MP_KINDS = ("MP_RegistrationManager",)
MAX_DIR_FILES = 10_000
_COMPONENT = re.compile(r'component="([^"]+)"|\$\$<([^>]+)>')


def _as(kind: str) -> tuple[str, str]:
    return ("mp_log" if kind in MP_KINDS else "client_log"), kind


def recognise(path: str | Path) -> tuple[str, str] | None:
    """(source, kind) of a log file from its first 4 KiB: an IIS W3C log, or a CMTrace/SMS log named by its
    component (falling back to its lines, then its file name); None when it is none of the logs read here."""
    try:
        head = sniff(path)
    except OSError:
        return None
    name = Path(path).name.lower()
    named = next((kind for kind in MP_KINDS + CLIENT_KINDS if kind.lower() in name), None)
    if "#Fields:" in head or "#Software: Microsoft Internet Information Services" in head:
        return "iis", "iis"
    if not head.strip():  # an empty log (an MP that logged nothing) is known by its name alone
        if named:
            return _as(named)
        return ("iis", "iis") if name.endswith(".iis.log") or name.startswith("u_ex") else None
    if "<![LOG[" not in head and "$$<" not in head:
        return None
    components = {(a or b).strip().lower() for a, b in _COMPONENT.findall(head)}
    for kind in MP_KINDS + CLIENT_KINDS:
        if kind.lower() in components:
            return _as(kind)
    if named:
        return _as(named)
    if "Processing Registration request" in head or "MP Reg:" in head:
        return "mp_log", "MP_RegistrationManager"
    if "[RegTask]" in head or "ccm_system" in head.lower():
        return "client_log", "ccm"
    return None


@dataclass(slots=True)
class LogContext:
    """Every log given, read: the files, and the warnings about files that could not be used at all."""

    files: list[LogFile] = field(default_factory=list)
    warnings: list[LogWarning] = field(default_factory=list)

    def all_warnings(self) -> list[LogWarning]:
        out = list(self.warnings)
        for log in self.files:
            out.extend(log.warnings)
            if log.dropped_warnings:
                out.append(LogWarning(log.path, None, f"{log.dropped_warnings} more warnings not listed"))
        return out

    def warn_into(self, diag: Diagnostics) -> None:
        """Hand the warnings to the run's diagnostics (kind "log"; no frame: the message names file:line)."""
        for warning in self.all_warnings():
            diag.warn(None, str(warning), "log")

    def by_source(self, source: str) -> list[LogFile]:
        return [f for f in self.files if f.source == source]


def _read(path: str, source: str, kind: str) -> LogFile:
    if source == "iis":
        return read_iis(path)
    return read_ccm_log(path, source, kind)


def _read_as(ctx: LogContext, path: str, source: str, default_kind: str) -> None:
    if not os.path.isfile(path):
        ctx.warnings.append(LogWarning(path, None, "not a readable file"))
        return
    found = recognise(path)
    if found is not None and found[0] != source:
        ctx.warnings.append(LogWarning(path, None, f"given as {source} but reads as {found[0]}; read as {found[0]}"))
        source = found[0]
    kind = found[1] if found is not None else default_kind
    ctx.files.append(_read(path, source, kind))


def load_log_context(*, iis_logs: Sequence[str] = (), mp_logs: Sequence[str] = (),
                     client_logs: Sequence[str] = (), log_dirs: Sequence[str] = ()) -> LogContext:
    """Read `--iis-log`, `--mp-log`, `--client-log` files and every recognised log under `--logs` folders.

    Nothing raises for bad input: unreadable or unrecognised files are warnings in the context."""
    ctx = LogContext()
    for path in iis_logs:
        _read_as(ctx, path, "iis", "iis")
    for path in mp_logs:
        _read_as(ctx, path, "mp_log", "MP_RegistrationManager")
    for path in client_logs:
        _read_as(ctx, path, "client_log", "ccm")
    for folder in log_dirs:
        if not os.path.isdir(folder):
            ctx.warnings.append(LogWarning(folder, None, "not a folder"))
            continue
        seen = 0
        for root, _dirs, names in os.walk(folder):
            for name in sorted(names):
                path = os.path.join(root, name)
                seen += 1
                if seen > MAX_DIR_FILES:
                    break
                found = recognise(path)
                if found is None:
                    ctx.warnings.append(LogWarning(path, None, "skipped: not an IIS, MP or client log"))
                    continue
                ctx.files.append(_read(path, *found))
        if seen > MAX_DIR_FILES:
            ctx.warnings.append(LogWarning(folder, None, f"more than {MAX_DIR_FILES} files; the rest skipped"))
    return ctx
