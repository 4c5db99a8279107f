"""One capture split by client across N processes (`--jobs N`) gives the document one process gives, for any N."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import kerbtrace.partition as partition
from kerbtrace.analysis import Analysis
from kerbtrace.cli import main
from kerbtrace.diagnostics import Warning_
from kerbtrace.ownership import client_of, owner, owners_ipv4
from kerbtrace.parallel import analyze_files
from kerbtrace.partition import PartResult
from kerbtrace.pipeline import Pipeline
from kerbtrace.reports.json_report import to_json
from kerbtrace.sources import prefilter
from kerbtrace.sources.inputs import expand_inputs
from tests.conftest import CAPTURES, REPO, real_capture_files, timeless

sys.path.insert(0, str(REPO / "benchmarks"))
import make_capture  # noqa: E402

LAB = sorted(CAPTURES.glob("*.pcapng"))


def _doc(result: Analysis) -> dict:
    return timeless(json.loads(json.dumps(to_json(result))))


@pytest.fixture
def parts_seen(monkeypatch) -> list[list[int]]:
    """Per partitioned capture, how many clients each process handed back (the merge is in this process)."""
    seen: list[list[int]] = []
    merge = partition._merge

    def spy(paths, indices, diag, beside, results):
        seen.append([len(r.clients) for r in results])
        return merge(paths, indices, diag, beside, results)

    monkeypatch.setattr(partition, "_merge", spy)
    return seen


def _same_for_any_n(paths: list[str], seen: list[list[int]], **options) -> dict:
    one = _doc(analyze_files(paths, jobs=1, progress=False, **options))
    assert not seen  # one process: nothing partitioned
    for jobs in (2, 3):
        got = _doc(analyze_files(paths, jobs=jobs, progress=False, **options))
        assert seen and all(len(s) == jobs for s in seen)  # really read in `jobs` parts
        # a part's clients lost or counted twice changes the count (and the document)
        assert sum(map(sum, seen)) == len(one["clients"])
        assert got == one, f"{paths[0]}: {jobs} processes"
        seen.clear()
    return one


def test_client_side_of_a_conversation() -> None:
    udp, tcp = Pipeline.udp_ports, Pipeline.tcp_ports
    assert client_of("10.0.0.5", 50123, "10.0.0.88", 88, udp) == "10.0.0.5"  # request to the KDC
    assert client_of("10.0.0.88", 88, "10.0.0.5", 50123, udp) == "10.0.0.5"  # its answer
    assert client_of("10.0.0.53", 53, "10.0.0.5", 5353, udp) == "10.0.0.5"  # DNS answer
    # between two server ports (a DNS server asking another): the same side for both directions
    assert client_of("10.0.0.53", 53, "10.0.0.54", 53, udp) == client_of("10.0.0.54", 53, "10.0.0.53", 53, udp) \
        == "10.0.0.53"
    # TCP: the side not on the MP's port, whichever way the segment goes; else the reassembler's client
    assert client_of("10.0.0.10", 80, "10.0.0.5", 50123, tcp) == "10.0.0.5"
    assert client_of("10.0.0.5", 50123, "10.0.0.10", 8443, tcp) == "10.0.0.5"  # HTTP on an unusual port


def test_ownership_is_stable_across_processes_and_spreads_clients() -> None:
    addresses = [f"10.1.{i // 250}.{i % 250}" for i in range(1000)] + ["fe80::1", "2001:db8::5"]
    here = [owner(a, 3) for a in addresses]
    code = ("import json, sys; from kerbtrace.partition import owner; "
            "print(json.dumps([owner(a, 3) for a in json.load(sys.stdin)]))")
    for seed in ("1", "2"):  # Python's own str hash differs with the seed; the owner must not
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps(addresses), capture_output=True,
                             text=True, env=env, check=True, cwd=REPO).stdout
        assert json.loads(out) == here
    counts = [here.count(k) for k in range(3)]
    assert all(250 < c < 420 for c in counts), counts
    # the prefilter computes the owner of an IPv4 address from its packed value with numpy: the same
    np = pytest.importorskip("numpy")
    values = np.array([int.from_bytes(bytes(int(x) for x in a.split(".")), "big") for a in addresses[:1000]],
                      dtype=np.uint64)
    assert owners_ipv4(values, 3).tolist() == here[:1000]


def test_lab_captures_same_document(parts_seen) -> None:
    for path in LAB:
        _same_for_any_n([str(path)], parts_seen)
    mixed = _same_for_any_n([str(CAPTURES / "mixed.pcapng")], parts_seen)
    assert len(mixed["clients"]) > 10


def test_mixed_capture_is_spread_over_every_process(parts_seen) -> None:
    analyze_files([str(CAPTURES / "mixed.pcapng")], jobs=3, progress=False)
    assert len(parts_seen) == 1 and all(n > 0 for n in parts_seen[0]), parts_seen


def test_real_captures_same_document(parts_seen) -> None:
    files = real_capture_files()
    if not files:
        pytest.skip("no real capture at hand")
    kerberos = 0
    for path in files:
        kerberos += len(_same_for_any_n([str(path)], parts_seen)["kerberos"])
    assert kerberos > 100  # they hold Kerberos traffic: the Kerberos lists were merged, not just empty


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap is needed (Debian: apt-get install tshark)")
def test_ring_read_as_one_capture_same_document(tmp_path, parts_seen) -> None:
    into = tmp_path / "ring"
    into.mkdir()
    subprocess.run(["editcap", "-c", "300", str(CAPTURES / "mixed.pcapng"), str(into / "ring.pcapng")], check=True,
                   capture_output=True)
    paths = expand_inputs([str(into)])
    assert len(paths) > 2
    doc = _same_for_any_n(paths, parts_seen)
    assert len({c["input"] for c in doc["clients"]}) > 1  # clients in several files of the ring


def test_generated_capture_same_document(tmp_path, parts_seen) -> None:
    out = tmp_path / "gen.pcap"
    truth = make_capture.generate(out, 20, 200)
    doc = _same_for_any_n([str(out)], parts_seen)
    assert len(doc["clients"]) >= 0.7 * truth["clients"]
    assert any(c["causes"] and c["causes"][0]["code"] == "duplicate_guid" for c in doc["clients"])


def test_prefilter_skips_the_other_parts_packets(tmp_path, monkeypatch, parts_seen) -> None:
    if not prefilter.available():
        pytest.skip("numpy and pcapy-ng are needed for the prefilter")
    monkeypatch.setattr(prefilter, "ENABLED", True)
    owned = []
    keep = prefilter.Prefilter._owned

    def spy(self, sport, dport):
        mask = keep(self, sport, dport)
        served = self.udp[sport] | self.udp[dport]  # the Kerberos and DNS datagrams the mask decides on
        owned.append((self.partition, int((mask & served).sum()), int(served.sum())))
        return mask

    monkeypatch.setattr(prefilter.Prefilter, "_owned", spy)
    out = tmp_path / "gen.pcap"
    make_capture.generate(out, 10, 100)
    doc = _same_for_any_n([str(out)], parts_seen)
    assert doc["clients"]
    mine = [(p, kept, n) for p, kept, n in owned if p == (0, 2)]  # (children's calls are not seen here)
    assert mine and sum(k for _, k, _ in mine) < 0.8 * sum(n for *_, n in mine)  # the others' datagrams skipped


def test_first_pass_is_read_once_shared_by_the_parts(tmp_path, monkeypatch, parts_seen) -> None:
    """The first pass (the addresses that may become clients, `askers`) is two reads of the capture: in a
    partitioned run two processes make one each and exchange what they found, so every part gets the list one
    process finds, and the capture is not read twice per process."""
    if not prefilter.available():
        pytest.skip("numpy and pcapy-ng are needed for the prefilter")
    from kerbtrace import analysis
    from kerbtrace.sources import askers

    monkeypatch.setattr(prefilter, "ENABLED", True)
    log = tmp_path / "reads.log"  # appended to by every process (the children are forked: no shared memory)
    reads = {"rules": askers._rule_pass, "dns": askers._dns_pass}

    def logged(name):
        def read(path, *rest):
            with open(log, "a") as f:
                f.write(f"{name} {os.getpid()}\n")
            return reads[name](path, *rest)
        return read

    quiet = analysis._quiet_dns

    def listed(paths, session, share=None):
        got = quiet(paths, session, share)
        with open(log, "a") as f:
            f.write(f"listed {os.getpid()} {','.join(map(str, got.askers.tolist()))}\n")
        return got

    monkeypatch.setattr(askers, "_rule_pass", logged("rules"))
    monkeypatch.setattr(askers, "_dns_pass", logged("dns"))
    monkeypatch.setattr(analysis, "_quiet_dns", listed)
    out = tmp_path / "gen.pcap"
    make_capture.generate(out, 10, 100)
    first = None
    for jobs in (1, 2, 3):
        log.write_text("")
        doc = _doc(analyze_files([str(out)], jobs=jobs, progress=False))
        lines = [line.split() for line in log.read_text().splitlines()]
        made = sorted((w[0], w[1]) for w in lines if w[0] in reads)
        lists = [w[2:] for w in lines if w[0] == "listed"]
        assert [name for name, _ in made] == ["dns", "rules"], made  # each read once, whatever the processes
        assert len(lists) == jobs and lists[0] and all(x == lists[0] for x in lists), "a part got another list"
        if jobs > 1:
            assert made[0][1] != made[1][1]  # by two processes at the same time
            assert parts_seen and len(parts_seen[-1]) == jobs  # really read in parts
        if first is None:
            first = (lists[0], doc)
        assert (lists[0], doc) == first, f"{jobs} processes"
    assert first[1]["clients"]


def test_cli_jobs_with_logs_beside(tmp_path, capsys, parts_seen) -> None:
    capture = CAPTURES / "mixed.pcapng"
    logs = ["--iis-log", str(capture.with_suffix(".iis.log")),
            "--mp-log", str(capture.with_name("mixed.MP_RegistrationManager.log"))]
    docs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"{jobs}.json"
        rc = main(["analyze", str(capture), *logs, "--jobs", jobs, "--json", str(out), "--no-progress"])
        doc = timeless(json.loads(out.read_text()))
        docs.append((rc, doc))
    capsys.readouterr()
    assert parts_seen and len(parts_seen[0]) == 2  # the CLI split the capture
    assert docs[0] == docs[1]
    assert any(f["matched"] for f in docs[0][1]["context"]["logs"])  # the logs were joined to the clients


def test_a_failing_process_falls_back_to_one(monkeypatch) -> None:
    def broken(conn, *args):
        conn.send(("error", "Traceback: simulated defect"))
        conn.close()

    monkeypatch.setattr(partition, "_run_part", broken)
    path = str(CAPTURES / "mixed.pcapng")
    got = analyze_files([path], jobs=2, progress=False)
    one = analyze_files([path], jobs=1, progress=False)
    assert [r.client.ip for r in got.clients] == [r.client.ip for r in one.clients]
    assert any("read in one process instead" in w.message for w in got.diag.warnings)


def test_warnings_merged_once_each() -> None:
    net = Warning_(5, "IPv4 header cut short", "packet", 0)  # the network layer: every part raises it
    own = Warning_(9, "malformed Kerberos message", "kerberos", 0)  # a client's: only its owner
    parts = [PartResult([], warnings=[net, own, own]), PartResult([], warnings=[net]),
             PartResult([], warnings=[net, Warning_(2, "other", "dns", 0)])]
    diag = Analysis().diag
    partition._merge_warnings(diag, parts)
    assert [(w.frame, w.message) for w in diag.warnings] == [
        (2, "other"), (5, "IPv4 header cut short"), (9, "malformed Kerberos message"),
        (9, "malformed Kerberos message")]


def test_what_the_parts_size_limits_dropped_is_noted(tmp_path, monkeypatch, parts_seen) -> None:
    """A part's tables are bounded as one process's are; what they drop is in the merged document's notes, as one
    process notes its own (it was left out of the merge)."""
    from kerbtrace.exchanges import kdc_pairing

    monkeypatch.setattr(kdc_pairing, "MAX_PENDING", 1)  # the unanswered requests of the generated clients
    out = tmp_path / "gen.pcap"
    make_capture.generate(out, 20, 120)

    def noted(jobs: int) -> list[str]:
        doc = _doc(analyze_files([str(out)], jobs=jobs, progress=False))
        return [n for n in doc["inputs"][0]["notes"] if n.startswith("size limits dropped state")]

    assert noted(1) and "kdc_pending" in noted(1)[0]
    (note,) = noted(2)
    assert parts_seen and len(parts_seen[0]) == 2 and "kdc_pending" in note
