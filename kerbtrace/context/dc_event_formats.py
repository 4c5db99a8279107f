"""Readers for a DC's exported Security log: EVTX, wevtutil XML, and PowerShell CSV / JSON.

Each reader streams the file and yields `(where, fields)`: `where` locates the record for an error message
(record number, or line), `fields` maps field names to text — the System fields (`EventID`, `SystemTime`,
`Computer`, `EventRecordID`) and the EventData names of the event (`TargetUserName`, `IpAddress`, …). What
the names mean is `dc_events`' business, not the readers'.

EVTX goes through the `evtx` package (pyevtx-rs, the Rust parser of omerbenamram/evtx): on the real DC logs
it reads a 64 KiB chunk in about a millisecond where python-evtx takes 40-80 ms, and it reports a damaged
chunk as an error instead of stopping. A PowerShell export without the EventData names (`Get-WinEvent |
Export-Csv` keeps only the rendered Message) is read from the English Message text.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

from kerbtrace.constants import DcEventId
from kerbtrace.context.text import text_encoding

Fields = dict[str, str]
Warn = Callable[[str], None]

EVTX_MAGIC = b"ElfFile\x00"
EVTX_HEADER = 4096
EVTX_CHUNK = 65536
MAX_JSON_BYTES = 256 << 20  # a ConvertTo-Json array is read whole: refuse more than this
MAX_FIELD = 1 << 20  # longest CSV field / Message text accepted
READ_CHUNK = 1 << 20


class EventFormatError(ValueError):
    """The file cannot be read as any supported event log export."""


# ---- EVTX ----------------------------------------------------------------------------------------------


def read_evtx(path: Path, warn: Warn) -> Iterator[tuple[int | None, Fields]]:
    from evtx import PyEvtxParser

    size = path.stat().st_size
    with path.open("rb") as fh:
        header = fh.read(EVTX_HEADER)
    if len(header) < 48 or not header.startswith(EVTX_MAGIC):
        raise EventFormatError("not an EVTX file (no 'ElfFile' header)")
    chunks = struct.unpack_from("<H", header, 42)[0]
    if size < EVTX_HEADER + chunks * EVTX_CHUNK:
        whole = max(0, (size - EVTX_HEADER) // EVTX_CHUNK)
        warn(f"the file is truncated ({size} bytes; its header announces {chunks} chunk(s) of 64 KiB): "
             f"the records of the {chunks - whole} incomplete chunk(s) cannot be read")
    try:
        parser = PyEvtxParser(str(path), number_of_threads=1)
        records = parser.records_json()
    except (OSError, RuntimeError) as exc:
        raise EventFormatError(f"the EVTX parser cannot open it ({exc})") from None
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except (OSError, RuntimeError) as exc:  # a damaged chunk: the parser goes on with the next one
            warn(f"damaged records skipped ({str(exc)[:200]})")
            continue
        number = record.get("event_record_id")
        try:
            event = json.loads(record["data"])
        except (KeyError, TypeError, ValueError):
            warn(f"record {number}: unreadable record data, skipped")
            continue
        yield number, flatten_event_json(event)


def flatten_event_json(event: dict) -> Fields:
    """An `{"Event": {"System": …, "EventData": …}}` object (pyevtx-rs, evtx_dump) as flat fields."""
    event = event.get("Event", event) if isinstance(event, dict) else {}
    system = event.get("System") or {}
    out: Fields = {}
    event_id = system.get("EventID")
    if isinstance(event_id, dict):
        event_id = event_id.get("#text")
    out["EventID"] = _text(event_id)
    created = system.get("TimeCreated")
    if isinstance(created, dict):
        out["SystemTime"] = _text((created.get("#attributes") or {}).get("SystemTime"))
    out["Computer"] = _text(system.get("Computer"))
    out["EventRecordID"] = _text(system.get("EventRecordID"))
    data = event.get("EventData")
    if isinstance(data, dict):
        for name, value in data.items():
            if not isinstance(value, dict | list):
                out[name] = _text(value)
    return out


def _text(value) -> str:
    return "" if value is None else str(value)


# ---- wevtutil / Event Viewer XML ---------------------------------------------------------------------------


def read_xml(path: Path, warn: Warn) -> Iterator[tuple[int | None, Fields]]:
    """`wevtutil qe Security /f:xml` (Event elements without a root) or Event Viewer's saved XML."""
    parser = ET.XMLPullParser(events=("end",))
    parser.feed("<kerbtrace-events>")
    first = True
    for text in _decoded_chunks(path):
        if first:
            text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)  # a declaration cannot follow our root
            first = False
        try:
            parser.feed(text)
            yield from _xml_events(parser)
        except ET.ParseError as exc:
            raise EventFormatError(f"not well-formed XML at line {exc.position[0]}, column {exc.position[1]}"
                                   ) from None
    try:
        parser.feed("</kerbtrace-events>")
        parser.close()
        yield from _xml_events(parser)
    except ET.ParseError as exc:
        warn(f"the XML ends early at line {exc.position[0]} (truncated?): the last event was not read")


