"""Joins the pairing modules' records into one `ClientExchange` per ConfigMgr client.

Like Zeek's per-connection records: records fill per-client state, and a client is handed on when its
exchange completes or goes idle (live capture) or at the end of the file. A client row needs registration
evidence: a registration request to an MP, TLS to a known MP (HTTPS), a Kerberos exchange for a known MP's
`HTTP/` SPN, or a failed lookup of an MP name with nothing after it. A successful lookup, an empty AAAA
answer beside a working A record, and the traffic of clients already handed on add to a timeline but never
create one.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from kerbtrace.codes import msg_type_name
from kerbtrace.constants import DNS_NAME_TYPES, DnsRcode, DnsType, KrbMsg
from kerbtrace.events import CaptureGapEvent, DnsEvent, Event, HttpEvent, KdcFailureEvent, KerberosEvent, TlsEvent
from kerbtrace.exchanges.client import AuthLeg, ClientExchange, DnsLookup, KdcExchange
from kerbtrace.exchanges.describe import describe_auth, describe_dns, describe_kdc_reply, describe_kdc_request
from kerbtrace.exchanges.dns_pairing import DnsPairing, RawLookup
from kerbtrace.exchanges.history import PER_ADDRESS, AddressHistory
from kerbtrace.exchanges.http_legs import HttpLegs, host_name
from kerbtrace.exchanges.identity import hostname_from_account, learn_identity
from kerbtrace.exchanges.kdc_pairing import KdcPairing
from kerbtrace.exchanges.mp_names import LOCATOR_PREFIXES, MP_LOCATOR_PREFIX, MpNames
from kerbtrace.exchanges.tls_legs import HTTPS_PORT, TlsLeg
from kerbtrace.exchanges.view import InputLegs, client_view
from kerbtrace.spill import SpillList, SpillStore

MAX_PENDING = 4096  # gaps and answer owners waiting for their registration
#: Clients found at the end of the capture that go to disk together (`_late_clients`).
LATE_BATCH = 256
MAX_HANDED_OUT = 65536  # addresses already reported, remembered so late traffic does not make a new row
HISTORY_WINDOW = 900.0  # seconds of KDC/DNS history pulled into a new client's timeline
#: Seconds of capture time after which a client whose exchange is still open but quiet waits on disk (until
#: its next packet, its idle timeout or the end of the capture): a failed registration is never answered and
#: waits the whole idle timeout, so these clients grow with the clients per idle timeout, not with the work.
QUIET_AFTER = 30.0


class _Quiet:
    """Stands in the client table for a client whose state is on disk: what `completed` needs of it."""

    __slots__ = ("last_time", "answered")

    def __init__(self, last_time: float, answered: bool) -> None:
        self.last_time = last_time
        self.answered = answered


class _ClientTable(dict):
    """Address -> ClientExchange, as a dict; a quiet client's entry holds a `_Quiet` (so the table keeps its
    order: clients are handed out in the order they came) and its state waits in `store`. Reading the entry
    (`get`, `[]`, `pop`) brings the state back first, and `on_back` hears of it (the client is watched again)."""

    def __init__(self, on_back: Callable[[ClientExchange], object] | None = None) -> None:
        super().__init__()
        self.store = SpillStore()
        self.on_back = on_back

    def get(self, ip: str, default=None):  # type: ignore[override]
        value: Any = dict.get(self, ip, default)
        return self._back(ip) if type(value) is _Quiet else value

    def __getitem__(self, ip: str) -> ClientExchange:
        value: Any = dict.__getitem__(self, ip)
        return self._back(ip) if type(value) is _Quiet else value

    def pop(self, ip: str, *default):  # type: ignore[override]
        value: Any = dict.pop(self, ip, *default)
        return self.store.take(ip) if type(value) is _Quiet else value

    def rest(self, ip: str, client: ClientExchange, answered: bool, keep: dict[int, object] | None = None) -> None:
        """`client`'s state to disk, its entry kept; the objects of `keep` stay in memory (see `SpillStore`)."""
        self.store.put(ip, client, keep)
        dict.__setitem__(self, ip, _Quiet(client.last_time, answered))

    def _back(self, ip: str) -> ClientExchange:
        client = self.store.take(ip)
        dict.__setitem__(self, ip, client)
        if self.on_back is not None:
            self.on_back(client)
        return client


