"""Helpers for tests that record real sockets on loopback and read the result through the pipeline."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.pipeline import Pipeline
from kerbtrace.reassembly.network import NetworkLayer
from kerbtrace.sources import open_capture


@contextmanager
def recording(path: Path, capture_filter: str) -> Iterator[Path]:
    """dumpcap on `lo` with a capture filter while the block runs (needs root); stopped by its PID.

    Without dumpcap, or without the right to capture, the test skips with the reason (CI runs as root with
    KERBTRACE_REQUIRE_ALL=1, where a skip fails the run)."""
    if shutil.which("dumpcap") is None:
        pytest.skip("dumpcap is not installed (Debian: apt-get install tshark): it records the test traffic")
    dumpcap = subprocess.Popen(["dumpcap", "-i", "lo", "-f", capture_filter, "-n", "-q", "-s", "0", "-w", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        if dumpcap.poll() is not None:
            pytest.skip(f"dumpcap cannot capture on lo (run as root): {dumpcap.stderr.read().decode()[-300:]}")
        yield path
        time.sleep(0.5)
    finally:
        dumpcap.send_signal(signal.SIGINT)
        dumpcap.wait(timeout=20)


def pipeline_events(path: Path) -> tuple[list, Diagnostics, dict]:
    """Every event the pipeline emits for a capture, its diagnostics and the reassembler's counters."""
    diag = Diagnostics()
    events: list = []
    network = NetworkLayer(Pipeline(diag, events.append), diag)
    with open_capture(path, diag) as capture:
        for frame, t, linktype, data in capture:
            network.feed(frame, t, linktype, data)
    network.flush()
    return events, diag, dict(network.stats)
