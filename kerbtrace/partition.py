"""One capture read by several processes at once, partitioned by client, merged into the result one process gives.

Each process reads every packet through the source and the network layer (so frame numbers, TCP stream numbers,
IP fragments and the connection table's sweeps are those of a single run) and refuses, at the pipeline's entry,
the conversations whose client another process owns (`ownership.owner`: the client's address, hashed the same
way in every process). With the prefilter on, libpcap and numpy skip those packets before Python sees them.
Reassembly, decoding, the correlator and the checks then run once per client, in its owner.

What one client's verdict needs from the others' traffic is exchanged before the end (`analysis.Share`): the MP
names and addresses learned from Host headers and DNS, and the legs of the whole capture (`kdc_visible`, the
view), after the last packet; every client's SMSID (duplicate GUIDs) before the last clients are checked. The
parent reads part 0 itself, then merges what the parts found (clients, the Kerberos list, lockout sources,
warnings) and draws the conclusions that need every client (context beside the capture, notes, fleet findings)
with `analysis.conclude_group`, as one process does. docs/benchmarks.md says where the result may still depend
on the number of processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from kerbtrace.analysis import (
    ClientResult,
    GroupResult,
    InputSummary,
    Session,
    analyze_group,
    conclude_group,
    finish_group,
    joins_context,
    read_group,
    report_order,
    warning_order,
)
from kerbtrace.checks.base import SmsidUsers
from kerbtrace.context import Beside
from kerbtrace.context.joined import FileBeside
from kerbtrace.diagnostics import Diagnostics, Warning_
from kerbtrace.exchanges import inventory as kerberos_inventory
from kerbtrace.exchanges import lockouts
from kerbtrace.exchanges.client import ClientExchange
from kerbtrace.exchanges.inventory import KerberosInventory, KerberosRecord, record_order
from kerbtrace.exchanges.lockouts import PrincipalFailures
from kerbtrace.exchanges.mp_names import MpNames
from kerbtrace.exchanges.view import InputLegs
from kerbtrace.model import TcpConn
from kerbtrace.ownership import client_of, owner
from kerbtrace.pipeline import Pipeline
from kerbtrace.sources import askers
from kerbtrace.spill import CHUNK, NEVER, Merged, SpillList, pickled_chunks

#: Warnings one process keeps before it only counts them: above `Diagnostics.keep`, so that the merge still
#: sees which warnings every process raised (the network layer's, about packets all of them read).
WORKER_WARNINGS = 20_000
SEND_CLIENTS = 256  # results per message from a part to the parent
SEND_KERBEROS = 4096  # Kerberos records per message


class OwnedPipeline(Pipeline):
    """The pipeline of one part: traffic of clients another process owns is refused at the entry (a refused
    TCP connection is then skipped by the reassembler like any unwanted one)."""

    def __init__(self, diag: Diagnostics, emit, *, part: int, parts: int) -> None:
        super().__init__(diag, emit)
        self.part = part
        self.parts = parts
        self.partition = (part, parts)  # for the prefilter, which skips the other parts' packets itself
        self._owners: dict[str, bool] = {}  # address -> mine (bounded: cleared when large)

    def mine(self, address: str) -> bool:
        known = self._owners.get(address)
        if known is None:
            if len(self._owners) >= 1 << 16:
                self._owners.clear()
            known = self._owners[address] = owner(address, self.parts) == self.part
        return known

    def wants_tcp(self, conn: TcpConn, payload: bytes, from_client: bool) -> bool:
        if not self.mine(client_of(conn.client_ip, conn.client_port, conn.server_ip, conn.server_port,
                                   self.tcp_ports)):
            return False
        return super().wants_tcp(conn, payload, from_client)

    def on_udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes, frame: int, time: float) -> None:
        if self.mine(client_of(src, sport, dst, dport, self.udp_ports)):
            super().on_udp(src, sport, dst, dport, payload, frame, time)

    def on_connect_failed(self, client_ip: str, client_port: int, server_ip: str, server_port: int,
                          transport: str, how: str, frame: int, time: float) -> None:
        if self.mine(client_ip):
            super().on_connect_failed(client_ip, client_port, server_ip, server_port, transport, how, frame, time)


@dataclass(slots=True)
class CaptureFacts:
    """What one part learned of the whole capture's MPs and legs."""

    names: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    legs: InputLegs = field(default_factory=InputLegs)


