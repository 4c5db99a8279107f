"""What the context beside one capture file says of its clients: the log lines and DC events joined to each.

Runs after every client of the file was evaluated (the joins need all of them: each log's and the DC's
clock offset is estimated from the matches across clients). `checks.verdict.settle` then folds it into
each client's findings; the report shows the per-file join figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kerbtrace.checks.base import Evidence
from kerbtrace.context import Beside
from kerbtrace.context.dc_join import DcStatement
from kerbtrace.context.logs import FileJoin, join_logs
from kerbtrace.exchanges.client import ClientExchange


@dataclass(slots=True)
class ClientBeside:
    """One client's log lines and DC events, and what the DC's log says of its cause."""

    log_evidence: list[Evidence] = field(default_factory=list)
    dc_evidence: list[Evidence] = field(default_factory=list)
    statements: list[DcStatement] = field(default_factory=list)


@dataclass(slots=True)
class FileBeside:
    """Per client (in the order given) what lies beside the capture; per log file how it joined; the DC
    log's clock offset against this capture (None: not estimated) and how many clients it has events for."""

    clients: list[ClientBeside]
    logs: list[FileJoin] = field(default_factory=list)
    dc_offset: float | None = None
    dc_clients: int = 0
    dc_given: bool = False

    def as_json(self, index: int) -> dict:
        out: dict = {"input": index, "logs": [{"input": index, **f.as_json()} for f in self.logs]}
        if self.dc_given:
            out["dc_events"] = {"input": index, "offset_seconds": self.dc_offset, "clients_matched": self.dc_clients}
        return out


def join_beside(clients: Sequence[ClientExchange], kerberos: Sequence, beside: Beside) -> FileBeside:
    """Join the run's logs and DC events to the clients of one capture file (`kerberos`: its Kerberos
    records, from which the DC log's clock offset is estimated)."""
    out = FileBeside([ClientBeside() for _ in clients])
    if beside.logs is not None and beside.logs.files:
        joined = join_logs(list(clients), beside.logs)
        out.logs = joined.files
        for mine, evidence in zip(out.clients, joined.evidence, strict=True):
            mine.log_evidence = evidence
    if beside.dc_events is not None:
        out.dc_given = True
        views = beside.dc_events.join(list(clients), kerberos)
        for mine, view in zip(out.clients, views, strict=True):
            mine.dc_evidence, mine.statements = list(view.evidence), list(view.statements)
            out.dc_offset = view.offset
        out.dc_clients = sum(1 for v in views if v.events)
    return out
