"""`rebalance simulate`: the simulator's accounting on a hand-checked two-asset case, and
the days calendar and threshold workflows fire on a small price series."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pandas as pd
import pytest

from planner import charts
from planner.simulate import parse_workflows, simulate, weights_portfolio
from planner.simulate.engine import Market
from planner.simulate.ledger import Ledger
from planner.simulate.market import trading_days
from planner.simulate.workflows import parse_workflow

CENT = 0.01


def _history(symbols, end="2021-11-30") -> pd.DataFrame:
    """A year of made-up history before the window, for the optimiser's covariance."""
    rng = np.random.default_rng(0)
    days = pd.bdate_range(end=end, periods=300)
    moves = rng.normal(0, 0.01, (300, len(symbols)))
    return pd.DataFrame(100 * np.exp(np.cumsum(moves, axis=0)), index=days, columns=symbols)


def _steps(days: pd.DatetimeIndex, start: float, steps: dict[str, float]) -> pd.Series:
    """A price that starts at ``start`` and jumps to each value on its date."""
    out = pd.Series(start, index=days)
    for when, price in steps.items():
        out[days >= when] = price
    return out


# -- the hand-checked two-asset case ------------------------------------------------------

STEPS = {
    "2022-02-01": 140.0,
    "2022-03-01": 70.0,
    "2022-03-15": 90.0,
    "2022-06-01": 60.0,
    "2022-12-01": 80.0,
}


@pytest.fixture(scope="module")
def two_assets():
    """AAA jumps on the dates of STEPS, BBB stays at $100; a 50/50 taxable account of
    $100,000 with fractional shares, no spread, ST 40% / LT 20%, under a 5 pp threshold
    with the naive full rebalance (to target, highest-cost lots first), whose trades can
    be worked out by hand."""
    days = trading_days(date(2021, 12, 1), date(2023, 1, 31))
    prices = pd.DataFrame({"AAA": _steps(days, 100.0, STEPS), "BBB": 100.0}, index=days)
    portfolio = weights_portfolio(
        {"AAA": 0.5, "BBB": 0.5},
        100_000,
        "taxable",
        0.40,
        0.20,
        fractional=True,
        spread_bps=0.0,
    )
    workflows = [w for w in parse_workflows("threshold:0.05", naive=True) if w.naive]
    result = simulate(portfolio, Market(prices, _history(["AAA", "BBB"])), workflows)
    return result.runs[0], result


def _trades(run) -> dict[tuple[str, str, str], dict]:
    return {(t["date"].isoformat(), t["symbol"], t["side"]): t for t in run.trades}


def test_hand_checked_trades(two_assets):
    """Each rebalance goes to 50/50 at the close of the day AAA's weight leaves 45-55%."""
    run, _ = two_assets
    trades = _trades(run)
    expected = {
        # The initial purchase at the first close.
        ("2021-12-01", "AAA", "buy"): 500.0,
        ("2021-12-01", "BBB", "buy"): 500.0,
        # AAA 140: 70,000 + 50,000; AAA at 58.3% -> 60,000 each.
        ("2022-02-01", "AAA", "sell"): 10_000 / 140,
        ("2022-02-01", "BBB", "buy"): 100.0,
        # AAA 70: 30,000 + 60,000; 33.3% -> 45,000 each.
        ("2022-03-01", "AAA", "buy"): 15_000 / 70,
        ("2022-03-01", "BBB", "sell"): 150.0,
        # AAA 90: 57,857.14 + 45,000; 56.25% -> 51,428.57 each.
        ("2022-03-15", "AAA", "sell"): (450 / 7) / 0.9 * 0.1 * 10,
        ("2022-03-15", "BBB", "buy"): 450 / 7,
        # AAA 60: 34,285.71 + 51,428.57; 40% -> 42,857.14 each.
        ("2022-06-01", "AAA", "buy"): (6000 / 7) * 10 / 60,
        ("2022-06-01", "BBB", "sell"): 600 / 7,
        # AAA 80: 57,142.86 + 42,857.14; 57.1% -> 50,000 each.
        ("2022-12-01", "AAA", "sell"): (50_000 / 7) / 80,
        ("2022-12-01", "BBB", "buy"): 500 / 7,
    }
    for key, shares in expected.items():
        assert key in trades, key
        # Within $0.10: the optimiser stops at its tolerance, about 1e-6 of the account.
        assert trades[key]["shares"] == pytest.approx(shares, abs=1e-3), key
    assert {k[0] for k in trades} - {k[0] for k in expected} == {"2023-01-03"}
    assert run.path.traded.sum() == 6  # five rebalances and the tax day
    assert all(t["cost"] == 0.0 for t in run.trades)


