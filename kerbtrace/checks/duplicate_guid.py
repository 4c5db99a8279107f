"""duplicate_guid: two different computers register with the same ConfigMgr client GUID (SMSID)."""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.constants import Cause, Severity
from kerbtrace.exchanges.client import ClientExchange

CODE = Cause.DUPLICATE_GUID
#: Where an engineer reads more (shown with the fix).
REFERENCES = (
    "CSS article 'how client approval works': duplicate GUIDs (CCMDelCert)",
    'ConfigMgr: prepare the client for imaging (remove SMSCFG.INI and the SMS certificates)',
)


def check(client: ClientExchange, ctx: Context) -> Finding | None:
    if not client.smsid:
        return None
    users = ctx.smsid_users.users(client.smsid.upper())
    me = (client.hostname or client.ip).upper()
    others = sorted(users - {me})
    if not others:
        return None
    evidence = []
    if client.smsid_frame is not None:
        evidence.append(Evidence(client.smsid_frame, f"registration request with SMSID {client.smsid}"))
    reply = client.final_reply
    if reply is not None:
        evidence.append(Evidence(reply[0], f"MP reply Status={reply[1]} ApprovalStatus={reply[2]}"))
    return Finding(
        CODE, Severity.ERROR,
        f"{client.hostname or client.ip} registers with SMSID {client.smsid}, which {', '.join(others)} also "
        "uses: duplicate GUIDs (usually from an image captured with the ConfigMgr client identity) make the site "
        "treat the computers as one and leave registrations pending or conflicting.",
        fix="On the duplicate computer(s) stop ccmexec, delete %windir%\\SMSCFG.INI and the SMS certificates "
            "(ccmdelcert / certutil -delstore SMS), start ccmexec so a new GUID is generated; resolve Conflicting "
            "Records in the console; fix the image (no SMSCFG.INI in it).",
        codes=[], evidence=evidence)
