"""Single constraints on tiny inputs: do-not-trade lists and per-security weight limits."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import constraints as C
from constraints.base import BIG
from planner.errors import InfeasibleError
from planner.io import load_book, validate_book, write_book
from planner.search import solve_account
from tests.optimiser_helpers import all_constraints, diagonal_risk, make_inputs, make_template

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def _slack(inputs) -> dict[str, np.ndarray]:
    return {
        "sell_cap": np.full(len(inputs.lot_real), BIG),
        "buy_cap": np.full(len(inputs.symbols), BIG),
    }


def test_constraint_labels_are_readable():
    labels = [repr(c) for c in all_constraints()] + [repr(C.TurnoverCap(0.1))]
    assert "LotBounds(0 <= sold <= lot shares)" in labels
    assert "TurnoverCap(0.1)" in labels
    assert all("object at 0x" not in label for label in labels)


# -- DoNotTrade ---------------------------------------------------------------------------


def _three(**overrides):
    """A holds too much, B and C too little; A and B have one lot each."""
    return make_inputs(
        ["A", "B", "C"],
        [100.0, 50.0, 20.0],
        [(0, 80, 90.0, True), (1, 20, 40.0, True)],
        slots=1,
        cash=1000.0,
        goal=[0.4, 0.3, 0.3],
        taxable=False,
        cost_per_dollar=[0.0002] * 3,
        **overrides,
    )


def test_do_not_trade_is_exported_and_readable():
    assert "DoNotTrade" in C.__all__
    assert repr(C.DoNotTrade()) == "DoNotTrade(account list)"


def test_do_not_trade_inactive_without_a_list():
    constraint = C.DoNotTrade()
    for inputs in (_three(), _three(do_not_trade=np.zeros(3, dtype=bool))):
        assert not constraint.active(inputs)
        assert constraint.describe(inputs) == "do-not-trade: none"
        values = _slack(inputs)
        constraint.apply(inputs, values)
        assert np.all(values["sell_cap"] == BIG) and np.all(values["buy_cap"] == BIG)


def test_do_not_trade_caps_buys_and_sells_of_listed_securities():
    inputs = _three(do_not_trade=np.array([True, False, True]))
    constraint = C.DoNotTrade()
    assert constraint.active(inputs)
    assert constraint.describe(inputs) == "do-not-trade: A, C"
    values = _slack(inputs)
    before = values["sell_cap"]
    constraint.apply(inputs, values)
    np.testing.assert_array_equal(values["buy_cap"], [0.0, BIG, 0.0])
    np.testing.assert_array_equal(values["sell_cap"], [0.0, BIG, 0.0])
    assert before is not values["sell_cap"]  # new arrays, never changed in place


def test_do_not_trade_holds_the_position_in_a_solve():
    risk = diagonal_risk(["A", "B", "C"], [0.2] * 3)
    free = _three()
    template = make_template(free, risk, 1, constraints=all_constraints())
    unrestricted = solve_account(template, free).solution
    assert unrestricted.sell[0] > 0.05 and unrestricted.buy[2] > 0.05  # A sold, C bought

    listed = _three(do_not_trade=np.array([True, False, True]))
    sol = solve_account(template, listed).solution
    assert sol.sell[0] == pytest.approx(0.0, abs=1e-9)
    assert sol.buy[0] == pytest.approx(0.0, abs=1e-9)
    assert sol.buy[2] == pytest.approx(0.0, abs=1e-9)
    assert sol.buy[1] > 0.05  # the free security still moves toward its goal


def test_do_not_trade_is_named_when_infeasible():
    """A cash shortfall that needs a sale, while the only holding is on the list."""
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 100.0],
        [(0, 100, 100.0, True)],
        slots=1,
        cash=-500.0,
        goal=[0.5, 0.5],
        do_not_trade=np.array([True, False]),
    )
    risk = diagonal_risk(["A", "B"], [0.2, 0.2])
    template = make_template(inputs, risk, 1, constraints=all_constraints())
    with pytest.raises(InfeasibleError) as info:
        solve_account(template, inputs)
    assert "do-not-trade: A" in str(info.value)
    assert "cash floor" in str(info.value)


# -- do_not_trade in accounts.csv ----------------------------------------------------------


def test_do_not_trade_column_round_trips(tmp_path):
    demo = load_book(DEMO)
    account_id = sorted(demo.accounts)[0]
    accounts = dict(demo.accounts)
    accounts[account_id] = replace(accounts[account_id], do_not_trade=frozenset({"VTI", "BND"}))
    write_book(replace(demo, accounts=accounts), tmp_path / "book")
    frame = pd.read_csv(tmp_path / "book" / "accounts.csv", dtype=str, keep_default_na=False)
    assert frame.set_index("account_id").at[account_id, "do_not_trade"] == "BND;VTI"
    again = load_book(tmp_path / "book")
    assert again.accounts[account_id].do_not_trade == frozenset({"VTI", "BND"})
    assert dict(again.accounts) == accounts


def test_do_not_trade_column_optional_and_omitted_when_empty(tmp_path):
    demo = load_book(DEMO)
    assert all(a.do_not_trade == frozenset() for a in demo.accounts.values())
    write_book(demo, tmp_path / "book")
    header = (tmp_path / "book" / "accounts.csv").read_text().splitlines()[0]
    assert "do_not_trade" not in header.split(",")


def test_do_not_trade_unknown_symbol_names_file_line_field(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(DEMO, book)
    frame = pd.read_csv(book / "accounts.csv", dtype=str, keep_default_na=False)
    frame["do_not_trade"] = ""
    frame.loc[0, "do_not_trade"] = "VTI"
    frame.loc[3, "do_not_trade"] = " VTI ; NOPE "
    frame.to_csv(book / "accounts.csv", index=False)
    issues = validate_book(book)
    hits = [i for i in issues if i.field == "do_not_trade"]
    assert len(hits) == 1 and len(issues) == 1, "\n".join(map(str, issues))
    assert (hits[0].file, hits[0].line) == ("accounts.csv", 5)
    assert "unknown symbol" in hits[0].message and "NOPE" in hits[0].message
    frame.loc[3, "do_not_trade"] = "VTI; BND"
    frame.to_csv(book / "accounts.csv", index=False)
    loaded = load_book(book)
    assert loaded.accounts[frame.at[3, "account_id"]].do_not_trade == frozenset({"VTI", "BND"})
    assert loaded.accounts[frame.at[1, "account_id"]].do_not_trade == frozenset()


# -- WeightLimits --------------------------------------------------------------------------


def _model_with_alternates(**overrides):
    """VTI (target 60%) with alternate ITOT, BND (target 40%) with alternate AGG; drifted,
    with 4% cash to invest."""
    symbols = ["VTI", "ITOT", "BND", "AGG"]
    defaults = dict(
        slots=1,
        cash=4000.0,
        goal=[0.6, 0.0, 0.4, 0.0],
        classes=["EQ", "EQ", "BD", "BD"],
        taxable=False,
        cost_per_dollar=[0.0002] * 4,
    )
    defaults.update(overrides)
    return make_inputs(
        symbols,
        [100.0, 100.0, 50.0, 50.0],
        [(0, 600, 100.0, True), (2, 720, 50.0, True)],
        **defaults,
    )


def test_min_weight_skips_zero_target_alternates():
    limits = C.WeightLimits(lower=0.01, upper=None)
    inputs = _model_with_alternates()
    values = {}
    limits.apply(inputs, values)
    np.testing.assert_array_equal(values["weight_lower"], [0.01, -BIG, 0.01, -BIG])
    assert "weight_upper" not in values
    assert limits.describe(inputs) == "weight limits: weight >= 1.00% for VTI, BND"

    risk = diagonal_risk(inputs.symbols, [0.16, 0.16, 0.05, 0.05])
    template = make_template(inputs, risk, 1, constraints=[*all_constraints(), limits])
    sol = solve_account(template, inputs).solution
    weights = (
        inputs.hold_weight
        + sol.buy
        - np.bincount(inputs.lot_security, weights=sol.sell, minlength=4)
    )
    assert sol.buy[1] == pytest.approx(0.0, abs=1e-7)  # no 1% sliver of ITOT
    assert sol.buy[3] == pytest.approx(0.0, abs=1e-7)  # nor of AGG
    assert weights[0] >= 0.01 - 1e-7 and weights[2] >= 0.01 - 1e-7


def test_min_weight_uses_model_target_over_partial_goal():
    """A partial rebalance spreads a class's goal over what is held, so a held alternate has
    a positive goal; its model target is still 0 and it gets no floor."""
    limits = C.WeightLimits(lower=0.02, upper=0.5)
    inputs = _model_with_alternates(
        goal=[0.5, 0.1, 0.4, 0.0], target_weight=np.array([0.6, 0.0, 0.4, 0.0])
    )
    values = {}
    limits.apply(inputs, values)
    np.testing.assert_array_equal(values["weight_lower"], [0.02, -BIG, 0.02, -BIG])
    np.testing.assert_array_equal(values["weight_upper"], [0.5] * 4)
    # Without a target the goal decides (the documented fallback).
    fallback = replace(inputs, target_weight=None)
    limits.apply(fallback, values)
    np.testing.assert_array_equal(values["weight_lower"], [0.02, 0.02, 0.02, -BIG])


def test_weight_limits_skip_legacy_holdings():
    inputs = _model_with_alternates(
        in_model=np.array([True, True, True, False]), target_weight=np.array([0.6, 0, 0.4, 0])
    )
    values = {}
    C.WeightLimits(lower=0.01, upper=0.3).apply(inputs, values)
    np.testing.assert_array_equal(values["weight_lower"], [0.01, -BIG, 0.01, -BIG])
    np.testing.assert_array_equal(values["weight_upper"], [0.3, 0.3, 0.3, BIG])
