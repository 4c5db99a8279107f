"""Joins log entries to the clients of an analysis: by IP (IIS `c-ip`), by name, account or SMSID (MP and
client logs), and by time once each log's clock offset is estimated from the matches.

Works on the fields of `ClientExchange` that stay after the checks ran (identity, first/last time and the
timeline), so it can run after the analysis, beside the checks.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field

from kerbtrace.checks.base import Evidence
from kerbtrace.context.logs.iis import describe_status, status_of
from kerbtrace.context.logs.load import LogContext
from kerbtrace.context.logs.messages import Fact, account_netbios, client_fact, guids, mp_fact
from kerbtrace.context.logs.offset import densest_offset
from kerbtrace.context.logs.records import LogFile, LogRecord
from kerbtrace.exchanges.client import ClientExchange

IIS_WIDTH, IIS_SLACK = 2.0, 2.0  # IIS writes whole seconds, at the end of the request
MP_WIDTH, MP_SLACK = 2.0, 5.0
CLIENT_WIDTH, CLIENT_SLACK = 5.0, 60.0  # a client logs around its requests, not at them
_HTTP_STATUS = re.compile(r"HTTP (\d{3})")


@dataclass(slots=True)
class FileJoin:
    """How one log file joined: its estimated clock offset (log minus capture, seconds; None when nothing
    matched), from how many agreeing pairs, and how many of its entries matched no client."""

    path: str
    source: str
    offset: float | None
    pairs: int
    matched: int
    unmatched: int

    def as_json(self) -> dict:
        return {"file": self.path, "source": self.source, "offset_seconds": self.offset,
                "offset_pairs": self.pairs, "matched": self.matched, "unmatched": self.unmatched}


@dataclass(slots=True)
class LogJoin:
    """Per client (same order as the clients given) the matching log lines as evidence; per file its join."""

    evidence: list[list[Evidence]] = field(default_factory=list)
    files: list[FileJoin] = field(default_factory=list)


@dataclass(slots=True)
class _Block:
    """The MP log entries of one registration (one thread from "Processing Registration request" to
    "Processing completed"), with the names they mention."""

    records: list[LogRecord] = field(default_factory=list)
    facts: list[Fact | None] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def time(self) -> float | None:
        times = [r.time for r in self.records if r.time is not None]
        return times[-1] if times else None


def _responses(client: ClientExchange) -> list[tuple[float, int | None]]:
    """(time, status) of the MP's HTTP answers to the client, from its timeline. Over HTTPS the answers are
    inside TLS: then every packet the MP sent the client stands in, status unknown."""
    out = []
    for entry in client.timeline:
        if entry.dst == client.ip and entry.event.startswith("HTTP "):
            m = _HTTP_STATUS.match(entry.event)
            out.append((entry.time, int(m.group(1)) if m else None))
    if not out and client.mp_ip:
        out = [(e.time, None) for e in client.timeline if e.src == client.mp_ip and e.dst == client.ip]
    return out


def _registration_requests(client: ClientExchange) -> list[float]:
    """When the client's registration attempts went out: its anonymous first requests (else every request)."""
    sent = [e for e in client.timeline if e.src == client.ip and "/ccm_system" in e.event.lower()]
    return [e.time for e in sent if e.detail.startswith("anonymous")] or [e.time for e in sent]


def _within(client: ClientExchange, when: float | None, offset: float, slack: float) -> bool:
    if when is None:
        return False
    t = when - offset
    return client.first_time - slack <= t <= client.last_time + slack


def iis_evidence(rec: LogRecord) -> Evidence:
    return Evidence(None, f"{rec.text}  [{describe_status(rec)}]", "iis", rec.file, rec.line)


def ccm_evidence(rec: LogRecord, fact: Fact | None) -> Evidence:
    text = rec.text
    if fact is not None and fact.simulator:
        text += "  [wording of the lab's MP simulator]"
    elif fact is not None and fact.what not in text:
        text += f"  [{fact.what}]"
    return Evidence(None, text, rec.source, rec.file, rec.line)


