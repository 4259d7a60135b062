"""`rebalance whatif` on the demo book: each sweep moves the plan the way it should, and the
command's usage errors and --top-bracket."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.cli import app
from planner.domain import TaxReturn
from planner.errors import ConfigError
from planner.io import load_book
from planner.tax import holding_term
from planner.whatif import WhatIfOptions, run_whatif, scenarios, top_bracket
from planner.whatif.sweep import _next_year

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
ACCOUNT = "A0032"
"""Taxable, 50.1% / 33.1% rates, the demo's largest embedded tax; its lot A0032-L002 (SCHB,
a $9,954 gain) turns long-term on 2026-12-10, 20 days after the book's as-of date."""
IRA = "A0004"
HIGH_TE_VALUE = 0.05
"""A tracking-error value at which the account's plan realises a net gain (at the book's
0.005 it only harvests losses), so that rates and budgets have something to act on."""

runner = CliRunner()


@pytest.fixture(scope="module")
def book():
    return load_book(DEMO)


def _sweep(book, **options) -> pd.DataFrame:
    rows = run_whatif(book, ACCOUNT, WhatIfOptions(**options)).rows
    assert (rows["status"] == "optimal").all(), rows[["sweep", "scenario", "message"]]
    return rows


def test_higher_tracking_error_value_never_ends_with_more_tracking_error(book):
    rows = _sweep(book, sweeps=("te_value",), te_values=(0.0005, 0.005, 0.05, 0.1))
    frontier = rows[rows["sweep"] == "te_value"]
    assert frontier["te_value"].is_monotonic_increasing
    te_after = frontier["te_after"].to_numpy()
    assert (np.diff(te_after) <= 1e-6).all()
    assert te_after[-1] < te_after[0]  # the sweep does move the plan
    assert rows.iloc[0]["current"] and rows.iloc[0]["sweep"] == "current"


def test_higher_tax_rates_never_realise_more_net_gain(book):
    rows = _sweep(book, sweeps=("tax_rate",), te_value=HIGH_TE_VALUE, state_rate=0.05)
    rates = rows[rows["sweep"] == "tax_rate"]
    assert rates["st_rate"].tolist() == pytest.approx([0.328, 0.408, 0.438, 0.458])
    assert rates["lt_rate"].tolist() == pytest.approx([0.238, 0.238, 0.238, 0.288])
    net = (rates["realized_st"] + rates["realized_lt"]).to_numpy()
    assert (np.diff(net) <= 0.01).all()


def test_a_zero_gain_budget_realises_no_net_gain(book):
    rows = _sweep(book, sweeps=("gain_budget",), te_value=HIGH_TE_VALUE, gain_budgets=(0.0,))
    current = rows[rows["current"]].iloc[0]
    assert current["realized_st"] + current["realized_lt"] > 1000.0  # without a budget
    zero = rows[rows["sweep"] == "gain_budget"].iloc[0]
    assert zero["gain_budget"] == 0.0
    assert zero["realized_st"] + zero["realized_lt"] <= 0.01


def test_waiting_turns_a_short_term_lot_long_term(book):
    lot = book.lot_frame(ACCOUNT).set_index("lot_id").loc["A0032-L002"]
    acquired = pd.Timestamp(lot["acquired"]).date()
    rows = _sweep(book, sweeps=("wait",), wait_days=(0, 30))
    waits = rows[rows["sweep"] == "wait"].set_index("wait_days")
    now, later = waits.loc[0], waits.loc[30]
    assert holding_term(acquired, date.fromisoformat(now["as_of"])) == "ST"
    assert holding_term(acquired, date.fromisoformat(later["as_of"])) == "LT"
    assert later["as_of"] == "2026-12-21"  # 2026-12-20 is a Sunday
    assert later["st_gain_lots"] == now["st_gain_lots"] - 1
    gain = lot["shares"] * book.securities["SCHB"].price - lot["shares"] * lot["unit_cost"]
    assert later["unrealized_lt"] - now["unrealized_lt"] == pytest.approx(gain, abs=0.01)


