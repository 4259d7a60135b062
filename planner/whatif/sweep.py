"""What-if sweeps for one account: how much tax buys how much drift reduction.

Each scenario is the real planner (:mod:`planner.run`) on the account with one setting
changed from its current one (the *current setting* row is the account as it is):

- ``te_value``: the tracking-error value (fraction of account value worth paying to remove
  one squared percentage point of tracking error): the tax/drift frontier;
- ``tax_rate``: federal brackets (:data:`BRACKETS`: ordinary rate and the long-term rate
  that goes with it), each plus the 3.8% net investment income tax and a state rate
  taxing both terms as ordinary income (rates simply add: no SALT deduction);
- ``gain_budget``: a cap on the plan's net realised gain, dollars;
- ``rebalance_to``: how far the model's bands send a class back: to ``target``, the
  ``band_edge`` or the ``midpoint`` (as a threshold trigger on the model's own bands would
  decide now; with every class inside its band, ``band_edge`` and ``midpoint`` keep them
  there and plan only what the planner finds worth doing inside them, e.g. harvests);
- ``wait``: the same plan N days later (the next NYSE business day on or after), prices
  held: lots may have turned long-term and wash-sale windows closed. A date in the next
  calendar year starts a new tax year: the year to date goes to zero and its net loss
  beyond the deduction carries in.

Every scenario but ``rebalance_to`` plans the decision the account's trigger takes today
(a full rebalance to target if it does not fire, as ``plan --all`` does, or with
``full=True`` always). IRA and Roth accounts pay no tax: the tax-rate, gain-budget and
wait sweeps mean nothing for them and are refused (:data:`TAX_SWEEPS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

import pandas as pd

from planner.calendar import next_business_day_on_or_after
from planner.decisions import AccountState, Decision
from planner.domain import REBALANCE_TO, Book, TaxReturn
from planner.errors import ConfigError
from planner.orders import assemble
from planner.positions import weights_and_values
from planner.run import PlanOptions, decide, prepare, run_chunks
from planner.tax import net_capital_gains
from planner.triggers import Threshold
from planner.whatif.gains import embedded_gains

SWEEPS: tuple[str, ...] = ("te_value", "tax_rate", "gain_budget", "rebalance_to", "wait")
"""The sweeps, in the order of the output rows (after the ``current`` row)."""

TAX_SWEEPS: tuple[str, ...] = ("tax_rate", "gain_budget", "wait")
"""Sweeps that change only what is taxed, and so mean nothing for an IRA or Roth."""

TE_VALUES: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
"""Default tracking-error values (fractions of account value per pp^2)."""

BRACKETS: tuple[tuple[float, float], ...] = ((0.24, 0.15), (0.32, 0.15), (0.35, 0.15), (0.37, 0.20))
"""Federal ordinary (short-term) rate and the long-term rate of the same taxable income
(2026): the 20% long-term rate starts inside the 35% bracket, so 35% is shown with 15%."""

NIIT = 0.038
"""Net investment income tax on both terms (above $200k/$250k of modified AGI)."""

GAIN_BUDGETS: tuple[float, ...] = (0.0, 1000.0, 5000.0, 25000.0)
"""Default gain budgets, dollars of net realised gain per plan."""

WAIT_DAYS: tuple[int, ...] = (0, 7, 30, 90)
"""Default waits, calendar days."""


@dataclass(frozen=True)
class WhatIfOptions:
    """What to sweep and over which values (see the module doc); rates are fractions,
    gain budgets dollars, waits calendar days. ``full`` plans a full rebalance to target
    whatever the trigger asks for (not in the ``rebalance_to`` sweep, which is about
    that). ``te_value`` is the tracking-error value of the current setting, from which
    the other sweeps start (default: the book's)."""

    sweeps: tuple[str, ...] = SWEEPS
    te_values: tuple[float, ...] = TE_VALUES
    brackets: tuple[tuple[float, float], ...] = BRACKETS
    niit: bool = True
    state_rate: float = 0.0
    gain_budgets: tuple[float, ...] = GAIN_BUDGETS
    wait_days: tuple[int, ...] = WAIT_DAYS
    full: bool = False
    te_value: float | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in self.sweeps if s not in SWEEPS]
        if unknown:
            raise ConfigError(f"unknown sweep {unknown[0]!r}: expected any of {', '.join(SWEEPS)}")
        if not self.sweeps:
            raise ConfigError("no sweep chosen")
        te_values = (*self.te_values, *(() if self.te_value is None else (self.te_value,)))
        _check("tracking-error value", te_values, lambda v: 0 < v < math.inf, "a positive fraction")
        _check("state rate", (self.state_rate,), lambda v: 0 <= v < 0.5, "a fraction in [0, 0.5)")
        _check("gain budget", self.gain_budgets, lambda v: v >= 0, "dollars >= 0")
        _check("wait", self.wait_days, lambda v: 0 <= v <= 3660, "days in [0, 3660]")
        extra = (NIIT if self.niit else 0.0) + self.state_rate
        for st, lt in self.brackets:
            _check(
                "bracket rate",
                (st, lt),
                lambda v: 0 <= v < 1 - extra,
                f"a fraction that, with NIIT and the state rate ({extra:g}), stays below 1",
            )


