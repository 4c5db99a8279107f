"""Online directory facts: a few bounded LDAP searches against a DC through ``ldap3``.

Asks only for what the checks need: the accounts holding the capture's SPNs (and the same SPNs with a
port), accounts asked for by name (the MP's computer account, clients), the forest's sPNMappings and
the trustedDomain objects — with an explicit attribute list (never ``*``: no secrets are requested),
a size limit, a time limit and connect/receive timeouts. ldap3 is used because it speaks LDAP, LDAPS,
StartTLS, NTLM (Sicily) and SASL GSSAPI (through python-gssapi) in pure Python.

Binds: ``simple`` (user DN, UPN or DOMAIN\\user; the password only from an environment variable, never a
command-line argument), ``ntlm`` (DOMAIN\\user, same password variable; needs a DC that offers Sicily
NTLM, as Windows DCs do — Samba does not), ``kerberos`` (SASL GSSAPI with the caller's ticket cache,
``kinit`` first; over LDAPS or StartTLS: ldap3 has no GSSAPI signing layer, which DCs demand on plain
LDAP — Samba even inside TLS unless ``ldap server require strong auth = allow_sasl_over_tls``) and
``anonymous``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from kerbtrace.context.directory.entries import (
    ACCOUNT_ATTRIBUTES,
    MAPPING_ATTRIBUTES,
    TRUST_ATTRIBUTES,
    facts_from_entries,
)
from kerbtrace.context.directory.model import DirectoryFacts, normalize_spn

PASSWORD_ENV = "KERBTRACE_LDAP_PASSWORD"
USER_ENV = "KERBTRACE_LDAP_USER"
BIND_MODES = ("simple", "ntlm", "kerberos", "anonymous")


# ldap3 is imported by the first query (60 ms of start-up that a run without --directory does not pay).
ldap3 = None
escape_filter_chars = None


def _load_ldap3() -> None:
    global ldap3, escape_filter_chars  # noqa: PLW0603 - loaded once, on first use
    if ldap3 is None:
        import ldap3 as binding
        from ldap3.utils.conv import escape_filter_chars as escape

        ldap3, escape_filter_chars = binding, escape


class DirectoryError(Exception):
    """The directory could not be reached or read; the message says what to do."""


def query_ldap(
    uri: str,
    spns: Iterable[str] = (),
    accounts: Iterable[str] = (),
    *,
    user: str | None = None,
    bind: str | None = None,
    password_env: str = PASSWORD_ENV,
    base: str | None = None,
    ca_file: str | None = None,
    tls_verify: bool = True,
    start_tls: bool = False,
    timeout: float = 10.0,
    size_limit: int = 500,
) -> DirectoryFacts:
    """Facts for `spns` and `accounts` from the DC at `uri` (``ldap://dc[:port]`` or ``ldaps://...``; on
    a global catalog port, 3268 or 3269, accounts are searched forest-wide)."""
    _load_ldap3()
    parts = urlsplit(uri if "://" in uri else f"ldap://{uri}")
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise DirectoryError(f"{uri}: expected ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    user = user or os.environ.get(USER_ENV) or None
    bind = bind or ("simple" if user else "anonymous")
    if bind not in BIND_MODES:
        raise DirectoryError(f"unknown bind {bind!r}: use one of {', '.join(BIND_MODES)}")
    password = os.environ.get(password_env) if bind in ("simple", "ntlm") else None
    if bind in ("simple", "ntlm") and (not user or not password):  # an empty password binds anonymously
        raise DirectoryError(f"a {bind} bind needs a user (--ldap-user or {USER_ENV}) and the password in the "
                             f"environment variable {password_env}")
    use_ssl = parts.scheme == "ldaps"
    tls = None
    if use_ssl or start_tls:
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if tls_verify else ssl.CERT_NONE, ca_certs_file=ca_file)
    server = ldap3.Server(parts.hostname, port=parts.port, use_ssl=use_ssl, tls=tls, get_info=ldap3.NONE,
                          connect_timeout=timeout)
    kwargs: dict = {"auto_bind": ldap3.AUTO_BIND_NONE, "receive_timeout": max(1, int(timeout)), "auto_referrals": False,
                    "read_only": True, "raise_exceptions": False}
    if bind == "simple":
        kwargs.update(user=user, password=password, authentication=ldap3.SIMPLE)
    elif bind == "ntlm":
        kwargs.update(user=user, password=password, authentication=ldap3.NTLM)
    elif bind == "kerberos":
        kwargs.update(authentication=ldap3.SASL, sasl_mechanism=ldap3.KERBEROS)
    where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    try:
        conn = ldap3.Connection(server, **kwargs)
        conn.open()
        if start_tls and not use_ssl and not conn.start_tls():
            raise DirectoryError(f"{where}: StartTLS refused ({conn.result.get('description')})")
        if bind != "anonymous" and not conn.bind():
            hint = ""
            if conn.result.get("result") == 8 and not (use_ssl or start_tls):  # strongerAuthRequired
                hint = "; the DC wants a protected connection: use ldaps:// or StartTLS"
            raise DirectoryError(f"{where}: {bind} bind as {user or 'the ticket cache principal'} refused: "
                                 f"{_describe(conn.result)}{hint}")
        try:
            return _read(conn, where, spns, accounts, base, size_limit, max(1, int(timeout)),
                         global_catalog=parts.port in (3268, 3269))
        finally:
            conn.unbind()
    except DirectoryError:
        raise
    except Exception as exc:  # ldap3, ssl, sockets and gssapi each raise their own kinds
        hint = " (run kinit first)" if bind == "kerberos" else ""
        raise DirectoryError(f"{where}: {type(exc).__name__}: {exc}{hint}") from None


def _read(conn: ldap3.Connection, where: str, spns: Iterable[str], accounts: Iterable[str],
          base: str | None, size_limit: int, time_limit: int, *, global_catalog: bool) -> DirectoryFacts:
    root = _search(conn, "", "(objectClass=*)", ["defaultNamingContext", "configurationNamingContext"],
                   ldap3.BASE, 1, time_limit, where)
    if not root:
        raise DirectoryError(f"{where}: the rootDSE could not be read ({_describe(conn.result)})")
    root_attrs = root[0][1]
    domain_nc = base or _first(root_attrs.get("defaultNamingContext"))
    config_nc = _first(root_attrs.get("configurationNamingContext"))
    if not domain_nc:
        raise DirectoryError(f"{where}: no defaultNamingContext in the rootDSE; give --ldap-base")
    problems: list[str] = []
    entries: list[tuple[str, dict]] = []

    spn_list = sorted({normalize_spn(s) for s in spns if s.strip()})
    names = sorted({a.strip() for a in accounts if a.strip()})
    clauses = [f"(servicePrincipalName={escape_filter_chars(s)})" for s in spn_list]
    clauses += [f"(servicePrincipalName={escape_filter_chars(s)}:*)" for s in spn_list]
    for name in names:
        sam = name.split("\\")[-1]
        clauses.append(f"(sAMAccountName={escape_filter_chars(sam)})")
    if clauses:
        flt = f"(&(objectClass=user)(|{''.join(clauses)}))"
        # Through a global catalog port the search covers the whole forest, as the KDC's SPN lookup does.
        account_base = "" if global_catalog and not base else domain_nc
        found = _search(conn, account_base, flt, list(ACCOUNT_ATTRIBUTES), ldap3.SUBTREE, size_limit, time_limit,
                        where, problems)
        entries += found
    if config_nc:
        entries += _search(conn, f"CN=Directory Service,CN=Windows NT,CN=Services,{config_nc}",
                           "(objectClass=*)", list(MAPPING_ATTRIBUTES), ldap3.BASE, 1, time_limit, where, problems)
    trusts = _search(conn, domain_nc, "(objectClass=trustedDomain)", list(TRUST_ATTRIBUTES), ldap3.SUBTREE,
                     size_limit, time_limit, where, problems)
    entries += trusts
    facts = facts_from_entries(entries, where)
    facts.domain = ".".join(p[3:] for p in domain_nc.split(",") if p.lower().startswith("dc=")).lower() or None
    facts.searched_spns = set(spn_list)
    facts.trusts_read = not any("trustedDomain" in p for p in problems)
    facts.problems = problems + facts.problems
    return facts


def _search(conn: ldap3.Connection, base: str, flt: str, attrs: list[str], scope, size_limit: int,
            time_limit: int, where: str, problems: list[str] | None = None) -> list[tuple[str, dict]]:
    """At most `size_limit` entries: the first page of a paged search (servers may ignore sizeLimit, and a
    page is what they hold to), the rest reported, not read."""
    paged = {"paged_size": size_limit} if scope != ldap3.BASE else {}
    conn.search(base, flt, search_scope=scope, attributes=attrs, size_limit=size_limit, time_limit=time_limit,
                **paged)
    code = conn.result.get("result", 0)
    more = code == 4 or bool(
        conn.result.get("controls", {}).get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie"))
    if code not in (0, 4, 32) and problems is not None:  # 4 sizeLimitExceeded, 32 noSuchObject
        problems.append(f"{where}: search {flt[:60]} under {base or 'the forest'}: {_describe(conn.result)}")
    out = []
    for item in conn.response or []:
        if item.get("type") == "searchResEntry" and len(out) < size_limit:
            out.append((item["dn"], dict(item.get("attributes") or {})))
    if more and problems is not None:
        problems.append(f"{where}: more than {size_limit} entries for {flt[:60]}; the rest not read")
    return out


def _first(value) -> str | None:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return str(value) if value else None


def _describe(result: dict) -> str:
    desc = result.get("description") or "error"
    msg = (result.get("message") or "").strip()
    return f"{desc} ({result.get('result')})" + (f": {msg[:160]}" if msg else "")
