"""Turn one account of a book (and its trigger decision) into arrays for the template."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from constraints.base import BIG, AccountInputs
from planner import tax
from planner.domain import CASH, Account, Book, Model
from planner.triggers import Decision


@dataclass(frozen=True)
class Universe:
    """The securities one template trades: the model's, then legacy holdings, in order."""

    model: str
    symbols: tuple[str, ...]
    asset_classes: tuple[str, ...]
    wash_groups: tuple[str, ...]
    in_model: tuple[bool, ...]

    @property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.symbols)}


def universe_for(book: Book, model: Model) -> Universe:
    """Model securities (model order) plus every other security held by any account of the
    model in the book (sorted): one universe per model, whichever accounts a run plans, so
    an account's program is the same alone or in a batch."""
    own = list(model.securities)
    members = [a for a, acc in book.accounts.items() if acc.model == model.name]
    lots = book.lots
    held = (
        set(lots.loc[lots["account_id"].isin(members), "symbol"].unique()) if len(lots) else set()
    )
    legacy = sorted(held - set(own))
    symbols = tuple(own + legacy)
    secs = book.securities
    return Universe(
        model=model.name,
        symbols=symbols,
        asset_classes=tuple(secs[s].asset_class for s in symbols),
        wash_groups=tuple(secs[s].wash_group for s in symbols),
        in_model=tuple([True] * len(own) + [False] * len(legacy)),
    )


def slots_needed(book: Book, account_id: str) -> int:
    """Largest number of lots the account holds in one security (at least 1)."""
    lots = book.lot_frame(account_id)
    if lots.empty:
        return 1
    return int(lots.groupby("symbol").size().max())


SLOT_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64)


