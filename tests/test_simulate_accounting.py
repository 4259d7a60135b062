"""`rebalance simulate` through the full loop with the tax-aware optimiser in a taxable
account: a two-asset case whose trades, lots, wash-sale blocks across rebalances, yearly
netting with the $3,000 deduction, carryforward and taxes paid are worked out by hand below
and asserted to the cent.

Units: dollars, shares, dollars per share.

The set-up, chosen so that every plan has one answer a person can work out:

- AAA and BBB, 50/50, a taxable account of $100,000, whole shares, no spread or commission
  (costs are 0), ST 40% / LT 20%, a 5 pp threshold (the tax-aware optimiser at every
  trigger, ``taxes_from="portfolio"``).
- The risk model's history has exactly uncorrelated daily returns of equal size (+-2%), so
  the covariance is ``0.1008 * I`` (252 x 0.02^2; Ledoit-Wolf shrinks towards the scaled
  identity it already is). With an identity-shaped covariance the tracking-error optimum
  puts each security at its own target independently: a security the plan cannot buy stays
  where it is and the other still goes to target (the rest in cash).
- ``loss_benefit = 0``: the optimiser values a net loss beyond what the year can use (the
  gains so far and the $3,000 deduction) at nothing. Every sale below keeps the year's net
  at or below -$3,000, where the exact tax is flat (-$3,000 x 40% = -$1,200 whatever is
  realised), so no plan stops short of target for tax: tracking error alone sets the trade.
  (The default, 0.5, values the carried loss at half, so a gain sale stops short:
  :func:`test_default_loss_benefit_stops_short_by_hand` works that one out too.)
- Where a security has several lots, the wash-sale look-back leaves one sellable: a loss
  sale of a security bought in the last 30 days is blocked, so the gain lot goes.
- Prices are constant between the step dates, so nothing fires in between.

Day by day (D0 2022-01-03, the first close; E1..E4 the step dates):

D0 2022-01-03  AAA 100, BBB 100. Buy 500 AAA (lot A1 @100) and 500 BBB (B1 @100).
E1 2022-03-01  AAA 10, BBB 50. AAA 5,000, BBB 25,000, V 30,000: AAA at 16.7% < 45%, fires.
               Target 15,000 each: sell 200 BBB from B1 @50 (the only BBB lot, bought 57
               days ago, so the loss is allowed): ST -200 x 50 = -10,000. Buy 1,000 AAA
               (A2 @10). A loss beyond the deduction: the exact tax is flat from -3,000 on.
E2 2022-03-15  AAA 15, BBB 39. AAA 1,500 x 15 = 22,500, BBB 300 x 39 = 11,700, V 34,200:
               AAA at 65.8% > 55%, fires. Target 17,100 each, so the trigger would buy BBB
               back; but BBB was sold at a loss 14 days ago: the wash-sale look-back blocks
               the buy. BBB stays at 11,700 (34.2%); AAA goes to 17,100: sell 360 AAA
               @15 = 5,400 into cash. A1 (@100) is a loss lot and AAA was bought on E1,
               14 days ago: blocked. So A2 sells: ST +360 x 5 = +1,800.
               Year so far: -10,000 + 1,800 = -8,200 (still flat). Cash 5,400.
2022-12-30     2022 closes: ST -8,200, LT 0. Net -8,200: $3,000 deducted, tax
               -3,000 x 40% = -1,200; carryforward ST 8,200 - 3,000 = 5,200.
2023-01-03     The -1,200 is paid into the account: cash 6,600. V 35,400: AAA 48.3%,
               BBB 33.05%, still above the 31.7% the E2 plan left it armed at (34.2% less
               half the 5 pp band, :data:`planner.simulate.engine.REARM_FRACTION`): no fire.
E3 2023-03-01  AAA 22, BBB 88. AAA 1,140 x 22 = 25,080, BBB 300 x 88 = 26,400, cash 6,600,
               V 58,080: AAA at 43.2%, fires. Target 29,040 each; both under target, the
               cash buys both, no sale: 3,960 / 22 = 180 AAA (A3 @22), 2,640 / 88 = 30 BBB
               (B2 @88) - BBB bought back, long after the window.
E4 2023-03-15  AAA 15, BBB 20. AAA 1,320 x 15 = 19,800, BBB 330 x 20 = 6,600, V 26,400:
               AAA at 75%, fires. Target 13,200 each: sell 6,600 / 15 = 440 AAA, buy
               6,600 / 20 = 330 BBB (B3 @20). A1 (@100) and A3 (@22) are loss lots and AAA
               was bought on E3, 14 days ago: blocked. A2 (@10, bought 2022-03-01, held
               over a year) sells: LT +440 x 5 = +2,200. With the 5,200 carried in the
               year nets to exactly -3,000: still flat, so the plan goes to target.
2023-12-29     2023 closes: ST 0, LT +2,200, carried in ST 5,200. Schedule D: ST -5,200,
               LT +2,200, net -3,000: all of it deducted, tax -3,000 x 40% = -1,200, and
               nothing carried (the carryforward is used up: 2,200 against the gain,
               3,000 as the deduction).
2024-01-02     The last close: the -1,200 paid into the account, cash 1,200.
               AAA 880 x 15 = 13,200, BBB 660 x 20 = 13,200: value 27,600.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from planner.simulate import parse_workflows, simulate, weights_portfolio
from planner.simulate.engine import Market
from planner.simulate.market import trading_days

HALF_CENT = 0.005

D0, E1, E2, E3, E4 = (
    date(2022, 1, 3),
    date(2022, 3, 1),
    date(2022, 3, 15),
    date(2023, 3, 1),
    date(2023, 3, 15),
)
LAST = date(2024, 1, 2)
AAA_STEPS = {E1: 10.0, E2: 15.0, E3: 22.0, E4: 15.0}
BBB_STEPS = {E1: 50.0, E2: 39.0, E3: 88.0, E4: 20.0}
DAILY_MOVE = 0.02
"""Size of each daily log return of the risk model's history."""


