"""Runs the whole pipeline over capture files and assembles the `kerbtrace/1` result.

source -> reassembly -> decoders -> exchanges -> checks; the reports only format what this returns.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kerbtrace.checks import Context, Finding, evaluate, late_findings
from kerbtrace.collector import RelaxedCollector
from kerbtrace.diagnostics import Diagnostics
from kerbtrace.exchanges.client import ClientExchange
from kerbtrace.exchanges.tracker import ExchangeTracker, KerberosRecord
from kerbtrace.pipeline import Pipeline
from kerbtrace.reassembly.network import NetworkLayer
from kerbtrace.sources import CaptureError, open_capture

SCHEMA = "kerbtrace/1"
PROGRESS_EVERY = 1 << 16  # packets between progress updates (and collector ticks)


@dataclass(slots=True)
class InputSummary:
    path: str
    format: str | None
    packets: int = 0
    start: float | None = None
    end: float | None = None
    error: str | None = None


@dataclass(slots=True)
class ClientResult:
    client: ClientExchange
    verdict: str
    findings: list[Finding]
    input: int = 0  # index of the capture file in Analysis.inputs (frame numbers are per file)

    @property
    def primary(self) -> Finding | None:
        return self.findings[0] if self.findings else None


@dataclass(slots=True)
class Analysis:
    inputs: list[InputSummary] = field(default_factory=list)
    clients: list[ClientResult] = field(default_factory=list)
    kerberos: list[KerberosRecord] = field(default_factory=list)
    diag: Diagnostics = field(default_factory=Diagnostics)

    @property
    def usable(self) -> bool:
        """Every input could be read (a script must notice a file that was not analysed)."""
        return bool(self.inputs) and all(i.error is None for i in self.inputs)


class Session:
    """The pipeline over one capture: packets in, client verdicts out.

    `feed` takes packets one by one (from a file or a live interface); `poll` hands out the clients
    whose exchange has completed or timed out so far; `finish` ends the input and hands out the rest.
    Clients evaluated by `poll` see only the clients completed before them (for duplicate GUIDs).
    """

    def __init__(self, diag: Diagnostics, *, mp_names: tuple[str, ...] = (), settle: float = 30.0) -> None:
        self.diag = diag
        self.settle = settle
        self.tracker = ExchangeTracker(mp_names=mp_names)
        self.pipeline = Pipeline(diag, self.tracker.feed)
        self.network = NetworkLayer(self.pipeline, diag)
        self.feed = self.network.feed
        self.context = Context()

    def poll(self) -> list[ClientResult]:
        return self._evaluate(list(self.tracker.completed(self.settle)))

    def finish(self, earlier: list[ClientResult] = ()) -> list[ClientResult]:  # type: ignore[assignment]
        """End of input: the remaining clients; `earlier` (results `poll` gave) get the findings that
        needed the whole capture, such as a duplicate GUID registered after them."""
        _guarded(self.diag, None, self.network.flush)
        results = self._evaluate(self.tracker.finish())
        for r in earlier:
            r.findings = _guarded(self.diag, None, late_findings, r.client, r.verdict, r.findings,
                                  self.context) or r.findings
        return results

    def _evaluate(self, clients: list[ClientExchange]) -> list[ClientResult]:
        for client in clients:
            self.context.add(client)
        out = []
        for client in clients:
            outcome = _guarded(self.diag, None, evaluate, client, self.context)
            verdict, findings = outcome if outcome is not None else ("inconclusive", [])
            out.append(ClientResult(client, verdict, findings))
        for r in out:
            r.client.settle(r.verdict)  # after every check of this batch ran: duplicates look across clients
        return out


def analyze(paths: list[str], *, progress: bool | None = None, mp_names: tuple[str, ...] = ()) -> Analysis:
    """Analyse capture files in order (as one capture per file: frame numbers restart per file)."""
    result = Analysis()
    show = sys.stderr.isatty() if progress is None else progress
    for index, path in enumerate(paths):
        result.diag.current_input = index
        summary, clients, kerberos = _analyze_file(path, result.diag, show, mp_names)
        result.inputs.append(summary)
        for client in clients:
            client.input = index
        for record in kerberos:
            record.input = index
        result.clients.extend(clients)
        result.kerberos.extend(kerberos)
    return result


def _analyze_file(path: str, diag: Diagnostics, show: bool, mp_names: tuple[str, ...]
                  ) -> tuple[InputSummary, list[ClientResult], list[KerberosRecord]]:
    summary = InputSummary(path, None)
    try:
        capture = open_capture(path, diag)
    except (CaptureError, OSError) as exc:
        summary.error = str(exc)
        return summary, [], []
    summary.format = capture.format
    session = Session(diag, mp_names=mp_names)
    bar = _Progress(Path(path).name, capture.size) if show else None
    done: list[ClientResult] = []
    with RelaxedCollector() as collector:

        def tick() -> None:
            # Clients whose exchange is over are checked now and keep only their results: memory then
            # follows the clients still in progress, not the length of the capture.
            done.extend(session.poll())
            collector.tick()
            if bar is not None:
                bar.update(capture.position())

        try:
            with capture:
                _read(capture, session.feed, diag, tick)
        except KeyboardInterrupt:
            diag.warn(None, f"{path}: interrupted; results cover the frames read so far", "file")
        if bar is not None:
            bar.close()
        summary.packets, summary.start, summary.end = capture.packets, capture.start, capture.end
        if not capture.packets:
            summary.error = "no packet could be read from this file"  # nothing analysed: not "all approved"
        done.extend(session.finish(done))
    done.sort(key=lambda r: (r.client.first_time, r.client.ip))
    return summary, done, session.tracker.kerberos


def _read(capture, feed, diag: Diagnostics, tick) -> None:
    """Feed every frame to the pipeline, calling `tick` every PROGRESS_EVERY frames; a defect on one
    packet never loses the rest of the file."""
    frames = iter(capture)
    frame = 0
    while True:
        try:
            for frame, time, linktype, data in frames:
                feed(frame, time, linktype, data)
                if not frame % PROGRESS_EVERY:
                    tick()
            return
        except (KeyboardInterrupt, CaptureError):
            raise
        except Exception as exc:  # noqa: BLE001 - reported with its frame, then the next packet is read
            diag.warn(frame, f"internal error on this packet ({type(exc).__name__}: {exc}); packet skipped, "
                      "please report it with the capture", "internal")


def _guarded(diag: Diagnostics, frame: int | None, func, *args):
    try:
        return func(*args)
    except Exception as exc:  # noqa: BLE001 - a defect must not cost the whole report
        diag.warn(frame, f"internal error ({type(exc).__name__}: {exc}); results may be incomplete", "internal")
        return None


class _Progress:
    """A progress bar on stderr, by bytes of the file read (tqdm does the drawing)."""

    def __init__(self, name: str, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=name, file=sys.stderr, leave=False)
        self.last = 0

    def update(self, position: int) -> None:
        self.bar.update(max(0, position - self.last))
        self.last = position

    def close(self) -> None:
        self.bar.close()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
