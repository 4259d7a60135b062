"""Turn one account of a book (and its trigger decision) into arrays for the template."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from constraints.base import BIG, AccountInputs
from planner import tax
from planner.decisions import Decision
from planner.domain import CASH, Account, Book, Model
from planner.positions import accounts_with_recent_trades, lot_arrays


@dataclass(frozen=True, eq=False)
class Universe:
    """The securities one template trades: the model's, then legacy holdings, in order.

    The arrays are per security of the universe and fixed for a run: prices (dollars),
    linear cost per dollar traded, minimum trade (dollars), firm-wide restrictions, model
    target weights, and the impact scale ``sigma / sqrt(ADV)`` (0 without ADV or volatility).
    ``position`` maps a code of the book's sorted securities to the universe index (-1 if
    not in the universe).
    """

    model: str
    symbols: tuple[str, ...]
    asset_classes: tuple[str, ...]
    wash_groups: tuple[str, ...]
    in_model: tuple[bool, ...]
    prices: np.ndarray
    cost_per_dollar: np.ndarray
    min_trade_value: np.ndarray
    restricted_buy: np.ndarray
    restricted_sell: np.ndarray
    target_weight: np.ndarray
    impact_scale: np.ndarray
    position: np.ndarray

    @property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.symbols)}


def universe_for(book: Book, model: Model) -> Universe:
    """Model securities (model order) plus every other security held by any account of the
    model in the book (sorted): one universe per model, whichever accounts a run plans, so
    an account's program is the same alone or in a batch."""
    own = list(model.securities)
    arrays = lot_arrays(book)
    # The symbols on the lot rows of the model's accounts, in one pass rather than a unique
    # per account: the holders' row ranges tile the lots in account order, so repeating
    # each holder's flag over its rows marks them.
    accounts = book.accounts
    spans = sorted(
        (start, stop - start, a in accounts and accounts[a].model == model.name)
        for a, (start, stop) in arrays.ranges.items()
    )
    member = np.array([m for _, _, m in spans], dtype=bool)
    if member.all():  # every holder is the model's (one-model books)
        codes = arrays.symbol_code
    else:
        lengths = np.array([length for _, length, _ in spans], dtype=np.int64)
        codes = arrays.symbol_code[np.repeat(member, lengths)]
    counts = np.bincount(codes, minlength=len(arrays.symbols))
    held_codes = np.flatnonzero(counts).tolist()
    held = {arrays.symbols[c] for c in held_codes}
    legacy = sorted(held - set(own))
    symbols = tuple(own + legacy)
    secs = [book.securities[s] for s in symbols]
    targets = model.security_targets
    position = np.full(len(arrays.symbols), -1, dtype=np.int64)
    code = {s: k for k, s in enumerate(arrays.symbols)}
    for i, s in enumerate(symbols):
        position[code[s]] = i
    return Universe(
        model=model.name,
        symbols=symbols,
        asset_classes=tuple(sec.asset_class for sec in secs),
        wash_groups=tuple(sec.wash_group for sec in secs),
        in_model=tuple([True] * len(own) + [False] * len(legacy)),
        prices=np.array([sec.price for sec in secs], dtype=float),
        cost_per_dollar=np.array([sec.cost_per_dollar for sec in secs], dtype=float),
        min_trade_value=np.array([sec.min_trade_value for sec in secs], dtype=float),
        restricted_buy=np.array([not sec.can_buy for sec in secs], dtype=bool),
        restricted_sell=np.array([not sec.can_sell for sec in secs], dtype=bool),
        target_weight=np.array([targets.get(s, 0.0) for s in symbols], dtype=float),
        impact_scale=np.array(
            [
                sec.volatility / np.sqrt(sec.adv) if sec.adv and sec.volatility else 0.0
                for sec in secs
            ],
            dtype=float,
        ),
        position=position,
    )


def slots_needed(book: Book, account_id: str) -> int:
    """Largest number of lots the account holds in one security (at least 1)."""
    return max(1, lot_arrays(book).max_lots.get(account_id, 1))


