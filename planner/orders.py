"""From a solved account to the run's rows: orders with their reasons, lot sales with their
realised gains, and a summary row per account; and the sorted frames of a whole run.

Rows are sorted and numbers kept as floats here; :mod:`planner.io.write` fixes their text
format, so the same inputs give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from constraints.base import name_codes
from planner import harvest, returns
from planner.decisions import Decision
from planner.domain import CASH
from planner.positions import lot_arrays
from planner.program.objective import Tax
from planner.reasons import Reasons

ORDER_COLUMNS = (
    "account_id",
    "symbol",
    "side",
    "shares",
    "est_price",
    "est_value",
    "est_cost",
    "reason",
)


LOT_SALE_COLUMNS = (
    "account_id",
    "symbol",
    "lot_id",
    "shares",
    "unit_cost",
    "acquired",
    "term",
    "proceeds",
    "realized_gain",
)


TIMING_COLUMNS = ("solve_ms",)
"""Summary columns that vary between runs of the same inputs (written to timings.csv)."""


FAILED_STATUSES = ("infeasible", "rule_violation", "error")
"""Summary statuses of accounts that needed a plan and got none."""


@dataclass
class AccountOutcome:
    """What happened to one account: its summary row, and its orders and lot sales as
    columns (the output columns but ``account_id``; empty when it trades nothing)."""

    account_id: str
    summary: dict
    orders: dict[str, np.ndarray] = field(default_factory=dict)
    lot_sales: dict[str, np.ndarray] = field(default_factory=dict)

    def bought(self) -> np.ndarray:
        """Symbols bought."""
        if not self.orders:
            return np.zeros(0, dtype=object)
        return self.orders["symbol"][self.orders["side"] == "buy"]

    def sold_at_loss(self) -> np.ndarray:
        """Symbols of lots sold at a loss."""
        if not self.lot_sales:
            return np.zeros(0, dtype=object)
        return self.lot_sales["symbol"][self.lot_sales["realized_gain"] < 0]


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """A chunk's outcomes as columns (name -> array, ``{}`` without rows): compact to send
    back from a worker (plain arrays unpickle in about half the time frames do), and what
    :func:`assemble` stacks into the run's frames."""

    orders: dict[str, np.ndarray]
    lot_sales: dict[str, np.ndarray]
    summaries: list[dict]

    @property
    def accounts(self) -> int:
        return len(self.summaries)


def pack(outcomes: Sequence[AccountOutcome]) -> ChunkResult:
    """One frame per output from a chunk's account outcomes."""
    return ChunkResult(
        _stack(outcomes, "orders", ORDER_COLUMNS),
        _stack(outcomes, "lot_sales", LOT_SALE_COLUMNS),
        [o.summary for o in outcomes],
    )


NUMERIC_COLUMNS = frozenset(
    {"shares", "est_price", "est_value", "est_cost", "unit_cost", "proceeds", "realized_gain"}
)


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=float if c in NUMERIC_COLUMNS else object) for c in columns}
    )


def _stack(outcomes: Sequence[AccountOutcome], kind: str, columns: Sequence[str]) -> dict:
    parts = [(o.account_id, getattr(o, kind)) for o in outcomes if getattr(o, kind)]
    if not parts:
        return {}
    counts = [len(cols[columns[1]]) for _, cols in parts]
    data = {"account_id": np.repeat(np.array([a for a, _ in parts], dtype=object), counts)}
    for c in columns[1:]:
        data[c] = np.concatenate([cols[c] for _, cols in parts])
    return data


@dataclass(frozen=True, eq=False)
class PlanResult:
    """The three outputs of a run as DataFrames, sorted for byte-identical files."""

    orders: pd.DataFrame
    lot_sales: pd.DataFrame
    summary: pd.DataFrame
    returns: pd.DataFrame | None = None  # per tax return (planner.returns.returns_frame)

    def files(self) -> dict[str, pd.DataFrame]:
        """The frames of a run's output files. Every file is byte-identical on re-run but
        ``timings.csv`` (account_id, solver, passes, solve_ms): solve times vary from run
        to run, so they live apart from ``summary.csv``."""
        summary = self.summary.drop(columns=[c for c in TIMING_COLUMNS if c in self.summary])
        timing = ["account_id", "solver", "passes", *TIMING_COLUMNS]
        out = {
            "orders.csv": self.orders,
            "lot_sales.csv": self.lot_sales,
            "summary.csv": summary,
            "timings.csv": self.summary[[c for c in timing if c in self.summary]],
        }
        if self.returns is not None:
            out["returns.csv"] = self.returns
        return out

    def totals(self) -> dict[str, float]:
        s = self.summary
        return {
            "accounts": float(len(s)),
            "planned": float((s["status"] == "optimal").sum()),
            "failed": float(s["status"].isin(FAILED_STATUSES).sum()),
            "orders": float(len(self.orders)),
            "buy_value": float(self.orders.loc[self.orders["side"] == "buy", "est_value"].sum()),
            "sell_value": float(self.orders.loc[self.orders["side"] == "sell", "est_value"].sum()),
            "est_cost": float(s["est_cost"].sum()),
            "est_tax": float(s["est_tax"].sum()),
        }


