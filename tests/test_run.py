"""`planner.run` end to end on generated books: outputs, invariants, batching, determinism."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from planner import tax
from planner.domain import CASH
from planner.io import write_outputs
from planner.run import PlanOptions, plan
from planner.synthetic import generate_book

AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="module")
def book():
    return generate_book(seed=3, n_accounts=40, as_of=AS_OF)


@pytest.fixture(scope="module")
def result(book):
    return plan(book, as_of=AS_OF, executor="serial")


def test_every_account_has_a_summary_row(book, result):
    assert sorted(result.summary["account_id"]) == sorted(book.accounts)
    assert set(result.summary["status"]) <= {"optimal", "no_trigger", "infeasible", "error"}
    assert (result.summary["status"] == "optimal").sum() > 0
    assert (result.summary["status"] == "error").sum() == 0


def test_orders_and_lot_sales_agree(result):
    sells = result.orders[result.orders["side"] == "sell"].set_index(["account_id", "symbol"])
    by_lot = result.lot_sales.groupby(["account_id", "symbol"])["shares"].sum()
    for key, shares in by_lot.items():
        assert sells.loc[key, "shares"] == pytest.approx(shares, abs=1e-9)


def test_no_lot_oversold(book, result):
    lots = book.lots.set_index(["account_id", "lot_id"])["shares"]
    for row in result.lot_sales.itertuples():
        assert row.shares <= lots[(row.account_id, row.lot_id)] + 1e-9


ORDINARY_OFFSET_LIMIT = 3000.0


def us_netting_tax(
    st: float, lt: float, st_rate: float, lt_rate: float, limit: float = ORDINARY_OFFSET_LIMIT
) -> float:
    """One year's tax on net short-term ``st`` and long-term ``lt`` results (dollars, a loss
    negative; a loss carried in enters as a loss of its term), written out case by case,
    independently of ``planner.tax``:

    - both terms gains: each is taxed at its own rate;
    - one a gain, the other a loss: they offset; a gain left over keeps the character (and
      rate) of the term that had the gain;
    - a net loss overall: up to ``limit`` ($3,000) of it is deducted from ordinary income,
      which saves tax at the ordinary (short-term) rate; the rest carries forward and is
      worth nothing this year. The estimate is negative then.
    """
    if st >= 0 and lt >= 0:
        return st * st_rate + lt * lt_rate
    total = st + lt
    if total < 0:
        return -min(-total, limit) * st_rate
    # A gain remains: it has the character of the term that had the gain.
    return total * (st_rate if st > 0 else lt_rate)


def test_us_netting_tax_worked_cases():
    """The test's own netting on cases worked by hand (rates 40% ST / 20% LT)."""
    cases = [
        ((1000.0, 2000.0), 400.0 + 400.0),  # two gains, each at its rate
        ((5000.0, -2000.0), 3000.0 * 0.4),  # LT loss absorbs part of an ST gain
        ((-2000.0, 5000.0), 3000.0 * 0.2),  # ST loss absorbs part of an LT gain
        ((-1000.0, -500.0), -1500.0 * 0.4),  # a loss under the limit: all deducted
        ((-2500.0, -2500.0), -3000.0 * 0.4),  # over the limit: $3,000, the rest carried
        ((4000.0, -10000.0), -3000.0 * 0.4),  # net loss after offset, capped
        ((0.0, -2000.0), -2000.0 * 0.4),  # an LT-only loss still offsets at the ST rate
        ((2000.0, -2000.0), 0.0),
    ]
    for (st, lt), expected in cases:
        assert us_netting_tax(st, lt, 0.4, 0.2) == pytest.approx(expected, abs=1e-9)


def _netting_case(st: float, lt: float) -> str:
    if st >= 0 and lt >= 0:
        return "gains"
    if st + lt >= 0:
        return "gain left after offset"
    return "loss over the limit" if st + lt < -ORDINARY_OFFSET_LIMIT else "loss within the limit"


