"""The tax year of a return around a plan: the shared deduction, the year to date and
carried-in losses, the per-return table, and the note on lots about to turn long-term."""

from __future__ import annotations

from datetime import date

import pytest

from planner import tax
from planner.io import load_book, validate_book, write_book
from planner.returns import account_tax
from planner.run import plan

AS_OF = date(2025, 2, 28)


def _book(
    tmp_path,
    accounts: str,
    lots: str,
    returns: str | None = None,
    settings: str = "",
    securities: str = "symbol,asset_class,price\nVTI,US_EQUITY,200\nBND,US_BONDS,100\n",
):
    """A book of a 50/50 VTI/BND model (5 pp bands) with the given rows."""
    book = tmp_path / "book"
    book.mkdir(parents=True, exist_ok=True)
    (book / "securities.csv").write_text(securities)
    (book / "models.toml").write_text(
        "[balanced]\ncash = 0.0\n[balanced.bands]\nabs = 0.05\n"
        '[balanced.classes.US_EQUITY]\ntarget = 0.5\nsecurities = ["VTI"]\n'
        '[balanced.classes.US_BONDS]\ntarget = 0.5\nsecurities = ["BND"]\n'
    )
    (book / "accounts.csv").write_text(
        "account_id,model,household_id,registration,cash,st_rate,lt_rate\n" + accounts
    )
    (book / "lots.csv").write_text("account_id,lot_id,symbol,shares,unit_cost,acquired\n" + lots)
    if returns is not None:
        (book / "returns.csv").write_text(returns)
    (book / "book.toml").write_text(f"[settings]\nas_of = {AS_OF}\n{settings}")
    return book


# -- the year's maths, worked by hand --------------------------------------------------------


def test_an_increment_nets_against_the_year_to_date_and_the_carryforward():
    """Year to date: a $10,000 LT gain; $4,000 of ST loss carried in; rates 37% / 20%.
    Before the plan: ST -4,000 against LT +10,000 leaves a $6,000 LT gain: $1,200 of tax.
    The plan realises a $9,000 ST loss: ST -13,000 against LT +10,000 leaves a $3,000 ST
    loss, all deducted: -$1,110. The plan's increment is -$2,310, and nothing carries."""
    year = tax.YearSoFar(st_gain=0.0, lt_gain=10_000.0, carryforward_st=4_000.0)
    assert year.tax(0.37, 0.20) == pytest.approx(1_200.0)
    added = account_tax(year, -9_000.0, 0.0, 0.37, 0.20)
    assert added.est_tax == pytest.approx(-2_310.0)
    assert added.carryforward_added == 0.0
    # A further $5,000 ST loss after that finds the deduction used: it only carries.
    later = year.plus(-9_000.0, 0.0)
    again = account_tax(later, -5_000.0, 0.0, 0.37, 0.20)
    assert again.est_tax == pytest.approx(0.0)
    assert again.carryforward_added == pytest.approx(5_000.0)


def test_married_filing_separately_deducts_1500():
    year = tax.YearSoFar(deduction_limit=1_500.0)
    added = account_tax(year, -10_000.0, 0.0, 0.35, 0.15)
    assert added.est_tax == pytest.approx(-525.0)  # 1,500 x 35%
    assert added.carryforward_added == pytest.approx(8_500.0)


def test_the_usable_loss_of_a_year():
    """Losses the year still uses: its net gains, then the deduction; negative when the
    carried-in losses exceed both."""
    assert tax.YearSoFar().usable_loss == 3_000.0
    assert tax.YearSoFar(st_gain=2_000.0, lt_gain=5_000.0).usable_loss == 10_000.0
    assert tax.YearSoFar(carryforward_lt=10_000.0).usable_loss == -7_000.0


# -- two accounts of one return share the deduction ------------------------------------------

# Two taxable accounts of household H1 (one return by default), each 100% in VTI bought at
# $300 and worth $200 now: the rebalance to 50/50 sells VTI at a loss in both.
_TWO_ACCOUNTS = "J1,balanced,H1,taxable,0,0.37,0.2\nI1,balanced,H1,taxable,0,0.37,0.2\n"
_TWO_LOTS = "J1,J1-1,VTI,100,300,2020-01-02\nI1,I1-1,VTI,100,300,2020-01-02\n"


