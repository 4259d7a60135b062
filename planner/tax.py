"""Tax maths: holding periods, gains, US capital-gain netting, wash sales.

Pure functions over plain values, numpy arrays and the frozen dataclasses of
:mod:`planner.domain`; no cvxpy, so every rule here can be tested against worked examples.

Units: shares are share counts, prices and unit costs are dollars per share, gains, losses,
bases and taxes are dollars, rates are fractions, dates are ``datetime.date`` (or numpy
``datetime64`` in the vectorised helpers). Dollars are kept exact (floats, never rounded
here); rounding to cents is the reports' job.

Sources: IRS Publication 550 ("Holding Period", "Wash Sales", "Capital Losses"), the
Schedule D instructions (Capital Loss Carryover Worksheet), Rev. Rul. 66-7 (holding period
in calendar months, acquisition day excluded, disposal day included), Rev. Rul. 2008-5
(IRA purchase after a taxable loss sale), Treas. Reg. 1.1091-1 (matching of replacement
shares in order of acquisition).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np

from planner.domain import FrozenDict, Lot, Term, Trade

__all__ = [
    "NON_TAXABLE",
    "LotSale",
    "NettingResult",
    "Replacement",
    "WashSaleBlocks",
    "WashSaleOutcome",
    "WashSaleResult",
    "apply_wash_sales",
    "capital_gains_tax",
    "days_until_long_term",
    "first_long_term_date",
    "first_long_term_dates",
    "holding_term",
    "holding_terms",
    "net_capital_gains",
    "realized_by_term",
    "unrealized_gain",
    "wash_sale_blocks",
    "wash_window",
]

NON_TAXABLE: frozenset[str] = frozenset({"ira", "roth"})
"""Registrations whose gains and losses are not taxed."""

_SHARE_TOL = 1e-9  # shares below this are treated as zero (float residue of splits)


# --------------------------------------------------------------------------------------
# Holding period
# --------------------------------------------------------------------------------------


def first_long_term_date(acquired: date) -> date:
    """First sale date on which shares acquired on ``acquired`` are long-term.

    Long-term means held *more than one year* (Pub 550, "Holding Period"). The holding
    period starts the day after acquisition and includes the sale day, and it is counted
    in calendar months, not days (Rev. Rul. 66-7). So the year is complete at the end of
    the day before the one-year anniversary of that start day, and the first long-term
    date is that anniversary: for a 2025-02-05 purchase the start is 2025-02-06, a sale on
    2026-02-05 is short-term and one on 2026-02-06 is long-term (the Pub 550 example).

    February: a start day of Feb 29 has no anniversary in a common year; its twelfth
    holding month ends on Feb 28, so the first long-term date is Mar 1. Hence:

    - bought 2024-02-29 (start Mar 1): Feb 28, 2025 is short-term, Mar 1, 2025 long-term
      (the Feb 29 anniversary is taken as Feb 28, and the day after it is Mar 1);
    - bought 2024-02-28 (start Feb 29): first long-term date Mar 1, 2025;
    - bought 2015-02-28, the last day of that month (start Mar 1): a sale on the leap day
      2016-02-29 is still short-term, the first long-term date is 2016-03-01. This is the
      one case where the shortcut "the day after the anniversary of the purchase" is a
      day early; the month-counting rule for a purchase on a month's last day gives Mar 1.
    """
    start = acquired + timedelta(days=1)
    try:
        return start.replace(year=start.year + 1)
    except ValueError:  # start is Feb 29: see the docstring
        return date(start.year + 1, 3, 1)


def first_long_term_dates(acquired: Any) -> np.ndarray:
    """Vectorised :func:`first_long_term_date`: ``datetime64[D]`` array, NaT stays NaT.

    ``acquired`` is anything numpy turns into ``datetime64`` (an array of ``datetime64`` of
    any unit, a pandas Series, a list of dates).
    """
    start = _as_days(acquired) + np.timedelta64(1, "D")
    if start.ndim == 1 and len(start) > 4096:
        # A book's millions of lots share a few thousand dates: the calendar arithmetic
        # (slow in numpy) is done once per day of their range, then looked up.
        known = ~np.isnat(start)
        every = bool(known.all())
        days = start.view(np.int64) if every else start.view(np.int64)[known]
        if len(days):
            first, last = int(days.min()), int(days.max())
            if last - first < len(start) // 4:
                table = _one_year_on(np.arange(first, last + 1).astype("datetime64[D]"))
                if every:
                    return table[days - first]
                out = np.full(len(start), np.datetime64("NaT"), dtype="datetime64[D]")
                out[known] = table[days - first]
                return out
    return _one_year_on(start)


def _one_year_on(start: np.ndarray) -> np.ndarray:
    """The same month and day one year after each ``datetime64[D]`` of ``start``."""
    years = start.astype("datetime64[Y]")
    months = start.astype("datetime64[M]")
    month_of_year = months - years.astype("datetime64[M]")
    day_of_month = start - months.astype("datetime64[D]")
    # Same month and day one year later; adding the day offset to the first of the month
    # rolls a Feb 29 start into Mar 1 of a common year, which is the rule we want.
    target_month = (years + np.timedelta64(1, "Y")).astype("datetime64[M]") + month_of_year
    return target_month.astype("datetime64[D]") + day_of_month


def holding_term(acquired: date, sold: date) -> Term:
    """``"LT"`` if shares bought on ``acquired`` and sold on ``sold`` are long-term, else
    ``"ST"``. A same-day sale is short-term. Raises ``ValueError`` if ``sold < acquired``."""
    if sold < acquired:
        raise ValueError(f"sale date {sold} is before acquisition date {acquired}")
    return "LT" if sold >= first_long_term_date(acquired) else "ST"


def holding_terms(acquired: Any, sold: Any) -> np.ndarray:
    """Vectorised :func:`holding_term`: boolean array, ``True`` where long-term.

    ``acquired`` is an array of ``datetime64`` (any unit) or dates; ``sold`` one date or an
    array broadcasting against it. Nothing is validated: a NaT acquisition, or one after
    the sale, comes out ``False`` (short-term).
    """
    sold_days = _as_days(sold)
    return np.asarray(sold_days >= first_long_term_dates(acquired), dtype=bool)


def days_until_long_term(acquired: Any, as_of: date) -> int | np.ndarray:
    """Days from ``as_of`` until a sale would be long-term; 0 once it already is.

    A scalar ``acquired`` date gives an ``int``; an array gives an ``int64`` array.
    """
    if isinstance(acquired, date):
        return max(0, (first_long_term_date(acquired) - as_of).days)
    days = (first_long_term_dates(acquired) - _as_days(as_of)).astype(np.int64)
    return np.maximum(days, 0)


def _as_days(value: Any) -> np.ndarray:
    """Anything date-like as ``datetime64[D]`` (scalar or array)."""
    if isinstance(value, date):
        return np.datetime64(value, "D")
    return np.asarray(value).astype("datetime64[D]")


# --------------------------------------------------------------------------------------
# Gains
# --------------------------------------------------------------------------------------


def unrealized_gain(shares: Any, unit_cost: Any, price: Any) -> float | np.ndarray:
    """Gain in dollars if ``shares`` bought at ``unit_cost`` were sold at ``price``
    (negative for a loss). Works elementwise on numpy arrays; scalars give a float."""
    # Proceeds minus basis, the way a broker computes it (and LotSale does).
    gain = np.multiply(shares, price) - np.multiply(shares, unit_cost)
    return float(gain) if np.ndim(gain) == 0 else gain


@dataclass(frozen=True)
class LotSale:
    """Sale of ``shares`` of one lot on ``sale_date`` at ``price`` dollars per share.

    ``unit_cost`` (dollars per share) and ``acquired`` are the lot's, before any wash-sale
    adjustment. ``account_id`` is optional for plain gain arithmetic, but
    :func:`apply_wash_sales` uses ``(account_id, lot_id)`` to find the lot sold.
    """

    symbol: str
    lot_id: str
    shares: float
    unit_cost: float
    acquired: date
    sale_date: date
    price: float
    account_id: str = ""

    def __post_init__(self) -> None:
        if not self.shares >= 0:
            raise ValueError(f"lot {self.lot_id}: shares sold must be >= 0, got {self.shares}")
        if self.sale_date < self.acquired:
            raise ValueError(
                f"lot {self.lot_id}: sale date {self.sale_date} is before "
                f"acquisition date {self.acquired}"
            )

    @property
    def proceeds(self) -> float:
        """Dollars received (shares times price; costs of sale are not modelled)."""
        return self.shares * self.price

    @property
    def cost_basis(self) -> float:
        """Dollars of basis of the shares sold."""
        return self.shares * self.unit_cost

    @property
    def realized_gain(self) -> float:
        """Proceeds minus basis in dollars (negative for a loss)."""
        return self.proceeds - self.cost_basis

    @property
    def term(self) -> Term:
        return holding_term(self.acquired, self.sale_date)


def realized_by_term(sales: Iterable[LotSale]) -> tuple[float, float]:
    """(short-term, long-term) realised gains in dollars, each the sum of gains and losses
    of that term (before any netting across terms)."""
    st = lt = 0.0
    for s in sales:
        if s.term == "LT":
            lt += s.realized_gain
        else:
            st += s.realized_gain
    return st, lt


# --------------------------------------------------------------------------------------
# Netting of capital gains and losses
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NettingResult:
    """Outcome of the Schedule D netting of one year, all in dollars.

    - ``net_st``, ``net_lt``: net short- and long-term result after netting within each
      term (carryovers included) and across terms; a gain is positive, a loss negative.
      A loss of one term absorbs a gain of the other, so a gain and a loss never remain
      side by side.
    - ``ordinary_offset``: net capital loss deducted from ordinary income (positive,
      at most the limit), taken from the short-term loss first.
    - ``carryforward_st``, ``carryforward_lt``: losses carried to next year (positive),
      keeping their character.
    - ``taxable_st``, ``taxable_lt``: gains that are taxed (>= 0).
    """

    net_st: float
    net_lt: float
    ordinary_offset: float
    carryforward_st: float
    carryforward_lt: float
    taxable_st: float
    taxable_lt: float

    @property
    def net_total(self) -> float:
        """Net capital gain (positive) or loss (negative) of the year, Schedule D line 16."""
        return self.net_st + self.net_lt


def net_capital_gains(
    st_gain: float,
    lt_gain: float,
    carryforward_st: float = 0.0,
    carryforward_lt: float = 0.0,
    ordinary_offset_limit: float = 3000.0,
) -> NettingResult:
    """Net one year's capital gains the US way (Schedule D, Pub 550 "Capital Losses").

    ``st_gain`` and ``lt_gain`` are the year's realised short- and long-term results in
    dollars (negative for a net loss); ``carryforward_st`` / ``carryforward_lt`` are the
    losses carried in from last year as positive numbers. Steps:

    1. Carryovers enter as a short- and a long-term loss: net ST = ``st_gain`` minus the ST
       carryover, net LT likewise.
    2. If one net is a gain and the other a loss, they offset.
    3. A remaining net loss is deducted from ordinary income up to
       ``ordinary_offset_limit`` ($3,000; $1,500 married filing separately), short-term
       loss first; the rest carries forward keeping its character (the Capital Loss
       Carryover Worksheet: ST carryover = ST loss - LT gain - deduction; LT carryover =
       LT loss - ST gain - (deduction - ST loss, if positive)).

    Assumes taxable income before the deduction is at least the deduction (worksheet line
    3 >= line 2); with less income the worksheet carries more forward, which is not
    modelled here.
    """
    if carryforward_st < 0 or carryforward_lt < 0:
        raise ValueError("carryforwards are losses given as positive numbers")
    if ordinary_offset_limit < 0:
        raise ValueError("ordinary_offset_limit must be >= 0")
    net_st = st_gain - carryforward_st
    net_lt = lt_gain - carryforward_lt
    # Across terms: a loss of one term absorbs the gain of the other; the sign of the
    # total decides which character survives.
    if net_st < 0 < net_lt or net_lt < 0 < net_st:
        total = net_st + net_lt
        if net_st > 0:  # ST gain against LT loss
            net_st, net_lt = (total, 0.0) if total >= 0 else (0.0, total)
        else:  # LT gain against ST loss
            net_st, net_lt = (0.0, total) if total >= 0 else (total, 0.0)
    st_loss = max(-net_st, 0.0)
    lt_loss = max(-net_lt, 0.0)
    if st_loss + lt_loss <= ordinary_offset_limit:
        # Everything is deducted; computed apart so that no rounding dust is carried.
        offset, carry_st, carry_lt = st_loss + lt_loss, 0.0, 0.0
    else:
        offset = ordinary_offset_limit
        used_st = min(st_loss, offset)
        carry_st = st_loss - used_st
        carry_lt = max(lt_loss - (offset - used_st), 0.0)
    return NettingResult(
        net_st=net_st,
        net_lt=net_lt,
        ordinary_offset=offset,
        carryforward_st=carry_st,
        carryforward_lt=carry_lt,
        taxable_st=max(net_st, 0.0),
        taxable_lt=max(net_lt, 0.0),
    )


def capital_gains_tax(
    st_gain: float,
    lt_gain: float,
    st_rate: float,
    lt_rate: float,
    carryforward_st: float = 0.0,
    carryforward_lt: float = 0.0,
    ordinary_offset_limit: float = 3000.0,
) -> float:
    """Tax in dollars on one year's gains after :func:`net_capital_gains` netting.

    ``taxable_st * st_rate + taxable_lt * lt_rate - ordinary_offset * st_rate``: short-term
    gains are taxed at the ordinary rate, and the loss deducted from ordinary income saves
    tax at that same ordinary rate, hence the ``st_rate`` on the offset. Negative when
    the losses save tax. Rates are fractions; flat marginal rates, no brackets.
    """
    n = net_capital_gains(st_gain, lt_gain, carryforward_st, carryforward_lt, ordinary_offset_limit)
    return n.taxable_st * st_rate + n.taxable_lt * lt_rate - n.ordinary_offset * st_rate


# --------------------------------------------------------------------------------------
# Wash sales: look-back blocks for the optimiser
# --------------------------------------------------------------------------------------


def wash_window(sale_date: date, window_days: int = 30) -> tuple[date, date]:
    """First and last day (both included) of the wash-sale window around a loss sale:
    ``window_days`` before to ``window_days`` after, 61 days for the legal 30."""
    if window_days < 0:
        raise ValueError("window_days must be >= 0")
    span = timedelta(days=window_days)
    return sale_date - span, sale_date + span


@dataclass(frozen=True)
class WashSaleBlocks:
    """What the recent history forbids on the as-of date, per wash group.

    - ``buy_blocked``: wash group -> last day buying it would be a wash sale of a recent
      loss sale (loss sale date + window).
    - ``loss_sale_blocked``: wash group -> last day a loss sale in it would be a wash sale
      of a recent buy (buy date + window).
    - ``reasons``: wash group -> human text naming the trade behind each block (the one
      that lasts longest); both kinds, if any, joined by ``"; "``.
    """

    buy_blocked: Mapping[str, date] = field(default_factory=FrozenDict)
    loss_sale_blocked: Mapping[str, date] = field(default_factory=FrozenDict)
    reasons: Mapping[str, str] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        for name in ("buy_blocked", "loss_sale_blocked", "reasons"):
            value = getattr(self, name)
            if not isinstance(value, FrozenDict):
                object.__setattr__(self, name, FrozenDict(value))


def wash_sale_blocks(
    trades: Iterable[Trade],
    wash_groups: Mapping[str, str],
    as_of: date,
    window_days: int = 30,
    registrations: Mapping[str, str] | None = None,
) -> WashSaleBlocks:
    """Wash-sale blocks on ``as_of`` from a trade history.

    ``trades`` is the history of the account, or of its whole household (IRA and Roth
    included): the caller picks the scope. ``wash_groups`` maps symbol -> wash group (a
    symbol missing from it is its own group). Only trades dated in
    ``[as_of - window_days, as_of]`` count (same-day trades included, later ones ignored).

    - A sell with ``realized_gain < 0`` is a loss sale: its group cannot be bought until
      the sale date + window (day 30 still blocked, day 31 free). A sell whose
      ``realized_gain`` is ``None`` is not known to be a loss and is skipped, as is a sell
      in an account that ``registrations`` (account_id -> registration) names ``ira`` or
      ``roth``, whose losses are not deductible and so cannot be washed.
    - Any buy, in any account (an IRA buy counts, Rev. Rul. 2008-5), blocks selling a lot
      of its group at a loss until the buy date + window. This is conservative: shares of
      the very lot just bought are not replacements for themselves, but the look-back
      cannot tell lots apart.
    """
    if window_days < 0:
        raise ValueError("window_days must be >= 0")
    regs = registrations or {}
    start = as_of - timedelta(days=window_days)
    span = timedelta(days=window_days)
    buy_blocked: dict[str, date] = {}
    sale_blocked: dict[str, date] = {}
    buy_why: dict[str, str] = {}
    sale_why: dict[str, str] = {}
    for t in trades:
        if not start <= t.trade_date <= as_of:
            continue
        group = wash_groups.get(t.symbol, t.symbol)
        until = t.trade_date + span
        where = _account_note(t.account_id, regs)
        if t.side == "sell":
            if t.realized_gain is None or not t.realized_gain < 0:
                continue
            if regs.get(t.account_id, "taxable") in NON_TAXABLE:
                continue
            if group not in buy_blocked or until > buy_blocked[group]:
                buy_blocked[group] = until
                buy_why[group] = (
                    f"{t.symbol} loss sale on {t.trade_date.isoformat()}{where} "
                    f"(wash group {group}): no buys until {until.isoformat()}"
                )
        elif t.side == "buy":
            if group not in sale_blocked or until > sale_blocked[group]:
                sale_blocked[group] = until
                sale_why[group] = (
                    f"{t.symbol} buy on {t.trade_date.isoformat()}{where} "
                    f"(wash group {group}): no loss sales until {until.isoformat()}"
                )
        else:
            raise ValueError(f"trade side must be 'buy' or 'sell', got {t.side!r}")
    reasons = {
        g: "; ".join(r for r in (buy_why.get(g), sale_why.get(g)) if r)
        for g in sorted(set(buy_why) | set(sale_why))
    }
    return WashSaleBlocks(
        buy_blocked=FrozenDict(sorted(buy_blocked.items())),
        loss_sale_blocked=FrozenDict(sorted(sale_blocked.items())),
        reasons=FrozenDict(reasons),
    )


def _account_note(account_id: str, regs: Mapping[str, str]) -> str:
    reg = regs.get(account_id)
    return f" in {reg} account {account_id}" if reg in NON_TAXABLE else ""


# --------------------------------------------------------------------------------------
# Wash sales: adjustment of a history
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    """Shares of one lot that replaced (part of) a loss sale.

    ``sale_index`` is the position of the loss sale in the ``sales`` given to
    :func:`apply_wash_sales`; ``lot_id`` the id of the replacement shares in the adjusted
    lots. ``disallowed_loss`` (dollars, positive) is the part of the loss they disallow;
    ``basis_added`` is the same amount in a taxable account and 0 in an IRA or Roth (the
    loss is then lost for good). ``acquired`` is the purchase date, ``tacked_acquired`` the
    acquisition date after adding the sold shares' holding period (unchanged in an IRA).
    """

    sale_index: int
    account_id: str
    lot_id: str
    symbol: str
    shares: float
    disallowed_loss: float
    basis_added: float
    acquired: date
    tacked_acquired: date
    taxable: bool


@dataclass(frozen=True)
class WashSaleOutcome:
    """What the wash-sale rule did to one sale (dollars; losses as positive amounts).

    - ``realized_gain``: proceeds minus basis, the basis including any wash-sale
      adjustment the sold shares carried from an earlier loss sale.
    - ``deferred_loss``: loss disallowed and added to replacement shares' basis.
    - ``lost_loss``: loss disallowed for good (replacement bought in an IRA or Roth).
    - ``reported_st``, ``reported_lt``: the gain or loss that counts this year
      (``realized_gain + deferred_loss + lost_loss``) split by term; a sale from a lot
      split by an earlier wash sale can have both.
    - ``allowed_loss``: the loss still deductible (positive).
    - ``taxable``: whether the sale is in a taxable account (an IRA sale reports nothing).
    """

    sale: Any
    realized_gain: float
    deferred_loss: float
    lost_loss: float
    reported_st: float
    reported_lt: float
    allowed_loss: float
    taxable: bool

    @property
    def disallowed_loss(self) -> float:
        """Total loss disallowed, deferred or lost (dollars, positive)."""
        return self.deferred_loss + self.lost_loss

    @property
    def reported_gain(self) -> float:
        return self.reported_st + self.reported_lt

    @property
    def is_wash_sale(self) -> bool:
        return self.disallowed_loss > 0


@dataclass(frozen=True)
class WashSaleResult:
    """Result of :func:`apply_wash_sales`.

    ``lots``: the lots still held after every sale, with adjusted basis and tacked
    acquisition dates (replacement shares split off a lot get the id ``<lot_id>.w<k>``);
    ``outcomes``: one per sale, in the order of the ``sales`` given; ``replacements``: every
    replacement match, in the order made.
    """

    lots: tuple[Lot, ...]
    outcomes: tuple[WashSaleOutcome, ...]
    replacements: tuple[Replacement, ...]

    def realized_by_term(self) -> tuple[float, float]:
        """(short-term, long-term) reported gains of the taxable sales, in dollars."""
        taxable = [o for o in self.outcomes if o.taxable]
        return sum(o.reported_st for o in taxable), sum(o.reported_lt for o in taxable)

    @property
    def deferred_loss(self) -> float:
        return sum(o.deferred_loss for o in self.outcomes)

    @property
    def lost_loss(self) -> float:
        return sum(o.lost_loss for o in self.outcomes)


@dataclass
class _Piece:
    """Mutable working copy of (part of) a lot."""

    key: tuple[str, str]  # (account_id, lot_id) of the source lot
    lot_id: str
    symbol: str
    group: str
    shares: float
    unit_cost: float
    acquired: date  # tacked acquisition date (holding period)
    purchased: date  # real purchase date (decides the wash window)
    cost0: float  # unit cost paid, before any wash-sale adjustment
    taxable: bool
    used: bool  # already replaced a loss sale; cannot do it twice
    seq: int


@dataclass
class _Portion:
    """Shares one sale takes from one piece."""

    shares: float
    unit_cost: float
    acquired: date
    gain: float
    disallowed: float = 0.0


def apply_wash_sales(
    lots: Sequence[Lot],
    sales: Sequence[Any],
    wash_groups: Mapping[str, str],
    window_days: int = 30,
    registrations: Mapping[str, str] | None = None,
) -> WashSaleResult:
    """Apply the wash-sale rule (Pub 550 "Wash Sales", IRC 1091) to a history of sales.

    ``lots`` are every lot as it stood before the first of ``sales`` plus the lots bought
    later (each with its purchase date, shares bought and unit cost); ``sales`` are
    :class:`LotSale` (or alike), each taking shares of the lot ``(account_id, lot_id)``;
    a sale whose lot is not among ``lots`` is taken as given and cannot be a source of
    replacements. ``wash_groups`` maps symbol -> wash group (missing: its own group);
    ``registrations`` maps account_id -> registration (missing: taxable).

    Sales are processed in date order (ties in input order). For each taxable sale:

    - Its shares come out of its lot first-in first-out by (tacked) acquisition date, so
      the basis and holding period carried in from an earlier wash sale count, and a sale
      can be part gain and part loss. Each loss part is a loss sale.
    - Replacement shares are shares of the same wash group, bought within the window
      around the sale date (both ends included), from a lot other than the one sold, not
      yet used to replace another loss and still held at the end of the sale day (or
      bought later). Shares bought and sold again before the loss sale do not replace it
      (the common reading; the letter of IRC 1091 could also catch them).
    - They are matched earliest purchase first (Treas. Reg. 1.1091-1 matches in order of
      acquisition), each share once, loss sales in chronological order. The loss is
      disallowed in proportion of the shares replaced to the shares sold at a loss.
    - A taxable replacement gets the disallowed loss added to its basis, and its holding
      period includes the sold shares': its acquisition date moves back by the days the
      sold shares were held (sale date minus their acquisition date). Where the purchase
      preceded the sale, days both were held count once: the replacement dates from the
      earlier of the two acquisitions (conservative: some brokers shift it back by the full
      holding period, counting the overlap twice). A lot only partly
      used is split, the replacement shares under the id ``<lot_id>.w<k>``; a lot used
      whole (or the last part of one) keeps its id.
    - A replacement in an IRA or Roth disallows the loss for good: no basis is added and
      its holding period is unchanged (Rev. Rul. 2008-5); ``lost_loss`` reports it.

    Sales in an IRA or Roth only take shares out of their lot. Raises ``ValueError`` if a
    sale takes more shares than its lot holds, or names a lot with another symbol, unit
    cost or acquisition date.
    """
    if window_days < 0:
        raise ValueError("window_days must be >= 0")
    regs = registrations or {}
    span = timedelta(days=window_days)

    def taxable(account_id: str) -> bool:
        return regs.get(account_id, "taxable") not in NON_TAXABLE

    pieces: dict[tuple[str, str], list[_Piece]] = {}
    seq = 0
    for lot in lots:
        key = (lot.account_id, lot.lot_id)
        if key in pieces:
            raise ValueError(f"duplicate lot {lot.lot_id} in account {lot.account_id}")
        pieces[key] = [
            _Piece(
                key=key,
                lot_id=lot.lot_id,
                symbol=lot.symbol,
                group=wash_groups.get(lot.symbol, lot.symbol),
                shares=float(lot.shares),
                unit_cost=float(lot.unit_cost),
                acquired=lot.acquired,
                purchased=lot.acquired,
                cost0=float(lot.unit_cost),
                taxable=taxable(lot.account_id),
                used=False,
                seq=seq,
            )
        ]
        seq += 1
    splits: dict[tuple[str, str], int] = {}
    by_group: dict[str, list[_Piece]] = {}
    for ps in pieces.values():
        by_group.setdefault(ps[0].group, []).append(ps[0])

    order = sorted(range(len(sales)), key=lambda i: (sales[i].sale_date, i))
    portions: dict[int, list[_Portion]] = {}
    lost: dict[int, float] = {}
    matches: list[Replacement] = []

    day_start = 0
    while day_start < len(order):
        day = sales[order[day_start]].sale_date
        day_end = day_start
        while day_end < len(order) and sales[order[day_end]].sale_date == day:
            day_end += 1
        today = order[day_start:day_end]
        # Draw every sale of the day first, so that shares sold that day are not
        # replacement shares for a loss sale of the same day.
        for i in today:
            portions[i] = _draw(sales[i], pieces)
        for i in today:
            s = sales[i]
            account = getattr(s, "account_id", "")
            if not taxable(account):
                continue
            group = wash_groups.get(s.symbol, s.symbol)
            own = (account, s.lot_id)
            lo, hi = day - span, day + span
            for part in portions[i]:
                if not part.gain < 0:
                    continue
                need = part.shares
                held_days = timedelta(days=(day - part.acquired).days)
                candidates = sorted(
                    (
                        p
                        for p in by_group.get(group, ())
                        if p.key != own
                        and not p.used
                        and p.shares > _SHARE_TOL
                        and lo <= p.purchased <= hi
                    ),
                    key=lambda p: (p.purchased, p.seq),
                )
                for cand in candidates:
                    if need <= _SHARE_TOL:
                        break
                    rep = _split(cand, min(need, cand.shares), pieces, splits, seq + 1)
                    if rep is not cand:
                        seq = rep.seq
                        by_group[group].append(rep)
                    r = rep.shares
                    disallowed = -part.gain * (r / part.shares)
                    rep.used = True
                    if rep.taxable:
                        rep.unit_cost += disallowed / r
                        # IRC 1223(3) includes the sold shares' holding period in the
                        # replacement's: days both were held count once (the union of
                        # the two periods), so a purchase before the sale dates from the
                        # earlier of the two acquisitions, one after it moves back by the
                        # days the sold shares were held.
                        rep.acquired = min(
                            rep.acquired, max(part.acquired, rep.acquired - held_days)
                        )
                    else:  # IRA / Roth: the loss is lost, no basis to add it to
                        lost[i] = lost.get(i, 0.0) + disallowed
                    part.disallowed += disallowed
                    need -= r
                    matches.append(
                        Replacement(
                            sale_index=i,
                            account_id=rep.key[0],
                            lot_id=rep.lot_id,
                            symbol=rep.symbol,
                            shares=r,
                            disallowed_loss=disallowed,
                            basis_added=disallowed if rep.taxable else 0.0,
                            acquired=rep.purchased,
                            tacked_acquired=rep.acquired,
                            taxable=rep.taxable,
                        )
                    )
        day_start = day_end

    outcomes = []
    for i, s in enumerate(sales):
        st = lt = allowed = realized = disallowed = 0.0
        for part in portions[i]:
            reported = part.gain + part.disallowed
            realized += part.gain
            disallowed += part.disallowed
            allowed += max(-reported, 0.0)
            if holding_term(part.acquired, s.sale_date) == "LT":
                lt += reported
            else:
                st += reported
        lost_i = lost.get(i, 0.0)
        outcomes.append(
            WashSaleOutcome(
                sale=s,
                realized_gain=realized,
                deferred_loss=disallowed - lost_i,
                lost_loss=lost_i,
                reported_st=st,
                reported_lt=lt,
                allowed_loss=allowed,
                taxable=taxable(getattr(s, "account_id", "")),
            )
        )

    held = [
        Lot(p.key[0], p.lot_id, p.symbol, p.shares, p.unit_cost, p.acquired)
        for ps in pieces.values()
        for p in sorted(ps, key=lambda p: p.seq)
        if p.shares > _SHARE_TOL
    ]
    return WashSaleResult(lots=tuple(held), outcomes=tuple(outcomes), replacements=tuple(matches))


def _draw(sale: Any, pieces: dict[tuple[str, str], list[_Piece]]) -> list[_Portion]:
    """Take the sale's shares out of its lot (FIFO by tacked acquisition date) and return
    the portions sold, each with its basis, holding-period start and gain."""
    key = (getattr(sale, "account_id", ""), sale.lot_id)
    price = float(sale.price)
    if key not in pieces:
        return [_portion(float(sale.shares), float(sale.unit_cost), sale.acquired, price)]
    ps = pieces[key]
    source = min(ps, key=lambda p: p.seq)  # the original piece carries the lot's facts
    if sale.symbol != source.symbol:
        raise ValueError(f"sale of lot {sale.lot_id}: symbol {sale.symbol} != {source.symbol}")
    if sale.acquired != source.purchased or not math.isclose(
        float(sale.unit_cost), source.cost0, rel_tol=1e-9, abs_tol=1e-9
    ):
        raise ValueError(
            f"sale of lot {sale.lot_id}: unit cost / acquisition date differ from the lot's"
        )
    need = float(sale.shares)
    available = sum(p.shares for p in ps)
    if need > available + _SHARE_TOL:
        raise ValueError(
            f"sale of lot {sale.lot_id} on {sale.sale_date}: {need:g} shares sold, "
            f"{available:g} held"
        )
    out = []
    for p in sorted(ps, key=lambda p: (p.acquired, p.seq)):
        if need <= _SHARE_TOL:
            break
        take = min(need, p.shares)
        if take <= 0:
            continue
        p.shares -= take
        need -= take
        out.append(_portion(take, p.unit_cost, p.acquired, price))
    return out


def _split(
    p: _Piece,
    shares: float,
    pieces: dict[tuple[str, str], list[_Piece]],
    splits: dict[tuple[str, str], int],
    seq: int,
) -> _Piece:
    """The piece holding ``shares`` of ``p``: ``p`` itself if (nearly) all of it is needed,
    else a new piece split off it, with id ``<lot_id>.w<k>`` and sequence number ``seq``."""
    if p.shares - shares <= _SHARE_TOL:
        return p
    k = splits[p.key] = splits.get(p.key, 0) + 1
    new = replace(p, lot_id=f"{p.key[1]}.w{k}", shares=shares, seq=seq)
    p.shares -= shares
    pieces[p.key].append(new)
    return new


def _portion(shares: float, unit_cost: float, acquired: date, price: float) -> _Portion:
    return _Portion(shares, unit_cost, acquired, shares * price - shares * unit_cost)
