"""A domain controller's Security events (4768, 4769, 4770, 4771, 4625) as context beside the capture.

The DC records what a capture taken on the MP cannot show: the client's TGS-REQ for `HTTP/<mp>` failing
with KDC_ERR_S_PRINCIPAL_UNKNOWN (4769 0x7), or its machine password failing pre-authentication until the
account locks (4771 0x18, then 0x12). `load_dc_events` turns `--events FILE...` into a `DcEventLog`; its
`join` (see `dc_join`) matches the events to the clients of an analysis.

Formats: an exported .evtx (read by the `evtx` package), `wevtutil qe Security /f:xml` output, and
`Get-WinEvent | Export-Csv` / `ConvertTo-Json` (see `dc_event_formats`). Records are streamed and only the
five event IDs above are kept, so memory follows those events, bounded by `MAX_EVENTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kerbtrace.checks.base import Evidence
from kerbtrace.codes import etype_name, krb_error, ntstatus
from kerbtrace.constants import DcEventId
from kerbtrace.context.dc_event_formats import EventFormatError, Fields, sniff
from kerbtrace.context.text import parse_time

#: What each kept event says, in a few words (the longer tables of event IDs live in `codes`).
EVENT_NAMES = {
    DcEventId.TGT: "TGT request (AS)",
    DcEventId.SERVICE_TICKET: "service ticket request (TGS)",
    DcEventId.TICKET_RENEWED: "service ticket renewed",
    DcEventId.PREAUTH_FAILED: "Kerberos pre-authentication failed",
    DcEventId.LOGON_FAILED: "logon failed",
}
KERBEROS_EVENTS = frozenset(EVENT_NAMES) - {DcEventId.LOGON_FAILED}
MAX_EVENTS = 2_000_000  # events kept from all files; past this, later ones are counted, not kept
EXPORT_SUFFIXES = (".evtx", ".xml", ".json", ".jsonl", ".csv")
NO_TICKET_ETYPE = 0xFFFFFFFF  # TicketEncryptionType of a failed request


class EventLogError(Exception):
    """An events file that cannot be read at all (the message names the file and why)."""


@dataclass(frozen=True, slots=True)
class DcEvent:
    """One DC Security event, with the fields the join and the summaries use."""

    event_id: int
    time: float  # UTC epoch seconds (a CSV export's local time is read as UTC: the join estimates the offset)
    computer: str  # the DC that logged it
    account: str | None  # TargetUserName@TargetDomainName (4769 logs it so already; 4771 has no domain)
    service: str | None  # ServiceName: krbtgt, an account (MP01$) for an issued ticket, or the SPN asked for
    address: str | None  # IpAddress without the ::ffff: prefix
    port: int | None
    status: int | None  # Kerberos result / failure code (4768, 4769, 4771)
    preauth_type: int | None
    etype: int | None  # TicketEncryptionType (None when no ticket was issued)
    ticket_options: int | None
    nt_status: int | None = None  # 4625 Status
    nt_substatus: int | None = None  # 4625 SubStatus
    workstation: str | None = None  # 4625 WorkstationName
    record: int | None = None  # EventRecordID (else the position in the file)
    file: str = ""

    @property
    def user(self) -> str:
        """The account name alone, lower case (`wk03$` for `WK03$@CORP.LAB` or `CORP\\WK03$`)."""
        return account_user(self.account or "")

    @property
    def failed(self) -> bool:
        if self.event_id == DcEventId.LOGON_FAILED:
            return True
        return bool(self.status) or self.event_id == DcEventId.PREAUTH_FAILED

    def code_labels(self) -> list[str]:
        """The named codes of this event: `KDC_ERR_PREAUTH_FAILED (24)`, `STATUS_… (0xC000006A)`."""
        labels = []
        if self.status is not None and self.event_id in KERBEROS_EVENTS:
            labels.append(krb_error(self.status).label())
        labels += [ntstatus(v).label() for v in (self.nt_status, self.nt_substatus) if v]
        return labels

    def describe(self) -> str:
        """One line for the evidence list; never anything secret (events carry no keys)."""
        what = f"{self.event_id} {EVENT_NAMES.get(self.event_id, 'event')}"
        target = f" for {self.service}" if self.service and self.event_id != DcEventId.LOGON_FAILED else ""
        source = f" from {self.address}" + (f":{self.port}" if self.port else "") if self.address else ""
        if self.workstation and self.workstation != "-":
            source += f" (workstation {self.workstation})"
        result = "failure " + ", ".join(self.code_labels()) if self.failed else "success"
        if not self.failed and self.etype is not None:
            result += f", ticket {etype_name(self.etype)}"
        return f"DC {self.computer}: {what}{target} by {self.account or '?'}{source}: {result}"

    def evidence(self) -> Evidence:
        return Evidence(None, self.describe(), source="dc_event", file=self.file, line=self.record)


@dataclass(slots=True)
class DcEventLog:
    """The events read from every `--events` file, with what could not be read."""

    events: list[DcEvent] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # whole files that could not be read
    warnings: list[str] = field(default_factory=list)  # records skipped, truncation
    records: int = 0  # records read, of any event ID
    dropped: int = 0  # kept-kind events past MAX_EVENTS

    @property
    def usable(self) -> bool:
        return bool(self.files) and not self.errors

    def join(self, clients, kerberos=()):
        """Per client, the matched events and what the DC says (`dc_join.join_clients`)."""
        from kerbtrace.context.dc_join import join_clients

        return join_clients(clients, self.events, kerberos)

    def lockout_sources(self):
        """Per principal, the addresses failing its pre-authentication (`dc_join.lockout_sources`)."""
        from kerbtrace.context.dc_join import lockout_sources

        return lockout_sources(self.events)


def load_dc_events(values: Iterable[str], *, keep: Callable[[DcEvent], bool] | None = None,
                   limit: int = MAX_EVENTS) -> DcEventLog:
    """`--events FILE...`: files or folders of exports, read in order; a file that cannot be read is an
    entry in `errors` and the others are still read. `keep` may drop events early (e.g. successes of
    addresses no client has); failures are always kept, the fleet-wide lockout view needs them."""
    log = DcEventLog()
    for path in _expand(values, log):
        name = str(path)
        warnings: list[str] = []
        try:
            for event in read_dc_events(path, warnings.append, log):
                if keep is not None and not event.failed and not keep(event):
                    continue
                if len(log.events) >= limit:
                    log.dropped += 1
                    continue
                log.events.append(event)
            log.files.append(name)
            log.warnings += [f"{name}: {w}" for w in warnings]
        except EventLogError as exc:
            log.errors.append(str(exc))
    if log.dropped:
        log.warnings.append(f"{log.dropped} event(s) past the first {limit} were not kept")
    log.events.sort(key=lambda e: e.time)
    return log


def _expand(values: Iterable[str], log: DcEventLog) -> Iterator[Path]:
    for value in values:
        path = Path(value)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EXPORT_SUFFIXES)
            if not found:
                log.errors.append(f"{value}: no event export (.evtx, .xml, .json, .csv) in this folder")
            yield from found
        else:
            yield path


def read_dc_events(path: Path, warn: Callable[[str], None], log: DcEventLog | None = None) -> Iterator[DcEvent]:
    """The kept events of one export, in file order. Raises `EventLogError` when nothing can be read; a
    record that cannot be understood is skipped with a warning naming its record number or line."""
    problems: list[str] = []

    def note(message: str) -> None:
        problems.append(message)
        warn(message)

    records = 0
    try:
        reader = sniff(path)
        for where, fields in reader(path, note):
            records += 1
            if log is not None:
                log.records += 1
            event_id = _int(_get(fields, "EventID", "Id", "EventId"))
            if event_id not in EVENT_NAMES:
                if event_id is None:
                    note(f"record {where}: no event ID, skipped")
                continue
            try:
                event = to_event(event_id, fields, str(path), where)
            except ValueError as exc:
                note(f"record {where}: {exc}, skipped")
                continue
            yield event
    except EventFormatError as exc:
        raise EventLogError(f"{path}: {exc}") from None
    except OSError as exc:
        raise EventLogError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not records and problems:
        raise EventLogError(f"{path}: no event record could be read ({problems[0]})")


def to_event(event_id: int, fields: Fields, file: str = "", where: int | None = None) -> DcEvent:
    """A `DcEvent` from an event's field names (EventData names; case does not matter)."""
    stamp = _get(fields, "SystemTime", "TimeCreated", "TimeGenerated", "@timestamp")
    time = parse_time(stamp)
    if time is None:
        raise ValueError(f"unreadable time {stamp!r}")
    user = _get(fields, "TargetUserName")
    domain = _get(fields, "TargetDomainName")
    account = None
    if user and user != "-":
        account = user if "@" in user or not domain or domain == "-" else f"{user}@{domain}"
    etype = _int(_get(fields, "TicketEncryptionType"))
    status = _int(_get(fields, "Status")) if event_id in KERBEROS_EVENTS else None
    if event_id == DcEventId.TICKET_RENEWED:
        status = 0  # a renewal is logged only when it succeeds
    record = _int(_get(fields, "EventRecordID", "RecordId", "RecordNumber"))
    return DcEvent(
        event_id=event_id, time=time, computer=_get(fields, "Computer", "MachineName") or "?",
        account=account, service=_get(fields, "ServiceName") or None,
        address=normalise_address(_get(fields, "IpAddress")), port=_int(_get(fields, "IpPort")) or None,
        status=status, preauth_type=_int(_get(fields, "PreAuthType")),
        etype=None if etype in (None, NO_TICKET_ETYPE) else etype,
        ticket_options=_int(_get(fields, "TicketOptions")),
        nt_status=_int(_get(fields, "Status")) if event_id == DcEventId.LOGON_FAILED else None,
        nt_substatus=_int(_get(fields, "SubStatus")) if event_id == DcEventId.LOGON_FAILED else None,
        workstation=_get(fields, "WorkstationName") or None,
        record=record if record is not None else where, file=file)


def account_user(name: str) -> str:
    """The account name alone, lower case: `WK03$@CORP.LAB` and `CORP\\WK03$` give `wk03$`."""
    return name.split("@")[0].rsplit("\\", 1)[-1].lower()


def _get(fields: Fields, *names: str) -> str:
    for name in names:
        value = fields.get(name)
        if value is None:
            value = next((v for k, v in fields.items() if k.lower() == name.lower()), None)
        if value:
            return value.strip()
    return ""


def _int(text: str) -> int | None:
    text = text.strip()
    try:
        if text.lower().startswith("0x"):
            return int(text, 16)
        return int(text) if text.lstrip("-").isdigit() else None
    except ValueError:
        return None


def normalise_address(text: str) -> str | None:
    """`::ffff:10.1.2.3` -> `10.1.2.3`; `-` and empty -> None (a local logon has no address)."""
    text = text.strip()
    if not text or text == "-":
        return None
    if text.lower().startswith("::ffff:") and "." in text:
        return text[7:]
    return text.lower()


