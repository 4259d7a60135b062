"""Order reasons and plan notes (planner.reasons, through planner.orders): hand-built
accounts for each kind of reason and note, and the demo book's plan as a whole."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from planner.decisions import Decision
from planner.domain import CASH, Band, ClassTarget, Model, TriggerSpec
from planner.io import load_book
from planner.reasons import Reasons
from planner.rounding import Executable
from planner.run import plan
from tests.optimiser_helpers import make_inputs

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"

SYMBOLS = ("VTI", "ITOT", "BND")  # VTI the preferred US_EQUITY security, ITOT its alternate
CLASSES = ("US_EQUITY", "US_EQUITY", "US_BONDS")
TARGETS = (0.6, 0.0, 0.4)
MODEL = Model(
    "m",
    (
        ClassTarget("US_EQUITY", 0.6, ("VTI", "ITOT"), {"VTI": 0.6, "ITOT": 0.0}, Band(abs=0.05)),
        ClassTarget("US_BONDS", 0.4, ("BND",), {"BND": 0.4}, Band(abs=0.05)),
        ClassTarget(CASH, 0.0, (), {}, Band(abs=0.02)),
    ),
    "target",
    TriggerSpec("threshold"),
)
FULL = Decision(True, "full", reasons=("test",))


def reasons_for(lots, sold, bought, *, cash=0.0, decision=FULL, cash_flow=0.0, **overrides):
    """Reasons of a $100-a-share account of VTI, ITOT and BND (two lot slots each): ``lots``
    as for ``make_inputs``, ``sold`` shares per slot, ``bought`` shares per security."""
    inputs = make_inputs(
        SYMBOLS,
        [100.0, 100.0, 100.0],
        lots,
        slots=2,
        cash=cash,
        goal=TARGETS,
        classes=CLASSES,
        target_weight=np.array(TARGETS),
        **overrides,
    )
    sell = np.asarray(sold, dtype=float)
    buy = np.asarray(bought, dtype=float)
    sold_value = np.bincount(inputs.lot_security, weights=sell, minlength=3) * 100.0
    held = inputs.hold_weight * inputs.value
    post_value = held - sold_value + buy * 100.0
    cash_after = cash + sold_value.sum() - buy.sum() * 100.0
    klass = np.array(CLASSES)
    pre = {c: float(held[klass == c].sum() / inputs.value) for c in set(CLASSES)}
    post = {c: float(post_value[klass == c].sum() / inputs.value) for c in set(CLASSES)}
    executable = Executable(sell, buy, cash_after, 0.0)
    return Reasons(inputs, decision, MODEL, executable, pre, post, cash_flow)


def order_reasons(why: Reasons) -> dict[tuple[str, str], str]:
    """(symbol, side) -> reason of every order the account makes."""
    sold = np.flatnonzero(why.sold > 0)
    bought = np.flatnonzero(why.bought > 0)
    idx = np.concatenate([sold, bought])
    is_sell = np.arange(len(idx)) < len(sold)
    texts = why.reasons(idx, is_sell)
    return {
        (SYMBOLS[i], "sell" if s else "buy"): t
        for i, s, t in zip(idx.tolist(), is_sell.tolist(), texts, strict=True)
    }


# -- order reasons --------------------------------------------------------------------------


def test_a_replaced_loss_sale_is_a_harvest_and_its_replacement_a_substitute():
    # VTI bought at $223.40 sells at $100: a $1,234 loss on 10 shares, replaced by ITOT.
    lots = [(0, 10.0, 223.4, False), (0, 50.0, 80.0, True), (2, 40.0, 100.0, True)]
    why = reasons_for(lots, [10, 0, 0, 0, 0, 0], [0, 10, 0])
    assert order_reasons(why) == {
        ("VTI", "sell"): "tax-loss harvest: $1,234 loss, replaced by ITOT",
        ("ITOT", "buy"): "substitute for VTI (VTI sold at a loss in this plan)",
    }


def test_a_loss_sale_in_a_class_under_its_target_is_held_as_cash():
    # US_EQUITY is 50% of the account against a 60% target: the sale is no rebalance.
    lots = [(0, 10.0, 223.4, False), (0, 40.0, 80.0, True), (2, 50.0, 100.0, True)]
    why = reasons_for(lots, [10, 0, 0, 0, 0, 0], [0, 0, 0])
    assert order_reasons(why) == {
        ("VTI", "sell"): "tax-loss harvest: $1,234 loss, held as cash",
    }


def test_a_loss_sale_a_class_move_needs_is_a_rebalance():
    lots = [(0, 10.0, 223.4, False), (0, 60.0, 80.0, True), (2, 30.0, 100.0, True)]
    why = reasons_for(lots, [10, 0, 0, 0, 0, 0], [0, 0, 10])
    assert order_reasons(why) == {
        ("VTI", "sell"): "rebalance US_EQUITY: 70.0% -> 60.0% (target 60.0%)",
        ("BND", "buy"): "rebalance US_BONDS: 30.0% -> 40.0% (target 40.0%)",
    }


def test_no_substitute_label_when_the_preferred_security_is_bought():
    lots = [(0, 40.0, 80.0, True), (1, 10.0, 80.0, True), (2, 50.0, 80.0, True)]
    why = reasons_for(lots, [0, 0, 0, 0, 10, 0], [5, 5, 0])
    assert order_reasons(why) == {
        ("BND", "sell"): "rebalance US_BONDS: 50.0% -> 40.0% (target 40.0%)",
        ("VTI", "buy"): "rebalance US_EQUITY: 50.0% -> 60.0% (target 60.0%)",
        ("ITOT", "buy"): "rebalance US_EQUITY: 50.0% -> 60.0% (target 60.0%)",
    }


@pytest.mark.parametrize(
    ("block", "why_not"),
    [
        ({"wash_buy_blocked": np.array([True, False, False])}, "VTI would wash a recent loss sale"),
        ({"do_not_buy": np.array([True, False, False])}, "VTI on the account's do-not-buy list"),
        (
            {"restricted_buy": np.array([True, False, False])},
            "VTI restricted from buying (firm-wide)",
        ),
        (
            {"do_not_trade": np.array([True, False, False])},
            "VTI on the account's do-not-trade list",
        ),
    ],
)
def test_a_substitute_says_why_the_preferred_security_is_not_bought(block, why_not):
    lots = [(0, 40.0, 80.0, True), (2, 60.0, 80.0, True)]
    why = reasons_for(lots, [0, 0, 0, 0, 10, 0], [0, 10, 0], **block)
    assert order_reasons(why)[("ITOT", "buy")] == f"substitute for VTI ({why_not})"


def test_an_alternate_bought_while_the_preferred_may_be_is_a_rebalance():
    # VTI could be bought: ITOT's buy serves the class move and is no substitute.
    lots = [(0, 40.0, 80.0, True), (1, 10.0, 80.0, True), (2, 50.0, 80.0, True)]
    why = reasons_for(lots, [0, 0, 0, 0, 10, 0], [0, 10, 0])
    assert order_reasons(why)[("ITOT", "buy")] == (
        "rebalance US_EQUITY: 50.0% -> 60.0% (target 60.0%)"
    )


def test_a_gain_sale_swapped_within_its_class_is_no_rebalance():
    # US_EQUITY stays at 60%: selling ITOT (a gain) for VTI moves no class.
    lots = [(0, 50.0, 80.0, True), (1, 10.0, 80.0, True), (2, 40.0, 80.0, True)]
    why = reasons_for(lots, [0, 0, 10, 0, 0, 0], [10, 0, 0])
    assert order_reasons(why) == {
        ("ITOT", "sell"): "replaced by VTI within US_EQUITY",
        ("VTI", "buy"): "replaces ITOT within US_EQUITY",
    }


def test_a_replacement_of_a_harvest_names_it():
    # BND is the only US_BONDS security: buying ITOT for a harvested ITOT would be a wash
    # sale, so the harvest of ITOT (no target) is replaced by VTI, the preferred security.
    lots = [(0, 50.0, 80.0, True), (1, 10.0, 150.0, True), (2, 40.0, 80.0, True)]
    why = reasons_for(lots, [0, 0, 10, 0, 0, 0], [10, 0, 0])
    assert order_reasons(why) == {
        ("ITOT", "sell"): "tax-loss harvest: $500 loss, replaced by VTI",
        ("VTI", "buy"): "replaces ITOT sold for a tax loss",
    }


def test_a_sale_past_the_target_for_a_withdrawal_says_so():
    # A $2,000 withdrawal (cash -$2,000 of a $10,000 account): VTI sold past its target.
    lots = [(0, 84.0, 80.0, True), (2, 36.0, 80.0, True)]
    why = reasons_for(lots, [30, 0, 0, 0, 0, 0], [0, 0, 0], cash=-2_000.0, cash_flow=-2_000.0)
    assert order_reasons(why) == {
        ("VTI", "sell"): "raise cash for withdrawal of $2,000: US_EQUITY 84.0% -> 54.0% "
        "(target 60.0%)",
    }
    # To the target and no further, the same sale is the rebalance.
    why = reasons_for(lots, [24, 0, 0, 0, 0, 0], [0, 0, 0], cash=-2_000.0, cash_flow=-2_000.0)
    assert order_reasons(why)[("VTI", "sell")] == (
        "rebalance US_EQUITY: 84.0% -> 60.0% (target 60.0%)"
    )


def test_cash_only_reasons_name_the_flow():
    lots = [(0, 60.0, 80.0, True), (2, 40.0, 80.0, True)]
    contribution = Decision(True, "cash_only", reasons=("c",), cash_flow_mode="buy_only")
    why = reasons_for(
        lots, [0] * 6, [6, 0, 4], cash=1_000.0, cash_flow=1_000.0, decision=contribution
    )
    assert set(order_reasons(why).values()) == {"invest contribution of $1,000"}
    withdrawal = Decision(True, "cash_only", reasons=("w",), cash_flow_mode="sell_only")
    why = reasons_for(
        lots, [6, 0, 0, 0, 4, 0], [0, 0, 0], cash=-1_000.0, cash_flow=-1_000.0, decision=withdrawal
    )
    assert set(order_reasons(why).values()) == {"raise cash for withdrawal of $1,000"}


def test_a_legacy_sale_says_so():
    lots = [(0, 60.0, 80.0, True), (1, 10.0, 80.0, True), (2, 30.0, 80.0, True)]
    legacy = np.array([True, False, True])
    why = reasons_for(lots, [0, 0, 10, 0, 0, 0], [0, 0, 10], in_model=legacy)
    assert order_reasons(why)[("ITOT", "sell")] == "legacy holding, not in model"


# -- notes: what keeps a class outside its band ---------------------------------------------


def test_a_do_not_sell_holding_above_its_band_is_named():
    lots = [(0, 70.0, 80.0, True), (2, 30.0, 80.0, True)]
    why = reasons_for(lots, [0] * 6, [0, 0, 0], do_not_sell=np.array([True, False, False]))
    assert why.notes(()) == [
        "US_BONDS ends at 30.0%, below its lower band edge 35.0%: US_EQUITY held above its "
        "band; cash at its floor",
        "US_EQUITY ends at 70.0%, above its upper band edge 65.0%: do-not-sell: VTI",
    ]


def test_a_used_gain_budget_is_named():
    # 2.5 shares of the zero-cost lot realise $250, the whole budget: US_EQUITY stays high.
    lots = [(0, 65.0, 100.0, True), (0, 5.0, 0.0, True), (2, 30.0, 100.0, True)]
    why = reasons_for(lots, [0, 2.5, 0, 0, 0, 0], [0, 0, 2.5], gain_budget=250.0)
    assert why.notes(("a search note",)) == [
        "a search note",
        "US_BONDS ends at 32.5%, below its lower band edge 35.0%: cash at its floor; "
        "gain budget $250 used",
        "US_EQUITY ends at 67.5%, above its upper band edge 65.0%: gain budget $250 used",
    ]


def test_wash_blocked_loss_lots_are_named():
    lots = [(0, 70.0, 120.0, True), (2, 30.0, 80.0, True)]
    why = reasons_for(
        lots, [0] * 6, [0, 0, 0], wash_loss_sale_blocked=np.array([True, False, False])
    )
    assert why.notes(())[1] == (
        "US_EQUITY ends at 70.0%, above its upper band edge 65.0%: wash sale: no loss sales "
        "of recently bought VTI"
    )


def test_a_partial_rebalance_is_held_to_its_bounds():
    partial = Decision(
        True, "partial", "band_edge", ("p",), {"US_EQUITY": (0.55, 0.65), "US_BONDS": (0.35, 0.45)}
    )
    lots = [(0, 67.0, 80.0, True), (2, 33.0, 80.0, True)]
    why = reasons_for(lots, [1, 0, 0, 0, 0, 0], [0, 0, 1], decision=partial)
    assert why.notes(()) == [
        "US_BONDS ends at 34.0%, below its lower band edge 35.0%: cash at its floor",
        "US_EQUITY ends at 66.0%, above its upper band edge 65.0%: the tax on further sales "
        "outweighs the drift",
    ]
    # Within a share of the edge, whole shares are the cause.
    lots = [(0, 65.5, 80.0, True), (2, 34.5, 80.0, True)]
    assert why_notes(lots, partial)[-1] == (
        "US_EQUITY ends at 65.5%, above its upper band edge 65.0%: whole-share rounding"
    )


def why_notes(lots, decision):
    return reasons_for(lots, [0] * 6, [0, 0, 0], cash=0.0, decision=decision).notes(())


def test_a_turnover_cap_overshot_by_rounding_is_noted():
    lots = [(0, 60.0, 80.0, True), (2, 40.0, 80.0, True)]
    why = reasons_for(lots, [3, 0, 0, 0, 0, 0], [0, 0, 3], turnover_cap=0.05)
    assert why.notes(()) == [
        "turnover 6.00% exceeds the 5.00% cap by $100.00 after whole-share rounding"
    ]
    why = reasons_for(lots, [2, 0, 0, 0, 0, 0], [0, 0, 2], turnover_cap=0.04)
    assert why.notes(()) == ["limits reached: turnover cap 4.0% reached"]


# -- the demo book --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_plan():
    book = load_book(DEMO)
    return book, plan(book, executor="serial")


MOVE = re.compile(r"^rebalance ([A-Z][A-Z_]*): (-?[\d.]+)% -> (-?[\d.]+)%")


def test_demo_substitutes_are_true(demo_plan):
    """No order says "substitute for X" in an account that also buys X, or any security the
    model targets in X's class."""
    book, result = demo_plan
    orders = result.orders
    bought = orders[orders["side"] == "buy"].groupby("account_id")["symbol"].agg(set)
    substitutes = orders[orders["reason"].str.startswith("substitute for ")]
    assert len(substitutes) > 0
    for row in substitutes.itertuples():
        named = re.match(r"substitute for ([A-Z, ]+) \(", row.reason).group(1).split(", ")
        model = book.models[book.accounts[row.account_id].model]
        klass = book.securities[row.symbol].asset_class
        preferred = {
            s
            for s, t in model.security_targets.items()
            if t > 0 and book.securities[s].asset_class == klass
        }
        assert set(named) == preferred, row
        assert not preferred & bought[row.account_id], row


def test_demo_class_moves_agree_with_the_order_side(demo_plan):
    """A "rebalance C: a -> b" sale moves C down and a buy moves it up, C the order's class;
    every order has a reason."""
    book, result = demo_plan
    orders = result.orders
    assert orders["reason"].str.len().min() > 0
    rebalances = orders[orders["reason"].str.startswith("rebalance ")]
    assert len(rebalances) > 100
    for row in rebalances.itertuples():
        klass, before, after = MOVE.search(row.reason).groups()
        assert klass == book.securities[row.symbol].asset_class, row
        assert (float(after) < float(before)) == (row.side == "sell"), row
        assert float(after) != float(before), row


def test_demo_untriggered_accounts_say_why(demo_plan):
    _, result = demo_plan
    quiet = result.summary[result.summary["status"] == "no_trigger"]
    assert len(quiet) > 0
    assert quiet["reasons"].str.match(r"(threshold|calendar|hybrid): ").all()