def _covers(log: LogFile, client: ClientExchange, offset: float, slack: float) -> bool:
    """Whether the log was being written while the client was on the capture (an empty log: yes)."""
    first, last = log.span()
    return ((first is None or first - offset <= client.last_time + slack)
            and (last is None or last - offset >= client.first_time - slack))


def _span_words(log: LogFile, offset: float | None) -> str:
    from kerbtrace.analysis import iso  # here: the analysis will import this module to merge the logs

    first, last = log.span()
    clock = (f"log clock {offset:+.2f} s from the capture's" if offset is not None
             else "clocks assumed equal: no entry matched to estimate the offset")
    if first is None and last is None:
        return f"the log has no entry at all; {clock}"
    return f"the log covers {iso(first) or '?'} to {iso(last) or 'its end'}; {clock}"


def _absence(log: LogFile, clients: list[ClientExchange], out: LogJoin, offset: float | None, slack: float,
             matched: set[int]) -> None:
    """What a log does not hold is evidence too: no IIS line for a client that should have reached this MP
    means its request never arrived; no MP entry for a client IIS logged means it never passed IIS."""
    if offset is None and log.records:
        return  # entries, none of them joined: maybe addresses translated (NAT, proxy), so silence says nothing
    s_ips = {r.fields.get("s-ip") for r in log.records} - {None, "-"}
    for i, client in enumerate(clients):
        if i in matched or not _covers(log, client, offset or 0.0, slack):
            continue
        who = client.hostname or client.ip
        if log.source == "iis":
            if client.mp_ip and s_ips and client.mp_ip not in s_ips:
                continue  # a log of another MP
            text = (f"no request from {client.ip} in this IIS log ({_span_words(log, offset)}): the client's "
                    "registration request never reached the MP that wrote it")
        elif any(e.source == "iis" and e.line is not None for e in out.evidence[i]):
            text = (f"no registration of {who} in this MP log ({_span_words(log, offset)}) although IIS logged "
                    "its requests: the request never passed IIS authentication, so the MP never processed it")
        else:
            continue
        out.evidence[i].append(Evidence(None, text, log.source, log.path, None))


def _machine_names(client: ClientExchange) -> set[str]:
    """The client's NetBIOS names as an IIS `cs-username` would show them (`DOMAIN\\NAME$` -> NAME)."""
    return {n for n in ((client.hostname or "").upper(),
                        account_netbios(client.account) if client.account else "") if n}


def _join_iis(log: LogFile, clients: list[ClientExchange], out: LogJoin) -> FileJoin:
    """By `c-ip`; a client whose address IIS never saw (translated by NAT or a proxy) by the computer
    account IIS logged for it, and then by the address IIS saw it under."""
    by_ip: dict[str, list[LogRecord]] = defaultdict(list)
    by_name: dict[str, list[LogRecord]] = defaultdict(list)
    for rec in log.records:
        by_ip[rec.fields.get("c-ip", "")].append(rec)
        user = rec.fields.get("cs-username", "-")
        if user.endswith("$"):
            by_name[account_netbios(user)].append(rec)
    candidates: list[list[LogRecord]] = []
    diffs = []
    for client in clients:
        recs = by_ip.get(client.ip, [])
        if not recs:
            recs = [r for name in _machine_names(client) for r in by_name.get(name, ())]
        candidates.append(recs)
        answers = _responses(client)
        for rec in recs:
            status = status_of(rec)[0]
            if rec.time is None:
                continue
            diffs += [rec.time - t for t, s in answers if s is None or status is None or s == status]
    found = densest_offset(diffs, IIS_WIDTH)
    offset, pairs = found if found else (None, 0)
    matched = set()
    joined: set[int] = set()
    translated = False
    if offset is not None:
        for i, client in enumerate(clients):
            slack = IIS_SLACK + 1.0
            recs = [r for r in candidates[i] if _within(client, r.time, offset, slack)]
            seen_as = {r.fields.get("c-ip", "") for r in recs} - {client.ip}
            if seen_as:  # joined by account: add the anonymous legs just before, from the address IIS saw
                translated = True
                times = [r.time for r in recs if r.time is not None]
                lo, hi = min(times) - IIS_SLACK - 1.0, max(times)
                users = {"-", ""} | {r.fields.get("cs-username", "-") for r in recs}
                recs = sorted({id(r): r for ip in seen_as for r in by_ip[ip]
                               if r.time is not None and lo <= r.time <= hi
                               and r.fields.get("cs-username", "-") in users}.values(), key=lambda r: r.line)
            for rec in recs:
                ev = iis_evidence(rec)
                if seen_as:
                    ev.text += (f"  [joined by the computer account: IIS saw {client.ip} as "
                                f"{rec.fields.get('c-ip')} (address translation)]")
                out.evidence[i].append(ev)
                matched.add(id(rec))
                joined.add(i)
    if not translated:  # behind address translation, a client's silence may be another address's lines
        _absence(log, clients, out, offset, IIS_SLACK, joined)
    return FileJoin(log.path, log.source, _round(offset), pairs, len(matched), len(log.records) - len(matched))


