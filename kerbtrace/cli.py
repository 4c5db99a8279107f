"""Command line: `kerbtrace analyze CAPTURE...`, `kerbtrace report INPUT... -o FILE`, `kerbtrace live`,
`kerbtrace explain CODE`."""

from __future__ import annotations

import argparse
import sys

from kerbtrace import __version__
from kerbtrace.context.options import (
    CONTEXT_EPILOG,
    ContextError,
    LoadedContext,
    add_context_arguments,
    load_context,
)
from kerbtrace.live.cli import add_live_parser

EXIT_ALL_APPROVED = 0
EXIT_NOT_APPROVED = 1
EXIT_UNUSABLE = 2
#: Every input was read and none holds a ConfigMgr registration: not "all approved" (a capture taken
#: on the wrong host, or too late, must not look like success to a script).
EXIT_NO_REGISTRATION = 3

DESCRIPTION = """\
Explain ConfigMgr (SCCM) client approval from a network capture.

For every client that registers with a Management Point (CCM_POST /ccm_system_windowsauth/request),
kerbtrace rebuilds the exchange - anonymous CCM_POST, 401 Negotiate, the client's Kerberos ticket
requests (with cross-realm referrals), the authenticated CCM_POST and the MP's registration reply -
and says whether the MP approved the client, and if not, why, with the fix and the frames that
prove it. Reads Wireshark pcap/pcapng (also .gz) and Network Monitor .cap files.
"""

ANALYZE_EPILOG = """\
examples (a capture alone):
  kerbtrace analyze mp01.pcapng                 table of clients, with causes and fixes
  kerbtrace analyze client.cap mp01.pcapng -v   several captures, with each client's timeline
  kerbtrace analyze mp01.pcapng --json report.json
  kerbtrace analyze mp01.pcapng --json - | jq '.clients[] | select(.verdict != "approved")'

Frame numbers are Wireshark's: open the capture in Wireshark and filter on frame.number == N.
With several captures each file is analysed on its own and its frame numbers are its own: the table
marks clients with [N], the file's position on the command line ("input" in the JSON, from 0). The
files of one ring buffer (NAME_00001[_TIMESTAMP].pcapng, NAME_00002…) are read as one capture (see
--no-stitch); a frame in another file than its client's shows as [N] frame.number == X.
Without -v the first 50 clients that were not approved are explained in full; --json explains all.
Capture on the client and on the MP together, from before the registration starts
(restart the SMS Agent Host service while capturing), to see the whole exchange.

""" + CONTEXT_EPILOG + """
exit status:
  0  every client found was approved
  1  at least one client was not approved, or the capture does not show the outcome
  2  an input could not be read (the others are still analysed), or a log/events/directory/keytab file is unusable
  3  every input was read, but none holds a ConfigMgr client registration
"""

EXPLAIN_DESCRIPTION = """\
Name and explain a code met in an IIS log, a ConfigMgr log, a capture or a DC's event log: its name,
what it means, what it means for the client's approval, and the usual fix.
"""

