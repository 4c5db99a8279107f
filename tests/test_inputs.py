"""A directory or a glob pattern stands for its capture files, read in the order of their first packet
(a dumpcap ring buffer's files, whatever their names)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kerbtrace.sources.inputs import expand_inputs
from tests.conftest import CAPTURES


@pytest.fixture()
def ring(tmp_path):
    """One lab capture cut into a ring of files whose names sort against their time order."""
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (Wireshark's tools) is not installed")
    src = CAPTURES / "mixed.pcapng"
    parts = tmp_path / "parts"
    parts.mkdir()
    subprocess.run([editcap, "-c", "40", str(src), str(parts / "p.pcapng")], check=True)
    pieces = sorted(parts.iterdir())
    assert len(pieces) >= 3
    ring = tmp_path / "ring"
    ring.mkdir()
    named = []
    for i, piece in enumerate(pieces):  # later pieces get names that sort first
        target = ring / f"mp01_{len(pieces) - i:05d}.pcapng"
        piece.rename(target)
        named.append(str(target))
    (ring / "notes.txt").write_text("not a capture")
    return ring, named


def test_directory_in_time_order(ring):
    folder, in_time_order = ring
    assert expand_inputs([str(folder)]) == in_time_order


def test_glob_in_time_order_and_plain_names_kept(ring, tmp_path):
    folder, in_time_order = ring
    missing = str(tmp_path / "missing.pcap")
    assert expand_inputs([missing, str(folder / "mp01_*.pcapng")]) == [missing, *in_time_order]
    assert expand_inputs([str(tmp_path / "nothing-*.pcap")]) == [str(tmp_path / "nothing-*.pcap")]  # error later


def test_cli_reads_a_directory(ring, tmp_path, capsys):
    import json

    from kerbtrace.cli import main

    folder, in_time_order = ring
    out = tmp_path / "r.json"
    main(["analyze", str(folder), "--json", str(out), "--no-progress"])
    capsys.readouterr()
    assert [i["path"] for i in json.loads(out.read_text())["inputs"]] == in_time_order
