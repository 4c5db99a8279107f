"""The live run: dumpcap's packets through the same `analysis.Session` as `analyze`, verdicts out as they
are decided, until Ctrl-C, SIGTERM, `--duration` or the end of the capture.

Memory stays bounded for days: the Session hands finished clients out (settle / idle timeouts, driven by
the wall clock while the network is quiet), only the latest `KEEP_CLIENTS` results are kept (for changed
verdicts at the end), the Kerberos message list is not kept, and the counters are plain numbers.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kerbtrace.analysis import ClientResult, Session
from kerbtrace.analysis import _read as read_frames  # the same guarded packet loop as analyze
from kerbtrace.context import Beside
from kerbtrace.diagnostics import Diagnostics
from kerbtrace.live.backend import BackendError, Dumpcap, PipeStream, dumpcap_command, failure_reason
from kerbtrace.live.ring import PcapngRing
from kerbtrace.live.view import Counters, LineView, TableView
from kerbtrace.reports.json_report import client_json
from kerbtrace.sources import CaptureError, open_stream

KEEP_CLIENTS = 256  # latest results kept, for a change of verdict at the end (duplicate GUIDs)
POLL_EVERY = 256  # packets between polls of the Session (a power of two)
POLL_SECONDS = 0.5  # and at least this often while packets flow, or every idle second

EXIT_ALL_APPROVED, EXIT_NOT_APPROVED, EXIT_UNUSABLE, EXIT_NO_REGISTRATION = 0, 1, 2, 3
#: The capture stopped on its own (interface gone, permission, dumpcap killed): the verdicts so far and
#: the summary are still written.
EXIT_CAPTURE_FAILED = 4


@dataclass(slots=True)
class LiveOptions:
    interface: str = "any"
    bpf: str = ""
    duration: float | None = None
    json_lines: str | None = None
    write: str | None = None
    ring_bytes: int = 100 * 1024 * 1024
    ring_files: int = 10
    mp_names: tuple[str, ...] = ()
    beside: Beside | None = None
    settle: float = 30.0
    idle_timeout: float = 600.0
    max_addresses: int = 16384  # state kept for at most this many recent addresses per table (days of running)
    snaplen: int = 0


class LiveRun:
    def __init__(self, opts: LiveOptions, view: LineView | TableView, lines: IO[str] | None) -> None:
        self.opts = opts
        self.view = view
        self.lines = lines
        self.diag = Diagnostics()
        self.session = Session(self.diag, mp_names=opts.mp_names, settle=opts.settle, beside=opts.beside,
                               idle_timeout=opts.idle_timeout, kerberos_limit=0, max_addresses=opts.max_addresses)
        self.counters = Counters()
        self.latest: OrderedDict[int, tuple[ClientResult, tuple[str, ...]]] = OrderedDict()  # id -> (result, its state)
        self.ring = PcapngRing(opts.write, opts.ring_bytes, opts.ring_files) if opts.write else None
        self.dumpcap: Dumpcap | None = None
        self.stopping = False  # set by a signal or the duration: dumpcap is stopped, the pipe drains
        self._deadline = time.monotonic() + opts.duration if opts.duration else None
        self._last_poll = 0.0
        self._warned = 0
        self.started = False  # dumpcap wrote its file header: the interface is open

    # --- the run ---------------------------------------------------------------------------------
    def run(self) -> int:
        self.dumpcap = Dumpcap(dumpcap_command(self.opts.interface, self.opts.bpf, self.opts.snaplen))
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            fd = self.dumpcap.start()
            try:  # dumpcap writes the file header once the interface is open: from then on nothing is missed
                capture = open_stream(PipeStream(fd, self._idle), f"dumpcap on {self.opts.interface}", self.diag)
            except CaptureError:
                capture = None  # dumpcap stopped before its first block: its message says why
            if capture is not None:
                self.started = True
                self.view.start(f"capturing on {self.opts.interface} (filter: {self.opts.bpf})")
                read_frames(capture, self._feed, self.diag, self._tick, POLL_EVERY)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.dumpcap.finish()
            if self.ring is not None:
                self.ring.close()
        self._finish()
        return self._status()

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop capturing; what dumpcap already captured is still read and analysed."""
        if not self.stopping:
            self.stopping = True
            if self.dumpcap is not None:
                self.dumpcap.interrupt()

    def _feed(self, frame: int, t: float, linktype: int, data: bytes) -> None:
        self.counters.packets += 1
        if self.ring is not None:
            try:
                self.ring.write(t, linktype, data)
            except OSError as exc:  # disk full, directory removed: said once, and the analysis goes on
                self.view.message(f"the packet ring stopped at frame {frame}: {exc}")
                with contextlib.suppress(OSError):
                    self.ring.close()
                self.ring = None
        self.session.feed(frame, t, linktype, data)

    def _tick(self, _packet_time: float = 0.0) -> None:
        """(A live run polls by the wall clock, not by the packet's time.)"""
        now = time.monotonic()
        if now - self._last_poll >= POLL_SECONDS:
            self._poll()

    def _idle(self) -> None:
        self._poll()

    def _poll(self) -> None:
        self._last_poll = time.monotonic()
        if self._deadline is not None and self._last_poll >= self._deadline:
            self.stop()
        if not self.stopping:  # while stopping, the remaining packets are read first, then finish() decides
            self._publish(self.session.poll(now=time.time()))
        self._report_warnings()
        if self.ring is not None:
            self.ring.flush()
        self.view.refresh(self.counters)

    def _finish(self) -> None:
        earlier = [r for r, _ in self.latest.values()]
        before = {id(r): state for r, state in self.latest.values()}
        self._publish(self.session.finish(earlier))
        for r in earlier:  # findings that needed the whole run (a duplicate GUID registered later)
            if _state(r) != before[id(r)]:
                self._publish([r], changed=True)
        self._report_warnings()
        self.counters.evicted = self.session.evictions()
        stats = self.dumpcap.stats if self.dumpcap is not None else None
        if stats is not None:
            self.counters.dropped, self.counters.received = stats.dropped, stats.received
        if not self.stopping and self.dumpcap is not None:
            what = "stopped" if self.started else "could not start"
            self.view.message(f"the capture {what}: {failure_reason(self.dumpcap.log)}")
        self.view.stop(self.counters)

    def _status(self) -> int:
        if not self.started:
            return EXIT_UNUSABLE
        if not self.stopping:
            return EXIT_CAPTURE_FAILED
        verdicts = +self.counters.verdicts
        if not verdicts:
            return EXIT_NO_REGISTRATION
        return EXIT_ALL_APPROVED if set(verdicts) == {"approved"} else EXIT_NOT_APPROVED

    # --- output ----------------------------------------------------------------------------------
    def _publish(self, results: list[ClientResult], changed: bool = False) -> None:
        for r in results:
            state = _state(r)
            if changed:  # the same exchange, re-judged: its cause moves in the counters
                self.counters.recount(self.latest[id(r)][1], r)
            else:
                self.counters.count(r)
            self.latest[id(r)] = (r, state)
            self.latest.move_to_end(id(r))
            while len(self.latest) > KEEP_CLIENTS:
                self.latest.popitem(last=False)
            self.view.verdict(r, changed)
            if self.lines is not None:
                self.lines.write(json.dumps(client_json(r), separators=(",", ":")) + "\n")
                self.lines.flush()

    def _report_warnings(self) -> None:
        """Capture problems as they happen (bad packets, internal errors), never silently."""
        warnings = self.diag.warnings
        for w in warnings[self._warned:]:
            where = f"frame {w.frame}: " if w.frame is not None else ""
            self.view.message(f"warning: {where}{w.message}")
        self._warned = len(warnings)


def _state(r: ClientResult) -> tuple[str, ...]:
    """What a change of verdict means: the verdict, how the client authenticated, the causes."""
    return (r.verdict, r.client.auth, *(f.code for f in r.findings))


def open_lines(target: str | None) -> IO[str] | None:
    if target is None:
        return None
    if target == "-":
        return sys.stdout
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    return open(target, "a", encoding="utf-8")  # noqa: SIM115 - closed by run_live


def run_live(opts: LiveOptions) -> int:
    """`kerbtrace live`: returns the exit status (documented in the CLI's epilog)."""
    try:
        lines = open_lines(opts.json_lines)
    except OSError as exc:
        print(f"kerbtrace: cannot write {opts.json_lines}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    out = sys.stderr if opts.json_lines == "-" else sys.stdout
    view = TableView(out) if out.isatty() else LineView(out)
    try:
        if opts.write:
            Path(opts.write).parent.mkdir(parents=True, exist_ok=True)
        return LiveRun(opts, view, lines).run()
    except (BackendError, OSError, ValueError) as exc:
        print(f"kerbtrace: live capture failed: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    finally:
        if lines is not None and lines is not sys.stdout:
            lines.close()
