"""The benchmark generator's mixes and its truth: what `benchmarks/run.py` checks kerbtrace against must
itself be right (packet counts, the office mix's NetBIOS traffic, the 20 % registration share)."""

from __future__ import annotations

import sys
from collections import Counter

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.sources import open_capture
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import make_capture  # noqa: E402


def _ports(path) -> tuple[int, Counter]:
    """Packets read by kerbtrace's own reader, and IPv4 TCP/UDP server ports seen (the lower port)."""
    ports: Counter = Counter()
    n = 0
    with open_capture(path, Diagnostics()) as cap:
        for _frame, _t, _lt, data in cap:
            n += 1
            if data[12:14] == b"\x08\x00" and data[23] in (6, 17) and not (data[20] & 0x3F or data[21]):
                o = 14 + (data[14] & 15) * 4
                ports[min(int.from_bytes(data[o:o + 2], "big"), int.from_bytes(data[o + 2:o + 4], "big"))] += 1
    return n, ports


def test_office_mix_carries_netbios_and_more_dns(tmp_path):
    mp = make_capture.generate(tmp_path / "mp.pcap", 2, 20, mix="mp")
    office = make_capture.generate(tmp_path / "office.pcap", 2, 20, mix="office")
    n_mp, mp_ports = _ports(tmp_path / "mp.pcap")
    n_office, office_ports = _ports(tmp_path / "office.pcap")
    assert (n_mp, n_office) == (mp["packets"], office["packets"])
    assert not mp_ports[137] and not mp_ports[139]
    assert office_ports[137] and office_ports[138] and office_ports[139]
    assert office_ports[53] / n_office > 1.5 * mp_ports[53] / n_mp  # DNS is far more common in the office mix


def test_client_share_sets_the_registration_share(tmp_path):
    s = make_capture.generate(tmp_path / "dense.pcap", 3, 1, client_share=0.2)
    assert 0.16 <= s["client_packet_share"] <= 0.24, s["client_packet_share"]
    assert s["clients"] > 40  # far more than the 1 asked for: the share decides


def test_truth_counts_every_client_placed(tmp_path):
    s = make_capture.generate(tmp_path / "t.pcap", 2, 30)
    assert sum(s["verdicts"].values()) == s["clients"]
    windows = sum(v for k, v in s["clients_per_template"].items() if k.startswith("win-"))
    assert s["verdicts"].get(make_capture.UNLISTED, 0) == windows


def _run(wall: float, cpu: float, rss: float) -> dict:
    return {"wall": wall, "cpu": cpu, "rss_mb": rss, "rc": 0, "match": True, "load": ""}


def test_summary_names_what_it_did_not_measure(capsys):
    """Without a tshark run the speed targets are not measured, and the memory target is still checked: the
    summary never calls a run without tshark, or one over the memory target, a success."""
    import run  # benchmarks/run.py

    def verdict(runs: dict) -> str:
        run.summary({"mp": {"runs": runs, "packets": 1000, "truth": {"approved": 1}}})
        return capsys.readouterr().out.split("targets:")[1]

    over = verdict({"kerbtrace, 1 process": _run(10, 10, 231), "kerbtrace, 2 processes": _run(6, 11, 150)})
    assert "not met" in over and "231 MB (target 200 MB)" in over and "met on every mix" not in over
    assert "speed not measured" in over
    assert "speed not measured" in verdict({"kerbtrace, 1 process": _run(10, 10, 150)})
    slow = verdict({"tshark": _run(80, 80, 1500), "kerbtrace, 1 process": _run(10, 10, 150)})
    assert "8.0x (target 10x)" in slow
    fast = verdict({"tshark": _run(200, 200, 1500), "kerbtrace, 1 process": _run(10, 10, 150),
                    "kerbtrace, 2 processes": _run(9, 17, 150)})
    assert "met on every mix" in fast


def test_compiled_benchmark_names_modules_that_exist_and_compares_documents_without_the_minute():
    """`benchmarks/compiled.py` compiles `MODULES` by path: a module moved or renamed must fail here, not
    in an hour-long run; and the two documents it compares differ only in the minute the fix script names."""
    import compiled  # benchmarks/compiled.py

    missing = [m for m in compiled.MODULES if not (REPO / m).is_file()]
    assert not missing
    assert "kerbtrace/reassembly/network.py" not in compiled.MODULES  # its `feed` is swapped for a closure
    a = "# Inputs: x.pcap. Generated 2026-12-06 07:16 UTC.\n# setspn -Q HTTP/mp"
    b = "# Inputs: x.pcap. Generated\n# 2026-12-06 07:17 UTC.\n# setspn -Q HTTP/mp"
    assert compiled._GENERATED_AT.sub("Generated", a) == compiled._GENERATED_AT.sub("Generated", b)
    assert compiled._GENERATED_AT.sub("Generated", a) != compiled._GENERATED_AT.sub("Generated", a + "x")
