"""How far compiling the registration path goes: kerbtrace as it is against the same modules compiled by mypyc.

    python benchmarks/compiled.py [--quick] [--mix mp|office|dense] [--capture F] [--runs N]

No decoder is written anew: mypyc (mypy's compiler of type-annotated Python) compiles the project's own
modules, unchanged, into C extensions. The package is copied into a temporary folder and `MODULES` are compiled
there, so the installed package is never touched; each mix is then read by both, one process each, as child
processes (`run.measure`: CPU seconds and peak RSS of that child alone), alternately, `--runs` times. The table
and JSON document of the two must be the same (but for the minute the fix script names): the script exits 1
when they are not.

Needs mypy (`pip install mypy`), a C compiler and the Python headers; without them it says so and exits 2.
tshark is not run: `run.py` gives its CPU seconds on the same captures, for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402

#: The registration path: decoders, TCP reassembly, the pipeline and the exchanges. Left out: the network layer
#: (it replaces its `feed` method by a closure, which a compiled class does not allow), the prefilter and the
#: first pass (numpy and libpcap already), the checks and the correlator's tests' spies aside, the disk store.
MODULES = [
    "kerbtrace/decoders/der.py", "kerbtrace/decoders/kerberos.py", "kerbtrace/decoders/http.py",
    "kerbtrace/decoders/gss.py", "kerbtrace/decoders/ccm.py", "kerbtrace/decoders/dns.py",
    "kerbtrace/decoders/ntlm.py", "kerbtrace/decoders/tls.py",
    "kerbtrace/reassembly/tcp.py", "kerbtrace/reassembly/defrag.py", "kerbtrace/reassembly/kerberos_framing.py",
    "kerbtrace/pipeline.py",
    "kerbtrace/exchanges/correlator.py", "kerbtrace/exchanges/http_legs.py", "kerbtrace/exchanges/kdc_pairing.py",
    "kerbtrace/exchanges/dns_pairing.py", "kerbtrace/exchanges/history.py", "kerbtrace/exchanges/client.py",
    "kerbtrace/exchanges/identity.py", "kerbtrace/exchanges/inventory.py",
]
_GENERATED_AT = re.compile(r"Generated(?:\s|#|\\n)+\d{4}-\d\d-\d\d(?:\s|#|\\n)+\d\d:\d\d(?:\s|#|\\n)+UTC")


def compile_copy(folder: Path) -> str:
    """The package copied into `folder` with `MODULES` compiled there; '' on success, else why not."""
    try:
        import mypy  # noqa: F401 - only to say what is missing
    except ImportError:
        return "mypy is not installed (pip install mypy)"
    shutil.copytree(run.REPO / "kerbtrace", folder / "kerbtrace",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    done = subprocess.run([sys.executable, "-m", "mypyc", "--ignore-missing-imports", "--follow-imports=silent",
                           *MODULES], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "MYPYC_OPT_LEVEL": "3"})
    if done.returncode != 0:
        return "mypyc failed: " + (done.stdout + done.stderr).strip()[-1500:]
    where = subprocess.run([sys.executable, "-c", "import kerbtrace.decoders.der as m; print(m.__file__)"],
                           cwd=folder, capture_output=True, text=True).stdout.strip()
    return "" if where.endswith(".so") else f"the compiled modules are not the ones imported ({where})"


def read(capture: Path, package: Path, out: Path) -> tuple[dict, str, dict]:
    """One process of the package in `package` on `capture`: (measures, table text, JSON document)."""
    table = out.with_suffix(".txt")
    with open(table, "w") as text:
        m = run.measure([sys.executable, "-m", "kerbtrace", "analyze", str(capture), "--json", str(out),
                         "--jobs", "1", "--no-progress"], stdout=text, cwd=package)
    doc = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    if doc.get("fix_script"):
        doc["fix_script"] = _GENERATED_AT.sub("Generated", doc["fix_script"])
    return m, table.read_text(encoding="utf-8"), doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capture", type=Path, default=None, help="measure this capture only (no generation)")
    ap.add_argument("--quick", action="store_true", help="100 MB captures instead of 1 GB")
    ap.add_argument("--mix", action="append", choices=[m for m, *_ in run.MIXES],
                    help="measure only this mix (repeatable; default: all)")
    ap.add_argument("--runs", type=int, default=2, help="runs of each, alternately (default 2)")
    args = ap.parse_args(argv)
    if args.capture is not None:
        captures = {args.capture.stem: args.capture.resolve()}
    else:
        size = 100.0 if args.quick else 1024.0
        captures = {}
        for name, mix, share in run.MIXES:
            if not args.mix or name in args.mix:
                captures[name] = run.capture_path(name, size)
                run.ensure_capture(captures[name], size, mix, share)
    with tempfile.TemporaryDirectory(prefix="kerbtrace-compiled-") as tmp:
        folder = Path(tmp)
        print(f"compiling {len(MODULES)} modules with mypyc ...", flush=True)
        why_not = compile_copy(folder)
        if why_not:
            print(why_not)
            return 2
        rows, same_everywhere = [], True
        for name, capture in captures.items():
            best: dict[str, dict] = {}
            outputs = {}
            for i in range(args.runs):
                for label, package in (("as it is", run.REPO), ("compiled", folder)):
                    m, table, doc = read(capture, package, folder / f"{name}-{label[0]}{i}.json")
                    if m["rc"] not in (0, 1):
                        print(f"{name} {label}: exit {m['rc']}: {m['stderr'][-500:]}")
                        return 1
                    outputs[label] = (table, doc)
                    if label not in best or m["cpu"] < best[label]["cpu"]:
                        best[label] = m
            same = outputs["as it is"] == outputs["compiled"]
            same_everywhere &= same
            plain, fast = best["as it is"], best["compiled"]
            rows.append([name, f"{plain['cpu']:.1f}", f"{fast['cpu']:.1f}", f"{plain['cpu'] / fast['cpu']:.2f}",
                         f"{plain['rss_mb']:,.0f}", f"{fast['rss_mb']:,.0f}", "yes" if same else "NO"])
            print(f"{name}: done ({run.load()})", flush=True)
    print()
    print(tabulate(rows, headers=["mix", "CPU s as it is", "CPU s compiled", "speed-up", "peak RSS MB as it is",
                                  "peak RSS MB compiled", "same table and JSON"], tablefmt="github"))
    print(f"(the least CPU seconds of {args.runs} run(s) each; one process)")
    return 0 if same_everywhere else 1


if __name__ == "__main__":
    sys.exit(main())
