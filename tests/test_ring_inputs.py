"""A ring buffer's files read as one capture: exchanges cut by a rotation are stitched, frames stay per file.

The lab's captures are split with `editcap -c N` (names `<prefix>_<NNNNN>_<timestamp>.pcapng`, as dumpcap's
ring) at points that cut exchanges; `analyze` on the pieces must give the whole file's verdicts and causes,
and each evidence frame, read back with tshark in the piece it names, must be the whole file's packet.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kerbtrace.analysis import analyze
from kerbtrace.parallel import analyze_files
from kerbtrace.reports.json_report import to_json
from kerbtrace.reports.table import render
from kerbtrace.sources.inputs import expand_inputs, ring_groups
from tests.conftest import CAPTURES, REPO

needs_tshark = pytest.mark.skipif(shutil.which("editcap") is None or shutil.which("tshark") is None,
                                  reason="editcap and tshark are needed (Debian: apt-get install tshark)")


def test_ring_groups_follow_names_and_numbers() -> None:
    paths = ["d/mp_00001_20261204100000.pcapng", "d/mp_00002_20261204100500.pcapng",
             "d/mp_00003_20261204101000.pcapng",
             "d/mp_00005_20261204102000.pcapng",  # a gap: a new capture
             "d/other_00006.pcapng",  # another prefix
             "e/other_00007.pcapng",  # another directory
             "e/other_00008.pcapng", "e/other_00009.pcap",  # another ending
             "e/a_b_00001.pcapng", "e/a_b_00002.pcapng",  # underscores in the prefix
             "plain.pcapng", "plain2.pcapng"]
    assert ring_groups(paths) == [[0, 1, 2], [3], [4], [5, 6], [7], [8, 9], [10], [11]]


def _split(source: Path, count: int, into: Path) -> list[str]:
    into.mkdir()
    subprocess.run(["editcap", "-c", str(count), str(source), str(into / "ring.pcapng")], check=True,
                   capture_output=True)
    return expand_inputs([str(into)])


def _doc(paths: list[str], **options) -> dict:
    return to_json(analyze(paths, progress=False, **options))


def _packets(path: str) -> list[tuple[str, ...]]:
    """Each frame as tshark sees it: time, length, addresses and ports (what makes a packet itself)."""
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len",
                          "-e", "ip.src", "-e", "ip.dst", "-e", "tcp.srcport", "-e", "udp.srcport"],
                         check=True, capture_output=True, text=True).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


def _key(client: dict) -> tuple:
    return client["client_ip"], client["hostname"], client["verdict"], client["auth"], \
        tuple(c["code"] for c in client["causes"])


@needs_tshark
@pytest.mark.parametrize(("name", "count"), [("mixed", 100), ("clock_skew", 7)])
def test_pieces_of_a_capture_give_the_whole_files_verdicts_and_frames(tmp_path: Path, name: str, count: int) -> None:
    source = CAPTURES / f"{name}.pcapng"
    pieces = _split(source, count, tmp_path / "ring")
    assert len(pieces) >= 3 and ring_groups(pieces) == [list(range(len(pieces)))]
    whole, split = _doc([str(source)]), _doc(pieces)
    assert sorted(map(_key, split["clients"])) == sorted(map(_key, whole["clients"]))
    assert [i["packets"] for i in split["inputs"]] == [count] * (len(pieces) - 1) + [split["inputs"][-1]["packets"]]
    offsets = [count * k for k in range(len(pieces))]
    whole_packets = _packets(str(source))
    piece_packets = [_packets(p) for p in pieces]
    by_client = {(c["client_ip"], c["hostname"]): c for c in whole["clients"]}
    checked = across = 0
    for client in split["clients"]:
        mine = by_client[(client["client_ip"], client["hostname"])]
        pairs = [(a, b) for ca, cb in zip(client["causes"], mine["causes"], strict=True)
                 for a, b in zip(ca["evidence"], cb["evidence"], strict=True)]
        pairs += list(zip(client["timeline"], mine["timeline"], strict=True))
        for item, same in pairs:
            if item.get("frame") is None or item.get("source", "capture") != "capture":
                continue
            k = item.get("input", client["input"])
            across += "input" in item
            assert k != client["input"] or "input" not in item
            assert offsets[k] + item["frame"] == same["frame"], (client["client_ip"], item, same)
            assert piece_packets[k][item["frame"] - 1] == whole_packets[same["frame"] - 1]
            checked += 1
    assert checked > 10
    assert across > 0  # the split cut an exchange: some frames are in another file than their client's
    for record, same in zip(split["kerberos"], whole["kerberos"], strict=True):
        assert offsets[record["input"]] + record["frame"] == same["frame"]


@needs_tshark
def test_the_table_names_the_file_of_a_frame_in_another_piece(tmp_path: Path) -> None:
    pieces = _split(CAPTURES / "mixed.pcapng", 100, tmp_path / "ring")
    text = render(analyze(pieces, progress=False), verbose=True)
    assert "files of one ring" in text
    lines = [line for line in text.splitlines() if "] frame.number == " in line]
    assert lines and all(line.strip().startswith("[") for line in lines)


@needs_tshark
def test_without_stitching_or_with_a_gap_the_files_are_captures_of_their_own(tmp_path: Path) -> None:
    source = CAPTURES / "mixed.pcapng"
    pieces = _split(source, 100, tmp_path / "ring")
    whole = sorted(map(_key, _doc([str(source)])["clients"]))
    alone = _doc(pieces, stitch=False)
    assert sorted(map(_key, alone["clients"])) != whole  # a cut exchange is judged in each piece on its own
    assert all("input" not in e for c in alone["clients"] for f in c["causes"] for e in f["evidence"])
    gapped = [p for i, p in enumerate(pieces) if i != 3]
    assert ring_groups(gapped) == [[0, 1, 2], list(range(3, len(gapped)))]
    doc = _doc(gapped)
    assert sum("files of one ring" in n for i in doc["inputs"] for n in i.get("notes", [])) == 2


@needs_tshark
def test_jobs_and_the_command_line_read_a_ring_as_one(tmp_path: Path) -> None:
    pieces = _split(CAPTURES / "mixed.pcapng", 100, tmp_path / "ring")
    other = str(CAPTURES / "clock_skew.pcapng")
    one = to_json(analyze([other, *pieces], progress=False))
    two = to_json(analyze_files([other, *pieces], jobs=2, progress=False))
    assert one["clients"] == two["clients"] and one["kerberos"] == two["kerberos"]
    assert {c["input"] for c in one["clients"]} >= {0, 1}
    out = subprocess.run([sys.executable, "-m", "kerbtrace", "analyze", "--no-progress", "--json", "-",
                          str(tmp_path / "ring" / "ring_*.pcapng")], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    assert sorted(map(_key, doc["clients"])) == sorted(map(_key, _doc([str(CAPTURES / "mixed.pcapng")])["clients"]))
