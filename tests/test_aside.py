"""The text table rendered by a forked process while the JSON report is written (`kerbtrace.aside`)."""

from __future__ import annotations

import os

import pytest

from kerbtrace import aside as aside_module
from kerbtrace import cli, spill
from kerbtrace.reports import table
from tests.conftest import CAPTURES

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forking needs a POSIX system")


def test_aside_hands_back_the_childs_text_or_none():
    parent = os.getpid()
    got = aside_module.aside(lambda: f"rendered in {os.getpid()} ✓" * 20_000)  # more than a pipe holds
    text = got()
    assert text is not None and text.count("✓") == 20_000  # all of it, through the pipe
    child = text.removeprefix("rendered in ").split(" ", 1)[0]
    assert child.isdigit() and int(child) != parent  # made by another process

    def fails() -> str:
        raise ValueError("broken")
    assert aside_module.aside(fails)() is None


def _run(args: list[str], capsys) -> tuple[int, str]:
    rc = cli.main(args)
    return rc, capsys.readouterr().out


def test_cli_table_from_the_child_is_the_table(tmp_path, monkeypatch, capsys):
    """With --jobs 2 and enough clients the table comes from the child: the same text as written here, while the
    results are read back from disk by both processes at once (by offset: they share no file position)."""
    captures = [str(p) for p in sorted(CAPTURES.glob("*.pcapng"))]
    monkeypatch.setattr(spill, "THRESHOLD", 3)  # every list of results on disk, read by both processes
    base = ["analyze", *captures, "--no-progress", "-v"]
    rc_one, alone = _run([*base, "--jobs", "1", "--json", str(tmp_path / "one.json")], capsys)
    used = []
    real = aside_module.aside

    def spy(render):
        waiting = real(render)

        def result():
            text = waiting()
            used.append(text is not None)
            return text
        return result

    monkeypatch.setattr(aside_module, "aside", spy)
    monkeypatch.setattr(cli, "TABLE_ASIDE_CLIENTS", 1)
    rc_two, beside = _run([*base, "--jobs", "2", "--json", str(tmp_path / "two.json")], capsys)
    assert used == [True], "the table was not rendered by a child"
    assert rc_one == rc_two and alone == beside and "not_approved" in alone
    assert (tmp_path / "two.json").read_text().count('"verdict"') == (tmp_path / "one.json").read_text().count(
        '"verdict"') > 5

    # a child that fails: the table is rendered here, the same text
    parent = os.getpid()
    render = table.render

    def broken(analysis, verbose=False):
        if os.getpid() != parent:
            raise MemoryError("the child ran out of memory")
        return render(analysis, verbose)

    monkeypatch.setattr(table, "render", broken)
    used.clear()
    rc_three, fallback = _run([*base, "--jobs", "2", "--json", str(tmp_path / "three.json")], capsys)
    assert used == [False] and rc_three == rc_one and fallback == alone


def test_small_runs_and_one_process_render_here(tmp_path, monkeypatch, capsys):
    called = []
    monkeypatch.setattr(aside_module, "aside", lambda render: called.append(1) or (lambda: None))
    capture = str(CAPTURES / "mixed.pcapng")
    _run(["analyze", capture, "--jobs", "2", "--json", str(tmp_path / "a.json"), "--no-progress"], capsys)
    monkeypatch.setattr(cli, "TABLE_ASIDE_CLIENTS", 1)
    _run(["analyze", capture, "--jobs", "1", "--json", str(tmp_path / "b.json"), "--no-progress"], capsys)
    assert not called  # fewer clients than TABLE_ASIDE_CLIENTS, then one process: no fork