_TERM_TEXT = np.array(["ST", "LT"], dtype=object)  # by long-term flag


_SIDE_TEXT = np.array(["buy", "sell"], dtype=object)  # by sale flag


def account_outcome(book, account_id, model_name, decision, inputs, risk, report, executable):
    """Rows of orders, lot sales and the summary for one solved account."""
    account = book.accounts[account_id]
    prices = inputs.prices
    n = len(prices)
    lot_price = inputs.lot_price
    value = inputs.value
    sold_shares = np.bincount(inputs.lot_security, weights=executable.sell_shares, minlength=n)
    held_shares = inputs.hold_weight * value / prices
    post_shares = held_shares - sold_shares + executable.buy_shares
    sold_value = sold_shares * prices
    bought_value = executable.buy_shares * prices
    cost = inputs.cost_per_dollar * (sold_value + bought_value)
    post_value = post_shares * prices
    total_after = post_value.sum() + executable.cash_after

    # Lot sales with exact gains: proceeds minus basis, per lot, the way a broker reports.
    sold_slots = np.flatnonzero(executable.sell_shares > 0)
    q = executable.sell_shares[sold_slots]
    proceeds = q * lot_price[sold_slots]
    gains = proceeds - q * inputs.lot_unit_cost[sold_slots]
    long_term = inputs.lot_long_term[sold_slots]
    realized_lt = float(gains[long_term].sum())
    realized_st = float(gains[~long_term].sum())
    lot_rows = {}
    # Rows leave each account in their file order (lot sales by symbol and lot id, orders
    # by side and symbol), so that a run's chunks only need putting in account order.
    symbol_rank = name_codes(tuple(inputs.symbols))[1]
    if len(sold_slots):
        lot_ids = np.array(lot_arrays(book).lot_ids(inputs.lot_rows[sold_slots]), dtype=object)
        order = np.lexsort((lot_ids, symbol_rank[inputs.lot_security[sold_slots]]))
        sold_slots, q, proceeds, gains, long_term, lot_ids = (
            a[order] for a in (sold_slots, q, proceeds, gains, long_term, lot_ids)
        )
        lot_rows = {
            "symbol": np.asarray(inputs.symbols, dtype=object)[inputs.lot_security[sold_slots]],
            "lot_id": lot_ids,
            "shares": q,
            "unit_cost": inputs.lot_unit_cost[sold_slots],
            "acquired": inputs.lot_acquired[sold_slots].astype("datetime64[D]"),
            "term": _TERM_TEXT[long_term.astype(np.intp)],
            "proceeds": proceeds,
            "realized_gain": gains,
        }
    # The increment of the return's year: its year to date and accounts planned before.
    year = inputs.tax_year if account.taxable else None
    added = returns.account_tax(year, realized_st, realized_lt, account.st_rate, account.lt_rate)
    tax_notes = returns.anniversary_notes(
        year,
        realized_st,
        realized_lt,
        account.st_rate,
        account.lt_rate,
        {**lot_rows, "days_to_long_term": inputs.lot_days_to_long_term[sold_slots]}
        if lot_rows
        else {},
    )
    # Loss sales beyond what rebalancing needs, and what they save after the year's netting.
    harvest_by_security, harvest_st, harvest_lt = harvest.harvested(
        inputs, executable.sell_shares * lot_price / value, harvest.rules_of(book, account)
    )
    # The optimiser's tax term for the rounded plan, dollars, beside the exact est_tax.
    model_tax = Tax().value(inputs, risk, executable.sell_shares * lot_price / value, None, None)
    model_tax *= value
    saved = harvest.harvest_value(
        year, realized_st, realized_lt, harvest_st, harvest_lt, account.st_rate, account.lt_rate
    )

    # Orders with a reason each.
    model = book.models[model_name]
    class_names, class_code = name_codes(tuple(inputs.asset_classes))
    pre = np.bincount(class_code, weights=inputs.hold_weight, minlength=len(class_names))
    post = np.bincount(class_code, weights=post_value, minlength=len(class_names)) / total_after
    pre_class = dict(zip(class_names, pre.tolist(), strict=True))
    post_class = dict(zip(class_names, post.tolist(), strict=True))
    why = Reasons(
        inputs,
        decision,
        model,
        executable,
        pre_class,
        post_class,
        account.cash_flow,
        harvested=harvest_by_security,
    )
    traded_value = np.maximum(sold_value + bought_value, 1e-300)
    sold_idx = np.flatnonzero(sold_shares > 0)
    bought_idx = np.flatnonzero(executable.buy_shares > 0)
    orders = {}
    if len(sold_idx) or len(bought_idx):
        idx = np.concatenate([sold_idx, bought_idx])
        is_sell = np.arange(len(idx)) < len(sold_idx)
        order = np.lexsort((symbol_rank[idx], is_sell))  # "buy" before "sell"
        idx, is_sell = idx[order], is_sell[order]
        shares_traded = np.where(is_sell, sold_shares[idx], executable.buy_shares[idx])
        dollars = shares_traded * prices[idx]
        orders = {
            "symbol": np.asarray(inputs.symbols, dtype=object)[idx],
            "side": _SIDE_TEXT[is_sell.astype(np.intp)],
            "shares": shares_traded,
            "est_price": prices[idx],
            "est_value": dollars,
            "est_cost": cost[idx] * dollars / traded_value[idx],
            "reason": why.reasons(idx, is_sell),
        }

    target_weight = inputs.target_weight
    summary = _summary_base(account_id, model_name, decision)
    summary.update(
        {
            "status": "optimal",
            "solver": report.solution.solver,
            "solve_ms": report.solve_ms,
            "passes": report.passes,
            "value": value,
            "te_before": risk.tracking_error(inputs.hold_weight - target_weight),
            "te_after": risk.tracking_error(post_value / total_after - target_weight),
            "turnover": float((sold_value.sum() + bought_value.sum()) / value),
            "est_cost": float(cost.sum()),
            "realized_st": realized_st,
            "realized_lt": realized_lt,
            "est_tax": added.est_tax,
            "model_tax": model_tax,
            "carryforward_added": added.carryforward_added,
            "harvested_loss": float(harvest_by_security.sum()),
            "harvest_value": saved,
            "rounding_residual": executable.rounding_residual,
            "message": "; ".join([*why.notes(report.notes), *tax_notes]),
        }
    )
    for c in sorted(set(pre_class) | {CASH}):
        summary[f"pre_{c}"] = pre_class.get(c, inputs.cash_weight if c == CASH else 0.0)
        summary[f"post_{c}"] = (
            post_class.get(c, 0.0) if c != CASH else executable.cash_after / total_after
        )
    return AccountOutcome(account_id, summary, orders, lot_rows)


