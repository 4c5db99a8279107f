"""The command-line options for what an admin brings beside the captures, defined once for every command
that reads captures (`analyze`, `report`, `live`), and their loading into one `Beside`.

Each context is loaded once, before any capture is read: a file that cannot be used at all is an error
(`ContextError`, exit status 2), lines that cannot be read are warnings with their file and line.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kerbtrace.context import Beside
from kerbtrace.context.directory import DirectoryError, mp_spns
from kerbtrace.context.directory.options import add_directory_arguments, directory_from_args
from kerbtrace.diagnostics import Diagnostics

if TYPE_CHECKING:
    from kerbtrace.context.logs.load import LogContext

CONTEXT_EPILOG = """\
beside the capture (each optional; kerbtrace joins them to the capture's clients by address, name and time,
estimating each log's clock offset):
  kerbtrace analyze mp01.pcapng --iis-log u_ex261204.log --mp-log MP_RegistrationManager.log
  kerbtrace analyze mp01.pcapng --logs C:/collected/logs --events dc01-security.evtx
  kerbtrace analyze mp01.pcapng --mp-name mp01.corp.lab --directory ldaps://dc01.corp.lab --ldap-user 'CORP\\\\audit'
  kerbtrace analyze mp01.pcapng --spn-file setspn-Q.txt --trusts-file nltest.txt --keytab mp01.keytab
  kerbtrace analyze --logs C:/collected/logs    no capture: per-client verdicts from what the logs say
A capture taken on the MP cannot show the client's Kerberos exchange; the DC's Security log (--events) can:
its 4769/4771 events then settle the cause (a missing SPN, a locked account).
"""


class ContextError(Exception):
    """A context file given on the command line that cannot be used at all (the message names it)."""


@dataclass(slots=True)
class LoadedContext:
    """The run's `Beside` and the warnings met while loading it (file:line in each)."""

    beside: Beside
    warnings: list[str] = field(default_factory=list)

    def all_warnings(self) -> list[str]:
        """The loading warnings and the directory's problems (an online directory's grow during the run)."""
        directory = self.beside.directory
        return self.warnings + (list(directory.problems) if directory is not None else [])

    def warn_into(self, diag: Diagnostics) -> None:
        """The warnings (file:line in each message) into the run's diagnostics, as of no capture file."""
        diag.current_input = None
        for warning in self.all_warnings():
            diag.warn(None, warning, "context")


def add_context_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that reads captures shares: the MPs' names, logs, DC events, directory
    facts, the MP's keytab and the fix script."""
    parser.add_argument("--mp-name", action="append", default=[], metavar="FQDN",
                        help="name of an MP, to recognise clients that failed to resolve it, and whose SPNs a "
                             "--directory is asked for first (repeatable); MPs seen in the capture are known already")
    logs = parser.add_argument_group("logs and DC events beside the capture")
    logs.add_argument("--iis-log", action="append", default=[], metavar="FILE",
                      help="the MP's IIS log (W3C, u_ex*.log; any #Fields: order, IIS 6 and 7+) (repeatable)")
    logs.add_argument("--mp-log", action="append", default=[], metavar="FILE",
                      help="MP_RegistrationManager.log (CMTrace or older SMS format) (repeatable)")
    logs.add_argument("--client-log", action="append", default=[], metavar="FILE",
                      help="a client's ClientIDManagerStartup.log, CcmMessaging.log or ClientLocation.log; the logs "
                           "of one folder are one machine's (repeatable)")
    logs.add_argument("--logs", action="append", default=[], metavar="DIR",
                      help="a folder of any of the logs above, recognised by content (repeatable)")
    logs.add_argument("--events", action="append", default=[], metavar="FILE",
                      help="a DC's Security log: exported .evtx, wevtutil XML, Get-WinEvent CSV/JSON, or a folder "
                           "of them (events 4768, 4769, 4770, 4771, 4625) (repeatable)")
    add_directory_arguments(parser)
    keys = parser.add_argument_group("the MP's keys and fixes")
    keys.add_argument("--keytab", metavar="FILE",
                      help="the MP's keytab (MIT format, as ktpass writes it): proves which key a ticket was "
                           "encrypted under; no key is ever printed")
    keys.add_argument("--fix-script", metavar="FILE",
                      help="write the commands that fix the findings to FILE (PowerShell, commented; nothing runs "
                           "by itself)")


def load_context(args: argparse.Namespace) -> LoadedContext:
    """Load every context the options name, once. Raises ContextError for a file that cannot be used."""
    out = LoadedContext(Beside())
    out.beside.logs = _logs(args, out.warnings)
    out.beside.dc_events = _events(args, out.warnings)
    out.beside.directory = _directory(args)
    if getattr(args, "keytab", None):
        from kerbtrace.context.keytab import Keytab, KeytabError

        try:
            out.beside.keytab = Keytab(args.keytab)
        except KeytabError as exc:
            raise ContextError(str(exc)) from None
    return out


def _logs(args: argparse.Namespace, warnings: list[str]) -> LogContext | None:
    given = {name: list(getattr(args, name, None) or []) for name in ("iis_log", "mp_log", "client_log", "logs")}
    if not any(given.values()):
        return None
    from kerbtrace.context.logs import load_log_context, recognise  # here: only a run given logs reads them

    ctx = load_log_context(iis_logs=given["iis_log"], mp_logs=given["mp_log"], client_logs=given["client_log"],
                           log_dirs=given["logs"])
    for warning in ctx.warnings:
        if warning.message in ("not a readable file", "not a folder"):
            raise ContextError(f"{warning.file}: {warning.message}")
    named = {os.path.abspath(p) for key in ("iis_log", "mp_log", "client_log") for p in given[key]}
    for log in ctx.files:
        if (os.path.abspath(log.path) in named and not log.records and log.lines
                and recognise(log.path) is None):
            first = log.warnings[0].message if log.warnings else "nothing could be read"
            raise ContextError(f"{log.path}: not an IIS, MP or client log ({first})")
    warnings.extend(str(w) for w in ctx.all_warnings())
    return ctx


def _events(args: argparse.Namespace, warnings: list[str]):
    values = list(getattr(args, "events", None) or [])
    if not values:
        return None
    from kerbtrace.context.dc_events import load_dc_events

    log = load_dc_events(values)
    if log.errors:
        raise ContextError("; ".join(log.errors))
    warnings.extend(log.warnings)
    return log


def _directory(args: argparse.Namespace):
    spns = [spn for name in getattr(args, "mp_name", None) or [] for spn in mp_spns(name)]
    accounts = [f"{name.split('.')[0]}$" for name in getattr(args, "mp_name", None) or []]
    try:
        return directory_from_args(args, spns, accounts)
    except DirectoryError as exc:
        raise ContextError(str(exc)) from None


def write_fix_script(analysis, path: str) -> str:
    """Write the run's fix script (`analysis.fix_script`, PowerShell) to `path`; the line to tell the user."""
    script = getattr(analysis, "fix_script", None)
    if script is not None and not isinstance(script, str):
        script = "\n".join(script)  # a list of lines
    if not script:
        return f"no fix script written to {path}: no finding of this run comes with fix commands"
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(script)
    except OSError as exc:
        raise ContextError(f"cannot write {path}: {exc.strerror or exc}") from None
    return f"fix script written to {path} (review it: nothing in it runs by itself)"
