"""The README and the docs say what the program does: links resolve inside the repository, the example
output is what kerbtrace prints, and the exit statuses are those of --help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
DOC_FOLDERS = ("docs", "captures", "benchmarks", "lab", "kerbtrace", "tests")


def _markdown_files() -> list[Path]:
    return [REPO / "README.md"] + sorted(p for d in DOC_FOLDERS for p in (REPO / d).rglob("*.md"))


def _kerbtrace(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "100"}  # the width the README's example was written at
    return subprocess.run([sys.executable, "-m", "kerbtrace", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120).stdout


def test_every_relative_markdown_link_resolves_inside_the_repository():
    checked = 0
    broken = []
    for md in _markdown_files():
        for target in LINK.findall(FENCE.sub("", md.read_text(encoding="utf-8"))):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = (md.parent / target.split("#", 1)[0]).resolve()
            checked += 1
            if not path.exists() or not path.is_relative_to(REPO):
                broken.append(f"{md.relative_to(REPO)}: {target}")
    assert checked > 10, "the link pattern finds the docs' links"
    assert not broken, broken


def test_readme_example_is_what_the_program_prints():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```text\n\$ kerbtrace (analyze \S+)\n(.*?)```", readme, re.S)
    assert example, "the README shows one run of kerbtrace"
    assert _kerbtrace(*example.group(1).split()) == example.group(2)


def test_readme_exit_statuses_are_those_of_help():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = re.search(r"```text\n(exit status:\n.*?)```", readme, re.S)
    assert documented, "the README lists the exit statuses"
    help_text = _kerbtrace("analyze", "--help")
    assert "exit status:" in help_text
    assert documented.group(1) == "exit status:" + help_text.split("exit status:", 1)[1]
