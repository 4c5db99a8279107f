"""The terminal report: one row per client, a summary line, and with -v each client's timeline."""

from __future__ import annotations

import shutil
import textwrap
from collections import Counter

from tabulate import tabulate

from kerbtrace.analysis import Analysis, ClientResult

MAX_FRAMES_SHOWN = 6
#: Without -v, the first this many clients that were not approved are explained in full; the table
#: still lists every client, and the JSON report explains them all.
MAX_EXPLAINED = 50


def _frames(result: ClientResult) -> str:
    primary = result.primary
    if primary is None:
        return ""
    frames = list(dict.fromkeys(e.frame for e in primary.evidence if e.frame is not None))  # the cause's own first
    text = ",".join(str(f) for f in sorted(frames[:MAX_FRAMES_SHOWN]))
    return text + ("…" if len(frames) > MAX_FRAMES_SHOWN else "")


def _input_tag(analysis: Analysis, index: int) -> str:
    """With several inputs, "[N] " for the input at `index` (numbered from 1, as in the header); else ""."""
    return f"[{index + 1}] " if len(analysis.inputs) > 1 else ""


def render(analysis: Analysis, verbose: bool = False) -> str:
    rows = []
    for r in analysis.clients:
        c = r.client
        where = f"{c.ip} {_input_tag(analysis, r.input)}".strip()
        rows.append([where, c.hostname or "", c.realm or "", f"{c.mp_name or ''} {c.mp_ip or ''}".strip(),
                     r.verdict, c.auth, r.primary.code if r.primary else "", _frames(r)])
    header = []
    for index, i in enumerate(analysis.inputs):
        tag = _input_tag(analysis, index)
        if i.error:
            header.append(f"{tag}{i.path}: not analysed (the error is on stderr)")
        else:
            header.append(f"{tag}{i.path}: {i.format}, {i.packets} packets")
    parts = ["\n".join(header)]
    if rows:
        parts.append(tabulate(rows, headers=["client", "host", "realm", "MP", "verdict", "auth", "cause",
                                             "evidence frames"], disable_numparse=True))
    else:
        parts.append("No ConfigMgr client registration (CCM_POST /ccm_system*/request) found.")
    counts = Counter(r.verdict for r in analysis.clients)
    causes = Counter(r.primary.code for r in analysis.clients if r.primary and r.verdict != "approved")
    summary = (f"{len(analysis.clients)} client(s): {counts['approved']} approved, "
               f"{counts['not_approved']} not approved, {counts['inconclusive']} inconclusive")
    if causes:
        summary += " — causes: " + ", ".join(f"{code} {n}" for code, n in causes.most_common())
    summary += f"; {len(analysis.kerberos)} Kerberos messages; {len(analysis.diag.warnings)} warning(s)"
    parts.append(summary)
    notes = [f"{_tag(analysis, k)}{n}" for k, i in enumerate(analysis.inputs) for n in i.notes]
    if notes:
        parts.append("View:\n" + "\n".join(f"  {n}" for n in notes))
    if analysis.fleet:
        parts.append("Across clients:\n" + "\n".join(_wrap(f"{_tag(analysis, f.input)}[{f.severity}] {f.code}: "
                                                               f"{f.summary}", "  ", "      ")
                                                         for f in analysis.fleet))
    explained = 0
    hidden = 0
    for r in analysis.clients:
        if r.verdict == "approved" and not verbose:
            continue
        if not verbose and explained >= MAX_EXPLAINED:
            hidden += 1
            continue
        explained += 1
        parts.append(_explain(r, verbose, _input_tag(analysis, r.input)))
    if hidden:
        parts.append(f"… {hidden} more clients not approved are explained with -v or in the --json report.")
    if analysis.diag.warnings:
        shown = analysis.diag.warnings[:10]
        lines = [f"  {_input_tag(analysis, w.input)}{f'frame {w.frame}: ' if w.frame else ''}{w.message}"
                 for w in shown]
        more = len(analysis.diag.warnings) - len(shown) + sum(analysis.diag.dropped.values())
        if more > 0:
            lines.append(f"  … {more} more (see --json)")
        parts.append("Warnings:\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _tag(analysis: Analysis, index: int) -> str:
    return f"[{index + 1}] " if len(analysis.inputs) > 1 else ""


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
            lines.append(f"      {e.locator()}: {e.text}")
    if verbose:
        lines.append("  timeline:")
        for e in c.timeline:
            lines.append(f"    {e.frame:>7}  {e.src} -> {e.dst}  {e.event}  {e.detail}")
    return "\n".join(lines)