def test_wash_sale_window_across_rebalances(two_assets):
    """On 2022-03-15 HIFO would sell the $100 lot of AAA at a loss, but AAA was bought on
    2022-03-01, inside the 30-day window: the planner sells the $70 lot (a gain) instead.
    On 2022-12-01 the last AAA buy (2022-06-01) is out of the window: the $100 lot goes,
    at a loss."""
    run, _ = two_assets
    trades = _trades(run)
    march = trades[("2022-03-15", "AAA", "sell")]
    assert march["realized_st"] == pytest.approx(20 * march["shares"], abs=CENT)  # 90 - 70
    december = trades[("2022-12-01", "AAA", "sell")]
    assert december["realized_st"] == pytest.approx(-20 * december["shares"], abs=CENT)
    february = trades[("2022-02-01", "AAA", "sell")]
    assert february["realized_st"] == pytest.approx(40 * february["shares"], abs=CENT)
    # The loss sale of December blocks buying AAA for 30 days: no AAA buy follows it.
    assert not any(
        t["symbol"] == "AAA" and t["side"] == "buy" and date(2022, 12, 1) <= t["date"]
        for t in run.trades
    )


def test_lots_after_the_run(two_assets):
    """Lots left: what each buy added less what each sale took, lot by lot."""
    run, _ = two_assets
    lots = sorted((s, c, a.isoformat(), q) for s, q, c, a, _ in run.ledger.lots.values())
    aaa = [(c, a, q) for s, c, a, q in lots if s == "AAA"]
    # The $100 lot: 500 less the Feb sale (71.43) and the Dec sale (89.29), less what the
    # tax day sold; the $70 lot less the March sale; the $60 lot whole.
    by_cost = {c: q for c, _, q in aaa}
    assert by_cost[70.0] == pytest.approx(15_000 / 70 - 5000 / 70, abs=1e-3)
    assert by_cost[60.0] == pytest.approx(60_000 / 7 / 60, abs=1e-3)
    bbb = sum(q for s, _, _, q in lots if s == "BBB")
    # BBB was back at 50,000 on 2022-12-01; the tax day may have sold some of it.
    sold = sum(
        t["value"] for t in run.trades if t["date"] == date(2023, 1, 3) and t["symbol"] == "BBB"
    )
    assert bbb * 100 + sold == pytest.approx(50_000, abs=1.0)


def test_year_end_netting_and_tax_paid(two_assets):
    """2022: ST gains 2,857.14 + 1,428.57 - 1,785.71 = 2,500.00 at 40% = 1,000.00, paid at
    the close of 2023-01-03 (cash being short, by a sell-only plan)."""
    run, result = two_assets
    years = {y.year: y for y in run.ledger.years}
    assert years[2021].tax == 0.0
    assert years[2022].reported_st == pytest.approx(2500.0, abs=CENT)
    assert years[2022].reported_lt == pytest.approx(0.0, abs=CENT)
    assert years[2022].tax == pytest.approx(1000.0, abs=CENT)
    assert years[2022].carryforward_st == 0.0
    assert run.ledger.taxes_paid == pytest.approx(1000.0, abs=CENT)
    days = result.setup.market.prices.index
    paid = run.path.taxes[days.get_loc(pd.Timestamp("2023-01-03"))]
    assert paid == pytest.approx(1000.0, abs=CENT)
    assert run.path.taxes[days.get_loc(pd.Timestamp("2022-12-30"))] == 0.0
    sold = sum(t["value"] for t in run.trades if t["date"] == date(2023, 1, 3))
    assert sold + run.ledger.cash >= 1000.0 - 1.0  # the sale raised the tax


def test_metrics_of_the_hand_checked_case(two_assets):
    _, result = two_assets
    row = result.metrics.iloc[0]
    assert row["workflow"] == "threshold:0.05 naive"
    assert row["rebalances"] == 6
    assert row["taxes_paid"] == pytest.approx(1000.0, abs=CENT)
    assert row["costs"] == 0.0
    # The largest drift: AAA at 30/90 = 33.3% on 2022-03-01, before trading.
    assert row["max_abs_drift"] == pytest.approx(0.5 - 30 / 90, abs=1e-5)


# -- the ledger's tax years ----------------------------------------------------------------


