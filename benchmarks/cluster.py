"""Dask distributed against Ray on this workload: capture files analysed by a local two-worker cluster.

    python benchmarks/cluster.py [FILES...]   (default: the --quick benchmark captures and the lab's)

For each engine: the time to start the cluster, the time to analyse the files (each file one task, results
merged as `kerbtrace.parallel.merge` does), GB per hour per worker, and whether the report equals the one a
single process gives.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kerbtrace.parallel import analyze_files, analyze_one, merge  # noqa: E402
from kerbtrace.reports.json_report import to_json  # noqa: E402

WORKERS = 2


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


def main(argv: list[str]) -> int:
    paths = argv or [str(p) for p in sorted((REPO / "benchmarks" / "out").glob("*-100m.pcap"))] + \
        [str(p) for p in sorted((REPO / "captures").glob("*.pcapng"))]
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
