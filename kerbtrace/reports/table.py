"""The terminal report: one row per client, a summary line, and with -v each client's timeline."""

from __future__ import annotations

import io
import itertools
import shutil
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO, Any

import tabulate as tabulate_module
from tabulate import tabulate

from kerbtrace.analysis import Analysis, ClientResult
from kerbtrace.spill import SpillList

MAX_FRAMES_SHOWN = 6
#: Without -v, the first this many clients that were not approved are explained in full; the table
#: still lists every client, and the JSON report explains them all.
MAX_EXPLAINED = 50
MAX_CONTEXT_SHOWN = 5  # log lines and DC events beside a client's findings, without -v
BLOCK = 2048  # rows tabulate formats at a time: a table of 100,000 clients is never built as one list


def _frames(result: ClientResult) -> str:
    primary = result.primary
    if primary is None:
        return ""
    frames = list(dict.fromkeys(e.frame for e in primary.evidence if e.frame is not None))  # the cause's own first
    text = ",".join(_frame(result, f) for f in sorted(frames[:MAX_FRAMES_SHOWN]))
    return text + ("…" if len(frames) > MAX_FRAMES_SHOWN else "")


def _frame(result: ClientResult, frame: int) -> str:
    """A frame number as Wireshark shows it in its file; "[N]X" when a ring read as one capture has it in
    another file than the client's (numbered from 1, as in the header)."""
    where, local = result.where(frame)
    return str(local) if where == result.input else f"[{where + 1}]{local}"


def _locator(result: ClientResult, e) -> str:
    """`Evidence.locator`, with the frame numbered in its file and "[N] " before it when in another file."""
    if e.frame is None or e.source != "capture" or result.stitch is None:
        return e.locator()
    where, local = result.where(e.frame)
    return f"[{where + 1}] frame.number == {local}" if where != result.input else f"frame.number == {local}"


def _input_tag(analysis: Analysis, index: int | None) -> str:
    """With several inputs, "[N] " for the input at `index` (numbered from 1, as in the header); else "" (also
    for what belongs to no capture: a context file's warning, a lockout from the DC's log alone)."""
    return f"[{index + 1}] " if len(analysis.inputs) > 1 and index is not None else ""


def render(analysis: Analysis, verbose: bool = False) -> str:
    out = io.StringIO()
    write(analysis, out, verbose)
    return out.getvalue()


def write(analysis: Analysis, out: IO[str], verbose: bool = False) -> None:
    """The report, written piece by piece: the clients (maybe on disk, kerbtrace.spill) are read in two
    passes — the table (counts, column widths and cells; `_write_table`), then the explanations, which stop
    after the first MAX_EXPLAINED — and never held as one list."""
    header = []
    for index, i in enumerate(analysis.inputs):
        tag = _input_tag(analysis, index)
        if i.error:
            header.append(f"{tag}{i.path}: not analysed (the error is on stderr)")
        else:
            header.append(f"{tag}{i.path}: {i.format}, {i.packets} packets")
    if not analysis.inputs:
        header.append("no capture: per-client verdicts from the logs alone (what each log saw, not the exchange)")
    out.write("\n".join(header))
    counts: Counter = Counter()
    causes: Counter = Counter()
    if analysis.log_clients:
        out.write("\n\n" + "\n\n".join(_log_clients(analysis)))
    elif analysis.clients:
        out.write("\n\n")
        _write_table((_row(analysis, r) for r in analysis.clients), CLIENT_HEADERS, out,
                     lambda r: _count(r, counts, causes))
    else:
        out.write("\n\nNo ConfigMgr client registration (CCM_POST /ccm_system*/request) found.")
    parts = []
    total = sum(counts.values())
    summary = (f"{total} client(s): {counts['approved']} approved, "
               f"{counts['not_approved']} not approved, {counts['inconclusive']} inconclusive")
    if causes:
        summary += " — causes: " + ", ".join(f"{code} {n}" for code, n in causes.most_common())
    summary += f"; {len(analysis.kerberos)} Kerberos messages; {len(analysis.diag.warnings)} warning(s)"
    parts.append(summary)
    beside = _beside_lines(analysis)
    if beside:
        parts.append("Beside the capture:\n" + "\n".join(f"  {line}" for line in beside))
    notes = [f"{_input_tag(analysis, k)}{n}" for k, i in enumerate(analysis.inputs) for n in i.notes]
    if notes:
        parts.append("View:\n" + "\n".join(f"  {n}" for n in notes))
    if analysis.fleet:
        parts.append("Across clients:\n" + "\n".join(_wrap(f"{_input_tag(analysis, f.input)}[{f.severity}] {f.code}: "
                                                               f"{f.summary}", "  ", "      ")
                                                         for f in analysis.fleet))
    out.write("\n\n" + "\n\n".join(parts))
    to_explain = total - counts["approved"] if not verbose else total
    explained = 0
    for r in analysis.clients:
        if explained >= to_explain or (not verbose and explained >= MAX_EXPLAINED):
            break  # the rest need not be read
        if r.verdict == "approved" and not verbose:
            continue
        explained += 1
        out.write("\n\n" + _explain(r, verbose, _input_tag(analysis, r.input)))
    hidden = to_explain - explained
    if hidden:
        out.write(f"\n\n… {hidden} more clients not approved are explained with -v or in the --json report.")
    if analysis.diag.warnings:
        shown = analysis.diag.warnings[:10]
        lines = [f"  {_input_tag(analysis, w.input)}{f'frame {w.frame}: ' if w.frame else ''}{w.message}"
                 for w in shown]
        more = len(analysis.diag.warnings) - len(shown) + sum(analysis.diag.dropped.values())
        if more > 0:
            lines.append(f"  … {more} more (see --json)")
        out.write("\n\nWarnings:\n" + "\n".join(lines))
    out.write("\n")


