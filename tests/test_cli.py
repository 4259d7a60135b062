"""The `rebalance` command on the bundled demo book and on broken books."""

from __future__ import annotations

import os
import re
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


def _plain(text: str) -> str:
    """Output with rich's panel borders and line wrapping removed."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text)


@pytest.mark.parametrize(
    "option, value",
    [
        ("--turnover-cap", "1.5"),
        ("--turnover-cap", "-0.1"),
        ("--min-weight", "nan"),
        ("--max-weight", "2"),
        ("--max-weight", "lots"),
    ],
)
def test_plan_rejects_bad_fractions(option, value, tmp_path):
    result = runner.invoke(app, ["plan", str(DEMO), option, value, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    text = _plain(result.output)
    assert f"'{option}'" in text
    if value != "lots":
        assert "fraction of account value in [0, 1]" in text
    assert not (tmp_path / "summary.csv").exists()


def test_plan_rejects_min_weight_above_max_weight(tmp_path):
    args = ["plan", str(DEMO), "--min-weight", "0.3", "--max-weight", "0.2", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--min-weight 0.3 is above --max-weight 0.2" in _plain(result.output)


def _model_weights(book, summary: pd.DataFrame, orders: pd.DataFrame) -> dict:
    """Post-trade weight of every model security of every planned account."""
    out = {}
    for account_id, row in summary[summary["status"] == "optimal"].iterrows():
        held = dict(book.holdings(account_id))
        for o in orders[orders["account_id"] == account_id].itertuples():
            held[o.symbol] = held.get(o.symbol, 0.0) + (o.shares if o.side == "buy" else -o.shares)
        for symbol in book.models[book.accounts[account_id].model].securities:
            price = book.securities[symbol].price
            out[account_id, symbol] = held.get(symbol, 0.0) * price / row["value"]
    return out


def test_plan_turnover_cap_and_weight_limits(tmp_path):
    """The options reach the optimiser: turnover and each model security's post-trade
    weight stay within them (up to whole-share rounding), where without them the same
    accounts trade more and hold more of one security."""
    from planner.io import load_book

    book = load_book(DEMO)
    out = tmp_path / "out"
    runner.invoke(app, ["check", str(DEMO), "--out", str(out)])
    fired = pd.read_csv(out / "triggers.csv").query("fire")["account_id"].tolist()[:6]
    base = ["plan", str(DEMO), "--accounts", ",".join(fired)]
    runs = {}
    for name, extra in {
        "free": [],
        "capped": ["--turnover-cap", "0.3", "--min-weight", "0.01", "--max-weight", "0.3"],
    }.items():
        result = runner.invoke(app, [*base, "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        summary = pd.read_csv(tmp_path / name / "summary.csv").set_index("account_id")
        orders = pd.read_csv(tmp_path / name / "orders.csv")
        runs[name] = summary, _model_weights(book, summary, orders)
    free, free_weights = runs["free"]
    capped, capped_weights = runs["capped"]
    assert (free["turnover"] > 0.3 + 1e-3).any()
    assert max(free_weights.values()) > 0.3 + 1e-3
    ok = capped[capped["status"] == "optimal"]
    assert len(ok) >= 3
    # The optimiser's continuous plan obeys the limits exactly; whole-share rounding may
    # move each trade by up to its rounding residual (dollars, reported per account).
    slack = ok["rounding_residual"] / ok["value"] + 1e-6
    assert (ok["turnover"] <= 0.3 + slack).all(), ok[["turnover", "rounding_residual"]]
    for (account_id, symbol), weight in capped_weights.items():
        assert weight <= 0.3 + slack[account_id], (account_id, symbol, weight)
    # The 1% floor binds on model securities with a target, where the account holds any.
    for account_id in ok.index:
        model = book.models[book.accounts[account_id].model]
        for symbol, target in model.security_targets.items():
            if target > 0 and book.holdings(account_id).get(symbol, 0.0) > 0:
                assert capped_weights[account_id, symbol] >= 0.01 - slack[account_id]


# -- exit codes, output folders, hostile ids -------------------------------------------------


def _book_with(tmp_path, name: str, edit) -> Path:
    book = tmp_path / "book"
    shutil.copytree(DEMO, book)
    frame = pd.read_csv(book / name, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(book / name, index=False)
    return book


def _bankrupt(frame):
    # An account worth less than nothing: its plan raises an error (status "error").
    frame.loc[frame["account_id"] == "A0001", "cash"] = "-100000000"


@pytest.mark.parametrize(
    ("fail_on", "code"), [(None, 3), ("error", 3), ("failed", 3), ("never", 0)]
)
def test_plan_exit_code_counts_account_failures(tmp_path, fail_on, code):
    book = _book_with(tmp_path, "accounts.csv", _bankrupt)
    args = ["plan", str(book), "--accounts", "A0001,A0004", "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args + (["--fail-on", fail_on] if fail_on else []))
    assert result.exit_code == code, result.output
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary.set_index("account_id").loc["A0001", "status"] == "error"


def test_plan_exit_codes_for_a_bad_book_and_bad_usage(tmp_path):
    book = _book_with(tmp_path, "lots.csv", lambda f: f.loc.__setitem__((0, "shares"), "-1"))
    assert runner.invoke(app, ["plan", str(book), "--out", str(tmp_path / "o")]).exit_code == 1
    assert runner.invoke(app, ["plan", str(DEMO), "--effort", "huge"]).exit_code == 2
    assert runner.invoke(app, ["plan", str(DEMO), "--fail-on", "sometimes"]).exit_code == 2


@pytest.mark.parametrize("kind", ["file", "under_a_file", "read_only"])
def test_an_unwritable_out_is_one_line_before_any_planning(tmp_path, kind, monkeypatch):
    import planner.run

    def never(*args, **kwargs):
        raise AssertionError("planned although --out cannot be written")

    monkeypatch.setattr(planner.run, "plan", never)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    out = {"file": blocker, "under_a_file": blocker / "out", "read_only": tmp_path / "ro"}[kind]
    if kind == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root may write into a read-only folder")
        out.mkdir()
        out.chmod(0o500)
    try:
        result = runner.invoke(app, ["plan", str(DEMO), "--out", str(out)])
    finally:
        if kind == "read_only":
            out.chmod(0o700)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(out) in lines[0], result.output


def test_a_folder_in_place_of_an_output_file_keeps_the_previous_set(tmp_path):
    out = tmp_path / "out"
    args = ["plan", str(DEMO), "--accounts", "A0004,A0005", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    names = ("orders.csv", "lot_sales.csv", "summary.csv")
    before = {name: (out / name).read_bytes() for name in names}
    (out / "timings.csv").unlink()
    (out / "timings.csv").mkdir()
    result = runner.invoke(app, ["plan", str(DEMO), "--accounts", "A0006", "--out", str(out)])
    assert result.exit_code == 1 and "timings.csv" in result.output
    for name in names:
        assert (out / name).read_bytes() == before[name], name


def test_plan_and_check_files_live_side_by_side(tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["check", str(DEMO), "--out", str(out)]).exit_code == 0
    drift = (out / "drift.csv").read_bytes()
    args = ["plan", str(DEMO), "--accounts", "A0004", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    assert (out / "drift.csv").read_bytes() == drift
    assert runner.invoke(app, args).exit_code == 0  # again: one set of each, no leftovers
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert [h.split("-")[0] for h in hidden] == [
        ".check.csv",
        ".check.csv",
        ".plan.csv",
        ".plan.csv",
        ".rebalance.lock",
    ]


def test_ids_with_markup_are_printed_as_they_are(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(DEMO, book)
    strange = {"A0004": "A0004[/]", "A0005": "[link=http://x.test]A0005"}
    for name in ("accounts.csv", "lots.csv", "trades.csv"):
        frame = pd.read_csv(book / name, dtype=str, keep_default_na=False)
        frame["account_id"] = frame["account_id"].replace(strange)
        frame.to_csv(book / name, index=False)
    out = tmp_path / "out"
    checked = runner.invoke(app, ["check", str(book), "--out", str(out)])
    assert checked.exit_code == 0, checked.output
    planned = runner.invoke(
        app, ["plan", str(book), "--accounts", ",".join(strange.values()), "--out", str(out)]
    )
    assert planned.exit_code == 0, planned.output
    assert "A0004[/]" in planned.output and "[link=http://x.test]A0005" in planned.output