def mp_blocks(log: LogFile) -> list[_Block]:
    """Group an MP log's entries into registrations, by thread (several run at once on a busy MP)."""
    blocks: list[_Block] = []
    open_by_thread: dict[str, _Block] = {}
    for rec in log.records:
        text = rec.text
        fact = mp_fact(text)
        thread = rec.fields.get("thread", "")
        if "Processing Registration request" in text or thread not in open_by_thread:
            block = _Block()
            blocks.append(block)
            open_by_thread[thread] = block
        block = open_by_thread[thread]
        block.records.append(rec)
        block.facts.append(fact)
        if fact is not None:
            for key, value in fact.names.items():
                block.names.setdefault(key, value)
        if "Processing completed" in text:
            del open_by_thread[thread]
    return blocks


def _block_keys(names: dict[str, str]) -> list[str]:
    """How a registration block is looked up: by its names when it has any (a duplicate-GUID block names
    the second machine and the first one's SMSID), else by its SMSID."""
    if names.get("fqdn"):
        return ["fqdn:" + names["fqdn"]]
    if names.get("netbios"):
        return ["nb:" + names["netbios"]]
    return ["smsid:" + names["smsid"]] if names.get("smsid") else []


def _client_keys(client: ClientExchange) -> set[str]:
    keys = {"smsid:" + s.upper() for s in (client.smsid, client.assigned_smsid) if s}
    keys |= {"nb:" + n for n in _machine_names(client)}
    if client.fqdn:
        keys.add("fqdn:" + client.fqdn.lower())
    elif client.hostname:  # a block naming an FQDN matches a client known only by its NetBIOS name
        keys.add("nbfqdn:" + client.hostname.upper())
    return keys


def _join_mp(log: LogFile, clients: list[ClientExchange], out: LogJoin) -> FileJoin:
    blocks = mp_blocks(log)
    index: dict[str, list[_Block]] = defaultdict(list)
    for block in blocks:
        for key in _block_keys(block.names):
            index[key].append(block)
            if key.startswith("fqdn:"):
                index["nbfqdn:" + block.names["netbios"]].append(block)
    pairs_of: list[tuple[int, _Block]] = []
    diffs = []
    for i, client in enumerate(clients):
        answers = _responses(client)
        anchors = [t for t, s in answers if s == 200] or [t for t, _s in answers[-1:]]
        seen: set[int] = set()
        for key in _client_keys(client):
            for block in index.get(key, ()):
                if id(block) in seen:
                    continue
                seen.add(id(block))
                pairs_of.append((i, block))
                if block.time is not None:
                    diffs += [block.time - t for t in anchors]
    found = densest_offset(diffs, MP_WIDTH)
    offset, pairs = found if found else (None, 0)
    matched = 0
    joined: set[int] = set()
    if offset is not None:
        for i, block in pairs_of:
            if _within(clients[i], block.time, offset, MP_SLACK):
                out.evidence[i] += [ccm_evidence(r, f) for r, f in zip(block.records, block.facts, strict=True)]
                matched += len(block.records)
                joined.add(i)
    _absence(log, clients, out, offset, MP_SLACK, joined)
    return FileJoin(log.path, log.source, _round(offset), pairs, matched, len(log.records) - matched)


