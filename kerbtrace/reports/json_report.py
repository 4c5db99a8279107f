"""The `kerbtrace/1` JSON document (documented in docs/json-schema.md)."""

from __future__ import annotations

import itertools
import json
from typing import IO

from kerbtrace.analysis import SCHEMA, Analysis, ClientResult, iso
from kerbtrace.reports.fix_script import FixScript

#: Entries of a list encoded in one call of the JSON encoder (`_write_list`).
BATCH = 256


def client_json(result: ClientResult) -> dict:
    c = result.client
    return {
        "input": result.input,
        "client_ip": c.ip,
        "hostname": c.hostname,
        "fqdn": c.fqdn,
        "smsid": c.assigned_smsid or c.smsid,
        "realm": c.realm,
        "account": c.account,
        "mp": {"ip": c.mp_ip, "name": c.mp_name},
        "verdict": result.verdict,
        "view": dict(c.view),
        "auth": c.auth,
        "causes": [_placed_finding(result, f) for f in result.findings],
        "context": [_placed(result, e, e.as_json()) for e in result.context],
        "timeline": [_placed(result, e, {"frame": e.frame, "time": iso(e.time), "src": e.src, "dst": e.dst,
                                         "event": e.event, "detail": e.detail}) for e in c.timeline],
    }


def _placed_finding(result: ClientResult, finding) -> dict:
    out = finding.as_json()
    out["evidence"] = [_placed(result, e, item) for e, item in zip(finding.evidence, out["evidence"], strict=True)]
    return out


def _placed(result: ClientResult, item, out: dict) -> dict:
    """A frame of a ring read as one capture as Wireshark numbers it in its file, with `input` when that file
    is not the client's own (its first frame's)."""
    if result.stitch is None or not item.frame or getattr(item, "source", "capture") != "capture":
        return out
    where, out["frame"] = result.where(item.frame)
    if where != result.input:
        out["input"] = where
    return out


def kerberos_json(k) -> dict:
    return {"input": k.input, "frame": k.frame, "time": iso(k.time), "src": k.src, "dst": k.dst,
            "transport": k.transport, "msg_type": k.msg_type, "error_code": k.error_code, "realm": k.realm,
            "sname": k.sname, "cname": k.cname}


def log_client_json(verdict) -> dict:
    """A client as the logs alone describe it (a run without captures)."""
    return {"input": None, "source": "logs", **verdict.as_json()}


def context_json(analysis: Analysis) -> dict:
    """What the run was given beside the captures, and how each part joined each capture file."""
    beside = analysis.beside
    out: dict = {"logs": [], "dc_events": None, "directory": None, "keytab": None}
    if beside is None:
        return out
    joined = list(enumerate(analysis.joins))
    if beside.logs is not None:
        out["logs"] = [{"input": i, **f.as_json()} for i, j in joined for f in j.logs]
        if not analysis.inputs:
            out["logs"] = [{"input": None, "file": f.path, "source": f.source, "offset_seconds": None,
                            "offset_pairs": 0, "matched": None, "unmatched": None, "records": len(f.records)}
                           for f in beside.logs.files]
    if beside.dc_events is not None:
        log = beside.dc_events
        out["dc_events"] = {"files": list(log.files), "records": log.records, "events": len(log.events),
                            "dropped": log.dropped,
                            "joins": [{"input": i, "offset_seconds": j.dc_offset, "clients_matched": j.dc_clients}
                                      for i, j in joined if j.dc_given]}
    if beside.directory is not None:
        d = beside.directory
        out["directory"] = {"sources": list(d.sources), "problems": len(d.problems),
                            "online": d.online}
    if beside.keytab is not None:
        out["keytab"] = {"file": beside.keytab.path, "principals": beside.keytab.principals}
    return out


def to_json_header(analysis: Analysis) -> dict:
    return {
        "schema": SCHEMA,
        "inputs": [{"path": i.path, "format": i.format, "packets": i.packets, "start": iso(i.start),
                    "end": iso(i.end), "legs": i.legs.as_json(), "notes": list(i.notes),
                    **({"error": i.error} if i.error else {})} for i in analysis.inputs],
    }


def to_json(analysis: Analysis) -> dict:
    """The whole document as one dict (for callers that want it in memory)."""
    return {**to_json_header(analysis),
            "clients": [client_json(r) for r in analysis.clients] + [log_client_json(v) for v in analysis.log_clients],
            "fleet": [f.as_json() for f in analysis.fleet],
            "kerberos": [kerberos_json(k) for k in analysis.kerberos],
            "context": context_json(analysis),
            **_fix_script(analysis),
            "warnings": analysis.diag.as_json()}


def write_json(analysis: Analysis, out: IO[str]) -> None:
    """Write the document piece by piece: the report can hold 100k entries, and building it whole
    as one string would double the peak memory of a large run. json's C encoder (no indent) does the work."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    doc = to_json_header(analysis)
    out.write('{"schema":' + encode(doc["schema"]) + ',"inputs":' + encode(doc["inputs"]))
    fixes = FixScript(analysis)  # gathered in the clients' pass (they may be read from disk, kerbtrace.spill)
    _write_list(out, "clients", itertools.chain((client_json(r) for r in fixes.through(analysis.clients)),
                                                (log_client_json(v) for v in analysis.log_clients)), encode)
    _write_list(out, "fleet", (f.as_json() for f in analysis.fleet), encode)
    _write_list(out, "kerberos", (kerberos_json(k) for k in analysis.kerberos), encode)
    out.write(',"context":' + encode(context_json(analysis)))
    script = fixes.text()
    if script:
        out.write(',"fix_script":' + encode(script))
    out.write(',"warnings":' + encode(analysis.diag.as_json()) + "}\n")


def _fix_script(analysis: Analysis) -> dict:
    """The run's fix script (PowerShell text, every command commented) when a finding has fix commands."""
    script = analysis.fix_script
    return {"fix_script": script} if script else {}


def _write_list(out: IO[str], name: str, items, encode) -> None:
    """The items as a JSON array, encoded BATCH at a time (one call of the encoder per item cost 40 % more on the
    60,000 Kerberos entries of a 1 GB capture): the same text, never the whole list in memory."""
    out.write(f',"{name}":[')
    items = iter(items)
    first = True
    while batch := list(itertools.islice(items, BATCH)):
        if not first:
            out.write(",")
        out.write(encode(batch)[1:-1])
        first = False
    out.write("]")
