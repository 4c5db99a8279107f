"""The benchmark: kerbtrace vs tshark on one large MP-like capture (wall time, packets/s, peak RSS).

    python benchmarks/run.py [--capture F] [--size-mb N] [--also-dpkt] [--memory-growth]

Generates the capture when missing (``make_capture.py``), then runs each tool as a child process and reads
the child's peak RSS from ``os.wait4`` (ru_maxrss), so the numbers belong to that process alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_capture  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TSHARK_FIELDS = ["-e", "frame.number", "-e", "kerberos.msg_type", "-e", "http.request.method"]


def measure(cmd: list[str], stdout=subprocess.DEVNULL) -> dict:
    """Run cmd to completion; wall seconds, exit status, peak RSS (MB) of the child and its stderr tail."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=err, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    tail = err.read()[-2000:].decode("utf-8", "replace")
    err.close()
    return {"wall": wall, "rc": proc.returncode, "rss_mb": usage.ru_maxrss / 1024, "stderr": tail}


def count_packets(path: Path) -> int:
    """Records in a classic pcap (the generator writes pcap); falls back to capinfos for pcapng."""
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            out = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True).stdout
            return int(out.strip().split()[-1])
        f.seek(24)
        n = 0
        rec = struct.Struct("<IIII")
        while hdr := f.read(16):
            if len(hdr) < 16:
                break
            incl = rec.unpack(hdr)[2]
            f.seek(incl, 1)
            n += 1
    return n


def kerbtrace_cmd(capture: Path, json_out: Path) -> list[str]:
    return [sys.executable, "-m", "kerbtrace", "analyze", str(capture), "--json", str(json_out)]


def kerbtrace_available() -> str:
    """'' if the CLI answers --help, else why not."""
    r = subprocess.run([sys.executable, "-m", "kerbtrace", "analyze", "--help"], capture_output=True,
                       text=True, cwd=REPO)
    return "" if r.returncode == 0 else (r.stderr.strip().splitlines() or ["no output"])[-1][:200]


def dpkt_baseline(capture: Path) -> list[str]:
    """A plain struct loop over the records (floor for any pure-Python reader)."""
    code = (
        "import struct,sys\n"
        "f=open(sys.argv[1],'rb',buffering=1<<20); f.read(24); n=0; u=struct.Struct('<IIII').unpack\n"
        "while (h:=f.read(16)) and len(h)==16:\n"
        "    f.read(u(h)[2]); n+=1\n"
        "print(n)\n"
    )
    return [sys.executable, "-c", code, str(capture)]


# kerbtrace exits 1 when some client was not approved: a finding, not a failure.
KERBTRACE_OK = (0, 1)


def row(name: str, m: dict, packets: int, ok_codes: tuple[int, ...] = (0,)) -> list:
    ok = "ok" if m["rc"] in ok_codes else f"exit {m['rc']}"
    return [name, f"{m['wall']:.1f}", f"{packets / m['wall']:,.0f}" if m["wall"] else "-", f"{m['rss_mb']:,.0f}", ok]


def summarise_report(report: Path, capture: Path) -> str:
    """Clients and verdicts kerbtrace reported, against the number of clients the generator placed."""
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
        verdicts = Counter(c.get("verdict", "?") for c in doc.get("clients", []))
    except (OSError, ValueError, AttributeError) as exc:
        return f"kerbtrace report unreadable: {exc}"
    placed = "?"
    meta = capture.with_suffix(capture.suffix + ".json")
    if meta.exists():
        placed = json.loads(meta.read_text()).get("clients", "?")
    return (f"kerbtrace reported {sum(verdicts.values()):,} clients (generator placed {placed}): "
            + ", ".join(f"{k} {v:,}" for k, v in verdicts.most_common()))


def ensure_capture(path: Path, size_mb: float) -> None:
    if path.exists():
        return
    print(f"generating {path} ({size_mb:.0f} MB) ...", flush=True)
    s = make_capture.generate(path, size_mb, 10000)
    print(f"  {s['packets']:,} packets, {s['clients']:,} clients in {s['generation_s']} s", flush=True)


