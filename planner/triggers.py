"""Rebalance triggers: calendar, threshold (absolute / relative / combined, tiered), hybrid and
cash flow, as small policies that compose with ``&`` and ``|``.

A policy looks at an :class:`~planner.decisions.AccountState` (class weights, model, dates,
pending flow) and returns a :class:`~planner.decisions.Decision`: whether to rebalance now,
the mode, how far a partial rebalance goes, human-readable reasons and, for a partial
rebalance, the post-trade weight interval of every asset class. Weights, bands and drifts
are fractions; money is dollars.

Policies
--------
- :class:`Calendar` fires when a review is due: a review date ``r`` (first NYSE business
  day on or after the 1st of a period, see :mod:`planner.calendar`) with
  ``last_reviewed < r <= as_of``, where ``last_reviewed`` is the later of the account's
  last rebalance and its last recorded review (a hybrid's quiet review trades nothing, so
  only ``last_reviewed`` remembers it). A review missed since then stays due until the
  account is reviewed. An account with neither date is due only when ``as_of`` is itself a
  review date (:func:`planner.calendar.review_due`). Mode ``full``, to ``target``.
- :class:`Threshold` fires when any class is outside its band: every class of the model, cash
  included, and every class held outside the model (a *legacy* holding, target 0). A weight
  exactly on a band edge is inside (tolerance :data:`EDGE_TOL`). Only inner bands breached:
  mode ``partial`` towards ``rebalance_to`` (``full`` when that is ``target``); any outer band
  breached: ``full`` to ``target``.
- :class:`OuterOnly` fires (``full``) only on an outer-band breach: a hybrid's any-day alarm.
- :class:`CashFlow` fires on a pending contribution or withdrawal of at least ``min_dollars``:
  mode ``cash_only``, ``buy_only`` for a contribution, ``sell_only`` for a withdrawal.

Partial bounds
--------------
With ``h`` a class's inner half-width, a breaching class must end inside
``[target - h', target + h']`` where ``h' = h`` (``band_edge``), ``h / 2`` (``midpoint``) or
0 (``target``); every other class must stay inside its inner band ``[target - h, target + h]``.
Intervals are clipped to [0, 1]. Full and cash-only decisions carry no bounds.

Composition (modes rank ``full > partial > cash_only > none``)
---------------------------------------------------------------
- ``a | b`` fires if either fires; the mode is the strongest of the parts that fire.
- ``a & b`` fires only if both fire; the mode is the weakest of the two: each part consents
  to at most its own mode. ``Calendar & Threshold`` therefore takes the threshold's mode
  (partial or full), ``Threshold & CashFlow`` trades the flow only.
- In both, the reasons are those of the parts that fire, in order, without duplicates. A
  partial result intersects the bounds of its partial parts (each interval holds the target,
  so the intersection is never empty) and goes as far as the deepest of them
  (``target`` > ``midpoint`` > ``band_edge``). ``cash_flow_mode`` comes from a cash-flow part
  that fired, even when a full or partial mode wins (the flow's direction is still reported).
- A decision that does not fire has mode ``none``, no reasons and no bounds, but keeps every
  breach its parts saw (a hybrid off its review date sees a breach and waits). The model's
  policy (:func:`policy_for`) then says why it does not fire, in one line named by the
  trigger kind (:func:`quiet_reasons`): ``hybrid: next quarterly review 2027-01-04 (last
  reviewed 2026-10-01), no band breached (closest to an edge: US_EQUITY 37.2% in
  31.0%-41.0%)``.

Model policies (:func:`policy_for`)
-----------------------------------
- ``calendar``: ``Calendar(freq)``.
- ``threshold``: ``Threshold.from_model(model)``.
- ``hybrid``: ``(Calendar(freq) & Threshold) | OuterOnly(Threshold)``: fires when a review
  is due and a band is breached, and any day on an outer breach. Between reviews an inner
  breach waits for the next review date (once the last review is recorded in
  ``last_reviewed`` or ``last_rebalanced``). With ``force_on_calendar`` the calendar
  also fires alone, so every review is a full rebalance to target, breach or not (a forced
  review that traded *less* for a *larger* drift would be perverse).
- ``cash_flow_min`` set: ``... | CashFlow(cash_flow_min)``.

Legacy holdings: a class held outside the model has target 0 and the band
``Band(abs=a)`` with ``a`` the smallest absolute half-width of the model's non-cash classes
(normally the model's default ``abs``); a relative band means nothing around a zero target.
A model without absolute bands falls back to the narrowest of its classes' half-widths. The
legacy class has no outer tier.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

from planner.calendar import FREQUENCY_MONTHS, review_dates, review_due
from planner.decisions import MODE_RANK, AccountState, Breach, Decision, Mode
from planner.domain import CASH, REBALANCE_TO, Account, Band, Model, RebalanceTo

KEEP_OF_BAND: dict[str, float] = {"band_edge": 1.0, "midpoint": 0.5, "target": 0.0}
"""Fraction of the inner half-width a breaching class may keep after a partial rebalance."""

EDGE_TOL = 1e-9
"""Weights within this of a band edge count as inside (sums of fractions are inexact)."""


def _quiet(state: AccountState, breaches: Iterable[Breach] = ()) -> Decision:
    """A decision that does not fire (keeping any breach seen)."""
    drift, name = state.max_drift
    return Decision(False, breaches=_unique(breaches), max_drift=drift, max_drift_class=name)


def _unique(items: Iterable) -> tuple:
    return tuple(dict.fromkeys(items))


# -- policies ------------------------------------------------------------------------------


class Policy:
    """A trigger policy; combine with ``&`` (all must fire) and ``|`` (any fires)."""

    def evaluate(self, state: AccountState) -> Decision:
        raise NotImplementedError

    def __and__(self, other: Policy) -> Policy:
        if not isinstance(other, Policy):
            return NotImplemented
        return AllOf(self, other)

    def __or__(self, other: Policy) -> Policy:
        if not isinstance(other, Policy):
            return NotImplemented
        return AnyOf(self, other)


def _intersect(
    bounds: Sequence[Mapping[str, tuple[float, float]]],
) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for b in bounds:
        for c, (lo, hi) in b.items():
            if c in out:
                lo, hi = max(lo, out[c][0]), min(hi, out[c][1])
            out[c] = (lo, hi)
    return out


def _merge(
    state: AccountState, firing: Sequence[Decision], mode: Mode, seen: Sequence[Decision]
) -> Decision:
    """One fired decision of mode ``mode`` from the parts that fired (see the module doc)."""
    partial = [d for d in firing if d.mode == "partial"]
    if mode == "partial":
        bounds = _intersect([d.class_bounds for d in partial])
        rebalance_to = min((d.rebalance_to for d in partial), key=KEEP_OF_BAND.__getitem__)
    else:
        bounds, rebalance_to = {}, "target"
    flow = [d.cash_flow_mode for d in firing if d.cash_flow_mode != "none"]
    drift, name = state.max_drift
    return Decision(
        True,
        mode,
        rebalance_to,
        _unique(r for d in firing for r in d.reasons),
        bounds,
        flow[0] if flow else "none",
        _unique(b for d in seen for b in d.breaches),
        drift,
        name,
    )


class _Compound(Policy):
    symbol = "?"

    def __init__(self, *parts: Policy):
        if len(parts) < 2:
            raise ValueError("a compound policy needs at least two parts")
        flat: list[Policy] = []
        for p in parts:
            # (a & b) & c is a & b & c: flatten so that reasons keep a simple order.
            flat.extend(p.parts if type(p) is type(self) else (p,))
        self.parts: tuple[Policy, ...] = tuple(flat)

    def __repr__(self) -> str:
        return "(" + f" {self.symbol} ".join(repr(p) for p in self.parts) + ")"


class AllOf(_Compound):
    """Fires only if every part fires; the weakest of their modes (``a & b``)."""

    symbol = "&"

    def evaluate(self, state: AccountState) -> Decision:
        ds = [p.evaluate(state) for p in self.parts]
        if not all(d.fire for d in ds):
            return _quiet(state, (b for d in ds for b in d.breaches))
        mode = min((d.mode for d in ds), key=MODE_RANK.__getitem__)
        return _merge(state, ds, mode, ds)


class AnyOf(_Compound):
    """Fires if any part fires; the strongest mode of those that fire (``a | b``)."""

    symbol = "|"

    def evaluate(self, state: AccountState) -> Decision:
        ds = [p.evaluate(state) for p in self.parts]
        firing = [d for d in ds if d.fire]
        if not firing:
            return _quiet(state, (b for d in ds for b in d.breaches))
        mode = max((d.mode for d in firing), key=MODE_RANK.__getitem__)
        return _merge(state, firing, mode, ds)


class Calendar(Policy):
    """Fires (full, to target) when a review is due: a review date in
    ``(reviewed_through, as_of]``, or ``as_of`` itself is a review date for an account with
    no history (:attr:`AccountState.reviewed_through`, :func:`planner.calendar.review_due`).

    ``frequency``: ``monthly``, ``quarterly``, ``semiannual`` or ``annual``.
    """

    def __init__(self, frequency: str):
        if frequency not in FREQUENCY_MONTHS:
            raise ValueError(
                f"unknown calendar frequency {frequency!r}; "
                f"expected one of {', '.join(FREQUENCY_MONTHS)}"
            )
        self.frequency = frequency

    def evaluate(self, state: AccountState) -> Decision:
        due = review_due(self.frequency, state.reviewed_through, state.as_of)
        if due is None:
            return _quiet(state)
        drift, name = state.max_drift
        reason = f"{self.frequency} review due {due.isoformat()} ({state.history_text()})"
        return Decision(True, "full", "target", (reason,), max_drift=drift, max_drift_class=name)

    def __repr__(self) -> str:
        return f"Calendar({self.frequency!r})"


class Threshold(Policy):
    """Fires when any class is outside its band (see the module doc for tiers and bounds).

    ``abs`` / ``rel`` / ``combine`` make the default inner band (a :class:`Band`: ``abs`` in
    weight, ``rel`` as a fraction of target). ``overrides`` gives per-class inner bands,
    ``outer`` the default outer band (``None``: no outer tier) and ``outer_overrides``
    per-class outer bands (``None`` values switch the tier off for that class). ``legacy``
    is the inner band of classes held outside the model (default: the default band).
    ``rebalance_to`` is how far an inner breach goes (``target`` makes it a full rebalance).
    """

    def __init__(
        self,
        abs: float | None = None,
        rel: float | None = None,
        combine: Literal["tighter", "looser"] = "tighter",
        *,
        overrides: Mapping[str, Band] | None = None,
        outer: Band | None = None,
        outer_overrides: Mapping[str, Band | None] | None = None,
        legacy: Band | None = None,
        rebalance_to: RebalanceTo = "target",
    ):
        if rebalance_to not in REBALANCE_TO:
            raise ValueError(f"unknown rebalance_to {rebalance_to!r}")
        if combine not in ("tighter", "looser"):
            raise ValueError(f"unknown combine {combine!r}")
        self.default = Band(abs, rel, combine)
        self.overrides = dict(overrides or {})
        self.outer = outer
        self.outer_overrides = dict(outer_overrides or {})
        self.legacy = legacy
        self.rebalance_to = rebalance_to
        self._label = f"Threshold({self.default.describe()})"
        self._limits: dict[tuple, tuple] = {}

    @classmethod
    def from_model(cls, model: Model) -> Threshold:
        """The model's own bands: each class's inner and outer band, cash included, the
        legacy band of :func:`legacy_band`, and the model's ``rebalance_to``."""
        t = cls(
            overrides={c.asset_class: c.band for c in model.classes},
            outer_overrides={c.asset_class: c.outer_band for c in model.classes},
            legacy=legacy_band(model),
            rebalance_to=model.rebalance_to,
        )
        t._label = f"Threshold.from_model({model.name!r})"
        return t

    def band(self, asset_class: str, in_model: bool = True) -> Band:
        """Inner band of a class (a legacy one when ``in_model`` is false)."""
        if asset_class in self.overrides:
            return self.overrides[asset_class]
        if not in_model and self.legacy is not None:
            return self.legacy
        return self.default

    def outer_band(self, asset_class: str) -> Band | None:
        """Outer band of a class, or ``None`` when it has no outer tier."""
        return self.outer_overrides.get(asset_class, self.outer)

    def breaches(self, state: AccountState) -> list[Breach]:
        """Every class outside a band; an outer breach hides the (implied) inner one."""
        out = []
        for c in state.classes:
            in_model = c in state.targets
            t = state.target(c)
            w = state.weight(c)
            for limit in self._class_limits(c, in_model, t):
                lo, hi, tier, text = limit
                if not lo - EDGE_TOL <= w <= hi + EDGE_TOL:
                    out.append(Breach(c, w, t, lo, hi, tier, text))
                    break
        return out

    def _class_limits(self, asset_class: str, in_model: bool, target: float) -> tuple:
        """The (lower, upper, tier, text) of a class's outer band, then of its inner band,
        leaving out a band that never breaches. The same for every account of a model, so
        computed once per class."""
        key = (asset_class, in_model, target)
        if key not in self._limits:
            outer = self.outer_band(asset_class)
            bands = (() if outer is None else ((outer, "outer"),)) + (
                (self.band(asset_class, in_model), "inner"),
            )
            limits = []
            for band, tier in bands:
                if math.isinf(band.half_width(target)):
                    continue  # a band with neither abs nor rel never breaches
                text = band.describe() if in_model else f"{band.describe()}, not in model"
                limits.append((*band.bounds(target), tier, text))
            self._limits[key] = tuple(limits)
        return self._limits[key]

    def evaluate(self, state: AccountState) -> Decision:
        breaches = self.breaches(state)
        if not breaches:
            return _quiet(state)
        drift, name = state.max_drift
        reasons = tuple(b.describe() for b in breaches)
        if self.rebalance_to == "target" or any(b.tier == "outer" for b in breaches):
            return Decision(True, "full", "target", reasons, {}, "none", breaches, drift, name)
        return Decision(
            True,
            "partial",
            self.rebalance_to,
            reasons,
            self.partial_bounds(state, {b.asset_class for b in breaches}),
            "none",
            breaches,
            drift,
            name,
        )

    def partial_bounds(
        self, state: AccountState, breached: set[str]
    ) -> dict[str, tuple[float, float]]:
        """Post-trade interval of every class for a partial rebalance (module doc)."""
        keep = KEEP_OF_BAND[self.rebalance_to]
        bounds = {}
        for c in state.classes:
            t = state.target(c)
            h = self.band(c, c in state.targets).half_width(t)
            if c in breached:
                h *= keep
            bounds[c] = (max(0.0, t - h), min(1.0, t + h))
        return bounds

    def __repr__(self) -> str:
        return self._label


