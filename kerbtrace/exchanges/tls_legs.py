"""TLS connections as registration legs: an HTTPS or Enhanced HTTP MP carries the registration inside
TLS, so only the clear-text handshake (`TlsEvent`) shows that the client reached the MP."""

from __future__ import annotations

from dataclasses import dataclass

from kerbtrace.events import TlsEvent

HTTPS_PORT = 443


@dataclass(slots=True)
class TlsLeg:
    frame: int
    time: float
    client_ip: str
    mp_ip: str
    mp_port: int
    sni: str | None
    version: str | None
    certificate_requested: bool | None
    client_certificate: bool | None
    server_frame: int | None
    alert: str | None
    why: str = ""  # how it is known to be the MP: "SNI", "address", "ticket"

    @classmethod
    def from_event(cls, ev: TlsEvent) -> TlsLeg:
        return cls(ev.frame, ev.time, ev.client_ip, ev.server_ip, ev.server_port,
                   ev.sni.lower().rstrip(".") if ev.sni else None, ev.version, ev.certificate_requested,
                   ev.client_certificate, ev.server_frame, ev.alert)

    def describe(self) -> str:
        parts = [f"TLS to {self.mp_ip}:{self.mp_port}"]
        if self.sni:
            parts.append(f"SNI {self.sni}")
        if self.version:
            parts.append(self.version)
        if self.client_certificate is not None:
            parts.append("client certificate sent" if self.client_certificate else "no client certificate")
        if self.alert:
            parts.append(f"alert {self.alert}")
        return ", ".join(parts)


__all__ = ["HTTPS_PORT", "TlsLeg"]