def _sync_lines(logs: list[LogFile], facts: dict[int, Fact | None]) -> list[LogRecord]:
    """The client-log lines that are written as the registration request goes out ("Sending registration
    request"), else any line about registration: what the capture's requests are compared with."""
    dated = [r for log in logs for r in log.records if r.time is not None and facts[id(r)] is not None]
    sending = [r for r in dated if "sent a registration request" in facts[id(r)].what]  # type: ignore[union-attr]
    return sending or [r for r in dated if "registration" in r.text.lower() or "ccm_system" in r.text.lower()]


def _join_client_logs(logs: list[LogFile], clients: list[ClientExchange], out: LogJoin) -> list[FileJoin]:
    """Client logs of one folder are one machine's, on one clock: the machine is found by the SMSIDs they
    mention (or, when the analysis has a single client and the logs name none, that client); the offset is
    estimated once for the folder, from the lines about registration against the registration requests.
    Clients sharing the SMSID (cloned machines) cannot be told apart by it, nor by the time on a clock whose
    offset is itself estimated: each gets the lines, marked as not certainly its own."""
    smsids: set[str] = set()
    facts: dict[int, Fact | None] = {}
    for log in logs:
        for rec in log.records:
            smsids.update(guids(rec.text))
            facts[id(rec)] = client_fact(rec.text)
    owners = [i for i, c in enumerate(clients)
              if smsids & {(c.smsid or "").upper(), (c.assigned_smsid or "").upper()} - {""}]
    if not owners and not smsids and len(clients) == 1:
        owners = [0]
    anchors = {i: _registration_requests(clients[i]) for i in owners}
    shared = ", ".join(clients[i].hostname or clients[i].ip for i in owners) if len(owners) > 1 else ""
    diffs = [r.time - t for r in _sync_lines(logs, facts) for i in owners for t in anchors[i]]  # type: ignore[operator]
    found = densest_offset(diffs, CLIENT_WIDTH)
    offset, pairs = found if found else (None, 0)
    results = []
    for log in logs:
        useful = [r for r in log.records if facts[id(r)] is not None]
        matched = 0
        for rec in useful if offset is not None else ():
            near = [i for i in owners if _within(clients[i], rec.time, offset, CLIENT_SLACK)]
            for i in near:
                ev = ccm_evidence(rec, facts[id(rec)])
                if shared:
                    ev.text += f"  [SMSID shared by {shared}: this line may be another of them's]"
                out.evidence[i].append(ev)
            matched += bool(near)
        results.append(FileJoin(log.path, log.source, _round(offset), pairs, matched, len(useful) - matched))
    return results


def _round(offset: float | None) -> float | None:
    return None if offset is None else round(offset, 3)


def join_logs(clients: list[ClientExchange], ctx: LogContext) -> LogJoin:
    """Match every log's entries to `clients`; evidence per client in the order given, offsets per file."""
    out = LogJoin(evidence=[[] for _ in clients])
    for log in ctx.by_source("iis"):  # first: an MP log's silence is read against what IIS saw
        out.files.append(_join_iis(log, clients, out))
    for log in ctx.by_source("mp_log"):
        out.files.append(_join_mp(log, clients, out))
    folders: dict[str, list[LogFile]] = defaultdict(list)
    for log in ctx.by_source("client_log"):
        folders[os.path.dirname(os.path.abspath(log.path))].append(log)
    for logs in folders.values():
        out.files += _join_client_logs(logs, clients, out)
    return out
