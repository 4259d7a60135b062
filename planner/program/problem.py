"""The rebalance program of one model, compiled once and re-solved per account.

Variables (fractions of the account value ``V``): ``sell`` per lot slot, ``buy`` per security,
and the post-trade security weights ``weights = hold - S sell + buy`` (``S`` sums lot slots
into securities; keeping ``weights`` as a variable keeps the covariance factor from
multiplying ``S`` into a dense block). Post-trade cash is
``cash + flow + sum(sell) - sum(buy) - costs``.

Every account-specific number is a cvxpy Parameter vector, so the problem is DPP: it is
canonicalised once per template and each account only feeds new vectors. The constraints
and objective terms write those vectors (``Template.values``); the solvers of
:mod:`planner.solvers` take them from there (LotQP directly, PIQP and Clarabel through
cvxpy). Lots are padded to a fixed number of slots per security so that all accounts of a
model share one template.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

import constraints as C
from constraints.base import AccountInputs, Constraint, Context
from planner.program.objective import Objective, is_conic
from planner.program.risk import RiskModel


class Values(dict):
    """Parameter values of one solve, by parameter name. ``static_key`` names the account
    inputs and relaxed constraints the values other than the search state's came from: two
    solves with one key differ only in the search-state constraints' values, so a solver
    may keep what it built from the rest."""

    static_key: tuple = ()


class Template:
    """The compiled program for one universe of securities and one lot-slot count."""

    def __init__(
        self,
        symbols: Sequence[str],
        asset_classes: Sequence[str],
        slots: int,
        risk: RiskModel,
        objective: Objective,
        constraints: Sequence[Constraint],
        solvers: Sequence[str] = (),
        dense_risk: bool = True,
    ):
        self.symbols = tuple(symbols)
        self.asset_classes = tuple(asset_classes)
        self.slots = int(slots)
        self.risk = risk.subset(self.symbols)
        self.objective = objective
        self.constraints = tuple(constraints)
        conic = is_conic(objective)
        self.solvers = tuple(solvers)
        """The solvers this template is tried with, in order (empty: the default ones of
        :mod:`planner.solvers`); those that cannot take it are passed over."""
        n = len(self.symbols)
        m = n * self.slots
        classes = tuple(sorted(set(self.asset_classes)))
        lot_to_security = sp.kron(sp.eye(n), np.ones((1, self.slots))).tocsr()
        class_index = {c: k for k, c in enumerate(classes)}
        security_to_class = sp.csr_matrix(
            (np.ones(n), ([class_index[c] for c in self.asset_classes], np.arange(n))),
            shape=(len(classes), n),
        )
        sell = cp.Variable(m, name="sell")
        buy = cp.Variable(n, name="buy")
        weights = cp.Variable(n, name="weights")
        sales = cp.Variable(n, name="sales")
        ctx = Context(
            n=n,
            slots=self.slots,
            classes=classes,
            sell=sell,
            buy=buy,
            weights=weights,
            cash=None,  # set below, once the parameters exist
            lot_to_security=lot_to_security,
            security_to_class=security_to_class,
            sales=sales,
            # Clarabel, for the conic (market impact) programs, is more accurate on the
            # factor form too.
            dense_risk=dense_risk and not conic,
        )
        hold = ctx.param("hold", n, 0.0)
        cash0 = ctx.param("cash0", None, 0.0)
        cost = ctx.param("cost_per_dollar", n, 0.0)
        ctx.cash = cash0 + cp.sum(sales) - cp.sum(buy) - cost @ (sales + buy)
        rows = [sales == lot_to_security @ sell, weights == hold - sales + buy]
        self.labels: list[tuple[Constraint, int]] = []
        for c in self.constraints:
            cons = c.rows(ctx)
            rows.extend(cons)
            self.labels.append((c, len(cons)))
        goal = objective.expr(ctx, self.risk)
        rows.extend(ctx.extra_rows)
        self.problem = cp.Problem(cp.Minimize(goal), rows)
        self._search_constraints = tuple(c for c in self.constraints if c.search_state)
        self._base_key = None
        self._base_version = 0
        self.ctx = ctx
        self.n, self.m = n, m

    @property
    def classes(self) -> tuple[str, ...]:
        return self.ctx.classes

    def values(self, inputs: AccountInputs, skip: Iterable[Constraint] = ()) -> Values:
        """Parameter values for ``inputs``: slack defaults (padding lot slots capped at 0,
        whatever is relaxed), then every constraint not in ``skip`` and every objective
        term writes its own.

        The part that does not depend on the solve loop's state is kept for the last
        account seen (its ``static_key`` tells solvers so), and each further pass only
        re-applies the search-state constraints.
        """
        skip = frozenset(skip)
        # The harvest caps are a per-account input that a re-plan tightens (planner.harvest).
        caps = inputs.loss_sale_cap
        key = (inputs.account_id, id(inputs.lot_shares), id(inputs.hold_weight), id(caps), skip)
        if self._base_key != key:
            base = {k: v.copy() for k, v in self.ctx.defaults.items()}
            # A padding slot holds nothing: no relaxation may sell it.
            base["sell_cap"] = np.where(inputs.lot_real, base["sell_cap"], 0.0)
            base["hold"] = inputs.hold_weight
            base["cash0"] = np.asarray(inputs.cash_weight)
            base["cost_per_dollar"] = inputs.cost_per_dollar
            for c in self.constraints:
                if c not in skip and not c.search_state:
                    c.apply(inputs, base)
            self.objective.apply(inputs, base, self.risk)
            # The key holds array ids: keep the arrays alive so the ids are not reused.
            self._base_key, self._base, self._base_arrays = (
                key,
                base,
                (inputs.lot_shares, inputs.hold_weight, caps),
            )
            self._base_version += 1
        values = Values(self._base)
        # The tax regime changes the tax term's own values: a solver keeps what it built
        # per regime.
        values.static_key = (id(self), self._base_version, inputs.tax_regime)
        for c in self._search_constraints:
            if c not in skip:
                c.apply(inputs, values)
        self.objective.apply_state(inputs, values)
        return values

    def sellable(self, inputs: AccountInputs) -> np.ndarray:
        """Lot slots the account's rules let it sell at all (held, not restricted, not
        wash-blocked, not held for long-term treatment); the solve loop's own search state
        (directions, minimum-trade choices) is left out."""
        rules = inputs.with_state(direction=None, wash_direction=None, min_trade=None)
        return inputs.lot_real & (self.values(rules)["sell_cap"] > 0)


def constraints_for(
    *,
    min_trade: bool,
    hold_lt_days: int = 0,
    gain_budget: bool = True,
    st_gain_cap: bool = True,
    turnover_cap: float | None = None,
    min_weight: float | None = None,
    max_weight: float | None = None,
) -> list[Constraint]:
    """The constraint list of a template, in label order. ``min_trade``: whether any
    security of the universe has a minimum trade size; ``hold_lt_days``: the book's
    hold-near-long-term window; ``turnover_cap``, ``min_weight``, ``max_weight``: fractions
    of account value (``None``: none).

    The gain-budget and short-term-cap rows run over every lot slot, and such dense rows
    slow the solver's factorisation down: a template carries them only for accounts that
    have the limit (``gain_budget``, ``st_gain_cap``).
    """
    out: list[Constraint] = [
        C.NoShorting(),
        C.LotBounds(),
        C.HarvestLimit(),
        C.CashFloor(),
        C.ClassBands(),
        C.Restricted(),
        C.DoNotBuy(),
        C.DoNotSell(),
        C.DoNotTrade(),
        C.LegacyHoldings(),
        C.CashFlowMode(),
        C.WashSaleLookback(),
        C.WashSaleOneDirection(),
        C.TradeDirection(),
    ]
    if gain_budget:
        out.append(C.GainBudget())
    if st_gain_cap:
        out.append(C.ShortTermGainCap())
    if hold_lt_days > 0:
        out.append(C.HoldNearLongTerm(hold_lt_days))
    if turnover_cap is not None:
        out.append(C.TurnoverCap(turnover_cap))
    if max_weight is not None or min_weight is not None:
        out.append(C.WeightLimits(min_weight, max_weight))
    if min_trade:
        out.append(C.MinimumTrade())
    out.append(C.WholeShares())
    return out
