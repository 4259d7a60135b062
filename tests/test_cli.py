"""The `rebalance` command on the bundled demo book and on broken books."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.cli import app

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
runner = CliRunner()


def test_validate_demo_book():
    result = runner.invoke(app, ["validate", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_validate_reports_file_line_field(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(DEMO, book)
    lots = (book / "lots.csv").read_text().splitlines()
    header = lots[0].split(",")
    row = lots[1].split(",")
    row[header.index("shares")] = "-3"
    lots[1] = ",".join(row)
    (book / "lots.csv").write_text("\n".join(lots) + "\n")
    result = runner.invoke(app, ["validate", str(book)])
    assert result.exit_code == 1
    assert "lots.csv:2: shares" in result.output


def test_check_writes_drift_and_triggers(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["check", str(DEMO), "--out", str(out)])
    assert result.exit_code == 0, result.output
    drift = pd.read_csv(out / "drift.csv")
    triggers = pd.read_csv(out / "triggers.csv")
    assert {"account_id", "asset_class", "current", "target", "drift"} <= set(drift.columns)
    assert triggers["fire"].any()
    assert "Triggers as of" in result.output


def test_plan_demo_subset_writes_outputs(tmp_path):
    out = tmp_path / "out"
    triggers = runner.invoke(app, ["check", str(DEMO), "--out", str(out)])
    assert triggers.exit_code == 0
    fired = pd.read_csv(out / "triggers.csv").query("fire")["account_id"].tolist()[:5]
    result = runner.invoke(
        app, ["plan", str(DEMO), "--accounts", ",".join(fired), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for name in ("orders.csv", "lot_sales.csv", "summary.csv"):
        assert (out / name).exists()
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["account_id"]) == sorted(fired)
    assert "Totals" in result.output
    assert not list(out.glob(".*.tmp"))


def test_plan_rejects_unknown_account(tmp_path):
    result = runner.invoke(app, ["plan", str(DEMO), "--accounts", "NOPE", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "NOPE" in result.output


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday"])
def test_bad_as_of_is_a_clear_error(bad, tmp_path):
    result = runner.invoke(app, ["check", str(DEMO), "--as-of", bad, "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--as-of" in result.output