def _check(what: str, values, ok: Callable[[float], bool], expected: str) -> None:
    for v in values:
        if not (v == v and ok(v)):  # v == v: NaN is never allowed
            raise ConfigError(f"{what} {v!r}: expected {expected}")


@dataclass(frozen=True)
class Scenario:
    """One what-if: the setting it changes (``sweep``, ``current`` for none), a short
    label, and the account's settings in it (``gain_budget`` ``None``: no budget;
    ``rebalance_to`` empty: the trigger's own decision)."""

    sweep: str
    label: str
    te_value: float
    st_rate: float
    lt_rate: float
    gain_budget: float | None
    rebalance_to: str
    wait_days: int


@dataclass(frozen=True)
class WhatIf:
    """The result of a sweep: one row per scenario (:data:`COLUMNS`), the current setting
    first, and what the account is."""

    account_id: str
    model: str
    registration: str
    as_of: date
    value: float
    rows: pd.DataFrame


COLUMNS: dict[str, int | None] = {
    "sweep": None,
    "scenario": None,
    "current": None,
    "te_value": 6,
    "st_rate": 4,
    "lt_rate": 4,
    "gain_budget": 2,
    "rebalance_to": None,
    "wait_days": None,
    "as_of": None,
    "tax_year": None,
    "status": None,
    "decision": None,
    "orders": None,
    "turnover": 6,
    "buy_value": 2,
    "sell_value": 2,
    "realized_st": 2,
    "realized_lt": 2,
    "est_tax": 2,
    "est_cost": 2,
    "te_before": 6,
    "te_after": 6,
    "unrealized_st": 2,
    "unrealized_lt": 2,
    "st_gain_lots": None,
    "message": None,
}
"""Columns of ``whatif.csv`` and the decimals of each number column (``None``: text or an
integer). Money in dollars, rates, turnover and tracking errors as fractions."""


