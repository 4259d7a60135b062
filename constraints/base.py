"""What every constraint is built from, and the base class.

The rebalance program of one model is compiled once (cvxpy DPP) and re-solved for each
account with new parameter values. So a constraint has two halves:

- :meth:`Constraint.rows` runs once per compiled template and returns cvxpy constraints
  written over the template's variables and named parameters (:class:`Context`);
- :meth:`Constraint.apply` runs once per account (and per heuristic pass) and writes that
  account's values into the parameters it owns, or tightens the shared caps on lot sales and
  buys (``sell_cap``, ``buy_cap``).

Relaxing a constraint (to explain an infeasible account) is simply skipping its ``apply``:
every parameter starts from a slack default. This package knows nothing of books or files;
the planner fills :class:`AccountInputs` and imports these classes.

Units: variables and parameters are fractions of the account's value ``V``.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

BIG = 10.0
"""A bound that never binds, in fractions of account value (10 x the account)."""
TRADE_EPS = 1e-7
"""A trade smaller than this fraction of account value counts as no trade (solver
round-off)."""


@functools.lru_cache(maxsize=256)
def name_codes(names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """The sorted distinct ``names`` and each entry's index into them (read-only). Cached:
    a universe's asset classes and wash groups are the same for every account."""
    distinct = tuple(sorted(set(names)))
    codes = np.searchsorted(np.array(distinct), np.array(names)) if names else np.zeros(0, int)
    codes.setflags(write=False)
    return distinct, codes


@dataclass(eq=False)
class Context:
    """The variables, fixed matrices and named parameters of one compiled template.

    Shapes: ``n`` securities, ``m = n * slots`` lot slots (security ``i`` owns slots
    ``i*slots .. i*slots+slots-1``), ``c`` asset classes (cash excluded).
    """

    n: int
    slots: int
    classes: tuple[str, ...]
    sell: cp.Variable
    buy: cp.Variable
    weights: cp.Variable
    cash: cp.Expression
    lot_to_security: sp.csr_matrix
    security_to_class: sp.csr_matrix
    params: dict[str, cp.Parameter] = field(default_factory=dict)
    defaults: dict[str, np.ndarray] = field(default_factory=dict)
    extra_rows: list = field(default_factory=list)
    """Rows that objective terms need for their own auxiliary variables."""
    dense_risk: bool = True
    """Whether a full-rank risk model may enter as a dense quadratic (fastest for the QP
    solvers); exact mode uses the factor form, which SCIP solves more accurately."""

    @property
    def m(self) -> int:
        return self.n * self.slots

    def param(
        self, name: str, size: int | None, default: float, nonneg: bool = False
    ) -> cp.Parameter:
        """The parameter ``name`` (created on first use) with its slack ``default`` value;
        ``nonneg`` declares its sign (needed where it multiplies a convex expression)."""
        if name not in self.params:
            shape = () if size is None else (size,)
            self.params[name] = cp.Parameter(shape, name=name, nonneg=nonneg)
            self.defaults[name] = np.full(shape, float(default))
        return self.params[name]

    sales: cp.Variable | None = None
    """Fraction of V sold per security: a variable tied to the lot sales by one equality
    row per security, so that rows over whole-account sales (cash, turnover, minimum sale)
    have ``n`` entries rather than ``m``; dense rows over every lot slow the solver's
    factorisation down markedly."""

    @property
    def security_sales(self) -> cp.Expression:
        """Fraction of V sold per security (sum over its lot slots)."""
        return self.sales if self.sales is not None else self.lot_to_security @ self.sell


