"""One ConfigMgr client's registration exchange, as rebuilt from the capture.

This is the record the checks read: the HTTP legs against the MP, the Kerberos exchanges the client
had with its KDCs, its DNS lookups, and a timeline with Wireshark frame numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kerbtrace.constants import Auth, KrbMsg
from kerbtrace.decoders.ccm import CcmMessage
from kerbtrace.decoders.gss import AuthToken
from kerbtrace.decoders.kerberos import KerberosMessage
from kerbtrace.events import KdcFailureEvent, KerberosEvent

if TYPE_CHECKING:
    from kerbtrace.exchanges.tls_legs import TlsLeg


@dataclass(slots=True)
class TimelineEntry:
    frame: int
    time: float
    src: str
    dst: str
    event: str
    detail: str = ""


@dataclass(slots=True)
class AuthLeg:
    """One request on a registration endpoint and the MP's answer to it."""

    request_frame: int
    request_time: float
    stream: int
    mp_ip: str
    mp_port: int
    method: str
    uri: str
    host: str | None = None
    user_agent: str | None = None
    token: AuthToken | None = None  # the Authorization header, decoded
    request_ccm: CcmMessage | None = None
    response_frame: int | None = None
    response_time: float | None = None
    status: int | None = None
    response_tokens: list[AuthToken] = field(default_factory=list)
    reply: CcmMessage | None = None
    date_header: str | None = None
    client_ip: str = ""

    @property
    def mech(self) -> str | None:
        """Mechanism of the token the client sent: kerberos, ntlm, negoex, or None (anonymous)."""
        if self.token is None:
            return None
        return self.token.mech

    @property
    def ap_req(self) -> KerberosMessage | None:
        if self.token is not None and self.token.kerberos is not None and self.token.kerberos.msg_type == KrbMsg.AP_REQ:
            return self.token.kerberos
        return None

    @property
    def response_krb(self) -> KerberosMessage | None:
        """The Kerberos message inside the MP's WWW-Authenticate (AP-REP or KRB-ERROR)."""
        for token in self.response_tokens:
            if token.kerberos is not None:
                return token.kerberos
        return None

    @property
    def is_windowsauth(self) -> bool:
        return "windowsauth" in self.uri.lower()


@dataclass(slots=True)
class KdcExchange:
    """A request to a KDC and the reply it got (either may be missing from the capture)."""

    client_ip: str
    kdc_ip: str
    request: KerberosEvent | None = None
    reply: KerberosEvent | None = None

    @property
    def req(self) -> KerberosMessage | None:
        return self.request.msg if self.request else None

    @property
    def rep(self) -> KerberosMessage | None:
        return self.reply.msg if self.reply else None

    @property
    def frame(self) -> int:
        return (self.reply or self.request).frame  # type: ignore[union-attr]

    @property
    def error_code(self) -> int | None:
        rep = self.rep
        return rep.error_code if rep is not None and rep.msg_type == KrbMsg.KRB_ERROR else None

    @property
    def sname(self) -> str | None:
        """The service asked for (request sname), else the one named by the reply."""
        if self.req is not None and self.req.sname:
            return self.req.sname
        return self.rep.sname if self.rep is not None else None

    @property
    def realm(self) -> str | None:
        """Realm the request was aimed at (the realm of the KDC that answered)."""
        if self.req is not None and self.req.realm:
            return self.req.realm
        return self.rep.realm if self.rep is not None else None

    @property
    def is_referral(self) -> bool:
        """A TGS-REP whose ticket is a cross-realm TGT krbtgt/OTHER issued by this realm."""
        rep = self.rep
        if rep is None or rep.msg_type != KrbMsg.TGS_REP or rep.ticket is None:
            return False
        parts = rep.ticket.sname.split("/")
        return (len(parts) == 2 and parts[0].lower() == "krbtgt"
                and parts[1].upper() != rep.ticket.realm.upper()
                and not (self.req is not None and (self.req.sname or "").lower().startswith("krbtgt/")))


@dataclass(slots=True)
class DnsLookup:
    frame: int
    time: float
    client_ip: str
    server_ip: str
    name: str
    qtype: int
    response_frame: int | None = None
    response_time: float | None = None
    rcode: int | None = None
    answers: list[tuple[str, int, str]] = field(default_factory=list)  # decoded only for lookups that matter
    answer_count: int = 0  # from the response header

    @property
    def failed(self) -> bool:
        """No answer records: NXDOMAIN, SERVFAIL, REFUSED, or an empty NOERROR."""
        return self.response_frame is not None and (self.rcode != 0 or not self.answer_count)

    @property
    def resolved(self) -> bool:
        return self.response_frame is not None and self.rcode == 0 and bool(self.answer_count)


