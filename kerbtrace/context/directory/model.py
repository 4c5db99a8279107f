"""Directory facts: which accounts hold the MP's SPNs, their state, the forest's sPNMappings, the trusts.

Pure data once loaded, whatever the source (LDAP, setspn/nltest text, LDIF/CSV exports), so the checks
ask the same questions of all of them. A fact the source did not cover stays unknown (``None``) rather
than false: "no account holds HTTP/mp01" is only said for an SPN the source actually searched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

from kerbtrace import codes

# Windows' default sPNMappings (MS-DRSR LookupSPN; the value Samba provisions, verified against a Samba AD
# DC in the tests): these service classes are served by the computer account's HOST/<name> SPN.
DEFAULT_HOST_ALIASES = frozenset(
    "alerter,appmgmt,cisvc,clipsrv,browser,dhcp,dnscache,replicator,eventlog,eventsystem,policyagent,oakley,"
    "dmserver,dns,mcsvc,fax,msiserver,ias,messenger,netlogon,netman,netdde,netddedsm,nmagent,plugplay,"
    "protectedstorage,rasman,rpclocator,rpc,rpcss,remoteaccess,rsvp,samss,scardsvr,scesrv,seclogon,scm,dcom,"
    "cifs,spooler,snmp,schedule,tapisrv,trksvr,trkwks,ups,time,wins,www,http,w3svc,iisadmin,msdtc".split(",")
)

# Account kinds, in the admin's words.
COMPUTER, USER, MANAGED_SERVICE, TRUST_ACCOUNT, UNKNOWN = "computer", "user", "managed_service", "trust", "unknown"


def normalize_spn(spn: str) -> str:
    """Case-folded SPN without a trailing ``@REALM`` (the directory compares SPNs case-insensitively)."""
    spn = spn.strip()
    if "@" in spn:
        spn = spn.rsplit("@", 1)[0]
    return spn.lower()


def split_spn(spn: str) -> tuple[str, str, str | None]:
    """``HTTP/mp01.corp.lab:80/x`` -> (``http``, ``mp01.corp.lab``, ``80``); service name dropped."""
    cls, _, rest = normalize_spn(spn).partition("/")
    host = rest.split("/", 1)[0]
    host, _, port = host.partition(":")
    return cls, host, port or None


def mp_spns(host: str) -> tuple[str, ...]:
    """The SPNs a client may ask for to reach an MP named `host` (FQDN or short name), and the HOST
    SPNs that serve them through sPNMappings."""
    host = host.strip().rstrip(".").lower()
    names = [host]
    short = host.split(".", 1)[0]
    if short != host:
        names.append(short)
    return tuple(f"{cls}/{n}" for cls in ("HTTP", "HOST") for n in names)


@dataclass(frozen=True, slots=True)
class Account:
    """One directory account that holds SPNs or that a check asked about."""

    dn: str
    sam: str | None = None  # sAMAccountName, e.g. "MP01$" or "svc-web"
    kind: str = UNKNOWN  # computer | user | managed_service | trust | unknown
    spns: tuple[str, ...] = ()
    uac: int | None = None  # userAccountControl
    disabled: bool | None = None
    # msDS-User-Account-Control-Computed LOCKOUT (online: the DC applies the lockout duration); from an
    # export, lockoutTime != 0, which stays set after the lockout duration ran out until the next logon
    locked: bool | None = None
    lockout_time: int | None = None  # FILETIME (100 ns since 1601), 0 when not locked
    kvno: int | None = None  # msDS-KeyVersionNumber
    supported_etypes: int | None = None  # msDS-SupportedEncryptionTypes (None: not set, the KDC default)
    source: str = ""  # where the fact comes from ("ldap://dc1", "spns.txt line 4")

    @property
    def uac_flags(self) -> tuple[str, ...]:
        return codes.flag_names(codes.USER_ACCOUNT_CONTROL, self.uac) if self.uac is not None else ()

    @property
    def etype_names(self) -> tuple[str, ...] | None:
        return codes.supported_etypes(self.supported_etypes) if self.supported_etypes is not None else None

    @property
    def name(self) -> str:
        """sAMAccountName, else the first RDN value of the DN."""
        if self.sam:
            return self.sam
        first = self.dn.split(",", 1)[0]
        return first.split("=", 1)[-1]

    def allows_etype(self, etype: int) -> bool | None:
        """Whether msDS-SupportedEncryptionTypes lets the KDC encrypt this account's tickets with `etype`;
        None when the attribute is unset (the DC's default then decides, which the directory does not show)."""
        if self.supported_etypes is None:
            return None
        return any(self.supported_etypes & bit for bit, e in codes.SUPPORTED_ETYPE_BITS.items() if e == etype)

    def describe(self) -> str:
        """``user account svc-web (CN=svc-web,CN=Users,DC=corp,DC=lab), disabled`` — for findings."""
        kind = {COMPUTER: "computer account", USER: "user account", MANAGED_SERVICE: "managed service account",
                TRUST_ACCOUNT: "trust account"}.get(self.kind, "account")
        states = [w for w, on in (("disabled", self.disabled), ("locked out", self.locked)) if on]
        return f"{kind} {self.name} ({self.dn})" + (", " + ", ".join(states) if states else "")

    def holds(self, spn: str) -> bool:
        key = normalize_spn(spn)
        return any(normalize_spn(s) == key for s in self.spns)

    def as_json(self) -> dict:
        d = asdict(self)
        d["spns"] = list(self.spns)
        d["uac_flags"] = list(self.uac_flags)
        names = self.etype_names
        d["supported_etype_names"] = list(names) if names is not None else None
        return d


@dataclass(frozen=True, slots=True)
class Trust:
    """One trustedDomain object (or one line of ``nltest /domain_trusts``), seen from the local domain."""

    name: str  # the trusted domain's DNS name (trustPartner), or its NetBIOS name for a downlevel trust
    flat_name: str | None = None
    trust_type: int | None = None  # 1 downlevel, 2 uplevel (AD), 3 MIT
    direction: int | None = None  # 1 inbound, 2 outbound, 3 both
    attributes: int | None = None  # trustAttributes bits
    direct: bool = True  # False: a domain of the same forest reached through another trust (nltest)
    source: str = ""

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return codes.flag_names(codes.TRUST_ATTRIBUTES, self.attributes) if self.attributes is not None else ()

    @property
    def direction_name(self) -> str | None:
        return codes.TRUST_DIRECTIONS.get(self.direction) if self.direction is not None else None

    @property
    def type_name(self) -> str | None:
        return codes.TRUST_TYPES.get(self.trust_type) if self.trust_type is not None else None

    @property
    def kind(self) -> str:
        """within_forest | forest | external | realm | unknown — what decides whether Kerberos can route
        a host-based SPN to the other domain (forest and within-forest trusts can; external cannot)."""
        attrs = self.attributes or 0
        if attrs & 0x20 or not self.direct:
            return "within_forest"
        if attrs & 0x08:
            return "forest"
        if self.trust_type == 3:
            return "realm"
        if self.trust_type in (1, 2) or self.attributes is not None:
            return "external"
        return "unknown"

    @property
    def transitive(self) -> bool | None:
        if self.attributes is None:
            return None
        return not self.attributes & 0x01 and self.kind in ("within_forest", "forest", "realm")

    def as_json(self) -> dict:
        d = asdict(self)
        d.update(kind=self.kind, transitive=self.transitive, type_name=self.type_name,
                 direction_name=self.direction_name, attribute_names=list(self.attribute_names))
        return d


@dataclass(frozen=True, slots=True)
class SpnLookup:
    """How the KDC would resolve one SPN with these facts (MS-DRSR LookupSPN order)."""

    spn: str
    direct: tuple[Account, ...]  # accounts whose servicePrincipalName holds the SPN itself
    via_mapping: tuple[Account, ...]  # accounts holding HOST/<same host> when sPNMappings maps the class
    port_variants: tuple[Account, ...]  # accounts holding the same class and host with another port
    searched: bool  # the source looked this SPN up, so an empty answer means "on no account"

    @property
    def owners(self) -> tuple[Account, ...]:
        return self.direct or self.via_mapping

    def describe(self) -> str:
        """One sentence on who holds the SPN, for findings and reports."""
        status = self.status
        if status == "unknown":
            return f"The directory facts do not cover {self.spn}."
        if status == "missing":
            extra = ""
            if self.port_variants:
                extra = " (only with another port, on " + "; ".join(a.describe() for a in self.port_variants) + ")"
            return f"No account holds {self.spn}{extra}."
        via = "" if self.direct else " through sPNMappings (its HOST SPN)"
        who = "; ".join(a.describe() for a in self.owners)
        if status == "duplicate":
            return f"{self.spn} is registered on {len(self.owners)} accounts{via}: {who}."
        return f"{self.spn} is registered{via} on the {who}."

    @property
    def status(self) -> str:
        """ok | duplicate | missing | unknown."""
        if len(self.direct) > 1 or (not self.direct and len(self.via_mapping) > 1):
            return "duplicate"
        if self.owners:
            return "ok"
        return "missing" if self.searched else "unknown"


@dataclass(slots=True)
class DirectoryFacts:
    """Everything known about the directory, from one or several sources merged."""

    online: ClassVar[bool] = False  # True where the DC is queried while the checks run

    accounts: list[Account] = field(default_factory=list)
    trusts: list[Trust] = field(default_factory=list)
    spn_mappings: dict[str, str] | None = None  # alias class -> target class ("http" -> "host"); None: unread
    domain: str | None = None  # the local (MP's) domain's DNS name
    searched_spns: set[str] = field(default_factory=set)  # normalized SPNs the sources looked up
    complete_spns: bool = False  # a source listed every SPN of the domain (a full export)
    trusts_read: bool = False  # a source listed the trusts, so an absent trust means "no trust"
    duplicate_groups: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # setspn -X
    sources: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # lines or records that could not be read

    # --- lookups for the checks ---------------------------------------------------------------------

    def lookup(self, spn: str) -> SpnLookup:
        cls, host, port = split_spn(spn)
        key = normalize_spn(spn)
        direct = tuple(a for a in self.accounts if a.holds(key))
        via: tuple[Account, ...] = ()
        target = self.host_class_for(cls)
        if not direct and target:
            alias = f"{target}/{host}" + (f":{port}" if port else "")
            via = tuple(a for a in self.accounts if a.holds(alias))
        variants = tuple(
            a for a in self.accounts if a not in direct
            for s in a.spns if split_spn(s)[:2] == (cls, host) and split_spn(s)[2] != port
        )
        searched = self.complete_spns or key in self.searched_spns
        if target and not direct:
            searched = searched and (self.complete_spns or f"{target}/{host}" in self.searched_spns)
        return SpnLookup(spn, direct, via, tuple(dict.fromkeys(variants)), searched)

    def owners(self, spn: str) -> tuple[Account, ...]:
        """Accounts the KDC would encrypt a ticket for `spn` to: the SPN's own holders, else (through
        sPNMappings) the holders of HOST/<host>. Case-insensitive; ``@REALM`` ignored; a port is part of
        the SPN as for the KDC (see ``lookup().port_variants`` for the same host on another port)."""
        return self.lookup(spn).owners

    def is_duplicate(self, spn: str) -> bool:
        """Two or more accounts hold the SPN (the KDC answers KDC_ERR_S_PRINCIPAL_UNKNOWN, or issues a
        ticket for one of them); also true when ``setspn -X`` listed it."""
        if self.lookup(spn).status == "duplicate":
            return True
        key = normalize_spn(spn)
        return any(normalize_spn(s) == key for s, _ in self.duplicate_groups)

    def is_missing(self, spn: str) -> bool | None:
        """True when the sources searched for `spn` and no account (nor HOST alias) holds it; None when
        the sources cannot tell."""
        status = self.lookup(spn).status
        if status == "unknown":
            return None
        return status == "missing"

    def host_class_for(self, cls: str) -> str | None:
        """The service class that serves `cls` through sPNMappings (``http`` -> ``host``), or None."""
        cls = cls.lower()
        if self.spn_mappings is not None:
            return self.spn_mappings.get(cls)
        return "host" if cls in DEFAULT_HOST_ALIASES else None

    def account(self, name: str) -> Account | None:
        """An account by sAMAccountName (``MP01$``, ``MP01``, ``CORP\\\\MP01$``, UPN prefix), DN or CN."""
        key = name.strip().lower()
        if "\\" in key:
            key = key.split("\\", 1)[1]
        if "@" in key and "=" not in key:
            key = key.split("@", 1)[0]
        for candidates in ((key,), (key + "$",), (key.rstrip("$"),)):
            for a in self.accounts:
                if (a.sam or "").lower() in candidates or a.dn.lower() in candidates:
                    return a
        for a in self.accounts:
            if a.name.lower() in (key, key.rstrip("$")):
                return a
        return None

    def trust_to(self, realm: str) -> Trust | None:
        """The trust toward `realm` (DNS or NetBIOS name, any case), or None (see ``trusts_read``: None
        from a source that listed the trusts means there is no trust)."""
        key = realm.strip().rstrip(".").lower()
        for t in self.trusts:
            if t.name.lower() == key or (t.flat_name or "").lower() == key:
                return t
        return None

    # --- building ------------------------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        """Add or merge (same DN, case-insensitive): known values win over unknown ones."""
        for i, a in enumerate(self.accounts):
            if a.dn.lower() == account.dn.lower():
                self.accounts[i] = _merge_account(a, account)
                return
        self.accounts.append(account)

    def add_trust(self, trust: Trust) -> None:
        for i, t in enumerate(self.trusts):
            if t.name.lower() == trust.name.lower():
                merged = {k: v for k, v in asdict(trust).items() if v is not None}
                self.trusts[i] = replace(t, **merged)
                return
        self.trusts.append(trust)

    def merge(self, other: DirectoryFacts) -> DirectoryFacts:
        for a in other.accounts:
            self.add_account(a)
        for t in other.trusts:
            self.add_trust(t)
        if other.spn_mappings is not None:
            self.spn_mappings = {**(self.spn_mappings or {}), **other.spn_mappings}
        self.domain = self.domain or other.domain
        self.searched_spns |= other.searched_spns
        self.complete_spns = self.complete_spns or other.complete_spns
        self.trusts_read = self.trusts_read or other.trusts_read
        self.duplicate_groups += other.duplicate_groups
        self.sources += other.sources
        self.problems += other.problems
        return self

    def as_json(self) -> dict:
        return {
            "domain": self.domain,
            "sources": list(self.sources),
            "accounts": [a.as_json() for a in self.accounts],
            "trusts": [t.as_json() for t in self.trusts],
            "spn_mappings": self.spn_mappings,
            "searched_spns": sorted(self.searched_spns),
            "complete_spns": self.complete_spns,
            "trusts_read": self.trusts_read,
            "duplicate_groups": [[s, list(dns)] for s, dns in self.duplicate_groups],
            "problems": list(self.problems),
        }

    @classmethod
    def from_json(cls, d: dict) -> DirectoryFacts:
        acc_fields = set(Account.__dataclass_fields__)
        trust_fields = set(Trust.__dataclass_fields__)
        return cls(
            accounts=[Account(**{**{k: v for k, v in a.items() if k in acc_fields}, "spns": tuple(a["spns"])})
                      for a in d.get("accounts", [])],
            trusts=[Trust(**{k: v for k, v in t.items() if k in trust_fields}) for t in d.get("trusts", [])],
            spn_mappings=d.get("spn_mappings"),
            domain=d.get("domain"),
            searched_spns=set(d.get("searched_spns", [])),
            complete_spns=bool(d.get("complete_spns")),
            trusts_read=bool(d.get("trusts_read")),
            duplicate_groups=[(s, tuple(dns)) for s, dns in d.get("duplicate_groups", [])],
            sources=list(d.get("sources", [])),
            problems=list(d.get("problems", [])),
        )


def _merge_account(old: Account, new: Account) -> Account:
    values = {k: v for k, v in asdict(new).items() if v not in (None, "", ())}
    values.pop("spns", None)
    if old.kind != UNKNOWN and new.kind == UNKNOWN:
        values.pop("kind", None)
    spns = tuple(dict.fromkeys(old.spns + new.spns))
    return replace(old, **values, spns=spns)
