"""A client's exchange as a ladder diagram: lanes client / DNS / KDC(s) / MP, one arrow per timeline step.

Drawn from the `kerbtrace/1` document alone (the client's `timeline`, the `kerberos` list for the
KDCs' realms): as inline SVG for the HTML report and as fixed-width text for Markdown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from kerbtrace.constants import KDC_REQUESTS

MAX_ARROWS = 300  # a client retrying for hours: the rest is counted, the timeline table has it all
TEXT_LANE = 24  # characters per lane in the text ladder

_SNAME = re.compile(r"sname (\S+?)(?:,|$)")
_TICKET = re.compile(r"(?:ticket|TGT) (\S+?)(?:@|,|$)")
_KRB_CODE = re.compile(r"\b((?:KDC_ERR|KRB_AP_ERR|KRB_ERR)_[A-Z_]+)(?: \((\d+)\))?")
_APPROVAL = re.compile(r"ApprovalStatus=(\d+)")


@dataclass(slots=True)
class Lane:
    address: str
    role: str  # client, dns, kdc, mp, other
    title: str  # the role as read: client, DNS server, KDC, MP
    name: str = ""  # host name, realm or MP name


@dataclass(slots=True)
class Arrow:
    frame: int | None
    time: str | None  # HH:MM:SS.mmm
    src: int  # lane index
    dst: int
    label: str
    detail: str
    kind: str  # request, reply, ok, error, warn, dns


@dataclass(slots=True)
class Ladder:
    lanes: list[Lane] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    omitted: int = 0


def _role(event: str) -> str:
    if event.startswith("DNS"):
        return "dns"
    if event.startswith(("AS-", "TGS-", "KRB-ERROR", "KDC ")):
        return "kdc"
    if event.startswith(("CCM_POST", "HTTP")):
        return "mp"
    return "other"


def short_label(event: str, detail: str) -> str:
    """What the arrow says: the message and the one fact that matters about it."""
    detail = detail or ""
    if event.startswith("CCM_POST"):
        if "AP-REQ" in detail:
            return "CCM_POST + Kerberos AP-REQ"
        if "NTLM" in detail:
            return "CCM_POST + NTLM"
        if "anonymous" in detail:
            return "CCM_POST (anonymous)"
        return "CCM_POST"
    if event.startswith("HTTP"):
        label = event.replace("HTTP ", "", 1)
        code = _KRB_CODE.search(detail)
        if code:
            label += f" + {code.group(1)}"
        elif "AP-REP" in detail:
            label += " + AP-REP"
        elif "Negotiate" in detail and event.startswith("HTTP 401"):
            label += " Negotiate"
        approval = _APPROVAL.search(detail)
        if approval:
            label += f" ApprovalStatus={approval.group(1)}"
        return label
    if event in ("AS-REQ", "TGS-REQ"):
        m = _SNAME.search(detail)
        return f"{event} {m.group(1)}" if m else event
    if event in ("AS-REP", "TGS-REP"):
        m = _TICKET.search(detail)
        referral = "referral " if "referral" in detail else ""
        return f"{event} {referral}{m.group(1)}" if m else event
    if event == "KRB-ERROR":
        m = _KRB_CODE.search(detail)
        return f"KRB-ERROR {m.group(1)} ({m.group(2)})" if m and m.group(2) else f"KRB-ERROR {detail[:40]}"
    if event == "DNS query":
        return "DNS " + detail.split(" type ")[0][:64]
    if event == "DNS response":
        return "DNS " + detail[:64]
    return event


def _kind(event: str, detail: str) -> str:
    detail = detail or ""
    if event == "KDC unreachable":
        return "error"
    if event == "KRB-ERROR":
        return "warn" if "(25)" in detail else "error"  # PREAUTH_REQUIRED is the normal first answer
    if event.startswith("HTTP 2"):
        approval = _APPROVAL.search(detail)
        return "error" if approval and approval.group(1) != "1" else "ok"
    if event.startswith("HTTP"):
        return "error" if _KRB_CODE.search(detail) or not event.startswith("HTTP 401") else "warn"
    if event == "DNS response":
        return "dns" if "NOERROR" in detail else "error"
    if event.startswith("DNS"):
        return "dns"
    if event.endswith("-REP"):
        return "reply"
    return "request"


def _clock(time: str | None) -> str | None:
    if not time or "T" not in time:
        return None
    return time.split("T", 1)[1].rstrip("Z")[:12]


def kdc_realms(doc: dict, input_index: int | None = None) -> dict[str, str]:
    """KDC address -> the realm asked of it (from the requests in the `kerberos` list)."""
    out: dict[str, str] = {}
    for k in doc.get("kerberos", []):
        if input_index is not None and k.get("input") != input_index:
            continue
        if k.get("msg_type") in KDC_REQUESTS and k.get("transport") in ("udp", "tcp") and k.get("realm"):
            out.setdefault(k["dst"], k["realm"])
    return out


def build(client: dict, realms: dict[str, str] | None = None) -> Ladder:
    """The lanes and arrows of one client's timeline."""
    realms = realms or {}
    ladder = Ladder()
    index: dict[str, int] = {}
    mp = client.get("mp") or {}

    def lane(address: str, role: str) -> int:
        if address in index:
            return index[address]
        if role == "client":
            lane_ = Lane(address, role, "client", client.get("hostname") or client.get("fqdn") or "")
        elif role == "mp" or address == mp.get("ip"):
            lane_ = Lane(address, "mp", "MP", mp.get("name") or "")
        elif role == "kdc":
            lane_ = Lane(address, role, "KDC", realms.get(address, ""))
        elif role == "dns":
            lane_ = Lane(address, role, "DNS server")
        else:
            lane_ = Lane(address, role, "peer")
        index[address] = len(ladder.lanes)
        ladder.lanes.append(lane_)
        return index[address]

    me = client.get("client_ip") or "client"
    lane(me, "client")
    timeline = client.get("timeline") or []
    # lanes in a fixed order, whatever the order of the steps: client, DNS, KDCs, MP, others
    order = {"dns": 0, "kdc": 1, "mp": 2, "other": 3}
    peers: dict[str, str] = {}
    for step in timeline:
        for address in (step.get("src"), step.get("dst")):
            if address and address != me:
                peers.setdefault(address, _role(step.get("event", "")))
    if mp.get("ip"):
        peers.setdefault(mp["ip"], "mp")
    for address, role in sorted(peers.items(), key=lambda p: (order.get(p[1], 3), list(peers).index(p[0]))):
        lane(address, role)
    for step in timeline[:MAX_ARROWS]:
        event, detail = step.get("event", ""), step.get("detail") or ""
        src, dst = step.get("src") or me, step.get("dst") or me
        if event == "KDC unreachable":  # the ICMP error or reset comes back from the KDC's side
            src, dst = dst, src
        ladder.arrows.append(Arrow(step.get("frame"), _clock(step.get("time")), lane(src, "other"),
                                   lane(dst, "other"), short_label(event, detail), f"{event}: {detail}",
                                   _kind(event, detail)))
    ladder.omitted = max(0, len(timeline) - MAX_ARROWS)
    return ladder