CLIENT_HEADERS = ["client", "host", "realm", "MP", "verdict", "auth", "cause", "evidence frames"]


def _row(analysis: Analysis, r: ClientResult) -> tuple[list[str], ClientResult]:
    c = r.client
    where = f"{c.ip} {_input_tag(analysis, r.input)}".strip()
    return [where, c.hostname or "", c.realm or "", f"{c.mp_name or ''} {c.mp_ip or ''}".strip(),
            r.verdict, c.auth, r.primary.code if r.primary else "", _frames(r)], r


def _count(r: ClientResult, counts: Counter, causes: Counter) -> None:
    counts[r.verdict] += 1
    if r.primary and r.verdict != "approved":
        causes[r.primary.code] += 1


def _write_table(rows: Iterator[tuple[list[str], Any]], headers: list[str], out: IO[str],
                 seen: Callable[[Any], None]) -> None:
    """tabulate's table of `rows` (pairs of cells and the item they show; `seen` gets each item), BLOCK rows at
    a time, in one pass over the items (they may be read from disk: kerbtrace.spill). Past one block, the
    first pass takes the column widths (tabulate's own separator line for the first block and for any block
    that is not plain ASCII; the cells' lengths, which are what tabulate measures there, for the others) and
    keeps the cells (a `SpillList`: small rows, cheap to read back); each block is then formatted under a row
    of those widths, which is left out."""
    blocks = _batched(rows)
    first = _cells(next(blocks, []), seen)
    table = _table(first, headers)
    rest = next(blocks, None)
    if rest is None:
        out.write(table)
        return
    widths = _ruler_widths(table)
    kept: SpillList[list[str]] = SpillList(first, threshold=BLOCK, chunk=256)
    while rest is not None:
        cells = _cells(rest, seen)
        measured = [max(map(len, column)) for column in zip(*cells, strict=True)] if _narrow(cells, headers) \
            else _ruler_widths(_table(cells, headers))
        widths = [max(w, m) for w, m in zip(widths, measured, strict=True)]
        kept.extend(cells)
        rest = next(blocks, None)
    ruler = ["x" * w for w in widths]
    for n, block in enumerate(_batched(iter(kept))):
        lines = _table([ruler, *block], headers).split("\n")
        out.write(("\n".join(lines[:2] + lines[3:])) if n == 0 else "\n" + "\n".join(lines[3:]))
    kept.close()


def _cells(block: list[tuple[list[str], Any]], seen: Callable[[Any], None]) -> list[list[str]]:
    for _, item in block:
        seen(item)
    return [cells for cells, _ in block]


def _ruler_widths(table: str) -> list[int]:
    """The column widths of a tabulate table, from its separator line."""
    return [len(dashes) for dashes in table.split("\n")[1].split("  ")]


def _batched(items: Iterator) -> Iterator[list]:
    while block := list(itertools.islice(items, BLOCK)):
        yield block


def _narrow(rows: list[list[str]], headers: list[str]) -> bool:
    """Every cell printable ASCII (or the "…" of a cut frame list): each character is one column wide."""
    text = "".join(itertools.chain(headers, itertools.chain.from_iterable(rows)))
    return text.isprintable() and text.replace("…", "").isascii()


