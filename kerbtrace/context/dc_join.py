"""Join a DC's Security events to the clients of an analysis, and say what the DC saw for each.

A client's events are those of its identities (the account the capture showed, `HOST$` from its host
name) and of its address with no other identity, inside its time window moved by the DC log's clock
offset. The offset is estimated from the capture's own KDC replies paired with the events the DC logged
for them (same client address, same result); a capture without KDC traffic (taken on the MP) leaves it
unknown, and the window then widens by `UNKNOWN_OFFSET_SLACK` instead of assuming the clocks agree.

The summary (`DcStatement`s) names causes with the checks' codes: `spn_missing` (4769 0x7 for the
MP's SPN; `no_trust_path` when the refusing DC's realm is unrelated to the MP's), `account_locked`
(pre-authentication failures, then 0x12), `account_revoked` (0x12 and other account refusals),
`preauth_failed`, `etype_unsupported`, `clock_skew`, `trust_broken`, `spn_wrong_account` (the 4769 paired
with the capture's TGS reply for the MP's SPN names another account), and the confirmations
`mp_ticket_issued` and `tgt_issued`.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kerbtrace.checks.base import Evidence
from kerbtrace.checks.common import realm_related
from kerbtrace.codes import krb_error
from kerbtrace.constants import KDC_REPLIES, Cause, DcEventId, DcSaw, KrbError, KrbMsg
from kerbtrace.context.dc_events import DcEvent, account_user
from kerbtrace.exchanges.client import ClientExchange

BEFORE = 600.0  # seconds of DC events kept before a client's first frame (its TGT, lockout history)
AFTER = 60.0
UNKNOWN_OFFSET_SLACK = 300.0  # widening of the window when the DC clock offset cannot be estimated
MAX_OFFSET = 86400.0  # pairs further apart than this are not the same exchange
MAX_PAIRS = 200_000
PAIR_TOLERANCE = 2.0  # pairs agreeing within this many seconds support the same offset
MAX_EVIDENCE = 12  # events listed per client (the newest failures first)

BAD_PASSWORD = KrbError.KDC_ERR_PREAUTH_FAILED
REVOKED = KrbError.KDC_ERR_CLIENT_REVOKED
#: KDC answers a DC logs (4768/4769/4771), and the errors it does not (pre-auth asked, switch to TCP).
_KDC_ANSWERS = KDC_REPLIES | {KrbMsg.KRB_ERROR}
_NOT_LOGGED = (KrbError.KDC_ERR_PREAUTH_REQUIRED, KrbError.KRB_ERR_RESPONSE_TOO_BIG)
#: The events a DC logs for a KDC answer (paired with the capture's replies to estimate its clock).
_KDC_ANSWER_EVENTS = (DcEventId.TGT, DcEventId.SERVICE_TICKET, DcEventId.PREAUTH_FAILED)
_EVENTS_FOR_REPLY = {KrbMsg.AS_REP: (DcEventId.TGT,), KrbMsg.TGS_REP: (DcEventId.SERVICE_TICKET,)}
#: The events that can refuse the client's own account.
_ACCOUNT_EVENTS = (DcEventId.TGT, DcEventId.PREAUTH_FAILED, DcEventId.LOGON_FAILED)
NT_BAD_PASSWORD = (0xC000006A,)  # STATUS_WRONG_PASSWORD (4625 SubStatus)
NT_LOCKED = (0xC0000234,)  # STATUS_ACCOUNT_LOCKED_OUT
#: A refused request for the MP's SPN or the client's TGT, by result code, as the checks name the cause.
CAUSE_BY_CODE = {KrbError.KDC_ERR_S_PRINCIPAL_UNKNOWN: Cause.SPN_MISSING,
                 KrbError.KDC_ERR_ETYPE_NOSUPP: Cause.ETYPE_UNSUPPORTED,
                 KrbError.KRB_AP_ERR_SKEW: Cause.CLOCK_SKEW, KrbError.KRB_AP_ERR_BAD_INTEGRITY: Cause.TRUST_BROKEN,
                 REVOKED: Cause.ACCOUNT_REVOKED, KrbError.KDC_ERR_C_PRINCIPAL_UNKNOWN: Cause.ACCOUNT_REVOKED,
                 KrbError.KDC_ERR_NAME_EXP: Cause.ACCOUNT_REVOKED, KrbError.KDC_ERR_KEY_EXPIRED: Cause.ACCOUNT_REVOKED,
                 KrbError.KDC_ERR_POLICY: Cause.ACCOUNT_REVOKED, BAD_PASSWORD: Cause.PREAUTH_FAILED}
INFO_CAUSES = (DcSaw.MP_TICKET_ISSUED, DcSaw.TGT_ISSUED)


@dataclass(slots=True)
class DcStatement:
    """One thing the DC's log says about a client, with the events that say it."""

    cause: str
    text: str
    codes: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def failure(self) -> bool:
        return self.cause not in INFO_CAUSES


