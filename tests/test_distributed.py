"""The Dask path: a local cluster of two worker processes on loopback gives the report one process gives."""

from __future__ import annotations

import json

import pytest

from kerbtrace.parallel import analyze_files
from kerbtrace.reports.json_report import to_json
from tests.conftest import CAPTURES, real_capture_files

distributed = pytest.importorskip("distributed", reason="dask distributed is not installed: pip install '.[cluster]'")


def _doc(result) -> dict:
    doc = json.loads(json.dumps(to_json(result)))
    doc.pop("generated", None)
    return doc


def test_two_workers_give_the_single_process_report(tmp_path):
    from kerbtrace.distributed import analyze_on_cluster

    bad = tmp_path / "damaged.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 10)
    paths = [str(p) for p in sorted(CAPTURES.glob("*.pcapng"))[:5]] + [str(bad)] + \
        [str(p) for p in real_capture_files()[:3]]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        on_cluster = _doc(analyze_on_cluster(paths, client))
    one = _doc(analyze_files(paths, jobs=1, progress=False))
    assert one["clients"] and on_cluster == one