def _xml_events(parser: ET.XMLPullParser) -> Iterator[tuple[int | None, Fields]]:
    for _, element in parser.read_events():
        if _local(element.tag) != "Event":
            continue
        out: Fields = {}
        for child in element.iter():
            name = _local(child.tag)
            if name in ("EventID", "Computer", "EventRecordID"):
                out[name] = (child.text or "").strip()
            elif name == "TimeCreated":
                out["SystemTime"] = child.get("SystemTime", "")
            elif name == "Data" and child.get("Name"):
                out[child.get("Name")] = (child.text or "").strip()
        element.clear()
        yield _record_number(out), out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _decoded_chunks(path: Path) -> Iterator[str]:
    """The file as text in bounded chunks; UTF-16 (PowerShell's `>`) or UTF-8, told by the BOM."""
    with path.open("rb") as fh:
        head = fh.read(4)
        decoder = codecs.getincrementaldecoder(text_encoding(head))(errors="replace")
        data = head
        while data:
            yield decoder.decode(data)
            data = fh.read(READ_CHUNK)
        yield decoder.decode(b"", final=True)


# ---- PowerShell JSON (ConvertTo-Json), JSON lines (evtx_dump) ----------------------------------------------


def read_json(path: Path, warn: Warn) -> Iterator[tuple[int | None, Fields]]:
    text_head = next(_decoded_chunks(path), "").lstrip()
    if text_head.startswith("[") or _single_json_document(text_head):
        if path.stat().st_size > MAX_JSON_BYTES:
            raise EventFormatError(f"a JSON array larger than {MAX_JSON_BYTES >> 20} MiB is not read whole; "
                                   "export JSON lines (one event per line) or EVTX instead")
        try:
            data = json.loads("".join(_decoded_chunks(path)))
        except ValueError as exc:
            raise EventFormatError(f"not valid JSON ({exc})") from None
        items = data if isinstance(data, list) else [data]
        for index, item in enumerate(items, 1):
            fields = _json_fields(item)
            if fields is None:
                warn(f"element {index}: not an event object, skipped")
                continue
            yield _record_number(fields) or index, fields
        return
    line_no = 0
    for line_no, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            fields = _json_fields(json.loads(line))
        except ValueError:
            fields = None
        if fields is None:
            warn(f"line {line_no}: not a JSON event object, skipped")
            continue
        yield line_no, fields


def _single_json_document(head: str) -> bool:
    """A `{` document spanning lines (pretty-printed single object) rather than JSON lines."""
    first_line = head.split("\n", 1)[0].strip()
    return first_line == "{"


def _lines(path: Path) -> Iterator[str]:
    pending = ""
    for text in _decoded_chunks(path):
        pending += text
        *lines, pending = pending.split("\n")
        yield from lines
        if len(pending) > MAX_FIELD:
            raise EventFormatError(f"a line longer than {MAX_FIELD} characters: not an event export")
    if pending:
        yield pending


def _json_fields(item) -> Fields | None:
    if not isinstance(item, dict):
        return None
    if "Event" in item or "System" in item:
        return flatten_event_json(item)
    out: Fields = {}
    for key, value in item.items():
        if key == "Properties" and isinstance(value, list):
            continue
        if not isinstance(value, dict | list):
            out[key] = _text(value)
    event_id = _first(out, "EventID", "Id", "EventId")
    properties = item.get("Properties")
    if isinstance(properties, list) and event_id.isdigit():
        names = POSITIONAL.get(int(event_id), ())
        for name, prop in zip(names, properties, strict=False):
            value = prop.get("Value") if isinstance(prop, dict) else prop
            if name not in out and not isinstance(value, dict | list):
                out[name] = _text(value)
    return _with_message(out)


# ---- PowerShell CSV (Export-Csv) ------------------------------------------------------------------------


def read_csv(path: Path, warn: Warn) -> Iterator[tuple[int | None, Fields]]:
    csv.field_size_limit(MAX_FIELD)
    lines = (line + "\n" for line in _lines(path))
    first = next(lines, "")
    if not first.startswith("#TYPE"):  # Windows PowerShell 5 writes a type line before the header
        lines = _chain(first, lines)
    try:
        reader = csv.DictReader(lines)
        if not reader.fieldnames or len(reader.fieldnames) < 2:
            raise EventFormatError("no CSV header with event columns")
        for row in reader:
            fields = {k: v for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}
            yield reader.line_num, _with_message(fields)
    except csv.Error as exc:
        raise EventFormatError(f"unreadable CSV ({exc})") from None


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


