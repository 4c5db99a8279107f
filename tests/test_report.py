"""`kerbtrace report`: the escalation report in HTML, Markdown and JSON, from captures or from a
kerbtrace/1 document, self-contained, with every client's findings, ladder and Wireshark filter."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

from kerbtrace.analysis import analyze
from kerbtrace.cli import main
from kerbtrace.reports import ladder
from kerbtrace.reports.json_report import to_json
from kerbtrace.reports.render import render
from tests.conftest import CAPTURES, timeless_text

MIXED = str(CAPTURES / "mixed.pcapng")


@cache
def document(capture: str) -> dict:
    return to_json(analyze([str(CAPTURES / capture)], progress=False))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kerbtrace", *args], capture_output=True, text=True, timeout=300)


def test_report_from_capture_and_from_json_are_the_same(tmp_path: Path):
    doc_path, a, b = tmp_path / "run.json", tmp_path / "a.html", tmp_path / "b.html"
    assert run("analyze", MIXED, "--json", str(doc_path)).returncode == 1
    out = run("report", MIXED, "-o", str(a))
    assert out.returncode == 1 and "Traceback" not in out.stderr  # as analyze: some clients not approved
    assert run("report", str(doc_path), "-o", str(b)).returncode == 1
    assert timeless_text(a.read_text()) == timeless_text(b.read_text())  # runs a minute boundary apart
    js = tmp_path / "r.json"
    assert run("report", str(doc_path), "--format", "json", "-o", str(js)).returncode == 1
    assert json.loads(js.read_text()) == json.loads(doc_path.read_text())


def test_format_follows_the_suffix(tmp_path: Path):
    for name, first in (("r.md", "# ConfigMgr client approval"), ("r.html", "<!DOCTYPE html>"), ("r.json", "{")):
        out = tmp_path / name
        assert main(["report", str(CAPTURES / "ok_same_realm.pcapng"), "--no-progress", "-o", str(out)]) == 0
        assert (tmp_path / name).read_text().startswith(first)
    out = run("report", str(CAPTURES / "ok_same_realm.pcapng"), "--format", "md", "-o", "-")
    assert out.returncode == 0 and out.stdout.startswith("# ConfigMgr client approval") and "```text" in out.stdout


def test_html_is_self_contained_and_shows_every_client():
    doc = document("mixed.pcapng")
    html = render(doc, "html")
    # nothing loaded from elsewhere: no external script, stylesheet, font, image or frame
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", html, re.I)
    assert "<link" not in html and "@import" not in html and not re.search(r"url\((?!#)", html)
    assert not re.search(r"<(?:img|iframe|object|embed)\b", html)
    assert "@media print" in html
    clients = doc["clients"]
    assert html.count('<svg class="ladder"') == len(clients)
    assert html.count('<section class="client') == len(clients)
    assert html.count('<svg class="chart"') == 1
    for c in clients:
        assert f'ip.addr == {c["client_ip"]} &amp;&amp;' in html
        for cause in c["causes"]:
            for e in cause["evidence"]:
                assert f"frame.number == {e['frame']}" in html
    verdicts = {v: sum(c["verdict"] == v for c in clients) for v in ("approved", "not_approved")}
    assert f'<div class="card not_approved"><div class="n">{verdicts["not_approved"]}</div>' in html
    assert f'<div class="card approved"><div class="n">{verdicts["approved"]}</div>' in html
    embedded = re.search(r'<script type="application/json" id="kerbtrace-document">(.*?)</script>', html, re.S)
    assert embedded and json.loads(embedded.group(1)) == doc


def test_wireshark_filter_spans_exactly_the_clients_frames():
    doc = document("spn_on_other_account.pcapng")
    (client,) = doc["clients"]
    frames = [s["frame"] for s in client["timeline"]]
    from kerbtrace.reports.summary import exchange_filter

    assert exchange_filter(client) == (f"ip.addr == {client['client_ip']} && (kerberos || http || dns || tls || icmp)"
                                       f" && frame.number >= {min(frames)} && frame.number <= {max(frames)}")


def test_ladder_has_client_kdcs_and_mp_lanes_with_every_referral_hop():
    doc = document("ok_child_referral.pcapng")
    (client,) = doc["clients"]
    lad = ladder.build(client, ladder.kdc_realms(doc))
    roles = [lane.role for lane in lad.lanes]
    assert roles[0] == "client" and roles[-1] == "mp" and roles.count("kdc") == 2
    kdc_names = {lane.name for lane in lad.lanes if lane.role == "kdc"}
    assert kdc_names == {"CHILD.CORP.LAB", "CORP.LAB"}
    assert [a.frame for a in lad.arrows] == [s["frame"] for s in client["timeline"]]
    labels = [a.label for a in lad.arrows]
    assert "TGS-REP referral krbtgt/CORP.LAB" in labels
    assert labels.count("TGS-REQ HTTP/mp01.corp.lab") == 2  # one per realm of the path
    assert any(lbl.startswith("200 OK") and "ApprovalStatus=1" in lbl for lbl in labels)
    # the arrows point the right way: requests to the KDC of the request's realm, the reply back
    by_frame = {a.frame: a for a in lad.arrows}
    for step in client["timeline"]:
        arrow = by_frame[step["frame"]]
        assert lad.lanes[arrow.src].address == step["src"] and lad.lanes[arrow.dst].address == step["dst"]
    text = ladder.text(lad)
    assert text.count("\n") == len(client["timeline"]) + 2
    assert "|<" in text and ">|" in text
    svg = str(ladder.svg(lad))
    assert svg.count("<line x1=") == len(client["timeline"]) + len(lad.lanes)
    for step in client["timeline"]:
        assert f"#{step['frame']} {step['time'][11:23]}" in svg


def test_unreachable_kdc_is_drawn_from_the_kdc_in_red():
    (client,) = document("kdc_unreachable.pcapng")["clients"]
    lad = ladder.build(client)
    unreachable = [a for a in lad.arrows if a.label == "KDC unreachable"]
    assert unreachable and all(a.kind == "error" and lad.lanes[a.dst].role == "client" for a in unreachable)


def test_markdown_has_the_same_content():
    doc = document("mixed.pcapng")
    md = render(doc, "md")
    assert md.count("```text\n") == len(doc["clients"])
    assert md.count("Wireshark display filter") == len(doc["clients"])
    for c in doc["clients"]:
        assert f"| {c['client_ip']} |" in md
        assert f"`{c['causes'][0]['code']}`" in md
    # every table row has as many cells as its header
    for block in re.findall(r"(?:^\|.*\|\n)+", md, re.M):
        rows = [r for r in block.splitlines() if not re.fullmatch(r"\|[-:|]+\|", r)]
        widths = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
        assert len(widths) == 1, block[:200]


def test_new_document_fields_are_rendered_when_present():
    """Fields later versions add: the capture's view, fleet findings, log evidence, a fix script."""
    doc = copy.deepcopy(document("user_lockout.pcapng"))
    client = doc["clients"][0]
    client["view"] = {"mp_http": "clear", "kdc": "seen", "dns": "seen", "label": "full"}
    client["causes"][0]["evidence"].append({"source": "iis", "file": "u_ex261204.log", "line": 17,
                                            "text": "401 2 2148074254"})
    doc["fleet"] = [{"code": "lockout_sources", "principal": "smsclient@CORP.LAB",
                     "sources": ["127.0.1.21", "127.0.1.22"], "summary": "Three clients lock the account.",
                     "evidence": [{"source": "dc_event", "file": "Security.evtx", "line": 4, "text": "4740"}]}]
    doc["fix_script"] = "# remove the duplicate SPN\nsetspn -D HTTP/mp01.corp.lab CORP\\websvc\n"
    html, md = render(doc, "html"), render(doc, "md")
    for text in (html, md):
        assert "iis u_ex261204.log:17" in text
        assert "dc_event Security.evtx:4" in text
        assert "lockout_sources" in text and "127.0.1.22" in text
        assert "setspn -D HTTP/mp01.corp.lab" in text
        assert "full view" in text
    assert '<pre id="fix-script-text">' in html and "```powershell" in md
    # and absent fields are simply absent
    plain = render(document("ok_same_realm.pcapng"), "html")
    assert 'id="fix-script"' not in plain and 'id="fleet"' not in plain


