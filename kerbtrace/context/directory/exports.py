"""LDIF (``ldifde -f``, ``ldbsearch``, ``ldapsearch``) and CSV (``csvde -f``) exports of accounts, trusts
and sPNMappings.

LDIF is parsed by the ``ldif`` package (RFC 2849: folded lines, base64 ``::`` values); each record is
parsed on its own so that one unreadable record is reported with its line number and the others are
kept. CSV follows csvde: a header row of attribute names (``DN`` first), multi-valued attributes joined
with ``;``, binary values as ``X'hex'``. An export is taken as the complete list of the SPNs it covers:
an SPN of the same host absent from it is reported missing.
"""

from __future__ import annotations

import csv
import io
import re

from kerbtrace.context.directory.entries import facts_from_entries
from kerbtrace.context.directory.model import DirectoryFacts

_MAX_RECORDS = 200_000
_LDIF_ATTR = re.compile(rb"^[A-Za-z0-9][\w;.-]*:")  # attribute name (or OID, options) and its colon


def looks_like_ldif(text: str) -> bool:
    for line in text.splitlines()[:50]:
        s = line.strip().lower()
        if s and not s.startswith("#") and not s.startswith("version:"):
            return s.startswith("dn:") or s.startswith("dn::")
    return False


def looks_like_csv(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0].strip().lower()
    return first.startswith(("dn,", '"dn",', "distinguishedname,", '"distinguishedname",'))


def parse_ldif(text: str, source: str) -> DirectoryFacts:
    from ldif import LDIFParser  # here: 20 ms of start-up that a run without an LDIF export does not pay

    entries: list[tuple[str, dict]] = []
    where: dict[str, str] = {}
    problems: list[str] = []
    for start, block in _ldif_blocks(text):
        if block[0].lower().startswith((b"ref:", b"search:", b"result:")):
            continue  # ldbsearch/ldapsearch referral and status records
        if len(entries) >= _MAX_RECORDS:
            problems.append(f"{source} line {start}: more than {_MAX_RECORDS} records, the rest not read")
            break
        bad = next((i for i, line in enumerate(block) if not line.startswith((b" ", b"#"))
                    and not _LDIF_ATTR.match(line)), None)
        if bad is not None:
            problems.append(f"{source} line {start + bad}: not an LDIF 'attribute: value' line, record "
                            f"skipped: {block[bad][:80].decode('utf-8', 'replace')!r}")
            continue
        try:
            parsed = list(LDIFParser(io.BytesIO(b"\n".join(block) + b"\n"), strict=True).parse())
        except Exception as exc:  # the parser raises ValueError, binascii.Error, ... on a bad record
            problems.append(f"{source} line {start}: unreadable LDIF record skipped ({exc})")
            continue
        for dn, attrs in parsed:
            if dn is None:
                problems.append(f"{source} line {start}: record without 'dn:' skipped")
                continue
            entries.append((dn, attrs))
            where[dn] = f"{source} line {start}"
    return _export_facts(entries, source, where, problems)


def parse_csv(text: str, source: str) -> DirectoryFacts:
    reader = csv.reader(io.StringIO(text))
    problems: list[str] = []
    entries: list[tuple[str, dict]] = []
    where: dict[str, str] = {}
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise ValueError(f"{source}: no CSV header row ({exc})") from None
    names = [h.strip() for h in header]
    if not names or names[0].lower() not in ("dn", "distinguishedname"):
        raise ValueError(f"{source} line 1: a csvde export starts with a 'DN' column, found {names[:3]}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"{source} line {reader.line_num}: unreadable CSV row skipped ({exc})")
            continue
        if not any(c.strip() for c in row):
            continue
        if len(entries) >= _MAX_RECORDS:
            problems.append(f"{source} line {reader.line_num}: more than {_MAX_RECORDS} rows, the rest not read")
            break
        if len(row) != len(names):
            problems.append(f"{source} line {reader.line_num}: {len(row)} fields where the header has "
                            f"{len(names)}, row skipped")
            continue
        dn = row[0].strip()
        attrs = {name: _csv_values(value) for name, value in zip(names[1:], row[1:], strict=True)}
        entries.append((dn, attrs))
        where[dn] = f"{source} line {reader.line_num}"
    return _export_facts(entries, source, where, problems)


def _export_facts(entries: list[tuple[str, dict]], source: str, where: dict[str, str], problems: list[str]
                  ) -> DirectoryFacts:
    """Facts of a whole export: its reading problems first, and its SPN list taken as complete."""
    facts = facts_from_entries(entries, source, where=where)
    facts.problems = problems + facts.problems
    facts.complete_spns = any(a.spns for a in facts.accounts)
    return facts


def _csv_values(value: str) -> list[str]:
    value = value.strip()
    if not value:
        return []
    if value.upper().startswith("X'"):
        return []  # binary (objectSid, ...): nothing kerbtrace reads
    return [v for v in value.split(";") if v]


def _ldif_blocks(text: str):
    """(first line number, raw lines) of each blank-line separated record, comments kept for folding."""
    block: list[bytes] = []
    start = 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() == "":
            if block:
                yield start, block
            block = []
            continue
        if not block:
            if line.startswith("#"):
                continue
            if line.lower().startswith("version:"):
                continue
            start = n
        block.append(line.encode("utf-8"))
    if block:
        yield start, block