def legacy_band(model: Model) -> Band:
    """Inner band of a class held outside ``model`` (target 0): see the module doc."""
    own = [c for c in model.classes if c.asset_class != CASH]
    absolute = [c.band.abs for c in own if c.band.abs is not None]
    if absolute:
        return Band(abs=min(absolute))
    widths = [c.band.half_width(c.target) for c in own if c.target > 0]
    finite = [w for w in widths if math.isfinite(w)]
    return Band(abs=min(finite)) if finite else Band()


class OuterOnly(Policy):
    """Fires (full, to target) only when ``threshold`` sees an outer-band breach."""

    def __init__(self, threshold: Threshold):
        self.threshold = threshold

    def evaluate(self, state: AccountState) -> Decision:
        d = self.threshold.evaluate(state)
        if d.fire and any(b.tier == "outer" for b in d.breaches):
            return d
        return _quiet(state, d.breaches)

    def __repr__(self) -> str:
        return f"OuterOnly({self.threshold!r})"


class CashFlow(Policy):
    """Fires (cash only) on a pending flow of at least ``min_dollars`` either way:
    ``buy_only`` for a contribution, ``sell_only`` for a withdrawal."""

    def __init__(self, min_dollars: float):
        if not min_dollars >= 0:
            raise ValueError(f"cash-flow minimum must be >= 0 dollars, got {min_dollars!r}")
        self.min_dollars = float(min_dollars)

    def evaluate(self, state: AccountState) -> Decision:
        flow = state.cash_flow
        if flow == 0 or abs(flow) < self.min_dollars:
            return _quiet(state)
        kind, mode = ("contribution", "buy_only") if flow > 0 else ("withdrawal", "sell_only")
        reason = f"{kind} ${abs(flow):,.0f} >= ${self.min_dollars:,.0f} cash-flow trigger"
        drift, name = state.max_drift
        return Decision(True, "cash_only", "target", (reason,), {}, mode, (), drift, name)

    def __repr__(self) -> str:
        return f"CashFlow({self.min_dollars:g})"