def test_carryforward_across_years_exact_dollars():
    """2022: a $10,000 ST loss: $3,000 deducted (saving $1,200 at 40%), $7,000 carried.
    2023: a $5,000 LT gain less the $7,000 carried: a $2,000 net loss, all deducted
    (saving $800), nothing carried."""
    ledger = Ledger(True, 0.40, 0.20, wash_groups={"AAA": "AAA"})
    lot = ledger.buy(date(2022, 1, 3), "AAA", 1000, 50.0)
    ledger.sell(date(2022, 6, 1), lot, 500, 30.0)  # -10,000 ST
    year = ledger.close_year(2022)
    assert (year.reported_st, year.reported_lt) == (-10_000.0, 0.0)
    assert year.tax == pytest.approx(-1200.0)
    assert (year.carryforward_st, year.carryforward_lt) == (7000.0, 0.0)
    ledger.sell(date(2023, 3, 1), lot, 250, 70.0)  # +5,000 LT
    year = ledger.close_year(2023)
    assert (year.reported_st, year.reported_lt) == (0.0, 5000.0)
    assert year.tax == pytest.approx(-800.0)
    assert (year.carryforward_st, year.carryforward_lt) == (0.0, 0.0)
    assert ledger.tax_due == pytest.approx(-2000.0)


def test_wash_sale_in_the_ledger_defers_the_loss():
    """A loss sale with a buy of the same group 10 days later: the $2,000 loss is
    disallowed and added to the new lot's basis ($40 + $20 a share), which dates from the
    sold shares' acquisition (tacked holding period)."""
    ledger = Ledger(True, 0.40, 0.20, wash_groups={"IVV": "SP500", "VOO": "SP500"})
    first = ledger.buy(date(2022, 1, 3), "IVV", 100, 60.0)
    ledger.sell(date(2022, 5, 2), first, 100, 40.0)  # -2,000
    second = ledger.buy(date(2022, 5, 12), "VOO", 100, 40.0)
    year = ledger.close_year(2022)
    assert year.disallowed_loss == pytest.approx(2000.0)
    assert year.reported_st == pytest.approx(0.0)
    assert year.tax == 0.0
    symbol, shares, cost, acquired, bought = ledger.lots[second]
    assert (symbol, shares, cost) == ("VOO", 100.0, pytest.approx(60.0))
    assert acquired == date(2022, 1, 13)  # moved back by the 119 days IVV was held
    assert bought == date(2022, 5, 12)


def test_ira_pays_no_tax():
    ledger = Ledger(False, 0.40, 0.20)
    lot = ledger.buy(date(2022, 1, 3), "AAA", 10, 50.0)
    ledger.sell(date(2022, 2, 1), lot, 10, 80.0)
    assert ledger.close_year(2022).tax == 0.0
    assert ledger.open_year_tax() == 0.0


# -- firing days ---------------------------------------------------------------------------


def _ira(symbols=("AAA", "BBB")):
    return weights_portfolio(
        dict.fromkeys(symbols, 1 / len(symbols)),
        100_000,
        "ira",
        fractional=True,
        spread_bps=0.0,
    )


def test_calendar_reviews_fire_on_the_first_trading_day_of_each_period():
    """Monthly and quarterly reviews of 2022 on a drifting series: trades on the first
    NYSE day of each period (2022-01-03, not the 1st, a Saturday; 2022-07-01; ...)."""
    days = trading_days(date(2021, 12, 15), date(2022, 12, 31))
    t = np.arange(len(days))
    prices = pd.DataFrame({"AAA": 100 * 1.002**t, "BBB": 100 * 0.999**t}, index=days)
    market = Market(prices, _history(["AAA", "BBB"], end="2021-12-14"))
    result = simulate(_ira(), market, parse_workflows("monthly,quarterly,annual", naive=True))
    by = {r.label: [days[i].date() for i in np.flatnonzero(r.path.traded)] for r in result.runs}
    months = [date(2022, m, 1) for m in range(1, 13)]
    firsts = [next(d.date() for d in days if d.date() >= m) for m in months]
    assert firsts[0] == date(2022, 1, 3) and firsts[6] == date(2022, 7, 1)
    assert by["monthly naive"] == firsts
    assert by["quarterly naive"] == firsts[::3]
    assert by["annual naive"] == [date(2022, 1, 3)]