@dataclass(slots=True)
class PartResult:
    """What one process hands back: its clients (checked, released) and what the merge needs besides."""

    summaries: list[InputSummary]
    clients: list[ClientResult] = field(default_factory=list)
    client_count: int = 0  # a child's clients, sent after this result (`_run_part`)
    kerberos: list[KerberosRecord] = field(default_factory=list)
    kerberos_count: int = 0  # a child's Kerberos records, sent after its clients
    kerberos_dropped: int = 0
    principals: list[PrincipalFailures] = field(default_factory=list)
    evictions: dict[str, int] = field(default_factory=dict)  # what this part's size limits dropped, by table
    spn_hosts: dict[str, int] = field(default_factory=dict)
    #: The MP names known at the end, and the legs of the whole capture (the union handed back).
    facts: CaptureFacts = field(default_factory=CaptureFacts)
    warnings: list[Warning_] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    fatal: str | None = None
    read: bool = False


def _facts_of(session: Session) -> CaptureFacts:
    correlator = session.correlator
    return CaptureFacts(dict(correlator.mp.names), dict(correlator.mp.addresses), correlator.legs)


def _learn_facts(session: Session, union: CaptureFacts) -> None:
    correlator = session.correlator
    for name, source in union.names.items():
        correlator.mp.add(name, source)
    for address, name in union.addresses.items():
        correlator.mp.add_address(address, name)
    correlator.legs = union.legs  # the views and kdc_visible of the clients checked from now on


def _smsids_of(session: Session, clients: Sequence[ClientExchange]) -> SmsidUsers:
    for client in clients:
        session.context.add(client)
    return session.context.smsid_users


def _learn_smsids(session: Session, union: SmsidUsers) -> None:
    session.context.smsid_users = union


class _PipeShare:
    """A child process's side of the exchange (`analysis.Share`): its facts to the parent, the union back."""

    def __init__(self, conn, part: int, parts: int) -> None:
        self.conn = conn
        self.passes = askers.share_of(part, parts)

    def first_pass(self, paths: list[str]):
        self.conn.send(("first_pass", askers.may_become_clients(paths, self.passes)))
        return self.conn.recv()

    def capture_facts(self, session: Session) -> None:
        self.conn.send(("facts", _facts_of(session)))
        _learn_facts(session, self.conn.recv())

    def client_facts(self, session: Session, clients: list[ClientExchange]) -> None:
        self.conn.send(("smsids", _smsids_of(session, clients)))
        _learn_smsids(session, self.conn.recv())


class _ParentShare:
    """Part 0, read by the parent itself: it gathers the other parts' facts and hands the union back."""

    def __init__(self, pipes: list) -> None:
        self.pipes = pipes
        self.passes = askers.share_of(0, len(pipes) + 1)

    def first_pass(self, paths: list[str]):
        union = askers.union([askers.may_become_clients(paths, self.passes), *self._gather("first_pass")])
        self._hand_back(union)
        return union

    def capture_facts(self, session: Session) -> None:
        union = _union_facts([_facts_of(session), *self._gather("facts")])
        self._hand_back(union)
        _learn_facts(session, union)

    def client_facts(self, session: Session, clients: list[ClientExchange]) -> None:
        union = _union_smsids([_smsids_of(session, clients), *self._gather("smsids")])
        self._hand_back(union)
        _learn_smsids(session, union)

    def _gather(self, stage: str) -> list:
        out = []
        for k, pipe in enumerate(self.pipes, 1):
            kind, value = _receive(pipe)
            if kind != stage:
                raise PartError(f"part {k} sent {kind!r} instead of {stage!r}")
            out.append(value)
        return out

    def _hand_back(self, union: object) -> None:
        for pipe in self.pipes:
            pipe.send(union)


