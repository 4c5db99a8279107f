"""``python -m kerbtrace.context.directory``: print the directory facts as JSON (for checking a source).

Example: ``KERBTRACE_LDAP_PASSWORD=... python -m kerbtrace.context.directory --directory ldaps://dc1
--ldap-user 'CORP\\admin' --mp mp01.corp.lab --account MP01$``.
"""

from __future__ import annotations

import argparse
import json
import sys

from kerbtrace.context.directory import DirectoryError, load_directory, mp_spns
from kerbtrace.context.directory.ldap_source import BIND_MODES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kerbtrace.context.directory", description=__doc__)
    ap.add_argument("--directory", metavar="URI", help="ldap://DC or ldaps://DC")
    ap.add_argument("--spn-file", action="append", default=[], help="setspn output, LDIF or csvde export")
    ap.add_argument("--trusts-file", action="append", default=[], help="nltest /domain_trusts /v output")
    ap.add_argument("--mp", action="append", default=[], help="MP host name: look up its HTTP/HOST SPNs")
    ap.add_argument("--spn", action="append", default=[], help="an SPN to look up")
    ap.add_argument("--account", action="append", default=[], help="a sAMAccountName to look up")
    ap.add_argument("--ldap-user")
    ap.add_argument("--ldap-bind", choices=BIND_MODES)
    ap.add_argument("--ldap-ca-file")
    ap.add_argument("--ldap-no-verify", action="store_true", help="do not verify the LDAPS certificate")
    ap.add_argument("--ldap-start-tls", action="store_true")
    ap.add_argument("--ldap-timeout", type=float, default=10.0)
    args = ap.parse_args(argv)
    spns = list(args.spn) + [s for host in args.mp for s in mp_spns(host)]
    try:
        facts = load_directory(
            args.directory, args.spn_file, args.trusts_file, spns=spns, accounts=args.account,
            **({"user": args.ldap_user, "bind": args.ldap_bind, "ca_file": args.ldap_ca_file,
                "tls_verify": not args.ldap_no_verify, "start_tls": args.ldap_start_tls,
                "timeout": args.ldap_timeout} if args.directory else {}),
        )
    except DirectoryError as exc:
        print(f"kerbtrace: {exc}", file=sys.stderr)
        return 2
    out = facts.as_json()
    out["lookups"] = {s: {"status": (lk := facts.lookup(s)).status, "owners": [a.name for a in lk.owners]}
                      for s in spns}
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