class Explained(Policy):
    """A model's policy whose decisions that do not fire say why not (:func:`quiet_reasons`);
    it reads and composes as the policy it wraps."""

    def __init__(self, policy: Policy, model: Model):
        self.policy = policy
        self.model = model
        self.threshold = Threshold.from_model(model)

    def evaluate(self, state: AccountState) -> Decision:
        d = self.policy.evaluate(state)
        if d.fire:
            return d
        return replace(d, reasons=quiet_reasons(self.model, self.threshold, state, d))

    def __repr__(self) -> str:
        return repr(self.policy)


def quiet_reasons(
    model: Model, threshold: Threshold, state: AccountState, decision: Decision
) -> tuple[str, ...]:
    """Why the model's trigger does not fire for ``state`` (``decision``: the quiet decision,
    with the breaches seen): one line named by the trigger kind, and one for a pending cash
    flow below its trigger."""
    spec = model.trigger
    calm = f"no band breached ({_closest_edge(threshold, state)})"
    if spec.kind == "threshold":
        head = f"threshold: {calm}"
    else:
        due = review_due(spec.calendar, state.reviewed_through, state.as_of)
        if due is not None:  # a hybrid's quiet review
            review = f"{spec.calendar} review due {due.isoformat()}"
        else:
            review = f"next {spec.calendar} review {_next_review(spec.calendar, state.as_of)}"
        review += f" ({state.history_text()})"
        if spec.kind == "calendar":
            head = f"calendar: {review}"
        elif decision.breaches:
            breaches = "; ".join(b.describe() for b in decision.breaches)
            head = f"hybrid: {breaches}: waits for the {review}"
        else:
            head = f"hybrid: {review}, {calm}"
    flow = state.cash_flow
    if not flow:
        return (head,)
    kind = "contribution" if flow > 0 else "withdrawal"
    if spec.cash_flow_min is None:
        return (head, f"{kind} ${abs(flow):,.0f} pending: no cash-flow trigger")
    return (head, f"{kind} ${abs(flow):,.0f} < ${spec.cash_flow_min:,.0f} cash-flow trigger")


