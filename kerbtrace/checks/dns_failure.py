"""dns_failure: the client could not resolve the MP's name, so it never reached the MP."""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.codes import hresult
from kerbtrace.decoders.dns import RCODE_NAMES
from kerbtrace.exchanges.client import ClientExchange

CODE = "dns_failure"
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'ConfigMgr: publishing the MP in DNS (_mssms_mp_<sitecode>._tcp)',
    'WinHTTP 12007 ERROR_WINHTTP_NAME_NOT_RESOLVED (CcmMessaging 0x80072EE7)',
)
NAME_TYPES = (1, 28, 5)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if client.legs:
        return None
    short = client.mp_short_name
    resolved = {lk.name for lk in client.dns if lk.qtype in NAME_TYPES and lk.response_frame and not lk.failed}
    failed = [lk for lk in client.dns if lk.qtype in NAME_TYPES and lk.failed and lk.name not in resolved
              and (lk.qtype != 28 or lk.rcode != 0)  # an empty AAAA answer alone is normal on IPv4 networks
              and (client.mp_name is None or lk.name == client.mp_name or lk.name.split(".")[0] == short)]
    if not failed:
        return None
    lk = failed[-1]
    rcode = RCODE_NAMES.get(lk.rcode or 0, str(lk.rcode))
    meaning = {3: "the name does not exist in DNS", 2: "the DNS server failed to answer",
               5: "the DNS server refused the query"}.get(lk.rcode or 0, "no address was returned")
    return Finding(
        CODE, "error",
        f"The client's lookup of {lk.name} returned {rcode} ({meaning}), and it never contacted the MP: no "
        "registration, no approval (CcmMessaging.log shows 0x80072EE7).",
        fix=f"Check the MP's host record (nslookup {client.mp_name or lk.name}) on the client's DNS server "
            f"{lk.server_ip}, the client's DNS suffix search list, and the MP's registration in DNS "
            "(ipconfig /registerdns on the MP); for other forests, conditional forwarders.",
        codes=[hresult(0x80072EE7).label()],
        evidence=[Evidence(lk.frame, f"DNS query {lk.name}"),
                  Evidence(lk.response_frame or lk.frame, f"DNS {rcode} from {lk.server_ip}")])
