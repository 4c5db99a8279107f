"""Directory entries (DN + attributes, as LDAP, ldifde and csvde give them) to DirectoryFacts.

One converter for the online and the offline sources, so an LDIF export of a directory gives the same
facts as querying it. Attribute names are compared case-insensitively; only the attributes below are
read, so nothing else an export may hold (hashes, keys) is ever kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kerbtrace.context.directory.model import (
    COMPUTER,
    MANAGED_SERVICE,
    TRUST_ACCOUNT,
    UNKNOWN,
    USER,
    Account,
    DirectoryFacts,
    Trust,
)

# The attributes kerbtrace reads: requested by the LDAP source, kept from exports.
ACCOUNT_ATTRIBUTES = (
    "objectClass", "sAMAccountName", "sAMAccountType", "servicePrincipalName", "userAccountControl",
    "msDS-User-Account-Control-Computed", "lockoutTime", "msDS-KeyVersionNumber",
    "msDS-SupportedEncryptionTypes",
)
TRUST_ATTRIBUTES = ("objectClass", "trustPartner", "flatName", "trustType", "trustDirection", "trustAttributes")
MAPPING_ATTRIBUTES = ("sPNMappings",)

_KEEP = {a.lower() for a in ACCOUNT_ATTRIBUTES + TRUST_ATTRIBUTES + MAPPING_ATTRIBUTES}
_MACHINE_ACCOUNT_TYPE = 0x30000001  # sAMAccountType SAM_MACHINE_ACCOUNT
_TRUST_ACCOUNT_TYPE = 0x30000002
_LOCKOUT = 0x10
_DISABLED = 0x2
_MACHINE_UAC = 0x1000 | 0x2000  # WORKSTATION_TRUST_ACCOUNT | SERVER_TRUST_ACCOUNT

Entry = tuple[str, Mapping[str, list]]


def keep_attributes(attrs: Mapping[str, Iterable]) -> dict[str, list]:
    """Lower-cased attribute names -> list of values, restricted to what kerbtrace reads."""
    out: dict[str, list] = {}
    for name, values in attrs.items():
        key = name.lower().split(";", 1)[0]  # "servicePrincipalName;range=0-1499" -> base name
        if key in _KEEP:
            vals = [values] if isinstance(values, str | bytes | int) else list(values)
            vals = [v for v in vals if v not in (None, "", b"")]
            if vals:
                out.setdefault(key, []).extend(vals)
    return out


def facts_from_entries(entries: Iterable[Entry], source: str, *, where: Mapping[str, str] | None = None
                       ) -> DirectoryFacts:
    """Build facts from entries; `where` maps a DN to its place in the file for error messages."""
    facts = DirectoryFacts(sources=[source])
    for dn, raw in entries:
        attrs = keep_attributes(raw)
        place = (where or {}).get(dn, source)
        problems: list[str] = []
        classes = {_text(v).lower() for v in attrs.get("objectclass", [])}
        if "trusteddomain" in classes or "trustpartner" in attrs:
            facts.add_trust(_trust(dn, attrs, place, problems))
            facts.trusts_read = True
        elif "spnmappings" in attrs:
            facts.spn_mappings = {**(facts.spn_mappings or {}), **spn_mappings(attrs["spnmappings"])}
        elif "samaccountname" in attrs or "serviceprincipalname" in attrs:
            facts.add_account(_account(dn, attrs, classes, place, problems))
        facts.problems += [f"{place}: {p}" for p in problems]
        if facts.domain is None:
            facts.domain = domain_of(dn)
    return facts


def spn_mappings(values: Iterable) -> dict[str, str]:
    """``host=alerter,http,...`` -> {"alerter": "host", "http": "host", ...} (lower case)."""
    out: dict[str, str] = {}
    for v in values:
        target, _, aliases = _text(v).partition("=")
        for alias in aliases.split(","):
            if alias.strip():
                out[alias.strip().lower()] = target.strip().lower()
    return out


def domain_of(dn: str) -> str | None:
    """``CN=x,CN=Users,DC=corp,DC=lab`` -> ``corp.lab``."""
    parts = [p.strip()[3:] for p in dn.split(",") if p.strip().lower().startswith("dc=")]
    return ".".join(parts).lower() or None


def _account(dn: str, attrs: dict, classes: set[str], place: str, problems: list[str]) -> Account:
    uac = _int(attrs, "useraccountcontrol", problems)
    computed = _int(attrs, "msds-user-account-control-computed", problems)
    lockout_time = _int(attrs, "lockouttime", problems)
    sam = _text(attrs["samaccountname"][0]) if attrs.get("samaccountname") else None
    if computed is not None:
        locked: bool | None = bool(computed & _LOCKOUT)
    elif lockout_time is not None:
        locked = lockout_time != 0
    else:
        locked = None  # an export without lockoutTime: unset, or not exported — it cannot tell
    return Account(
        dn=dn,
        sam=sam,
        kind=_kind(classes, _int(attrs, "samaccounttype", problems), uac, sam),
        spns=tuple(_text(v) for v in attrs.get("serviceprincipalname", [])),
        uac=uac,
        disabled=bool(uac & _DISABLED) if uac is not None else None,
        locked=locked,
        lockout_time=lockout_time,
        kvno=_int(attrs, "msds-keyversionnumber", problems),
        supported_etypes=_int(attrs, "msds-supportedencryptiontypes", problems),
        source=place,
    )


def _kind(classes: set[str], sam_type: int | None, uac: int | None, sam: str | None) -> str:
    if classes & {"msds-groupmanagedserviceaccount", "msds-managedserviceaccount",
                  "msds-delegatedmanagedserviceaccount"}:
        return MANAGED_SERVICE
    if "computer" in classes:
        return COMPUTER
    if "user" in classes or "person" in classes:
        return USER
    if sam_type == _MACHINE_ACCOUNT_TYPE or (uac is not None and uac & _MACHINE_UAC):
        return COMPUTER
    if sam_type == _TRUST_ACCOUNT_TYPE or (uac is not None and uac & 0x800):
        return TRUST_ACCOUNT
    if uac is not None and uac & 0x200:
        return USER
    return UNKNOWN if sam is None or not sam.endswith("$") else COMPUTER


def _trust(dn: str, attrs: dict, place: str, problems: list[str]) -> Trust:
    name = _text(attrs["trustpartner"][0]) if attrs.get("trustpartner") else dn.split(",", 1)[0].split("=")[-1]
    return Trust(
        name=name.lower(),
        flat_name=_text(attrs["flatname"][0]) if attrs.get("flatname") else None,
        trust_type=_int(attrs, "trusttype", problems),
        direction=_int(attrs, "trustdirection", problems),
        attributes=_int(attrs, "trustattributes", problems),
        source=place,
    )


def _int(attrs: dict, key: str, problems: list[str]) -> int | None:
    values = attrs.get(key)
    if not values:
        return None
    v = values[0]
    if isinstance(v, int):
        return v & 0xFFFFFFFF if v < 0 and key != "lockouttime" else v
    try:
        n = int(_text(v).strip(), 0) if _text(v).strip().lower().startswith("0x") else int(_text(v).strip())
    except ValueError:
        problems.append(f"{key} is not a number: {_text(v)[:40]!r}")
        return None
    return n & 0xFFFFFFFF if n < 0 and key != "lockouttime" else n


def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)
