"""``python -m kerbtrace.context.directory``: print the directory facts as JSON (for checking a source).

Example: ``KERBTRACE_LDAP_PASSWORD=... python -m kerbtrace.context.directory --directory ldaps://dc1
--ldap-user 'CORP\\admin' --mp mp01.corp.lab --account MP01$``.
"""

from __future__ import annotations

import argparse
import json
import sys

from kerbtrace.context.directory import DirectoryError, mp_spns
from kerbtrace.context.directory.options import add_directory_arguments, directory_from_args


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kerbtrace.context.directory", description=__doc__)
    add_directory_arguments(ap)
    ap.add_argument("--mp", action="append", default=[], help="MP host name: look up its HTTP/HOST SPNs")
    ap.add_argument("--spn", action="append", default=[], help="an SPN to look up")
    ap.add_argument("--account", action="append", default=[], help="a sAMAccountName to look up")
    args = ap.parse_args(argv)
    spns = list(args.spn) + [s for host in args.mp for s in mp_spns(host)]
    try:
        facts = directory_from_args(args, spns, args.account)
    except DirectoryError as exc:
        print(f"kerbtrace: {exc}", file=sys.stderr)
        return 2
    if facts is None:
        ap.error("give --directory, --spn-file or --trusts-file")
    out = facts.as_json()
    out["lookups"] = {s: {"status": (lk := facts.lookup(s)).status, "owners": [a.name for a in lk.owners]}
                      for s in spns}
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
