"""What a log reader hands on: one record per log entry, with its file, line number and UTC time.

Readers keep the line's own text (for evidence) and the fields they understood; interpretation of what the
line means for a client's registration happens in `messages` and `verdicts`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_WARNINGS_PER_FILE = 50  # further warnings of a file are counted, not kept


@dataclass(slots=True)
class LogRecord:
    """One entry of a log: `time` is seconds since the epoch in UTC as the log states it (its own clock;
    the join estimates how far that clock is off), None when the entry carries no readable time."""

    source: str  # iis | mp_log | client_log
    file: str
    line: int  # 1-based line where the entry starts
    time: float | None
    text: str  # IIS: the line as written; CMTrace/SMS: the message (a multi-line one joined with " / ")
    fields: dict[str, str] = field(default_factory=dict)  # IIS: W3C fields; CCM: component, thread, type
    precision: float = 0.001  # seconds: IIS writes whole seconds


@dataclass(slots=True)
class LogWarning:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass(slots=True)
class LogFile:
    """A log file as read: what kind it is, its records, and what could not be read."""

    path: str
    source: str  # iis | mp_log | client_log
    kind: str  # iis | MP_RegistrationManager | ClientIDManagerStartup | CcmMessaging | ClientLocation | ccm
    records: list[LogRecord] = field(default_factory=list)
    warnings: list[LogWarning] = field(default_factory=list)
    dropped_warnings: int = 0
    dropped_records: int = 0  # entries past the file's bound, read but not kept
    lines: int = 0
    opened: float | None = None  # when the log says it was started (IIS `#Date`), in its own clock

    def span(self) -> tuple[float | None, float | None]:
        """(first, last) time the log covers, in its own clock; None where it does not say."""
        times = [r.time for r in self.records if r.time is not None]
        first = min(times + ([self.opened] if self.opened is not None else []), default=None)
        return first, (max(times) if times else None)

    def warn(self, line: int | None, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS_PER_FILE:
            self.warnings.append(LogWarning(self.path, line, message))
        else:
            self.dropped_warnings += 1
