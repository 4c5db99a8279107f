"""The Dask path: a cluster of two worker processes on loopback gives the report one process gives, from the
library (a LocalCluster) and from the command line (`--scheduler`, against `dask scheduler` / `dask worker`
processes started here)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kerbtrace.parallel import analyze_files
from kerbtrace.reports.json_report import to_json
from tests.conftest import CAPTURES, real_capture_files, timeless

distributed = pytest.importorskip("distributed", reason="dask distributed is not installed: pip install '.[cluster]'")

REPO = Path(__file__).resolve().parents[1]


def _doc(result) -> dict:
    return timeless(json.loads(json.dumps(to_json(result))))


def _inputs(tmp_path: Path) -> list[str]:
    """Lab and real captures, a damaged file among them, all by absolute path (the workers' view)."""
    bad = tmp_path / "damaged.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 10)
    return [str(p) for p in sorted(CAPTURES.glob("*.pcapng"))[:5]] + [str(bad)] + \
        [str(Path(p).resolve()) for p in real_capture_files()[:3]]


def test_two_workers_give_the_single_process_report(tmp_path):
    from kerbtrace.distributed import analyze_on_cluster

    paths = _inputs(tmp_path)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        on_cluster = _doc(analyze_on_cluster(paths, client))
    one = _doc(analyze_files(paths, jobs=1, progress=False))
    assert one["clients"] and on_cluster == one



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    """This checkout's kerbtrace first on the path (the workers unpickle the tasks by module name)."""
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s", **extra}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kerbtrace", *args], capture_output=True, text=True, cwd=REPO,
                          env=env or _env(), timeout=300)


@pytest.fixture
def scheduler(tmp_path):
    """A `dask scheduler` and two `dask worker` processes (no nanny: one process each) on 127.0.0.1; stopped
    by their PIDs afterwards."""
    dask = shutil.which("dask") or pytest.skip("the dask command is not on PATH (pip install '.[cluster]')")
    address = f"tcp://127.0.0.1:{_free_port()}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen([dask, *args], stdout=log, stderr=subprocess.STDOUT, env=_env(),
                                          cwd=tmp_path))

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
              "--no-dashboard")
        for i in range(2):
            start(f"worker{i}", "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                  "--no-dashboard", "--name", f"w{i}", "--local-directory", str(tmp_path / f"w{i}"))
        deadline = time.monotonic() + 60
        while True:
            try:
                with distributed.Client(address, timeout="5s", set_as_default=False) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    except BaseException:
        for log in sorted(logs.iterdir()):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_cli_on_a_scheduler_gives_the_single_process_report(scheduler, tmp_path):
    paths = _inputs(tmp_path)
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    one = _cli("analyze", *paths, "--jobs", "1", "--no-progress", "--json", str(local))
    on_cluster = _cli("analyze", *paths, "--scheduler", scheduler, "--json", str(remote))
    assert one.returncode == on_cluster.returncode == 2, on_cluster.stderr  # the damaged file: exit 2
    assert "Traceback" not in on_cluster.stderr and "damaged.pcap" in on_cluster.stderr
    docs = [timeless(json.loads(p.read_text())) for p in (local, remote)]
    assert docs[0]["clients"] and docs[0] == docs[1]
    assert on_cluster.stdout == one.stdout  # the table too

    # `report` takes the same option; its JSON document is the one analyze wrote
    report = tmp_path / "case.json"
    r = _cli("report", *paths, "--scheduler", scheduler, "-o", str(report))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert timeless(json.loads(report.read_text())) == docs[0]


def test_both_workers_take_part(scheduler, tmp_path):
    """Each capture is one task: with several captures both workers get some (not one worker doing all)."""
    from kerbtrace.distributed import analyze_on_cluster

    paths = [str(p) for p in sorted(CAPTURES.glob("*.pcapng"))[:8]]
    with distributed.Client(scheduler, set_as_default=False) as client:
        analyze_on_cluster(paths, client)
        counts = client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
    assert len(counts) == 2 and all(n > 0 for n in counts.values()), counts


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    capture = str(sorted(CAPTURES.glob("*.pcapng"))[0])
    r = _cli("analyze", capture, "--scheduler", f"tcp://127.0.0.1:{_free_port()}",
             env=_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in r.stderr
    assert not r.stdout  # no table: nothing was analysed


def test_without_dask_distributed_is_a_clear_error(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "distributed.py").write_text("raise ImportError('No module named distributed')\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), env["PYTHONPATH"]])
    capture = str(sorted(CAPTURES.glob("*.pcapng"))[0])
    r = _cli("report", capture, "--scheduler", "tcp://127.0.0.1:1", "-o", str(tmp_path / "x.html"), env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not installed" in r.stderr and "kerbtrace[cluster]" in r.stderr
    assert not (tmp_path / "x.html").exists()


def test_context_files_are_refused_on_a_cluster(tmp_path):
    capture = str(sorted(CAPTURES.glob("*.pcapng"))[0])
    log = tmp_path / "u_ex.log"
    log.write_text("#Software: Microsoft Internet Information Services 10.0\n#Fields: date time cs-method\n")
    r = _cli("analyze", capture, "--iis-log", str(log), "--scheduler", "tcp://127.0.0.1:1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--scheduler reads captures only" in r.stderr