@dataclass(slots=True)
class ClientDcView:
    """What the DC's log shows for one client."""

    client: ClientExchange
    events: list[DcEvent]
    evidence: list[Evidence]
    statements: list[DcStatement]
    offset: float | None  # DC clock minus capture clock, seconds; None when it could not be estimated

    @property
    def cause(self) -> str | None:
        """The DC's most specific failure for this client, if it logged one."""
        return next((s.cause for s in self.statements if s.failure), None)

    def says(self, cause: str) -> DcStatement | None:
        return next((s for s in self.statements if s.cause == cause), None)


@dataclass(slots=True)
class LockoutSource:
    """A principal whose password or key failed, and where the failures came from."""

    principal: str
    failures: int
    addresses: list[tuple[str, int]]  # (address, count), most first; "-" when the event had none
    locked: bool  # the DC then refused the account (0x12 / STATUS_ACCOUNT_LOCKED_OUT)
    first: float
    last: float
    evidence: list[Evidence]


# ---- clock offset ------------------------------------------------------------------------------------------


def estimate_offset(events: Sequence[DcEvent], kerberos: Iterable) -> tuple[float | None, int]:
    """DC clock minus capture clock, from KDC replies in the capture (`KerberosRecord`s) paired with the
    events the DC logged for them; returns (offset, pairs agreeing) or (None, 0) without pairs."""
    by_key: dict[tuple[str, int], list[DcEvent]] = defaultdict(list)
    for event in events:
        if event.address and event.status is not None and event.event_id in _KDC_ANSWER_EVENTS:
            by_key[(event.address, event.status)].append(event)
    pairs: list[tuple[float, int]] = []  # (offset, index of the capture's reply)
    for index, record in enumerate(kerberos):
        if record.transport == "http" or record.msg_type not in _KDC_ANSWERS or record.error_code in _NOT_LOGGED:
            continue  # only a KDC's replies are logged by the DC (not the MP's KRB-ERROR in a 401)
        status = record.error_code or 0
        wanted = _EVENTS_FOR_REPLY.get(record.msg_type, _KDC_ANSWER_EVENTS)
        for event in by_key.get((record.dst, status), ()):
            if event.event_id in wanted and abs(event.time - record.time) <= MAX_OFFSET:
                pairs.append((event.time - record.time, index))
        if len(pairs) > MAX_PAIRS:
            break  # plenty to find the offset; a busy address must not make this quadratic
    if not pairs:
        return None, 0
    pairs.sort()
    best: tuple[int, int, int] = (0, 0, 0)  # (replies supporting it, start, end): the densest cluster of offsets
    start = 0
    inside: Counter[int] = Counter()  # replies in the sliding window, by index
    for end, (value, index) in enumerate(pairs):
        inside[index] += 1
        while value - pairs[start][0] > PAIR_TOLERANCE:
            gone = pairs[start][1]
            inside[gone] -= 1
            if not inside[gone]:
                del inside[gone]
            start += 1
        if len(inside) > best[0]:
            best = (len(inside), start, end)
    support, first, last = best
    return statistics.median(value for value, _ in pairs[first:last + 1]), support


# ---- matching ----------------------------------------------------------------------------------------------


