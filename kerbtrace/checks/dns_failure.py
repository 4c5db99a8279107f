"""dns_failure: the client could not resolve the MP's name, so it never reached the MP.

A lookup of the MP's name (or of its `_mssms_mp_` SRV records) that got NXDOMAIN, SERVFAIL, REFUSED, no
address, or no answer at all, with no successful lookup of the name after it. An empty AAAA answer is
normal for an IPv4-only MP and does not count.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.codes import dns_rcode, hresult
from kerbtrace.constants import DNS_NAME_TYPES, Cause, DnsRcode, DnsType, Severity
from kerbtrace.exchanges.client import ClientExchange, DnsLookup
from kerbtrace.exchanges.mp_names import MP_LOCATOR_PREFIX

CODE = Cause.DNS_FAILURE
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'ConfigMgr: publishing the MP in DNS (_mssms_mp_<sitecode>._tcp)',
    'WinHTTP 12007 ERROR_WINHTTP_NAME_NOT_RESOLVED (CcmMessaging 0x80072EE7)',
)


def _failed(lk: DnsLookup, client: ClientExchange) -> bool:
    if lk.name.startswith(MP_LOCATOR_PREFIX):
        return lk.qtype == DnsType.SRV and (lk.failed or lk.response_frame is None)
    if lk.qtype not in DNS_NAME_TYPES or not (lk.failed or lk.response_frame is None):
        return False
    if lk.qtype == DnsType.AAAA and lk.rcode == DnsRcode.NOERROR:
        return False  # an empty AAAA answer alone is normal on IPv4 networks
    short = client.mp_short_name
    return client.mp_name is None or lk.name == client.mp_name or lk.name.split(".")[0] == short


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if client.legs or client.tls:
        return None
    resolved = {lk.name for lk in client.dns if lk.qtype in DNS_NAME_TYPES and lk.resolved}
    failed = [lk for lk in client.dns if _failed(lk, client) and lk.name not in resolved]
    if not failed:
        return None
    lk = failed[-1]
    if lk.response_frame is None:
        rcode, meaning = "no answer", "the DNS server never answered"
    else:
        rcode = dns_rcode(lk.rcode or 0).name
        meaning = {DnsRcode.NXDOMAIN: "the name does not exist in DNS", DnsRcode.SERVFAIL: "the DNS server failed "
                   "to answer", DnsRcode.REFUSED: "the DNS server refused the query"}.get(lk.rcode or 0,
                                                                                       "no address was returned")
    evidence = [Evidence(lk.frame, f"DNS query {lk.name}")]
    if lk.response_frame is not None:
        evidence.append(Evidence(lk.response_frame, f"DNS {rcode} from {lk.server_ip}"))
    return Finding(
        CODE, Severity.ERROR,
        f"The client's lookup of {lk.name} returned {rcode} ({meaning}), and it never contacted the MP: no "
        "registration, no approval (CcmMessaging.log shows 0x80072EE7).",
        fix=f"Check the MP's host record (nslookup {client.mp_name or lk.name}) on the client's DNS server "
            f"{lk.server_ip}, the client's DNS suffix search list, and the MP's registration in DNS "
            "(ipconfig /registerdns on the MP); for other forests, conditional forwarders.",
        codes=[hresult(0x80072EE7).label()], evidence=evidence)
