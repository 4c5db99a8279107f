"""Directory facts beside the capture: which account holds the MP's SPNs, account states, sPNMappings,
trusts — from a DC over LDAP or from what an admin pasted (setspn, nltest, ldifde, csvde).

``load_directory(uri=..., spn_file=..., trusts_file=..., spns=..., accounts=...)`` returns one
:class:`DirectoryFacts`; the checks ask it ``owners(spn)``, ``is_duplicate(spn)``, ``is_missing(spn)``,
``trust_to(realm)`` and ``account(name)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from kerbtrace.context.directory.exports import looks_like_csv, looks_like_ldif, parse_csv, parse_ldif
from kerbtrace.context.directory.ldap_source import DirectoryError, query_ldap
from kerbtrace.context.directory.model import Account, DirectoryFacts, SpnLookup, Trust, mp_spns
from kerbtrace.context.directory.nltest import looks_like_nltest, parse_nltest
from kerbtrace.context.directory.setspn import looks_like_setspn, parse_setspn
from kerbtrace.context.text import ContextInputError, read_text

__all__ = [
    "Account",
    "DirectoryError",
    "DirectoryFacts",
    "SpnLookup",
    "Trust",
    "load_directory",
    "mp_spns",
    "parse_directory_text",
    "query_ldap",
    "read_directory_file",
]

PathArg = str | Path | Sequence[str | Path] | None


def parse_directory_text(text: str, source: str) -> DirectoryFacts:
    """Facts from one pasted output or export, its format recognised by content."""
    if looks_like_ldif(text):
        return parse_ldif(text, source)
    if looks_like_csv(text):
        try:
            return parse_csv(text, source)
        except ValueError as exc:
            raise DirectoryError(str(exc)) from None
    if looks_like_nltest(text):
        return parse_nltest(text, source)
    if looks_like_setspn(text):
        return parse_setspn(text, source)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    raise DirectoryError(f"{source}: not setspn -L/-Q/-X, nltest /domain_trusts, LDIF or csvde output "
                         f"(first line: {first[:80]!r})")


def read_directory_file(path: str | Path) -> DirectoryFacts:
    try:
        text = read_text(path)
    except ContextInputError as exc:
        raise DirectoryError(str(exc)) from None
    return parse_directory_text(text, str(path))


def load_directory(
    uri: str | None = None,
    spn_file: PathArg = None,
    trusts_file: PathArg = None,
    *,
    spns: Iterable[str] = (),
    accounts: Iterable[str] = (),
    **ldap_options,
) -> DirectoryFacts:
    """Merged facts from a DC (`uri`, see :func:`query_ldap` for `ldap_options`) and files.

    `spns` are the SPNs the capture involves (``mp_spns(host)`` gives an MP's), `accounts` the
    sAMAccountNames to look up (the MP's computer account, clients); both only matter online. Any
    source that cannot be read raises :class:`DirectoryError`; lines a file holds that cannot be read
    are listed in ``facts.problems`` with their line numbers.
    """
    facts = DirectoryFacts()
    for files in (spn_file, trusts_file):
        for path in _paths(files):
            facts.merge(read_directory_file(path))
    if uri:
        facts.merge(query_ldap(uri, spns, accounts, **ldap_options))
    return facts


def _paths(arg: PathArg) -> list[str | Path]:
    if arg is None:
        return []
    if isinstance(arg, str | Path):
        return [arg]
    return list(arg)
