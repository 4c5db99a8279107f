"""Shared test fixtures: where the shipped lab captures and the real public captures live."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
REAL_CAPTURES = REPO.parent / "shared" / "real-captures"


def real_capture_files() -> list[Path]:
    if not REAL_CAPTURES.is_dir():
        return []
    return sorted(p for p in REAL_CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap", ".gz"))


def lab_manifests() -> list[Path]:
    return sorted(CAPTURES.glob("*.json"))


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is required: it is the reference dissector the tests compare against")
    return path
