"""The MP names and addresses known so far, and where each was learned.

Sources: `--mp-name`, the Host header of a registration request, `_mssms_mp_` SRV answers, and the
addresses that DNS gave for those names. A host known only because clients asked tickets for
`HTTP/<host>` is *not* an MP (WinRM and every web server use that SPN too): it is kept apart so the
report can say "pass --mp-name <host> if it is an MP".
"""

from __future__ import annotations

from kerbtrace.constants import DnsType
from kerbtrace.exchanges.client import DnsLookup

MP_LOCATOR_PREFIX = "_mssms_mp_"  # ConfigMgr publishes its MPs as _mssms_mp_<sitecode>._tcp.<domain> SRV
LOCATOR_PREFIXES = (MP_LOCATOR_PREFIX, "_kerberos.", "_kerberos-master.", "_kpasswd.", "_ldap.", "_gc.")
MAX_NAMES = 4096


def normalise(name: str) -> str:
    return name.lower().rstrip(".")


class MpNames:
    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self.names: dict[str, str] = {}  # name -> how it was learned
        self._short: set[str] = set()
        self.addresses: dict[str, str] = {}  # MP address -> name
        self.spn_hosts: dict[str, int] = {}  # HTTP/<host> asked for, host not known as an MP -> count
        for name in names:
            self.add(name, "option")

    def add(self, name: str, source: str) -> None:
        name = normalise(name)
        if not name or name in self.names or len(self.names) >= MAX_NAMES:
            return
        self.names[name] = source
        self._short.add(name.split(".")[0])
        self.spn_hosts.pop(name, None)

    def add_address(self, ip: str, name: str | None) -> None:
        if ip not in self.addresses or (name and not self.addresses[ip]):
            if len(self.addresses) < MAX_NAMES:
                self.addresses[ip] = name or ""

    def labels(self) -> set[str]:
        """The first labels of the known MP names: the set itself, which only grows (a prefilter checks its size)."""
        return self._short

    def is_mp_label(self, label: str) -> bool:
        return label in self._short

    def is_mp_name(self, name: str) -> bool:
        """A known MP's FQDN, or the same host name under another DNS suffix (a wrong suffix search list)."""
        name = normalise(name)
        return name in self.names or name.split(".")[0] in self._short

    def canonical(self, name: str) -> str:
        """The known MP name a looked-up name stands for (same host label)."""
        name = normalise(name)
        if name in self.names:
            return name
        short = name.split(".")[0]
        return next((n for n in self.names if n.split(".")[0] == short), name)

    def spn_host(self, sname: str | None) -> str | None:
        """`HTTP/host[:port]` -> host, else None."""
        if not sname or sname[:5].lower() != "http/":
            return None
        return normalise(sname[5:].split("/")[0].split(":")[0]) or None

    def note_spn(self, host: str) -> None:
        if host not in self.names and (host in self.spn_hosts or len(self.spn_hosts) < MAX_NAMES):
            self.spn_hosts[host] = self.spn_hosts.get(host, 0) + 1

    def learn(self, lookup: DnsLookup) -> None:
        """SRV answers of `_mssms_mp_` name the site's MPs; A/AAAA answers of an MP name give its address."""
        if lookup.name.startswith(MP_LOCATOR_PREFIX):
            for _, rtype, value in lookup.answers:
                if rtype == DnsType.SRV:  # "priority weight port target"
                    target = value.split()[-1] if value.split() else ""
                    if target:
                        self.add(target, "dns_srv")
        elif self.is_mp_name(lookup.name):
            for _, rtype, value in lookup.answers:
                if rtype in (DnsType.A, DnsType.AAAA):
                    self.add_address(value, self.canonical(lookup.name))


__all__ = ["LOCATOR_PREFIXES", "MP_LOCATOR_PREFIX", "MpNames", "normalise"]