def test_two_accounts_of_one_return_share_the_deduction(tmp_path):
    book = load_book(_book(tmp_path, _TWO_ACCOUNTS, _TWO_LOTS))
    result = plan(book, executor="serial")
    summary = result.summary.set_index("account_id")
    assert (summary["realized_lt"] < -3_000).all()  # both sell more than $3,000 of loss
    # I1 is planned first (account order) and takes the deduction; J1 only carries.
    assert summary.loc["I1", "est_tax"] == pytest.approx(-1_110.00, abs=0.005)
    assert summary.loc["J1", "est_tax"] == pytest.approx(0.0, abs=0.005)
    assert summary.loc["J1", "carryforward_added"] == pytest.approx(
        -summary.loc["J1", "realized_lt"], abs=0.005
    )
    (row,) = result.returns.itertuples()
    assert (row.tax_return, row.accounts) == ("H1", "I1;J1")
    assert row.tax_before == 0.0
    assert row.tax_after == pytest.approx(-1_110.00, abs=0.005)
    assert row.deduction_after == pytest.approx(3_000.0)
    total_loss = -(summary["realized_lt"].sum())
    assert row.carryforward_lt_out == pytest.approx(total_loss - 3_000.0, abs=0.005)


def test_separate_returns_each_take_a_deduction(tmp_path):
    book_dir = _book(tmp_path, _TWO_ACCOUNTS, _TWO_LOTS)
    text = (book_dir / "accounts.csv").read_text().splitlines()
    text[0] += ",tax_return"
    text[1] += ",RJ"
    text[2] += ",RI"
    (book_dir / "accounts.csv").write_text("\n".join(text) + "\n")
    result = plan(load_book(book_dir), executor="serial")
    assert result.summary["est_tax"].tolist() == pytest.approx([-1_110.0, -1_110.0], abs=0.005)
    assert result.returns["tax_return"].tolist() == ["RI", "RJ"]


# -- the year to date and carried-in losses change the plan ----------------------------------

# One taxable account, 80% VTI with a large short-term gain, 20% BND: the rebalance to 50/50
# weighs the tax of selling VTI against tracking error.
_GAIN_ACCOUNT = "T1,balanced,T1,taxable,0,0.37,0.2\n"
_GAIN_LOTS = "T1,T1-1,VTI,400,100,2024-09-03\nT1,T1-2,BND,200,100,2020-01-02\n"


def test_a_carried_in_loss_shelters_gains_and_the_plan_sells_more(tmp_path):
    plain = plan(load_book(_book(tmp_path, _GAIN_ACCOUNT, _GAIN_LOTS)), executor="serial")
    returns = "tax_return,carryforward_st\nT1,500000\n"
    sheltered_dir = _book(tmp_path / "s", _GAIN_ACCOUNT, _GAIN_LOTS, returns)
    sheltered = plan(load_book(sheltered_dir), executor="serial")
    # Short-term gains alone: the optimiser's tax term is the exact tax.
    row = plain.summary.iloc[0]
    assert row.realized_st > 0 and row.realized_lt == 0
    assert row.model_tax == pytest.approx(row.est_tax, abs=0.005)
    sold = [r.lot_sales["shares"].sum() for r in (plain, sheltered)]
    assert sold[1] > sold[0] > 0
    row = sheltered.summary.iloc[0]
    # The gain only uses up part of the $500,000 carried in: the year's tax is unchanged.
    assert row.realized_st > 0
    assert row.est_tax == pytest.approx(0.0, abs=0.005)
    (ret,) = sheltered.returns.itertuples()
    assert ret.tax_before == ret.tax_after == pytest.approx(-1_110.0)
    assert ret.carryforward_st_out == pytest.approx(500_000 - 3_000 - row.realized_st, abs=0.01)


def test_year_to_date_gains_are_taxed_with_the_plan(tmp_path):
    returns = "tax_return,ytd_st_gain,ytd_lt_gain\nT1,-2000,1000\n"
    book = load_book(_book(tmp_path, _GAIN_ACCOUNT, _GAIN_LOTS, returns))
    result = plan(book, executor="serial")
    row = result.summary.iloc[0]
    gain = row.realized_st
    assert gain > 2_000
    # Before: ST -2,000 absorbs LT +1,000: a $1,000 ST loss deducted (-$370). After: ST
    # gain - 2,000 against LT +1,000: all taxed, ST at 37% and LT at 20%.
    expected = (gain - 2_000) * 0.37 + 1_000 * 0.20 - (-370.0)
    assert row.est_tax == pytest.approx(expected, abs=0.005)
    (ret,) = result.returns.itertuples()
    assert ret.tax_before == pytest.approx(-370.0)


