"""The batch report: one self-contained HTML file with totals, flags, per-account charts
and tables, trades with lot detail, tax and costs, fills once there are any; the same
batch gives the same bytes; and headless Chromium shows it with no console error and
every chart drawn."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from planner.blotter.reconcile import reconcile
from planner.blotter.report import render_report, write_report
from planner.blotter.store import open_store
from planner.cli import app
from planner.errors import UnknownBatchError
from planner.io import load_book
from tests.reconcile_helpers import BATCH_ID, exported_batch, hand_fills, tiny_book

CHROMIUM = "/usr/bin/chromium"
MISSING_CHROMIUM = (
    "the report's browser test needs Chromium: install Debian's chromium package "
    "(apt-get install chromium)"
)


@pytest.fixture
def batch(store, tmp_path):
    return exported_batch(store, tiny_book(tmp_path / "book"), tmp_path)


def test_report_holds_the_batch(store, batch, tmp_path):
    path = write_report(BATCH_ID, tmp_path / "r" / "report.html", store=store)
    html = path.read_text()
    assert f"Batch {BATCH_ID}" in html and "(exported)" in html
    # Totals: buys 20 ITOT + 4 VTI + 10 BND at the estimates; sells 50 BND + 15 VTI.
    assert "$3,500.00" in html and "$6,500.00" in html
    # Two charts per account (allocation against target, drift), inline SVG.
    assert html.count("<svg") == 4 and html.count('class="bar"') > 0
    assert "A1: allocation before and after, against target" in html
    # Trades with lot detail, gains and tax.
    assert "lot A1-L1" in html and "acquired 2026-03-02" in html and "-$500.00" in html
    assert "US_EQUITY" in html and "+1.00 pp" in html  # 0.36 -> 0.58 against 0.60: -24 -> -2
    # Self-contained: nothing to fetch, no script.
    assert "<script" not in html
    assert not re.search(r'(src|href)="(?!#)', html)
    assert "default-src 'none'" in html
    # The same batch, the same bytes.
    again = write_report(BATCH_ID, tmp_path / "again.html", store=store)
    assert again.read_bytes() == path.read_bytes()


def test_report_after_reconciliation_shows_the_fills(store, batch, tmp_path):
    reconcile(BATCH_ID, hand_fills(tmp_path / "F.csv"), tmp_path / "book", tmp_path / "next",
              store=store)  # fmt: skip
    html = write_report(BATCH_ID, tmp_path / "report.html", store=store).read_text()
    assert "(reconciled)" in html
    assert "30 (partial)" in html and "15 (filled)" in html
    assert "Audit log" in html and "exported &rarr; filled" in html
    assert "filled &rarr; reconciled" in html


def test_report_without_its_book_says_so(store, batch, tmp_path):
    shutil.rmtree(tmp_path / "book")
    html = write_report(BATCH_ID, tmp_path / "report.html", store=store).read_text()
    assert "targets not shown" in html
    assert html.count("<svg") == 2  # the allocation charts; no drift without targets


def test_report_of_an_unknown_batch(store, tmp_path):
    with pytest.raises(UnknownBatchError, match="no batch B-NONE"):
        write_report("B-NONE", tmp_path / "report.html", store=store)
    assert not (tmp_path / "report.html").exists()


def test_cli_report(store_url, tmp_path):
    with open_store(store_url) as store:
        exported_batch(store, tiny_book(tmp_path / "book"), tmp_path)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", BATCH_ID, "--out", str(out), "--db", store_url])
    assert result.exit_code == 0, result.output
    assert out.exists() and "wrote" in result.output
    bad = CliRunner().invoke(app, ["report", "B-NONE", "--out", str(out), "--db", store_url])
    assert bad.exit_code == 1 and "no batch B-NONE" in bad.output


# -- in a real browser ----------------------------------------------------------------------

PROBE = """<script>
addEventListener('load', function () {
  var drawn = [];
  document.querySelectorAll('figure.chart svg').forEach(function (svg) {
    var box = svg.getBoundingClientRect(), bars = 0;
    svg.querySelectorAll('rect.bar').forEach(function (bar) {
      var b = bar.getBBox();
      if (b.width > 0 && b.height > 0) bars++;
    });
    drawn.push(Math.round(box.width) + 'x' + Math.round(box.height) + 'x' + bars);
  });
  document.body.setAttribute('data-drawn', drawn.join(' '));
  console.log('probe: ' + drawn.length + ' charts');
});
</script>"""


def chromium_render(html: Path, work: Path) -> tuple[str, list[str]]:
    """The page's DOM after load in headless Chromium, with a probe that measures every
    chart as drawn, and the console messages (the probe's own left out)."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING_CHROMIUM)
        pytest.skip(MISSING_CHROMIUM)
    text = html.read_text()
    # The probe is the page's only script: the test lets inline scripts run (the report's
    # policy forbids them); everything else the policy forbids still is, and would show
    # as a console error.
    text = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    probed = work / "probed.html"
    probed.write_text(text.replace("</body>", PROBE + "</body>"))
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={work / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    console = [
        line for line in run.stderr.splitlines() if ":CONSOLE" in line and '"probe: ' not in line
    ]
    return run.stdout, console


def test_report_in_headless_chromium(store, batch, tmp_path):
    reconcile(BATCH_ID, hand_fills(tmp_path / "F.csv"), tmp_path / "book", tmp_path / "next",
              store=store)  # fmt: skip
    path = write_report(BATCH_ID, tmp_path / "report.html", store=store)
    dom, console = chromium_render(path, tmp_path)
    assert console == []
    drawn = re.search(r'data-drawn="([^"]*)"', dom).group(1).split()
    assert len(drawn) == 4
    for chart in drawn:
        width, height, bars = (int(x) for x in chart.split("x"))
        assert width > 300 and height > 100 and bars >= 3


def test_demo_report_in_headless_chromium(tmp_path):
    """A report of a real plan of the demo (about 90 accounts) opens cleanly too."""
    from planner.blotter.batch import build_batch
    from planner.run import plan

    book = load_book(Path(__file__).resolve().parents[1] / "data" / "demo")
    result = plan(book, accounts=sorted(book.accounts)[:40])
    batch = build_batch(
        book, result, proposer="alice", as_of=book.settings.as_of, options={},
        book_path=book.source,
    )  # fmt: skip
    path = tmp_path / "demo.html"
    path.write_text(render_report(batch, models=book.models))
    dom, console = chromium_render(path, tmp_path)
    assert console == []
    drawn = re.search(r'data-drawn="([^"]*)"', dom).group(1).split()
    assert len(drawn) == 2 * len(batch.accounts) > 0
    assert all(int(chart.split("x")[2]) > 0 for chart in drawn)