BAND_MARGIN = 1e-4
"""Fraction of account value (1 bp), besides one share, by which a partial rebalance aims
inside the band edges it must reach."""

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
    household_buys: Iterable[str] = (),
    household_loss_sales: Iterable[str] = (),
    tax_year: tax.YearSoFar | None = None,
) -> AccountInputs:
    """Arrays of one account over the universe's securities and ``slots`` lots each;
    ``tax_year`` is its return's year before its plan (default: the return's year to date
    from the book)."""
    model = book.models[account.model]
    n = len(universe.symbols)
    prices = universe.prices
    arrays = lot_arrays(book)
    rows = arrays.rows(account.account_id)

    m = n * slots
    lot_real = np.zeros(m, dtype=bool)
    lot_shares = np.zeros(m)
    lot_cost = np.zeros(m)
    lot_acquired = _padding(m, as_of).copy()
    lot_rows = np.full(m, -1, dtype=np.int64)
    long_term = np.zeros(m, dtype=bool)
    days_to_lt = np.zeros(m, dtype=np.int64)
    shares_held = np.zeros(n)
    if rows.stop > rows.start:
        sec_idx = universe.position[arrays.symbol_code[rows]]
        if np.any(sec_idx < 0):
            raise ValueError(f"account {account.account_id}: holds a security outside its universe")
        within = arrays.within[rows]
        if within.max() >= slots:
            raise ValueError(f"account {account.account_id}: more lots than template slots")
        slot = sec_idx * slots + within
        shares = arrays.shares[rows]
        lot_real[slot] = True
        lot_shares[slot] = shares
        lot_cost[slot] = arrays.unit_cost[rows]
        lot_acquired[slot] = arrays.acquired[rows]
        lot_rows[slot] = np.arange(rows.start, rows.stop)
        lt_all, days_all = arrays.terms(as_of)
        long_term[slot] = lt_all[rows]
        days_to_lt[slot] = days_all[rows]
        shares_held = np.bincount(sec_idx, weights=shares, minlength=n)
    lot_security = lot_security_of(n, slots)

    held_value = float(shares_held @ prices)
    cash = account.cash + account.cash_flow
    value = held_value + cash
    if not value > 0:
        raise ValueError(
            f"account {account.account_id}: value ${value:,.2f} is not positive "
            "(holdings + cash + cash flow)"
        )

    # Goal weights per security: the model's, or the partial-rebalance goal split by class.
    target_weight = universe.target_weight
    class_targets = model.class_targets
    lower = np.full(len(class_names), -BIG)
    upper = np.full(len(class_names), BIG)
    cash_band_lo, cash_band_hi = model.cash.band.bounds(model.cash.target)
    cash_floor = max(cash_band_lo, 0.0) if np.isfinite(cash_band_lo) else 0.0
    cash_ceiling = BIG
    goal_weight = target_weight
    if decision.mode in ("partial", "harvest") and decision.class_bounds:
        hold_weight_sec = shares_held * prices / value
        current = {c: 0.0 for c in class_names}
        for c, w in zip(universe.asset_classes, hold_weight_sec, strict=True):
            current[c] = current.get(c, 0.0) + w
        current[CASH] = cash / value
        goal = partial_goal(current, class_targets, decision.class_bounds)
        goal_weight = _split_by_class(goal, universe, target_weight, hold_weight_sec)
        share_weight = prices / value
        classes = np.asarray(universe.asset_classes)
        for k, c in enumerate(class_names):
            if c in decision.class_bounds:
                lo, hi = decision.class_bounds[c]
                in_class = classes == c
                # Aim a share's worth inside the band, so that whole-share rounding does
                # not land the class just outside it (and fire the trigger again).
                one_share = float(share_weight[in_class].max()) if in_class.any() else 0.0
                margin = min(one_share + BAND_MARGIN, (hi - lo) / 4)
                lower[k], upper[k] = lo + margin, hi - margin
        if CASH in decision.class_bounds:
            lo, hi = decision.class_bounds[CASH]
            margin = min(float(share_weight.max()) + BAND_MARGIN, (hi - lo) / 4)
            cash_floor = max(cash_floor, lo + margin)
            cash_ceiling = hi - margin

    wash = wash_blocks(book, account.account_id, as_of)
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
        cost_per_dollar=universe.cost_per_dollar,
        min_trade_value=universe.min_trade_value,
        lot_real=lot_real,
        lot_security=lot_security,
        lot_shares=lot_shares,
        lot_unit_cost=lot_cost,
        lot_long_term=long_term,
        lot_days_to_long_term=days_to_lt,
        lot_rows=lot_rows,
        lot_acquired=lot_acquired,
        impact=universe.impact_scale * np.sqrt(value),
        taxable=account.taxable,
        st_rate=account.st_rate,
        lt_rate=account.lt_rate,
        loss_benefit=book.settings.loss_benefit,
        cash_floor_weight=cash_floor,
        cash_ceiling_weight=cash_ceiling,
        class_lower=lower,
        class_upper=upper,
        restricted_buy=universe.restricted_buy,
        restricted_sell=universe.restricted_sell,
        do_not_buy=_flags(universe.symbols, account.do_not_buy),
        do_not_sell=_flags(universe.symbols, account.do_not_sell),
        do_not_trade=_flags(universe.symbols, account.do_not_trade),
        target_weight=universe.target_weight,
        # Groups other accounts of the household sell at a loss (taxable) or buy in this
        # run count like recent history: no buys, and no loss sales, respectively.
        wash_buy_blocked=_flags(groups, set(wash.buy_blocked) | set(household_loss_sales)),
        wash_loss_sale_blocked=_flags(groups, set(wash.loss_sale_blocked) | set(household_buys)),
        cash_flow_mode=decision.cash_flow_mode if decision.mode == "cash_only" else "none",
        gain_budget=account.gain_budget,
        st_gain_cap=account.st_gain_cap,
        hold_lt_days=book.settings.hold_lt_days,
        turnover_cap=turnover_cap,
        weight_lower=weight_lower,
        weight_upper=weight_upper,
        dust_value=book.settings.dust_value,
        tax_year=tax_year or year_to_date(book, account.account_id),
    )