# -- returns.csv as an input ------------------------------------------------------------------


def test_returns_file_is_checked_row_by_row(tmp_path):
    returns = (
        "tax_return,filing_status,ytd_st_gain,carryforward_lt\n"
        "T1,widowed,0,0\n"
        "T1,single,x,-5\n"
        "NOPE,single,0,0\n"
    )
    issues = validate_book(_book(tmp_path, _GAIN_ACCOUNT, _GAIN_LOTS, returns))
    found = {(i.file, i.line, i.field) for i in issues}
    assert found == {
        ("returns.csv", 2, "filing_status"),
        ("returns.csv", 3, "tax_return"),  # a repeat
        ("returns.csv", 3, "ytd_st_gain"),
        ("returns.csv", 3, "carryforward_lt"),
        ("returns.csv", 4, "tax_return"),  # no taxable account files it
    }


def test_accounts_of_one_return_have_one_rate(tmp_path):
    accounts = "J1,balanced,H1,taxable,0,0.37,0.2\nI1,balanced,H1,taxable,0,0.32,0.2\n"
    (issue,) = validate_book(_book(tmp_path, accounts, _TWO_LOTS))
    assert (issue.file, issue.line, issue.field) == ("accounts.csv", 3, "st_rate")
    assert "tax return" in issue.message


def test_write_book_keeps_the_returns(tmp_path):
    returns = "tax_return,filing_status,ytd_st_gain,carryforward_lt\nT1,married_separate,12.5,7\n"
    book = load_book(_book(tmp_path, _GAIN_ACCOUNT, _GAIN_LOTS, returns))
    again = load_book(write_book(book, tmp_path / "again"))
    assert again.returns == book.returns
    assert again.tax_return("T1").deduction_limit == 1_500.0


# -- lots about to turn long-term ---------------------------------------------------------------

# A legacy GLD lot (a class the model does not hold) with a $10,000 short-term gain that
# turns long-term on 2025-03-02, two days after the as-of date.
_LEGACY_SECURITIES = "symbol,asset_class,price\nVTI,US_EQUITY,200\nBND,US_BONDS,100\nGLD,GOLD,200\n"
_ANNIVERSARY_LOTS = (
    "T1,T1-1,VTI,500,100,2020-01-02\nT1,T1-2,BND,1000,100,2020-01-02\n"
    "T1,T1-3,GLD,100,100,2024-03-01\n"
)


def test_a_gain_lot_about_to_turn_long_term_is_held_by_default(tmp_path):
    book = load_book(
        _book(tmp_path, _GAIN_ACCOUNT, _ANNIVERSARY_LOTS, securities=_LEGACY_SECURITIES)
    )
    assert book.settings.hold_lt_days == 30
    result = plan(book, executor="serial")
    assert "T1-3" not in set(result.lot_sales["lot_id"])


def test_selling_a_lot_two_days_before_it_turns_long_term_is_noted(tmp_path):
    book = load_book(
        _book(
            tmp_path,
            _GAIN_ACCOUNT,
            _ANNIVERSARY_LOTS,
            settings="hold_lt_days = 0\n",
            securities=_LEGACY_SECURITIES,
        )
    )
    result = plan(book, executor="serial")
    sales = result.lot_sales.set_index("lot_id")
    assert sales.loc["T1-3", "term"] == "ST"
    gain = sales.loc["T1-3", "realized_gain"]
    assert gain > 0 and result.summary.iloc[0]["realized_st"] == gain
    message = result.summary.iloc[0]["message"]
    # The gain taxed at 37% rather than 20%: 17% of it more than waiting two days (on
    # $1,400 of gain, $238.00).
    assert (
        "sells 1 short-term gain lot turning long-term within 60 days: "
        f"GLD T1-3 (long-term on 2025-03-02); waiting would save ${gain * 0.17:,.2f} of tax"
    ) in message
