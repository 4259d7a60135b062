"""Wash sales (IRS Pub. 550 "Wash Sales"; Rev. Rul. 2008-5; Treas. Reg. 1.1091-1): the
look-back blocks the optimiser obeys, and the adjustment of a history of trades.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from planner.domain import FrozenDict, Lot, Trade
from planner.tax.holding import holding_term

NON_TAXABLE: frozenset[str] = frozenset({"ira", "roth"})
"""Registrations whose gains and losses are not taxed."""

_SHARE_TOL = 1e-9  # shares below this are treated as zero (float residue of splits)

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


def lot_purchases(
    lots: Iterable[Lot], trades: Iterable[Trade], as_of: date, window_days: int = 30
) -> list[Trade]:
    """The buys a book's lots show inside the look-back window ``[as_of - window_days,
    as_of]``, as trades, for :func:`wash_sale_blocks`: a lot bought in the window is a
    purchase whether or not the trade history records it. A lot matching a recorded buy
    (same account, symbol, trade date and shares) is that buy, and is left out so that it
    counts once. The price of such a buy is the lot's unit cost."""
    start = as_of - timedelta(days=window_days)
    recorded = {
        (t.account_id, t.symbol, t.trade_date, round(t.shares, 6))
        for t in trades
        if t.side == "buy"
    }
    out = []
    for lot in lots:
        day = lot.bought_on
        if not start <= day <= as_of:
            continue
        if (lot.account_id, lot.symbol, day, round(lot.shares, 6)) in recorded:
            continue
        out.append(Trade(lot.account_id, day, lot.symbol, "buy", lot.shares, lot.unit_cost))
    return out


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
