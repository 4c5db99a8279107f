"""Registrations over time, one row per MP, stacked by verdict: a burst of failures after a change
shows at once. Inline SVG for HTML, a table of the busy intervals for Markdown."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

from kerbtrace.constants import Verdict
from kerbtrace.context import text

VERDICTS = (Verdict.APPROVED, Verdict.NOT_APPROVED, Verdict.INCONCLUSIVE)
COLOURS = {Verdict.APPROVED: "#2e7d32", Verdict.NOT_APPROVED: "#c62828", Verdict.INCONCLUSIVE: "#9e9e9e"}
BINS = 60


def parse_time(value: str | None) -> float | None:
    """Epoch seconds of a document's ISO 8601 time (the context readers' parser, which reads it too)."""
    return text.parse_time(value) if isinstance(value, str) else None


def clock(ts: float, with_date: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S"
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def registration_time(client: dict) -> float | None:
    """When the client registered: its first CCM_POST, else its first step."""
    timeline = client.get("timeline") or []
    for step in timeline:
        if str(step.get("event", "")).startswith("CCM_POST"):
            return parse_time(step.get("time"))
    return parse_time(timeline[0].get("time")) if timeline else None


def mp_label(client: dict) -> str:
    mp = client.get("mp") or {}
    name, ip = mp.get("name"), mp.get("ip")
    if name and ip:
        return f"{name} ({ip})"
    return name or ip or "no MP reached"


@dataclass(slots=True)
class Bins:
    start: float
    end: float
    width: float
    rows: dict[str, list[Counter]]  # MP -> one verdict count per bin

    @property
    def peak(self) -> int:
        return max((sum(c.values()) for row in self.rows.values() for c in row), default=0)


def bins(clients: list[dict], count: int = BINS) -> Bins | None:
    times = [(registration_time(c), c) for c in clients]
    times = [(t, c) for t, c in times if t is not None]
    if not times:
        return None
    start = min(t for t, _ in times)
    end = max(t for t, _ in times)
    width = max((end - start) / count, 1e-3)
    rows: dict[str, list[Counter]] = {}
    for t, c in sorted(times, key=lambda tc: mp_label(tc[1])):
        row = rows.setdefault(mp_label(c), [Counter() for _ in range(count)])
        row[min(count - 1, int((t - start) / width))][c.get("verdict", Verdict.INCONCLUSIVE)] += 1
    return Bins(start, end, width, rows)


def svg(clients: list[dict]) -> Markup:
    b = bins(clients)
    if b is None:
        return Markup('<p class="muted">No registration time in the document.</p>')
    left, right, row_h, top = 290, 50, 64, 30
    plot_w = 720
    width = left + plot_w + right
    height = top + row_h * len(b.rows) + 34
    bar_w = plot_w / BINS
    peak = max(1, b.peak)
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="registrations over time per MP">']
    for i, v in enumerate(VERDICTS):
        out.append(f'<rect x="{left + i * 150}" y="6" width="12" height="12" fill="{COLOURS[v]}"/>'
                   f'<text x="{left + i * 150 + 16}" y="16" class="cl">{v.replace("_", " ")}</text>')
    for r, (mp, row) in enumerate(b.rows.items()):
        y0 = top + r * row_h
        base = y0 + row_h - 8
        total = Counter()
        for c in row:
            total.update(c)
        out.append(f'<text x="{left - 8}" y="{y0 + row_h / 2}" text-anchor="end" class="cl">{escape(mp[:44])}</text>'
                   f'<text x="{left - 8}" y="{y0 + row_h / 2 + 13}" text-anchor="end" class="cs">'
                   f'{total[Verdict.APPROVED]} approved · {total[Verdict.NOT_APPROVED]} not approved · '
                   f'{total[Verdict.INCONCLUSIVE]} inconclusive</text>'
                   f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" class="axis"/>')
        for i, c in enumerate(row):
            y = base
            for v in VERDICTS:
                if not c[v]:
                    continue
                h = (row_h - 22) * c[v] / peak
                y -= h
                t0 = b.start + i * b.width
                out.append(f'<rect x="{left + i * bar_w + 0.5:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                           f'height="{h:.1f}" fill="{COLOURS[v]}"><title>{escape(mp)} {clock(t0)}–'
                           f'{clock(t0 + b.width)}: {c[v]} {v.replace("_", " ")}</title></rect>')
    axis_y = top + row_h * len(b.rows) + 14
    for k in range(5):
        t = b.start + (b.end - b.start) * k / 4
        out.append(f'<text x="{left + plot_w * k / 4:.0f}" y="{axis_y}" text-anchor="middle" class="cs">'
                   f'{clock(t, with_date=k == 0)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def busy_intervals(clients: list[dict], count: int = 20) -> list[dict]:
    """For Markdown: the intervals in which each MP saw registrations, with counts by verdict."""
    b = bins(clients, count)
    if b is None:
        return []
    rows = []
    for mp, row in b.rows.items():
        for i, c in enumerate(row):
            if c:
                t0 = b.start + i * b.width
                rows.append({"mp": mp, "from": clock(t0), "to": clock(t0 + b.width),
                             **{v: c[v] for v in VERDICTS}})
    return rows
