"""What `kerbtrace live` shows while it runs: a live table on a terminal, one line per verdict otherwise.

The terminal view uses rich (a maintained library that redraws a table in place without curses'
screen takeover, so the final summary stays in the scrollback); the line view is for logs and pipes.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import IO

from kerbtrace.analysis import ClientResult, iso

RECENT_ROWS = 15


@dataclass(slots=True)
class Counters:
    """Running totals, kept for the whole run while the clients themselves are evicted."""

    packets: int = 0
    verdicts: Counter = field(default_factory=Counter)
    causes: Counter = field(default_factory=Counter)
    mps: Counter = field(default_factory=Counter)
    dropped: int | None = None  # kernel drops, as dumpcap reports them when it stops
    received: int | None = None
    evicted: dict[str, int] = field(default_factory=dict)  # state dropped by the size limits, by table

    def count(self, result: ClientResult, sign: int = 1) -> None:
        self.verdicts[result.verdict] += sign
        if result.primary is not None and result.verdict != "approved":
            self.causes[result.primary.code] += sign
        self.mps[mp_label(result)] += sign

    def recount(self, old: tuple[str, ...], result: ClientResult) -> None:
        """A result judged again (`old` is its earlier state: verdict, auth, causes)."""
        if old[0] != "approved" and len(old) > 2:
            self.causes[old[2]] -= 1
        self.verdicts[old[0]] -= 1
        self.verdicts[result.verdict] += 1
        if result.primary is not None and result.verdict != "approved":
            self.causes[result.primary.code] += 1

    def summary(self) -> str:
        total = sum(self.verdicts.values())
        text = (f"{total} verdict(s): {self.verdicts['approved']} approved, {self.verdicts['not_approved']} "
                f"not approved, {self.verdicts['inconclusive']} inconclusive")
        causes = +self.causes
        if causes:
            text += " — causes: " + ", ".join(f"{c} {n}" for c, n in causes.most_common())
        mps = +self.mps
        if mps:
            text += " — MPs: " + ", ".join(f"{m} {n}" for m, n in mps.most_common(5))
        text += f"; {self.packets} packets read"
        if self.dropped is not None:
            text += f", {self.dropped} dropped by the kernel"
            if self.received is not None:
                text += f" (of {self.received} received)"
        if self.evicted:
            text += "; forgotten to stay bounded (least recent first): " + ", ".join(
                f"{table} {n}" for table, n in sorted(self.evicted.items()))
        return text


def mp_label(result: ClientResult) -> str:
    c = result.client
    return c.mp_name or c.mp_ip or "?"


def row(result: ClientResult) -> list[str]:
    c = result.client
    return [(iso(c.first_time) or "")[11:19], c.ip, c.hostname or "", mp_label(result), result.verdict, c.auth,
            result.primary.code if result.primary else ""]


HEADERS = ["time", "client", "host", "MP", "verdict", "auth", "cause"]
MIN_WIDTHS = {"time": 8, "client": 11, "verdict": 12}


class LineView:
    """One line per decided or changed verdict (stdout not a terminal, or JSON lines on stdout)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def start(self, what: str) -> None:
        print(f"kerbtrace live: {what}", file=self.out, flush=True)

    def verdict(self, result: ClientResult, changed: bool) -> None:
        line = " ".join(x or "-" for x in row(result))
        print(("changed: " if changed else "") + line, file=self.out, flush=True)

    def refresh(self, counters: Counters) -> None:
        pass

    def message(self, text: str) -> None:
        print(f"kerbtrace live: {text}", file=self.out, flush=True)

    def stop(self, counters: Counters) -> None:
        print(counters.summary(), file=self.out, flush=True)


class TableView:
    """A rolling table of the latest clients and the counters, redrawn in place (rich.live)."""

    def __init__(self, out: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out)
        self.rows: deque[list[str]] = deque(maxlen=RECENT_ROWS)
        self.what = ""
        self.counters = Counters()
        self.live = Live(console=self.console, refresh_per_second=2, auto_refresh=False, transient=False)

    def start(self, what: str) -> None:
        self.what = what
        self.live.start()

    def verdict(self, result: ClientResult, changed: bool) -> None:
        self.rows.appendleft(row(result) + (["changed"] if changed else [""]))

    def message(self, text: str) -> None:
        self.live.console.print(f"kerbtrace live: {text}")

    def refresh(self, counters: Counters) -> None:
        self.counters = counters
        self.live.update(self._render(), refresh=True)

    def _render(self):  # noqa: ANN202 - a rich renderable
        from rich.console import Group
        from rich.table import Table

        table = Table(title=f"kerbtrace live — {self.what}", expand=False)
        for h in [*HEADERS, ""]:  # time, address and verdict stay whole on a narrow terminal
            table.add_column(h, no_wrap=True, min_width=MIN_WIDTHS.get(h))
        for r in self.rows:
            style = {"approved": "green", "not_approved": "red"}.get(r[4], "yellow")
            table.add_row(*r, style=style)
        return Group(table, self.counters.summary())

    def stop(self, counters: Counters) -> None:
        self.refresh(counters)
        self.live.stop()