COLOURS = {"request": "#1f4e79", "reply": "#2e7d32", "ok": "#2e7d32", "error": "#c62828", "warn": "#b26a00",
           "dns": "#6a6a6a"}
LANE_GAP = 230
LEFT = 110
TOP = 72
ROW = 26


def svg(ladder: Ladder, title: str = "") -> Markup:
    """Inline SVG: lane heads, lifelines, one labelled arrow per step (frame number and time on it)."""
    width = LEFT + LANE_GAP * max(1, len(ladder.lanes)) + 40
    height = TOP + ROW * (len(ladder.arrows) + 1) + 10
    x = [LEFT + LANE_GAP // 2 + i * LANE_GAP for i in range(len(ladder.lanes))]
    out = [f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "ladder diagram")}">',
           "<defs>" + "".join(
               f'<marker id="ah-{k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
               f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
               for k, c in COLOURS.items()) + "</defs>",
           f'<text x="4" y="{TOP - 8}" class="lh">frame · time</text>']
    for i, lane in enumerate(ladder.lanes):
        name = lane.name if len(lane.name) <= 34 else lane.name[:33] + "…"
        out.append(f'<rect x="{x[i] - 105}" y="4" width="210" height="52" rx="5" class="lane lane-{lane.role}"/>'
                   f'<text x="{x[i]}" y="19" text-anchor="middle" class="lt">{escape(lane.title)}</text>'
                   f'<text x="{x[i]}" y="34" text-anchor="middle" class="ls">{escape(name)}</text>'
                   f'<text x="{x[i]}" y="49" text-anchor="middle" class="ls">{escape(lane.address)}</text>'
                   f'<line x1="{x[i]}" y1="56" x2="{x[i]}" y2="{height - 6}" class="life"/>')
    for row, a in enumerate(ladder.arrows):
        y = TOP + ROW * row + 14
        colour = COLOURS[a.kind]
        frame = f"#{a.frame}" if a.frame is not None else ""
        out.append(f'<g class="step step-{a.kind}"><title>{escape(frame)} {escape(a.time or "")} '
                   f'{escape(a.detail)}</title>'
                   f'<text x="4" y="{y + 4}" class="ft">{escape(frame)} {escape(a.time or "")}</text>')
        if a.src == a.dst:
            out.append(f'<circle cx="{x[a.src]}" cy="{y}" r="4" fill="{colour}"/>')
            tx, anchor = x[a.src] + 8, "start"
        else:
            x1, x2 = x[a.src], x[a.dst]
            dash = ' stroke-dasharray="5,3"' if a.kind in ("reply", "ok", "dns") else ""
            out.append(f'<line x1="{x1}" y1="{y}" x2="{x2 - 6 if x2 > x1 else x2 + 6}" y2="{y}" stroke="{colour}" '
                       f'stroke-width="1.6"{dash} marker-end="url(#ah-{a.kind})"/>')
            tx, anchor = (min(x1, x2) + 8, "start")
        out.append(f'<text x="{tx}" y="{y - 4}" text-anchor="{anchor}" class="al" fill="{colour}">'
                   f'{escape(frame)} {escape(a.label)}</text></g>')
    if ladder.omitted:
        out.append(f'<text x="4" y="{height - 4}" class="ft">… {ladder.omitted} more steps in the timeline</text>')
    out.append("</svg>")
    return Markup("".join(out))


