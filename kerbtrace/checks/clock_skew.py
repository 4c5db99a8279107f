"""clock_skew: a KDC or the MP rejected the client's authenticator because the clocks differ.

KRB_AP_ERR_SKEW (37), KRB_AP_ERR_TKT_NYV (33) or KRB_AP_ERR_TKT_EXPIRED (32). The offsets are
measured from the cleartext times the capture holds: the error's stime against the capture clock,
ctime against stime when the acceptor could read the authenticator, and HTTP Date headers.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import CLOCK_ERRORS, kerberos_accepted
from kerbtrace.codes import hresult, krb_error
from kerbtrace.exchanges.client import ClientExchange

CODE = "clock_skew"


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    hits = []  # (frame, time, error message, who)
    for ex in client.kdc:
        if ex.error_code in CLOCK_ERRORS and ex.reply is not None:
            hits.append((ex.frame, ex.reply.time, ex.rep, f"{ex.realm or ''} KDC {ex.kdc_ip}".strip()))
    for leg in client.legs:
        err = leg.response_krb
        if err is not None and err.msg_type == 30 and err.error_code in CLOCK_ERRORS:
            hits.append((leg.response_frame or leg.request_frame, leg.response_time or leg.request_time, err,
                         f"MP {leg.mp_ip}"))
    # an expired TGT answered by the KDC is renewed silently: only the last error counts when nothing followed
    if not hits:
        return None
    frame, seen, err, who = hits[-1]
    renewed = any(ex.rep is not None and ex.rep.msg_type in (11, 13) and ex.frame > frame for ex in client.kdc)
    if err.error_code == 32 and "KDC" in who and renewed:
        return None  # an expired TGT is renewed silently by the client
    measures = []
    if err.stime is not None:
        measures.append(f"{who} clock {err.stime - seen:+.0f} s against the capture clock")
    if err.ctime is not None and err.stime is not None:
        measures.append(f"client clock {err.ctime - err.stime:+.0f} s against {who}")
    for leg in client.legs:
        if leg.date_header and leg.response_time:
            try:
                date = parsedate_to_datetime(leg.date_header).timestamp()
            except (TypeError, ValueError):
                continue
            measures.append(f"MP HTTP Date {date - leg.response_time:+.0f} s against the capture clock")
            break
    label = krb_error(err.error_code or 0).label()
    detail = "; ".join(measures) if measures else "offset not measurable from the capture"
    return Finding(
        CODE, "error",
        f"{who} rejected the client's Kerberos authenticator with {label}: the clocks differ by more than the "
        f"allowed 5 minutes ({detail}). The client cannot authenticate and is not approved.",
        fix="Fix time synchronisation: the client and MP must follow the domain hierarchy (w32tm /query /source; "
            "w32tm /resync), the PDC emulator of the forest root must have a reliable source; check virtual "
            "machine time integration. Tolerance is 5 minutes (Kerberos policy MaxClockSkew).",
        codes=[label, hresult(0x80090324).label()],
        evidence=[Evidence(frame, f"{label} from {who}" + (f" ({measures[0]})" if measures else ""))])
