"""Rebalance triggers: calendar, threshold (absolute/relative/combined, tiered), hybrid,
cash flow, composing with ``&`` and ``|``.

A policy looks at an :class:`AccountState` and returns a :class:`Decision`: fire or not,
the mode (``full`` > ``partial`` > ``cash_only`` > ``none``), how far a partial rebalance
goes, human reasons, and the class bounds a partial rebalance must reach.

Composition rules:
- ``a | b`` fires if either fires; the stronger mode wins; reasons are joined.
- ``a & b`` fires only if both fire; the mode is the stronger of the two (a calendar part
  says "full", a threshold part may say "partial": the threshold's mode is used when the
  other part is a calendar gate), reasons are joined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from planner.calendar import review_due
from planner.domain import CASH, Band, Model

MODE_RANK = {"none": 0, "cash_only": 1, "partial": 2, "full": 3}


@dataclass(frozen=True)
class Breach:
    """A class outside a band: its weight, target, band edges and which tier."""

    asset_class: str
    weight: float
    target: float
    lower: float
    upper: float
    tier: str
    band_text: str

    def describe(self) -> str:
        if self.weight > self.upper:
            edge, side, op = self.upper, "upper", ">"
        else:
            edge, side, op = self.lower, "lower", "<"
        tier = "" if self.tier == "inner" else "outer "
        return (
            f"{self.asset_class} {self.weight:.1%} {op} {edge:.1%} {tier}{side} band "
            f"({self.band_text})"
        )


@dataclass(frozen=True)
class Decision:
    """Whether and how to rebalance one account now."""

    fire: bool
    mode: str = "none"
    rebalance_to: str = "target"
    reasons: tuple[str, ...] = ()
    class_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    cash_flow_mode: str = "none"
    breaches: tuple[Breach, ...] = ()
    max_drift: float = 0.0
    max_drift_class: str = ""

    def __str__(self) -> str:
        if not self.fire:
            return "no rebalance"
        return f"{self.mode} rebalance to {self.rebalance_to}: " + "; ".join(self.reasons)


NO_DECISION = Decision(False)


@dataclass(frozen=True)
class AccountState:
    """What a policy sees: weights by class (cash under ``CASH``), the model, dates, flow."""

    as_of: date
    weights: Mapping[str, float]
    model: Model
    last_rebalanced: date | None = None
    cash_flow: float = 0.0
    value: float = 0.0


def _drift(state: AccountState) -> tuple[float, str]:
    targets = state.model.class_targets
    best, name = 0.0, ""
    for c in sorted(set(targets) | set(state.weights)):
        d = state.weights.get(c, 0.0) - targets.get(c, 0.0)
        if abs(d) > abs(best) + 1e-15:
            best, name = d, c
    return best, name


def _stronger(a: str, b: str) -> str:
    return a if MODE_RANK[a] >= MODE_RANK[b] else b


class Policy:
    """Base class of trigger policies."""

    def evaluate(self, state: AccountState) -> Decision:
        raise NotImplementedError

    def __and__(self, other: Policy) -> Policy:
        return All(self, other)

    def __or__(self, other: Policy) -> Policy:
        return Any_(self, other)


def _merge(a: Decision, b: Decision, fire: bool, gate: bool) -> Decision:
    mode = _stronger(a.mode, b.mode)
    if gate:  # calendar & threshold: the threshold says how far
        mode = b.mode if a.mode == "full" and b.fire else mode
    bounds = dict(a.class_bounds) | dict(b.class_bounds)
    rebalance_to = b.rebalance_to if mode == b.mode else a.rebalance_to
    if mode == "full":
        bounds, rebalance_to = {}, "target"
    return Decision(
        fire=fire,
        mode=mode if fire else "none",
        rebalance_to=rebalance_to if fire else "target",
        reasons=tuple(dict.fromkeys(a.reasons + b.reasons)),
        class_bounds=bounds if fire and mode == "partial" else {},
        cash_flow_mode=a.cash_flow_mode if a.cash_flow_mode != "none" else b.cash_flow_mode,
        breaches=a.breaches + b.breaches,
        max_drift=a.max_drift if abs(a.max_drift) >= abs(b.max_drift) else b.max_drift,
        max_drift_class=a.max_drift_class
        if abs(a.max_drift) >= abs(b.max_drift)
        else b.max_drift_class,
    )


class All(Policy):
    def __init__(self, first: Policy, second: Policy):
        self.first, self.second = first, second

    def evaluate(self, state: AccountState) -> Decision:
        a, b = self.first.evaluate(state), self.second.evaluate(state)
        gate = isinstance(self.first, Calendar)
        return _merge(a, b, a.fire and b.fire, gate)

    def __repr__(self) -> str:
        return f"({self.first!r} & {self.second!r})"


class Any_(Policy):
    def __init__(self, first: Policy, second: Policy):
        self.first, self.second = first, second

    def evaluate(self, state: AccountState) -> Decision:
        a, b = self.first.evaluate(state), self.second.evaluate(state)
        return _merge(a, b, a.fire or b.fire, False)

    def __repr__(self) -> str:
        return f"({self.first!r} | {self.second!r})"


class Calendar(Policy):
    """Fires when a review date falls after the last rebalance and on or before as-of."""

    def __init__(self, frequency: str):
        self.frequency = frequency

    def evaluate(self, state: AccountState) -> Decision:
        drift, name = _drift(state)
        due = review_due(self.frequency, state.last_rebalanced, state.as_of)
        if due is None:
            return Decision(False, max_drift=drift, max_drift_class=name)
        last = state.last_rebalanced.isoformat() if state.last_rebalanced else "never"
        reason = f"{self.frequency} review due {due.isoformat()} (last rebalanced {last})"
        return Decision(True, "full", "target", (reason,), max_drift=drift, max_drift_class=name)

    def __repr__(self) -> str:
        return f"Calendar({self.frequency!r})"


class Threshold(Policy):
    """Fires when any class (cash included) is outside its band.

    ``bands`` maps a class to its inner band; ``outer`` to its outer band (tier); classes
    held outside the model use ``default``. An inner breach asks for a partial rebalance to
    ``rebalance_to`` (a full one when that is ``target``); an outer breach for a full one.
    """

    def __init__(
        self,
        abs: float | None = None,
        rel: float | None = None,
        combine: str = "tighter",
        overrides: Mapping[str, Band] | None = None,
        outer: Band | None = None,
        rebalance_to: str = "band_edge",
        outer_overrides: Mapping[str, Band | None] | None = None,
    ):
        self.default = Band(abs, rel, combine)
        self.overrides = dict(overrides or {})
        self.outer = outer
        self.outer_overrides = dict(outer_overrides or {})
        self.rebalance_to = rebalance_to

    @classmethod
    def from_model(cls, model: Model) -> Threshold:
        bands = {c.asset_class: c.band for c in model.classes}
        outer = {c.asset_class: c.outer_band for c in model.classes}
        non_cash = [c.band for c in model.classes if c.asset_class != CASH]
        default = non_cash[0] if non_cash else Band(abs=0.05)
        t = cls(default.abs, default.rel, default.combine, bands, None, model.rebalance_to, outer)
        return t

    def band(self, asset_class: str) -> Band:
        return self.overrides.get(asset_class, self.default)

    def outer_band(self, asset_class: str) -> Band | None:
        return self.outer_overrides.get(asset_class, self.outer)

    def evaluate(self, state: AccountState) -> Decision:
        targets = state.model.class_targets
        drift, name = _drift(state)
        breaches = []
        for c in sorted(set(targets) | {k for k, w in state.weights.items() if w}):
            w = state.weights.get(c, 0.0)
            t = targets.get(c, 0.0)
            outer = self.outer_band(c)
            if outer is not None:
                lo, hi = outer.bounds(t)
                if w < lo - 1e-12 or w > hi + 1e-12:
                    breaches.append(Breach(c, w, t, lo, hi, "outer", outer.describe()))
                    continue
            band = self.band(c)
            lo, hi = band.bounds(t)
            if w < lo - 1e-12 or w > hi + 1e-12:
                breaches.append(Breach(c, w, t, lo, hi, "inner", band.describe()))
        if not breaches:
            return Decision(False, max_drift=drift, max_drift_class=name)
        reasons = tuple(b.describe() for b in breaches)
        if any(b.tier == "outer" for b in breaches) or self.rebalance_to == "target":
            return Decision(
                True, "full", "target", reasons, {}, "none", tuple(breaches), drift, name
            )
        bounds = {}
        for c in sorted(set(targets) | {b.asset_class for b in breaches}):
            t = targets.get(c, 0.0)
            h = self.band(c).half_width(t)
            if any(b.asset_class == c for b in breaches):
                h = h if self.rebalance_to == "band_edge" else h / 2
            bounds[c] = (max(0.0, t - h), t + h)
        return Decision(
            True,
            "partial",
            self.rebalance_to,
            reasons,
            bounds,
            "none",
            tuple(breaches),
            drift,
            name,
        )

    def __repr__(self) -> str:
        return f"Threshold({self.default.describe()})"


class CashFlow(Policy):
    """Fires on a pending contribution or withdrawal of at least ``minimum`` dollars."""

    def __init__(self, minimum: float):
        self.minimum = minimum

    def evaluate(self, state: AccountState) -> Decision:
        drift, name = _drift(state)
        flow = state.cash_flow
        if abs(flow) < self.minimum or flow == 0:
            return Decision(False, max_drift=drift, max_drift_class=name)
        kind = "contribution" if flow > 0 else "withdrawal"
        mode = "buy_only" if flow > 0 else "sell_only"
        reason = f"{kind} ${abs(flow):,.0f} >= ${self.minimum:,.0f} cash-flow trigger"
        return Decision(True, "cash_only", "target", (reason,), {}, mode, (), drift, name)

    def __repr__(self) -> str:
        return f"CashFlow({self.minimum:g})"


class Never(Policy):
    def evaluate(self, state: AccountState) -> Decision:
        drift, name = _drift(state)
        return Decision(False, max_drift=drift, max_drift_class=name)


class OuterOnly(Policy):
    """Fires (full) only on an outer-band breach: the any-day alert of a hybrid policy."""

    def __init__(self, threshold: Threshold):
        self.threshold = threshold

    def evaluate(self, state: AccountState) -> Decision:
        d = self.threshold.evaluate(state)
        if d.fire and any(b.tier == "outer" for b in d.breaches):
            return d
        return Decision(False, max_drift=d.max_drift, max_drift_class=d.max_drift_class)


def policy_for(model: Model) -> Policy:
    """The policy a model's ``[trigger]`` table describes."""
    spec = model.trigger
    threshold = Threshold.from_model(model)
    if spec.kind == "calendar":
        policy: Policy = Calendar(spec.calendar)
    elif spec.kind == "threshold":
        policy = threshold
    else:
        gate = Calendar(spec.calendar)
        policy = (gate & threshold) | OuterOnly(threshold)
        if spec.force_on_calendar:
            policy = policy | gate
    if spec.cash_flow_min is not None:
        policy = policy | CashFlow(spec.cash_flow_min)
    return policy


def evaluate(
    model: Model,
    weights: Mapping[str, float],
    as_of: date,
    last_rebalanced: date | None = None,
    cash_flow: float = 0.0,
    value: float = 0.0,
) -> Decision:
    """Decision for one account under its model's policy."""
    state = AccountState(as_of, dict(weights), model, last_rebalanced, cash_flow, value)
    decision = policy_for(model).evaluate(state)
    if decision.fire and decision.mode == "cash_only":
        return decision
    if decision.fire and cash_flow and decision.cash_flow_mode == "none":
        return replace(decision, cash_flow_mode="buy_only" if cash_flow > 0 else "sell_only")
    return decision
