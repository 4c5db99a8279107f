"""Rebuild the test captures: ``python -m lab.build [--only SCENARIO ...]`` (root; see docs/lab.md).

Each scenario gets fresh KDCs/DNS/MPs, a capture of the namespace's loopback, the MP logs, and a manifest
whose evidence frames are located in the finished capture with tshark. A scenario whose capture does not
show its intended outcome fails the build and leaves no files behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab import evidence, netns, procs, verify
from lab.capture import Capture
from lab.runner import Runner
from lab.scenarios import Outcome, Scenario, all_scenarios
from lab.world import World

REPO = Path(__file__).resolve().parents[1]
MAX_CAPTURE_BYTES = 2 * 1024 * 1024
#: A command to run beside the capture of every scenario, inside the lab's namespace (`{name}` is replaced
#: by the scenario's name): the live-mode tests start `kerbtrace live -i lo` this way. It is started once
#: its output says it is capturing, and stopped with SIGTERM after the capture.
LISTENER_ENV = "KERBTRACE_LAB_LISTENER"
LISTENER_READY = "capturing on"


def _start_listener(sc: Scenario, tmp: Path) -> subprocess.Popen[bytes] | None:
    template = os.environ.get(LISTENER_ENV)
    if not template:
        return None
    log = tmp / "listener.log"
    proc = procs.start(shlex.split(template.replace("{name}", sc.name)), log=log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise procs.LabError(f"the listener exited: {log.read_text(errors='replace')}")
        return LISTENER_READY in log.read_text(errors="replace")

    procs.wait_until(ready, 30.0, "the listener")
    return proc


def _stop_listener(proc: subprocess.Popen[bytes] | None, tmp: Path) -> None:
    if proc is None:
        return
    rc = procs.stop(proc, signal.SIGTERM, timeout=60.0)
    if rc not in (0, 1, 3):  # a listener's verdict statuses; anything else is its own failure
        raise procs.LabError(f"the listener ended with status {rc}: "
                             f"{(tmp / 'listener.log').read_text(errors='replace')}")


def _client_entry(o: Outcome, ev: list[dict[str, object]]) -> dict[str, object]:
    c = o.client
    # the MP the client tried to reach; a name that never resolved (stale SRV target) has no address
    mp: dict[str, object] = {"ip": c.mp.ip if o.mp_name == c.mp.fqdn else None, "name": o.mp_name,
                             "located_by": "dns_srv" if c.srv else "dns_a"}
    if c.srv:
        mp["srv_name"] = c.srv
    if c.mp.https:
        mp["port"] = c.mp.port
    entry = {"client_ip": c.ip, "hostname": c.hostname.upper(), "fqdn": c.fqdn, "realm": c.realm,
             "account": c.account, "smsid": c.smsid, "mp": mp,
             "approved": o.verdict == "approved", "verdict": o.verdict, "auth": o.auth, "cause": o.cause,
             "secondary_causes": list(o.secondary), "evidence_frames": sorted({int(e["frame"]) for e in ev}),
             "evidence": ev}
    if o.truth is not None:  # what the lab knows beyond what the capture shows
        entry["truth"] = dict(o.truth)
    return entry


def _fleet_problems(sc: Scenario, evidence_of: dict[str, list[dict[str, object]]]) -> list[str]:
    """Every lockout source named in the fleet findings failed pre-authentication in the capture."""
    out = []
    for item in sc.fleet:
        for ip in item.get("sources", []):  # type: ignore[union-attr]
            if not any(e["kind"] == "krb_error" and e["error_code"] == 24 for e in evidence_of.get(ip, [])):
                out.append(f"fleet {item['code']}: source {ip} has no KDC_ERR_PREAUTH_FAILED")
    return out


def _copy_logs(world: World, sc: Scenario, out: Path) -> None:
    """One IIS log and one MP_RegistrationManager.log per capture; with several MPs, one block per MP."""
    for name in ("iis.log", "MP_RegistrationManager.log"):
        parts = []
        for mp in sc.mps:
            f = world.mp_log_dir(mp) / name
            if f.exists():
                parts.append(f.read_text(errors="replace"))
        (out / f"{sc.name}.{name}").write_text("".join(parts))


def build_one(sc: Scenario, out: Path, keep: bool = False) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix=f"kerbtrace-lab-{sc.name}-"))
    pcap = out / f"{sc.name}.pcapng"
    world = sc.world(tmp)
    runner = Runner(world)
    started = time.monotonic()
    try:
        world.setup()
        world.start()
        cap = Capture(pcap)
        cap.start()
        listener = None
        try:
            listener = _start_listener(sc, tmp)
            outcomes = sc.run(runner)
        finally:
            cap.stop()
            runner.stop_background()
            _stop_listener(listener, tmp)
        _copy_logs(world, sc, out)
    finally:
        world.stop()
        netns.clear_routes(world.server_ips)
        (tmp / "runner.log").write_text("\n".join(runner.log) + "\n")
    try:
        rows = evidence.read_rows(pcap)
        clients = []
        errors = []
        evidence_of: dict[str, list[dict[str, object]]] = {}
        for o in outcomes:
            ev = evidence_of[o.client.ip] = evidence.locate(rows, o.client.ip, o.mp_name)
            errors += [f"{o.client.hostname}: {p}" for p in verify.problems(o, ev)]
            clients.append(_client_entry(o, ev))
        errors += _fleet_problems(sc, evidence_of)
        size = pcap.stat().st_size
        if size >= MAX_CAPTURE_BYTES:
            errors.append(f"capture is {size} bytes, limit {MAX_CAPTURE_BYTES}")
        if errors:
            raise procs.LabError(f"scenario {sc.name} did not produce its outcome:\n  " + "\n  ".join(errors)
                                 + f"\n  (lab files kept in {tmp})")
        manifest = {"capture": pcap.name, "scenario": sc.name, "description": sc.description,
                    "mps": [{"ip": mp.ip, "name": mp.fqdn, "realm": "CORP.LAB", **({"port": mp.port} if mp.https
                                                                                    else {})} for mp in sc.mps],
                    "clients": clients}
        if sc.fleet:
            manifest["fleet"] = sc.fleet
        (out / f"{sc.name}.json").write_text(json.dumps(manifest, indent=1) + "\n")
    except Exception:
        for suffix in (".pcapng", ".json", ".iis.log", ".MP_RegistrationManager.log"):
            f = out / f"{sc.name}{suffix}"
            if f.exists():  # never leave a capture that failed its check among the test data
                shutil.move(str(f), str(tmp / f.name))
        raise
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{sc.name}: {len(outcomes)} clients, {size} bytes, {len(rows)} frames of interest, "
          f"{time.monotonic() - started:.1f} s", flush=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    scenarios = all_scenarios()
    ap = argparse.ArgumentParser(prog="python -m lab.build", description=__doc__)
    ap.add_argument("--only", nargs="+", metavar="SCENARIO", choices=[s.name for s in scenarios])
    ap.add_argument("--out", type=Path, default=REPO / "captures")
    ap.add_argument("--keep-tmp", action="store_true", help="keep each scenario's KDC/MP/log directory")
    args = ap.parse_args(argv)
    if not netns.inside():
        return netns.run_inside(["-m", "lab.build", *argv], cwd=REPO)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for sc in scenarios:
        if args.only and sc.name not in args.only:
            continue
        try:
            build_one(sc, args.out, args.keep_tmp)
        except procs.LabError as exc:
            failed.append(sc.name)
            print(f"FAILED {sc.name}: {exc}", file=sys.stderr, flush=True)
    if failed:
        print(f"failed scenarios: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.umask(0o022)
    raise SystemExit(main())