def client_identities(client: ClientExchange) -> set[str]:
    """Lower-case account names the client's events may carry: its account, HOST$ from its names."""
    names = set()
    if client.account:
        names.add(account_user(client.account))
    for host in (client.hostname, (client.fqdn or "").split(".")[0]):
        if host:
            names.add(host.lower() + "$")
    return names


def keep_for_clients(clients: Sequence[ClientExchange]):
    """A `keep` for `load_dc_events`: successes of an address or identity no client has are not stored
    (failures always are: the fleet-wide lockout view needs them)."""
    addresses = {c.ip for c in clients}
    names = set().union(*(client_identities(c) for c in clients)) if clients else set()

    def keep(event: DcEvent) -> bool:
        return event.address in addresses or event.user in names

    return keep


def matches(client: ClientExchange, identities: set[str], event: DcEvent) -> bool:
    """The client's own event: one of its identities (a computer account from any address: that machine
    behind NAT, or a clone of it), or its address with no identity the event names."""
    user = event.user
    if user and user in identities:
        return user.endswith("$") or event.address in (None, client.ip)
    return event.address == client.ip and (not user or user == "-")


def mp_service_names(client: ClientExchange) -> set[str]:
    """How a 4769 names the MP: the SPN asked for (a failure), or the MP's account (an issued ticket)."""
    names = {n.lower() for n in (client.mp_name, client.mp_short_name) if n}
    return {f"http/{n}" for n in names} | {f"{n.split('.')[0]}$" for n in names}


def is_mp_request(client: ClientExchange, event: DcEvent) -> bool:
    if event.event_id not in (DcEventId.SERVICE_TICKET, DcEventId.TICKET_RENEWED) or not event.service:
        return False
    service = event.service.lower().split("@")[0]
    return service in mp_service_names(client) or service.split(":")[0] in mp_service_names(client)