def _check_summary_tax(book, result) -> set[str]:
    """Every planned account's realised gains recomputed from its lot_sales rows (gains
    from the book's price and unit cost), to the cent; and each tax return's est_tax, the
    sum over its accounts, recomputed as the year's :func:`us_netting_tax` after the plan
    less before it (year to date and carried-in losses from returns.csv); returns the
    netting cases met among the returns."""
    lots = book.lots.set_index(["account_id", "lot_id"])
    cases = set()
    ok = result.summary[result.summary["status"] == "optimal"]
    assert len(ok) > 0
    by_return: dict[str, list[float]] = {}
    for row in ok.itertuples():
        account = book.accounts[row.account_id]
        sales = result.lot_sales[result.lot_sales["account_id"] == row.account_id]
        st = lt = 0.0
        for sale in sales.itertuples():
            lot = lots.loc[(sale.account_id, sale.lot_id)]
            assert lot["symbol"] == sale.symbol
            gain = sale.shares * (book.securities[sale.symbol].price - lot["unit_cost"])
            assert sale.realized_gain == pytest.approx(gain, abs=0.005)
            assert sale.term in ("ST", "LT")
            if sale.term == "ST":
                st += gain
            else:
                lt += gain
        assert row.realized_st == pytest.approx(st, abs=0.005)
        assert row.realized_lt == pytest.approx(lt, abs=0.005)
        if not account.taxable:
            assert row.est_tax == 0.0
            continue
        totals = by_return.setdefault(account.return_id, [0.0, 0.0, 0.0])
        totals[0] += st
        totals[1] += lt
        totals[2] += row.est_tax
    for return_id, (st, lt, est_tax) in by_return.items():
        first = book.accounts[
            min(a for a in ok["account_id"] if book.accounts[a].return_id == return_id)
        ]
        year = book.returns.get(return_id)
        base_st = year.ytd_st_gain - year.carryforward_st if year else 0.0
        base_lt = year.ytd_lt_gain - year.carryforward_lt if year else 0.0
        limit = 1500.0 if year and year.filing_status == "married_separate" else 3000.0
        rates = (first.st_rate, first.lt_rate)
        expected = us_netting_tax(base_st + st, base_lt + lt, *rates, limit) - us_netting_tax(
            base_st, base_lt, *rates, limit
        )
        assert est_tax == pytest.approx(expected, abs=0.01), return_id
        cases.add(_netting_case(base_st + st, base_lt + lt))
    return cases


@pytest.fixture(scope="module")
def netting_book(book):
    """The book with unit costs moved so that plans net every way: a quarter of the accounts
    hold only losses, a quarter short-term gains beside small long-term losses, a quarter
    the reverse, a quarter as generated."""
    from dataclasses import replace

    lots = book.lots.copy()
    long_term = tax.holding_terms(lots["acquired"].to_numpy(), AS_OF)
    rank = {a: k for k, a in enumerate(sorted(book.accounts))}
    kind = lots["account_id"].map(rank).to_numpy() % 4
    price = lots["symbol"].map(lambda s: book.securities[s].price).to_numpy()
    lots["unit_cost"] = np.select(
        [
            kind == 0,
            (kind == 1) & ~long_term,
            (kind == 1) & long_term,
            (kind == 2) & long_term,
            (kind == 2) & ~long_term,
        ],
        [price * 1.5, price * 0.5, price * 1.1, price * 0.5, price * 1.1],
        lots["unit_cost"],
    )
    return replace(book, lots=lots)


def test_summary_tax_equals_recomputation_from_lot_sales(book, result, netting_book):
    """The summary's tax is the exact netting of the lot sales written out, recomputed
    without planner.tax, on the generated book and on one whose plans net every way."""
    cases = _check_summary_tax(book, result)
    netting = plan(
        netting_book,
        as_of=AS_OF,
        options=PlanOptions(include_untriggered=True, force_full=True),
        executor="serial",
    )
    cases |= _check_summary_tax(netting_book, netting)
    assert cases == {
        "gains",
        "gain left after offset",
        "loss within the limit",
        "loss over the limit",
    }


def test_lot_terms_follow_the_holding_period(book, result):
    for row in result.lot_sales.itertuples():
        assert row.term == tax.holding_term(row.acquired.date(), AS_OF)


def test_whole_shares_unless_fractional(book, result):
    for row in result.orders.itertuples():
        if book.accounts[row.account_id].fractional_shares:
            continue
        held = book.holdings(row.account_id).get(row.symbol, 0.0)
        assert row.shares == pytest.approx(round(row.shares)) or row.shares == pytest.approx(held)


def test_post_trade_weights_sum_to_one(result):
    ok = result.summary[result.summary["status"] == "optimal"]
    post = ok[[c for c in ok.columns if c.startswith("post_")]].sum(axis=1)
    np.testing.assert_allclose(post, 1.0, atol=1e-6)
    assert f"post_{CASH}" in ok.columns


def test_outputs_are_byte_identical_on_rerun(book, result, tmp_path):
    again = plan(book, as_of=AS_OF, executor="serial")
    a = write_outputs(tmp_path / "a", result.files())
    b = write_outputs(tmp_path / "b", again.files())
    compared = 0
    for x, y in zip(a, b, strict=True):
        assert x.name == y.name
        if x.name == "timings.csv":  # solve times vary run to run, by design
            continue
        assert x.read_bytes() == y.read_bytes(), x.name
        compared += 1
    assert compared == 4
    assert "solve_ms" not in (tmp_path / "a" / "summary.csv").read_text().splitlines()[0]