def scenarios(book: Book, account_id: str, options: WhatIfOptions) -> list[Scenario]:
    """The scenarios of a sweep, the current setting first, then each sweep in
    :data:`SWEEPS` order with its values ascending. Raises ConfigError for a tax sweep of
    an IRA or Roth account."""
    account = book.accounts[account_id]
    if not account.taxable:
        asked = [s for s in options.sweeps if s in TAX_SWEEPS]
        if asked:
            raise ConfigError(
                f"account {account_id} is {account.registration}: its trades are not taxed, "
                f"so the {', '.join(asked)} sweep(s) mean nothing; sweep "
                "te_value and rebalance_to only"
            )
    base = Scenario(
        "current",
        "current setting",
        options.te_value or book.settings.tracking_error_value,
        account.st_rate,
        account.lt_rate,
        account.gain_budget,
        "",
        0,
    )
    out = [base]
    for sweep in (s for s in SWEEPS if s in options.sweeps):
        if sweep == "te_value":
            out += [
                replace(base, sweep=sweep, label=f"{v:g}", te_value=v)
                for v in sorted(set(options.te_values))
            ]
        elif sweep == "tax_rate":
            extra = (NIIT if options.niit else 0.0) + options.state_rate
            for st, lt in sorted(set(options.brackets)):
                label = f"{st:.0%}/{lt:.0%}" + (" +NIIT" if options.niit else "")
                label += f" +state {options.state_rate * 100:g}%" if options.state_rate else ""
                out.append(
                    replace(base, sweep=sweep, label=label, st_rate=st + extra, lt_rate=lt + extra)
                )
        elif sweep == "gain_budget":
            out += [
                replace(base, sweep=sweep, label=f"${v:,.0f}", gain_budget=v)
                for v in sorted(set(options.gain_budgets))
            ]
        elif sweep == "rebalance_to":
            out += [replace(base, sweep=sweep, label=r, rebalance_to=r) for r in REBALANCE_TO]
        else:
            out += [
                replace(base, sweep=sweep, label=f"{d} days", wait_days=d)
                for d in sorted(set(options.wait_days))
            ]
    return out