@dataclass(eq=False)
class AccountInputs:
    """One account's data as arrays over the template's securities and lot slots.

    Security arrays have length ``n``, lot-slot arrays length ``m``; padding slots have
    ``lot_real == False`` and zero shares. Money is in dollars unless the name says
    ``_weight`` or ``_frac`` (fractions of ``value``).
    """

    account_id: str
    value: float
    symbols: tuple[str, ...]
    asset_classes: tuple[str, ...]
    wash_groups: tuple[str, ...]
    prices: np.ndarray
    in_model: np.ndarray
    hold_weight: np.ndarray
    goal_weight: np.ndarray
    cash_weight: float
    cost_per_dollar: np.ndarray
    min_trade_value: np.ndarray
    lot_real: np.ndarray
    lot_security: np.ndarray
    lot_shares: np.ndarray
    lot_unit_cost: np.ndarray
    lot_long_term: np.ndarray
    lot_days_to_long_term: np.ndarray
    lot_rows: np.ndarray  # per slot, the row of its lot in the book's lots (-1: padding)
    taxable: bool
    st_rate: float
    lt_rate: float
    loss_benefit: float
    cash_floor_weight: float
    cash_ceiling_weight: float
    class_lower: np.ndarray
    class_upper: np.ndarray
    restricted_buy: np.ndarray
    restricted_sell: np.ndarray
    do_not_buy: np.ndarray
    do_not_sell: np.ndarray
    wash_buy_blocked: np.ndarray
    wash_loss_sale_blocked: np.ndarray
    cash_flow_mode: str = "none"
    gain_budget: float | None = None
    st_gain_cap: float | None = None
    hold_lt_days: int = 0
    turnover_cap: float | None = None
    weight_lower: float | None = None
    weight_upper: float | None = None
    # Dollars: the rounding makes no order below max(dust_value, min_trade_value) but one
    # that sells a whole position (the search plans with min_trade_value alone).
    dust_value: float = 0.0
    # Heuristic state, written by the solve loop between passes, per security:
    # direction: +1 only buys, -1 only sells, 0 free;
    # wash_direction: +1 its wash group buys (no loss sales), -1 it sells at a loss (no buys);
    # min_trade: +1 buy at least the minimum, -1 sell at least the minimum, 2 no trade, 0 free.
    lot_acquired: np.ndarray | None = None  # datetime64[D] per slot, for reports and relief
    # Market impact per security: cost / V = impact * (traded / V) ** 1.5 (0: none).
    impact: np.ndarray | None = None
    # The account's do-not-trade list per security (None: none): no buys and no sales.
    do_not_trade: np.ndarray | None = None
    # The model's target weight per security (alternates and legacy holdings at 0). None:
    # unknown; readers then fall back to ``goal_weight`` (which, for a partial rebalance,
    # is the goal of this plan rather than the model's target).
    target_weight: np.ndarray | None = None
    direction: np.ndarray | None = None
    wash_direction: np.ndarray | None = None
    min_trade: np.ndarray | None = None
    # The netting regime the tax term is exact in (an index into planner.tax.regimes.REGIMES;
    # None: the convex model of objective.Tax), chosen by the solve loop.
    tax_regime: int | None = None
    # Per lot slot, the most a plan may sell (fraction of V; None: no limit): loss lots of
    # securities the account may not harvest sell at most its excess over goal.
    loss_sale_cap: np.ndarray | None = None
    # The account's tax return this year before its plan (planner.tax.YearSoFar; None: a
    # fresh year with the $3,000 deduction), the context of the tax term.
    tax_year: Any = None

    # The lot fields never change once an account's inputs are built (the solve loop only
    # swaps its search state, see :meth:`with_state`), so the derived lot arrays are
    # computed once per account rather than on every pass.
    @functools.cached_property
    def lot_price(self) -> np.ndarray:
        return self.prices[self.lot_security]

    @functools.cached_property
    def lot_value_weight(self) -> np.ndarray:
        """Market value of each lot slot as a fraction of the account value."""
        return np.where(self.lot_real, self.lot_shares * self.lot_price / self.value, 0.0)

    @functools.cached_property
    def lot_gain_frac(self) -> np.ndarray:
        """Realised gain per dollar of proceeds of each lot slot, ``1 - cost / price``."""
        return np.where(self.lot_real, 1.0 - self.lot_unit_cost / self.lot_price, 0.0)

    @property
    def class_codes(self) -> np.ndarray:
        """Index of each security's asset class among the sorted class names."""
        return name_codes(tuple(self.asset_classes))[1]

    @property
    def group_codes(self) -> np.ndarray:
        """Index of each security's wash group among the sorted group names."""
        return name_codes(tuple(self.wash_groups))[1]

    @functools.cached_property
    def lot_loss(self) -> np.ndarray:
        """Lot slots that would realise a loss if sold now."""
        return self.lot_real & (self.lot_unit_cost > self.lot_price)

    _STATE = frozenset({"direction", "wash_direction", "min_trade", "tax_regime"})

    def with_state(self, **state) -> AccountInputs:
        """A copy with new solve-loop state (``direction``, ``wash_direction``,
        ``min_trade``, ``tax_regime``); everything else, cached lot arrays included, is
        shared. Much cheaper than :func:`dataclasses.replace`, which re-runs ``__init__``
        over every field on each of the loop's candidates."""
        unknown = set(state) - self._STATE
        if unknown:
            raise TypeError(f"not solve-loop state: {sorted(unknown)}")
        out = copy.copy(self)
        out.__dict__.update(state)
        return out

    def money(self, weight: float) -> str:
        return f"${weight * self.value:,.2f}"