def _closest_edge(threshold: Threshold, state: AccountState) -> str:
    """The class nearest an edge of its inner band (largest drift per band half-width), e.g.
    ``closest to an edge: US_EQUITY 37.2% in 31.0%-41.0%``."""
    best, text = -1.0, "no class has a band"
    for c in state.classes:
        t = state.target(c)
        band = threshold.band(c, c in state.targets)
        half = band.half_width(t)
        if not 0 < half < math.inf:
            continue
        closeness = abs(state.weight(c) - t) / half
        if closeness > best:
            lo, hi = band.bounds(t)
            w = state.weight(c)
            # As many decimals as keep the weight apart from its nearer edge.
            digits = next(
                (d for d in (1, 2, 3) if f"{w:.{d}%}" not in (f"{lo:.{d}%}", f"{hi:.{d}%}")), 4
            )
            best = closeness
            text = f"closest to an edge: {c} {w:.{digits}%} in {lo:.{digits}%}-{hi:.{digits}%}"
    return text


@lru_cache(maxsize=64)
def _next_review(frequency: str, after: date) -> str:
    """The first review date after ``after``, ISO (a review comes at least once a year)."""
    start = after + timedelta(days=1)
    return review_dates(frequency, start, start + timedelta(days=400))[0].isoformat()