def slot_bucket(count: int) -> int:
    """Lot slots per security for a template: the smallest bucket that holds ``count`` (1,
    2, 3, 4, 5, 6, 8, 10, 12, 16, ... then multiples of 16), so accounts with similar lot
    counts share a compiled template without much padding."""
    for bucket in SLOT_BUCKETS:
        if count <= bucket:
            return bucket
    return -(-count // 16) * 16


def partial_goal(
    current: Mapping[str, float],
    targets: Mapping[str, float],
    bounds: Mapping[str, tuple[float, float]],
) -> dict[str, float]:
    """Class weights a partial rebalance aims at: each bounded class clipped into its bounds,
    the freed weight moved to the classes on the other side of their targets, in proportion
    to their distance from target and never past it (so they stay inside their bands).

    The result sums to 1 when ``targets`` does.
    """
    classes = sorted(set(current) | set(targets))
    goal = {c: float(current.get(c, 0.0)) for c in classes}
    for c, (lo, hi) in bounds.items():
        goal[c] = min(max(goal.get(c, 0.0), lo), hi)
    excess = 1.0 - sum(goal.values())
    if abs(excess) > 1e-12:
        # Give to the under-weight (excess > 0) or take from the over-weight classes, in
        # proportion to their distance from target, without crossing the target.
        gap = {
            c: (targets.get(c, 0.0) - goal[c]) if excess > 0 else (goal[c] - targets.get(c, 0.0))
            for c in classes
        }
        gap = {c: g for c, g in gap.items() if g > 0}
        total = sum(gap.values())
        if total > 0:
            share = min(1.0, abs(excess) / total)
            for c, g in gap.items():
                goal[c] += np.sign(excess) * g * share
        excess = 1.0 - sum(goal.values())
        if abs(excess) > 1e-12:
            # Whatever is left goes to cash, which every model has.
            goal[CASH] = goal.get(CASH, 0.0) + excess
    return goal


def build_inputs(
    book: Book,
    account: Account,
    decision: Decision,
    universe: Universe,
    slots: int,
    as_of: date,
    *,
    class_names: Sequence[str],
    turnover_cap: float | None = None,
    weight_lower: float | None = None,
    weight_upper: float | None = None,
) -> AccountInputs:
    """Arrays of one account over the universe's securities and ``slots`` lots each."""
    model = book.models[account.model]
    secs = book.securities
    n = len(universe.symbols)
    index = universe.index
    prices = np.array([secs[s].price for s in universe.symbols])

    lots = book.lot_frame(account.account_id)
    m = n * slots
    lot_real = np.zeros(m, dtype=bool)
    lot_shares = np.zeros(m)
    lot_cost = np.zeros(m)
    lot_acquired = np.full(m, np.datetime64(as_of, "D"))
    lot_ids = [""] * m
    shares_held = np.zeros(n)
    if not lots.empty:
        sec_idx = lots["symbol"].map(index).to_numpy()
        # Position of each lot within its security (lots are sorted by symbol, acquired).
        within = lots.groupby("symbol", sort=False).cumcount().to_numpy()
        if within.max() >= slots:
            raise ValueError(f"account {account.account_id}: more lots than template slots")
        slot = sec_idx * slots + within
        lot_real[slot] = True
        lot_shares[slot] = lots["shares"].to_numpy(dtype=float)
        lot_cost[slot] = lots["unit_cost"].to_numpy(dtype=float)
        lot_acquired[slot] = lots["acquired"].to_numpy().astype("datetime64[D]")
        for s, lid in zip(slot, lots["lot_id"], strict=True):
            lot_ids[s] = str(lid)
        np.add.at(shares_held, sec_idx, lots["shares"].to_numpy(dtype=float))
    lot_security = np.repeat(np.arange(n), slots)

    long_term = np.asarray(tax.holding_terms(lot_acquired, as_of), dtype=bool)
    days_to_lt = _days_to_long_term(lot_acquired, as_of)

    held_value = float(shares_held @ prices)
    cash = account.cash + account.cash_flow
    value = held_value + cash
    if not value > 0:
        raise ValueError(
            f"account {account.account_id}: value ${value:,.2f} is not positive "
            "(holdings + cash + cash flow)"
        )

    # Goal weights per security: the model's, or the partial-rebalance goal split by class.
    sec_targets = model.security_targets
    target_weight = np.array([sec_targets.get(s, 0.0) for s in universe.symbols])
    class_targets = model.class_targets
    lower = np.full(len(class_names), -BIG)
    upper = np.full(len(class_names), BIG)
    cash_band_lo, cash_band_hi = model.cash.band.bounds(model.cash.target)
    cash_floor = max(cash_band_lo, 0.0) if np.isfinite(cash_band_lo) else 0.0
    cash_ceiling = BIG
    goal_weight = target_weight
    if decision.mode == "partial" and decision.class_bounds:
        hold_weight_sec = shares_held * prices / value
        current = {c: 0.0 for c in class_names}
        for c, w in zip(universe.asset_classes, hold_weight_sec, strict=True):
            current[c] = current.get(c, 0.0) + w
        current[CASH] = cash / value
        goal = partial_goal(current, class_targets, decision.class_bounds)
        goal_weight = _split_by_class(goal, universe, target_weight, hold_weight_sec)
        for k, c in enumerate(class_names):
            if c in decision.class_bounds:
                lower[k], upper[k] = decision.class_bounds[c]
        if CASH in decision.class_bounds:
            lo, hi = decision.class_bounds[CASH]
            cash_floor = max(cash_floor, lo)
            cash_ceiling = hi

    wash = tax.wash_sale_blocks(
        book.trades_of(book.wash_scope(account.account_id)),
        {s: sec.wash_group for s, sec in secs.items()},
        as_of,
        window_days=book.settings.wash_window_days,
    )
    groups = universe.wash_groups
    return AccountInputs(
        account_id=account.account_id,
        value=value,
        symbols=universe.symbols,
        asset_classes=universe.asset_classes,
        wash_groups=groups,
        prices=prices,
        in_model=np.array(universe.in_model, dtype=bool),
        hold_weight=shares_held * prices / value,
        goal_weight=goal_weight,
        cash_weight=cash / value,
        cost_per_dollar=np.array([secs[s].cost_per_dollar for s in universe.symbols]),
        min_trade_value=np.array([secs[s].min_trade_value for s in universe.symbols]),
        lot_real=lot_real,
        lot_security=lot_security,
        lot_shares=lot_shares,
        lot_unit_cost=lot_cost,
        lot_long_term=long_term,
        lot_days_to_long_term=days_to_lt,
        lot_ids=tuple(lot_ids),
        lot_acquired=lot_acquired,
        impact=_impact(book, universe, value),
        taxable=account.taxable,
        st_rate=account.st_rate,
        lt_rate=account.lt_rate,
        loss_benefit=book.settings.loss_benefit,
        cash_floor_weight=cash_floor,
        cash_ceiling_weight=cash_ceiling,
        class_lower=lower,
        class_upper=upper,
        restricted_buy=np.array([not secs[s].can_buy for s in universe.symbols]),
        restricted_sell=np.array([not secs[s].can_sell for s in universe.symbols]),
        do_not_buy=np.array([s in account.do_not_buy for s in universe.symbols]),
        do_not_sell=np.array([s in account.do_not_sell for s in universe.symbols]),
        wash_buy_blocked=np.array([g in wash.buy_blocked for g in groups]),
        wash_loss_sale_blocked=np.array([g in wash.loss_sale_blocked for g in groups]),
        cash_flow_mode=decision.cash_flow_mode if decision.mode == "cash_only" else "none",
        gain_budget=account.gain_budget,
        st_gain_cap=account.st_gain_cap,
        hold_lt_days=book.settings.hold_lt_days,
        turnover_cap=turnover_cap,
        weight_lower=weight_lower,
        weight_upper=weight_upper,
    )


def _split_by_class(
    goal: Mapping[str, float],
    universe: Universe,
    target_weight: np.ndarray,
    hold_weight: np.ndarray,
) -> np.ndarray:
    """Spread class goal weights over securities in proportion to what the account holds in
    the class (a partial rebalance moves classes, it does not reshuffle within one), or by
    model target for a class it does not hold. Legacy holdings keep a goal of 0."""
    out = np.zeros(len(universe.symbols))
    classes = np.array(universe.asset_classes)
    in_model = np.array(universe.in_model)
    for c in set(universe.asset_classes):
        mask = (classes == c) & in_model
        basis = hold_weight[mask]
        if basis.sum() <= 0:
            basis = target_weight[mask]
        if basis.sum() > 0:
            out[mask] = goal.get(c, 0.0) * basis / basis.sum()
    return out


def _impact(book: Book, universe: Universe, value: float) -> np.ndarray:
    """Per-security impact coefficient ``sigma * sqrt(V / ADV)`` (0 without ADV or vol)."""
    out = np.zeros(len(universe.symbols))
    for i, s in enumerate(universe.symbols):
        sec = book.securities[s]
        if sec.adv and sec.volatility:
            out[i] = sec.volatility * np.sqrt(value / sec.adv)
    return out


def _days_to_long_term(acquired: np.ndarray, as_of: date) -> np.ndarray:
    """Days from ``as_of`` until each lot's first long-term sale date (<= 0 once long-term)."""
    first = tax.first_long_term_dates(acquired).astype("datetime64[D]")
    return (first - np.datetime64(as_of, "D")).astype(int)