def test_batch_results_equal_solving_each_account_alone(book, result):
    """A process-pool batch gives the same plans as solving each account alone, or, for
    accounts whose household is in the batch too (planned in turn, so that they cannot
    wash each other's losses), as solving that household alone."""
    ids = sorted(result.summary.loc[result.summary["status"] == "optimal", "account_id"])[:12]
    pooled = plan(book, as_of=AS_OF, accounts=ids, executor="process", workers=2, chunk_size=3)
    for account_id in ids:
        household = [a for a in book.household(account_id) if a in ids]
        alone = plan(book, as_of=AS_OF, accounts=household, executor="serial")
        a = pooled.orders[pooled.orders["account_id"] == account_id].reset_index(drop=True)
        b = alone.orders[alone.orders["account_id"] == account_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-6)


def test_household_accounts_do_not_wash_each_other(book, result):
    """No wash group is bought in one account of a household and sold at a loss in a
    taxable account of the same household in the same run."""
    group = {s: sec.wash_group for s, sec in book.securities.items()}
    household = {a: acc.household_id for a, acc in book.accounts.items()}
    orders, sales = result.orders, result.lot_sales
    bought = {
        (household[r.account_id], group[r.symbol])
        for r in orders[orders["side"] == "buy"].itertuples()
    }
    washed = [
        (r.account_id, r.symbol)
        for r in sales[sales["realized_gain"] < 0].itertuples()
        if book.accounts[r.account_id].taxable
        and (household[r.account_id], group[r.symbol]) in bought
    ]
    assert book.settings.wash_sale_scope == "household"
    assert washed == []
    assert (sales["realized_gain"] < 0).any()  # the demo does harvest losses


def test_dask_executor_matches_serial(book, result):
    pytest.importorskip("distributed")
    ids = sorted(result.summary.loc[result.summary["status"] == "optimal", "account_id"])[:6]
    on_dask = plan(book, as_of=AS_OF, accounts=ids, executor="dask", workers=2, chunk_size=2)
    serial = plan(book, as_of=AS_OF, accounts=ids, executor="serial")
    pd.testing.assert_frame_equal(on_dask.orders, serial.orders, check_exact=False, atol=1e-6)


def test_one_bad_account_does_not_stop_the_batch(book):
    ids = sorted(book.accounts)[:6]
    bad = ids[0]
    original = book.accounts[bad]
    # An account worth nothing cannot be planned: it is reported, the rest go on.
    from dataclasses import replace

    accounts = dict(book.accounts)
    accounts[bad] = replace(original, cash=-1e12)
    broken = replace(book, accounts=accounts)
    out = plan(
        broken,
        as_of=AS_OF,
        accounts=ids,
        options=PlanOptions(include_untriggered=True),
        executor="serial",
    )
    row = out.summary.set_index("account_id").loc[bad]
    assert row["status"] in ("error", "infeasible")
    assert "not positive" in row["message"] or "infeasible" in row["message"]
    assert (out.summary["status"] == "optimal").sum() >= 1


def test_taxable_high_bracket_pays_less_than_exempt_twin(book):
    """The same holdings planned as a taxable high-bracket account and as an IRA: the
    taxable one realises less gain."""
    from dataclasses import replace

    ok = plan(book, as_of=AS_OF, options=PlanOptions(include_untriggered=True), executor="serial")
    taxable = [
        a
        for a in ok.summary.itertuples()
        if book.accounts[a.account_id].taxable
        and a.status == "optimal"
        and a.realized_st + a.realized_lt > 100
    ]
    assert taxable, "the generated book should have taxable accounts that realise gains"
    account_id = taxable[0].account_id
    accounts = dict(book.accounts)
    accounts[account_id] = replace(accounts[account_id], registration="ira")
    as_ira = plan(
        replace(book, accounts=accounts),
        as_of=AS_OF,
        accounts=[account_id],
        options=PlanOptions(include_untriggered=True),
        executor="serial",
    )
    ira_row = as_ira.summary.iloc[0]
    gains_ira = ira_row["realized_st"] + ira_row["realized_lt"]
    gains_taxable = taxable[0].realized_st + taxable[0].realized_lt
    assert gains_taxable < gains_ira


def test_exact_mode_plans_an_account(book, result):
    """SCIP's optimum, or where SCIP proves none in time (on this account it stops within
    cents of the optimum) the heuristic's plan with a note (tests/test_exact.py)."""
    pytest.importorskip("pyscipopt")
    account_id = sorted(result.summary.loc[result.summary["status"] == "optimal", "account_id"])[0]
    options = PlanOptions(exact=True, exact_time_limit=10.0)
    exact = plan(book, as_of=AS_OF, accounts=[account_id], options=options, executor="serial")
    row = exact.summary.iloc[0]
    assert row["status"] == "optimal"
    assert row["solver"] == "SCIP" or row["message"].startswith("exact solve: SCIP"), row