def _analyze_part(paths: list[str], indices: list[int], part: int, parts: int, mp_names: tuple[str, ...],
                  beside: Beside | None, show: bool, share) -> PartResult:
    """One part's analysis of its clients of the capture."""
    diag = Diagnostics(keep=WORKER_WARNINGS)
    session = Session(diag, mp_names=mp_names, beside=beside,
                      pipeline=lambda d, emit: OwnedPipeline(d, emit, part=part, parts=parts))
    summaries, done = read_group(paths, indices, session, diag, show, share)
    out = PartResult(summaries, read=any(s.format is not None for s in summaries))
    if out.read:
        finish_group(summaries, indices, session, done, diag, share)
        out.clients = done
        out.kerberos = session.inventory.records
        out.kerberos_dropped = session.inventory.dropped
        out.principals = list(session.lockouts.principals.values())
        out.evictions = session.evictions()
        out.spn_hosts = dict(session.correlator.mp.spn_hosts)
        out.facts = _facts_of(session)
    out.warnings, out.dropped, out.fatal = diag.warnings, diag.dropped, diag.fatal
    return out


def _run_part(conn, paths: list[str], indices: list[int], part: int, parts: int, mp_names: tuple[str, ...],
              beside: Beside | None) -> None:
    """A child process: one part, handed back through `conn`."""
    try:
        result = _analyze_part(paths, indices, part, parts, mp_names, beside, False, _PipeShare(conn, part, parts))
        clients, result.clients = result.clients, []
        kerberos, result.kerberos = result.kerberos, []
        result.client_count, result.kerberos_count = len(clients), len(kerberos)
        conn.send(("done", result))
        # then the clients and the Kerberos records a few at a time (read from this part's disk as they go): one
        # message of them all would hold every one of the part in memory twice, here and in the parent (the
        # 600,000 records of a 10 GB capture: 450 MB peak). They go pickled as the parent's spilled lists store
        # them (`SpillList.adopt`): written there as they come.
        _send_list(conn, "clients", clients, CHUNK, SEND_CLIENTS)
        _send_list(conn, "kerberos", kerberos, kerberos_inventory.CHUNK, SEND_KERBEROS)
    except BaseException:  # noqa: BLE001 - the parent reports it; a part must never hang the others
        with contextlib.suppress(OSError):  # (the parent may have given up on the parts already)
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _send_list(conn, kind: str, items, chunk: int, per_message: int) -> None:
    """`items` in order, `per_message` at a time, pickled `chunk` at a time; then None (`_receive_list`)."""
    batch: list[tuple[int, bytes]] = []
    for pickled in pickled_chunks(items, chunk):
        batch.append(pickled)
        if len(batch) * chunk >= per_message:
            conn.send((kind, batch))
            batch = []
    conn.send((kind, batch))
    conn.send((kind, None))


class PartError(RuntimeError):
    """A process of a partitioned run failed (its traceback is the message)."""


def partitioned_group(parts: int):
    """A `run_group` for `analysis.analyze` that reads each capture with `parts` processes."""

    def run_group(paths: list[str], indices: list[int], diag: Diagnostics, show: bool, mp_names: tuple[str, ...],
                  beside: Beside | None = None) -> GroupResult:
        return _partitioned(paths, indices, diag, show, mp_names, beside, parts)

    return run_group


def _partitioned(paths: list[str], indices: list[int], diag: Diagnostics, show: bool, mp_names: tuple[str, ...],
                 beside: Beside | None, parts: int) -> GroupResult:
    """Parts 1.. in child processes (forked: they share what was loaded), part 0 in this one."""
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pipes, processes = [], []
    for part in range(1, parts):
        mine, theirs = context.Pipe()
        process = context.Process(target=_run_part, args=(theirs, paths, indices, part, parts, mp_names, beside),
                                  daemon=True)
        process.start()
        theirs.close()
        pipes.append(mine)
        processes.append(process)
    results: list[PartResult] | None = None
    try:
        results = [_analyze_part(paths, indices, 0, parts, mp_names, beside, show, _ParentShare(pipes))]
        for k, pipe in enumerate(pipes, 1):
            kind, value = _receive(pipe)
            if kind != "done":
                raise PartError(f"part {k} sent {kind!r} instead of its result")
            value.clients = _receive_list(pipe, k, "clients", SpillList(  # type: ignore[attr-defined]
                threshold=NEVER if joins_context(beside) else None), value.client_count)  # type: ignore[attr-defined]
            value.kerberos = _receive_list(pipe, k, "kerberos", kerberos_inventory.records_list(),  # type: ignore
                                           value.kerberos_count)  # type: ignore[attr-defined]
            results.append(value)  # type: ignore[arg-type]
    except PartError as exc:
        diag.warn(None, f"the processes reading this capture in parts failed; read in one process instead ({exc})",
                  "internal")
        results = None
    finally:
        for pipe in pipes:
            pipe.close()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
    if results is None:
        return analyze_group(paths, indices, diag, show, mp_names, beside)
    return _merge(paths, indices, diag, beside, results)


