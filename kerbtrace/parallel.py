"""Several capture files at once, one process per file, merged into the same result as one process gives.

`analyze` reads the files one after the other, each as a capture of its own (frame numbers, sessions and
fleet findings per file), so the files are independent: each worker runs `analyze` on one file and the
parent puts the results back in the order of the files, with the input numbers and the warning limit
applied exactly as a single run applies them. One file is always read by one process.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from kerbtrace.analysis import Analysis, analyze
from kerbtrace.diagnostics import Diagnostics


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def analyze_files(paths: list[str], *, jobs: int | None = None, progress: bool | None = None, **options) -> Analysis:
    """`analyze(paths, **options)`, with up to `jobs` files read at the same time (default: the cores)."""
    jobs = default_jobs() if jobs is None else jobs
    if jobs <= 1 or len(paths) <= 1:
        return analyze(paths, progress=progress, **options)
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=context) as pool:
        parts = list(pool.map(analyze_one, paths, [options] * len(paths)))
    return merge(parts)


def analyze_one(path: str, options: dict) -> Analysis:
    """One file's result, to be merged with the others' (the task a worker process runs)."""
    return analyze([path], progress=False, **options)


def merge(parts: list[Analysis]) -> Analysis:
    """One result from the results of single files, in this order, as `analyze` over all of them gives:
    input numbers follow the order, and the warnings kept are the first `Diagnostics.keep` of all."""
    out = Analysis()
    diag = out.diag
    for index, part in enumerate(parts):
        out.inputs.extend(part.inputs)
        for client in part.clients:
            client.input = index
        for record in part.kerberos:
            record.input = index
        for finding in part.fleet:
            finding.input = index
        out.clients.extend(part.clients)
        out.kerberos.extend(part.kerberos)
        out.fleet.extend(part.fleet)
        _merge_diagnostics(diag, part.diag, index)
    return out


def _merge_diagnostics(into: Diagnostics, part: Diagnostics, index: int) -> None:
    for w in part.warnings:
        w.input = index
        if len(into.warnings) < into.keep:
            into.warnings.append(w)
        else:
            into.dropped[w.kind] += 1
    into.dropped.update(part.dropped)
    if part.fatal and not into.fatal:
        into.fatal = part.fatal
