"""Tax-loss harvesting under the user's control: off, with_rebalance, opportunistic, the
minimums, the per-account override, and a household sibling's buy going to a substitute."""

from __future__ import annotations

from datetime import date

import pytest

from planner.io import load_book
from planner.run import plan

AS_OF = date(2025, 2, 28)

_SECURITIES = "symbol,asset_class,price\nVTI,US_EQUITY,200\nITOT,US_EQUITY,100\nBND,US_BONDS,100\n"
_MODEL = (
    "[balanced]\ncash = 0.0\n[balanced.bands]\nabs = 0.05\n"
    '[balanced.classes.US_EQUITY]\ntarget = 0.5\nsecurities = ["VTI", "ITOT"]\n'
    '[balanced.classes.US_BONDS]\ntarget = 0.5\nsecurities = ["BND"]\n'
)
_ACCOUNT = "account_id,model,household_id,registration,cash,st_rate,lt_rate\n"


def _book(tmp_path, accounts: str, lots: str, settings: str = "", returns: str | None = None):
    """A 50/50 model of US equity (VTI preferred, ITOT its substitute) and bonds (BND)."""
    book = tmp_path / "book"
    book.mkdir(parents=True, exist_ok=True)
    (book / "securities.csv").write_text(_SECURITIES)
    (book / "models.toml").write_text(_MODEL)
    (book / "accounts.csv").write_text(accounts)
    (book / "lots.csv").write_text("account_id,lot_id,symbol,shares,unit_cost,acquired\n" + lots)
    if returns is not None:
        (book / "returns.csv").write_text(returns)
    (book / "book.toml").write_text(f"[settings]\nas_of = {AS_OF}\n{settings}")
    return load_book(book)


# T1 holds 300 VTI bought at $300 ($60,000 now, a $30,000 long-term loss) and 400 BND: US
# equity is 60% against a 50% target, outside its 5 pp band. The rebalance sells $10,000 of
# VTI (50 shares, a $5,000 loss); selling the other 250 shares too and buying ITOT in their
# place is a harvest of $25,000 more.
_TRIGGERED = _ACCOUNT + "T1,balanced,T1,taxable,0,0.37,0.2\n"
_TRIGGERED_LOTS = "T1,T1-1,VTI,300,300,2020-01-02\nT1,T1-2,BND,400,100,2020-01-02\n"


_LOW_TE_VALUE = "tracking_error_value = 0.001\n"
"""Without a price history ITOT's risk differs from VTI's by the class model's specific risk;
a low value of tracking error makes a harvest whole rather than partial."""


def _row(result, account_id="T1"):
    return result.summary.set_index("account_id").loc[account_id]


def test_harvest_off_sells_only_what_the_rebalance_needs(tmp_path):
    result = plan(
        _book(tmp_path, _TRIGGERED, _TRIGGERED_LOTS, 'harvest = "off"\n'), executor="serial"
    )
    row = _row(result)
    assert row.realized_lt == pytest.approx(-5_000.0)  # 50 shares at a $100 loss each
    assert row.harvested_loss == 0.0
    assert row.est_tax == pytest.approx(-1_110.0)  # the $3,000 deduction at 37%
    assert row.carryforward_added == pytest.approx(2_000.0)
    assert "ITOT" not in set(result.orders["symbol"])


def test_harvest_with_rebalance_harvests_and_reports_it(tmp_path):
    """With $20,000 of long-term gains realised this year, the harvest is worth $4,110:
    without it the year nets a $15,000 LT gain ($3,000 of tax); with it a $10,000 loss,
    $3,000 deducted (-$1,110) and $7,000 carried forward."""
    returns = "tax_return,ytd_lt_gain\nT1,20000\n"
    book = _book(tmp_path, _TRIGGERED, _TRIGGERED_LOTS, _LOW_TE_VALUE, returns)
    result = plan(book, executor="serial")
    row = _row(result)
    assert row.realized_lt == pytest.approx(-30_000.0)  # every VTI share
    assert row.harvested_loss == pytest.approx(25_000.0)
    assert row.harvest_value == pytest.approx(4_110.0)
    assert row.est_tax == pytest.approx(-1_110.0 - 4_000.0)
    assert row.carryforward_added == pytest.approx(7_000.0)
    orders = result.orders.set_index("symbol")
    assert orders.loc["ITOT", "side"] == "buy"
    assert orders.loc["VTI", "reason"].startswith("tax-loss harvest")


