"""Builds one `ClientExchange` per ConfigMgr client from the event stream.

Like Zeek's per-connection records: events fill per-client state, and a client is handed on when
its exchange completes or goes idle (live capture) or at the end of the file. Kerberos and DNS
traffic seen from an address before it talks to an MP is kept in a small bounded history, so the
TGS exchanges that precede the authenticated CCM_POST are not lost.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass

from kerbtrace.codes import msg_type_name
from kerbtrace.decoders import DecodeError
from kerbtrace.events import CaptureGapEvent, DnsEvent, Event, HttpEvent, KdcFailureEvent, KerberosEvent
from kerbtrace.exchanges.client import AuthLeg, ClientExchange, DnsLookup, KdcExchange
from kerbtrace.exchanges.describe import describe_auth, describe_kdc_reply, describe_kdc_request

KERBEROS_PORT = 88
HISTORY_PER_ADDRESS = 32
MAX_ADDRESSES = 16384
MAX_PENDING = 4096  # registration requests / DNS queries waiting for their answer
RECENT_LOOKUPS = 8  # successful lookups of not-yet-relevant names kept per address
HISTORY_WINDOW = 900.0  # seconds of KDC/DNS history pulled into a new client's timeline
REGISTRATION_PREFIX = "/ccm_system"
DNS_NAME_TYPES = (1, 28, 5)  # A, AAAA, CNAME
MP_LOCATOR_PREFIX = "_mssms_mp_"  # ConfigMgr publishes its MPs as _mssms_mp_<sitecode>._tcp.<domain> SRV
LOCATOR_PREFIXES = (MP_LOCATOR_PREFIX, "_kerberos.", "_kerberos-master.", "_kpasswd.", "_ldap.", "_gc.")


@dataclass(slots=True)
class KerberosRecord:
    """One row of the `kerberos` list of the JSON report."""

    frame: int
    time: float
    src: str
    dst: str
    transport: str
    msg_type: int
    error_code: int | None
    realm: str | None
    sname: str | None
    cname: str | None
    input: int = 0  # index of the capture file in the report's inputs


class _Lru(OrderedDict):
    """Per-address history, evicting the least recently used address past `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def deque_for(self, key: str) -> deque:
        value = self.get(key)
        if value is None:
            value = deque(maxlen=HISTORY_PER_ADDRESS)
            self[key] = value
            if len(self) > self.limit:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return value


class ExchangeTracker:
    """Consumes pipeline events; yields finished `ClientExchange` records."""

    def __init__(self, idle_timeout: float = 600.0, mp_names: tuple[str, ...] = ()) -> None:
        self.idle_timeout = idle_timeout
        self.clients: dict[str, ClientExchange] = {}
        self.kerberos: list[KerberosRecord] = []
        self.mp_names: set[str] = set()
        self._mp_short: set[str] = set()  # first labels of mp_names, for the DNS fast path
        for name in mp_names:
            self._add_mp_name(name.lower().rstrip("."))
        self._kdc_history = _Lru(MAX_ADDRESSES)
        self._dns_history = _Lru(MAX_ADDRESSES)
        self._pending_kdc: OrderedDict[tuple, KdcExchange] = OrderedDict()
        self._pending_tcp: dict[tuple, deque[KdcExchange]] = {}
        self._pending_dns: OrderedDict[tuple, tuple[int, float]] = OrderedDict()
        self._dns_recent: dict[str, list[tuple[tuple[int, float], DnsEvent]]] = {}
        self._stream_gaps: dict[int, tuple[int, str]] = {}
        self._pending_legs: OrderedDict[int, tuple[object, AuthLeg, ClientExchange]] = OrderedDict()
        self._retired: list[ClientExchange] = []  # replaced by another computer on the same address
        self.now = 0.0

    # ------------------------------------------------------------------------------------
    def feed(self, event: Event) -> None:
        self.now = max(self.now, event.time)
        if isinstance(event, KerberosEvent):
            self._kerberos(event)
        elif isinstance(event, HttpEvent):
            self._http(event)
        elif isinstance(event, DnsEvent):
            self._dns(event)
        elif isinstance(event, CaptureGapEvent):
            what = f"{event.missing} bytes" if event.missing else "the start"
            gap = (event.frame, f"{what} of the HTTP connection to {event.server_ip} (TCP stream {event.stream}) "
                                "not in the capture")
            client = self.clients.get(event.client_ip)
            if client is not None and any(leg.stream == event.stream for leg in client.legs):
                client.gaps.append(gap)
            else:  # the registration on that connection may be parsed next
                self._stream_gaps[event.stream] = gap
                if len(self._stream_gaps) > MAX_PENDING:
                    del self._stream_gaps[next(iter(self._stream_gaps))]
        elif isinstance(event, KdcFailureEvent):
            client = self.clients.get(event.client_ip)
            if client is None:
                self._kdc_history.deque_for(event.client_ip).append(event)
            else:
                self._attach_failure(client, event)

    def completed(self, settle: float = 30.0) -> Iterator[ClientExchange]:
        """Clients whose exchange is over, to hand to the checks while packets keep coming (live capture).

        Over means: the MP has sent its registration reply (or a final 200) and the client has been quiet
        for `settle` seconds of capture time, or the client has been idle longer than the idle timeout
        (a rejected client may retry, so a 401 alone does not close the exchange).
        """
        done = []
        for ip, client in self.clients.items():
            quiet = self.now - client.last_time
            final = client.final_leg
            answered = final is not None and (final.reply is not None or final.status == 200)
            if quiet > self.idle_timeout or (answered and quiet > settle):
                done.append(ip)
        for ip in done:
            yield _finalise(self.clients.pop(ip))
        while self._retired:
            yield _finalise(self._retired.pop())

    def finish(self) -> list[ClientExchange]:
        """End of input: every client, plus addresses whose lookup of an MP name failed."""
        self._add_dns_only_clients()
        out = [_finalise(c) for c in [*self._retired, *self.clients.values()]]
        self.clients, self._retired = {}, []
        return sorted(out, key=lambda c: (c.first_time, c.ip))

    # --- Kerberos -----------------------------------------------------------------------
    def _kerberos(self, ev: KerberosEvent) -> None:
        m = ev.msg
        # names repeat across thousands of messages: interned, the list stays small on big captures
        self.kerberos.append(KerberosRecord(ev.frame, ev.time, _intern(ev.src), _intern(ev.dst), ev.transport,
                                            m.msg_type, m.error_code, _intern(m.realm), _intern(m.sname),
                                            _intern(m.cname)))
        if ev.transport == "http":
            return  # carried by an HttpEvent and handled there
        if ev.dport == KERBEROS_PORT and ev.is_request:
            exchange = KdcExchange(ev.src, ev.dst, request=ev)
            key = (ev.src, ev.sport, ev.dst, ev.stream)
            if ev.transport == "udp":
                self._pending_kdc[key] = exchange  # a retransmission replaces the earlier try
            else:
                self._pending_tcp.setdefault(key, deque(maxlen=16)).append(exchange)
            self._trim_pending()
            self._record_kdc(exchange, ev)
            return
        if ev.sport == KERBEROS_PORT and not ev.is_request:
            key = (ev.dst, ev.dport, ev.src, ev.stream)
            if ev.transport == "udp":
                exchange = self._pending_kdc.pop(key, None)
            else:
                queue = self._pending_tcp.get(key)
                exchange = queue.popleft() if queue else None
            if exchange is None:
                exchange = KdcExchange(ev.dst, ev.src, reply=ev)
                self._record_kdc(exchange, ev)
                return
            exchange.reply = ev
            client = self.clients.get(exchange.client_ip)
            if client is not None:
                self._timeline_kdc(client, exchange, ev)
                self._learn_identity(client, exchange)

    def _trim_pending(self) -> None:
        while len(self._pending_kdc) > 4096:
            self._pending_kdc.popitem(last=False)
        while len(self._pending_tcp) > 4096:
            self._pending_tcp.pop(next(iter(self._pending_tcp)))

    def _record_kdc(self, exchange: KdcExchange, ev: KerberosEvent) -> None:
        client = self.clients.get(exchange.client_ip)
        if client is None:
            self._kdc_history.deque_for(exchange.client_ip).append(exchange)
            return
        client.kdc.append(exchange)
        self._timeline_kdc(client, exchange, ev)
        self._learn_identity(client, exchange)

    def _timeline_kdc(self, client: ClientExchange, exchange: KdcExchange, ev: KerberosEvent) -> None:
        if ev is exchange.request:
            client.add(ev.frame, ev.time, ev.src, ev.dst, msg_type_name(ev.msg.msg_type),
                       describe_kdc_request(exchange))
        else:
            client.add(ev.frame, ev.time, ev.src, ev.dst, msg_type_name(ev.msg.msg_type),
                       describe_kdc_reply(exchange))

    @staticmethod
    def _learn_identity(client: ClientExchange, exchange: KdcExchange) -> None:
        """Client realm and account from the cleartext parts of AS/TGS messages."""
        req, rep = exchange.req, exchange.rep
        if req is not None and req.msg_type == 10 and req.cname and not client.account:
            client.account = f"{req.cname}@{req.realm}" if req.realm else req.cname
            client.realm = client.realm or req.realm
        if rep is not None and rep.msg_type in (11, 13) and rep.cname and rep.crealm:
            client.account = client.account or f"{rep.cname}@{rep.crealm}"
            client.realm = client.realm or rep.crealm
        if req is not None and req.msg_type == 12 and not client.realm and req.ticket is not None:
            tgt = req.ticket.sname.split("/")
            if len(tgt) == 2 and tgt[1].upper() == req.ticket.realm.upper():
                client.realm = req.ticket.realm

    # --- HTTP ---------------------------------------------------------------------------
    def _http(self, ev: HttpEvent) -> None:
        msg = ev.msg
        if msg.is_request:
            if _is_registration(ev):
                self._registration_request(ev)
            return
        pending = self._pending_legs.pop(id(ev.request), None) if ev.request is not None else None
        if pending is None:
            return
        request, leg, client = pending
        if request is not ev.request:
            return
        leg.response_frame, leg.response_time, leg.status = ev.frame, ev.time, msg.status
        leg.response_tokens = list(ev.auth)
        leg.date_header = msg.header("date")
        if ev.ccm is not None and ev.ccm.kind == "registration_response":
            leg.reply = ev.ccm
        if client is None:
            return
        if leg.reply is not None and leg.reply.smsid:
            client.assigned_smsid = leg.reply.smsid
        detail = describe_auth(ev.auth[0] if ev.auth else None, request=False)
        if leg.reply is not None:
            detail += f"; registration reply Status={leg.reply.status} ApprovalStatus={leg.reply.approval_status}"
            if leg.reply.smsid:
                detail += f" SMSID={leg.reply.smsid}"
        client.add(ev.frame, ev.time, ev.server_ip, ev.client_ip, f"HTTP {msg.status} {msg.reason or ''}".strip(),
                   detail.strip("; "))

    def _registration_request(self, ev: HttpEvent) -> None:
        msg = ev.msg
        host = msg.header("host")
        name = host.rsplit(":", 1)[0].lower().rstrip(".").strip("[]") if host else None
        if name and not _is_address(name):
            self._add_mp_name(name)  # before the client's history is read: its DNS lookups of this name count
        else:
            name = None
        ccm = ev.ccm if ev.ccm is not None and ev.ccm.kind == "registration_request" else None
        netbios = (ccm.netbios_name or ccm.source_host) if ccm is not None else None
        current = self.clients.get(ev.client_ip)
        if current is not None and netbios and current.hostname and current.hostname.upper() != netbios.upper():
            # Another computer behind the same address (NAT, a reused DHCP lease): an exchange of its own.
            self._retired.append(self.clients.pop(ev.client_ip))
        client = self._client(ev.client_ip, ev.time)
        leg = AuthLeg(ev.frame, ev.time, ev.stream, ev.server_ip, ev.server_port, msg.method or "", msg.uri or "",
                      host, msg.header("user-agent"), ev.auth[0] if ev.auth else None, ev.ccm,
                      client_ip=ev.client_ip)
        if ev.ccm is not None and ev.ccm.kind == "registration_request":
            client.hostname = ev.ccm.netbios_name or ev.ccm.source_host or client.hostname
            client.fqdn = ev.ccm.fq_name or client.fqdn
            if ev.ccm.smsid:
                client.smsid = ev.ccm.smsid
                client.smsid_frame = ev.frame
        client.mp_ip = ev.server_ip
        client.mp_name = name or client.mp_name
        client.legs.append(leg)
        gap = self._stream_gaps.pop(ev.stream, None)
        if gap is not None:
            client.gaps.append(gap)
        self._pending_legs[id(msg)] = (msg, leg, client)
        while len(self._pending_legs) > MAX_PENDING:
            self._pending_legs.popitem(last=False)  # requests never answered in the capture
        client.add(ev.frame, ev.time, ev.client_ip, ev.server_ip, f"{leg.method} {leg.uri}",
                   describe_auth(leg.token, request=True))

    def _client(self, ip: str, time: float) -> ClientExchange:
        client = self.clients.get(ip)
        if client is None:
            client = ClientExchange(ip)
            self.clients[ip] = client
            self._replay_history(client, time)
        return client

    @staticmethod
    def _attach_failure(client: ClientExchange, failure: KdcFailureEvent) -> None:
        client.kdc_failures.append(failure)
        client.add(failure.frame, failure.time, failure.client_ip, failure.kdc_ip, "KDC unreachable",
                   f"{failure.transport.upper()} to {failure.kdc_ip}:88: {failure.how}")

    def _replay_history(self, client: ClientExchange, time: float | None) -> None:
        """What the address did before it became a client: its KDC exchanges and relevant DNS lookups."""
        for exchange in self._kdc_history.pop(client.ip, ()):
            if isinstance(exchange, KdcFailureEvent):
                if time is None or time - exchange.time <= HISTORY_WINDOW:
                    self._attach_failure(client, exchange)
                continue
            if time is None or time - (exchange.reply or exchange.request).time <= HISTORY_WINDOW:
                client.kdc.append(exchange)
                for ev in (exchange.request, exchange.reply):
                    if ev is not None:
                        self._timeline_kdc(client, exchange, ev)
                self._learn_identity(client, exchange)
        lookups = list(self._dns_history.pop(client.ip, ())) + self._recent_mp_lookups(client.ip)
        for lookup in sorted(lookups, key=lambda lk: lk.frame):
            if time is None or time - lookup.time <= HISTORY_WINDOW:
                self._attach_dns(client, lookup)

    # --- DNS ----------------------------------------------------------------------------
    def _dns(self, ev: DnsEvent) -> None:
        """Lookups are kept when they matter: failures, locator records and MP names. The recent
        successful lookups of each address are kept raw, as its MP may only become known later."""
        head = ev.header
        pending = self._pending_dns
        if not head.is_response:
            pending[(ev.src, ev.dst, head.id)] = (ev.frame, ev.time)
            if len(pending) > MAX_PENDING:
                pending.popitem(last=False)  # never answered in the capture
            return
        asked = pending.pop((ev.dst, ev.src, head.id), None) or (ev.frame, ev.time)
        label = head.first_label
        if head.rcode == 0 and head.answer_count and label[:1] != "_" and label not in self._mp_short:
            self._remember_success(ev, asked)  # the usual case: a lookup with nothing to do with the MP
            return
        try:
            name, qtype = head.question()
        except DecodeError:
            return
        if not name:
            return
        lookup = DnsLookup(asked[0], asked[1], ev.dst, ev.src, name, qtype, ev.frame, ev.time, head.rcode,
                           answer_count=head.answer_count)
        if head.rcode == 0 and head.answer_count:
            if not (name.startswith(LOCATOR_PREFIXES) or self.is_mp_name(name)):
                self._remember_success(ev, asked)
                return
            lookup.answers = ev.answers()
            if name.startswith(MP_LOCATOR_PREFIX):
                self._learn_mps_from_srv(lookup)
        client = self.clients.get(ev.dst)
        if client is not None:
            self._attach_dns(client, lookup)
        else:
            self._dns_history.deque_for(ev.dst).append(lookup)

    def _remember_success(self, ev: DnsEvent, asked: tuple[int, float]) -> None:
        """A successful lookup of a name not known to matter: kept raw in a small FIFO per address, and
        decoded only if the address turns out to be a client that looked up its MP."""
        recent = self._dns_recent.get(ev.dst)
        if recent is None:
            recent = self._dns_recent[ev.dst] = []
            if len(self._dns_recent) > MAX_ADDRESSES:
                del self._dns_recent[next(iter(self._dns_recent))]
        recent.append((asked, ev))
        if len(recent) > RECENT_LOOKUPS:
            del recent[0]

    def _recent_mp_lookups(self, ip: str) -> list[DnsLookup]:
        out = []
        for (frame, time), ev in self._dns_recent.pop(ip, ()):
            try:
                name, qtype = ev.header.question()
            except DecodeError:
                continue
            if self.is_mp_name(name):
                out.append(DnsLookup(frame, time, ev.dst, ev.src, name, qtype, ev.frame, ev.time, ev.header.rcode,
                                     ev.answers(), ev.header.answer_count))
        return out

    def _add_mp_name(self, name: str) -> None:
        self.mp_names.add(name)
        self._mp_short.add(name.split(".")[0])

    def _learn_mps_from_srv(self, lookup: DnsLookup) -> None:
        """`_mssms_mp_<site>._tcp.<domain>` SRV answers name the site's MPs, as clients locate them."""
        for _, rtype, value in lookup.answers:
            if rtype == 33:  # SRV: "priority weight port target"
                target = value.split()[-1].lower().rstrip(".")
                if target:
                    self._add_mp_name(target)

    def is_mp_name(self, name: str) -> bool:
        """A known MP's FQDN, or the same host name under another DNS suffix (a wrong suffix search list)."""
        return name in self.mp_names or name.split(".")[0] in self._mp_short

    def _relevant(self, lookup: DnsLookup) -> bool:
        """Lookups worth a timeline line: MP names, the DC/KDC/MP locator records, and failures."""
        return lookup.failed or lookup.name.startswith(LOCATOR_PREFIXES) or self.is_mp_name(lookup.name)

    def _attach_dns(self, client: ClientExchange, lookup: DnsLookup) -> None:
        client.dns.append(lookup)
        if len(client.dns) > HISTORY_PER_ADDRESS:
            del client.dns[0]
        if not self._relevant(lookup):
            return
        client.add(lookup.frame, lookup.time, lookup.client_ip, lookup.server_ip, "DNS query",
                   f"{lookup.name} type {lookup.qtype}")
        if lookup.response_frame is not None:
            client.add(lookup.response_frame, lookup.response_time or lookup.time, lookup.server_ip,
                       lookup.client_ip, "DNS response", _dns_detail(lookup))

    def _add_dns_only_clients(self) -> None:
        """Addresses that failed to resolve an MP's name never reach the MP: they are clients too."""
        if not self.mp_names:
            return
        for ip, lookups in list(self._dns_history.items()):
            if ip in self.clients:
                continue
            failed = [lk for lk in lookups if lk.qtype in DNS_NAME_TYPES and lk.failed and self.is_mp_name(lk.name)]
            if not failed:
                continue
            client = ClientExchange(ip)
            name = failed[0].name
            client.mp_name = name if name in self.mp_names else next(
                (n for n in self.mp_names if n.split(".")[0] == name.split(".")[0]), name)
            self._replay_history(client, None)
            self.clients[ip] = client


def _intern(text: str | None) -> str | None:
    return sys.intern(text) if text else text


def _is_registration(ev: HttpEvent) -> bool:
    """A registration attempt: the Windows-auth endpoint, or a message to MP_ClientRegistration.

    Signed ConfigMgr traffic of registered clients (policy, location, DDR on /ccm_system/request) is
    not a registration and must not turn every client of an MP-side capture into a finding.
    """
    path = (ev.msg.uri or "").lower().split("?", 1)[0]
    if not (path.startswith(REGISTRATION_PREFIX) and path.endswith("/request")):
        return False
    if "windowsauth" in path:
        return True
    ccm = ev.ccm
    return ccm is not None and (ccm.kind == "registration_request"
                                or (ccm.target_endpoint or "").lower() == "mp_clientregistration")


def _finalise(client: ClientExchange) -> ClientExchange:
    client.timeline.sort(key=lambda e: e.frame)
    if not client.hostname and client.account:
        # a computer account is the NetBIOS name plus "$"
        client.hostname = client.account.split("@")[0].rstrip("$").upper() or None
    return client


def _dns_detail(lookup: DnsLookup) -> str:
    from kerbtrace.decoders.dns import RCODE_NAMES

    rcode = RCODE_NAMES.get(lookup.rcode or 0, str(lookup.rcode))
    answers = ", ".join(value for _, _, value in lookup.answers[:4])
    return f"{lookup.name}: {rcode}" + (f" -> {answers}" if answers else " (no answer)")


def _is_address(name: str) -> bool:
    return name.replace(".", "").isdigit() or ":" in name


__all__ = ["ExchangeTracker", "KerberosRecord"]
