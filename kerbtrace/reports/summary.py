"""What the escalation report shows, computed from the `kerbtrace/1` document only.

The renderers (HTML and Markdown templates) read this view and nothing else, so both carry the
same content, and the document may grow new fields (views, fleet findings, log evidence, a fix
script) without the templates reaching into the analysis.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from kerbtrace.constants import KDC_REQUESTS, Verdict
from kerbtrace.reports import chart, ladder

VERDICT_ORDER = {Verdict.NOT_APPROVED: 0, Verdict.INCONCLUSIVE: 1, Verdict.APPROVED: 2}
MAX_DETAILED = 1000  # client sections in full; past that the table still lists every client


class DocumentError(ValueError):
    """The input is not a readable `kerbtrace/1` document."""


def looks_like_document(path: str) -> bool:
    """A JSON text (a capture never starts with `{`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
    except OSError:
        return False
    return head.startswith(b"{")


def load_document(path: str) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(f"{path}: cannot read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("kerbtrace/1"):
        raise DocumentError(f"{path}: not a kerbtrace/1 document (schema {doc.get('schema')!r})"
                            if isinstance(doc, dict) else f"{path}: not a kerbtrace/1 document")
    if not isinstance(doc.get("clients", []), list):
        raise DocumentError(f"{path}: 'clients' is not a list")
    return doc


def exchange_filter(client: dict) -> str:
    """The Wireshark display filter that shows exactly this client's exchange."""
    ip = client.get("client_ip") or ""
    field = "ipv6.addr" if ":" in ip else "ip.addr"
    frames = [s["frame"] for s in client.get("timeline") or [] if isinstance(s.get("frame"), int)]
    for cause in client.get("causes") or []:
        frames += [e["frame"] for e in cause.get("evidence") or []
                   if e.get("source", "capture") == "capture" and isinstance(e.get("frame"), int)]
    base = f"{field} == {ip} && (kerberos || http || dns || tls || icmp)"
    if frames:
        return f"{base} && frame.number >= {min(frames)} && frame.number <= {max(frames)}"
    return base


def evidence_ref(item: dict) -> str:
    """Where to verify one piece of evidence: a Wireshark filter, or file:line of a log."""
    source = item.get("source", "capture")
    if source == "capture" and item.get("frame") is not None:
        return f"frame.number == {item['frame']}"
    where = item.get("file") or source
    if item.get("line") is not None:
        where = f"{where}:{item['line']}"
    return f"{source} {where}" if item.get("file") and source != "capture" else str(where)


def _refs(finding: dict) -> list[tuple[str, str]]:
    return [(evidence_ref(e), e.get("text", "")) for e in finding.get("evidence") or [] if isinstance(e, dict)]


def _client_view(index: int, client: dict, inputs: list[dict], realms_by_input: dict) -> dict:
    causes = client.get("causes") or []
    primary = causes[0]["code"] if causes else "—"
    view = client.get("view") if isinstance(client.get("view"), dict) else None
    inp = client.get("input", 0)
    steps = ladder.build(client, realms_by_input.get(inp))
    return {
        "id": f"client-{index}",
        "index": index,
        "doc": client,
        "name": client.get("hostname") or client.get("fqdn") or client.get("client_ip") or f"client {index}",
        "mp": chart.mp_label(client),
        "primary": primary,
        "view": view,
        "view_label": (view or {}).get("label", ""),
        "time": chart.registration_time(client),
        "input_path": inputs[inp]["path"] if isinstance(inp, int) and 0 <= inp < len(inputs) else "",
        "filter": exchange_filter(client),
        "ladder": steps,
        "ladder_svg": ladder.svg(steps, f"ladder of {client.get('client_ip')}"),
        "ladder_text": ladder.text(steps),
        "causes": [{**c, "evidence_refs": _refs(c)} for c in causes if isinstance(c, dict)],
    }


def kdcs(doc: dict) -> list[dict]:
    seen: dict[str, set] = {}
    for k in doc.get("kerberos", []):
        if k.get("transport") not in ("udp", "tcp"):
            continue
        address = k.get("dst") if k.get("msg_type") in KDC_REQUESTS else k.get("src")
        if address:
            seen.setdefault(address, set())
            if k.get("msg_type") in KDC_REQUESTS and k.get("realm"):
                seen[address].add(k["realm"])
    return [{"address": a, "realms": sorted(r)} for a, r in seen.items()]


def build(doc: dict) -> dict:
    """The report's view of one document."""
    clients = [c for c in doc.get("clients", []) if isinstance(c, dict)]
    inputs = [i for i in doc.get("inputs", []) if isinstance(i, dict)]
    realms_by_input = {i: ladder.kdc_realms(doc, i) for i in range(len(inputs))} or {0: ladder.kdc_realms(doc)}
    order = sorted(range(len(clients)), key=lambda i: (VERDICT_ORDER.get(clients[i].get("verdict"), 1), i))
    detailed = set(order[:MAX_DETAILED])
    views = [_client_view(i, c, inputs, realms_by_input) if i in detailed else
             {"id": f"client-{i}", "index": i, "doc": c, "name": c.get("hostname") or c.get("client_ip"),
              "mp": chart.mp_label(c), "primary": (c.get("causes") or [{}])[0].get("code", "—"),
              "view_label": ((c.get("view") or {}) if isinstance(c.get("view"), dict) else {}).get("label", ""),
              "time": chart.registration_time(c), "detailed": False}
             for i, c in enumerate(clients)]
    by_mp: dict[str, Counter] = {}
    by_realm: dict[str, Counter] = {}
    for c in clients:
        verdict = c.get("verdict", Verdict.INCONCLUSIVE)
        by_mp.setdefault(chart.mp_label(c), Counter())[verdict] += 1
        by_realm.setdefault(c.get("realm") or "(no Kerberos seen)", Counter())[verdict] += 1
    starts = [t for t in (chart.parse_time(i.get("start")) for i in inputs) if t is not None]
    ends = [t for t in (chart.parse_time(i.get("end")) for i in inputs) if t is not None]
    failing = [v for v in views if v["doc"].get("verdict") != Verdict.APPROVED]
    return {
        "doc": doc,
        "schema": doc.get("schema"),
        "redacted": doc.get("redacted"),
        "inputs": inputs,
        "packets": sum(i.get("packets") or 0 for i in inputs),
        "span": (chart.clock(min(starts), True), chart.clock(max(ends), True)) if starts and ends else None,
        "verdicts": Counter(c.get("verdict", Verdict.INCONCLUSIVE) for c in clients),
        "causes": Counter(v["primary"] for v in views).most_common(),
        "by_mp": sorted(by_mp.items()),
        "by_realm": sorted(by_realm.items()),
        "realms": sorted({c["realm"] for c in clients if c.get("realm")}),
        "kdcs": kdcs(doc),
        "client_views": Counter(v["view_label"] for v in views if v["view_label"]).most_common(),
        "fleet": [{**f, "evidence_refs": _refs(f)} for f in doc.get("fleet") or [] if isinstance(f, dict)],
        "fix_script": doc.get("fix_script") if isinstance(doc.get("fix_script"), str) else None,
        "warnings": doc.get("warnings") or [],
        "clients": views,
        "details": [views[i] for i in order[:MAX_DETAILED]],
        "omitted": max(0, len(clients) - MAX_DETAILED),
        "failing": len(failing),
        "failure_causes": Counter(v["primary"] for v in failing).most_common(),
        "chart_svg": chart.svg(clients),
        "busy": chart.busy_intervals(clients),
    }
