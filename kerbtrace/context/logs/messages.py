"""What a ConfigMgr log line says about a registration: MP_RegistrationManager.log on the MP,
ClientIDManagerStartup.log, CcmMessaging.log and ClientLocation.log on the client.

Line shapes follow the documented real lines (ConfigMgr protocol notes §6.2); the lab's MP simulator adds
lines real MPs are not documented to write (``MP Reg: Client 'DOM\\HOST$' authenticated with kerberos;
approved …``, ``MP Reg: SMSID … is already registered to another machine …``), read here as well and named
as the simulator's in the evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kerbtrace.codes import CCM_APPROVAL_STATUS, hresult
from kerbtrace.constants import APPROVED_STATUSES, PENDING_STATUS, Verdict

_GUID = re.compile(r"GUID:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_HRESULT = re.compile(r"\b0x(8[0-9A-Fa-f]{7})\b")

# MP_RegistrationManager.log
_MP_PROCESSING = re.compile(r"Processing Registration request from Client '([^']+)'", re.I)
_MP_ISSUED_TO = re.compile(r"Certificate \[Thumbprint [0-9A-Fa-f…. ]*\] issued to '([^']+)'", re.I)
_MP_LAB_APPROVAL = re.compile(r"MP Reg: Client '([^']+)' authenticated with (\w+); (approved|not approved)", re.I)
_MP_DUPLICATE = re.compile(r"SMSID (GUID:[0-9A-Fa-f-]+) is already registered to another machine", re.I)

# ClientIDManagerStartup.log
_CL_REGISTERED = re.compile(r"Client is registered\. Server assigned ClientID is (GUID:[0-9A-Fa-f-]+)"
                            r"(?:\.+ Approval status (-?\d+))?", re.I)
_CL_REJECTED = re.compile(r"Server rejected registration\s*(\d+)?", re.I)
_CL_STARTING = re.compile(r"Starting registration, attempt (\d+)", re.I)
_CL_SENDING = re.compile(r"Sending registration request for (GUID:[0-9A-Fa-f-]+)", re.I)

# CcmMessaging.log
_CM_POST_FAILED = re.compile(r"Post to (\S+) failed with (0x[0-9A-Fa-f]{8})", re.I)
_CM_HTTP_STATUS = re.compile(r"StatusCode=(\d{3})(?: StatusText=(.*))?", re.I)

# ClientLocation.log / LocationServices.log: line shapes not in the protocol notes (UNCONFIRMED), matched loosely
_LOC_ASSIGNED = re.compile(r"Assigned (?:MP|Management Point) (?:changed from <[^>]*> to |is )<?([\w.-]+)>?", re.I)



@dataclass(slots=True)
class Fact:
    """One statement a log line makes. `outcome` is approved / not_approved / None (no verdict in it);
    `failure` marks lines that state an error."""

    what: str  # plain words for the report
    outcome: str | None = None
    failure: bool = False
    names: dict[str, str] = field(default_factory=dict)  # fqdn / netbios / account / smsid / mech / mp / url
    simulator: bool = False  # a line only the lab's MP simulator writes


def _client_name(value: str, names: dict[str, str]) -> None:
    if value.upper().startswith("GUID:"):
        names["smsid"] = value.upper()
    elif "." in value:
        names["fqdn"] = value.lower()
        names["netbios"] = value.split(".")[0].upper()
    else:
        names["netbios"] = value.upper()


def _account_netbios(account: str) -> str:
    """`CORP\\PC01$` or `PC01$@CORP.LAB` -> `PC01`."""
    name = account.rsplit("\\", 1)[-1].split("@", 1)[0]
    return name.rstrip("$").upper()


def mp_fact(text: str) -> Fact | None:
    """What an MP_RegistrationManager.log line says, or None for a line with nothing to say."""
    names: dict[str, str] = {}
    if m := _MP_PROCESSING.search(text):
        _client_name(m.group(1), names)
        return Fact(f"MP received a registration request from {m.group(1)}", names=names)
    if m := _MP_LAB_APPROVAL.search(text):
        user, mech, word = m.groups()
        names.update(account=user, netbios=_account_netbios(user), mech=mech.lower())
        approved = word.lower() == "approved"
        return Fact(f"MP: {user} authenticated with {mech}; {'approved' if approved else 'not approved'}",
                    Verdict.APPROVED if approved else Verdict.NOT_APPROVED, names=names, simulator=True)
    if m := _MP_DUPLICATE.search(text):
        names["smsid"] = m.group(1).upper()
        return Fact(f"MP: {m.group(1)} is already registered to another machine (conflicting record, not "
                    "approved until an administrator resolves it)", Verdict.NOT_APPROVED, True, names, simulator=True)
    if m := _MP_ISSUED_TO.search(text):
        _client_name(m.group(1), names)
        if "has expired" in text.lower():
            return Fact(f"MP: the client's certificate issued to {m.group(1)} has expired", failure=True,
                        names=names)
        return Fact(f"MP checked the certificate issued to {m.group(1)}", names=names)
    low = text.lower()
    if "registration request body is invalid" in low:
        return Fact("MP: the registration request body is invalid", failure=True)
    if "registration failed" in low:
        return Fact("MP: registration failed", Verdict.NOT_APPROVED, True)
    if "not trusted per configmgr ctl" in low or "root certificate not trusted" in low:
        return Fact("MP: the client certificate chain ends in a root not trusted by the site", failure=True)
    return None


def client_fact(text: str) -> Fact | None:
    """What a ClientIDManagerStartup / CcmMessaging / ClientLocation line says, or None."""
    names: dict[str, str] = {}
    if m := _CL_REGISTERED.search(text):
        names["smsid"] = m.group(1).upper()
        if m.group(2) is None:
            return Fact(f"client is registered as {m.group(1)}", names=names)
        status = int(m.group(2))
        word = CCM_APPROVAL_STATUS.get(status, "not a documented value")
        outcome = (Verdict.APPROVED if status in APPROVED_STATUSES
                   else Verdict.NOT_APPROVED if status == PENDING_STATUS else None)
        return Fact(f"client is registered as {m.group(1)}, approval status {status} ({word})", outcome,
                    names=names)
    if m := _CL_REJECTED.search(text):
        return Fact(f"the MP rejected the registration (status {m.group(1) or '?'})", "not_approved", True)
    low = text.lower()
    if "client registration is pending" in low:
        smsid = _GUID.search(text)
        if smsid:
            names["smsid"] = smsid.group(0).upper()
        return Fact("client registration is pending (not approved yet)", Verdict.NOT_APPROVED, names=names)
    if "already registered" in low or "client is registered" in low:
        return Fact("client is registered")
    if m := _CL_STARTING.search(text):
        return Fact(f"client started registration attempt {m.group(1)}")
    if m := _CL_SENDING.search(text):
        names["smsid"] = m.group(1).upper()
        return Fact(f"client sent a registration request for {m.group(1)}", names=names)
    if ("client is not registered" in low or "not yet registered" in low or "hasn't been registered" in low):
        return Fact("client is not registered yet")
    if m := _CM_POST_FAILED.search(text):
        info = hresult(int(m.group(2), 16))
        names["url"] = m.group(1)
        return Fact(f"post to {m.group(1)} failed with {info.label()}: {info.meaning}", failure=True, names=names)
    if m := _CM_HTTP_STATUS.search(text):
        status = int(m.group(1))
        if status >= 400:
            return Fact(f"the MP answered HTTP {status} {(m.group(2) or '').strip()}".rstrip(), failure=True)
        return None
    if m := _LOC_ASSIGNED.search(text):
        names["mp"] = m.group(1).lower()
        return Fact(f"assigned MP is {m.group(1)}", names=names)
    if "error" in low and (m := _HRESULT.search(text)):
        info = hresult(int(m.group(1), 16))
        return Fact(f"error {info.label()}: {info.meaning}", failure=True)
    return None


def guids(text: str) -> list[str]:
    return [g.upper() for g in _GUID.findall(text)]


def account_netbios(account: str) -> str:
    return _account_netbios(account)
