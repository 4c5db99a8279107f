"""The command-line options for directory facts, defined once for ``kerbtrace analyze`` and
``python -m kerbtrace.context.directory``."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from kerbtrace.context.directory import DirectoryFacts, load_directory, query_ldap
from kerbtrace.context.directory.ldap_source import BIND_MODES, PASSWORD_ENV, USER_ENV
from kerbtrace.context.directory.online import online_directory


def add_directory_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("directory facts")
    group.add_argument("--directory", metavar="URI",
                       help="query a DC: ldap://DC, ldaps://DC (port 3268/3269: the global catalog)")
    group.add_argument("--spn-file", metavar="FILE", action="append", default=[],
                       help="setspn -L/-Q/-X output, or an ldifde/csvde export (repeatable)")
    group.add_argument("--trusts-file", metavar="FILE", action="append", default=[],
                       help="nltest /domain_trusts /v output, or an LDIF export of trustedDomain objects (repeatable)")
    group.add_argument("--ldap-user", metavar="USER",
                       help=f"bind as USER (DN, UPN or DOMAIN\\user; default ${USER_ENV}); the password is read "
                            f"from ${PASSWORD_ENV}")
    group.add_argument("--ldap-bind", choices=BIND_MODES,
                       help="simple (default with a user), ntlm, kerberos (ticket cache from kinit), anonymous")
    group.add_argument("--ldap-ca-file", metavar="PEM", help="CA certificate(s) that signed the DC's LDAPS certificate")
    group.add_argument("--ldap-no-verify", action="store_true", help="do not verify the DC's TLS certificate")
    group.add_argument("--ldap-start-tls", action="store_true", help="StartTLS on ldap://")
    group.add_argument("--ldap-timeout", metavar="SECONDS", type=float, default=10.0)


def directory_from_args(args: argparse.Namespace, spns: Iterable[str] = (), accounts: Iterable[str] = ()
                        ) -> DirectoryFacts | None:
    """The facts the options ask for, or None when no directory option was given. Raises DirectoryError.

    With `--directory` the DC is asked for `spns` and `accounts` now (an unreachable DC is an error
    before any capture is read) and, through `OnlineDirectory`, for any other SPN or account a check
    asks about later."""
    if not (args.directory or args.spn_file or args.trusts_file):
        return None
    ldap_options = {}
    if args.directory:
        ldap_options = {"user": args.ldap_user, "bind": args.ldap_bind, "ca_file": args.ldap_ca_file,
                        "tls_verify": not args.ldap_no_verify, "start_tls": args.ldap_start_tls,
                        "timeout": args.ldap_timeout}
    facts = load_directory(args.directory, args.spn_file, args.trusts_file, spns=spns, accounts=accounts,
                           **ldap_options)
    if not args.directory:
        return facts
    uri = args.directory

    def fetch(more_spns: Iterable[str], more_accounts: Iterable[str]) -> DirectoryFacts:
        return query_ldap(uri, more_spns, more_accounts, **ldap_options)

    return online_directory(facts, fetch)
