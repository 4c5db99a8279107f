"""Command line: `kerbtrace analyze CAPTURE...`, `kerbtrace live`, `kerbtrace explain CODE`."""

from __future__ import annotations

import argparse
import sys

from kerbtrace import __version__
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
examples:
  kerbtrace analyze mp01.pcapng                 table of clients, with causes and fixes
  kerbtrace analyze client.cap mp01.pcapng -v   several captures, with each client's timeline
  kerbtrace analyze mp01.pcapng --json report.json
  kerbtrace analyze mp01.pcapng --json - | jq '.clients[] | select(.verdict != "approved")'

Frame numbers are Wireshark's: open the capture in Wireshark and filter on frame.number == N.
With several captures each file is analysed on its own and its frame numbers are its own: the table
marks clients with [N], the file's position on the command line ("input" in the JSON, from 0).
Without -v the first 50 clients that were not approved are explained in full; --json explains all.
Capture on the client and on the MP together, from before the registration starts
(restart the SMS Agent Host service while capturing), to see the whole exchange.

exit status:
  0  every client found was approved
  1  at least one client was not approved, or the capture does not show the outcome
  2  an input could not be read (not a capture, unreadable file); the others are still analysed
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


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """What a run is given besides its packets: shared by `analyze` and `live`, defined once."""
    parser.add_argument("--mp-name", action="append", default=[], metavar="FQDN",
                        help="name of an MP, to recognise clients that failed to resolve it (repeatable); "
                             "MPs seen in the capture are known already")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kerbtrace", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kerbtrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    analyze = sub.add_parser("analyze", help="explain client approval from capture files",
                             description=DESCRIPTION, epilog=ANALYZE_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    analyze.add_argument("captures", nargs="+", metavar="CAPTURE",
                         help="pcap, pcapng or NetMon .cap file (gzip-compressed files too)")
    analyze.add_argument("--json", metavar="OUT", help="also write the kerbtrace/1 JSON document to OUT "
                         "('-' for standard output, which then carries only the JSON)")
    analyze.add_argument("-v", "--verbose", action="store_true", help="show every client's timeline and all findings")
    add_shared_arguments(analyze)
    analyze.add_argument("--no-progress", action="store_true", help="no progress bar (it is off when stderr is "
                         "not a terminal)")
    add_live_parser(sub, add_shared_arguments)
    explain = sub.add_parser("explain", help="name and explain an error, status or event code",
                             description=EXPLAIN_DESCRIPTION, epilog=EXPLAIN_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    explain.add_argument("code", nargs="+", metavar="CODE", help="the code, in any notation below")
    explain.add_argument("--json", action="store_true", help="print the kerbtrace-explain/1 JSON document")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "explain":
        from kerbtrace.explain import run

        return run(args.code, args.json, sys.stdout, sys.stderr)
    if args.command == "live":
        from kerbtrace.live.cli import run_from_args

        return run_from_args(args, beside=None)
    if args.command != "analyze":
        parser.print_help()
        return EXIT_UNUSABLE
    from kerbtrace.analysis import analyze
    from kerbtrace.collector import RelaxedCollector

    with RelaxedCollector() as collector:
        result = analyze(args.captures, progress=False if args.no_progress else None,
                         mp_names=tuple(args.mp_name))
        collector.tick()  # the report only reads the results: keep the collector off them
        return _report(args, result)


def _report(args: argparse.Namespace, result) -> int:
    from kerbtrace.reports.json_report import write_json
    from kerbtrace.reports.table import render

    for number, i in enumerate(result.inputs, 1):
        if i.error:  # once, on stderr; the table only marks the input as not analysed
            where = f"[{number}] " if len(result.inputs) > 1 else ""
            message = i.error if i.path in i.error else f"{i.path}: {i.error}"
            print(f"kerbtrace: {where}{message}", file=sys.stderr)
    if args.json == "-":
        write_json(result, sys.stdout)
    else:
        if args.json:
            try:
                with open(args.json, "w", encoding="utf-8") as out:
                    write_json(result, out)
            except OSError as exc:
                print(f"kerbtrace: cannot write {args.json}: {exc}", file=sys.stderr)
                return EXIT_UNUSABLE
        sys.stdout.write(render(result, verbose=args.verbose))
    if not result.usable:
        return EXIT_UNUSABLE
    if not result.clients:
        return EXIT_NO_REGISTRATION
    if any(r.verdict != "approved" for r in result.clients):
        return EXIT_NOT_APPROVED
    return EXIT_ALL_APPROVED
