"""Dask distributed against Ray on this workload: capture files analysed by a local two-worker cluster.

    python benchmarks/cluster.py [FILES...]   (default: the --quick benchmark captures and the lab's)
    python benchmarks/cluster.py --scheduler tcp://HOST:PORT [FILES...]

For each engine: the time to start the cluster, the time to analyse the files (each file one task, results
merged as `kerbtrace.parallel.merge` does), GB per hour per worker, and whether the report equals the one a
single process gives. With --scheduler: `kerbtrace analyze --scheduler` against that running cluster (its
workers must see the files at the same paths), with the workers' CPU seconds, so the sizing holds on a
shared machine too (GB per worker CPU-hour).
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kerbtrace.parallel import analyze_files, analyze_one, merge  # noqa: E402
from kerbtrace.reports.json_report import to_json  # noqa: E402

WORKERS = 2
GENERATED_AT = re.compile(r"Generated\s+(?:#\s*)?\d{4}-\d\d-\d\d \d\d:\d\d UTC")


def _doc(result) -> str:
    doc = json.loads(json.dumps(to_json(result)))
    doc.pop("generated", None)
    return json.dumps(doc, sort_keys=True)


def with_dask(paths: list[str]) -> tuple[float, float, str]:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(WORKERS)
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = merge(client.gather(client.map(analyze_one, paths, options={}, pure=False)))
        return started, time.perf_counter() - t1, _doc(result)


def with_ray(paths: list[str]) -> tuple[float, float, str]:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        remote = ray.remote(analyze_one)
        ray.get([remote.remote(p, {}) for p in paths[:WORKERS]])  # workers up (Ray starts them lazily)
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = merge(ray.get([remote.remote(p, {}) for p in paths]))
        return started, time.perf_counter() - t1, _doc(result)
    finally:
        ray.shutdown()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def with_scheduler(address: str, paths: list[str]) -> int:
    """The command line against a running scheduler, compared with one local process."""
    from distributed import Client

    size_gb = sum(Path(p).stat().st_size for p in paths) / 1e9
    with Client(address, set_as_default=False) as client:
        workers = len(client.scheduler_info()["workers"])
        before = client.run(_cpu_seconds)
        with tempfile.TemporaryDirectory() as tmp:
            out = [Path(tmp) / "cluster.json", Path(tmp) / "one.json"]
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "kerbtrace", "analyze", *paths, "--scheduler", address, "--json",
                            str(out[0])], stdout=subprocess.DEVNULL, cwd=REPO, check=False)
            wall = time.perf_counter() - t0
            after = client.run(_cpu_seconds)
            cpu = sum(after[w] - before.get(w, 0.0) for w in after)
            subprocess.run([sys.executable, "-m", "kerbtrace", "analyze", *paths, "--jobs", "1", "--no-progress",
                            "--json", str(out[1])], stdout=subprocess.DEVNULL, cwd=REPO, check=False)
            docs = [json.loads(p.read_text()) for p in out]
    for doc in docs:  # the time of the run, to the minute, is in both; the rest must be equal
        doc.pop("generated", None)
        doc["fix_script"] = GENERATED_AT.sub("", doc.get("fix_script") or "")
    print(f"{len(paths)} files, {size_gb:.2f} GB, {workers} workers at {address} (load "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ")")
    print(tabulate([[f"{wall:.1f}", f"{cpu:.1f}", f"{size_gb / wall * 3600 / workers:.0f}",
                     f"{size_gb / cpu * 3600:.0f}", "same" if docs[0] == docs[1] else "DIFFERENT"]],
                   headers=["wall s", "workers' CPU s", "GB/hour/worker", "GB per worker CPU-hour", "report"]))
    for key in sorted(k for k in docs[1] if docs[0].get(k) != docs[1][k]):
        print(f"differs: {key}: {json.dumps(docs[0].get(key))[:400]} against {json.dumps(docs[1][key])[:400]}")
    return 0 if docs[0] == docs[1] else 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["--scheduler"] and len(argv) > 1:
        address, argv = argv[1], argv[2:]
        return with_scheduler(address, [os.path.abspath(p) for p in argv] or _default_paths())
    paths = argv or _default_paths()
    size_gb = sum(Path(p).stat().st_size for p in paths) / 1e9
    t0 = time.perf_counter()
    reference = _doc(analyze_files(paths, jobs=1, progress=False))
    single = time.perf_counter() - t0
    rows = [["one process", "-", f"{single:.1f}", f"{size_gb / single * 3600:.0f}", "reference"]]
    for name, run in (("dask distributed", with_dask), ("ray", with_ray)):
        try:
            started, took, doc = run(paths)
        except ImportError as exc:
            rows.append([name, "-", "-", "-", f"not installed ({exc.name})"])
            continue
        rows.append([name, f"{started:.1f}", f"{took:.1f}", f"{size_gb / took * 3600 / WORKERS:.0f}",
                     "same" if doc == reference else "DIFFERENT"])
    print(f"{len(paths)} files, {size_gb:.2f} GB, {WORKERS} workers")
    print(tabulate(rows, headers=["engine", "start s", "analysis s", "GB/hour/worker", "report"]))
    return 0


def _default_paths() -> list[str]:
    return [str(p.resolve()) for p in sorted((REPO / "benchmarks" / "out").glob("*-100m.pcap"))] + \
        [str(p) for p in sorted((REPO / "captures").glob("*.pcapng"))]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