EXPLAIN_EPILOG = """\
notations (examples):
  kerbtrace explain 2148074254          IIS sc-win32-status (unsigned decimal)   -> SEC_E_NO_CREDENTIALS
  kerbtrace explain 0x8009030E          hex, also 8009030E                       -> SEC_E_NO_CREDENTIALS
  kerbtrace explain -2146893042         signed decimal                           -> SEC_E_NO_CREDENTIALS
  kerbtrace explain SEC_E_WRONG_PRINCIPAL   a name, any case (sec_i_continue_needed too)
  kerbtrace explain 41                  Kerberos error number                    -> KRB_AP_ERR_MODIFIED
  kerbtrace explain krb_ap_err_modified     Kerberos name (MIT KRB5KRB_AP_ERR_MODIFIED too)
  kerbtrace explain 0xC0000234          NTSTATUS                                 -> STATUS_ACCOUNT_LOCKED_OUT
  kerbtrace explain 0x80072EE7          Win32/WinHTTP in an HRESULT              -> ERROR_WINHTTP_NAME_NOT_RESOLVED
  kerbtrace explain 12007               Win32/WinHTTP                            -> ERROR_WINHTTP_NAME_NOT_RESOLVED
  kerbtrace explain 0x87D00231          ConfigMgr (CcmMessaging.log)             -> CCM_TRANSIENT_ERROR
  kerbtrace explain 4771 0x18           DC event and its result code (also 4771:0x18, event 4771 0x18)
  kerbtrace explain 4625 0xC000006D 0xC000006A   event 4625 Status and Sub Status
  kerbtrace explain 401 2 5             IIS sc-status sc-substatus sc-win32-status (also 401.2 5, 401.2)
  kerbtrace explain 24 --json           JSON; 24 is listed under every table that holds it

A word before the code narrows the search: event, iis, krb, ntstatus, win32, hresult, ccm, dns
(kerbtrace explain win32 5).

exit status:
  0  the code is in kerbtrace's tables
  1  the code is in none of them (what its form still tells is printed)
  2  the argument is not a code in any notation (empty, 0xZZ, too many values)
"""


REPORT_DESCRIPTION = """\
Write the escalation report: one self-contained HTML file (or Markdown, or the kerbtrace/1 JSON) with
the verdict of every client, its findings with fixes, codes, references and evidence, a ladder
diagram of its exchange, the Wireshark filter that shows it, and the capture facts. Takes the
inputs and context options of analyze, or one kerbtrace/1 JSON document written earlier (so a report
can be made where the capture cannot be copied).
"""

REPORT_EPILOG = """\
examples:
  kerbtrace report mp01.pcapng -o case.html
  kerbtrace report run.json -o case.md                    from analyze --json run.json
  kerbtrace report mp01.pcapng --redact -o case.html      pseudonyms with a random key
  kerbtrace report mp01.pcapng --redact-key "$K" --format json -o case.json

--redact replaces host names, FQDNs, addresses, realms and domains, accounts, SPN hosts and client
GUIDs everywhere in the report by HMAC-SHA256 pseudonyms (a child realm stays a child of its parent, an
MP reads mp-..., a computer account keeps its $). Tickets, authenticators, PACs, NTLM responses and
keys are never in any report, redacted or not.

exit status: as analyze (0 all approved, 1 some not approved, 2 an input unreadable or the report
could not be written)
"""


