"""Keyed pseudonyms for the `kerbtrace/1` document, so a report can leave the customer's company.

Redaction works on the JSON document, before any rendering: HTML, Markdown and JSON are all made
from the redacted document, so no format can show what another hides. Identifiers are collected
from the structured fields first (addresses, host names, FQDNs, realms, accounts, SPNs, client
GUIDs), then replaced in every string of the document (free text too), longest first and
case-insensitively; addresses and GUIDs are also found by pattern wherever they occur.

Pseudonyms are HMAC-SHA256 of the identifier under a key (random per report unless one is given),
so nobody can confirm a guess without the key, and the same key gives the same pseudonyms in every
report. The structure stays readable: names are pseudonymised label by label (a child realm stays a
child of its parent), an MP's host label reads `mp-…`, a computer account keeps its `$`, an SPN its
service class. Every address is replaced, loopback included (the lab captures use 127.0.0.0/8);
only 0.0.0.0, 255.255.255.255 and :: are kept, as they name no host. A NetBIOS domain name is replaced
before a backslash (`CORP\\WK01$`) or as a whole field, not as a bare word of prose (`OTHER`, `CHILD`).
The site code of an `_mssms_mp_<site>` SRV name is replaced too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Iterable
from functools import lru_cache

KEY_ENV = "KERBTRACE_REDACT_KEY"
TOP_LABEL = "example"  # the last label of every domain: the real TLD can be telling on its own
KEPT_ADDRESSES = frozenset({"0.0.0.0", "255.255.255.255", "::"})

_B = r"A-Za-z0-9\-"  # characters that continue a name: a match must not be part of a longer word
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")
_GUID = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}(?![0-9A-Fa-f])")
_DOMAIN_ACCOUNT = re.compile(r"(?<![\w\\])([A-Za-z][A-Za-z0-9-]{0,14})\\([A-Za-z0-9._-]+\$?)")
_AT_PRINCIPAL = re.compile(r"(?<![\w.$-])([A-Za-z0-9._-]+\$?)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)")
_DOTTED = re.compile(rf"(?<![{_B}.])[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+(?![{_B}])")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9._-]+")
_SITE_SRV = re.compile(r"(_mssms_mp_)([A-Za-z0-9]{3})(?![A-Za-z0-9])", re.I)

# Fields of the document (at any depth) whose value is an identifier of the given kind. Addresses need
# no list: they are found by pattern in every string. Context sources (logs, DC events, directory) may
# add fields; those named here are collected, and all their text is rewritten in any case.
HOST_FIELDS = frozenset({"hostname", "netbios", "computer", "computer_name", "workstation", "dc", "dc_name",
                         "s_computername", "server_name"})
FQDN_FIELDS = frozenset({"fqdn", "host", "dns_name", "dnshostname"})
MP_FIELDS = frozenset({"mp_name"})
DOMAIN_FIELDS = frozenset({"realm", "domain", "realms", "domains", "crealm", "srealm", "target_domain"})
PRINCIPAL_FIELDS = frozenset({"account", "cname", "principal", "user", "accounts", "principals", "target_user",
                              "user_name", "username", "cs_username", "samaccountname", "sam_account_name"})
SPN_FIELDS = frozenset({"sname", "spn", "spns", "service_principal_name"})


def resolve_key(given: str | None) -> tuple[bytes, str]:
    """The HMAC key and where it came from (`given`, `environment` or `random`); never stored."""
    if given:
        return given.encode(), "given"
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode(), "environment"
    return secrets.token_bytes(32), "random"


class Pseudonyms:
    """Keyed pseudonyms, unique within one report (a clash of truncated digests takes a longer one)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.taken: dict[str, str] = {}  # pseudonym (lower case) -> the identifier it stands for
        self.memo: dict[tuple[str, str], str] = {}

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.key, f"{kind}\0{value.lower()}".encode(), hashlib.sha256).digest()

    def _unique(self, kind: str, value: str, make: Callable[[bytes, int], str]) -> str:
        memo = self.memo.get((kind, value.lower()))
        if memo is not None:
            return memo
        digest = self._digest(kind, value)
        for extra in range(0, 20):
            name = make(digest, extra)
            owner = self.taken.get(name.lower())
            if owner is None or owner == f"{kind}:{value.lower()}":
                break
        self.taken[name.lower()] = f"{kind}:{value.lower()}"
        self.memo[(kind, value.lower())] = name
        return name

    def label(self, kind: str, value: str) -> str:
        """`host-3fa9c2`, `mp-…`, `user-…`, `d…` (domain label): lower case."""
        prefix = {"host": "host-", "mp": "mp-", "user": "user-", "domain": "d", "site": ""}[kind]
        if kind == "site":
            return self._unique(kind, value, lambda d, extra: d.hex()[extra:extra + 3])
        return self._unique(kind, value, lambda d, extra: prefix + d.hex()[:6 + 2 * extra])

    def address(self, value: str) -> str:
        ip = ipaddress.ip_address(value)
        if ip.version == 4:  # 198.18.0.0/15: the benchmarking block, never a real host's address
            return self._unique("ip", str(ip), lambda d, extra: str(
                ipaddress.IPv4Address((198 << 24) | (18 << 16) | ((int.from_bytes(d[:4], "big") + extra) & 0x1FFFF))))
        return self._unique("ip", str(ip), lambda d, extra: str(
            ipaddress.IPv6Address((0x20010DB8 << 96) | (int.from_bytes(d[:12], "big") + extra) % (1 << 96))))

    def guid(self, value: str) -> str:
        def make(d: bytes, extra: int) -> str:
            h = hashlib.sha256(d + bytes([extra])).hexdigest() if extra else d.hex()
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

        return self._unique("guid", value, make)