def test_a_harvest_below_the_minimum_loss_is_not_made(tmp_path):
    settings = "harvest_min_loss = 40000.0\n"  # more than the $30,000 VTI could give
    result = plan(_book(tmp_path, _TRIGGERED, _TRIGGERED_LOTS, settings), executor="serial")
    row = _row(result)
    # The optimiser harvests part of VTI; the plan sells only the rebalance's 50 shares.
    assert row.realized_lt == pytest.approx(-5_000.0)
    assert row.harvested_loss == 0.0
    assert "harvests below the minimums ($40,000 and 5% of the position) not made: VTI ($" in (
        row.message
    )
    assert "ITOT" not in set(result.orders["symbol"])  # nor is its replacement bought


def test_an_account_may_turn_harvesting_off_for_itself(tmp_path):
    accounts = _TRIGGERED.replace("lt_rate\n", "lt_rate,harvest\n").replace(
        "0.37,0.2\n", "0.37,0.2,off\n"
    )
    result = plan(_book(tmp_path, accounts, _TRIGGERED_LOTS), executor="serial")
    assert _row(result).harvested_loss == 0.0


# T1 again, but balanced: 250 VTI bought at $300 ($50,000, a $25,000 loss) and 500 BND.
# No band is breached; only an opportunistic harvest plans it.
_BALANCED_LOTS = "T1,T1-1,VTI,250,300,2020-01-02\nT1,T1-2,BND,500,100,2020-01-02\n"


def test_with_rebalance_leaves_an_untriggered_account_alone(tmp_path):
    result = plan(_book(tmp_path, _TRIGGERED, _BALANCED_LOTS), executor="serial")
    assert _row(result).status == "no_trigger"
    assert result.orders.empty


def test_opportunistic_harvesting_is_a_trigger_of_its_own(tmp_path):
    settings = 'harvest = "opportunistic"\n' + _LOW_TE_VALUE
    result = plan(_book(tmp_path, _TRIGGERED, _BALANCED_LOTS, settings), executor="serial")
    row = _row(result)
    assert (row.status, row.decision) == ("optimal", "harvest")
    assert row.reasons == (
        "harvest: VTI holds $25,000 of loss (50.0% of the position; minimums $500 and 5%)"
    )
    assert row.harvested_loss == pytest.approx(25_000.0)
    assert row.est_tax == pytest.approx(-1_110.0)
    orders = result.orders.set_index("symbol")
    assert orders.loc["VTI", "shares"] == 250
    assert orders.loc["ITOT", "side"] == "buy"
    assert orders.loc["ITOT", "shares"] == pytest.approx(500, abs=5)  # VTI's $50,000
    # Class weights stay where they were.
    assert row.post_US_EQUITY == pytest.approx(row.pre_US_EQUITY, abs=0.005)


def test_no_opportunistic_harvest_below_the_minimum_fraction(tmp_path):
    settings = 'harvest = "opportunistic"\nharvest_min_loss_fraction = 0.6\n'
    result = plan(_book(tmp_path, _TRIGGERED, _BALANCED_LOTS, settings), executor="serial")
    assert _row(result).status == "no_trigger"


# -- the household does not block its own harvests ---------------------------------------------

# Household H1: A1 (planned first) is short of US equity and buys it; A2 holds VTI at a
# $25,000 loss and is out of its bands, so it will harvest VTI. A1 buys ITOT instead of
# VTI, which would have blocked A2's harvest for 30 days.
_HOUSEHOLD = _ACCOUNT + "A1,balanced,H1,taxable,0,0.37,0.2\nA2,balanced,H1,taxable,0,0.37,0.2\n"
_HOUSEHOLD_LOTS = (
    "A1,A1-1,BND,1000,100,2020-01-02\n"
    "A2,A2-1,VTI,300,300,2020-01-02\nA2,A2-2,BND,400,100,2020-01-02\n"
)


def test_a_sibling_buys_a_substitute_rather_than_block_a_harvest(tmp_path):
    settings = 'wash_sale_scope = "household"\n' + _LOW_TE_VALUE
    result = plan(_book(tmp_path, _HOUSEHOLD, _HOUSEHOLD_LOTS, settings), executor="serial")
    bought = result.orders[(result.orders["account_id"] == "A1") & (result.orders["side"] == "buy")]
    assert set(bought["symbol"]) == {"ITOT"}
    assert _row(result, "A2").harvested_loss == pytest.approx(25_000.0)