def add_analysis_arguments(parser: argparse.ArgumentParser, metavar: str, help_text: str) -> None:
    """The inputs and context options of an analysis, defined once for `analyze` and `report`."""
    parser.add_argument("captures", nargs="*", metavar=metavar,
                        help=help_text + "; none when logs or DC events are given: their own per-client verdicts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it is off when stderr is "
                        "not a terminal)")
    parser.add_argument("-j", "--jobs", type=_positive, default=None, metavar="N",
                        help="use N processes (default: the machine's cores): with N capture files or more, "
                             "one file each; else each capture is split by client across the N; the report is "
                             "the same for any N")
    parser.add_argument("--no-stitch", action="store_true",
                        help="read the files of a ring buffer (NAME_00001[_TIMESTAMP].pcapng, NAME_00002…, numbers "
                             "in sequence) each as a capture of its own; by default they are one capture, so an "
                             "exchange cut by a rotation is read whole")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="analyse on the running Dask scheduler at ADDRESS (tcp://HOST:PORT): its workers read "
                             "the captures, one file or ring each, at the same paths (shared storage), and the "
                             "report is the one a single process gives; needs the cluster extra. Not with logs, "
                             "DC events, a directory or a keytab")
    add_context_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kerbtrace", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kerbtrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    analyze = sub.add_parser("analyze", help="explain client approval from capture files",
                             description=DESCRIPTION, epilog=ANALYZE_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    add_analysis_arguments(analyze, "CAPTURE", "pcap, pcapng or NetMon .cap file (gzip-compressed files too); a "
                           "directory or a quoted glob pattern stands for its capture files, read in time order")
    analyze.add_argument("--json", metavar="OUT", help="also write the kerbtrace/1 JSON document to OUT "
                         "('-' for standard output, which then carries only the JSON)")
    analyze.add_argument("-v", "--verbose", action="store_true", help="show every client's timeline and all findings")
    report = sub.add_parser("report", help="write the escalation report (HTML, Markdown or JSON)",
                            description=REPORT_DESCRIPTION, epilog=REPORT_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_analysis_arguments(report, "INPUT", "capture file(s) as for analyze, or one kerbtrace/1 JSON document "
                           "written earlier by analyze --json or report --format json")
    report.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the report ('-' for "
                        "standard output)")
    report.add_argument("--format", choices=("html", "md", "json"), help="html (one self-contained file), md "
                        "(Markdown) or json (the kerbtrace/1 document); default from the suffix of FILE, else html")
    report.add_argument("--redact", action="store_true", help="replace every host name, address, realm, account, "
                        "SPN host and client GUID by a keyed pseudonym")
    report.add_argument("--redact-key", metavar="K", help="the pseudonyms' key (implies --redact): the same key "
                        "gives the same pseudonyms in every report; default: $KERBTRACE_REDACT_KEY, else random")
    add_live_parser(sub, add_context_arguments)
    explain = sub.add_parser("explain", help="name and explain an error, status or event code",
                             description=EXPLAIN_DESCRIPTION, epilog=EXPLAIN_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    explain.add_argument("code", nargs="+", metavar="CODE", help="the code, in any notation below")
    explain.add_argument("--json", action="store_true", help="print the kerbtrace-explain/1 JSON document")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "explain":
        from kerbtrace.explain import run

        return run(args.code, args.json, sys.stdout, sys.stderr)
    if args.command == "live":
        from kerbtrace.live.cli import run_from_args

        try:
            loaded = load_context(args)
        except ContextError as exc:
            print(f"kerbtrace: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        return run_from_args(args, beside=loaded.beside)
    if args.command not in ("analyze", "report"):
        parser.print_help()
        return EXIT_UNUSABLE
    from kerbtrace.collector import RelaxedCollector

    try:
        loaded = load_context(args)
    except ContextError as exc:
        print(f"kerbtrace: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if not args.captures and not (loaded.beside.logs or loaded.beside.dc_events):
        parser.error("analyze needs a CAPTURE, or logs (--iis-log, --mp-log, --client-log, --logs) or --events")
    with RelaxedCollector() as collector:
        try:
            if args.command == "report":
                return _escalation(args, loaded, collector)
            result = _analyze(args, loaded)
        except UnusableRun as exc:
            print(f"kerbtrace: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        collector.tick()  # the report only reads the results and makes no reference cycle
        collector.off()
        return _report(args, result)


def _analyze(args: argparse.Namespace, loaded: LoadedContext):
    """The analysis `analyze` and `report` both run, from the arguments `add_analysis_arguments` defines."""
    from kerbtrace.analysis import analyze_beside
    from kerbtrace.parallel import analyze_files
    from kerbtrace.sources.inputs import expand_inputs

    if args.captures:
        beside = loaded.beside
        given = any(x is not None for x in (beside.directory, beside.keytab, beside.logs, beside.dc_events))
        if args.scheduler:
            result = _analyze_on_cluster(args, given)
        else:  # context beside the captures is joined in this process (kerbtrace.parallel says how work is split)
            result = analyze_files(expand_inputs(args.captures), jobs=args.jobs,
                                   progress=False if args.no_progress else None, mp_names=tuple(args.mp_name),
                                   beside=beside, stitch=not args.no_stitch)
    else:
        result = analyze_beside(loaded.beside)
    loaded.warn_into(result.diag)
    return result


class UnusableRun(Exception):
    """The analysis cannot run as asked (exit status 2, the message on stderr)."""


def _analyze_on_cluster(args: argparse.Namespace, context_given: bool):
    """`--scheduler`: the captures read by the workers of a Dask cluster (kerbtrace/distributed.py)."""
    from kerbtrace.distributed import ClusterError, analyze_at
    from kerbtrace.sources.inputs import expand_inputs

    if context_given:  # context is joined across the files of one run, so it needs them in one process
        raise UnusableRun("--scheduler reads captures only: run without it to join logs, DC events, a directory "
                          "or a keytab")
    try:
        return analyze_at(args.scheduler, expand_inputs(args.captures), mp_names=tuple(args.mp_name),
                          stitch=not args.no_stitch)
    except ClusterError as exc:
        raise UnusableRun(str(exc)) from None


def _escalation(args: argparse.Namespace, loaded: LoadedContext, collector) -> int:
    from kerbtrace.reports import escalation
    from kerbtrace.reports.json_report import to_json

    try:
        if escalation.documents_given(args.captures):
            doc = escalation.read_document(args.captures[0])
        else:
            doc = to_json(_analyze(args, loaded))
            collector.tick()
        escalation.write(doc, args.output, escalation.output_format(args.format, args.output),
                         redact_it=args.redact, key=args.redact_key)
    except escalation.ReportError as exc:
        print(f"kerbtrace: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    status, errors = escalation.exit_status(doc)
    for line in errors:
        print(f"kerbtrace: {line}", file=sys.stderr)
    return status


#: Clients from which the text table is rendered by a forked process while the JSON report is written (with
#: --jobs above 1): below, forking costs more than it saves.
TABLE_ASIDE_CLIENTS = 2000


def _spare_core(args: argparse.Namespace, result) -> bool:
    """The run had several processes (so the machine has cores for them) and the table is worth a process."""
    from kerbtrace.parallel import default_jobs

    jobs = args.jobs if getattr(args, "jobs", None) is not None else default_jobs()
    return jobs > 1 and len(result.clients) >= TABLE_ASIDE_CLIENTS


def _report(args: argparse.Namespace, result) -> int:
    from kerbtrace.aside import aside
    from kerbtrace.context.options import write_fix_script
    from kerbtrace.reports.json_report import write_json
    from kerbtrace.reports.table import render as render_table
    from kerbtrace.reports.table import write as write_table

    for number, i in enumerate(result.inputs, 1):
        if i.error:  # once, on stderr; the table only marks the input as not analysed
            where = f"[{number}] " if len(result.inputs) > 1 else ""
            message = i.error if i.path in i.error else f"{i.path}: {i.error}"
            print(f"kerbtrace: {where}{message}", file=sys.stderr)
    if getattr(args, "fix_script", None):
        try:
            print(f"kerbtrace: {write_fix_script(result, args.fix_script)}", file=sys.stderr)
        except ContextError as exc:
            print(f"kerbtrace: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
    if args.json == "-":
        write_json(result, sys.stdout)
    else:
        table = None
        if args.json:
            # a large report with a core to spare: the table is rendered by a forked process meanwhile
            table = aside(lambda: render_table(result, verbose=args.verbose)) if _spare_core(args, result) else None
            try:
                with open(args.json, "w", encoding="utf-8") as out:
                    write_json(result, out)
            except OSError as exc:
                print(f"kerbtrace: cannot write {args.json}: {exc}", file=sys.stderr)
                if table is not None:
                    table()  # (the child ends)
                return EXIT_UNUSABLE
        text = table() if table is not None else None
        if text is None:
            write_table(result, sys.stdout, verbose=args.verbose)
        else:
            sys.stdout.write(text)
    if result.inputs and not result.usable:
        return EXIT_UNUSABLE
    clients = result.clients or result.log_clients  # read until the first one not approved (maybe from disk)
    if not clients:
        return EXIT_NO_REGISTRATION
    if any(r.verdict != "approved" for r in clients):
        return EXIT_NOT_APPROVED
    return EXIT_ALL_APPROVED
