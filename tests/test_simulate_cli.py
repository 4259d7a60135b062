"""`rebalance simulate` from the command line, its inputs' errors, the synthetic market, and
a run on the real price file (skipped when ../shared/data/etf_prices.csv is absent)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.cli import app
from planner.errors import ConfigError
from planner.simulate import market_for, parse_weights, parse_workflows, simulate, weights_portfolio
from planner.simulate.market import read_prices, synthetic_market

REPO = Path(__file__).resolve().parent.parent
REAL_PRICES = REPO.parent / "shared" / "data" / "etf_prices.csv"
DEMO = REPO / "data" / "demo"
runner = CliRunner()


def _prices_file(tmp_path: Path, days: int = 300) -> Path:
    rng = np.random.default_rng(1)
    index = pd.bdate_range("2021-01-04", periods=days)
    frame = pd.DataFrame(
        {
            "SPY": 300 * np.exp(np.cumsum(rng.normal(0.0004, 0.012, days))),
            "AGG": 110 * np.exp(np.cumsum(rng.normal(0.0001, 0.003, days))),
        },
        index=index,
    ).round(4)
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index_label="date")
    return path


def _simulate(out: Path, *args: str):
    """``rebalance simulate ARGS --out OUT``, through the CLI runner."""
    return runner.invoke(app, ["simulate", *args, "--out", str(out)])


def _sixty_forty(prices: Path, out: Path, *options: str):
    """``rebalance simulate`` of a 60/40 SPY/AGG portfolio on ``prices`` from 2021-06-01."""
    weights = ("--weights", "SPY=0.6,AGG=0.4", "--prices", str(prices), "--start", "2021-06-01")
    return _simulate(out, *weights, *options)


def test_cli_writes_every_file(tmp_path):
    workflows = ("--workflows", "never,quarterly,threshold:0.02", "--naive")
    prices = _prices_file(tmp_path)
    out = tmp_path / "out"
    result = _sixty_forty(prices, out, *workflows)
    assert result.exit_code == 0, result.output
    for name in ("metrics.csv", "daily.csv", "trade_log.csv", "report.html"):
        assert (out / name).is_file(), name
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["workflow"].tolist() == [
        "never",
        "never naive",
        "quarterly",
        "quarterly naive",
        "threshold:0.02",
        "threshold:0.02 naive",
    ]
    assert metrics.loc[0, "rebalances"] == 0
    daily = pd.read_csv(out / "daily.csv")
    assert {"w_SPY", "w_AGG", "w_CASH", "max_abs_drift", "value"} <= set(daily.columns)
    assert len(daily) == 6 * daily["date"].nunique()
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 3 and "<script" not in html
    first = (out / "metrics.csv").read_bytes()
    again = _sixty_forty(prices, out, *workflows)
    assert again.exit_code == 0
    assert (out / "metrics.csv").read_bytes() == first  # deterministic


@pytest.mark.parametrize(
    "args, text",
    [
        (["--workflows", "weekly"], "unknown workflow 'weekly'"),
        (["--workflows", "threshold:2"], "is not a fraction"),
        (["--tiered", "0.1/0.05"], "0 < inner < outer < 1"),
    ],
)
def test_cli_usage_errors_exit_2(tmp_path, args, text):
    result = _simulate(tmp_path / "o", "--weights", "SPY=1", *args)
    assert result.exit_code == 2
    assert text in result.output


def test_cli_needs_a_book_or_weights(tmp_path):
    result = _simulate(tmp_path / "o")
    assert result.exit_code == 2
    assert "give a BOOK" in result.output


def test_bad_price_file_names_file_row_and_field(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("date,SPY,AGG\n2021-01-04,300,110\n2021-01-05,301,abc\n")
    with pytest.raises(ConfigError, match=r"prices.csv:3: AGG: 'abc' is not a number"):
        read_prices(path)
    path.write_text("date,SPY\n2021-01-05,300\n2021-01-04,301\n")
    with pytest.raises(ConfigError, match=r"prices.csv:3: date: 2021-01-04 is not after"):
        read_prices(path)
    result = _simulate(tmp_path / "o", "--weights", "SPY=1", "--prices", str(path))
    assert result.exit_code == 1
    assert "is not after" in result.output


def test_missing_symbol_and_bad_weights():
    with pytest.raises(ConfigError, match="sum to 1.2"):
        parse_weights("SPY=0.6,AGG=0.6")
    with pytest.raises(ConfigError, match="expected SYMBOL=FRACTION"):
        parse_weights("SPY")
    with pytest.raises(ConfigError, match="no price for XYZ"):
        synthetic_market(["XYZ"], date(2020, 1, 1), date(2020, 12, 31))


def test_flows_are_invested_and_raised(tmp_path):
    prices = _prices_file(tmp_path)
    flows = tmp_path / "flows.csv"
    flows.write_text("date,amount\n2021-07-04,100000\n2021-09-15,-50000\n")
    out = tmp_path / "out"
    result = _sixty_forty(
        prices, out, "--workflows", "never", "--flows", str(flows), "--registration", "ira"
    )
    assert result.exit_code == 0, result.output
    trades = pd.read_csv(out / "trade_log.csv")
    # The 4th of July is a holiday in the price file's eyes only if it lacks the row;
    # the flow lands on the first trading day on or after it.
    days = sorted(set(trades["date"]) - {"2021-06-01"})
    assert len(days) == 2
    assert set(trades[trades["date"] == days[0]]["side"]) == {"buy"}
    assert set(trades[trades["date"] == days[1]]["side"]) == {"sell"}
    bought = trades[trades["date"] == days[0]]["value"].sum()
    assert bought == pytest.approx(100_000, rel=0.01)


def test_synthetic_market_is_seeded_and_has_a_crash():
    a = synthetic_market(["VTI", "BND"], date(2010, 1, 1), date(2019, 12, 31), seed=3)
    b = synthetic_market(["VTI", "BND"], date(2010, 1, 1), date(2019, 12, 31), seed=3)
    pd.testing.assert_frame_equal(a, b)
    window = a.loc["2010":]
    drawdown = (window["VTI"] / window["VTI"].cummax() - 1).min()
    assert drawdown < -0.25
    vol = np.log(window).diff().std() * np.sqrt(252)
    assert 0.12 < vol["VTI"] < 0.30 and 0.02 < vol["BND"] < 0.09


def test_demo_model_from_cash_and_from_an_account(tmp_path):
    out = tmp_path / "out"
    result = _simulate(
        out,
        str(DEMO),
        "--model",
        "moderate",
        "--start",
        "2010-01-01",
        "--end",
        "2011-12-31",
        "--workflows",
        "never,quarterly,5/25",
    )
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["failed_plans"].sum() == 0
    assert metrics.loc[metrics["workflow"] == "quarterly", "rebalances"].item() > 0
    result = _simulate(
        out,
        str(DEMO),
        "--account",
        "A0005",
        "--start",
        "2010-01-01",
        "--end",
        "2010-12-31",
        "--workflows",
        "never,annual",
    )
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics.loc[0, "rebalances"] == 0


@pytest.mark.skipif(not REAL_PRICES.is_file(), reason="../shared/data/etf_prices.csv absent")
def test_real_prices_2020_spy_agg_ira():
    """The README's figures: a 60/40 SPY/AGG IRA through 2020, quarterly against 2 pp and
    5 pp thresholds. Quarterly reviews trade on 2020-04-01, 07-01 and 10-01."""
    portfolio = weights_portfolio({"SPY": 0.6, "AGG": 0.4}, 1_000_000, "ira")
    portfolio, market = market_for(portfolio, REAL_PRICES, date(2020, 1, 1), date(2020, 12, 31))
    result = simulate(portfolio, market, parse_workflows("quarterly,threshold:0.02,threshold:0.05"))
    metrics = result.metrics.set_index("workflow")
    quarterly = result.runs[0]
    days = market.prices.index
    traded = [days[i].date() for i in np.flatnonzero(quarterly.path.traded)]
    assert traded == [date(2020, 4, 1), date(2020, 7, 1), date(2020, 10, 1)]
    # The March crash takes equities well below 60% before the April review.
    assert metrics.loc["quarterly", "max_abs_drift"] > 0.07
    assert metrics.loc["threshold:0.02", "rebalances"] > metrics.loc["threshold:0.05", "rebalances"]
    assert (
        metrics.loc["threshold:0.02", "max_abs_drift"] < metrics.loc["quarterly", "max_abs_drift"]
    )
    assert (metrics["taxes_paid"] == 0).all()
