"""Capture files analysed on a Dask cluster: weeks of rolling captures from many MPs, more than one machine.

The unit of work is one capture (one MP's capture file, or the files of one ring buffer, which `analyze`
reads as one capture): `analyze` reads each capture on its own, so the workers need nothing from each
other, and the results come back to be merged exactly as `kerbtrace.parallel.merge` merges the results of
local processes — the same report as one process gives. Dask distributed was chosen over Ray for this
workload (docs/benchmarks.md): it is pure Python, starts a two-worker local cluster in about a second, and
its scheduler's `map`/`gather` is all this needs.
"""

from __future__ import annotations

from kerbtrace.analysis import Analysis
from kerbtrace.parallel import analyze_one, merge


def analyze_on_cluster(paths: list[str], client, **options) -> Analysis:
    """`analyze(paths, **options)` with each file read by a worker of the Dask `client`
    (`dask.distributed.Client`); the paths must be readable on the workers (shared storage)."""
    from kerbtrace.sources.inputs import ring_groups

    groups = [[paths[i] for i in g] for g in ring_groups(paths)] if options.get("stitch", True) else \
        [[p] for p in paths]
    futures = client.map(analyze_one, groups, options=options, pure=False)
    return merge(client.gather(futures))
