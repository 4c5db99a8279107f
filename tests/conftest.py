"""Shared test fixtures: where the test inputs live, and the one rule for inputs that are absent.

A test whose input is missing (a real capture the repository may not ship, tshark, an optional package)
skips with the reason printed (`-ra`), never errors at collection. With KERBTRACE_REQUIRE_ALL=1 (CI sets
it) any skip fails the run, listing the reasons: there everything must run.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
#: The real public captures: the repository ships those whose licence allows it (captures/real/); the
#: full set, when present, sits beside the repository as ../shared/real-captures.
SHIPPED_REAL_CAPTURES = CAPTURES / "real"
SHARED_REAL_CAPTURES = REPO.parent / "shared" / "real-captures"
REAL_CAPTURE_DIRS = (SHIPPED_REAL_CAPTURES, SHARED_REAL_CAPTURES)
#: Whether the tests see all 42 real captures or only the shipped ones (coverage floors depend on it).
FULL_REAL_SET = SHARED_REAL_CAPTURES.is_dir()
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")

NO_TSHARK = "tshark is not installed (Debian: apt-get install tshark); it is the reference the tests compare against"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason=NO_TSHARK)
REQUIRE_ALL = os.environ.get("KERBTRACE_REQUIRE_ALL") == "1"


#: The fix script's "Generated <date> <time> UTC", wherever its comment lines wrap it ("\n# ", or "\\n# " where a
#: report holds it as a JSON string).
_SEP = r"(?:\s|#|\\n)+"
_GENERATED_AT = re.compile(rf"Generated{_SEP}\d{{4}}-\d\d-\d\d{_SEP}\d\d:\d\d{_SEP}UTC")


def timeless(doc: dict) -> dict:
    """A JSON report without the time of its run (`generated`, and the minute in the fix script's header), for
    comparing the documents of two runs: runs a minute boundary apart must still compare equal."""
    doc.pop("generated", None)
    if doc.get("fix_script"):
        doc["fix_script"] = timeless_text(doc["fix_script"])
    return doc


def timeless_text(text: str) -> str:
    """A report's text (HTML, Markdown, the fix script) without the minute its fix script was generated in."""
    return _GENERATED_AT.sub("Generated", text)


def real_capture_files() -> list[Path]:
    """Every real capture at hand, by name: the repository's copy first, then those only in ../shared."""
    found: dict[str, Path] = {}
    for folder in REAL_CAPTURE_DIRS:
        if folder.is_dir():
            for p in folder.iterdir():
                if p.suffix in CAPTURE_SUFFIXES:
                    found.setdefault(p.name, p)
    return [found[name] for name in sorted(found)]


def real_capture(name: str) -> Path:
    """The real capture `name` (repository copy first, then ../shared); the calling test skips when absent."""
    for folder in REAL_CAPTURE_DIRS:
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"real capture {name} is absent: the repository does not ship it (no licence to) "
                "and ../shared/real-captures is not beside the repository")


def lab_manifests() -> list[Path]:
    return sorted(CAPTURES.glob("*.json"))


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip(NO_TSHARK)
    return path


# ---- KERBTRACE_REQUIRE_ALL: a skipped test fails the run ------------------------------------------

_SKIPPED: list[tuple[str, str]] = []


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _SKIPPED.append((report.nodeid, _skip_reason(report)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_ALL and _SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if REQUIRE_ALL and _SKIPPED:
        terminalreporter.section("KERBTRACE_REQUIRE_ALL=1: skipped tests fail the run", sep="=", red=True)
        for nodeid, reason in _SKIPPED:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)
