"""Domain objects: frozen dataclasses for everything a book holds.

Units, used throughout the planner:
- shares are float share counts (fractional where the account allows it);
- prices and costs are dollars per share; cash, values and gains are dollars;
- weights, bands, rates and targets are fractions (0.05 is 5 percentage points or 5 %);
- dates are ``datetime.date``.

Lots and trades can number in the millions for a large book, so the :class:`Book` keeps them
as pandas DataFrames (columnar, vectorised) and builds :class:`Lot` / :class:`Trade` objects
on demand for one account at a time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CASH = "CASH"
"""Name of the cash asset class; every model has it, with its own target and band."""

Registration = Literal["taxable", "ira", "roth"]
Restriction = Literal["none", "no_buy", "no_sell", "no_trade"]
RebalanceTo = Literal["target", "band_edge", "midpoint"]
Side = Literal["buy", "sell"]
Term = Literal["ST", "LT"]
CalendarFrequency = Literal["monthly", "quarterly", "semiannual", "annual"]
TriggerKind = Literal["calendar", "threshold", "hybrid"]

REGISTRATIONS: tuple[str, ...] = ("taxable", "ira", "roth")
RESTRICTIONS: tuple[str, ...] = ("none", "no_buy", "no_sell", "no_trade")
REBALANCE_TO: tuple[str, ...] = ("target", "band_edge", "midpoint")
CALENDAR_FREQUENCIES: tuple[str, ...] = ("monthly", "quarterly", "semiannual", "annual")
TRIGGER_KINDS: tuple[str, ...] = ("calendar", "threshold", "hybrid")

AS_OF_RANGE: tuple[date, date] = (date(1900, 1, 1), date(2199, 12, 31))
"""The as-of dates a run may have (with room for wash-sale windows and holding periods
inside the dates a book can hold)."""

LOT_COLUMNS: tuple[str, ...] = ("account_id", "lot_id", "symbol", "shares", "unit_cost", "acquired")
LOT_OPTIONAL: tuple[str, ...] = ("purchased",)
TRADE_COLUMNS: tuple[str, ...] = (
    "account_id",
    "trade_date",
    "symbol",
    "side",
    "shares",
    "price",
    "realized_gain",
)


@dataclass(frozen=True)
class Security:
    """A tradable security.

    ``spread_bps`` is the full quoted bid-ask spread in basis points of price (a trade pays
    half of it); ``commission`` is dollars per share traded; ``min_trade_value`` is the
    smallest order worth sending, in dollars (a trade is 0 or at least this). ``adv`` is the
    average daily traded value in dollars and ``volatility`` the annualised volatility (a
    fraction); with both, the optional market-impact term applies.
    """

    symbol: str
    asset_class: str
    price: float
    wash_group: str
    spread_bps: float = 0.0
    commission: float = 0.0
    min_trade_value: float = 0.0
    restricted: Restriction = "none"
    adv: float | None = None
    volatility: float | None = None

    @property
    def cost_per_dollar(self) -> float:
        """Linear trading cost per dollar traded (half-spread plus commission), a fraction."""
        return self.spread_bps / 2.0 / 1e4 + self.commission / self.price

    @property
    def can_buy(self) -> bool:
        return self.restricted not in ("no_buy", "no_trade")

    @property
    def can_sell(self) -> bool:
        return self.restricted not in ("no_sell", "no_trade")


@dataclass(frozen=True)
class Band:
    """Tolerance around a target weight.

    ``abs`` is an absolute half-width in weight (0.05 = +/-5 pp); ``rel`` is a half-width
    relative to the target (0.25 = +/-25 % of the target). With both, ``combine`` picks the
    ``tighter`` (the smaller half-width) or the ``looser`` (the larger); the 5/25 rule is
    ``Band(abs=0.05, rel=0.25, combine="tighter")``. A band with neither never breaches.
    """

    abs: float | None = None
    rel: float | None = None
    combine: Literal["tighter", "looser"] = "tighter"

    def half_width(self, target: float) -> float:
        """Half-width in weight for a class with this ``target`` weight (inf if unbounded)."""
        widths = []
        if self.abs is not None:
            widths.append(self.abs)
        if self.rel is not None:
            widths.append(self.rel * target)
        if not widths:
            return math.inf
        return min(widths) if self.combine == "tighter" else max(widths)

    def bounds(self, target: float) -> tuple[float, float]:
        """(lower, upper) weights of the band around ``target``; the lower is floored at 0."""
        h = self.half_width(target)
        return max(0.0, target - h), target + h

    def describe(self) -> str:
        """Short human form, e.g. ``abs 5 pp`` or ``tighter of abs 5 pp / rel 25%``."""
        parts = []
        if self.abs is not None:
            parts.append(f"abs {self.abs * 100:g} pp")
        if self.rel is not None:
            parts.append(f"rel {self.rel * 100:g}%")
        if not parts:
            return "no band"
        if len(parts) == 1:
            return parts[0]
        return f"{self.combine} of {' / '.join(parts)}"


@dataclass(frozen=True)
class ClassTarget:
    """One asset class of a model: its target weight, how it is implemented, its bands.

    ``securities`` lists the securities that implement the class, the preferred one first
    and the alternates after (e.g. ``("VTI", "ITOT", "SCHB")``); empty for cash.
    ``security_targets`` splits ``target`` among them (by default all of it on the
    preferred security); the values sum to ``target``. ``outer_band`` is the outer tier of
    a tiered policy: breaching it asks for a full rebalance to target.
    """

    asset_class: str
    target: float
    securities: tuple[str, ...]
    security_targets: Mapping[str, float]
    band: Band
    outer_band: Band | None = None


@dataclass(frozen=True)
class TriggerSpec:
    """The trigger policy of a model, as written in ``models.toml``.

    - ``kind``: ``calendar`` (rebalance at each review date), ``threshold`` (rebalance
      whenever a band is breached, any day), ``hybrid`` (look at each review date, rebalance
      only if a band is breached; an outer-band breach fires any day).
    - ``calendar``: review frequency (for calendar and hybrid).
    - ``force_on_calendar``: hybrid only; a review with no breach still rebalances.
    - ``cash_flow_min``: dollars; a pending contribution or withdrawal at least this large
      triggers a cash-flow rebalance (buy-only for a contribution, sell-only for a
      withdrawal). ``None`` disables cash-flow triggers.
    """

    kind: TriggerKind = "threshold"
    calendar: CalendarFrequency | None = None
    force_on_calendar: bool = False
    cash_flow_min: float | None = None


@dataclass(frozen=True)
class Model:
    """A model portfolio.

    ``classes`` holds every asset class of the model, cash included (asset class
    :data:`CASH`, no securities); their targets sum to 1. ``rebalance_to`` is how far a
    partial (inner-band) rebalance goes: to ``target``, to the ``band_edge`` or to the
    ``midpoint`` between band edge and target.
    """

    name: str
    classes: tuple[ClassTarget, ...]
    rebalance_to: RebalanceTo = "target"
    trigger: TriggerSpec = field(default_factory=TriggerSpec)
    description: str = ""

    def class_target(self, asset_class: str) -> ClassTarget:
        for c in self.classes:
            if c.asset_class == asset_class:
                return c
        raise KeyError(f"model {self.name} has no asset class {asset_class!r}")

    @property
    def cash(self) -> ClassTarget:
        return self.class_target(CASH)

    @functools.cached_property
    def class_targets(self) -> Mapping[str, float]:
        """Target weight per asset class, cash included (fractions summing to 1); read-only,
        computed once."""
        return FrozenDict({c.asset_class: c.target for c in self.classes})

    @functools.cached_property
    def security_targets(self) -> Mapping[str, float]:
        """Target weight per security (alternates at 0), cash excluded; read-only, computed
        once."""
        out: dict[str, float] = {}
        for c in self.classes:
            for s in c.securities:
                out[s] = out.get(s, 0.0) + c.security_targets.get(s, 0.0)
        return FrozenDict(out)

    @property
    def securities(self) -> tuple[str, ...]:
        """Every security named by the model, preferred and alternates, in model order."""
        seen: dict[str, None] = {}
        for c in self.classes:
            for s in c.securities:
                seen.setdefault(s, None)
        return tuple(seen)


@dataclass(frozen=True)
class Account:
    """One account.

    ``cash`` is settled cash in dollars; ``cash_flow`` a pending contribution (> 0) or
    withdrawal (< 0) in dollars. ``st_rate`` and ``lt_rate`` are total marginal tax rates on
    short- and long-term gains (fractions). ``gain_budget`` caps net realised gains of a
    plan in dollars; ``st_gain_cap`` caps net short-term gains in dollars (``None``: no cap).
    ``do_not_buy`` / ``do_not_sell`` / ``do_not_trade`` are symbols this account must not
    buy / sell / trade at all (``do_not_trade`` comes last so positional construction keeps
    working).
    ``last_rebalanced`` is the date of the last rebalance (``None``: never);
    ``last_reviewed`` the date of the last calendar review, whether it traded or not (a
    hybrid's quiet review is recorded only here; ``None``: none recorded). Calendar and
    hybrid triggers count reviews from the later of the two
    (see :func:`planner.calendar.review_due`).
    """

    account_id: str
    model: str
    household_id: str
    registration: Registration
    cash: float
    st_rate: float
    lt_rate: float
    gain_budget: float | None = None
    st_gain_cap: float | None = None
    cash_flow: float = 0.0
    fractional_shares: bool = False
    do_not_buy: frozenset[str] = frozenset()
    do_not_sell: frozenset[str] = frozenset()
    last_rebalanced: date | None = None
    last_reviewed: date | None = None
    do_not_trade: frozenset[str] = frozenset()
    tax_return: str | None = None
    harvest: str | None = None

    @property
    def taxable(self) -> bool:
        """Whether gains and losses in this account are taxed (IRA and Roth are not)."""
        return self.registration == "taxable"

    @property
    def return_id(self) -> str | None:
        """The tax return its gains and losses go to: ``tax_return`` if given, else its
        household's (an account without a household is its own); ``None`` for IRA and
        Roth accounts, whose trades are not reported."""
        if not self.taxable:
            return None
        return self.tax_return or self.household_id


DEDUCTION_LIMITS: dict[str, float] = {
    "single": 3000.0,
    "married_joint": 3000.0,
    "married_separate": 1500.0,
    "head_of_household": 3000.0,
}
"""Net capital loss deductible from ordinary income per year by filing status, dollars
(IRC 1211(b))."""


@dataclass(frozen=True)
class TaxReturn:
    """One tax return's year so far, in dollars: net realised short- and long-term gains
    year to date (negative for a net loss), the short- and long-term losses carried in
    from earlier years (positive), and the filing status that sets the deduction limit."""

    return_id: str
    filing_status: str = "single"
    ytd_st_gain: float = 0.0
    ytd_lt_gain: float = 0.0
    carryforward_st: float = 0.0
    carryforward_lt: float = 0.0

    @property
    def deduction_limit(self) -> float:
        """Net capital loss deductible from ordinary income this year, dollars."""
        return DEDUCTION_LIMITS[self.filing_status]


@dataclass(frozen=True)
class Lot:
    """Shares of one security bought on one date at one unit cost, in one account.

    ``acquired`` starts the holding period (for wash-sale replacement shares it is tacked
    onto the sold shares', so it can be earlier than the purchase); ``purchased`` is the
    trade date of the purchase (``None``: the same as ``acquired``), which the wash-sale
    look-back reads."""

    account_id: str
    lot_id: str
    symbol: str
    shares: float
    unit_cost: float
    acquired: date
    purchased: date | None = None

    @property
    def bought_on(self) -> date:
        """The trade date of the purchase."""
        return self.purchased or self.acquired


@dataclass(frozen=True)
class Trade:
    """A past trade, for the wash-sale look-back. ``realized_gain`` in dollars, if known."""

    account_id: str
    trade_date: date
    symbol: str
    side: Side
    shares: float
    price: float
    realized_gain: float | None = None


@dataclass(frozen=True)
class BlotterSettings:
    """The blotter's settings, the ``[blotter]`` table of ``book.toml``.

    Orders: ``order_type`` ``market`` or ``limit`` (at the estimated price plus
    ``limit_tolerance``, a fraction, for buys and minus it for sells); ``time_in_force``
    ``day``, ``gtc``, ``opg`` or ``ioc``.
    Outlier flags (see :mod:`planner.blotter.flags`): ``flag_tax_amount`` dollars and
    ``flag_tax_fraction`` of account value (an account's estimated tax above either);
    ``flag_short_term_gain`` (any net short-term gain in an order); ``flag_turnover``
    (fraction of account value); ``flag_dust_value`` (dollars; orders below it);
    ``flag_cash_above_target`` (post-trade cash more than this fraction of account value
    above the model's cash target; below the cash floor is always flagged);
    ``flag_price_age_days`` (a security's last price in ``prices.csv`` older than this many
    days before the as-of date); ``dividend_reinvest``: symbols whose dividends are
    reinvested (``["*"]``: all), so that a loss sale leaving shares of its wash group
    behind is flagged (the reinvestment would wash the loss).
    Approvals: ``maker_checker`` (the proposer cannot approve); a batch whose estimated
    tax is above ``second_approval_tax`` dollars or whose traded value is above
    ``second_approval_value`` dollars needs two approvers (0: never).
    """

    order_type: Literal["market", "limit"] = "market"
    limit_tolerance: float = 0.005
    time_in_force: Literal["day", "gtc", "opg", "ioc"] = "day"
    flag_tax_amount: float = 5000.0
    flag_tax_fraction: float = 0.01
    flag_short_term_gain: bool = True
    flag_turnover: float = 0.5
    flag_dust_value: float = 100.0
    flag_cash_above_target: float = 0.05
    flag_price_age_days: int = 5
    dividend_reinvest: tuple[str, ...] = ()
    maker_checker: bool = True
    second_approval_tax: float = 25000.0
    second_approval_value: float = 1_000_000.0


@dataclass(frozen=True)
class Settings:
    """Run settings from the optional ``book.toml``.

    - ``as_of``: the default as-of date of a run (``None``: today).
    - ``wash_sale_scope``: ``account`` looks only at the account's own history;
      ``household`` looks at every account of its household, IRA and Roth included.
    - ``loss_benefit``: value (0..1) the optimiser gives a net realised loss beyond what the
      tax year can use (the plan's own gains plus the $3,000 deduction from ordinary
      income): such a loss only carries forward. Losses within that count in full.
    - ``tracking_error_value``: fraction of account value worth paying to remove one
      percentage point of annualised tracking error (sets the tracking-error weight).
    - ``hold_lt_days``: hold gain lots that turn long-term within this many days (0: off).
    - ``wash_window_days``: the wash-sale window on each side of a loss sale (30 by law).
    - ``dust_value``: dollars; no order is smaller than ``max(dust_value,
      min_trade_value)`` but one that closes a whole position.
    - ``harvest``: tax-loss harvesting, ``off``, ``with_rebalance`` (harvests ride along
      with a triggered plan) or ``opportunistic`` (a harvestable loss is a trigger of its
      own); an account's ``harvest`` column overrides it.
    - ``harvest_min_loss`` (dollars) and ``harvest_min_loss_fraction`` (of the position's
      value): a harvest must realise at least both.
    - ``blotter``: the ``[blotter]`` table (:class:`BlotterSettings`).
    """

    as_of: date | None = None
    wash_sale_scope: Literal["account", "household"] = "account"
    loss_benefit: float = 0.5
    tracking_error_value: float = 0.005
    hold_lt_days: int = 30
    wash_window_days: int = 30
    dust_value: float = 100.0
    harvest: Literal["off", "with_rebalance", "opportunistic"] = "with_rebalance"
    harvest_min_loss: float = 500.0
    harvest_min_loss_fraction: float = 0.05
    blotter: BlotterSettings = field(default_factory=BlotterSettings)


HARVEST_MODES = ("off", "with_rebalance", "opportunistic")
"""Values of the ``harvest`` setting and account column."""


class FrozenDict(dict):
    """A read-only dict that pickles (MappingProxyType does not), for shipping books to
    worker processes."""

    def _readonly(self, *args, **kwargs):
        raise TypeError("book mappings are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


def _frozen(mapping: Mapping) -> Mapping:
    return mapping if isinstance(mapping, FrozenDict) else FrozenDict(mapping)


@dataclass(frozen=True, eq=False)
class Book:
    """All inputs of one run.

    ``lots`` has the columns of :data:`LOT_COLUMNS` (``acquired`` as ``datetime64``) and is
    sorted by account, symbol, acquired, lot id; ``trades`` has :data:`TRADE_COLUMNS`
    (``trade_date`` as ``datetime64``, ``realized_gain`` NaN when unknown), sorted by
    account, date, symbol. ``prices`` is the optional daily price history (a
    ``DatetimeIndex`` and one column per symbol).
    """

    securities: Mapping[str, Security]
    models: Mapping[str, Model]
    accounts: Mapping[str, Account]
    lots: pd.DataFrame
    trades: pd.DataFrame
    prices: pd.DataFrame | None = None
    settings: Settings = field(default_factory=Settings)
    source: Path | None = None
    returns: Mapping[str, TaxReturn] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "securities", _frozen(self.securities))
        object.__setattr__(self, "models", _frozen(self.models))
        object.__setattr__(self, "accounts", _frozen(self.accounts))
        object.__setattr__(self, "returns", _frozen(self.returns))
        # Row ranges of each account in the (sorted) lots and trades frames, so that one
        # account's slice costs O(1) instead of a scan.
        object.__setattr__(self, "_lot_rows", _row_ranges(self.lots))
        object.__setattr__(self, "_trade_rows", _row_ranges(self.trades))
        households: dict[str, list[str]] = {}
        for a in self.accounts.values():
            households.setdefault(a.household_id, []).append(a.account_id)
        object.__setattr__(
            self, "_households", {h: tuple(sorted(ids)) for h, ids in households.items()}
        )

    def subset(self, account_ids: Sequence[str]) -> Book:
        """A book with only these accounts and their households (whose trade history the
        wash-sale look-back may need): what a worker needs for a chunk of accounts."""
        keep: set[str] = set()
        for a in account_ids:
            keep.update(self.household(a))
        ids = sorted(keep)
        lots = pd.concat([self.lot_frame(a) for a in ids]) if ids else self.lots.iloc[0:0]
        trades = self.trade_frame(ids)
        return Book(
            securities=self.securities,
            models=self.models,
            accounts={a: self.accounts[a] for a in ids},
            lots=lots.reset_index(drop=True),
            trades=trades.reset_index(drop=True),
            prices=None,
            settings=self.settings,
            source=self.source,
            returns={r: self.returns[r] for r in self._return_ids(ids) if r in self.returns},
        )

    def _return_ids(self, account_ids: Sequence[str]) -> set[str]:
        return {r for a in account_ids if (r := self.accounts[a].return_id) is not None}

    def tax_return(self, account_id: str) -> TaxReturn | None:
        """The tax year so far of the account's return (``None`` for IRA and Roth); a
        return without a row in returns.csv starts the year at zero."""
        return_id = self.accounts[account_id].return_id
        if return_id is None:
            return None
        return self.returns.get(return_id) or TaxReturn(return_id)

    def __getstate__(self):
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
        self.__post_init__()

    @property
    def lot_ranges(self) -> dict[str, tuple[int, int]]:
        """Each account's rows ``(start, stop)`` in the sorted lots frame (accounts with lots)."""
        return dict(self._lot_rows)

    def lot_frame(self, account_id: str) -> pd.DataFrame:
        """The account's lots as a DataFrame slice (possibly empty)."""
        start, stop = self._lot_rows.get(account_id, (0, 0))
        return self.lots.iloc[start:stop]

    def trade_frame(self, account_ids: str | tuple[str, ...] | list[str]) -> pd.DataFrame:
        """Trade history of one or several accounts as a DataFrame (possibly empty)."""
        ids = [account_ids] if isinstance(account_ids, str) else list(account_ids)
        parts = [self.trades.iloc[slice(*self._trade_rows.get(a, (0, 0)))] for a in ids]
        if not parts:
            return self.trades.iloc[0:0]
        return pd.concat(parts) if len(parts) > 1 else parts[0]

    def lots_of(self, account_id: str) -> tuple[Lot, ...]:
        """The account's lots as :class:`Lot` objects."""
        df = self.lot_frame(account_id)
        return tuple(
            Lot(a, lid, s, float(q), float(c), pd.Timestamp(d).date(), pd.Timestamp(b).date())
            for a, lid, s, q, c, d, b in zip(
                df["account_id"],
                df["lot_id"],
                df["symbol"],
                df["shares"],
                df["unit_cost"],
                df["acquired"],
                purchase_dates(df),
                strict=True,
            )
        )

    def trades_of(self, account_ids: str | tuple[str, ...] | list[str]) -> tuple[Trade, ...]:
        """Trade history of one or several accounts as :class:`Trade` objects."""
        ids = [account_ids] if isinstance(account_ids, str) else account_ids
        if not any(a in self._trade_rows for a in ids):
            return ()
        df = self.trade_frame(account_ids)
        return tuple(
            Trade(
                a,
                pd.Timestamp(d).date(),
                s,
                side,
                float(q),
                float(p),
                None if pd.isna(g) else float(g),
            )
            for a, d, s, side, q, p, g in zip(
                df["account_id"],
                df["trade_date"],
                df["symbol"],
                df["side"],
                df["shares"],
                df["price"],
                df["realized_gain"],
                strict=True,
            )
        )

    def holdings(self, account_id: str) -> dict[str, float]:
        """Shares held per symbol (sum over lots), in symbol order."""
        df = self.lot_frame(account_id)
        if df.empty:
            return {}
        sums = df.groupby("symbol", sort=True)["shares"].sum()
        return {str(s): float(q) for s, q in sums.items()}

    def household(self, account_id: str) -> tuple[str, ...]:
        """Ids of every account in the same household (the account itself included), sorted."""
        return self._households[self.accounts[account_id].household_id]

    def wash_scope(self, account_id: str) -> tuple[str, ...]:
        """Accounts whose history counts for this account's wash-sale look-back."""
        if self.settings.wash_sale_scope == "household":
            return self.household(account_id)
        return (account_id,)


def purchase_dates(lots: pd.DataFrame) -> pd.Series:
    """The trade date each lot was bought on: its ``purchased`` column where the frame has
    one, else ``acquired`` (the two differ only for wash-sale replacements)."""
    return lots["purchased"] if "purchased" in lots.columns else lots["acquired"]


def arrow(column: pd.Series) -> pa.Array:
    """A frame's column as one pyarrow array (no copy for pandas' Arrow-backed strings)."""
    values = pa.array(column)
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def runs(values: pa.Array) -> list[tuple[int, int]]:
    """(first row, one past the last) of each run of equal values, in order."""
    n = len(values)
    if n == 0:
        return []
    change = pc.not_equal(values.slice(1), values.slice(0, n - 1))
    starts = np.flatnonzero(np.r_[True, np.asarray(change, dtype=bool)])
    return list(zip(starts.tolist(), [*starts[1:].tolist(), n], strict=True))


def _row_ranges(frame: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Map account_id -> (first row, one past last row) of a frame sorted by account_id."""
    if frame.empty:
        return {}
    ids = arrow(frame["account_id"])
    spans = runs(ids)
    names = ids.take(pa.array([start for start, _ in spans])).to_pylist()
    return {str(a): span for a, span in zip(names, spans, strict=True)}
