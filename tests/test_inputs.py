"""planner.program.inputs: slot buckets, the partial-rebalance goal, each model's universe
and one account's arrays, checked against hand cases and plain scans of the book."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from planner.benchmark_book import generate_benchmark_book
from planner.decisions import Decision
from planner.domain import CASH
from planner.io import load_book, validate_book, write_book
from planner.positions import lot_arrays
from planner.program.inputs import (
    build_inputs,
    partial_goal,
    slot_bucket,
    slots_needed,
    universe_for,
)
from planner.run import plan

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.fixture(scope="module")
def demo():
    return load_book(DEMO)


# -- slot_bucket ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "count, bucket",
    [
        (0, 1),
        (1, 1),
        (2, 2),
        (6, 6),
        (7, 8),
        (8, 8),
        (9, 10),
        (11, 12),
        (13, 16),
        (17, 20),
        (25, 32),
        (33, 40),
        (41, 48),
        (49, 64),
        (64, 64),
        (65, 80),
        (80, 80),
        (81, 96),
        (200, 208),
    ],
)
def test_slot_bucket_boundaries(count, bucket):
    assert slot_bucket(count) == bucket


# -- partial_goal ---------------------------------------------------------------------------


def _close(goal: dict[str, float], expected: dict[str, float]) -> None:
    assert set(goal) == set(expected)
    for c, w in expected.items():
        assert goal[c] == pytest.approx(w, abs=1e-12), c
    assert sum(goal.values()) == pytest.approx(1.0, abs=1e-12)


def test_partial_goal_gives_freed_weight_to_the_one_under_weight_class():
    """EQ 70% clipped to its 65% upper bound; the 5 pp freed go to BD (10 pp under its
    target), half of its gap: 25% + 5% = 30%. Cash is at target and takes nothing."""
    goal = partial_goal(
        {"EQ": 0.70, "BD": 0.25, CASH: 0.05},
        {"EQ": 0.60, "BD": 0.35, CASH: 0.05},
        {"EQ": (0.55, 0.65)},
    )
    _close(goal, {"EQ": 0.65, "BD": 0.30, CASH: 0.05})


def test_partial_goal_shares_in_proportion_to_the_gaps():
    """EQ 75% clipped to 70%: 5 pp freed; BD is 10 pp and INTL 5 pp under target, so BD
    gets 2/3 and INTL 1/3 of it: 15% + 3.33 pp and 5% + 1.67 pp."""
    goal = partial_goal(
        {"EQ": 0.75, "BD": 0.15, "INTL": 0.05, CASH: 0.05},
        {"EQ": 0.60, "BD": 0.25, "INTL": 0.10, CASH: 0.05},
        {"EQ": (0.50, 0.70)},
    )
    _close(goal, {"EQ": 0.70, "BD": 0.15 + 0.05 * 2 / 3, "INTL": 0.05 + 0.05 / 3, CASH: 0.05})


def test_partial_goal_takes_from_the_over_weight_classes():
    """EQ 40% raised to its 50% lower bound: 10 pp must come from the over-weight BD
    (15 pp over) and cash (5 pp over), in proportion 3:1: BD 42.5%, cash 7.5%."""
    goal = partial_goal(
        {"EQ": 0.40, "BD": 0.50, CASH: 0.10},
        {"EQ": 0.60, "BD": 0.35, CASH: 0.05},
        {"EQ": (0.50, 0.70)},
    )
    _close(goal, {"EQ": 0.50, "BD": 0.425, CASH: 0.075})


def test_partial_goal_clips_two_classes_and_one_that_is_not_held():
    """EQ 80% clipped down to its 63% upper bound, REIT (not held) raised to its 3% floor:
    14 pp are left to give, to the classes under target in proportion to their gaps (BD
    15 pp, REIT 2 pp after its floor, cash 5 pp; 22 pp in all): 7/11 of each gap."""
    goal = partial_goal(
        {"EQ": 0.80, "BD": 0.20, CASH: 0.0},
        {"EQ": 0.55, "BD": 0.35, "REIT": 0.05, CASH: 0.05},
        {"EQ": (0.47, 0.63), "REIT": (0.03, 0.07)},
    )
    share = 7 / 11
    _close(
        goal,
        {"EQ": 0.63, "BD": 0.20 + 0.15 * share, "REIT": 0.03 + 0.02 * share, CASH: 0.05 * share},
    )


def test_partial_goal_fills_the_gaps_exactly_to_target():
    """EQ clipped to its 60% upper bound (its target) frees exactly the other classes'
    total gap: each ends at its target."""
    goal = partial_goal(
        {"EQ": 0.90, "BD": 0.08, CASH: 0.02},
        {"EQ": 0.60, "BD": 0.35, CASH: 0.05},
        {"EQ": (0.55, 0.60)},
    )
    _close(goal, {"EQ": 0.60, "BD": 0.35, CASH: 0.05})


# -- universe_for ---------------------------------------------------------------------------


def _universe_by_scan(book, model):
    """The model's securities, then every other symbol on the lots of its accounts, sorted:
    from a scan of each account's lot frame."""
    held: set[str] = set()
    for a, account in book.accounts.items():
        if account.model == model.name:
            held.update(book.lot_frame(a)["symbol"])
    own = list(model.securities)
    return tuple(own + sorted(held - set(own))), len(own)


