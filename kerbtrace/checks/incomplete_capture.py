"""incomplete_capture: the capture does not show enough of the exchange to decide.

Partial views are normal (a capture on the MP shows no client-KDC traffic; a span port may miss a
direction); this check says what is missing rather than guessing.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import approved
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.INCOMPLETE_CAPTURE
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "CSS article 'how client approval works': troubleshooting steps (capture on the client from before "
    "the SMS Agent Host starts)",
)


def missing_parts(client: ClientExchange) -> list[tuple[int, str]]:
    out = list(client.gaps)
    for leg in client.legs:
        if leg.status is None:
            out.append((leg.request_frame, f"no answer from the MP to {leg.method} {leg.uri} in the capture"))
    final = client.final_leg
    if final is not None and final.status == 200 and final.reply is None and final.mech != "kerberos":
        out.append((final.response_frame or final.request_frame, "the MP's registration reply could not be read"))
    if not client.legs and not client.tls and client.kdc:
        first = client.mp_spn_exchanges()[:1] or client.kdc[:1]
        out.append((first[0].frame, "the registration (HTTP to the MP) is not in the capture: taken on a DC, or the "
                    "MP's traffic was filtered out"))
    if any(leg.ap_req is not None for leg in client.legs) and not client.mp_spn_exchanges():
        out.append((next(leg.request_frame for leg in client.legs if leg.ap_req is not None),
                    "the client's ticket request (TGS) is not in the capture (captured on the MP, or the ticket "
                    "was cached)"))
    return out


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    parts = missing_parts(client)
    if not parts:
        return None
    decided = approved(client) is not None
    return Finding(
        CODE, Severity.INFO if decided else Severity.WARNING,
        "Parts of this client's exchange are not in the capture: " + "; ".join(text for _, text in parts[:3]) + ".",
        fix="Capture on the client and the MP at the same time from before the registration starts (restart "
            "ccmexec while capturing), with a large enough buffer and no snap length limit.",
        evidence=[Evidence(frame, text) for frame, text in parts[:5]])