class Trades:
    """A plan's trades summed per security and per wash group (fractions of account value),
    computed once and shared by the checks of the non-convex rules."""

    def __init__(self, inputs: AccountInputs, sell: np.ndarray, buy: np.ndarray):
        self.inputs, self.sell, self.buy = inputs, sell, buy
        n = len(inputs.symbols)
        self.sales = np.bincount(inputs.lot_security, weights=sell, minlength=n)
        self.loss_sales = np.bincount(
            inputs.lot_security, weights=np.where(inputs.lot_loss, sell, 0.0), minlength=n
        )

    @functools.cached_property
    def group_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """(buys, loss sales) per wash group (sorted group names)."""
        codes = self.inputs.group_codes
        count = int(codes.max()) + 1 if len(codes) else 0
        buys = np.bincount(codes, weights=self.buy, minlength=count)
        return buys, np.bincount(codes, weights=self.loss_sales, minlength=count)

    @property
    def dollars(self) -> np.ndarray:
        """Dollars traded per security (sales plus buys)."""
        return (self.sales + self.buy) * self.inputs.value


class Constraint:
    """Base class: a named constraint of the rebalance program.

    Subclasses override :meth:`rows` (template-time cvxpy rows) and/or :meth:`apply`
    (per-account values), :meth:`active` (whether it restricts this account at all) and
    :meth:`describe` (the label with this account's numbers, for infeasibility reports).

    A non-convex rule (``nonconvex``) is kept by the search through its ``apply`` handles;
    it also says how a solution breaks it (:meth:`violations`) and how it reads as
    mixed-integer rows (:meth:`mixed_integer_rows`, for exact mode).
    """

    nonconvex = False

    blamable = True
    """Whether an infeasible account may be explained by this constraint; not for those that
    only describe what the account holds (lot bounds, no shorting)."""

    search_state = False
    """True for the constraints that read the solve loop's state (directions, minimum-trade
    choices): the rest give the same values on every pass, so those are computed once per
    account. ``apply`` must assign new arrays, never change the ones in ``values`` in place."""

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        return []

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        return None

    def active(self, inputs: AccountInputs) -> bool:
        return True

    def describe(self, inputs: AccountInputs) -> str:
        return repr(self)

    def violations(self, trades: Trades) -> np.ndarray:
        """Where a solution breaks this rule (per security or wash group); none for a
        convex constraint, which every solver solution obeys."""
        return np.zeros(0, dtype=bool)

    def mixed_integer_rows(self, ctx: Context, switches: Switches) -> list[cp.Constraint]:
        """This rule's rows in the mixed-integer program, over ``switches``' binaries;
        none for a convex constraint (its rows are already in the program)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Switches:
    """The binaries of the mixed-integer program, made when a rule first asks for them,
    with the rows that give them their meaning: per security, whether it may be bought
    (``buy <= cap * is_buy``) and sold (``sales <= held * is_sell``); per wash group,
    whether the group buys (``buy <= cap * group_buys``)."""

    def __init__(self, ctx: Context, inputs: AccountInputs, buy_cap: np.ndarray):
        self.ctx, self.inputs, self.buy_cap = ctx, inputs, buy_cap
        self.rows: list[cp.Constraint] = []
        self._made: dict[str, cp.Variable] = {}

    def _binary(self, name: str, size: int) -> tuple[cp.Variable, bool]:
        new = name not in self._made
        if new:
            self._made[name] = cp.Variable(size, boolean=True, name=name)
        return self._made[name], new

    @property
    def is_buy(self) -> cp.Variable:
        var, new = self._binary("is_buy", self.ctx.n)
        if new:
            self.rows.append(self.ctx.buy <= cp.multiply(self.buy_cap, var))
        return var

    @property
    def is_sell(self) -> cp.Variable:
        var, new = self._binary("is_sell", self.ctx.n)
        if new:
            held = self.inputs.hold_weight
            self.rows.append(self.ctx.security_sales <= cp.multiply(held, var))
        return var

    @functools.cached_property
    def group_members(self) -> np.ndarray:
        """(groups x securities) membership of the wash groups (sorted names)."""
        codes = self.inputs.group_codes
        count = int(codes.max()) + 1 if len(codes) else 0
        return (np.arange(count)[:, None] == codes[None, :]).astype(float)

    @property
    def group_buys(self) -> cp.Variable:
        members = self.group_members
        var, new = self._binary("group_buys", members.shape[0])
        if new:
            self.rows.append(self.ctx.buy <= cp.multiply(self.buy_cap, members.T @ var))
        return var


def cap_sells(values: dict[str, np.ndarray], mask: np.ndarray) -> None:
    """Forbid selling the lot slots in ``mask``."""
    values["sell_cap"] = np.where(mask, 0.0, values["sell_cap"])


def cap_buys(values: dict[str, np.ndarray], mask: np.ndarray) -> None:
    """Forbid buying the securities in ``mask``."""
    values["buy_cap"] = np.where(mask, 0.0, values["buy_cap"])