def year_to_date(book: Book, account_id: str) -> tax.YearSoFar | None:
    """The year so far of the account's tax return, from returns.csv (``None`` for IRA and
    Roth accounts)."""
    tax_return = book.tax_return(account_id)
    return None if tax_return is None else tax.YearSoFar.of(tax_return)


@functools.lru_cache(maxsize=64)
def _padding(m: int, as_of: date) -> np.ndarray:
    """The acquisition date of every slot before the account's lots are placed: the as-of
    date (copied per account)."""
    return np.full(m, np.datetime64(as_of, "D"))


@functools.lru_cache(maxsize=64)
def lot_security_of(n: int, slots: int) -> np.ndarray:
    """The security of each of ``n * slots`` lot slots (read-only, shared)."""
    out = np.repeat(np.arange(n), slots)
    out.setflags(write=False)
    return out


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


def _flags(names: Sequence[str], members) -> np.ndarray:
    """Boolean array: which of ``names`` are in ``members``."""
    if not members:
        return np.zeros(len(names), dtype=bool)
    return np.array([x in members for x in names], dtype=bool)


_NO_BLOCKS = tax.WashSaleBlocks({}, {})


def wash_blocks(book: Book, account_id: str, as_of: date) -> tax.WashSaleBlocks:
    """Wash-sale blocks of an account on ``as_of`` from the history of its wash-sale scope
    (the account, or its household with IRA and Roth accounts: a buy there washes a
    taxable loss, while a loss sale there is no deductible loss and blocks nothing): the
    recorded trades, and the purchases its lots show (a lot bought in the window is a buy
    whether or not trades.csv has it)."""
    scope = book.wash_scope(account_id)
    window = book.settings.wash_window_days
    recent = _recent_traders(book, as_of, window)
    if not recent.intersection(scope):
        return _NO_BLOCKS
    trades = book.trades_of(scope)
    first = as_of - timedelta(days=window)
    arrays = lot_arrays(book)
    lots = [lot for a in scope if a in recent for lot in arrays.bought_between(a, first, as_of)]
    return tax.wash_sale_blocks(
        [*trades, *tax.lot_purchases(lots, trades, as_of, window)],
        {s: sec.wash_group for s, sec in book.securities.items()},
        as_of,
        window_days=window,
        registrations={a: book.accounts[a].registration for a in scope},
    )


_RECENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Per book (kept while it lives): (as-of date, window) -> accounts with a trade or a lot
bought in the window."""


def _recent_traders(book: Book, as_of: date, window: int) -> frozenset[str]:
    per_book = _RECENT.setdefault(book, {})
    if (as_of, window) not in per_book:
        per_book[(as_of, window)] = accounts_with_recent_trades(book, as_of, window)
    return per_book[(as_of, window)]