def _summary_base(account_id: str, model_name: str, decision: Decision) -> dict:
    return {
        "account_id": account_id,
        "model": model_name,
        "decision": decision.mode,
        "rebalance_to": decision.rebalance_to,
        "reasons": "; ".join(decision.reasons),
    }


def failed_outcome(
    account_id, model_name, decision, status, message, value=float("nan"), solve_ms=0.0
) -> AccountOutcome:
    """The rows of an account that got no plan (``status`` says why, ``message`` how)."""
    summary = _summary_base(account_id, model_name, decision)
    summary.update(
        {
            "status": status,
            "solver": "",
            "solve_ms": solve_ms,
            "passes": 0,
            "value": value,
            "te_before": float("nan"),
            "te_after": float("nan"),
            "turnover": 0.0,
            "est_cost": 0.0,
            "realized_st": 0.0,
            "realized_lt": 0.0,
            "est_tax": 0.0,
            "carryforward_added": 0.0,
            "harvested_loss": 0.0,
            "harvest_value": 0.0,
            "model_tax": 0.0,
            "rounding_residual": 0.0,
            "message": message,
        }
    )
    return AccountOutcome(account_id, summary)


def assemble(chunks: Iterable[ChunkResult | AccountOutcome]) -> PlanResult:
    """Stack chunk results (or account outcomes) into the three sorted DataFrames."""
    chunks = [pack([c]) if isinstance(c, AccountOutcome) else c for c in chunks]
    # Each account's rows come sorted (see account_outcome): in the order of the chunks' accounts
    # the rows are sorted whenever chunks hold runs of account ids (always, but with the
    # household wash-sale scope), and only then is the sort skipped.
    chunks = sorted(chunks, key=lambda c: min((s["account_id"] for s in c.summaries), default=""))

    def stacked(kind: str, columns: Sequence[str], keys: list[str]) -> pd.DataFrame:
        parts = [getattr(c, kind) for c in chunks if getattr(c, kind)]
        if not parts:
            return _empty(columns)
        out = pd.DataFrame(
            {c: np.concatenate([p[c] for p in parts]) for c in columns}, columns=list(columns)
        )
        accounts = out["account_id"].to_numpy()
        if not (accounts[1:] >= accounts[:-1]).all():
            out = out.sort_values(keys, kind="stable", ignore_index=True)
        return out

    orders = stacked("orders", ORDER_COLUMNS, ["account_id", "side", "symbol"])
    lot_sales = stacked("lot_sales", LOT_SALE_COLUMNS, ["account_id", "symbol", "lot_id"])
    summary = pd.DataFrame([row for c in chunks for row in c.summaries])
    if not summary.empty:
        fixed = [c for c in summary.columns if not c.startswith(("pre_", "post_"))]
        weights = sorted(
            (c for c in summary.columns if c.startswith(("pre_", "post_"))),
            key=lambda c: (
                c.split("_", 1)[1] == CASH,
                c.split("_", 1)[1],
                not c.startswith("pre_"),
            ),
        )
        summary = summary[fixed + weights].sort_values("account_id", ignore_index=True)
    return PlanResult(orders, lot_sales, summary)
