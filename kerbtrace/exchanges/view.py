"""What part of an exchange the capture shows: per client and per input.

A capture taken on the MP holds no client <-> KDC traffic; one taken on a DC, or of an HTTPS MP,
holds no readable registration. The checks and the reports say what the view cannot show instead of
guessing (docs/json-schema.md, `view`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kerbtrace.constants import Leg, View
from kerbtrace.exchanges.client import ClientExchange


@dataclass(slots=True)
class InputLegs:
    """How much of each leg an input holds at all (counts of messages / connections)."""

    mp_http: int = 0  # registration requests in clear
    mp_tls: int = 0  # TLS connections to a known MP
    kdc: int = 0  # Kerberos messages on port 88 and failed contacts to it
    dns: int = 0  # DNS messages

    def as_json(self) -> dict:
        return {"mp_http": self.mp_http, "mp_tls": self.mp_tls, "kdc": self.kdc, "dns": self.dns,
                "label": self.label}

    @property
    def label(self) -> str:
        http = self.mp_http or self.mp_tls
        if http and self.kdc:
            return View.FULL if self.mp_http else View.TLS_KDC
        if http:
            return View.MP_SIDE if self.mp_http else View.TLS_ONLY
        if self.kdc:
            return View.KDC_SIDE
        return View.DNS_ONLY if self.dns else "none"


def client_view(client: ClientExchange, legs: InputLegs) -> dict[str, str]:
    """{"mp_http": clear|tls|not_seen, "kdc": seen|not_seen, "dns": seen|not_seen, "label": View}.

    `kdc` is "seen" when the client's own KDC traffic is in the capture; the label is `mp_side` only when
    the input holds no KDC traffic at all and none of the client's DNS lookups (else a client without KDC
    traffic had its ticket cached or never asked for one, and the capture would show it asking).
    """
    mp_http = Leg.CLEAR if client.legs else Leg.TLS if client.tls else Leg.NOT_SEEN
    kdc = Leg.SEEN if client.kdc or client.kdc_failures else Leg.NOT_SEEN
    dns = Leg.SEEN if client.dns else Leg.NOT_SEEN
    if mp_http == Leg.CLEAR:
        label = View.MP_SIDE if kdc == dns == Leg.NOT_SEEN and not legs.kdc else View.FULL
    elif mp_http == Leg.TLS:
        label = View.TLS_KDC if kdc == Leg.SEEN or legs.kdc else View.TLS_ONLY
    elif legs.mp_http or legs.mp_tls:
        label = View.FULL  # the capture shows the MP's side: this client never reached it (a failed lookup)
    elif kdc == Leg.SEEN:
        label = View.KDC_SIDE
    else:
        label = View.DNS_ONLY
    return {"mp_http": str(mp_http), "kdc": str(kdc), "dns": str(dns), "label": str(label)}


__all__ = ["InputLegs", "client_view"]
