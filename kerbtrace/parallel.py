"""Capture files read by several processes, merged into the same result as one process gives.

With at least as many captures as processes (and nothing beside them), one process per capture: `analyze`
reads the files one after the other, each as a capture of its own (frame numbers, sessions and fleet findings
per file), so the files are independent: each worker runs `analyze` on one file (or the files of one ring,
read as one capture) and the parent puts the results back in the order of the files, with the input numbers
and the warning limit applied exactly as a single run applies them.

Else each capture in turn is read by all the processes, partitioned by client (`kerbtrace.partition`): one
large capture, or captures with context beside them (logs, DC events: joined in the parent), use every core.
"""

from __future__ import annotations

import dataclasses
import functools
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
    """`analyze(paths, **options)` with `jobs` processes (default: the cores): files read at the same time,
    or each capture partitioned by client."""
    from kerbtrace.sources.inputs import ring_groups

    jobs = default_jobs() if jobs is None else jobs
    groups = [[paths[i] for i in g] for g in ring_groups(paths)] if options.get("stitch", True) else \
        [[p] for p in paths]
    if jobs <= 1:
        return analyze(paths, progress=progress, **options)
    beside = options.get("beside")
    given = beside is not None and any(x is not None for x in (beside.directory, beside.keytab, beside.logs,
                                                                beside.dc_events))
    if len(groups) < jobs or given:  # (`merge` keeps no context: what lies beside is joined in this process)
        from kerbtrace.partition import partitioned_group

        return analyze(paths, progress=progress, run_group=partitioned_group(jobs), **options)
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(groups)), mp_context=context) as pool:
        parts = list(pool.map(analyze_one, groups, [options] * len(groups)))
    return merge(parts)


def analyze_one(paths: list[str], options: dict) -> Analysis:
    """One capture's result (a file, or a ring's files), to be merged with the others' (a worker's task)."""
    return analyze(paths, progress=False, **options)


def merge(parts: list[Analysis]) -> Analysis:
    """One result from the results of single captures, in this order, as `analyze` over all of them gives:
    input numbers follow the order, and the warnings kept are the first `Diagnostics.keep` of all."""
    out = Analysis()
    diag = out.diag
    index = 0  # a part's inputs are numbered from 0: they follow the parts before it
    for part in parts:
        out.inputs.extend(part.inputs)
        part.clients.update(functools.partial(_move_client, index))  # in place, also on results kept on disk
        part.kerberos.update(functools.partial(_move_record, index))
        for finding in part.fleet:
            finding.input = index
        out.clients.extend(part.clients)
        out.kerberos.extend(part.kerberos)
        out.fleet.extend(part.fleet)
        _merge_diagnostics(diag, part.diag, index)
        index += max(1, len(part.inputs))
    return out


def _move_client(index: int, client) -> None:
    client.input += index
    if client.stitch is not None:
        client.stitch = dataclasses.replace(client.stitch, inputs=tuple(i + index for i in client.stitch.inputs))


def _move_record(index: int, record) -> None:
    record.input += index


def _merge_diagnostics(into: Diagnostics, part: Diagnostics, index: int) -> None:
    for w in part.warnings:
        w.input = index + (w.input or 0)
        if len(into.warnings) < into.keep:
            into.warnings.append(w)
        else:
            into.dropped[w.kind] += 1
    into.dropped.update(part.dropped)
    if part.fatal and not into.fatal:
        into.fatal = part.fatal