# ---- the rendered Message text (English) ------------------------------------------------------------------

#: Label in the rendered message -> EventData name. The Subject section of 4625 is skipped (it names the
#: process's account, not the one that failed).
MESSAGE_LABELS = {
    "account name": "TargetUserName",
    "supplied realm name": "TargetDomainName",
    "account domain": "TargetDomainName",
    "service name": "ServiceName",
    "client address": "IpAddress",
    "source network address": "IpAddress",
    "client port": "IpPort",
    "source port": "IpPort",
    "ticket options": "TicketOptions",
    "result code": "Status",
    "failure code": "Status",
    "status": "Status",
    "sub status": "SubStatus",
    "ticket encryption type": "TicketEncryptionType",
    "pre-authentication type": "PreAuthType",
    "workstation name": "WorkstationName",
}
_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z -]*?):\s*(.*?)\s*$")


def _with_message(fields: Fields) -> Fields:
    """Add what the rendered Message says for fields the export did not keep by name."""
    message = _first(fields, "Message")
    if not message:
        return fields
    section = ""
    for line in message[:MAX_FIELD].splitlines():
        match = _LABEL.match(line)
        if not match:
            continue
        label, value = match.group(1).lower(), match.group(2)
        if not value:
            section = label
            continue
        name = MESSAGE_LABELS.get(label)
        if name and section != "subject" and name not in fields:
            fields[name] = value
    return fields


def _first(fields: Fields, *names: str) -> str:
    lower = {k.lower(): v for k, v in fields.items()}
    for name in names:
        value = lower.get(name.lower())
        if value:
            return value
    return ""


def _record_number(fields: Fields) -> int | None:
    value = _first(fields, "EventRecordID", "RecordId", "RecordNumber")
    return int(value) if value.isdigit() else None


#: EventData order of each event's template (Windows Server 2016+, version 0), for `Get-WinEvent |
#: ConvertTo-Json`, whose Properties keep the values without their names. Later template versions only
#: append fields.
POSITIONAL: dict[int, tuple[str, ...]] = {
    DcEventId.TGT: (
        "TargetUserName", "TargetDomainName", "TargetSid", "ServiceName", "ServiceSid", "TicketOptions",
        "Status", "TicketEncryptionType", "PreAuthType", "IpAddress", "IpPort"),
    DcEventId.SERVICE_TICKET: (
        "TargetUserName", "TargetDomainName", "ServiceName", "ServiceSid", "TicketOptions",
        "TicketEncryptionType", "IpAddress", "IpPort", "Status"),
    DcEventId.TICKET_RENEWED: (
        "TargetUserName", "TargetDomainName", "ServiceName", "ServiceSid", "TicketOptions",
        "TicketEncryptionType", "IpAddress", "IpPort"),
    DcEventId.PREAUTH_FAILED: (
        "TargetUserName", "TargetSid", "ServiceName", "TicketOptions", "Status", "PreAuthType", "IpAddress",
        "IpPort"),
    DcEventId.LOGON_FAILED: (
        "SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "TargetUserSid",
        "TargetUserName", "TargetDomainName", "Status", "FailureReason", "SubStatus", "LogonType",
        "LogonProcessName", "AuthenticationPackageName", "WorkstationName", "TransmittedServices",
        "LmPackageName", "KeyLength", "ProcessId", "ProcessName", "IpAddress", "IpPort"),
}


# ---- which reader --------------------------------------------------------------------------------------


def sniff(path: Path) -> Callable[[Path, Warn], Iterator[tuple[int | None, Fields]]]:
    """The reader for this file, told by its content (the extension is only a hint)."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(EVTX_MAGIC):
        return read_evtx
    if not head:
        raise EventFormatError("the file is empty")
    text = _head_text(head).lstrip()
    if text.startswith("<"):
        return read_xml
    if text.startswith(("[", "{")):
        return read_json
    if text.startswith("#TYPE") or ("," in text.split("\n", 1)[0] and '"' in text[:200]):
        return read_csv
    if path.suffix.lower() == ".evtx":
        raise EventFormatError("not an EVTX file (no 'ElfFile' header)")
    raise EventFormatError("not a recognised event export (EVTX, wevtutil XML, PowerShell CSV or JSON)")


def _head_text(head: bytes) -> str:
    return io.TextIOWrapper(io.BytesIO(head), encoding=text_encoding(head), errors="replace").read()
