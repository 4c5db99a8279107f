"""`--fix-script FILE`: the fix commands of a run's findings as one commented PowerShell script.

Grouped per cause and within it per set of commands (one SPN, one trust), each command written once,
the evidence that motivates it in comments above it. Nothing in the script runs by itself: every line
is a comment, so the admin reads the evidence and uncomments what they decide to run. Client-side
commands (purge the SYSTEM ticket cache, restart the client) are wrapped in
``Invoke-Command -ComputerName <clients>``.
"""

from __future__ import annotations

import textwrap
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kerbtrace.checks.fixes import CLIENT_COMMANDS, safe

if TYPE_CHECKING:
    from kerbtrace.analysis import Analysis, ClientResult
    from kerbtrace.checks.base import Finding

#: Clients whose evidence is quoted per cause; the others are only named.
MAX_CLIENTS_QUOTED = 5
MAX_EVIDENCE_LINES = 8
MAX_CLIENTS_NAMED = 200
WIDTH = 110

HEADER = """\
kerbtrace fix script: commands that fix the causes kerbtrace found.
NOTHING IN THIS FILE RUNS BY ITSELF: every line is a comment. Read the evidence under each cause, then
remove the leading "# " of the commands you decide to run, in an elevated PowerShell on a domain member
with the AD tools (setspn, nltest, netdom) and the right to change the accounts named. setspn -Q, -L, -X
and nltest only read; setspn -D/-S and the rest change the directory or a computer."""


def fix_script(analysis: Analysis) -> str | None:
    """The script, or None when no finding of the run carries a fix command."""
    script = FixScript(analysis)
    deque(script.through(analysis.clients), maxlen=0)
    return script.text()


class FixScript:
    """The script gathered while another reader goes through the clients (`through`): the results may be on
    disk (kerbtrace.spill), and the JSON report's pass over them serves this one too."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        # per cause, per set of commands: each client's name and computer, and the finding of the first few
        # quoted (none of the results is kept whole)
        self.groups: dict[str, dict[tuple[str, ...], list[tuple[str, str, Finding | None]]]] = {}

    def through(self, results: Iterable[ClientResult]) -> Iterator[ClientResult]:
        groups = self.groups
        for result in results:
            for finding in result.findings:
                if finding.fix_commands:
                    members = groups.setdefault(finding.code, {}).setdefault(tuple(finding.fix_commands), [])
                    members.append((_name(self.analysis, result), _computer(result),
                                    finding if len(members) < MAX_CLIENTS_QUOTED else None))
            yield result

    def text(self) -> str | None:
        """The script of the clients gone through, or None when no finding of theirs carries a fix command."""
        return _script(self.analysis, self.groups) if self.groups else None


def _script(analysis: Analysis, groups: dict[str, dict[tuple[str, ...], list[tuple[str, str, Finding | None]]]]
            ) -> str:
    inputs = ", ".join(i.path for i in analysis.inputs) or "no input"
    out = [*_comment(HEADER), *_comment(f"Inputs: {inputs}. Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.")]
    for code, blocks in groups.items():
        out += _cause(code, blocks)
    return "\n".join(out) + "\n"


def _cause(code: str, blocks: dict[tuple[str, ...], list[tuple[str, str, Finding | None]]]) -> list[str]:
    """One cause: a block per distinct set of commands (one SPN, one trust...), each command written once."""
    out = ["#", f"# ======== {code}: {sum(len(m) for m in blocks.values())} client(s) ========"]
    written: set[str] = set()
    for commands, members in blocks.items():
        first = members[0][2]
        out.append("#")
        out += _comment(first.summary, "# ")
        if first.fix:
            out += _comment("Fix: " + first.fix, "# ")
        for name, _, finding in members[:MAX_CLIENTS_QUOTED]:
            out.append(f"# Evidence for {name}:")
            for e in finding.evidence[:MAX_EVIDENCE_LINES]:
                out += _comment(f"{e.locator()}: {e.text}", "#   ", "#       ")
        if len(members) > MAX_CLIENTS_QUOTED:
            more = [name for name, _, _ in members[MAX_CLIENTS_QUOTED:MAX_CLIENTS_NAMED]]
            out += _comment(f"Also: {', '.join(more)}" + (" …" if len(members) > MAX_CLIENTS_NAMED else ""), "# ")
        out.append("#")
        for command in commands:
            if command in CLIENT_COMMANDS:
                continue
            line = " ".join(command.split())  # one line, whatever it holds
            out.append(f"# {line}" if command not in written else f"# (already above) {line}")
            written.add(command)
        on_clients = [c for c in commands if c in CLIENT_COMMANDS]
        if on_clients:
            names = ",".join(dict.fromkeys(computer for _, computer, _ in members))
            out.append("# Then on the clients, as administrator:")
            out.append(f"# Invoke-Command -ComputerName {names} -ScriptBlock {{ {'; '.join(on_clients)} }}")
    return out


def _name(analysis: Analysis, result: ClientResult) -> str:
    c = result.client
    where = f" in {analysis.inputs[result.input].path}" if len(analysis.inputs) > 1 else ""
    return f"{c.hostname or c.ip} ({c.ip}){where}"


def _computer(result: ClientResult) -> str:
    c = result.client
    return safe(c.fqdn or c.hostname or c.ip)


def _comment(text: str, first: str = "# ", rest: str | None = None) -> Iterable[str]:
    """Text as comment lines: wrapped, and any line break it holds (from a capture or a log) commented too."""
    lines: list[str] = []
    for part in text.replace("\r", "\n").split("\n"):
        wrapped = textwrap.wrap(part, WIDTH, initial_indent=first if not lines else (rest or first),
                                subsequent_indent=rest or first, break_long_words=False,
                                break_on_hyphens=False) or [first.rstrip()]
        lines += wrapped
    return lines


__all__ = ["FixScript", "fix_script"]
