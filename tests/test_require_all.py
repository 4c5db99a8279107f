"""KERBTRACE_REQUIRE_ALL=1 (set by CI) turns any skipped test into a failed run that lists the reasons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

HOOKS = "from tests.conftest import (pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish,\n" \
        "                            pytest_terminal_summary)\n"
TESTS = '''import pytest

def test_runs():
    assert True

def test_needs_a_tool():
    pytest.skip("sometool is not installed")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''


def _pytest(folder: Path, require_all: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KERBTRACE_REQUIRE_ALL"}
    env["PYTHONPATH"] = str(REPO)
    if require_all:
        env["KERBTRACE_REQUIRE_ALL"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(folder / "pytest.ini"),
                           "--rootdir", str(folder), str(folder)], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_skip_fails_the_run_only_when_everything_is_required(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    (tmp_path / "conftest.py").write_text(HOOKS)
    (tmp_path / "test_sample.py").write_text(TESTS)
    (tmp_path / "test_optional.py").write_text('import pytest\npytest.importorskip("no_such_package_here")\n')
    relaxed = _pytest(tmp_path, require_all=False)
    assert relaxed.returncode == 0, relaxed.stdout[-2000:]
    assert "sometool is not installed" in relaxed.stdout  # the reason is printed either way
    strict = _pytest(tmp_path, require_all=True)
    assert strict.returncode == 1, strict.stdout[-2000:]
    listed = strict.stdout.split("skipped tests fail the run", 1)[1].split("short test summary info", 1)[0]
    assert "test_sample.py::test_needs_a_tool: sometool is not installed" in listed
    assert "test_optional.py" in listed and "no_such_package_here" in listed
    assert "test_expected_failure" not in listed  # an expected failure is not a skip


def test_nothing_skipped_passes_when_everything_is_required(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(HOOKS)
    (tmp_path / "test_sample.py").write_text("def test_runs():\n    assert True\n")
    out = _pytest(tmp_path, require_all=True)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "skipped tests fail the run" not in out.stdout
