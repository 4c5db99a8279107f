"""The HTML report in a real browser: headless Chromium (Debian `chromium`) driven by Playwright's
Python package through `executable_path` (no browser download). Checks that the page renders without
console errors, that the client table sorts and filters, that every client's ladder diagram is drawn,
that it works without JavaScript and prints; saves screenshots into the test's tmp dir.

KERBTRACE_README_SCREENSHOTS=1 also writes the README's screenshots into docs/img/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

if CHROMIUM is None or sync_playwright is None:
    reason = "Debian package chromium not installed" if CHROMIUM is None else "pip package playwright not installed"
    print(f"\nskipping the report browser tests: {reason}")
    pytestmark = pytest.mark.skip(reason=reason)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "mixed.html"
    # run from the repository, as the README does: the report names the capture as given
    done = subprocess.run([sys.executable, "-m", "kerbtrace", "report", "captures/mixed.pcapng", "-o", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and out.exists(), done.stderr
    return out


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def open_page(browser, path: Path, **context):
    ctx = browser.new_context(viewport={"width": 1360, "height": 900}, **context)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def column(page, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#clients-table tbody tr", f"rows => rows.filter(r => !r.hidden).map(r => r.cells[{index}].textContent.trim())")


def test_renders_without_errors_and_draws_every_ladder(browser, report, tmp_path):
    page, problems = open_page(browser, report)
    assert problems == []
    rows = page.locator("#clients-table tbody tr").count()
    sections = page.locator("section.client").count()
    assert rows == sections == 37
    assert page.locator("section.client svg.ladder").count() == sections
    # every ladder is really drawn: it has a size and one arrow group per timeline step
    sizes = page.eval_on_selector_all("svg.ladder", "s => s.map(e => e.getBoundingClientRect().height)")
    assert min(sizes) > 60
    assert page.locator("svg.chart rect").count() > 5
    page.screenshot(path=str(tmp_path / "report-full.png"), full_page=True)
    failed = page.locator("section.client.not_approved").first
    failed.screenshot(path=str(tmp_path / "report-client.png"))
    assert (tmp_path / "report-full.png").stat().st_size > 10_000
    if os.environ.get("KERBTRACE_README_SCREENSHOTS"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(REPO / "docs" / "img" / "report-summary.png"))
        failed.screenshot(path=str(REPO / "docs" / "img" / "report-client.png"))
    page.context.close()


def test_table_sorts_and_filters(browser, report):
    page, problems = open_page(browser, report)
    assert page.locator("#filter-box").is_visible()
    names = column(page, 1)
    page.click("#clients-table th:nth-child(2)")
    assert column(page, 1) == sorted(names, key=str.lower)
    page.click("#clients-table th:nth-child(2)")
    assert column(page, 1) == sorted(names, key=str.lower, reverse=True)
    page.click("#clients-table th:nth-child(1)")
    assert [int(n) for n in column(page, 0)] == list(range(1, 38))
    page.fill("#filter", "not approved")
    verdicts = column(page, 5)
    assert verdicts and set(verdicts) == {"not approved"} and len(verdicts) == 19
    page.fill("#filter", "spn_wrong_account")
    assert set(column(page, 7)) == {"spn_wrong_account"}
    page.fill("#filter", "kiosk01")
    assert column(page, 1) == ["KIOSK01"]
    assert "1 of 37 shown" in page.inner_text("#filter-count")
    page.fill("#filter", "")
    assert len(column(page, 1)) == 37
    assert problems == []
    page.context.close()


def test_works_without_javascript_and_prints(browser, report, tmp_path):
    page, problems = open_page(browser, report, java_script_enabled=False)
    assert page.locator("#clients-table tbody tr").count() == 37
    assert not page.locator("#filter-box").is_visible()  # no filter box that would not work
    assert page.locator("section.client svg.ladder").count() == 37
    page.context.close()
    page, problems = open_page(browser, report)
    page.emulate_media(media="print")
    assert not page.locator("nav.toc").is_visible()
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
    (tmp_path / "report.pdf").write_bytes(pdf)
    assert problems == []
    page.context.close()
