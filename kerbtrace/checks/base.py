"""What a check returns, and the context checks may consult.

A check is a pure function `check(client, ctx) -> Finding | None` in a module named after its
cause code. Context (directory facts, IIS/CCM logs, the other clients of the capture) enters here,
beside the checks, never inside the decoders.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from kerbtrace.exchanges.client import ClientExchange

SEVERITIES = ("error", "warning", "info")


@dataclass(slots=True)
class Evidence:
    frame: int
    text: str
    source: str = "capture"

    def as_json(self) -> dict:
        return {"source": self.source, "frame": self.frame, "text": self.text}


@dataclass(slots=True)
class Finding:
    code: str
    severity: str  # error | warning | info
    summary: str
    fix: str = ""
    codes: list[str] = field(default_factory=list)  # SEC_E / KRB / NTSTATUS labels named
    evidence: list[Evidence] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # KB articles / docs, from the cause's module

    def as_json(self) -> dict:
        return {"code": self.code, "severity": self.severity, "summary": self.summary, "fix": self.fix,
                "references": list(self.references), "codes": list(self.codes),
                "evidence": [e.as_json() for e in self.evidence]}


@dataclass(slots=True)
class Context:
    """Facts beyond one client's own exchange."""

    clients: list[ClientExchange] = field(default_factory=list)
    smsid_users: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def build(cls, clients: list[ClientExchange]) -> Context:
        ctx = cls()
        for client in clients:
            ctx.add(client)
        return ctx

    def add(self, client: ClientExchange) -> None:
        """Learn what other clients' checks need to know of this one (its SMSID)."""
        self.clients.append(client)
        if client.smsid:
            self.smsid_users[client.smsid.upper()].add((client.hostname or client.ip).upper())
