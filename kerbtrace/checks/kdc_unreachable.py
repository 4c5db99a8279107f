"""kdc_unreachable: the client's Kerberos requests that matter got no answer, or it never reached the next KDC.

Counted: AS requests for the computer account, TGS requests for the MP's HTTP SPN, and requests that
present a referral ticket — sent before the client's last request to the MP (later ones do not
decide the registration). Also a referral to another realm after which no request reaches that realm.
Windows does not fall back to NTLM when no DC can be reached.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import is_computer_account, kerberos_accepted, referrals
from kerbtrace.codes import hresult
from kerbtrace.constants import Cause, KrbMsg, Severity
from kerbtrace.exchanges.client import ClientExchange, KdcExchange

CODE = Cause.KDC_UNREACHABLE
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'Kerberos authentication troubleshooting guidance (Microsoft support article)',
    'KB 244474: how to force Kerberos to use TCP instead of UDP',
    'KB 262177: how to enable Kerberos event logging',
)


def _matters(client: ClientExchange, ex: KdcExchange) -> bool:
    req = ex.req
    if req is None:
        return False
    if req.msg_type == KrbMsg.AS_REQ:
        return is_computer_account(req.cname)
    sname = (req.sname or "").lower()
    tgt = req.ticket
    cross = tgt is not None and tgt.sname.lower().startswith("krbtgt/") and \
        tgt.sname.split("/")[-1].upper() != tgt.realm.upper()
    return sname.startswith("http/") or cross


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    last_leg = client.legs[-1].request_frame if client.legs else None
    relevant = [ex for ex in client.kdc if _matters(client, ex)
                and (last_leg is None or (ex.request is not None and ex.request.frame < last_leg))]
    unanswered = [ex for ex in relevant if ex.reply is None]
    failures = [f for f in client.kdc_failures if last_leg is None or f.frame < last_leg]
    last_try = max([ex.frame for ex in unanswered] + [f.frame for f in failures], default=None)
    recovered = last_try is not None and any(ex.reply is not None and ex.frame > last_try for ex in client.kdc)
    if last_try is not None and not recovered:
        kdcs = sorted({ex.kdc_ip for ex in unanswered} | {f.kdc_ip for f in failures})
        evidence = [Evidence(e.request.frame, f"{e.req.sname if e.req else ''} to {e.kdc_ip}, no reply")
                    for e in unanswered[-3:] if e.request is not None]
        evidence += [Evidence(f.frame, f"{f.transport.upper()} to {f.kdc_ip}:88: {f.how}") for f in failures[-3:]]
        evidence.sort(key=lambda e: e.frame)
        how = "; ".join(sorted({f.how.split(" from ")[0] for f in failures}))
        return Finding(
            CODE, Severity.ERROR,
            f"The client could not reach the KDC {', '.join(kdcs)}: "
            + (f"{len(unanswered)} Kerberos request(s) got no answer" if unanswered else "")
            + ("; " if unanswered and failures else "") + (how if failures else "")
            + ". The domain controller is down, filtered (port 88 UDP/TCP) or not where the client looks for it, "
            "so the client cannot get a ticket for the MP (and Windows does not fall back to NTLM then).",
            fix="Test port 88 from the client to its DCs (Test-NetConnection <dc> -Port 88; nltest /dsgetdc:<domain> "
                "/kdc), check firewalls and that the DC's KDC service runs; with a capture on the client, large UDP "
                "replies may be lost as IP fragments (force Kerberos over TCP).",
            codes=[hresult(0x80090311).label()], evidence=evidence)
    for hop in referrals(client):
        rep = hop.rep
        assert rep is not None and rep.ticket is not None
        target = rep.ticket.sname.split("/")[1].upper()
        followed = any(ex.realm and ex.realm.upper() == target and ex.frame > hop.frame for ex in client.kdc)
        if followed:
            continue
        srv = [lk for lk in client.dns if target.lower() in lk.name and lk.failed]
        evidence = [Evidence(hop.frame, f"referral to {target} from {hop.realm}")]
        evidence += [Evidence(lk.response_frame or lk.frame, f"DNS {lk.name} failed") for lk in srv[:2]]
        return Finding(
            CODE, Severity.ERROR,
            f"The client got a referral to {target} but never contacted a KDC of {target}"
            + (" (its DNS lookup for that realm's KDC failed)" if srv else "") + ".",
            fix=f"Make the DCs of {target} resolvable from the client's DNS (_kerberos._tcp.{target.lower()} SRV "
                "records; conditional forwarders between forests) and reachable on port 88.",
            codes=[hresult(0x80090311).label()], evidence=evidence)
    return None