def text(ladder: Ladder) -> str:
    """The same ladder in fixed-width text, for a fenced block in Markdown."""
    n = len(ladder.lanes)
    centre = [i * TEXT_LANE + TEXT_LANE // 2 for i in range(n)]
    prefix = " " * 22

    def heads(values: list[str]) -> str:
        line = [" "] * (n * TEXT_LANE)
        for i, v in enumerate(values):
            v = v[: TEXT_LANE - 2]
            start = max(0, centre[i] - len(v) // 2)
            line[start:start + len(v)] = v
        return prefix + "".join(line).rstrip()

    lines = [heads([lane.title for lane in ladder.lanes]), heads([lane.name for lane in ladder.lanes]),
             heads([lane.address for lane in ladder.lanes])]
    for a in ladder.arrows:
        row = [" "] * (n * TEXT_LANE)
        for c in centre:
            row[c] = "|"
        lo, hi = sorted((centre[a.src], centre[a.dst]))
        if lo != hi:
            for i in range(lo + 1, hi):
                row[i] = "-"
            if centre[a.dst] > centre[a.src]:
                row[hi - 1] = ">"
            else:
                row[lo + 1] = "<"
        else:
            row[lo] = "*"
        frame = f"#{a.frame}" if a.frame is not None else ""
        lines.append(f"{frame:>7} {a.time or '':<13} " + "".join(row).rstrip() + "  " + a.label)
    if ladder.omitted:
        lines.append(f"… {ladder.omitted} more steps in the timeline")
    return "\n".join(lines)
