"""Runs the whole pipeline over capture files and assembles the `kerbtrace/1` result.

source -> reassembly -> decoders -> exchanges -> checks; the reports only format what this returns.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import math
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from kerbtrace.checks import Context, Evidence, Finding, judge, late_findings, settle, steps_of, with_steps
from kerbtrace.checks.fleet import FleetFinding, common_cause, lockout_sources, merge_lockouts
from kerbtrace.collector import RelaxedCollector
from kerbtrace.constants import Verdict
from kerbtrace.context import Beside
from kerbtrace.context.joined import FileBeside, join_beside
from kerbtrace.context.logs import LogVerdict, log_verdicts
from kerbtrace.diagnostics import Diagnostics
from kerbtrace.events import Event, KerberosEvent
from kerbtrace.exchanges.client import ClientExchange
from kerbtrace.exchanges.correlator import Correlator
from kerbtrace.exchanges.inventory import KerberosInventory, KerberosRecord
from kerbtrace.exchanges.lockouts import LockoutWatch, PrincipalFailures
from kerbtrace.exchanges.view import InputLegs
from kerbtrace.pipeline import Pipeline
from kerbtrace.reassembly.network import NetworkLayer
from kerbtrace.sources import CaptureError, askers, open_capture, prefilter
from kerbtrace.spill import NEVER, Chain, SpillList

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
    legs: InputLegs = field(default_factory=InputLegs)  # which legs of the exchange the file holds at all
    notes: list[str] = field(default_factory=list)  # what the reader should know of this file's view


@dataclass(slots=True, frozen=True)
class Stitch:
    """Frame numbers of ring files read as one capture: frame X of the file `inputs[k]` is the capture's
    frame `offsets[k] + X` (the pipeline numbers frames on across files; reports give them back per file)."""

    inputs: tuple[int, ...]
    offsets: tuple[int, ...]

    def locate(self, frame: int) -> tuple[int, int]:
        """(input index, Wireshark's frame number in that file) of a frame of the stitched capture."""
        k = max(0, bisect.bisect_left(self.offsets, frame) - 1)
        return self.inputs[k], frame - self.offsets[k]


@dataclass(slots=True)
class ClientResult:
    """What the checks concluded for one client (the exchange itself holds only what the capture shows)."""

    client: ClientExchange
    verdict: Verdict
    findings: list[Finding]
    input: int = 0  # index of the capture file in Analysis.inputs (frame numbers are per file)
    #: Log lines and DC events beside the capture that support no finding of this client.
    context: list[Evidence] = field(default_factory=list)
    #: Set when the client's capture was a ring read as one: its frame numbers (timeline, evidence) are the
    #: stitched capture's, `where` gives the file and the file's frame number.
    stitch: Stitch | None = None
    #: Until the capture ends, for a client with an SMSID: its findings without the exchange's steps, and the
    #: steps (the duplicate GUID check looks at the whole capture and may change the primary cause).
    late: tuple[list[Finding], list[Evidence]] | None = None

    def where(self, frame: int) -> tuple[int, int]:
        """(input index, frame number in that file) of a frame of this client's timeline or evidence."""
        return self.stitch.locate(frame) if self.stitch is not None else (self.input, frame)

    @property
    def primary(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def view(self) -> dict[str, str]:
        return self.client.view


@dataclass(slots=True)
class Analysis:
    inputs: list[InputSummary] = field(default_factory=list)
    #: In report order (per capture: first time, then address); past a threshold kept on disk (kerbtrace.spill).
    clients: Chain[ClientResult] = field(default_factory=Chain)
    kerberos: Chain[KerberosRecord] = field(default_factory=Chain)
    fleet: list[FleetFinding] = field(default_factory=list)  # findings across clients (checks/fleet.py)
    diag: Diagnostics = field(default_factory=Diagnostics)
    beside: Beside | None = None  # what the run was given beside the captures
    joins: list[FileBeside] = field(default_factory=list)  # per capture file: how the logs and DC events joined
    log_clients: list[LogVerdict] = field(default_factory=list)  # a run without captures: the logs' verdicts

    @property
    def fix_script(self) -> str | None:
        """The findings' fix commands as one commented PowerShell script (None: no finding has one)."""
        from kerbtrace.reports.fix_script import fix_script  # a report of this result: imported when asked

        return fix_script(self)

    @property
    def usable(self) -> bool:
        """Every input could be read (a script must notice a file that was not analysed)."""
        return bool(self.inputs) and all(i.error is None for i in self.inputs)


class Share(Protocol):
    """What one process of a capture partitioned by client learns from the others before its clients are
    checked (`kerbtrace.partition`): the facts the whole capture shows, which its own part cannot."""

    def capture_facts(self, session: Session) -> None:
        """After the last packet: MP names and addresses, and the legs of the whole capture."""

    def client_facts(self, session: Session, clients: list[ClientExchange]) -> None:
        """Before the last clients are checked: every client's SMSID (duplicate GUIDs)."""

    def first_pass(self, paths: list[str]):
        """Before the first packet, when the prefilter reads the capture: the addresses that may become clients
        (`askers.may_become_clients`), each process making its share of the reads."""


class Session:
    """The pipeline over one capture: packets in, client verdicts out.

    `feed` takes packets one by one (from a file or a live interface); `poll` hands out the clients
    whose exchange has completed or timed out so far; `finish` ends the input and hands out the rest.
    Clients evaluated by `poll` see only the clients completed before them (for duplicate GUIDs).
    """

    def __init__(self, diag: Diagnostics, *, mp_names: tuple[str, ...] = (), settle: float = 30.0,
                 beside: Beside | None = None, idle_timeout: float = 600.0,
                 kerberos_limit: int | None = None, max_addresses: int | None = None,
                 pipeline: Callable[[Diagnostics, Callable[[Event], None]], Pipeline] = Pipeline) -> None:
        self.diag = diag
        self.settle = settle
        self.correlator = Correlator(idle_timeout=idle_timeout, mp_names=mp_names)
        # A live run lasts days: it keeps no list of Kerberos messages (`kerberos_limit=0`), only the count,
        # and with `max_addresses` state for at most that many recent addresses in each table (LRU).
        self.inventory = KerberosInventory() if kerberos_limit is None else KerberosInventory(kerberos_limit)
        self.lockouts = LockoutWatch()
        self.pipeline = pipeline(diag, self._event)  # a partitioned run passes one that refuses others' clients
        self.max_addresses = max_addresses
        if max_addresses is None:
            self.network = NetworkLayer(self.pipeline, diag)
        else:
            self.correlator.limit(max_addresses)
            self.lockouts.max_asked = self.lockouts.max_sources = max_addresses
            self.network = NetworkLayer(self.pipeline, diag, max_tcp_conns=max(64, max_addresses // 2))
        self.feed = self.network.feed
        self.context = Context(beside=beside or Beside())
        self._smsids_evicted = 0

    def evictions(self) -> dict[str, int]:
        """What the size limits dropped so far, by table (counted, never silent)."""
        out = self.correlator.evictions()
        for name, count in (("kerberos_address_pairs", self.lockouts.evicted), ("smsids", self._smsids_evicted),
                            ("tcp_connections", self.network.stats.get("tcp_evicted_connections", 0))):
            if count:
                out[name] = count
        return out

    def _event(self, event: Event) -> None:
        """Each event to its consumers: the Kerberos inventory and lockout watch, and the correlator."""
        if isinstance(event, KerberosEvent):
            self.inventory.add(event)
            self.lockouts.feed(event)
        self.correlator.feed(event)

    def dns_skipped(self, count: int, latest: float) -> None:
        """`count` DNS messages that could not matter were skipped before decoding (`prefilter.QuietDns`): they
        count as read, and the latest of their times moves the clock as their events would have."""
        self.network.stats["udp_datagrams"] += count
        self.pipeline.counts["dns"] += count
        self.correlator.legs.dns += count
        self.correlator.now = max(self.correlator.now, latest)

    def poll(self, now: float | None = None) -> list[ClientResult]:
        """Clients whose exchange is over. `now` (a live capture's wall clock, in the packets' time base)
        lets the settle and idle timeouts run while no packet arrives; by default the last packet's time."""
        if now is not None:
            self.correlator.now = max(self.correlator.now, now)
        return self._evaluate(list(self.correlator.completed(self.settle)))

    def finish(self, earlier: list[ClientResult] = (), share: Share | None = None,  # type: ignore[assignment]
               into: SpillList[ClientResult] | None = None) -> list[ClientResult]:
        """End of input: the remaining clients; `earlier` (results `poll` gave) get the findings that
        needed the whole capture, such as a duplicate GUID registered after them. `share`: this session
        reads one part of a capture partitioned by client, the other parts' facts come through it.
        With `into`, the results go there one by one (and nothing is returned): the caller then applies
        `late()` to them, and a capture ending with many open exchanges never holds all their results."""
        _guarded(self.diag, None, self.network.flush)
        if share is not None:
            share.capture_facts(self)
        clients = self.correlator.finish(self.context.add)
        if share is not None:
            share.client_facts(self, clients)
        results = self._evaluate(clients, into, added=True)
        late = self.late()
        for r in [*earlier, *results]:
            late(r)
        return results

    def late(self) -> Callable[[ClientResult], None]:
        """After `finish`: what gives a client checked before the end the findings it would get at the end (a
        duplicate GUID registered after it names every computer of the whole capture), from the bare findings
        and steps it keeps in `late`; then `late` is dropped. The function holds only the SMSIDs that more than
        one computer used, not the session (results on disk get it as they are read)."""
        shared = self.context.smsid_users.shared()
        context, diag = dataclasses.replace(self.context, smsid_users=shared), self.diag

        def late(r: ClientResult) -> None:
            if r.late is None:
                return
            bare, steps = r.late
            r.late = None
            smsid = r.client.smsid
            if smsid and smsid.upper() in shared:
                final = _guarded(diag, None, late_findings, r.client, r.verdict, bare, context)
                if final is not None and final is not bare:
                    r.findings = with_steps(final, steps)
        return late

    def _evaluate(self, clients: Sequence[ClientExchange], into: SpillList[ClientResult] | None = None,
                  added: bool = False) -> list[ClientResult]:
        """Every client of the batch into the context first (duplicates look across clients; `added`: done
        already), then each checked; with `into`, each result is released and put there at once (see `finish`)."""
        self.context.kdc_visible = self.correlator.legs.kdc > 0
        if not added:
            for client in clients:
                self.context.add(client)
        out = []
        for client in clients:
            outcome = _guarded(self.diag, None, judge, client, self.context)
            verdict, findings = outcome if outcome is not None else (Verdict.INCONCLUSIVE, [])
            steps = _guarded(self.diag, None, steps_of, client) or []
            r = ClientResult(client, verdict, with_steps(findings, steps))
            if client.smsid:
                r.late = (findings, steps)
            if into is None:
                out.append(r)
            else:  # the checks read only this client and the context: it may let go of its messages now
                client.release()
                into.append(r)
        for r in out:
            r.client.release()  # after every check of this batch ran
        self._bound_smsids()
        return out

    def _bound_smsids(self) -> None:
        """With `max_addresses`, the SMSIDs of only that many recent clients are remembered for the duplicate
        GUID check (the oldest first forgotten): a live run's clients never end."""
        users = self.context.smsid_users
        if self.max_addresses is None or len(users) <= self.max_addresses:
            return
        for smsid in list(itertools.islice(users, len(users) - self.max_addresses)):
            del users[smsid]
            self._smsids_evicted += 1

class ViewTally:
    """The clients' views counted while another reader goes through them (`through`): the results may be on
    disk (kerbtrace.spill), and one pass over them serves both."""

    __slots__ = ("clients", "labels", "tls")

    def __init__(self) -> None:
        self.clients = 0
        self.labels: Counter[str | None] = Counter()
        self.tls = 0  # registrations in TLS to the MP

    def through(self, results: Iterable[ClientResult]) -> Iterator[ClientResult]:
        for r in results:
            view = r.view
            self.clients += 1
            self.labels[view.get("label")] += 1
            self.tls += view.get("mp_http") == "tls"
            yield r


def view_notes(seen: ViewTally, legs: InputLegs, beside: Beside, unknown_spn_hosts: dict[str, int],
               kerberos_dropped: int, kerberos_limit: int, dropped: dict[str, int] | None = None) -> list[str]:
    """What the reader should know of the view: legs the file lacks, HTTP SPNs of hosts not known as MPs."""
    out = []
    mp_side = seen.labels["mp_side"]
    if mp_side:
        where = ("the DC's security log given beside it speaks for those it logged" if beside.dc_events
                 else "capture on the client or a DC, or read the DC's security log (--events)")
        out.append(f"MP side only: no KDC traffic for these {mp_side} client(s); their Kerberos causes cannot "
                   f"be seen in the capture ({where})")
    kdc_side = seen.labels["kdc_side"]
    if kdc_side:
        out.append(f"KDC side only: the registration (HTTP to the MP) of {kdc_side} client(s) is not in the "
                   "capture; verdicts come from their Kerberos exchanges for the MP's HTTP SPN")
    tls = seen.tls
    if tls:
        out.append(f"HTTPS: the registration of {tls} client(s) is encrypted (TLS to the MP); verdicts come "
                   "from the Kerberos side")
    if not legs.kdc and not seen.clients and legs.mp_http == 0 and legs.mp_tls == 0:
        out.append("no Kerberos on port 88 and no registration in this file")
    for host, count in sorted(unknown_spn_hosts.items())[:10]:
        out.append(f"Kerberos tickets for HTTP/{host} ({count} request(s)): pass --mp-name {host} if it is an MP")
    if dropped:  # a capture larger than the tables: what was forgotten, counted (never silent)
        out.append("size limits dropped state, least recently used first: " + ", ".join(
            f"{table} {n:,}" for table, n in sorted(dropped.items())) + "; a client whose state was dropped may "
            "show less of its exchange than the capture holds")
    if kerberos_dropped:
        out.append(f"{kerberos_dropped} Kerberos messages past the first {kerberos_limit} are counted, not listed")
    return out


GroupResult = tuple[list[InputSummary], list[ClientResult], list[KerberosRecord], list[FleetFinding], FileBeside]


def analyze(paths: list[str], *, progress: bool | None = None, mp_names: tuple[str, ...] = (),
            beside: Beside | None = None, stitch: bool = True, run_group: Callable[..., GroupResult] | None = None
            ) -> Analysis:
    """Analyse capture files in order, as one capture per file (frame numbers restart per file), except the
    files of one ring (`sources.inputs.ring_groups`; unless `stitch` is False), read as one capture:
    one session fed by the files in order, so an exchange cut by a rotation is whole.

    `beside` is what the run was given besides the captures (directory facts, keytab, logs, DC events);
    the checks consult it through their Context. `run_group` reads one capture (by default in this
    process; `kerbtrace.partition` reads it with several)."""
    from kerbtrace.sources.inputs import ring_groups

    run_group = run_group or analyze_group

    result = Analysis(beside=beside)
    show = sys.stderr.isatty() if progress is None else progress
    groups = ring_groups(paths) if stitch else [[i] for i in range(len(paths))]
    for group in groups:
        first = group[0]
        summaries, clients, kerberos, fleet, joined = run_group([paths[i] for i in group], group, result.diag,
                                                                show, mp_names, beside)
        result.inputs.extend(summaries)
        result.joins.append(joined)
        result.joins.extend(FileBeside([]) for _ in group[1:])
        for finding in fleet:
            finding.input = first
        result.clients.extend(clients)
        result.kerberos.extend(kerberos)
        result.fleet.extend(fleet)
    if beside is not None and beside.dc_events is not None:
        result.fleet = merge_lockouts(result.fleet, beside.dc_events.lockout_sources())
    return result


def analyze_beside(beside: Beside) -> Analysis:
    """A run without captures: per-client verdicts from the logs alone, lockout sources from the DC's log."""
    result = Analysis(beside=beside)
    if beside.logs is not None:
        result.log_clients = log_verdicts(beside.logs)
    if beside.dc_events is not None:
        result.fleet = merge_lockouts([], beside.dc_events.lockout_sources())
    return result


def analyze_group(paths: list[str], indices: list[int], diag: Diagnostics, show: bool, mp_names: tuple[str, ...],
                   beside: Beside | None = None) -> GroupResult:
    """One capture made of one file, or of a ring's files in order (frames numbered on across the files)."""
    session = Session(diag, mp_names=mp_names, beside=beside)
    mark = len(diag.warnings)
    summaries, done = read_group(paths, indices, session, diag, show)
    if all(s.format is None for s in summaries):
        return summaries, [], [], [], FileBeside([])
    finish_group(summaries, indices, session, done, diag)
    _order_warnings(diag, mark)
    correlator = session.correlator
    return conclude_group(paths, summaries, done, session.inventory.records, diag, beside,
                          correlator.legs, correlator.unknown_spn_hosts(), session.inventory,
                          session.lockouts.principals.values(), session.evictions())


def read_group(paths: list[str], indices: list[int], session: Session, diag: Diagnostics, show: bool,
               share: Share | None = None) -> tuple[list[InputSummary], SpillList[ClientResult]]:
    """Feed the files of one capture to `session`: their summaries, and the clients checked on the way (`share`:
    the exchange with the other processes of a partitioned run, for the first pass)."""
    # Past a threshold the results wait on disk (kerbtrace.spill), except when logs or DC events are joined to
    # them: the join reads every client at once.
    beside = session.context.beside
    joins = joins_context(beside)
    done: SpillList[ClientResult] = SpillList(key=report_order, threshold=NEVER if joins else None)
    summaries: list[InputSummary] = []
    offset = 0
    quiet_dns = functools.cache(lambda: _quiet_dns(paths, session, share))
    for path, index in zip(paths, indices, strict=True):
        diag.current_input = index
        summary = _read_file(path, session, done, diag, show, offset, quiet_dns)
        summaries.append(summary)
        offset += summary.packets
    diag.current_input = indices[0]
    return summaries, done


def finish_group(summaries: list[InputSummary], indices: list[int], session: Session, done: SpillList[ClientResult],
                 diag: Diagnostics, share: Share | None = None) -> None:
    """The end of one capture: its last clients checked into `done`, everything placed in its file. The clients
    checked earlier get the findings that needed the whole capture as they are read (`Session.late`)."""
    session.finish(share=share, into=done)
    done.update(session.late())
    offsets = list(itertools.accumulate(s.packets for s in summaries[:-1]))
    offsets.insert(0, 0)
    stitch = Stitch(tuple(indices), tuple(offsets)) if len(summaries) > 1 else None
    _place(done, session.inventory.records, diag, stitch, indices)


def conclude_group(paths: list[str], summaries: list[InputSummary], done: Sequence[ClientResult],
                   kerberos: Sequence[KerberosRecord], diag: Diagnostics, beside: Beside | None, legs: InputLegs,
                   unknown_spn_hosts: dict[str, int], inventory: KerberosInventory,
                   principals: Iterable[PrincipalFailures], dropped: dict[str, int] | None = None) -> GroupResult:
    """What needs every client of the capture: the context joined, the notes on the view, fleet findings."""
    joined = join_context(done, kerberos, beside, diag)
    head = summaries[0]
    head.legs = legs
    lockouts = lockout_sources(principals)
    seen = ViewTally()
    reading = seen.through(done)  # one pass over the clients (maybe on disk) for the fleet findings and the view
    fleet = lockouts + common_cause(reading, reported=[f.subject for f in lockouts])
    deque(reading, maxlen=0)  # (common_cause reads them all: this only makes sure)
    head.notes = view_notes(seen, legs, beside or Beside(), unknown_spn_hosts, inventory.dropped, inventory.limit,
                            dropped)
    if len(paths) > 1:
        head.notes.insert(0, f"{len(paths)} files of one ring (this one to {Path(paths[-1]).name}) read as one "
                          "capture: frame numbers are each file's own, [N] marks one in another file than its client's")
    return summaries, done, kerberos, fleet, joined


def _order_warnings(diag: Diagnostics, mark: int) -> None:
    """This capture's warnings in frame order (a warning at a connection's end after those of its frames)."""
    diag.warnings[mark:] = sorted(diag.warnings[mark:], key=warning_order)


def warning_order(w) -> tuple[int, bool, int]:
    return (w.input if w.input is not None else -1), w.frame is None, w.frame or 0


def report_order(r: ClientResult) -> tuple[float, str]:
    """Clients in a report: by first time, then address (a partitioned run merges its parts by it too)."""
    return r.client.first_time, r.client.ip


def _place(done: SpillList[ClientResult], kerberos: SpillList[KerberosRecord], diag: Diagnostics,
           stitch: Stitch | None, indices: list[int]) -> None:
    """Each client, Kerberos message and warning to the file its frames are in (a ring's frames are numbered
    on across its files while read; Wireshark numbers them per file)."""
    first_input = indices[0]
    if stitch is None:
        def to_input(item: ClientResult | KerberosRecord) -> None:
            item.input = first_input
        done.update(to_input)
        kerberos.update(to_input)
        return

    def place_client(r: ClientResult) -> None:
        r.stitch = stitch
        frames = [e.frame for e in r.client.timeline if e.frame]
        r.input = stitch.locate(min(frames))[0] if frames else first_input

    def place_record(k: KerberosRecord) -> None:
        k.input, k.frame = stitch.locate(k.frame)
    done.update(place_client)
    kerberos.update(place_record)
    first = dict(zip(stitch.inputs, stitch.offsets, strict=True))
    for w in diag.warnings:
        # the pipeline's warnings carry stitched frame numbers (a file's reader its own, all below its offset)
        if w.input in first and w.frame and w.frame > first[w.input]:
            w.input, w.frame = stitch.locate(w.frame)


def _quiet_dns(paths: list[str], session: Session, share: Share | None = None) -> prefilter.QuietDns | None:
    """What the prefilter needs to skip the DNS messages of this capture that cannot matter: a first pass over
    all its files lists the addresses that may become clients (None: this capture is not thinned); the processes
    of a partitioned run each make their share of it (`Share.first_pass`)."""
    listed = askers.may_become_clients(paths) if share is None else share.first_pass(paths)
    if listed is None:
        return None
    return prefilter.QuietDns(listed.astype(prefilter.np.uint64), session.correlator.mp.labels, session.dns_skipped)


def _read_file(path: str, session: Session, done: SpillList[ClientResult], diag: Diagnostics, show: bool,
               offset: int, quiet_dns: Callable[[], prefilter.QuietDns | None] | None = None) -> InputSummary:
    """Feed one file's packets to the session, their frame numbers moved on by `offset` (ring files after the
    first); clients whose exchange is over are checked on the way into `done`."""
    summary = InputSummary(path, None)
    try:
        capture = open_capture(path, diag)
    except (CaptureError, OSError) as exc:
        summary.error = str(exc)
        return summary
    summary.format = capture.format
    bar = _Progress(Path(path).name, capture.size) if show else None
    feed = session.feed if not offset else (lambda frame, time, linktype, data:
                                            session.feed(frame + offset, time, linktype, data))
    with RelaxedCollector() as collector:

        def tick(time: float) -> None:
            # Clients whose exchange is over are checked now and keep only their results: memory then
            # follows the clients still in progress, not the length of the capture. Over by the capture's
            # clock (this packet's time), not by the last message decoded: the same whatever else is read.
            done.extend(session.poll(time))
            collector.tick()
            if bar is not None:
                bar.update(capture.position())

        try:
            with capture:
                # libpcap and numpy skip what cannot matter, where they read the file exactly as we do
                frames = prefilter.records(capture, Pipeline.udp_ports,
                                           due=session.network.next_sweep, every=PROGRESS_EVERY,
                                           streams=session.network.skip_streams,
                                           dropping=session.network.dropping,
                                           partition=getattr(session.pipeline, "partition", None),
                                           quiet_dns=quiet_dns) or capture
                _read(frames, feed, diag, tick)
        except KeyboardInterrupt:
            diag.warn(None, f"{path}: interrupted; results cover the frames read so far", "file")
        if bar is not None:
            bar.close()
        summary.packets, summary.start, summary.end = capture.packets, capture.start, capture.end
        if not capture.packets:
            summary.error = "no packet could be read from this file"  # nothing analysed: not "all approved"
    return summary


def joins_context(beside: Beside | None) -> bool:
    """Logs or DC events are joined to the clients: the join reads (and changes) every client at once, so a
    capture's results then stay in memory rather than on disk."""
    return beside is not None and (beside.logs is not None or beside.dc_events is not None)


def join_context(done: Sequence[ClientResult], kerberos: Sequence[KerberosRecord], beside: Beside | None,
                 diag: Diagnostics) -> FileBeside:
    """After every client of the file was evaluated: join the logs and DC events to them, and let what
    they say settle each client's findings (`checks.verdict.settle`)."""
    if not joins_context(beside):
        return FileBeside([])
    joined = _guarded(diag, None, join_beside, [r.client for r in done], kerberos, beside)
    if joined is None:
        return FileBeside([])
    for r, mine in zip(done, joined.clients, strict=True):
        r.findings, r.context = settle(r.verdict, r.findings, mine.statements, mine.log_evidence, mine.dc_evidence)
    return joined


def _read(capture, feed, diag: Diagnostics, tick, every: int | None = None) -> None:
    """Feed every frame to the pipeline, calling `tick` with the frame's time every `every` frames (a power of
    two; by default PROGRESS_EVERY); a defect on one packet never loses the rest of the file."""
    mask = (every or PROGRESS_EVERY) - 1
    frames = iter(capture)
    frame = 0
    while True:
        try:
            for frame, time, linktype, data in frames:
                feed(frame, time, linktype, data)
                if not frame & mask:
                    tick(time)
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


#: "YYYY-MM-DDTHH:MM:SS" of whole seconds formatted so far (a report names ~30 times per client, mostly in the
#: same few seconds); cleared when full.
_ISO_SECONDS: dict[int, str] = {}


def iso(ts: float | None) -> str | None:
    """UTC time as "2026-11-21T10:37:38.480646Z", exactly as `datetime.fromtimestamp(ts, UTC).isoformat()`
    gives it (microseconds rounded half to even), with the date and time of each whole second formatted once."""
    if ts is None:
        return None
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)  # datetime's own rounding of the fraction
    if us >= 1_000_000:
        us -= 1_000_000
        whole += 1.0
    elif us < 0:
        us += 1_000_000
        whole -= 1.0
    sec = int(whole)
    head = _ISO_SECONDS.get(sec)
    if head is None:
        if len(_ISO_SECONDS) >= 4096:
            _ISO_SECONDS.clear()
        head = _ISO_SECONDS[sec] = datetime.fromtimestamp(sec, UTC).isoformat(timespec="seconds")[:19]
    return f"{head}.{us:06d}Z"
