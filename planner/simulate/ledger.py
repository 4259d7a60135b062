"""The simulated account's books: lots, cash, the trade history the wash-sale look-back
reads, realised gains, each year's exact netting and carryforward, taxes and costs.

The ledger is the one mutable object of a simulation (it changes every trading day); what
it hands out (books, lots, tax years) are the planner's frozen objects. The tax maths is
:mod:`planner.tax`'s: wash sales by :func:`planner.tax.apply_wash_sales` over the whole
history, netting by :func:`planner.tax.net_capital_gains`.

Units: shares, dollars, dollars per share; dates are ``datetime.date``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from planner import tax
from planner.domain import LOT_COLUMNS, TRADE_COLUMNS, Account, Book, Lot, Security, Settings, Trade

ACCOUNT_ID = "SIM"
"""Id of the simulated account in the books built for the planner."""

_SHARE_TOL = 1e-9
_SPLIT_SUFFIX = re.compile(r"\.w\d+$")


@dataclass(frozen=True)
class YearTax:
    """One tax year's result, dollars: reported (after wash sales) short- and long-term
    gains, the netting's carryforward out and the tax (negative: the deduction's saving)."""

    year: int
    reported_st: float
    reported_lt: float
    carryforward_st: float
    carryforward_lt: float
    tax: float
    disallowed_loss: float


@dataclass
class Ledger:
    """Lots, cash and tax state of one simulated account (mutable: see the module doc).

    ``lots`` maps lot id -> [symbol, shares, unit cost, acquired, purchased] as the
    planner sees them (a wash-sale replacement's basis and holding period adjusted);
    ``original`` keeps each lot as bought, for :func:`planner.tax.apply_wash_sales`.
    """

    taxable: bool
    st_rate: float
    lt_rate: float
    deduction_limit: float = 3000.0
    wash_window_days: int = 30
    wash_groups: dict[str, str] = field(default_factory=dict)
    cash: float = 0.0
    lots: dict[str, list] = field(default_factory=dict)
    original: list[Lot] = field(default_factory=list)
    sales: list[tax.LotSale] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    ytd_st: float = 0.0
    ytd_lt: float = 0.0
    carryforward_st: float = 0.0
    carryforward_lt: float = 0.0
    tax_due: float = 0.0
    costs: float = 0.0
    taxes_paid: float = 0.0
    years: list[YearTax] = field(default_factory=list)
    _next_lot: int = 0
    _by_id: dict[str, Lot] = field(default_factory=dict)

    # -- holdings --------------------------------------------------------------------------

    def add_lot(
        self,
        symbol: str,
        shares: float,
        unit_cost: float,
        acquired: date,
        purchased: date | None = None,
        lot_id: str | None = None,
    ) -> str:
        """Record a lot (a buy, or a lot the account starts with); returns its id."""
        self._next_lot += 1
        lot_id = lot_id or f"L{self._next_lot:06d}"
        bought = purchased or acquired
        self.lots[lot_id] = [symbol, float(shares), float(unit_cost), acquired, bought]
        lot = Lot(ACCOUNT_ID, lot_id, symbol, float(shares), float(unit_cost), acquired, bought)
        self.original.append(lot)
        self._by_id[lot_id] = lot
        return lot_id

    def shares(self, symbols: tuple[str, ...]) -> np.ndarray:
        """Shares held of each of ``symbols``."""
        index = {s: i for i, s in enumerate(symbols)}
        out = np.zeros(len(symbols))
        for symbol, q, *_ in self.lots.values():
            out[index[symbol]] += q
        return out

    def lot_frame(self) -> pd.DataFrame:
        """The lots in a book's layout and order (symbol, acquired, lot id)."""
        rows = sorted(
            ((s, a, lid, q, c, b) for lid, (s, q, c, a, b) in self.lots.items()),
            key=lambda r: (r[0], r[1], r[2]),
        )
        frame = pd.DataFrame(
            {
                "account_id": [ACCOUNT_ID] * len(rows),
                "lot_id": [r[2] for r in rows],
                "symbol": [r[0] for r in rows],
                "shares": np.array([r[3] for r in rows], dtype=float),
                "unit_cost": np.array([r[4] for r in rows], dtype=float),
                "acquired": pd.to_datetime([r[1] for r in rows]).astype("datetime64[ns]"),
                "purchased": pd.to_datetime([r[5] for r in rows]).astype("datetime64[ns]"),
            },
            columns=[*LOT_COLUMNS, "purchased"],
        )
        return frame

    def trade_frame(self, as_of: date) -> pd.DataFrame:
        """The trades of the wash-sale look-back window before ``as_of``, in a book's
        layout."""
        first = as_of - timedelta(days=self.wash_window_days + 1)
        recent = [t for t in self.trades if t.trade_date >= first]
        frame = pd.DataFrame(
            {
                "account_id": [t.account_id for t in recent],
                "trade_date": pd.to_datetime([t.trade_date for t in recent]).astype(
                    "datetime64[ns]"
                ),
                "symbol": [t.symbol for t in recent],
                "side": [t.side for t in recent],
                "shares": np.array([t.shares for t in recent], dtype=float),
                "price": np.array([t.price for t in recent], dtype=float),
                "realized_gain": np.array(
                    [np.nan if t.realized_gain is None else t.realized_gain for t in recent],
                    dtype=float,
                ),
            },
            columns=list(TRADE_COLUMNS),
        )
        return frame.sort_values(["trade_date", "symbol"], kind="stable").reset_index(drop=True)

    def year_so_far(self) -> tax.YearSoFar | None:
        """The tax year so far as the planner sees it (``None`` in an IRA)."""
        if not self.taxable:
            return None
        return tax.YearSoFar(
            self.ytd_st,
            self.ytd_lt,
            self.carryforward_st,
            self.carryforward_lt,
            self.deduction_limit,
        )

    def book(
        self,
        day: date,
        securities: dict[str, Security],
        models: dict,
        account: Account,
        settings: Settings,
    ) -> Book:
        """A book of the account as it stands at the close of ``day`` (before trading)."""
        return Book(
            securities=securities,
            models=models,
            accounts={ACCOUNT_ID: replace(account, cash=self.cash)},
            lots=self.lot_frame(),
            trades=self.trade_frame(day),
            prices=None,
            settings=settings,
        )

    # -- trading ---------------------------------------------------------------------------

    def sell(self, day: date, lot_id: str, shares: float, price: float) -> tuple[float, bool]:
        """Sell ``shares`` of a lot at ``price``; returns (realised gain in dollars as the
        planner sees the lot, whether long-term). Cash is the caller's."""
        symbol, held, cost, acquired, _ = self.lots[lot_id]
        if shares > held + 1e-6:
            raise ValueError(f"lot {lot_id}: selling {shares} shares, {held} held")
        shares = min(shares, held)
        gain = shares * (price - cost)
        long_term = tax.holding_term(acquired, day) == "LT"
        left = held - shares
        if left <= _SHARE_TOL:
            del self.lots[lot_id]
        else:
            self.lots[lot_id][1] = left
        source = self._source(lot_id)
        self.sales.append(
            tax.LotSale(
                symbol,
                source.lot_id,
                shares,
                source.unit_cost,
                source.acquired,
                day,
                price,
                ACCOUNT_ID,
            )
        )
        self.trades.append(Trade(ACCOUNT_ID, day, symbol, "sell", shares, price, gain))
        if self.taxable:
            if long_term:
                self.ytd_lt += gain
            else:
                self.ytd_st += gain
        return gain, long_term

    def buy(self, day: date, symbol: str, shares: float, price: float) -> str:
        """Buy ``shares`` at ``price`` into a new lot (basis: the price; the trading cost
        is booked as a cost, not added to basis). Cash is the caller's."""
        self.trades.append(Trade(ACCOUNT_ID, day, symbol, "buy", shares, price, None))
        return self.add_lot(symbol, shares, price, day)

    def _source(self, lot_id: str) -> Lot:
        """The lot as bought that ``lot_id`` (perhaps a split-off ``<id>.w<k>``) comes
        from."""
        return self._by_id[_SPLIT_SUFFIX.sub("", lot_id)]

    # -- tax years -------------------------------------------------------------------------

    def close_year(self, year: int) -> YearTax:
        """Net the year's gains exactly: wash sales over the whole history
        (:func:`planner.tax.apply_wash_sales`), the year's reported short- and long-term
        gains, then the Schedule D netting with the losses carried in. Sets ``tax_due``
        (added to any still unpaid), the carryforward out, and starts the next year at
        zero. A wash sale found (the planner's look-back blocks them, so only a history
        the planner did not make has one) also adjusts the lots the planner sees."""
        if not self.taxable:
            self.ytd_st = self.ytd_lt = 0.0
            result = YearTax(year, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            self.years.append(result)
            return result
        washed = tax.apply_wash_sales(
            self.original, self.sales, self.wash_groups, self.wash_window_days
        )
        st = lt = disallowed = 0.0
        for outcome in washed.outcomes:
            if outcome.sale.sale_date.year == year:
                st += outcome.reported_st
                lt += outcome.reported_lt
                disallowed += outcome.disallowed_loss
        if washed.replacements:
            self._adopt(washed.lots)
        netting = tax.net_capital_gains(
            st, lt, self.carryforward_st, self.carryforward_lt, self.deduction_limit
        )
        year_tax = tax.capital_gains_tax(
            st,
            lt,
            self.st_rate,
            self.lt_rate,
            self.carryforward_st,
            self.carryforward_lt,
            self.deduction_limit,
        )
        result = YearTax(
            year, st, lt, netting.carryforward_st, netting.carryforward_lt, year_tax, disallowed
        )
        self.years.append(result)
        self.carryforward_st = netting.carryforward_st
        self.carryforward_lt = netting.carryforward_lt
        self.ytd_st = self.ytd_lt = 0.0
        self.tax_due += year_tax
        return result

    def open_year_tax(self) -> float:
        """Tax in dollars the current (unclosed) year's gains would owe if it ended now:
        its exact netting with the carried-in losses (0 in an IRA). Wash sales are the
        planner's view (none: its look-back blocks them)."""
        if not self.taxable:
            return 0.0
        return tax.capital_gains_tax(
            self.ytd_st,
            self.ytd_lt,
            self.st_rate,
            self.lt_rate,
            self.carryforward_st,
            self.carryforward_lt,
            self.deduction_limit,
        )

    def liquidation_tax(self, day: date, prices: dict[str, float]) -> float:
        """Extra tax in dollars, on top of :meth:`open_year_tax`, of selling every lot at
        ``prices`` on ``day`` (the year's exact netting with the sale added)."""
        if not self.taxable or not self.lots:
            return 0.0
        st = lt = 0.0
        for symbol, q, cost, acquired, _ in self.lots.values():
            gain = q * (prices[symbol] - cost)
            if tax.holding_term(acquired, day) == "LT":
                lt += gain
            else:
                st += gain
        year = tax.YearSoFar(
            self.ytd_st,
            self.ytd_lt,
            self.carryforward_st,
            self.carryforward_lt,
            self.deduction_limit,
        )
        return year.increment(st, lt, self.st_rate, self.lt_rate)

    def _adopt(self, adjusted: tuple[Lot, ...]) -> None:
        """Take the wash-sale-adjusted basis and holding periods of the lots still held."""
        by_id = {lot.lot_id: lot for lot in adjusted}
        new: dict[str, list] = {}
        for lot_id, (symbol, q, _, _, bought) in self.lots.items():
            if lot_id in by_id:
                lot = by_id[lot_id]
                new[lot_id] = [symbol, q, lot.unit_cost, lot.acquired, bought]
            else:
                new[lot_id] = self.lots[lot_id]
        for lot in adjusted:
            if lot.lot_id not in self.lots and lot.lot_id not in new:
                base = _SPLIT_SUFFIX.sub("", lot.lot_id)
                bought = self._source(base).bought_on
                new[lot.lot_id] = [lot.symbol, lot.shares, lot.unit_cost, lot.acquired, bought]
                if base in new:  # the split-off shares leave their source lot
                    new[base][1] -= lot.shares
                    if new[base][1] <= _SHARE_TOL:
                        del new[base]
        self.lots = new