def first_half(capture: Path, packets: int) -> Path:
    """The first half of the capture's packets (editcap -r), beside it."""
    half = capture.with_name(capture.stem + "-half" + capture.suffix)
    if not half.exists():
        subprocess.run(["editcap", "-r", str(capture), str(half), f"1-{packets // 2}"], check=True)
    return half


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capture", type=Path, default=make_capture.DEFAULT_OUT)
    ap.add_argument("--size-mb", type=float, default=1024.0)
    ap.add_argument("--also-dpkt", action="store_true", help="also time a plain struct loop over the records")
    ap.add_argument("--memory-growth", action="store_true",
                    help="run kerbtrace on the capture and on its first half and compare peak RSS")
    ap.add_argument("--skip-tshark", action="store_true")
    args = ap.parse_args(argv)

    capture = args.capture.resolve()
    ensure_capture(capture, args.size_mb)
    packets = count_packets(capture)
    size_mb = capture.stat().st_size / 1e6
    print(f"capture {capture.name}: {size_mb:,.0f} MB, {packets:,} packets")

    rows = []
    results: dict[str, dict] = {}
    why_not = kerbtrace_available()
    with tempfile.TemporaryDirectory() as tmp:
        if args.memory_growth:
            if why_not:
                print(f"kerbtrace analyze is not available yet: {why_not}")
                return 1
            half = first_half(capture, packets)
            full_m = measure(kerbtrace_cmd(capture, Path(tmp) / "full.json"))
            half_m = measure(kerbtrace_cmd(half, Path(tmp) / "half.json"))
            print(tabulate([row("kerbtrace, first half", half_m, packets // 2, KERBTRACE_OK),
                            row("kerbtrace, whole capture", full_m, packets, KERBTRACE_OK)],
                           headers=["run", "wall s", "packets/s", "peak RSS MB", "status"]))
            growth = full_m["rss_mb"] / half_m["rss_mb"] if half_m["rss_mb"] else float("nan")
            print(f"peak RSS whole/half = {growth:.2f} (1.0 = flat; 2.0 = grows with capture size)")
            return 0 if full_m["rc"] in KERBTRACE_OK and half_m["rc"] in KERBTRACE_OK else 1

        if why_not:
            print(f"kerbtrace: not measured - `python -m kerbtrace analyze` is not available yet ({why_not})")
        else:
            m = measure(kerbtrace_cmd(capture, Path(tmp) / "kerbtrace.json"))
            results["kerbtrace"] = m
            rows.append(row("kerbtrace analyze --json", m, packets, KERBTRACE_OK))
            if m["rc"] not in KERBTRACE_OK:
                print(f"kerbtrace failed:\n{m['stderr']}")
            else:
                print(summarise_report(Path(tmp) / "kerbtrace.json", capture))
        if not args.skip_tshark:
            if shutil.which("tshark") is None:
                print("tshark: not installed")
            else:
                cmd = ["tshark", "-r", str(capture), "-Y", "kerberos || http", "-T", "fields", *TSHARK_FIELDS]
                m = measure(cmd)
                results["tshark"] = m
                rows.append(row("tshark -Y 'kerberos || http' -T fields", m, packets))
        if args.also_dpkt:
            m = measure(dpkt_baseline(capture))
            results["struct"] = m
            rows.append(row("plain struct loop over records", m, packets))

    print(tabulate(rows, headers=["tool", "wall s", "packets/s", "peak RSS MB", "status"]))
    if "kerbtrace" in results and "tshark" in results and results["kerbtrace"]["rc"] in KERBTRACE_OK:
        k, t = results["kerbtrace"], results["tshark"]
        print(f"time tshark/kerbtrace = {t['wall'] / k['wall']:.2f}; "
              f"peak RSS kerbtrace {k['rss_mb']:,.0f} MB, tshark {t['rss_mb']:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
