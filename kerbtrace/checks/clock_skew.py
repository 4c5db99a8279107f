"""clock_skew: a KDC or the MP rejected the client's authenticator because the clocks differ.

KRB_AP_ERR_SKEW (37), KRB_AP_ERR_TKT_NYV (33) or KRB_AP_ERR_TKT_EXPIRED (32). The offsets are
measured from the cleartext clocks the capture holds, each against the capture's own clock: the
client's from the SentTime of its CCM message, the MP's and KDCs' from the stime of their errors and
the MP's HTTP Date header, and client against server directly from ctime/stime when present. With the
MP's keytab the client's clock is read exactly, from the authenticator of the AP-REQ it presented.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from kerbtrace.checks import fixes
from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.beside import keytab_evidence, keytab_proof
from kerbtrace.checks.common import CLOCK_ERRORS, kerberos_accepted
from kerbtrace.codes import hresult, krb_error
from kerbtrace.constants import KDC_REPLIES, Cause, KrbError, KrbMsg, Severity
from kerbtrace.context.keytab import TicketProof
from kerbtrace.context.text import parse_time
from kerbtrace.exchanges.client import AuthLeg, ClientExchange

CODE = Cause.CLOCK_SKEW
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "MS-KILE 3.3.1 and the Kerberos policy 'Maximum tolerance for computer clock synchronization' (5 minutes)",
    'Windows Time service tools: w32tm',
)
TOLERANCE = 300.0  # seconds: Kerberos policy MaxClockSkew default
#: What each clock error says happened to the side that answered it.
_WHAT = {
    KrbError.KRB_AP_ERR_SKEW: "the clocks differ by more than the allowed 5 minutes",
    KrbError.KRB_AP_ERR_TKT_NYV: "the ticket is not yet valid for it (its clock is behind the issuing KDC's)",
    KrbError.KRB_AP_ERR_TKT_EXPIRED:
        "the ticket has expired for it (its clock is ahead, or the ticket is really too old)",
}

def _secs(value: float) -> str:
    return f"{round(value) or 0:+d} s"


def client_offset(client: ClientExchange) -> tuple[float, int] | None:
    """The client's clock minus the capture clock, from the SentTime of its CCM messages."""
    for leg in client.legs:
        ccm = leg.request_ccm
        stamp = (ccm.sent_time or ccm.timestamp) if ccm is not None else None
        sent = parse_time(stamp) if stamp else None  # a stamp without a zone is UTC, not this machine's zone
        if sent is not None:
            return sent - leg.request_time, leg.request_frame
    return None


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if kerberos_accepted(client):
        return None
    hits = []  # (frame, capture time, error message, who)
    for ex in client.kdc:
        if ex.error_code in CLOCK_ERRORS and ex.reply is not None:
            hits.append((ex.frame, ex.reply.time, ex.rep, f"{ex.realm or ''} KDC {ex.kdc_ip}".strip()))
    for leg in client.legs:
        err = leg.response_krb
        if err is not None and err.msg_type == KrbMsg.KRB_ERROR and err.error_code in CLOCK_ERRORS:
            hits.append((leg.response_frame or leg.request_frame, leg.response_time or leg.request_time, err,
                         f"MP {leg.mp_ip}"))
    if not hits:
        return None
    frame, seen, err, who = hits[-1]
    renewed = any(ex.rep is not None and ex.rep.msg_type in KDC_REPLIES and ex.frame > frame for ex in client.kdc)
    if err.error_code == KrbError.KRB_AP_ERR_TKT_EXPIRED and "KDC" in who and renewed:
        return None  # an expired TGT is renewed silently by the client
    measures: list[str] = []
    offsets: dict[str, float] = {}
    exact = authenticator_offset(client, ctx)
    if exact is not None:  # the client's own clock, read inside the AP-REQ the MP's keytab opens
        offsets["the client's"] = exact[0]
        measures.append(f"client {_secs(exact[0])} (authenticator time in the AP-REQ, opened with the MP's keytab, "
                        f"frame {exact[1].request_frame})")
    mine = client_offset(client)
    if mine is not None and exact is None:
        offsets["the client's"] = mine[0]
        measures.append(f"client {_secs(mine[0])} (SentTime of its CCM message, frame {mine[1]})")
    if err.stime is not None:
        offsets[f"the {who}"] = err.stime - seen
        measures.append(f"{who} {_secs(err.stime - seen)} (stime of its error)")
    if err.ctime is not None and err.stime is not None:
        offsets.setdefault("the client's", err.ctime - err.stime + (err.stime - seen))
        measures.append(f"client {_secs(err.ctime - err.stime)} against {who} (ctime/stime)")
    for leg in client.legs:
        if leg.date_header and leg.response_time:
            try:
                date = parsedate_to_datetime(leg.date_header).timestamp()
            except (TypeError, ValueError):
                continue
            offsets.setdefault("the MP's", date - leg.response_time)
            measures.append(f"MP {_secs(date - leg.response_time)} (HTTP Date)")
            break
    label = krb_error(err.error_code or 0).label()
    detail = "; ".join(measures) if measures else "no clock is readable in the capture"
    off = [name for name, value in offsets.items() if abs(value) > TOLERANCE]
    culprit = f" Off by more than 5 minutes: {' and '.join(off)} clock." if off else ""
    what = _WHAT[err.error_code or KrbError.KRB_AP_ERR_SKEW]
    skew_at_mp = who.startswith("MP") and err.error_code == KrbError.KRB_AP_ERR_SKEW
    codes = [label] + ([hresult(0x80090324).label()] if skew_at_mp else [])
    return Finding(
        CODE, Severity.ERROR,
        f"{who} rejected the client's Kerberos authenticator with {label}: {what}. Offsets against the capture "
        f"clock: {detail}.{culprit} The client cannot authenticate and is not approved.",
        fix="Fix time synchronisation: the client and MP must follow the domain hierarchy (w32tm /query /source; "
            "w32tm /resync), the PDC emulator of the forest root must have a reliable source; check virtual "
            "machine time integration. Tolerance is 5 minutes (Kerberos policy MaxClockSkew).",
        codes=codes,
        evidence=[Evidence(frame, f"{label} from {who}")]
        + ([Evidence(mine[1], f"client clock {mine[0]:+.0f} s in its CCM SentTime")] if mine else [])
        + ([keytab_evidence(ctx, exact[1], exact[2])] if exact else []),
        fix_commands=[fixes.CHECK_TIME_SOURCE, fixes.RESYNC_TIME])


def authenticator_offset(client: ClientExchange, ctx: Context) -> tuple[float, AuthLeg, TicketProof] | None:
    """The client's clock minus the capture clock, exactly: the ctime of the last AP-REQ the MP's keytab
    opens against the capture time of its frame."""
    for leg in reversed(client.legs):
        proof = keytab_proof(ctx, leg) if leg.ap_req is not None else None
        if proof is not None and proof.opened and proof.authenticator_time is not None:
            return proof.authenticator_time - leg.request_time, leg, proof
    return None