def _receive_list(pipe, k: int, what: str, out: SpillList, total: int) -> SpillList:
    """A part's `total` items of `what` into `out`, in its order, sent a few pickled chunks at a time after its
    result (`_send_list`)."""
    while True:
        kind, batch = _receive(pipe)
        if kind != what:
            raise PartError(f"part {k} sent {kind!r} instead of its {what}")
        if batch is None:
            return out
        for count, blob in batch:  # type: ignore[attr-defined]
            out.adopt(count, blob, total)


def _receive(pipe) -> tuple[str, object]:
    try:
        kind, value = pipe.recv()
    except EOFError:
        raise PartError("a process of the partitioned run ended without a result") from None
    if kind == "error":
        raise PartError(str(value))
    return kind, value


def _union_facts(facts: list[CaptureFacts]) -> CaptureFacts:
    names = MpNames()
    legs = InputLegs()
    for f in facts:
        for name, source in f.names.items():
            names.add(name, source)
        for address, name in f.addresses.items():
            names.add_address(address, name)
        for leg in ("mp_http", "mp_tls", "kdc", "dns"):
            setattr(legs, leg, getattr(legs, leg) + getattr(f.legs, leg))
    return CaptureFacts(names.names, names.addresses, legs)


def _union_smsids(parts: list[SmsidUsers]) -> SmsidUsers:
    out = SmsidUsers()
    for users in parts:
        for smsid, names in users.items():
            out.merge(smsid, names)
    return out


def _merge(paths: list[str], indices: list[int], diag: Diagnostics, beside: Beside | None,
           results: list[PartResult]) -> GroupResult:
    """The parts' findings as one process finds them (`analysis.analyze_group`)."""
    summaries = results[0].summaries  # every part read every packet: the same summaries
    _merge_warnings(diag, results)
    if not results[0].read:
        return summaries, [], [], [], FileBeside([])
    # each part's clients are in report order already: merged each time they are read (ties: the lower part
    # first, as a stable sort of the parts one after the other)
    done = Merged([part.clients for part in results], report_order)
    inventory = KerberosInventory()
    # each part's records are in frame order already: merged as they are read, not sorted into one list here
    kerberos = Merged([part.kerberos for part in results], record_order, limit=inventory.limit)
    inventory.dropped = sum(p.kerberos_dropped for p in results) + max(
        0, sum(len(part.kerberos) for part in results) - inventory.limit)
    legs = results[0].facts.legs  # every part was handed the sum
    names = MpNames(tuple(n for p in results for n in p.facts.names))
    spn_hosts: Counter = Counter()
    for part in results:
        spn_hosts.update(part.spn_hosts)
    unknown = {h: n for h, n in spn_hosts.items() if not names.is_mp_name(h)}
    evictions: Counter = Counter()  # each part's tables hold its own clients: what they dropped, added up
    for part in results:
        evictions.update(part.evictions)
    return conclude_group(paths, summaries, done, kerberos, diag, beside, legs, unknown, inventory,
                          lockouts.merge(part.principals for part in results), dict(evictions))


def _merge_warnings(diag: Diagnostics, results: list[PartResult]) -> None:
    """Each warning once: one the network layer raised (about a packet every part read) is in every part's list,
    one of a client's traffic only in its owner's. A warning raised k times in one part stays k times."""
    seen: Counter = Counter()
    merged: list[Warning_] = []
    for part in results:
        mine: Counter = Counter()
        for w in part.warnings:
            key = (w.input, w.frame, w.kind, w.message)
            mine[key] += 1
            if mine[key] > seen[key]:
                merged.append(w)
        seen |= mine
    merged.sort(key=warning_order)
    for w in merged:
        if len(diag.warnings) < diag.keep:
            diag.warnings.append(w)
        else:
            diag.dropped[w.kind] += 1
    for kind in {k for part in results for k in part.dropped}:
        diag.dropped[kind] += max(part.dropped[kind] for part in results)
    if not diag.fatal:
        diag.fatal = next((p.fatal for p in results if p.fatal), None)


__all__ = ["OwnedPipeline", "PartError", "partitioned_group"]