_POLICIES: dict[int, tuple[Model, Policy]] = {}
"""Policies built per model object (a model is frozen; its policy is kept with it)."""


def policy_for(model: Model) -> Policy:
    """The policy of the model's ``[trigger]`` table and bands (see the module doc); built
    once per model."""
    cached = _POLICIES.get(id(model))
    if cached is not None and cached[0] is model:
        return cached[1]
    if len(_POLICIES) > 256:
        _POLICIES.clear()
    policy = _build_policy(model)
    _POLICIES[id(model)] = (model, policy)
    return policy


def _build_policy(model: Model) -> Policy:
    spec = model.trigger
    if spec.kind in ("calendar", "hybrid") and spec.calendar is None:
        raise ValueError(f"model {model.name}: a {spec.kind} trigger needs a calendar")
    policy: Policy
    if spec.kind == "calendar":
        policy = Calendar(spec.calendar)
    elif spec.kind == "threshold":
        policy = Threshold.from_model(model)
    elif spec.kind == "hybrid":
        review, threshold = Calendar(spec.calendar), Threshold.from_model(model)
        policy = (review & threshold) | OuterOnly(threshold)
        if spec.force_on_calendar:
            policy = review | policy
    else:
        raise ValueError(f"model {model.name}: unknown trigger kind {spec.kind!r}")
    if spec.cash_flow_min is not None:
        policy = policy | CashFlow(spec.cash_flow_min)
    return Explained(policy, model)