def _check_universes(book):
    for model in book.models.values():
        universe = universe_for(book, model)
        expected, own = _universe_by_scan(book, model)
        assert universe.symbols == expected, model.name
        assert universe.in_model == tuple(k < own for k in range(len(expected)))
        secs = [book.securities[s] for s in expected]
        np.testing.assert_array_equal(universe.prices, [s.price for s in secs])
        assert universe.asset_classes == tuple(s.asset_class for s in secs)
        targets = model.security_targets
        np.testing.assert_array_equal(
            universe.target_weight, [targets.get(s, 0.0) for s in expected]
        )
        # position maps the book's sorted symbols onto the universe (-1 outside it).
        for code, symbol in enumerate(sorted(book.securities)):
            want = expected.index(symbol) if symbol in expected else -1
            assert universe.position[code] == want, symbol


def test_universe_of_each_demo_model(demo):
    assert len(demo.models) == 3
    _check_universes(demo)
    # The demo's models do have legacy holdings beyond their own securities.
    for model in demo.models.values():
        assert not all(universe_for(demo, model).in_model), model.name


def test_universe_of_a_benchmark_book():
    book = generate_benchmark_book(12, n_securities=9, lots_per_holding=2, seed=4)
    _check_universes(book)
    # Half the accounts moved to a model of the first three classes only: their other
    # holdings become that model's legacy securities, and the first model keeps its own.
    (model,) = book.models.values()
    half = dataclasses.replace(model, name="half", classes=model.classes[:3] + model.classes[-1:])
    ids = sorted(book.accounts)
    accounts = {
        a: dataclasses.replace(book.accounts[a], model="half") if k % 2 else book.accounts[a]
        for k, a in enumerate(ids)
    }
    mixed = dataclasses.replace(book, models={model.name: model, "half": half}, accounts=accounts)
    _check_universes(mixed)
    universe = universe_for(mixed, half)
    assert universe.symbols[: len(half.securities)] == half.securities
    assert not all(universe.in_model)


# -- build_inputs ---------------------------------------------------------------------------

FULL = Decision(fire=True, mode="full", reasons=("test",))


def _account_with_several_lots(book):
    """The first account (sorted) holding a legacy security and several lots of one."""
    for a in sorted(book.accounts):
        lots = book.lot_frame(a)
        model = book.models[book.accounts[a].model]
        if lots["symbol"].duplicated().any() and not set(lots["symbol"]) <= set(model.securities):
            return a
    raise AssertionError("the demo book should have such an account")