def join_clients(clients: Sequence[ClientExchange], events: Sequence[DcEvent], kerberos: Iterable = ()
                 ) -> list[ClientDcView]:
    """Per client (same order), the DC events matched to it and what they say. Call once per capture file
    with that file's `Analysis.kerberos` records: each capture has its own clock."""
    kerberos = list(kerberos)
    offset, _ = estimate_offset(events, kerberos)
    slack = 0.0 if offset is not None else UNKNOWN_OFFSET_SLACK
    shift = offset or 0.0
    fleet = {account_user(s.principal): s for s in lockout_sources(events)}
    by_address: dict[str, list[DcEvent]] = defaultdict(list)
    by_user: dict[str, list[DcEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.time):
        if event.address:
            by_address[event.address].append(event)
        if event.user:
            by_user[event.user].append(event)
    views = []
    for client in clients:
        identities = client_identities(client)
        low = client.first_time + shift - BEFORE - slack
        high = (client.last_time or client.first_time) + shift + AFTER + slack
        candidates = {id(e): e for e in _between(by_address.get(client.ip, []), low, high)}
        for name in identities:
            candidates.update((id(e), e) for e in _between(by_user.get(name, []), low, high))
        own = sorted((e for e in candidates.values() if matches(client, identities, e)), key=lambda e: e.time)
        owners = spn_owners(client, own, kerberos, offset) if offset is not None else []
        statements = summarise(client, own, fleet, owners)
        failures = [e for e in own if e.failed]
        listed = (failures[-MAX_EVIDENCE:] + [e for e in own if not e.failed])[:MAX_EVIDENCE]
        listed.sort(key=lambda e: e.time)
        views.append(ClientDcView(client, own, [e.evidence() for e in listed], statements, offset))
    return views


def spn_owners(client: ClientExchange, events: Sequence[DcEvent], kerberos: Sequence, offset: float
               ) -> list[tuple[object, DcEvent]]:
    """The capture's TGS replies carrying a ticket for the MP's SPN, each with the 4769 the DC logged for
    it (same address, time within PAIR_TOLERANCE after the offset): its ServiceName is the account that
    holds the SPN, which neither the capture nor the DC's log alone can tell."""
    spns = {n for n in mp_service_names(client) if n.startswith("http/")}
    issued = [e for e in events if e.event_id == DcEventId.SERVICE_TICKET and not e.failed and e.address == client.ip]
    out = []
    for record in kerberos:
        if (record.transport == "http" or record.msg_type != KrbMsg.TGS_REP or record.dst != client.ip
                or (record.sname or "").lower().split(":")[0] not in spns):
            continue
        near = [e for e in issued if abs(e.time - (record.time + offset)) <= PAIR_TOLERANCE]
        if near:
            out.append((record, min(near, key=lambda e: abs(e.time - (record.time + offset)))))
    return out


def _between(events: list[DcEvent], low: float, high: float) -> list[DcEvent]:
    """The events (sorted by time) inside [low, high]."""
    return events[bisect_left(events, low, key=_time):bisect_right(events, high, key=_time)]


def _time(event: DcEvent) -> float:
    return event.time


# ---- what the DC says --------------------------------------------------------------------------------------


def summarise(client: ClientExchange, events: list[DcEvent], fleet: dict[str, LockoutSource],
              owners: Sequence[tuple[object, DcEvent]] = ()) -> list[DcStatement]:
    """Failures first (the most specific one first), then the confirmations."""
    out: list[DcStatement] = []
    mp_account = f"{client.mp_short_name}$".lower() if client.mp_short_name else None
    for record, event in list(owners)[-1:]:
        if mp_account and event.service and event.service.lower() != mp_account:
            out.append(DcStatement(
                Cause.SPN_WRONG_ACCOUNT,
                f"The DC {event.computer} issued the ticket for {record.sname} (frame {record.frame}) under the "
                f"account {event.service}, not the MP's computer account {mp_account.upper()}: the ticket is "
                f"encrypted with {event.service}'s key, which the MP cannot use unless its web application runs "
                "as that account (an NLB name served by a domain user).",
                [], [Evidence(record.frame, f"TGS-REP: ticket for {record.sname}"), event.evidence()]))
    mp = [e for e in events if is_mp_request(client, e)]
    for event in (e for e in reversed(mp) if e.failed):
        cause = CAUSE_BY_CODE.get(event.status or 0, "kdc_error")
        info = krb_error(event.status or 0)
        realm = (event.account or "").rpartition("@")[2]
        if cause == Cause.SPN_MISSING and realm and not realm_related(realm, client.mp_realm):
            cause = Cause.NO_TRUST_PATH
            text = (f"The DC {event.computer} of {realm} found no account holding {event.service} for "
                    f"{event.account}: it cannot route the request to the MP's domain {client.mp_realm} (an "
                    "external trust or none, or a forest trust that does not route that name suffix), or the SPN "
                    "is missing there too. The client could not get a Kerberos ticket for the MP.")
        elif cause == Cause.SPN_MISSING:
            text = (f"The DC {event.computer} found no single account holding {event.service} for "
                    f"{event.account or client.ip}: the SPN of the MP is missing (or registered twice), so the "
                    "client could not get a Kerberos ticket for the MP.")
        else:
            text = f"The DC {event.computer} refused the ticket for the MP: {info.meaning}"
        out.append(DcStatement(cause, text, [info.label()], [event.evidence()]))
        break
    out += _account_statements(client, events, fleet)
    issued = [e for e in mp if not e.failed]
    if issued and not any(s.cause == Cause.SPN_MISSING for s in out):
        event = issued[-1]
        out.append(DcStatement(
            DcSaw.MP_TICKET_ISSUED,
            f"The DC {event.computer} issued a service ticket for the MP (account {event.service}) to "
            f"{event.account or client.ip}: the KDC side worked, a failure lies between the client and the MP.",
            [], [event.evidence()]))
    tgts = [e for e in events if e.event_id == DcEventId.TGT and not e.failed]
    if tgts:
        out.append(DcStatement(DcSaw.TGT_ISSUED, f"The DC {tgts[-1].computer} issued a TGT to {tgts[-1].account}.", [],
                               [tgts[-1].evidence()]))
    return out


def _account_statements(client: ClientExchange, events: list[DcEvent], fleet: dict[str, LockoutSource]
                        ) -> list[DcStatement]:
    """Refusals of the client's own account: lockout, revoked, bad password, other AS failures."""
    account = [e for e in events if e.event_id in _ACCOUNT_EVENTS and e.failed]
    if not account:
        return []
    bad = [e for e in account if _bad_password(e)]
    refused = [e for e in account if _locked(e) or (e.status == REVOKED)]
    out = []
    if refused:
        last = refused[-1]
        codes = last.code_labels()
        source = fleet.get(_principal(last))
        where = ""
        if source is not None:
            where = " Bad-password sources for this account: " + ", ".join(
                f"{addr} ({n})" for addr, n in source.addresses[:5]) + "."
        if bad and bad[0].time <= last.time:
            out.append(DcStatement(
                DcSaw.ACCOUNT_LOCKED,
                f"The DC {last.computer} logged {len(bad)} failed pre-authentication(s) for {last.account} "
                f"and then refused the account ({', '.join(codes)}): it is locked out.{where}",
                codes + [krb_error(BAD_PASSWORD).label()], [e.evidence() for e in (bad[-3:] + [last])]))
        else:
            out.append(DcStatement(
                Cause.ACCOUNT_REVOKED,
                f"The DC {last.computer} refused the account {last.account} ({', '.join(codes)}): disabled, "
                f"expired or locked out (the event does not say which; look for 4740 or at the account).{where}",
                codes, [last.evidence()]))
    elif bad:
        out.append(DcStatement(
            Cause.PREAUTH_FAILED,
            f"The DC {bad[-1].computer} logged {len(bad)} failed pre-authentication(s) for {bad[-1].account}: "
            "the key the client used does not match the account's password (a broken secure channel).",
            [krb_error(BAD_PASSWORD).label()], [e.evidence() for e in bad[-3:]]))
    others = [e for e in account if e not in bad and e not in refused and e.event_id != DcEventId.LOGON_FAILED]
    if others and not out:
        event = others[-1]
        cause = CAUSE_BY_CODE.get(event.status or 0, "kdc_error")
        out.append(DcStatement(cause, f"The DC {event.computer} refused the TGT request of {event.account}: "
                                      f"{krb_error(event.status or 0).meaning}", event.code_labels(),
                               [event.evidence()]))
    return out


def _bad_password(event: DcEvent) -> bool:
    if event.event_id == DcEventId.LOGON_FAILED:
        return event.nt_substatus in NT_BAD_PASSWORD
    return event.status == BAD_PASSWORD


def _locked(event: DcEvent) -> bool:
    return event.event_id == DcEventId.LOGON_FAILED and (event.nt_status in NT_LOCKED
                                                         or event.nt_substatus in NT_LOCKED)


def _principal(event: DcEvent) -> str:
    return event.user or "-"


# ---- the fleet -----------------------------------------------------------------------------------------------


def lockout_sources(events: Iterable[DcEvent]) -> list[LockoutSource]:
    """Per principal, the bad-password failures (4771 0x18, 4768 0x18, 4625 wrong password) and the
    addresses they came from, most failures first: where a stale password (an old connection account, a
    cloned machine) keeps locking an account."""
    failures: dict[str, list[DcEvent]] = defaultdict(list)
    refusals: dict[str, list[DcEvent]] = defaultdict(list)
    for event in events:
        if _bad_password(event):
            failures[_principal(event)].append(event)
        elif event.status == REVOKED or _locked(event):
            refusals[_principal(event)].append(event)
    out = []
    for principal, bad in failures.items():
        counts = Counter(e.address or "-" for e in bad)
        locked = any(r.time >= bad[0].time for r in refusals.get(principal, ()))
        shown = bad[-3:] + [r for r in refusals.get(principal, ())][-1:]
        name = next((e.account for e in bad if e.account), principal)
        out.append(LockoutSource(name, len(bad), counts.most_common(), locked, bad[0].time, bad[-1].time,
                                 [e.evidence() for e in shown]))
    out.sort(key=lambda s: (-s.failures, s.principal.lower()))
    return out