@dataclass(slots=True)
class ClientExchange:
    ip: str
    hostname: str | None = None
    fqdn: str | None = None
    smsid: str | None = None  # requested by the client (from its registration request)
    assigned_smsid: str | None = None  # returned by the MP
    realm: str | None = None
    account: str | None = None
    mp_ip: str | None = None
    mp_name: str | None = None
    legs: list[AuthLeg] = field(default_factory=list)
    kdc: list[KdcExchange] = field(default_factory=list)
    kdc_failures: list[KdcFailureEvent] = field(default_factory=list)
    dns: list[DnsLookup] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    gaps: list[tuple[int, str]] = field(default_factory=list)  # (frame, what is missing)
    first_time: float = 0.0
    last_time: float = 0.0
    smsid_frame: int | None = None  # the registration request that carried `smsid`
    tls: list[TlsLeg] = field(default_factory=list)  # TLS connections to the MP (HTTPS / Enhanced HTTP)
    view: dict[str, str] = field(default_factory=dict)  # which legs the capture shows (exchanges/view.py)
    released: tuple[str, tuple[int, int | None, int | None] | None] | None = None  # see `release`
    #: (epoch, answered) as the correlator last worked it out (`Correlator._answered`); None when a leg changed
    answer_state: tuple[int, bool] | None = field(default=None, compare=False, repr=False)

    def release(self) -> None:
        """Once the checks have run, keep only what the reports and the cross-client checks use (identity,
        auth, the final reply, the timeline) and let the decoded messages go: a long capture's results
        then cost little memory per client."""
        self.released = (self.auth, self.final_reply)
        self.legs, self.kdc, self.dns, self.kdc_failures, self.tls = [], [], [], [], []

    @property
    def final_reply(self) -> tuple[int, int | None, int | None] | None:
        """(frame, Status, ApprovalStatus) of the MP's last registration reply, if readable."""
        if self.released is not None:
            return self.released[1]
        final = self.final_leg
        if final is None or final.reply is None:
            return None
        return final.response_frame or final.request_frame, final.reply.status, final.reply.approval_status

    @property
    def registration_legs(self) -> list[AuthLeg]:
        return [leg for leg in self.legs if leg.is_windowsauth]

    @property
    def final_leg(self) -> AuthLeg | None:
        """The last answered leg on the Windows-auth endpoint (else the last leg of any kind)."""
        legs = self.registration_legs or self.legs
        answered = [leg for leg in legs if leg.status is not None]
        last = answered or legs
        return last[-1] if last else None

    @property
    def auth(self) -> str:
        """kerberos / ntlm / none: what the client authenticated to the MP with, as far as it got."""
        if self.released is not None:
            return self.released[0]
        mechs = [leg.mech for leg in self.legs if leg.mech]
        if "kerberos" in mechs and any(leg.mech == "kerberos" and leg.status == 200 for leg in self.legs):
            return Auth.KERBEROS
        if "ntlm" in mechs:
            return Auth.NTLM
        if "kerberos" in mechs:
            return Auth.KERBEROS
        if not self.legs and self.tls:
            return Auth.TLS
        return Auth.NONE

    @property
    def mp_realm_from_ticket(self) -> str | None:
        """The MP's realm as a KDC stated it: the realm of a service ticket issued for its SPN."""
        for ex in self.kdc:
            rep = ex.rep
            if (rep is not None and rep.msg_type == KrbMsg.TGS_REP and rep.ticket is not None and self.mp_name
                    and rep.ticket.sname.lower() == f"http/{self.mp_name.lower()}"):
                return rep.ticket.realm.upper()
        return None

    @property
    def mp_realm(self) -> str | None:
        """The MP's realm: from a ticket issued for its SPN, else guessed from its DNS domain (which a
        disjoint namespace makes wrong: callers that rely on it say so)."""
        known = self.mp_realm_from_ticket
        if known:
            return known
        if self.mp_name and "." in self.mp_name:
            return self.mp_name.split(".", 1)[1].upper()
        return None

    @property
    def mp_names(self) -> set[str]:
        """Every MP name the client addressed (Host headers), full and short."""
        names = {n.lower() for n in (self.mp_name, self.mp_short_name) if n}
        for leg in self.legs:
            if leg.host:
                host = leg.host.rsplit(":", 1)[0].lower().rstrip(".")
                names.update((host, host.split(".")[0]))
        return names

    def mp_spn_exchanges(self) -> list[KdcExchange]:
        """TGS exchanges for the MP's HTTP SPN (every referral hop included)."""
        out = []
        names = self.mp_names
        for ex in self.kdc:
            sname = (ex.sname or "").lower()
            if sname.startswith("http/") and (not names or sname[5:].split(":")[0] in names):
                out.append(ex)
        return out

    @property
    def mp_short_name(self) -> str | None:
        return self.mp_name.split(".")[0] if self.mp_name else None

    def add(self, frame: int, time: float, src: str, dst: str, event: str, detail: str = "") -> None:
        self.timeline.append(TimelineEntry(frame, time, src, dst, event, detail))
        if not self.first_time or time < self.first_time:
            self.first_time = time
        self.last_time = max(self.last_time, time)
