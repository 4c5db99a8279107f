"""`kerbtrace live` on the command line: its options, help and exit statuses (kerbtrace/cli.py adds it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from kerbtrace.live.backend import DEFAULT_FILTER

if TYPE_CHECKING:
    from kerbtrace.context import Beside

LIVE_DESCRIPTION = """\
Watch client registrations on a Management Point (or a span port) as they happen.

dumpcap captures the MP's HTTP/HTTPS, Kerberos, DNS and IP fragments; every packet goes through the same
pipeline as `kerbtrace analyze`, and each client's verdict is shown as soon as its exchange completes
(the MP's registration reply, then --settle seconds of quiet) or times out as incomplete (--idle-timeout).
Needs capture rights: root or the wireshark group (Linux), administrator with Npcap (Windows).
"""

LIVE_EPILOG = """\
examples:
  kerbtrace live -i eth0                               live table of clients (lines when not a terminal)
  kerbtrace live -i eth0 --json-lines verdicts.jsonl   also one kerbtrace/1 client object per line
  kerbtrace live -i eth0 --write ring/mp01.pcapng --ring-size 100 --ring-files 20
  kerbtrace live -i eth0 --duration 3600 --json-lines - | jq -c 'select(.verdict != "approved")'

Each JSON line is one client object of the kerbtrace/1 document (docs/json-schema.md), written when a
client's verdict is decided or changes: the last line for a client is its current state. Kernel drops
are reported when the capture stops. The ring holds the packets read (the filter's), in pcapng files
<stem>_NNNNN.pcapng; `mergecap -w all.pcapng <stem>_*.pcapng` then `kerbtrace analyze all.pcapng` gives
the same verdicts.

exit status:
  0  every client seen was approved
  1  at least one client was not approved, or its exchange did not show the outcome
  2  the capture could not start (dumpcap missing, no rights, bad filter) or an output cannot be written
  3  the run ended without a ConfigMgr client registration
  4  the capture stopped on its own (interface gone, dumpcap failed): verdicts so far were written
"""



def add_live_parser(sub, add_context_arguments: Callable[[argparse.ArgumentParser], None]) -> None:  # noqa: ANN001
    """`kerbtrace live` on the CLI's subparsers; `add_context_arguments` is the one definition of the
    context options `analyze` has too."""
    live = sub.add_parser("live", help="watch client approval on a live interface",
                          description=LIVE_DESCRIPTION, epilog=LIVE_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    live.add_argument("-i", "--interface", default="any", metavar="IFACE",
                      help="interface to capture on (dumpcap -D lists them; default: any)")
    live.add_argument("--filter", default=DEFAULT_FILTER, metavar="BPF",
                      help=f"capture filter, replacing the default: {DEFAULT_FILTER}")
    live.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C "
                      "or SIGTERM)")
    live.add_argument("--json-lines", metavar="FILE", help="append one kerbtrace/1 client object per line to FILE "
                      "('-': standard output, the view then goes to stderr)")
    live.add_argument("--write", metavar="F.pcapng", help="keep the packets read in a ring of pcapng files "
                      "F_NNNNN.pcapng")
    live.add_argument("--ring-size", type=float, default=100, metavar="MB", help="size of one ring file "
                      "(default 100)")
    live.add_argument("--ring-files", type=int, default=10, metavar="N", help="files in the ring; the oldest is "
                      "deleted (default 10)")
    live.add_argument("--settle", type=float, default=30.0, metavar="S", help="quiet seconds after the MP's "
                      "reply before a verdict is given (a client may retry; default 30)")
    live.add_argument("--idle-timeout", type=float, default=600.0, metavar="S", help="seconds without traffic "
                      "after which an unfinished exchange is judged incomplete (default 600)")
    live.add_argument("--max-addresses", type=int, default=16384, metavar="N", help="keep the pipeline's "
                      "state (address history, waiting requests, connections, SMSIDs) for at most N recent "
                      "addresses per table, the least recent forgotten and counted (default 16384)")
    add_context_arguments(live)


def run_from_args(args: argparse.Namespace, beside: Beside | None) -> int:
    """Run `kerbtrace live` from its parsed arguments; `beside` is the context the shared options loaded."""
    from kerbtrace.live.runner import EXIT_UNUSABLE, LiveOptions, run_live

    if args.ring_size <= 0 or args.ring_files < 1 or args.max_addresses < 16:
        print("kerbtrace: --ring-size must be positive, --ring-files at least 1 and --max-addresses at least 16",
              file=sys.stderr)
        return EXIT_UNUSABLE
    return run_live(LiveOptions(interface=args.interface, bpf=args.filter, duration=args.duration,
                                json_lines=args.json_lines, write=args.write,
                                ring_bytes=max(4096, int(args.ring_size * 1024 * 1024)), ring_files=args.ring_files,
                                mp_names=tuple(args.mp_name), beside=beside, settle=args.settle,
                                idle_timeout=args.idle_timeout, max_addresses=args.max_addresses))