def _table(rows: list[list[str]], headers: list[str]) -> str:
    """tabulate's plain table. Where the cells are narrow (`_narrow`), tabulate is told to count characters
    instead of asking wcwidth for each cell's width (a fifth of the table's time); the text is the same."""
    saved = tabulate_module.WIDE_CHARS_MODE
    tabulate_module.WIDE_CHARS_MODE = saved and not _narrow(rows, headers)
    try:
        return tabulate(rows, headers=headers, disable_numparse=True)
    finally:
        tabulate_module.WIDE_CHARS_MODE = saved


def _wrap(text: str, first: str, rest: str) -> str:
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 110))
    return textwrap.fill(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False)


def _explain(r: ClientResult, verbose: bool, tag: str = "") -> str:
    c = r.client
    head = f"{tag}{c.hostname or c.ip} ({c.ip}) — {r.verdict}"
    if c.view.get("label") not in (None, "full"):
        head += f" (view: {c.view['label']})"
    lines = [head]
    for f in r.findings:
        if f.severity == "info" and not verbose and f.code != "ok":
            continue
        lines.append(_wrap(f"[{f.severity}] {f.code}: {f.summary}", "  ", "      "))
        if f.codes:
            lines.append(_wrap(f"codes: {', '.join(f.codes)}", "      ", "        "))
        if f.candidates:
            lines.append(_wrap(f"candidates: {', '.join(f.candidates)}", "      ", "        "))
        if f.fix:
            lines.append(_wrap(f"fix: {f.fix}", "      ", "        "))
        if f.fix_commands and f.severity != "info":
            lines.append("      commands (kerbtrace runs none; --fix-script writes them as a script):")
            lines += [f"        {command}" for command in f.fix_commands]
        if f.references and f.severity != "info":
            lines.append(_wrap(f"see: {'; '.join(f.references)}", "      ", "        "))
        for e in f.evidence:
            lines.append(f"      {_locator(r, e)}: {e.text}")
    if r.context:
        shown = r.context if verbose else r.context[:MAX_CONTEXT_SHOWN]
        lines.append("  beside the capture:")
        lines += [f"      {_locator(r, e)}: {e.text}" for e in shown]
        if len(shown) < len(r.context):
            lines.append(f"      … {len(r.context) - len(shown)} more (-v or --json)")
    if verbose:
        lines.append("  timeline:")
        for e in c.timeline:
            frame = _frame(r, e.frame) if e.frame else e.frame
            lines.append(f"    {frame:>7}  {e.src} -> {e.dst}  {e.event}  {e.detail}")
    return "\n".join(lines)


def _beside_lines(analysis: Analysis) -> list[str]:
    """A line per log file and per DC log join: how many entries matched, and the clock offset estimated."""
    out = []
    for index, joined in enumerate(analysis.joins):
        tag = _input_tag(analysis, index)
        for f in joined.logs:
            clock = (f"clock {f.offset:+.1f} s from the capture's ({f.pairs} matching pair(s))" if f.offset is not None
                     else "clock offset unknown (nothing matched)")
            out.append(f"{tag}{f.path} ({f.source}): {f.matched} entries matched, {f.unmatched} not; {clock}")
        if joined.dc_given:
            clock = (f"clock {joined.dc_offset:+.1f} s from the capture's" if joined.dc_offset is not None
                     else "clock offset unknown (no KDC reply in the capture to pair with)")
            out.append(f"{tag}DC events: {joined.dc_clients} client(s) with events; {clock}")
    return out


def _log_clients(analysis: Analysis) -> list[str]:
    """A run without captures: the table of the logs' clients, and each one not approved with its evidence."""
    rows = [[v.key, v.ip or "", v.account or "", v.mp or "", v.verdict, v.auth or "", ",".join(v.sources)]
            for v in analysis.log_clients]
    counts = Counter(v.verdict for v in analysis.log_clients)
    headers = ["client", "ip", "account", "MP", "verdict", "auth", "logs"]
    parts = [tabulate(rows, headers=headers, disable_numparse=True),
             f"{len(rows)} client(s) in the logs: {counts['approved']} approved, "
             f"{counts['not_approved']} not approved, {counts['inconclusive']} inconclusive"]
    for v in analysis.log_clients:
        if v.verdict == "approved":
            continue
        lines = [f"{v.key} — {v.verdict} (from the logs)"]
        lines += [_wrap(reason, "  ", "    ") for reason in v.reasons]
        lines += [f"      {e.locator()}: {e.text}" for e in v.evidence[-MAX_CONTEXT_SHOWN:]]
        parts.append("\n".join(lines))
    return parts
