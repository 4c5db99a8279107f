"""approval_pending: the client registered but the MP did not approve it, with no authentication failure seen.

For instance Kerberos succeeded but ApprovalStatus is 0 (the hierarchy approves manually), or the
registration went to the anonymous endpoint, or the reply Status is an error/reset.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.common import approved
from kerbtrace.codes import CCM_APPROVAL_STATUS, CCM_REG_STATUS
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.APPROVAL_PENDING
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    'ConfigMgr hierarchy settings: client approval and conflicting records',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    final = client.final_leg
    if final is None or final.reply is None or approved(client) is not False:
        return None
    reply = final.reply
    status = CCM_REG_STATUS.get(reply.status, str(reply.status)) if reply.status is not None else "?"
    appr = CCM_APPROVAL_STATUS.get(reply.approval_status, str(reply.approval_status)) \
        if reply.approval_status is not None else "?"
    how = {"kerberos": "after a Kerberos authentication", "ntlm": "after an NTLM authentication"}.get(
        final.mech or "", "on an anonymous request")
    return Finding(
        CODE, Severity.ERROR if final.mech == "kerberos" else Severity.WARNING,
        f"The MP registered the client {how} but answered Status={reply.status} ({status}), "
        f"ApprovalStatus={reply.approval_status} ({appr}).",
        fix="Check Hierarchy Settings > Client Approval and Conflicting Records (automatic approval of computers in "
            "trusted domains), and approve the device in the console if it is legitimate. A conflicting record "
            "(another computer with the same GUID, duplicate_guid) leaves a registration pending too.",
        candidates=[Cause.DUPLICATE_GUID],
        evidence=[Evidence(final.response_frame or final.request_frame, f"registration reply Status={reply.status} "
                           f"ApprovalStatus={reply.approval_status}")])