def evaluate(
    model: Model,
    weights: Mapping[str, float],
    as_of: date,
    last_rebalanced: date | None = None,
    cash_flow: float = 0.0,
    value: float | None = None,
    last_reviewed: date | None = None,
) -> Decision:
    """Decision for one account under its model's policy (:func:`policy_for`).

    ``weights``: class -> fraction, cash under ``CASH``; ``cash_flow`` and ``value`` dollars.
    """
    state = AccountState(as_of, weights, model, last_rebalanced, cash_flow, value, last_reviewed)
    return policy_for(model).evaluate(state)


def evaluate_account(
    account: Account,
    model: Model,
    weights: Mapping[str, float],
    as_of: date,
    value: float | None = None,
) -> Decision:
    """Decision for ``account`` (its dates and pending cash flow) under ``model``.

    ``weights`` is the account's row of :func:`planner.positions.class_weights` (or any
    class -> fraction mapping): NaN weights (an account worth nothing) and zero weights of
    classes outside the model are dropped. ``value``: account value in dollars.
    """
    w = {str(c): float(v) for c, v in weights.items() if v == v and (v != 0 or c == CASH)}
    for c in model.class_targets:
        w.setdefault(c, 0.0)
    return evaluate(
        model,
        w,
        as_of,
        last_rebalanced=account.last_rebalanced,
        cash_flow=account.cash_flow,
        value=value,
        last_reviewed=account.last_reviewed,
    )