def _inputs(book, account_id):
    account = book.accounts[account_id]
    universe = universe_for(book, book.models[account.model])
    slots = slot_bucket(slots_needed(book, account_id))
    inputs = build_inputs(
        book,
        account,
        FULL,
        universe,
        slots,
        book.settings.as_of,
        class_names=tuple(sorted(set(universe.asset_classes))),
    )
    return inputs, universe, slots


def test_build_inputs_points_each_slot_at_its_lot(demo):
    account_id = _account_with_several_lots(demo)
    inputs, universe, slots = _inputs(demo, account_id)
    frame = demo.lot_frame(account_id)
    assert slots >= 2
    rows = inputs.lot_rows[inputs.lot_real]
    assert len(rows) == len(frame)
    # The real slots point at the account's rows of book.lots, each once.
    start, stop = demo.lot_ranges[account_id]
    assert sorted(rows) == list(range(start, stop))
    ids = lot_arrays(demo).lot_ids(rows)
    assert ids == list(demo.lots["lot_id"].iloc[rows])
    assert sorted(ids) == sorted(frame["lot_id"])
    # Each slot holds its lot: the security of its slot block, its shares and cost.
    by_id = frame.set_index("lot_id")
    for slot, lot_id in zip(np.flatnonzero(inputs.lot_real), ids, strict=True):
        lot = by_id.loc[lot_id]
        assert universe.symbols[slot // slots] == lot["symbol"]
        assert inputs.lot_shares[slot] == lot["shares"]
        assert inputs.lot_unit_cost[slot] == lot["unit_cost"]
    # Padding slots: no lot, no shares.
    assert np.all(inputs.lot_rows[~inputs.lot_real] == -1)
    assert np.all(inputs.lot_shares[~inputs.lot_real] == 0.0)
    assert len(inputs.lot_real) == len(universe.symbols) * slots
    # Weights: holdings plus cash make the account.
    assert inputs.hold_weight.sum() + inputs.cash_weight == pytest.approx(1.0, abs=1e-12)
    account = demo.accounts[account_id]
    held = frame.groupby("symbol")["shares"].sum()
    value = sum(q * demo.securities[s].price for s, q in held.items())
    value += account.cash + account.cash_flow
    assert inputs.value == pytest.approx(value, rel=1e-12)
    np.testing.assert_array_equal(inputs.goal_weight, universe.target_weight)


def test_build_inputs_reads_the_lot_ids_of_the_book_it_is_given(demo):
    """A copy of the book with every lot id changed: its inputs point at its own ids."""
    book = dataclasses.replace(demo, lots=demo.lots.assign(lot_id=demo.lots["lot_id"] + "x"))
    account_id = _account_with_several_lots(demo)
    original, _, _ = _inputs(demo, account_id)
    changed, _, _ = _inputs(book, account_id)
    np.testing.assert_array_equal(changed.lot_rows, original.lot_rows)
    rows = changed.lot_rows[changed.lot_real]
    ids = lot_arrays(book).lot_ids(rows)
    assert ids == [i + "x" for i in lot_arrays(demo).lot_ids(rows)]
    assert all(i.endswith("x") for i in ids)
    assert ids == list(book.lot_frame(account_id)["lot_id"].loc[book.lots.index[rows]])


# -- the wash-sale look-back reads lots as well as trades -----------------------------------


def _lot_only_book(tmp_path, household_scope: bool = False, recorded_buy: bool = False):
    """Issue 13's case: one taxable account holding VTI bought in 2022 and again ten days
    before the as-of date, and BND; no trades.csv (or one recording that recent buy)."""
    book = tmp_path / "book"
    book.mkdir()
    (book / "securities.csv").write_text(
        "symbol,asset_class,price\nVTI,US_EQUITY,227.6438\nBND,US_BONDS,73\n"
    )
    (book / "models.toml").write_text(
        "[balanced]\ncash = 0.0\n[balanced.bands]\nabs = 0.05\n"
        "[balanced.classes.US_EQUITY]\ntarget = 0.5\n"
        'securities = ["VTI"]\n[balanced.classes.US_BONDS]\ntarget = 0.5\nsecurities = ["BND"]\n'
    )
    (book / "accounts.csv").write_text(
        "account_id,model,household_id,registration,cash,st_rate,lt_rate\n"
        "T1,balanced,H1,taxable,0,0.37,0.2\n"
        "T2,balanced,H1,taxable,0,0.37,0.2\n"
    )
    recent_owner = "T2" if household_scope else "T1"
    (book / "lots.csv").write_text(
        "account_id,lot_id,symbol,shares,unit_cost,acquired\n"
        "T1,T1-1,VTI,300,235,2022-09-12\n"
        "T1,T1-3,BND,300,73,2022-09-12\n"
        f"{recent_owner},{recent_owner}-2,VTI,40,229,2025-02-18\n"
        "T2,T2-9,BND,10,70,2020-01-02\n"
    )
    if recorded_buy:
        (book / "trades.csv").write_text(
            "account_id,trade_date,symbol,side,shares,price\n"
            f"{recent_owner},2025-02-18,VTI,buy,40,229\n"
        )
    scope = "household" if household_scope else "account"
    (book / "book.toml").write_text(
        f'[settings]\nas_of = 2025-02-28\nwash_sale_scope = "{scope}"\n'
    )
    return load_book(book)


@pytest.mark.parametrize("household_scope", [False, True])
def test_a_lot_bought_in_the_window_blocks_loss_sales(tmp_path, household_scope):
    from planner.program.inputs import wash_blocks

    book = _lot_only_book(tmp_path, household_scope)
    blocks = wash_blocks(book, "T1", date(2025, 2, 28))
    assert blocks.loss_sale_blocked == {"VTI": date(2025, 3, 20)}
    assert "VTI buy on 2025-02-18" in blocks.reasons["VTI"]
    result = plan(book, accounts=["T1"], executor="serial")
    sales = result.lot_sales
    assert not ((sales["symbol"] == "VTI") & (sales["realized_gain"] < 0)).any(), sales


def test_a_lot_and_its_recorded_buy_count_once(tmp_path):
    from planner import tax

    book = _lot_only_book(tmp_path, recorded_buy=True)
    trades = book.trades_of("T1")
    implied = tax.lot_purchases(book.lots_of("T1"), trades, date(2025, 2, 28))
    assert implied == []  # the lot is the recorded buy
    without = tax.lot_purchases(book.lots_of("T1"), (), date(2025, 2, 28))
    assert [(t.symbol, t.trade_date, t.shares) for t in without] == [
        ("VTI", date(2025, 2, 18), 40.0)
    ]


def test_the_look_back_reads_the_purchase_date_of_a_replacement_lot(tmp_path):
    """A wash-sale replacement bought on 2025-02-18 keeps the sold shares' acquired date
    (2023-01-05) for its holding period: the look-back reads ``purchased``."""
    book_dir = tmp_path / "book"
    _lot_only_book(tmp_path)
    lots = (book_dir / "lots.csv").read_text().splitlines()
    lots[0] += ",purchased"
    lots[1:] = [line + "," for line in lots[1:]]
    lots[3] = "T1,T1-2,VTI,40,229,2023-01-05,2025-02-18"
    (book_dir / "lots.csv").write_text("\n".join(lots) + "\n")
    book = load_book(book_dir)
    from planner.program.inputs import wash_blocks

    assert wash_blocks(book, "T1", date(2025, 2, 28)).loss_sale_blocked == {
        "VTI": date(2025, 3, 20)
    }
    # write_book keeps the column, and only because a lot has a purchase date of its own
    write_book(book, tmp_path / "again")
    assert "purchased" in (tmp_path / "again" / "lots.csv").read_text().splitlines()[0]
    lots[3] = "T1,T1-2,VTI,40,229,2025-02-19,2025-02-18"
    (book_dir / "lots.csv").write_text("\n".join(lots) + "\n")
    (issue,) = validate_book(book_dir)
    assert (issue.line, issue.field) == (4, "purchased")