class Correlator:
    """Consumes pipeline events; yields finished `ClientExchange` records."""

    def __init__(self, idle_timeout: float = 600.0, mp_names: tuple[str, ...] = ()) -> None:
        self.idle_timeout = idle_timeout
        self.mp = MpNames(mp_names)
        self.legs = InputLegs()
        self.clients = _ClientTable(self._watch)
        #: Quiet clients with an open exchange wait on disk past this many seconds (None: never).
        self.quiet_after: float | None = QUIET_AFTER
        self._kdc = KdcPairing()
        self._dns = DnsPairing(self.mp)
        self._http = HttpLegs()
        self._answer_epoch = 0  # bumped when a leg changes whose client is not known (`_answered`)
        #: When to look at each client again: (capture time, arrival, address), never later than it can be over
        self._due: list[tuple[float, int, str]] = []
        self._order: dict[str, int] = {}  # address -> arrival number of the client in `clients`
        self._arrivals = itertools.count()
        self._history = AddressHistory(self._kdc.pending_ids)
        self._owners: OrderedDict[int, ClientExchange] = OrderedDict()  # id(leg) -> client, until answered
        self._stream_gaps: OrderedDict[int, tuple[int, str]] = OrderedDict()
        self._retired: list[ClientExchange] = []  # replaced by another computer on the same address
        self._handed_out: OrderedDict[str, None] = OrderedDict()
        self.max_pending = MAX_PENDING
        self.max_handed_out = MAX_HANDED_OUT
        self.evicted: Counter[str] = Counter()  # entries dropped from the tables above, by table
        self.now = 0.0

    def limit(self, addresses: int) -> None:
        """Keep state for at most `addresses` addresses (or waiting requests) per table, dropping the least
        recently used: a live run on a busy MP lasts days, a capture file ends."""
        self._history.limit(addresses)
        self.max_pending = self.max_handed_out = addresses
        for table in (self._kdc, self._dns, self._http):
            table.max_pending = addresses

    def evictions(self) -> dict[str, int]:
        """Entries dropped so far by the size limits, by table (what a long live run forgot)."""
        out = dict(self.evicted)
        out["address_history"] = sum(t.evicted for t in self._history.tables)
        out["kdc_pending"], out["dns_pending"], out["http_pending"] = (self._kdc.evicted, self._dns.evicted,
                                                                       self._http.evicted)
        return {k: v for k, v in out.items() if v}

    # ------------------------------------------------------------------------------------
    def feed(self, event: Event) -> None:
        self.now = max(self.now, event.time)
        if isinstance(event, KerberosEvent):
            if event.transport != "http":  # inside HTTP it is part of an HttpEvent
                self._kerberos(event)
        elif isinstance(event, HttpEvent):
            self._http_event(event)
        elif isinstance(event, DnsEvent):
            self._dns_event(event)
        elif isinstance(event, TlsEvent):
            self._tls(TlsLeg.from_event(event))
        elif isinstance(event, CaptureGapEvent):
            self._gap(event)
        elif isinstance(event, KdcFailureEvent):
            self.legs.kdc += 1
            client = self.clients.get(event.client_ip)
            if client is None:
                self._history.add_kdc(event.client_ip, event)
            else:
                _attach_failure(client, event)

    def completed(self, settle: float = 30.0) -> Iterator[ClientExchange]:
        """Clients whose exchange is over, to hand to the checks while packets keep coming (live capture).

        Over means: the MP has sent its registration reply (or a final 200) and the client has been quiet
        for `settle` seconds of capture time, or the client has been idle longer than the idle timeout
        (a rejected client may retry, so a 401 alone does not close the exchange).
        """
        # Only the clients whose due time has passed are looked at (`_due`, a heap), not every client in the
        # table: a failed registration waits the whole idle timeout, so a long capture holds tens of
        # thousands of waiting clients, and a scan at every tick made the run grow faster than the capture.
        done, resting = [], []
        idle, now, due, order, rest_after = self.idle_timeout, self.now, self._due, self._order, self.quiet_after
        # A client is due once per change of its legs (`_watch`), so several of its entries may fall due
        # together: it is looked at once, its other entries dropped (each would push one more entry and, once
        # quiet, pickle the client to disk once more).
        looked: set[str] = set()
        while due and due[0][0] < now:
            _, seq, ip = heapq.heappop(due)
            if order.get(ip) != seq or ip in looked:
                continue  # that client was handed out, or another took its address since, or it was looked at
            looked.add(ip)
            client: Any = dict.__getitem__(self.clients, ip)  # as stored: a quiet client stays on disk
            last = client.last_time
            quiet = now - last
            resting_now = type(client) is _Quiet
            if quiet > idle or (quiet > settle and (client.answered if resting_now else self._answered(client))):
                del order[ip]  # (its other entries are stale from now on)
                done.append((seq, ip))
                continue
            if rest_after is not None and quiet > rest_after and not resting_now:
                resting.append((ip, client, self._answered(client)))
            # the earliest it can be over (settle after its last packet, if answered by then; else idle) or rest
            steps = (settle, idle) if resting_now or rest_after is None else (settle, idle, rest_after)
            heapq.heappush(due, (last + min(t for t in steps if t >= quiet), seq, ip))
        for _, ip in sorted(done):  # in the order the clients came, as a scan of the table gives them
            yield self._finalise(self.clients.pop(ip))
        while self._retired:
            yield self._finalise(self._retired.pop())
        self._rest(resting)

    def _rest(self, quiet: list[tuple[str, ClientExchange, bool]]) -> None:
        """Quiet clients to disk. The requests a pairing table still holds stay in memory with it (a reply to come
        completes the very object the client lists); a client that `_owners` holds for an answer to come stays."""
        if not quiet:
            return
        pending = self._kdc.pending_ids() | self._http.pending_ids()
        owners = self._owners
        table = self.clients
        for ip, client, answered in quiet:
            if any(id(x) in owners for x in client.legs):
                heapq.heappush(self._due, (self.now, self._order[ip], ip))  # tried again at the next tick
                continue
            keep = {id(x): x for x in (*client.kdc, *client.legs) if id(x) in pending}
            table.rest(ip, client, answered, keep)  # type: ignore[attr-defined]

    def _watch(self, client: ClientExchange) -> None:
        """Look at `client` again at the next tick: it is new, or its legs changed (it may be over earlier)."""
        seq = self._order.get(client.ip)
        if seq is not None:
            heapq.heappush(self._due, (client.last_time, seq, client.ip))

    def _put(self, ip: str, client: ClientExchange) -> None:
        """A new client in the table, watched from now on."""
        self.clients[ip] = client
        self._order[ip] = next(self._arrivals)
        self._watch(client)

    def _pop(self, ip: str) -> ClientExchange:
        del self._order[ip]
        return self.clients.pop(ip)

    def _answered(self, client: ClientExchange) -> bool:
        """The MP has sent the client's registration reply or a final 200. Worked out once per change of the
        client's legs, not at every tick: a failed registration waits the whole idle timeout, so on a long
        capture the tick meets tens of thousands of waiting clients, each with unchanged legs."""
        state = client.answer_state
        if state is not None and state[0] == self._answer_epoch:
            return state[1]
        final = client.final_leg
        answered = final is not None and (final.reply is not None or final.status == 200)
        client.answer_state = (self._answer_epoch, answered)
        return answered

    def finish(self, each: Callable[[ClientExchange], object] | None = None) -> SpillList[ClientExchange]:
        """End of input: every client, plus the addresses whose evidence only the whole capture shows
        (an MP name learned late, a failed lookup with nothing after it)."""
        for lookup in self._dns.unanswered():
            self._lookup(lookup)
        self._late_clients()
        # In report order; past a threshold on disk (kerbtrace.spill): a capture may end with many open exchanges.
        out: SpillList[ClientExchange] = SpillList(key=_client_order)
        for client in itertools.chain(self._retired, (self.clients.pop(ip) for ip in list(self.clients))):
            client = self._finalise(client)
            if each is not None:
                each(client)  # while in memory (the list may be on disk: every read unpickles the clients)
            out.append(client)
        self.clients, self._retired = _ClientTable(self._watch), []
        self._due, self._order = [], {}
        return out

    def unknown_spn_hosts(self) -> dict[str, int]:
        """Hosts clients asked `HTTP/` tickets for that are not known as MPs (WinRM, other web servers)."""
        return {h: n for h, n in self.mp.spn_hosts.items() if not self.mp.is_mp_name(h)}

    # --- Kerberos -----------------------------------------------------------------------
    def _kerberos(self, ev: KerberosEvent) -> None:
        self.legs.kdc += 1
        exchange = self._kdc.feed(ev)
        if exchange is None:
            return
        new = ev is exchange.request or exchange.request is None
        client = self.clients.get(exchange.client_ip)
        if client is None and new:
            client = self._client_for_ticket(exchange)
        if client is None:
            if new:
                self._history.add_kdc(exchange.client_ip, exchange)
            return
        if new:
            client.kdc.append(exchange)
        _timeline_kdc(client, exchange, ev)
        learn_identity(client, exchange)

    def _client_for_ticket(self, exchange: KdcExchange) -> ClientExchange | None:
        """A TGS-REQ for a known MP's HTTP SPN is registration evidence; for another host it is noted."""
        req = exchange.req
        if req is None or req.msg_type != KrbMsg.TGS_REQ:
            return None
        host = self.mp.spn_host(req.sname)
        if host is None:
            return None
        if not self.mp.is_mp_name(host) and not self._tls_before_ticket(exchange.client_ip, host):
            self.mp.note_spn(host)
            return None
        if exchange.client_ip in self._handed_out:
            return None
        client = self._client(exchange.client_ip, exchange.request.time)  # type: ignore[union-attr]
        self._set_mp(client, self.mp.canonical(host))
        return client

    # --- HTTP ---------------------------------------------------------------------------
    def _http_event(self, ev: HttpEvent) -> None:
        if ev.msg.is_request:
            leg = self._http.request(ev)
            if leg is not None:
                self.legs.mp_http += 1
                self._registration(ev, leg)
            elif ev.client_ip in self.clients and ev.server_ip in self.mp.addresses:
                # policy, location, inventory of a client: part of its timeline, never a client of its own
                self.clients[ev.client_ip].add(ev.frame, ev.time, ev.client_ip, ev.server_ip,
                                               f"{ev.msg.method} {ev.msg.uri}", "not a registration")
            return
        leg = self._http.response(ev)
        client = self._owners.pop(id(leg), None) if leg is not None else None
        if leg is None or client is None:
            if leg is not None:  # a leg whose owner was forgotten changed: every client works it out again
                self._answer_epoch += 1
                owner = self.clients.get(leg.client_ip) if leg.client_ip else None
                if owner is not None:
                    self._watch(owner)
            return
        client.answer_state = None
        self._watch(client)
        if leg.reply is not None and leg.reply.smsid:
            client.assigned_smsid = leg.reply.smsid
        detail = describe_auth(ev.auth[0] if ev.auth else None, request=False)
        if leg.reply is not None:
            detail += f"; registration reply Status={leg.reply.status} ApprovalStatus={leg.reply.approval_status}"
            if leg.reply.smsid:
                detail += f" SMSID={leg.reply.smsid}"
        client.add(ev.frame, ev.time, ev.server_ip, ev.client_ip, f"HTTP {ev.msg.status} {ev.msg.reason or ''}"
                   .strip(), detail.strip("; "))

    def _registration(self, ev: HttpEvent, leg: AuthLeg) -> None:
        name = host_name(leg.host)
        if name:
            self.mp.add(name, "host_header")  # before the client's history is read: its lookups of it count
        self.mp.add_address(ev.server_ip, name)
        ccm = ev.ccm if ev.ccm is not None and ev.ccm.kind == "registration_request" else None
        netbios = (ccm.netbios_name or ccm.source_host) if ccm is not None else None
        current = self.clients.get(ev.client_ip)
        if current is not None and netbios and current.hostname and current.hostname.upper() != netbios.upper():
            # Another computer behind the same address (NAT, a reused DHCP lease): an exchange of its own.
            self._retired.append(self._pop(ev.client_ip))
        client = self._client(ev.client_ip, ev.time)
        if ccm is not None:
            client.hostname = netbios or client.hostname
            client.fqdn = ccm.fq_name or client.fqdn
            smsid = ccm.smsid or ccm.source_id  # some versions carry the GUID only in the header's SourceID
            if smsid:
                client.smsid = smsid
                client.smsid_frame = ev.frame
        client.mp_ip = ev.server_ip
        client.mp_name = name or client.mp_name
        client.legs.append(leg)
        client.answer_state = None
        self._watch(client)
        gap = self._stream_gaps.pop(ev.stream, None)
        if gap is not None:
            client.gaps.append(gap)
        self._owners[id(leg)] = client
        while len(self._owners) > self.max_pending:
            self._owners.popitem(last=False)
            self.evicted["pending"] += 1
        client.add(ev.frame, ev.time, ev.client_ip, ev.server_ip, f"{leg.method} {leg.uri}",
                   describe_auth(leg.token, request=True))

    def _gap(self, event: CaptureGapEvent) -> None:
        what = f"{event.missing} bytes" if event.missing else "the start"
        gap = (event.frame, f"{what} of the HTTP connection to {event.server_ip} (TCP stream {event.stream}) "
                            "not in the capture")
        client = self.clients.get(event.client_ip)
        if client is not None and any(leg.stream == event.stream for leg in client.legs):
            client.gaps.append(gap)
        else:  # the registration on that connection may be parsed next
            self._stream_gaps[event.stream] = gap
            if len(self._stream_gaps) > self.max_pending:
                self._stream_gaps.popitem(last=False)
                self.evicted["pending"] += 1

    # --- TLS ----------------------------------------------------------------------------
    def _tls(self, leg: TlsLeg) -> None:
        why = self._tls_to_mp(leg)
        if why is None or leg.client_ip in self._handed_out:
            self._history.add_tls(leg.client_ip, leg)
            return
        leg.why = why
        self._attach_tls(self._client(leg.client_ip, leg.time), leg)

    def _tls_to_mp(self, leg: TlsLeg) -> str | None:
        """How a TLS connection is known to go to an MP: its SNI (any port), or on port 443 the MP's address
        or a ticket the client got for HTTP/<name> where <name> resolved to that address. (Other TLS to the
        MP's server, such as SQL or WSUS on their own ports, is not a registration.)"""
        if leg.sni and self.mp.is_mp_name(leg.sni):
            self.mp.add_address(leg.mp_ip, self.mp.canonical(leg.sni))
            return "SNI"
        if leg.mp_port != HTTPS_PORT:
            return None
        if leg.mp_ip in self.mp.addresses:
            return "address"
        client = self.clients.get(leg.client_ip)
        kdc = client.kdc if client is not None else [x for x in self._history.kdc.get(leg.client_ip, ())
                                                      if isinstance(x, KdcExchange)]
        hosts = {self.mp.spn_host(x.sname) for x in kdc} - {None}
        if hosts and self._resolved_to(leg.client_ip, leg.mp_ip, hosts):
            return "ticket"
        return None

    def _tls_before_ticket(self, ip: str, host: str) -> bool:
        """An HTTPS registration asks for its ticket inside the TLS connection (after the MP's 401): TLS on
        443 to the address `host` resolved to, seen just before, makes `host` an MP."""
        return any(leg.mp_port == HTTPS_PORT and self._resolved_to(ip, leg.mp_ip, {host})
                   for leg in self._history.tls.get(ip, ()))

    def _resolved_to(self, ip: str, address: str, hosts: set) -> bool:
        for raw in self._history.recent.get(ip, ()):
            lookup = raw.decode()
            if lookup is not None and lookup.name in hosts and any(v == address for _, _, v in lookup.answers):
                self.mp.add(lookup.name, "ticket_and_tls")
                self.mp.add_address(address, lookup.name)
                return True
        return False

    def _attach_tls(self, client: ClientExchange, leg: TlsLeg) -> None:
        self.legs.mp_tls += 1
        client.tls.append(leg)
        client.mp_ip = client.mp_ip or leg.mp_ip
        self._set_mp(client, self.mp.addresses.get(leg.mp_ip) or leg.sni)
        client.add(leg.frame, leg.time, leg.client_ip, leg.mp_ip, "TLS ClientHello", leg.describe())
        if leg.server_frame is not None:
            client.add(leg.server_frame, leg.time, leg.mp_ip, leg.client_ip, "TLS ServerHello",
                       "the registration is encrypted")

    # --- DNS ----------------------------------------------------------------------------
    def _dns_event(self, ev: DnsEvent) -> None:
        self.legs.dns += 1
        out = self._dns.feed(ev)
        if out is None:
            return
        if isinstance(out, RawLookup):
            self._history.add_raw(ev.dst, out)
            return
        self._lookup(out)

    def _lookup(self, lookup: DnsLookup) -> None:
        if lookup.answers:
            self.mp.learn(lookup)
        client = self.clients.get(lookup.client_ip)
        if client is not None:
            self._attach_dns(client, lookup)
        else:
            self._history.add_dns(lookup.client_ip, lookup)

    def _relevant(self, lookup: DnsLookup) -> bool:
        """Lookups worth a timeline line: MP names, the DC/KDC/MP locator records, and failures."""
        return lookup.failed or lookup.name.startswith(LOCATOR_PREFIXES) or self.mp.is_mp_name(lookup.name)

    def _attach_dns(self, client: ClientExchange, lookup: DnsLookup) -> None:
        client.dns.append(lookup)
        if len(client.dns) > PER_ADDRESS:
            del client.dns[0]
        if not self._relevant(lookup):
            return
        client.add(lookup.frame, lookup.time, lookup.client_ip, lookup.server_ip, "DNS query",
                   f"{lookup.name} type {lookup.qtype}")
        if lookup.response_frame is not None:
            client.add(lookup.response_frame, lookup.response_time or lookup.time, lookup.server_ip,
                       lookup.client_ip, "DNS response", describe_dns(lookup))

    # --- clients ------------------------------------------------------------------------
    def _client(self, ip: str, time: float | None) -> ClientExchange:
        client = self.clients.get(ip)
        if client is None:
            client = ClientExchange(ip)
            self._put(ip, client)
            self._replay_history(client, time)
        return client

    def _set_mp(self, client: ClientExchange, name: str | None) -> None:
        if name and not client.mp_name:
            client.mp_name = name
        if not client.mp_ip and client.mp_name:
            client.mp_ip = next((ip for ip, n in self.mp.addresses.items() if n == client.mp_name), None)

    def _replay_history(self, client: ClientExchange, time: float | None) -> None:
        """What the address did before it became a client: its KDC exchanges, relevant lookups, TLS to MPs."""
        kdc, dns, raw, tls = self._history.take(client.ip)

        def recent(t: float) -> bool:
            return time is None or time - t <= HISTORY_WINDOW

        for item in kdc:
            if isinstance(item, KdcFailureEvent):
                if recent(item.time):
                    _attach_failure(client, item)
                continue
            if recent((item.reply or item.request).time):
                client.kdc.append(item)
                for ev in (item.request, item.reply):
                    if ev is not None:
                        _timeline_kdc(client, item, ev)
                learn_identity(client, item)
        lookups = dns + [lk for lk in (r.decode() for r in raw) if lk is not None and self.mp.is_mp_name(lk.name)]
        for lookup in sorted(lookups, key=lambda lk: lk.frame):
            if recent(lookup.time):
                self._attach_dns(client, lookup)
        for leg in tls:
            why = self._tls_to_mp(leg)
            if why is not None and recent(leg.time):
                leg.why = why
                self._attach_tls(client, leg)

    def _late_clients(self) -> None:
        """Addresses with registration evidence that only the end of the capture makes clear. Their number
        grows with the capture (a failed lookup of an MP name is such evidence): with quiet clients resting on
        disk, they wait there too, `LATE_BATCH` at a time, until `finish` hands them out one by one."""
        late: list[tuple[str, ClientExchange, bool]] = []
        for ip in sorted(self._history.addresses()):
            if ip in self.clients or ip in self._handed_out:
                continue
            name = self._evidence(ip)
            if name is None:
                continue
            client = ClientExchange(ip)
            self._put(ip, client)
            self._replay_history(client, None)
            self._set_mp(client, name)
            if self.quiet_after is not None:
                late.append((ip, client, False))
                if len(late) >= LATE_BATCH:
                    self._rest(late)
                    late.clear()
        self._rest(late)

    def _evidence(self, ip: str) -> str | None:
        """The MP name (or "" when unnamed) that makes `ip` a client: a Kerberos exchange for a known MP's
        HTTP SPN, TLS to a known MP, or a failed lookup of an MP name with nothing after it."""
        for item in self._history.kdc.get(ip, ()):
            host = self.mp.spn_host(item.sname) if isinstance(item, KdcExchange) else None
            if host and self.mp.is_mp_name(host) and item.req is not None and item.req.msg_type == KrbMsg.TGS_REQ:
                return self.mp.canonical(host)
        for leg in self._history.tls.get(ip, ()):
            if self._tls_to_mp(leg) is not None:
                return self.mp.addresses.get(leg.mp_ip) or leg.sni or ""
        lookups = list(self._history.dns.get(ip, ()))
        failed = [lk for lk in lookups if self._failed_mp_lookup(lk)]
        if not failed:
            return None  # (successful lookups are decoded only to rule a failure out)
        lookups += [lk for lk in (r.decode() for r in self._history.recent.get(ip, ())
                                  if self.mp.is_mp_label(r.response.header.first_label)) if lk is not None]
        last = failed[-1]
        if any(lk.resolved and _same_name(lk, last) and (lk.frame > last.frame or lk.qtype == DnsType.A)
               for lk in lookups):
            return None  # resolved after all, or a failed retry beside a working A record
        return "" if last.name.startswith(MP_LOCATOR_PREFIX) else self.mp.canonical(last.name)

    def _failed_mp_lookup(self, lk: DnsLookup) -> bool:
        if lk.name.startswith(MP_LOCATOR_PREFIX):
            return lk.qtype == DnsType.SRV and (lk.failed or lk.response_frame is None)
        if lk.qtype not in DNS_NAME_TYPES or not self.mp.is_mp_name(lk.name):
            return False
        if lk.qtype == DnsType.AAAA and lk.rcode == DnsRcode.NOERROR:
            return False  # no IPv6 address: normal for an IPv4-only MP
        return lk.failed or lk.response_frame is None

    def _finalise(self, client: ClientExchange) -> ClientExchange:
        client.timeline.sort(key=lambda e: e.frame)
        if not client.hostname:
            client.hostname = hostname_from_account(client.account)
        client.view = client_view(client, self.legs)
        self._handed_out[client.ip] = None
        self._handed_out.move_to_end(client.ip)
        if len(self._handed_out) > self.max_handed_out:
            self._handed_out.popitem(last=False)
            self.evicted["handed_out"] += 1
        return client


def _client_order(client: ClientExchange) -> tuple[float, str]:
    return client.first_time, client.ip


def _same_name(a: DnsLookup, b: DnsLookup) -> bool:
    return a.name.split(".")[0] == b.name.split(".")[0]


def _attach_failure(client: ClientExchange, failure: KdcFailureEvent) -> None:
    client.kdc_failures.append(failure)
    client.add(failure.frame, failure.time, failure.client_ip, failure.kdc_ip, "KDC unreachable",
               f"{failure.transport.upper()} to {failure.kdc_ip}:88: {failure.how}")


def _timeline_kdc(client: ClientExchange, exchange: KdcExchange, ev: KerberosEvent) -> None:
    detail = describe_kdc_request(exchange) if ev is exchange.request else describe_kdc_reply(exchange)
    client.add(ev.frame, ev.time, ev.src, ev.dst, msg_type_name(ev.msg.msg_type), detail)


__all__ = ["Correlator"]
