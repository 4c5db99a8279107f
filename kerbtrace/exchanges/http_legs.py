"""Pairs registration requests to the MP with the MP's answers: one `AuthLeg` per request.

Only registration requests make legs: the Windows-auth endpoint, or a message to MP_ClientRegistration.
Signed ConfigMgr traffic of registered clients (policy, location, DDR on /ccm_system/request) is not a
registration and must not turn every client of an MP-side capture into a finding.
"""

from __future__ import annotations

from collections import OrderedDict

from kerbtrace.events import HttpEvent
from kerbtrace.exchanges.client import AuthLeg

REGISTRATION_PREFIX = "/ccm_system"
MAX_PENDING = 4096  # requests waiting for their answer


def is_registration(ev: HttpEvent) -> bool:
    path = (ev.msg.uri or "").lower().split("?", 1)[0]
    if not (path.startswith(REGISTRATION_PREFIX) and path.endswith("/request")):
        return False
    if "windowsauth" in path:
        return True
    ccm = ev.ccm
    return ccm is not None and (ccm.kind == "registration_request"
                                or (ccm.target_endpoint or "").lower() == "mp_clientregistration")


def host_name(host: str | None) -> str | None:
    """The name in a Host header (port and brackets removed); None for an address literal."""
    if not host:
        return None
    name = host.rsplit(":", 1)[0].lower().rstrip(".").strip("[]") if host.count(":") <= 1 else host.strip("[]")
    return None if _is_address(name) else name


def _is_address(name: str) -> bool:
    return name.replace(".", "").isdigit() or ":" in name


class HttpLegs:
    def __init__(self) -> None:
        self.max_pending = MAX_PENDING  # a live run sets its own
        self.evicted = 0
        self._pending: OrderedDict[int, tuple[object, AuthLeg]] = OrderedDict()

    def pending_ids(self) -> set[int]:
        """id() of the legs waiting for the MP's answer (the answer will complete that very object)."""
        return {id(leg) for _, leg in self._pending.values()}

    def request(self, ev: HttpEvent) -> AuthLeg | None:
        """A new leg for a registration request, else None."""
        if not is_registration(ev):
            return None
        msg = ev.msg
        leg = AuthLeg(ev.frame, ev.time, ev.stream, ev.server_ip, ev.server_port, msg.method or "", msg.uri or "",
                      msg.header("host"), msg.header("user-agent"), ev.auth[0] if ev.auth else None, ev.ccm,
                      client_ip=ev.client_ip)
        self._pending[id(msg)] = (msg, leg)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)  # requests never answered in the capture
            self.evicted += 1
        return leg

    def response(self, ev: HttpEvent) -> AuthLeg | None:
        """The leg this response completes, filled in; None when its request is not a registration."""
        pending = self._pending.pop(id(ev.request), None) if ev.request is not None else None
        if pending is None or pending[0] is not ev.request:
            return None
        leg = pending[1]
        leg.response_frame, leg.response_time, leg.status = ev.frame, ev.time, ev.msg.status
        leg.response_tokens = list(ev.auth)
        leg.date_header = ev.msg.header("date")
        if ev.ccm is not None and ev.ccm.kind == "registration_response":
            leg.reply = ev.ccm
        return leg


__all__ = ["HttpLegs", "host_name", "is_registration"]