def test_a_wait_into_next_year_starts_a_new_tax_year():
    ret = TaxReturn("H1", ytd_st_gain=-10_000.0, ytd_lt_gain=2_000.0)
    new = _next_year(ret, 1)
    assert (new.ytd_st_gain, new.ytd_lt_gain) == (0.0, 0.0)
    # -10,000 ST against +2,000 LT nets to -8,000 ST; 3,000 deducted, 5,000 carried.
    assert new.carryforward_st == pytest.approx(5_000.0)
    assert new.carryforward_lt == 0.0


def test_rebalance_to_sweep_plans_partial_rebalances(book):
    rows = _sweep(book, sweeps=("rebalance_to",))
    by = rows[rows["sweep"] == "rebalance_to"].set_index("scenario")
    assert by.loc["target", "decision"] == "full"
    assert by.loc["band_edge", "rebalance_to"] == "band_edge"
    assert by.loc["band_edge", "turnover"] <= by.loc["target", "turnover"]


def test_tax_sweeps_of_an_ira_are_refused(book):
    with pytest.raises(ConfigError, match="not taxed"):
        scenarios(book, IRA, WhatIfOptions(sweeps=("tax_rate",)))
    assert len(scenarios(book, IRA, WhatIfOptions(sweeps=("te_value",), te_values=(0.01,)))) == 2


def test_top_bracket_orders_by_embedded_tax(book):
    top = top_bracket(book, 5)
    assert len(top) == 5
    assert top["embedded_tax"].is_monotonic_decreasing
    assert all(book.accounts[a].taxable for a in top["account_id"])
    everyone = top_bracket(book, len(book.accounts))
    assert top["account_id"].tolist() == everyone["account_id"].head(5).tolist()
    assert len(everyone) == sum(a.taxable for a in book.accounts.values())
    first = top.iloc[0]
    assert first["account_id"] == ACCOUNT
    assert first["embedded_tax"] == pytest.approx(
        first["unrealized_st"] * 0.501 + first["unrealized_lt"] * 0.331
    )


def test_command_without_account_exits_2_pointing_to_top_bracket():
    result = runner.invoke(app, ["whatif", str(DEMO)])
    assert result.exit_code == 2
    assert "--top-bracket" in result.output


def test_command_usage_errors(tmp_path):
    unknown = runner.invoke(app, ["whatif", str(DEMO), "--account", "NOPE"])
    assert unknown.exit_code == 2 and "unknown account" in unknown.output
    ira = runner.invoke(app, ["whatif", str(DEMO), "--account", IRA, "--sweep", "tax"])
    assert ira.exit_code == 2 and "not taxed" in ira.output
    bad = runner.invoke(app, ["whatif", str(DEMO), "--account", ACCOUNT, "--wait", "x"])
    assert bad.exit_code == 2 and "--wait" in bad.output


def test_command_writes_csv_and_html(tmp_path):
    out = tmp_path / "out"
    args = ["whatif", str(DEMO), "--account", ACCOUNT, "--out", str(out), "--sweep", "te"]
    result = runner.invoke(app, [*args, "--te-values", "0.001,0.05"])
    assert result.exit_code == 0, result.output
    csv = (out / "whatif.csv").read_text()
    rows = pd.read_csv(out / "whatif.csv")
    assert rows["sweep"].tolist() == ["current", "te_value", "te_value"]
    assert rows["current"].tolist() == [True, False, False]
    html = (out / "whatif.html").read_text()
    assert "<script" not in html
    svg = html[html.index("<svg") : html.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)
    marked = [c for c in root.iter("{http://www.w3.org/2000/svg}circle") if c.get("class")]
    assert [c.get("class") for c in marked].count("highlight") == 1
    again = runner.invoke(app, [*args, "--te-values", "0.001,0.05"])
    assert again.exit_code == 0
    assert (out / "whatif.csv").read_text() == csv  # deterministic


def test_command_top_bracket(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["whatif", str(DEMO), "--top-bracket", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    top = pd.read_csv(out / "top_bracket.csv")
    assert len(top) == 3 and top["embedded_tax"].is_monotonic_decreasing
    assert ACCOUNT in result.output
