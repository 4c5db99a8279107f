"""Capture files analysed on a Dask cluster: weeks of rolling captures from many MPs, more than one machine.

The unit of work is one capture (one MP's capture file, or the files of one ring buffer, which `analyze`
reads as one capture): `analyze` reads each capture on its own, so the workers need nothing from each
other, and the results come back to be merged exactly as `kerbtrace.parallel.merge` merges the results of
local processes — the same report as one process gives. Dask distributed was chosen over Ray for this
workload (docs/benchmarks.md): it is pure Python, starts a two-worker local cluster in about a second, and
its scheduler's `map`/`gather` is all this needs.

Nothing here is imported before it is used: the command line imports this module only for
`--scheduler`, and dask only when a scheduler is asked for.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kerbtrace.analysis import Analysis

INSTALL_HINT = "pip install 'kerbtrace[cluster]'"


class ClusterError(Exception):
    """The cluster cannot run the analysis (dask missing, scheduler unreachable, no worker, a worker lost)."""


def analyze_on_cluster(paths: list[str], client, **options) -> Analysis:
    """`analyze(paths, **options)` with each file read by a worker of the Dask `client`
    (`dask.distributed.Client`); the paths must be readable on the workers (shared storage)."""
    from kerbtrace.parallel import analyze_one, merge
    from kerbtrace.sources.inputs import ring_groups

    groups = [[paths[i] for i in g] for g in ring_groups(paths)] if options.get("stitch", True) else \
        [[p] for p in paths]
    futures = client.map(analyze_one, groups, options=options, pure=False)
    return merge(client.gather(futures))


def analyze_at(address: str, paths: list[str], **options) -> Analysis:
    """`analyze_on_cluster` on the running scheduler at `address` (tcp://HOST:PORT).

    Relative paths are made absolute, since a worker's working directory is its own. Connecting waits as
    long as dask's `distributed.comm.timeouts.connect` (30 s unless configured), and as long again for a
    first worker; then every failure is a ClusterError with the reason, never a traceback."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ClusterError(f"--scheduler needs dask distributed, which is not installed ({exc}): "
                           f"{INSTALL_HINT}") from None
    import dask

    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=dask.utils.parse_timedelta(timeout))
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler at {address} has no worker (waited {timeout})") from None
        try:
            return analyze_on_cluster([os.path.abspath(p) for p in paths], client, **options)
        except Exception as exc:  # a worker lost, killed or unable to import kerbtrace: dask's own errors
            raise ClusterError(f"the analysis on the Dask cluster at {address} failed: "
                               f"{type(exc).__name__}: {exc}") from None
    finally:
        client.close()
