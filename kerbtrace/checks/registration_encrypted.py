"""registration_encrypted: the client reached an HTTPS or Enhanced HTTP MP over TLS; the registration cannot be read.

The TLS handshake shows the MP (SNI or address), the TLS version and, up to TLS 1.2, whether the client
sent a certificate (PKI client authentication). What decides the verdict is inside TLS: the capture
tells only what the Kerberos side shows (a ticket for the MP's HTTP SPN, or the error that prevented it).
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import ticket_for_mp
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.REGISTRATION_ENCRYPTED
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'ConfigMgr: plan for communication over HTTPS and Enhanced HTTP',
    'ConfigMgr client logs: ClientIDManagerStartup.log, CcmMessaging.log; MP_RegistrationManager.log',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if client.legs or not client.tls:
        return None
    leg = client.tls[-1]
    evidence = [Evidence(leg.frame, leg.describe())]
    pki = {True: " The client sent a certificate (PKI client authentication).",
           False: " The client sent no certificate (no PKI client authentication).",
           None: ""}[leg.client_certificate]
    ticket = ticket_for_mp(client)
    if ticket is not None:
        evidence.append(Evidence(ticket.frame, f"KDC {ticket.kdc_ip} issued the service ticket for {ticket.sname}"))
        kerberos = f" On the Kerberos side the client got a ticket for {ticket.sname}."
    elif client.kdc:
        kerberos = " The Kerberos side shows no ticket for the MP's HTTP SPN."
    else:
        kerberos = " No Kerberos traffic of this client is in the capture."
    alert = f" The handshake ended with the alert {leg.alert}." if leg.alert else ""
    return Finding(
        CODE, Severity.WARNING,
        f"The client reached the MP {leg.mp_ip}:{leg.mp_port} over TLS ({leg.version or 'version not seen'}"
        f"{', SNI ' + leg.sni if leg.sni else ''}): the registration and the MP's answer are encrypted, so the "
        f"capture cannot show whether it was approved.{pki}{kerberos}{alert}",
        fix="Read the MP's MP_RegistrationManager.log and IIS log for this client, or the client's "
            "ClientIDManagerStartup.log and CcmMessaging.log; the console shows the device's approval state.",
        evidence=evidence)