def test_threshold_fires_on_the_first_close_outside_the_band():
    """AAA gains 1% a day against a flat BBB: from 50/50, AAA's weight is g / (g + 1) with
    g = 1.01^n, outside 45-55% once g > 11/9, i.e. n = 21 days after each rebalance."""
    days = trading_days(date(2022, 1, 3), date(2022, 6, 30))
    t = np.arange(len(days))
    prices = pd.DataFrame({"AAA": 100 * 1.01**t, "BBB": 100.0}, index=days)
    market = Market(prices, _history(["AAA", "BBB"], end="2021-12-31"))
    result = simulate(_ira(), market, parse_workflows("threshold:0.05,threshold:0.02", naive=True))
    runs = {r.label: r for r in result.runs}
    n = int(np.floor(np.log(0.55 / 0.45) / np.log(1.01))) + 1
    assert n == 21
    fired = np.flatnonzero(runs["threshold:0.05 naive"].path.traded)
    assert fired.tolist() == list(range(n, len(days), n))
    # 2 pp: 52/48 -> g > 13/12, 9 days.
    m = int(np.floor(np.log(0.52 / 0.48) / np.log(1.01))) + 1
    assert np.flatnonzero(runs["threshold:0.02 naive"].path.traded).tolist() == list(
        range(m, len(days), m)
    )
    # The tax-aware workflow in an IRA has no tax to weigh: it fires on the same days.
    assert np.flatnonzero(runs["threshold:0.05"].path.traded).tolist() == fired.tolist()


def test_hybrid_waits_for_the_review_and_daryanani_looks_every_tenth_day():
    days = pd.DatetimeIndex(trading_days(date(2022, 1, 3), date(2022, 12, 30)))
    hybrid = parse_workflow("hybrid:quarterly+0.05")
    looks = np.flatnonzero(hybrid.look_days(days))
    assert [days[i].date() for i in looks] == [
        date(2022, 4, 1),
        date(2022, 7, 1),
        date(2022, 10, 3),
    ]
    daryanani = parse_workflow("daryanani")
    assert np.flatnonzero(daryanani.look_days(days)).tolist() == list(range(10, len(days), 10))
    assert daryanani.rebalance_to == "midpoint" and daryanani.band.rel == 0.20
    tiered = parse_workflow("tiered:0.03/0.08")
    assert (tiered.band.abs, tiered.outer.abs, tiered.rebalance_to) == (0.03, 0.08, "band_edge")


def test_hybrid_trades_only_on_a_breached_review():
    """AAA +1%/day from 2022-01-03: 5 pp breached after 21 days (early February), but the
    hybrid waits for the April review; it trades then, and on July's if breached again."""
    days = trading_days(date(2022, 1, 3), date(2022, 9, 30))
    t = np.arange(len(days))
    prices = pd.DataFrame({"AAA": 100 * 1.01**t, "BBB": 100.0}, index=days)
    market = Market(prices, _history(["AAA", "BBB"], end="2021-12-31"))
    result = simulate(_ira(), market, parse_workflows("hybrid:quarterly+0.05", naive=True))
    traded = [days[i].date() for i in np.flatnonzero(result.runs[1].path.traded)]
    assert traded == [date(2022, 4, 1), date(2022, 7, 1)]


def test_taxes_paid_from_outside_leave_the_account_alone(two_assets):
    """The same run with ``taxes_from="external"``: no sale on 2023-01-03, the same tax
    counted, and the after-tax value is the account less the tax paid from outside."""
    run, result = two_assets
    setup = result.setup
    workflows = [w for w in parse_workflows("threshold:0.05", naive=True) if w.naive]
    external = simulate(setup.portfolio, setup.market, workflows, taxes_from="external")
    ext = external.runs[0]
    assert not any(t["date"] == date(2023, 1, 3) for t in ext.trades)
    assert ext.ledger.taxes_paid == pytest.approx(1000.0, abs=CENT)
    row = external.metrics.iloc[0]
    assert row["after_tax_value"] == pytest.approx(
        row["pre_tax_value"] - 1000.0 - ext.path.owed[-1], abs=CENT
    )
    assert row["pre_tax_value"] > result.metrics.iloc[0]["pre_tax_value"] + 900


def test_the_report_draws_each_default_workflow_in_its_own_colour():
    """The twelve default workflows get twelve distinct colours, the same every time."""
    labels = [w.label for w in parse_workflows(None)]
    assert len(labels) == 12
    series = {name: [(date(2022, 1, 3), 0.0), (date(2022, 1, 4), 1.0)] for name in labels}
    svg = charts.line_chart(series, title="drift")
    groups = re.findall(r'data-name="([^"]+)">\s*<path [^>]*stroke="(#[0-9a-f]{6})"', svg)
    colour = dict(groups)
    assert list(colour) == labels
    assert len(set(colour.values())) == 12
    assert colour == dict(zip(labels, charts.PALETTE, strict=False))
    assert svg == charts.line_chart(series, title="drift")