def test_fixed_relief_method_uses_fifo_lots(book, result):
    """FIFO sells each security's oldest lots first: the lots sold are exactly the oldest
    lots the account may sell, all sold whole except possibly the newest of them. A lot is
    passed over only if it may not be sold: a loss lot of a wash group that the history
    blocks, or that this plan buys."""
    from dataclasses import replace

    from planner.program.inputs import wash_blocks

    # No lot is held back for long-term treatment.
    book = replace(book, settings=replace(book.settings, hold_lt_days=0))
    ids = sorted(result.lot_sales["account_id"].unique())[:8]
    fifo = plan(
        book, as_of=AS_OF, accounts=ids, options=PlanOptions(relief="fifo"), executor="serial"
    )
    checked = 0
    for (account_id, symbol), sold in fifo.lot_sales.groupby(["account_id", "symbol"]):
        account = book.accounts[account_id]
        security = book.securities[symbol]
        assert security.can_sell and symbol not in account.do_not_sell
        group = security.wash_group
        bought = fifo.orders[
            (fifo.orders["account_id"] == account_id) & (fifo.orders["side"] == "buy")
        ]
        group_bought = any(book.securities[s].wash_group == group for s in bought["symbol"])
        loss_blocked = (
            group_bought or group in wash_blocks(book, account_id, AS_OF).loss_sale_blocked
        )
        lots = book.lot_frame(account_id)
        lots = lots[lots["symbol"] == symbol].sort_values(["acquired", "lot_id"])
        if loss_blocked:
            lots = lots[lots["unit_cost"] <= security.price]
        shares = dict(zip(sold["lot_id"], sold["shares"], strict=True))
        assert set(shares) <= set(lots["lot_id"]), (account_id, symbol)
        order = list(lots["lot_id"])
        prefix = order[: len(shares)]
        assert set(shares) == set(prefix), (account_id, symbol, order, sorted(shares))
        full = dict(zip(lots["lot_id"], lots["shares"], strict=True))
        for lot_id in prefix[:-1]:
            assert shares[lot_id] == pytest.approx(full[lot_id]), (account_id, lot_id)
        checked += 1
    assert checked >= 5


# -- batching and executors -----------------------------------------------------------------


def test_pooled_decisions():
    from planner.errors import ConfigError
    from planner.run import AUTO_PROCESS_MIN_ACCOUNTS, pooled

    assert AUTO_PROCESS_MIN_ACCOUNTS == 300
    # serial never pools; process and dask always do, however few the accounts.
    assert pooled("serial", 10_000, 8, None) is False
    assert pooled("process", 1, 2, None) is True
    assert pooled("dask", 1, 2, None) is True
    # auto: a pool from 300 accounts on more than one core, or whenever a scheduler is named.
    assert pooled("auto", 299, 2, None) is False
    assert pooled("auto", 300, 2, None) is True
    assert pooled("auto", 10_000, 1, None) is False
    assert pooled("auto", 1, 1, "tcp://scheduler:8786") is True
    with pytest.raises(ConfigError, match="executor 'threads'"):
        pooled("threads", 10, 2, None)


def test_process_executor_equals_serial_run(book, result):
    """A fork pool of two workers, whose chunks decide their own accounts' triggers, gives
    the serial run's orders, lot sales and summary (timings aside)."""
    from planner.orders import TIMING_COLUMNS

    pooled_run = plan(book, as_of=AS_OF, executor="process", workers=2, chunk_size=10)
    pd.testing.assert_frame_equal(pooled_run.orders, result.orders)
    pd.testing.assert_frame_equal(pooled_run.lot_sales, result.lot_sales)
    timing = list(TIMING_COLUMNS)
    pd.testing.assert_frame_equal(
        pooled_run.summary.drop(columns=timing), result.summary.drop(columns=timing)
    )
    assert len(result.orders) > 0 and len(result.lot_sales) > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(effort="quick"), "effort 'quick'"),
        (dict(relief="random"), "relief method 'random'"),
        (dict(turnover_cap=1.5), "turnover_cap 1.5"),
        (dict(min_weight=-0.01), "min_weight -0.01"),
        (dict(max_weight=2.0), "max_weight 2.0"),
        (dict(min_weight=0.2, max_weight=0.1), "min_weight 0.2 is above max_weight 0.1"),
    ],
)
def test_plan_options_reject_bad_values(kwargs, message):
    from planner.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        PlanOptions(**kwargs)


def test_plan_options_accept_the_edges():
    options = PlanOptions(
        effort="thorough", relief="hifo", turnover_cap=0.0, min_weight=0.1, max_weight=0.1
    )
    assert options.turnover_cap == 0.0 and options.min_weight == options.max_weight == 0.1
    assert PlanOptions(turnover_cap=1.0).turnover_cap == 1.0