def _same_case(original: str, pseudonym: str) -> str:
    return pseudonym.upper() if original.isupper() else pseudonym


class Redactor:
    """Collects the identifiers of a document, then rewrites every string of it."""

    def __init__(self, key: bytes) -> None:
        self.names = Pseudonyms(key)
        self.table: dict[str, str] = {}  # identifier (lower case) -> pseudonym (lower case)
        self.domains: set[str] = set()
        self.netbios: dict[str, str] = {}  # NetBIOS domain name (lower case) -> pseudonym
        self._pattern: re.Pattern[str] | None = None
        self._done: dict[str, str] = {}  # text -> rewritten text (reports repeat the same texts many times)

    # -- collecting --------------------------------------------------------------------------------
    def add_domain(self, name: str) -> str:
        labels = [x for x in name.strip(".").split(".") if x]
        if not labels:
            return name
        self.domains.add(".".join(labels).lower())
        if len(labels) == 1:  # a single-label realm
            self.table.setdefault(labels[0].lower(), self.names.label("domain", labels[0]))
            return self.table[labels[0].lower()]
        out = [x if x.startswith("_") else self.names.label("domain", x) for x in labels[:-1]] + [TOP_LABEL]
        for i in range(len(labels) - 1):  # every parent domain too, but not the bare top label
            self.table[".".join(labels[i:]).lower()] = ".".join(out[i:])
        return ".".join(out)

    def add_host(self, name: str, kind: str = "host") -> str:
        """A NetBIOS name or an FQDN whose first label is a host (`mp` for an MP)."""
        name = name.strip().strip(".")
        if not name or _is_address(name):
            return name
        first, _, rest = name.partition(".")
        first = first.rstrip("$")
        pseudo = self.names.label(kind, first) if not first.startswith("_") else first
        if self.table.get(first.lower(), "").startswith("mp-") and kind == "host":
            pseudo = self.table[first.lower()]  # an MP stays an MP wherever its name appears
        if not first.startswith("_"):
            self.table[first.lower()] = pseudo
        if rest:
            pseudo = f"{pseudo}.{self.add_domain(rest)}"
            self.table[name.lower()] = pseudo
        return pseudo

    def add_principal(self, value: str) -> None:
        """`WK01$@CORP.LAB`, `smsclient@CORP.LAB`, `CORP\\user`, `HTTP/host@REALM` or a bare name."""
        value = value.strip()
        if not value:
            return
        if "\\" in value:
            domain, _, value = value.partition("\\")
            self.add_netbios_domain(domain)
        name, _, realm = value.rpartition("@") if "@" in value else (value, "", "")
        if realm:
            self.add_domain(realm)
        if "/" in name:
            self.add_spn(name)
        elif name.lower() in self.domains:
            return
        elif name.endswith("$") or "." in name:
            self.add_host(name)
        elif name:
            self.add_user(name)

    def add_user(self, name: str) -> None:
        if name.lower() not in self.table:
            self.table[name.lower()] = self.names.label("user", name)

    def add_netbios_domain(self, name: str) -> None:
        """`CORP` of `CORP\\WK01$`: replaced only before a backslash or as a whole field, since a
        NetBIOS domain name is often an ordinary word (`OTHER`, `CHILD`) that prose uses too."""
        if name:
            self.netbios.setdefault(name.lower(), self.names.label("domain", name))

    def add_spn(self, value: str) -> None:
        """`HTTP/mp01.corp.lab[:port][@REALM]`: the service class stays, the host is pseudonymised."""
        spn, _, realm = value.partition("@")
        if realm:
            self.add_domain(realm)
        service, _, host = spn.partition("/")
        host = host.split("/")[0].split(":")[0]
        if not host:
            return
        if service.lower() == "krbtgt":
            self.add_domain(host)
        elif not _is_address(host):
            self.add_host(host, "mp" if self.table.get(host.split(".")[0].lower(), "").startswith("mp-") else "host")

    def collect(self, doc: object) -> None:
        """Every identifier of the document: structured fields first, then names found in text."""
        for client in doc.get("clients", []) if isinstance(doc, dict) else []:
            mp = client.get("mp") or {}
            if isinstance(mp, dict) and isinstance(mp.get("name"), str):
                self.add_host(mp["name"], "mp")  # first: an MP's label is `mp-…` everywhere
        self._walk_fields(doc, None)
        strings = set(_strings(doc))  # a fleet repeats its texts: each distinct one is scanned once
        for text in strings:
            for m in _DOMAIN_ACCOUNT.finditer(text):
                self.add_netbios_domain(m.group(1))
                self.add_principal(m.group(2))
        for text in strings:
            for m in _AT_PRINCIPAL.finditer(text):
                if m.group(2).lower() in self.domains:
                    self.add_principal(m.group(0))
        for text in strings:  # names inside a known domain (SRV records, other hosts of the forest)
            for m in _DOTTED.finditer(text):
                name = m.group(0).lower()
                if name in self.domains:
                    continue
                for domain in self.domains:
                    if name.endswith("." + domain) and not _is_address(name):
                        host = name[: -len(domain) - 1]
                        if "." not in host:
                            self.add_host(m.group(0))
                        else:
                            self.add_domain(host.split(".", 1)[1] + "." + domain)
                            self.add_host(m.group(0))
                        break
        self._pattern = None
        self._done.clear()

    def _walk_fields(self, node: object, field: str | None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "mp" and isinstance(v, dict) and isinstance(v.get("name"), str):
                    self.add_host(v["name"], "mp")
                self._walk_fields(v, k)
        elif isinstance(node, list):
            for v in node:
                self._walk_fields(v, field)
        elif isinstance(node, str) and field is not None and node and " " not in node.strip():
            field = field.lower().replace("-", "_")
            if field in HOST_FIELDS:
                self.add_host(node.split(".")[0])
                if "." in node:
                    self.add_host(node)
            elif field in FQDN_FIELDS or field in MP_FIELDS or field == "name":
                if "." in node and not _is_address(node) and "/" not in node and " " not in node:
                    self.add_host(node, "mp" if field in MP_FIELDS else "host")
            elif field in DOMAIN_FIELDS:
                self.add_domain(node)
            elif field in PRINCIPAL_FIELDS:
                self.add_principal(node)
            elif field in SPN_FIELDS:
                self.add_spn(node) if "/" in node else self.add_principal(node)

    # -- rewriting ---------------------------------------------------------------------------------
    def _names(self) -> re.Pattern[str]:
        """Identifiers with characters a name token has not (rare): one alternation, longest first."""
        if self._pattern is None:
            keys = sorted((k for k in self.table if not _NAME_TOKEN.fullmatch(k)), key=len, reverse=True)
            alternation = "|".join(re.escape(k) for k in keys) or r"(?!x)x"
            self._pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])", re.I)
        return self._pattern

    def _token(self, m: re.Match[str]) -> str:
        """Known names inside one token of name characters, leftmost-longest, at label boundaries: a name
        inside a longer hyphenated word (`dc01-Security.evtx`) is replaced too. Dictionary look-ups, so the
        cost does not grow with the number of names (a regex alternation of 100k names would)."""
        token = m.group(0)
        low = token.lower()
        cuts = [i for i, ch in enumerate(token) if ch in "._-"]
        starts, ends = [0] + [i + 1 for i in cuts], sorted(set(cuts + [len(token)]), reverse=True)
        out, pos = [], 0
        for start in starts:
            if start < pos:
                continue
            for end in ends:
                if end <= start:
                    break
                pseudo = self.table.get(low[start:end])
                if pseudo is not None:
                    out.append(token[pos:start] + _same_case(token[start:end], pseudo))
                    pos = end
                    break
        return "".join(out) + token[pos:] if out else token

    def text(self, value: str) -> str:
        done = self._done.get(value)
        if done is None:
            done = self._done[value] = self._rewrite(value)
        return done

    def _rewrite(self, value: str) -> str:
        value = _IPV4.sub(self._address, value)
        value = _IPV6.sub(self._address, value)
        value = _GUID.sub(lambda m: _same_case(m.group(0), self.names.guid(m.group(0))), value)
        value = _SITE_SRV.sub(lambda m: m.group(1) + _same_case(m.group(2), self.names.label("site", m.group(2))),
                              value)
        value = _DOMAIN_ACCOUNT.sub(self._netbios, value)
        if value.lower() in self.netbios:
            return _same_case(value, self.netbios[value.lower()])
        value = _NAME_TOKEN.sub(self._token, value)
        return self._names().sub(lambda m: _same_case(m.group(0), self.table[m.group(0).lower()]), value)

    def _netbios(self, m: re.Match[str]) -> str:
        pseudo = self.netbios.get(m.group(1).lower())
        return m.group(0) if pseudo is None else _same_case(m.group(1), pseudo) + "\\" + m.group(2)

    def _address(self, m: re.Match[str]) -> str:
        text = m.group(0)
        if not _is_address(text) or text in KEPT_ADDRESSES:
            return text
        return self.names.address(text)

    def document(self, doc: object) -> object:
        """A rewritten copy of `doc`: every string (and every dict key) passed through `text`."""
        if isinstance(doc, dict):
            return {self.text(k): self.document(v) for k, v in doc.items()}
        if isinstance(doc, list):
            return [self.document(v) for v in doc]
        if isinstance(doc, str):
            return self.text(doc)
        return doc


def redact(doc: dict, key: bytes, key_source: str = "given") -> dict:
    """The redacted copy of a `kerbtrace/1` document. Input paths keep only the file name (a folder
    often names a user or a server)."""
    doc = _basenames(doc)
    redactor = Redactor(key)
    redactor.collect(doc)
    out = redactor.document(doc)
    assert isinstance(out, dict)
    out["redacted"] = {"method": "HMAC-SHA256 keyed pseudonyms", "key": key_source}
    return out


def _basenames(doc: dict) -> dict:
    doc = dict(doc)
    doc["inputs"] = [{**i, "path": _basename(i.get("path"))} for i in doc.get("inputs", [])]
    return _walk_files(doc)


def _walk_files(node):
    if isinstance(node, dict):
        return {k: (_basename(v) if k == "file" else _walk_files(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk_files(v) for v in node]
    return node


def _basename(path):
    if not isinstance(path, str):
        return path
    return re.split(r"[\\/]", path)[-1]


def _strings(node: object) -> Iterable[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


@lru_cache(maxsize=65536)
def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
