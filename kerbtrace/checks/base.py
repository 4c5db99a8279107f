"""What a check returns, and the context checks may consult.

A check is a pure function `check(client, ctx) -> Finding | None` in a module named after its
cause code. Context (directory facts, IIS/CCM logs, the other clients of the capture) enters here,
beside the checks, never inside the decoders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from kerbtrace.constants import Severity
from kerbtrace.context import Beside
from kerbtrace.exchanges.client import ClientExchange

SEVERITIES = tuple(Severity)


@dataclass(slots=True)
class Evidence:
    """What proves a finding: a capture frame (Wireshark's frame number), or a line of a log or an event
    record beside the capture (`source` names the kind: capture, iis, mp_log, client_log, dc_event,
    directory; `file` and `line` say where)."""

    frame: int | None
    text: str
    source: str = "capture"
    file: str | None = None
    line: int | None = None

    def as_json(self) -> dict:
        out: dict = {"source": self.source, "frame": self.frame, "text": self.text}
        if self.file is not None:
            out["file"] = self.file
        if self.line is not None:
            out["line"] = self.line
        return out

    def locator(self) -> str:
        """Where to look: a Wireshark display filter for a frame, file:line for a log line."""
        if self.frame is not None and self.source == "capture":
            return f"frame.number == {self.frame}"
        if self.file is not None:
            return f"{self.file}:{self.line}" if self.line is not None else self.file
        return self.source


@dataclass(slots=True)
class Finding:
    code: str
    severity: str  # error | warning | info
    summary: str
    fix: str = ""
    codes: list[str] = field(default_factory=list)  # SEC_E / KRB / NTSTATUS labels named
    evidence: list[Evidence] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # KB articles / docs, from the cause's module
    candidates: list[str] = field(default_factory=list)  # a hedged cause: the causes it may stand for
    #: The exact commands that fix (or first verify) the cause, in the order to run them, for the admin and
    #: for the fix script (`kerbtrace.reports.fix_script`); never run by kerbtrace.
    fix_commands: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        out = {"code": self.code, "severity": self.severity, "summary": self.summary, "fix": self.fix,
               "fix_commands": list(self.fix_commands), "references": list(self.references),
               "codes": list(self.codes), "evidence": [e.as_json() for e in self.evidence]}
        if self.candidates:
            out["candidates"] = list(self.candidates)
        return out


class Statement(Protocol):
    """What a source beside the capture says of one client's cause (`context.dc_join.DcStatement`): the
    cause by the checks' code, in words, with its codes and evidence; `failure` False for a confirmation."""

    cause: str
    text: str
    codes: list[str]
    evidence: list[Evidence]

    @property
    def failure(self) -> bool: ...


class SmsidUsers(dict):
    """SMSID (upper case) -> the computers that registered with it (names, upper case), for the duplicate GUID
    check across the whole capture: one client per SMSID is kept as its name alone, a set only from the second
    computer on (about 190 bytes a client instead of 400: the table is as long as the capture's clients)."""

    def add(self, smsid: str, user: str) -> None:
        users = dict.get(self, smsid)
        if users is None:
            self[smsid] = user
        elif type(users) is str:
            if users != user:
                self[smsid] = {users, user}
        else:
            users.add(user)

    def merge(self, smsid: str, users: str | set[str]) -> None:
        for user in (users,) if type(users) is str else users:
            self.add(smsid, user)

    def users(self, smsid: str) -> set[str]:
        """The computers that used `smsid` (empty: none)."""
        users = dict.get(self, smsid)
        return set() if users is None else {users} if type(users) is str else users

    def shared(self) -> SmsidUsers:
        """Only the SMSIDs more than one computer used."""
        return SmsidUsers((smsid, users) for smsid, users in self.items() if type(users) is not str)


@dataclass(slots=True)
class Context:
    """Facts beyond one client's own exchange."""

    smsid_users: SmsidUsers = field(default_factory=SmsidUsers)
    #: The input holds Kerberos traffic on port 88 at all (False: a capture on the MP, or filtered).
    kdc_visible: bool = True
    #: What the run was given beside the capture (directory facts, keytab, logs, DC events).
    beside: Beside = field(default_factory=Beside)

    def add(self, client: ClientExchange) -> None:
        """Learn what other clients' checks need to know of this one (its SMSID)."""
        if client.smsid:
            self.smsid_users.add(client.smsid.upper(), (client.hostname or client.ip).upper())