def run_whatif(
    book: Book,
    account_id: str,
    options: WhatIfOptions | None = None,
    as_of: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WhatIf:
    """Plan every scenario of :func:`scenarios` for one account; ``progress(done,
    total)`` after each."""
    options = options or WhatIfOptions()
    if account_id not in book.accounts:
        raise ConfigError(f"unknown account {account_id!r}")
    as_of = as_of or book.settings.as_of or date.today()
    # The account's household (its wash-sale look-back) and tax return, with the book's
    # full price history so that the risk model is the one `plan` would use.
    small = replace(book.subset([account_id]), prices=book.prices)
    account = small.accounts[account_id]
    todo = scenarios(small, account_id, options)
    today = decide(small, as_of, [account_id])[account_id]
    _, values = weights_and_values(small)
    specs: dict = {}
    rows = []
    for k, scenario in enumerate(todo, 1):
        rows.append(_run(small, account_id, scenario, today, as_of, options, specs))
        if progress:
            progress(k, len(todo))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return WhatIf(
        account_id,
        account.model,
        account.registration,
        as_of,
        float(values.get(account_id, 0.0)),
        frame,
    )


def _run(
    book: Book,
    account_id: str,
    scenario: Scenario,
    today: Decision,
    as_of: date,
    options: WhatIfOptions,
    specs: dict,
) -> dict:
    """One scenario's row; ``specs`` keeps the run specs (risk model, objective,
    compiled templates) of the scenarios planned so far, which differ only in the
    tracking-error value and whether the plan is forced full."""
    account = book.accounts[account_id]
    changed = replace(
        account,
        st_rate=scenario.st_rate,
        lt_rate=scenario.lt_rate,
        gain_budget=scenario.gain_budget,
    )
    when = as_of
    if scenario.wait_days:
        when = next_business_day_on_or_after(as_of + timedelta(days=scenario.wait_days))
    returns = dict(book.returns)
    tax_return = book.tax_return(account_id)
    if tax_return is not None and when.year > as_of.year:
        returns[tax_return.return_id] = _next_year(tax_return, when.year - as_of.year)
    book = replace(book, accounts={**book.accounts, account_id: changed}, returns=returns)
    decision = today
    if scenario.rebalance_to:
        decision = band_decision(book, account_id, as_of, scenario.rebalance_to)
    force_full = options.full and not scenario.rebalance_to
    key = (scenario.te_value, force_full)
    if key not in specs:
        plan_options = PlanOptions(
            tracking_error_value=scenario.te_value, include_untriggered=True, force_full=force_full
        )
        specs[key] = prepare(book, as_of, [account_id], plan_options, decide_now=False)
    # The scenario's date and decision; the account's rates and gain budget are in `book`.
    spec = replace(specs[key], as_of=when, decisions={account_id: decision})
    result = assemble(run_chunks(book, spec, [account_id], executor="serial"))
    s = result.summary.iloc[0]
    orders = result.orders
    unrealized_st, unrealized_lt, st_lots = embedded_gains(book, account_id, when)
    planned = s["status"] == "optimal"
    nan = float("nan")

    def number(column: str) -> float:
        return float(s[column]) if planned else nan

    return {
        "sweep": scenario.sweep,
        "scenario": scenario.label,
        "current": scenario.sweep == "current",
        "te_value": scenario.te_value,
        "st_rate": scenario.st_rate if account.taxable else 0.0,
        "lt_rate": scenario.lt_rate if account.taxable else 0.0,
        "gain_budget": nan if scenario.gain_budget is None else scenario.gain_budget,
        "rebalance_to": str(s["rebalance_to"]),
        "wait_days": scenario.wait_days,
        "as_of": when.isoformat(),
        "tax_year": when.year,
        "status": str(s["status"]),
        "decision": str(s["decision"]),
        "orders": len(orders),
        "turnover": number("turnover"),
        "buy_value": float(orders.loc[orders["side"] == "buy", "est_value"].sum()),
        "sell_value": float(orders.loc[orders["side"] == "sell", "est_value"].sum()),
        "realized_st": number("realized_st"),
        "realized_lt": number("realized_lt"),
        "est_tax": number("est_tax"),
        "est_cost": number("est_cost"),
        "te_before": float(s["te_before"]),
        "te_after": number("te_after"),
        "unrealized_st": unrealized_st,
        "unrealized_lt": unrealized_lt,
        "st_gain_lots": st_lots,
        "message": "" if pd.isna(s["message"]) else str(s["message"]),
    }


def _next_year(tax_return: TaxReturn, years: int) -> TaxReturn:
    """The return ``years`` calendar years on: nothing realised yet, this year's net loss
    beyond the deduction carried in (carried once per year passed)."""
    st, lt = tax_return.ytd_st_gain, tax_return.ytd_lt_gain
    cf_st, cf_lt = tax_return.carryforward_st, tax_return.carryforward_lt
    for _ in range(years):
        n = net_capital_gains(st, lt, cf_st, cf_lt, tax_return.deduction_limit)
        st, lt, cf_st, cf_lt = 0.0, 0.0, n.carryforward_st, n.carryforward_lt
    return replace(
        tax_return, ytd_st_gain=0.0, ytd_lt_gain=0.0, carryforward_st=cf_st, carryforward_lt=cf_lt
    )


def band_decision(book: Book, account_id: str, as_of: date, rebalance_to: str) -> Decision:
    """The decision of a threshold trigger on the model's own bands with ``rebalance_to``:
    a class outside its inner band goes back to it (``partial``), an outer-band breach or
    ``target`` is a full rebalance; with no class outside its band, a partial decision that
    keeps every class inside it."""
    account = book.accounts[account_id]
    model = replace(book.models[account.model], rebalance_to=rebalance_to)
    weights, values = weights_and_values(book)
    row = weights.loc[account_id].to_dict()
    held = {str(c): float(v) for c, v in row.items() if v == v and (v != 0 or c == "CASH")}
    for c in model.class_targets:
        held.setdefault(c, 0.0)
    state = AccountState(
        as_of,
        held,
        model,
        account.last_rebalanced,
        account.cash_flow,
        float(values[account_id]),
        account.last_reviewed,
    )
    threshold = Threshold.from_model(model)
    decision = threshold.evaluate(state)
    if decision.fire:
        return decision
    drift, name = state.max_drift
    if rebalance_to == "target":
        reason = "what-if: every class inside its band; full rebalance to target"
        return Decision(True, "full", "target", (reason,), max_drift=drift, max_drift_class=name)
    return Decision(
        True,
        "partial",
        rebalance_to,
        (f"what-if: every class inside its band; kept there ({rebalance_to})",),
        threshold.partial_bounds(state, set()),
        max_drift=drift,
        max_drift_class=name,
    )