def test_text_from_the_capture_is_escaped():
    doc = copy.deepcopy(document("ok_same_realm.pcapng"))
    doc["clients"][0]["hostname"] = '<script>alert("x")</script>'
    doc["clients"][0]["timeline"][0]["detail"] = "</script><img src=x onerror=alert(1)>"
    html = render(doc, "html")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html
    embedded = re.search(r'<script type="application/json" id="kerbtrace-document">(.*?)</script>', html, re.S)
    assert json.loads(embedded.group(1))["clients"][0]["hostname"].startswith("<script>")
    md = render(doc, "md")
    assert "<script>" not in md.split("```text")[0]


def test_bad_inputs_get_a_clear_error(tmp_path: Path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "kerbtrace/1", "clients": [')
    out = run("report", str(broken), "-o", str(tmp_path / "r.html"))
    assert out.returncode == 2 and "not JSON (line 1" in out.stderr and "Traceback" not in out.stderr
    other = tmp_path / "other.json"
    other.write_text('{"schema": "something/3"}')
    out = run("report", str(other), "-o", str(tmp_path / "r.html"))
    assert out.returncode == 2 and "not a kerbtrace/1 document" in out.stderr
    out = run("report", str(other), MIXED, "-o", str(tmp_path / "r.html"))
    assert out.returncode == 2 and "on its own" in out.stderr
    out = run("report", str(CAPTURES / "ok_same_realm.pcapng"), "-o", str(tmp_path / "no" / "such" / "dir.html"))
    assert out.returncode == 2 and "cannot write" in out.stderr and "Traceback" not in out.stderr
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00not a capture at all")
    out = run("report", str(junk), "-o", str(tmp_path / "j.html"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "junk.pcap" in (tmp_path / "j.html").read_text()  # the report still says what was not read


def test_report_shares_analyze_options():
    from kerbtrace.cli import build_parser

    parser = build_parser()
    actions = {name: sub for name, sub in parser._subparsers._group_actions[0].choices.items()}  # noqa: SLF001
    analyze_opts = {o for a in actions["analyze"]._actions for o in a.option_strings} - {"--json", "-v", "--verbose"}
    report_opts = {o for a in actions["report"]._actions for o in a.option_strings}
    assert analyze_opts <= report_opts
    assert {"-o", "--format", "--redact", "--redact-key"} <= report_opts


def test_runs_a_minute_apart_compare_equal_wherever_the_fix_script_wraps_its_time():
    """Tests compare the reports of two runs without the minute the fix script names; its comment lines wrap at
    any space, also inside "<date> <time> UTC" (a path of the right length put UTC on the next line once)."""
    import json

    from kerbtrace.reports.fix_script import _comment

    for n in range(80):
        path = "/tmp/" + "x" * n + "/gen.pcap"
        early, late = ("\n".join(_comment(f"Inputs: {path}. Generated 2026-12-06 05:{m} UTC.")) for m in ("29", "30"))
        assert early != late
        assert timeless_text(early) == timeless_text(late)
        assert timeless_text(json.dumps(early)) == timeless_text(json.dumps(late))  # as a report's JSON holds it
