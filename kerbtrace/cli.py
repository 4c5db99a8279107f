"""Command line: `kerbtrace analyze CAPTURE...`."""

from __future__ import annotations

import argparse
import sys

from kerbtrace import __version__

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
    analyze.add_argument("--mp-name", action="append", default=[], metavar="FQDN",
                         help="name of an MP, to recognise clients that failed to resolve it (repeatable); "
                              "MPs seen in the capture are known already")
    analyze.add_argument("--no-progress", action="store_true", help="no progress bar (it is off when stderr is "
                         "not a terminal)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