def _steps(days: pd.DatetimeIndex, steps: dict[date, float]) -> pd.Series:
    """$100 until the first step date, then each step's price from its date on."""
    out = pd.Series(100.0, index=days)
    for when, price in steps.items():
        out[days >= pd.Timestamp(when)] = price
    return out


def _orthogonal_history(symbols: tuple[str, str], end: str = "2021-12-31") -> pd.DataFrame:
    """253 closes whose 252 daily log returns are +-2%: the first symbol alternates every
    day, the second every two days. Both average 0, have variance 0.02^2 and are exactly
    uncorrelated over every four days, so the annualised covariance is 0.1008 * I."""
    t = np.arange(252)
    first = np.where(t % 2 == 0, DAILY_MOVE, -DAILY_MOVE)
    second = np.where((t // 2) % 2 == 0, DAILY_MOVE, -DAILY_MOVE)
    returns = np.vstack([np.zeros(2), np.column_stack([first, second])])
    days = pd.bdate_range(end=end, periods=253)
    return pd.DataFrame(100 * np.exp(np.cumsum(returns, axis=0)), index=days, columns=symbols)


def _market() -> Market:
    days = trading_days(D0, LAST)
    prices = pd.DataFrame({"AAA": _steps(days, AAA_STEPS), "BBB": _steps(days, BBB_STEPS)})
    return Market(prices, _orthogonal_history(("AAA", "BBB")))


def _portfolio(**settings):
    portfolio = weights_portfolio(
        {"AAA": 0.5, "BBB": 0.5},
        100_000,
        "taxable",
        0.40,
        0.20,
        fractional=False,
        spread_bps=0.0,
    )
    return replace(portfolio, settings=replace(portfolio.settings, **settings))


def _run(**settings):
    result = simulate(_portfolio(**settings), _market(), parse_workflows("threshold:0.05"))
    return result.runs[0], result


@pytest.fixture(scope="module")
def taxable():
    return _run(loss_benefit=0.0)


def _on(result, day: date) -> int:
    return result.setup.market.prices.index.get_loc(pd.Timestamp(day))


def test_the_risk_model_is_the_scaled_identity(taxable):
    _, result = taxable
    covariance = result.setup.spec.risks[("AAA", "BBB")].covariance
    assert covariance == pytest.approx(np.diag([0.1008, 0.1008]), abs=1e-7)


def test_trades_by_hand(taxable):
    """Every order, as the module doc works it out: (date, symbol, side, shares, price,
    value, realised ST, realised LT)."""
    run, result = taxable
    expected = [
        (D0, "AAA", "buy", 500, 100.0, 50_000.0, 0.0, 0.0),
        (D0, "BBB", "buy", 500, 100.0, 50_000.0, 0.0, 0.0),
        (E1, "AAA", "buy", 1000, 10.0, 10_000.0, 0.0, 0.0),
        (E1, "BBB", "sell", 200, 50.0, 10_000.0, -10_000.0, 0.0),
        (E2, "AAA", "sell", 360, 15.0, 5_400.0, 1_800.0, 0.0),
        (E3, "AAA", "buy", 180, 22.0, 3_960.0, 0.0, 0.0),
        (E3, "BBB", "buy", 30, 88.0, 2_640.0, 0.0, 0.0),
        (E4, "AAA", "sell", 440, 15.0, 6_600.0, 0.0, 2_200.0),
        (E4, "BBB", "buy", 330, 20.0, 6_600.0, 0.0, 0.0),
    ]
    got = sorted(
        (
            t["date"],
            t["symbol"],
            t["side"],
            t["shares"],
            t["price"],
            t["value"],
            t["realized_st"],
            t["realized_lt"],
        )
        for t in run.trades
    )
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g[3] == e[3], e[:3]  # whole shares: exact
        assert g[4:] == pytest.approx(e[4:], abs=HALF_CENT), e[:3]
    assert all(t["cost"] == 0.0 for t in run.trades)
    days = result.setup.market.prices.index
    assert [days[i].date() for i in np.flatnonzero(run.path.traded)] == [E1, E2, E3, E4]
    assert not run.failures


def test_wash_sale_window_across_rebalances(taxable):
    """E1 sells BBB at a loss; E2, 14 days later, is a trigger that would buy BBB back. The
    planner does not: BBB stays at $11,700 (34.2%, 15.8 pp under target) and the
    proceeds of AAA stay in cash. So no wash sale happens, the $10,000 loss stands (none
    disallowed, no basis moved), and BBB is bought back on E3, after the window."""
    run, result = taxable
    assert not any(
        t["symbol"] == "BBB" and t["side"] == "buy" and t["date"] == E2 for t in run.trades
    )
    first_bbb_buy_after_e1 = min(
        t["date"]
        for t in run.trades
        if t["symbol"] == "BBB" and t["side"] == "buy" and t["date"] > E1
    )
    assert first_bbb_buy_after_e1 == E3
    assert (E3 - E1).days > 30
    # After E2's plan: AAA at target, BBB where it was, the rest cash (weights at the next
    # close, before any trade).
    after = run.path.weights[_on(result, E2) + 1]
    assert after == pytest.approx([17_100 / 34_200, 11_700 / 34_200, 5_400 / 34_200], abs=1e-12)
    assert [y.disallowed_loss for y in run.ledger.years] == [0.0, 0.0]
    # E2 and E4 sold the gain lot A2, not the $100 lot A1 (nor A3): a loss sale of AAA
    # within 30 days of buying AAA (E1, E3) would be a wash sale.
    sold = {t["date"]: t for t in run.trades if t["symbol"] == "AAA" and t["side"] == "sell"}
    assert sold[E2]["realized_st"] == pytest.approx(360 * (15 - 10), abs=HALF_CENT)
    assert sold[E4]["realized_lt"] == pytest.approx(440 * (15 - 10), abs=HALF_CENT)


def test_without_the_wash_window_e2_buys_bbb_back():
    """The same run with a 0-day window: E2's trigger does buy BBB (so it was the window
    that kept the planner from buying it back above)."""
    run, _ = _run(loss_benefit=0.0, wash_window_days=0)
    assert any(t["symbol"] == "BBB" and t["side"] == "buy" and t["date"] == E2 for t in run.trades)


def test_yearly_netting_and_carryforward(taxable):
    run, _ = taxable
    years = {y.year: y for y in run.ledger.years}
    assert sorted(years) == [2022, 2023]
    y22, y23 = years[2022], years[2023]
    # 2022: ST -10,000 + 1,800 = -8,200; 3,000 deducted at 40%; 5,200 carried (ST).
    assert (y22.reported_st, y22.reported_lt) == pytest.approx((-8_200.0, 0.0), abs=HALF_CENT)
    assert y22.tax == pytest.approx(-1_200.0, abs=HALF_CENT)
    assert (y22.carryforward_st, y22.carryforward_lt) == pytest.approx(
        (5_200.0, 0.0), abs=HALF_CENT
    )
    # 2023: LT +2,200 against the 5,200 ST carried in: net -3,000, all deducted, at 40%.
    assert (y23.reported_st, y23.reported_lt) == pytest.approx((0.0, 2_200.0), abs=HALF_CENT)
    assert y23.tax == pytest.approx(-1_200.0, abs=HALF_CENT)
    assert (y23.carryforward_st, y23.carryforward_lt) == pytest.approx((0.0, 0.0), abs=HALF_CENT)
    # The year open at the end (2024) has realised nothing.
    assert (run.ledger.ytd_st, run.ledger.ytd_lt) == (0.0, 0.0)
    assert run.ledger.tax_due == 0.0


def test_taxes_paid_by_year_into_the_account(taxable):
    """Each year's -$1,200 is paid at the close of the next year's first trading day, into
    the account (cash), as a negative tax."""
    run, result = taxable
    taxes = run.path.taxes
    assert taxes[_on(result, date(2022, 12, 30))] == 0.0
    assert taxes[_on(result, date(2023, 1, 3))] == pytest.approx(-1_200.0, abs=HALF_CENT)
    assert taxes[_on(result, date(2023, 12, 29))] == pytest.approx(-1_200.0, abs=HALF_CENT)
    assert taxes[_on(result, LAST)] == pytest.approx(-2_400.0, abs=HALF_CENT)
    assert run.ledger.taxes_paid == pytest.approx(-2_400.0, abs=HALF_CENT)
    # The values around the first payment: 34,200 at the 2022 close, +1,200 of cash.
    value = run.path.value
    assert value[_on(result, date(2022, 12, 30))] == pytest.approx(34_200.0, abs=HALF_CENT)
    assert value[_on(result, date(2023, 1, 3))] == pytest.approx(35_400.0, abs=HALF_CENT)
    assert run.ledger.cash == pytest.approx(1_200.0, abs=HALF_CENT)
    assert value[-1] == pytest.approx(27_600.0, abs=HALF_CENT)


def test_lots_at_the_end(taxable):
    """(symbol, shares, unit cost, acquired): A1 less nothing, A2 = 1,000 - 360 - 440, A3,
    B1 = 500 - 200, B2, B3; no wash sale, so every basis and date is the purchase's."""
    run, _ = taxable
    lots = sorted((s, q, c, a, b) for s, q, c, a, b in run.ledger.lots.values())
    assert lots == [
        ("AAA", 180.0, 22.0, E3, E3),
        ("AAA", 200.0, 10.0, E1, E1),
        ("AAA", 500.0, 100.0, D0, D0),
        ("BBB", 30.0, 88.0, E3, E3),
        ("BBB", 300.0, 100.0, D0, D0),
        ("BBB", 330.0, 20.0, E4, E4),
    ]


def test_metrics_by_hand(taxable):
    """Liquidation on 2024-01-02 at 15 / 20: ST lots A3 -1,260, B2 -2,040, B3 0 (-3,300);
    LT lots A1 -42,500, A2 +1,000, B1 -24,000 (-65,500). A net loss: $3,000 deducted at
    40%, a tax of -1,200, so the liquidation value is 27,600 + 1,200."""
    _, result = taxable
    row = result.metrics.iloc[0]
    assert row["workflow"] == "threshold:0.05"
    assert (row["rebalances"], row["trades"]) == (4, 7)
    assert row["costs"] == 0.0
    assert row["taxes_paid"] == pytest.approx(-2_400.0, abs=HALF_CENT)
    assert row["realized_st"] == pytest.approx(-8_200.0, abs=HALF_CENT)
    assert row["realized_lt"] == pytest.approx(2_200.0, abs=HALF_CENT)
    assert row["pre_tax_value"] == pytest.approx(27_600.0, abs=HALF_CENT)
    assert row["after_tax_value"] == pytest.approx(27_600.0, abs=HALF_CENT)
    assert row["liquidation_value"] == pytest.approx(28_800.0, abs=HALF_CENT)
    # The largest drift: AAA at 5,000 / 30,000 on E1, before trading.
    assert row["max_abs_drift"] == pytest.approx(0.5 - 1 / 6, abs=1e-12)


def test_default_loss_benefit_stops_short_by_hand():
    """With the default ``loss_benefit`` 0.5, a dollar of gain in the flat region uses up
    a carried dollar valued at 0.5 x 40% = 0.2. On E2 each dollar of AAA sold from A2
    (@10, at 15) realises 1/3 of a dollar of gain: a tax term of s / (15 V) for s dollars
    sold, V = 34,200. The tracking term is 0.005 x 1e4 x 0.1008 x ((wA - 1/2)^2 + ...) in
    fractions of V (:class:`planner.program.objective.TrackingError`, pp^2), with wA =
    (22,500 - s) / V. Setting the derivative to 0: 10.08 (wA - 1/2) = 1/15, wA - 1/2 =
    1 / 151.2, so AAA is left at V (1/2 + 1/151.2) = 17,326.19 and s = 5,173.81: 344.92
    shares, 345 whole.

    E1 still sells 200 BBB: selling past target would harvest a loss the year cannot use
    (worth 0.2 a dollar, and each dollar of BBB sold at 50 from a cost of 100 realises a
    dollar of loss), but the x of V it would sell, 10.08 x = 0.2, is $595.24 (11.9 shares)
    of a $25,000 position, under the planner's 5% harvest minimum, so it is not made.
    With the minimums off it is: 212 shares."""
    run, _ = _run()
    sold = {(t["date"], t["symbol"], t["side"]): t for t in run.trades}
    assert sold[(E1, "BBB", "sell")]["shares"] == 200
    assert sold[(E2, "AAA", "sell")]["shares"] == 345
    assert sold[(E2, "AAA", "sell")]["realized_st"] == pytest.approx(345 * 5, abs=HALF_CENT)
    harvesting, _ = _run(harvest_min_loss=0.0, harvest_min_loss_fraction=0.0)
    e1 = [t for t in harvesting.trades if t["date"] == E1 and t["side"] == "sell"]
    assert [(t["symbol"], t["shares"]) for t in e1] == [("BBB", 212)]


@pytest.mark.parametrize(("days_after", "buys_back"), [(30, False), (31, True)])
def test_wash_window_edge(days_after, buys_back):
    """E2 moved to 30 days after E1's loss sale (2022-03-31): still inside the window, no
    BBB buy; 31 days after (2022-04-01): the same trigger buys BBB back, and the ledger's
    own wash-sale pass (over the whole history, at the year's close) agrees: nothing is
    disallowed."""
    e2 = date.fromordinal(E1.toordinal() + days_after)
    days = trading_days(D0, date(2023, 1, 31))
    prices = pd.DataFrame(
        {
            "AAA": _steps(days, {E1: 10.0, e2: 15.0}),
            "BBB": _steps(days, {E1: 50.0, e2: 39.0}),
        }
    )
    market = Market(prices, _orthogonal_history(("AAA", "BBB")))
    result = simulate(_portfolio(loss_benefit=0.0), market, parse_workflows("threshold:0.05"))
    run = result.runs[0]
    on_e2 = {(t["symbol"], t["side"]) for t in run.trades if t["date"] == e2}
    assert ("AAA", "sell") in on_e2
    assert (("BBB", "buy") in on_e2) is buys_back
    assert [y.disallowed_loss for y in run.ledger.years] == [0.0]
