"""What the rebalance triggers (:mod:`planner.triggers`) read and decide: an account's
:class:`AccountState` (class weights, model, dates, pending flow), the band breaches they
see (:class:`Breach`), and the :class:`Decision` of whether and how to rebalance. Weights,
bands and drifts are fractions of account value; money is dollars."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Literal

from planner.domain import REBALANCE_TO, FrozenDict, Model, RebalanceTo

Mode = Literal["full", "partial", "harvest", "cash_only", "none"]
CashFlowMode = Literal["none", "buy_only", "sell_only"]
Tier = Literal["inner", "outer"]

MODE_RANK: dict[str, int] = {"none": 0, "cash_only": 1, "harvest": 2, "partial": 3, "full": 4}
"""Strength of a mode: ``|`` keeps the strongest, ``&`` the weakest."""

CASH_FLOW_MODES: tuple[str, ...] = ("none", "buy_only", "sell_only")


def pct_pair(a: float, b: float) -> tuple[str, str]:
    """Both fractions as percentages with one decimal, or more if one would read equal."""
    for digits in (1, 2, 3, 4):
        sa, sb = f"{a:.{digits}%}", f"{b:.{digits}%}"
        if sa != sb:
            break
    return sa, sb


@dataclass(frozen=True)
class Breach:
    """An asset class outside one of its bands.

    ``weight``, ``target``, ``lower`` and ``upper`` are fractions of account value;
    ``tier`` says which band (``inner`` or ``outer``); ``band_text`` describes it.
    """

    asset_class: str
    weight: float
    target: float
    lower: float
    upper: float
    tier: Tier
    band_text: str

    @property
    def side(self) -> Literal["upper", "lower"]:
        return "upper" if self.weight > self.upper else "lower"

    @property
    def edge(self) -> float:
        """The band edge crossed (a weight)."""
        return self.upper if self.side == "upper" else self.lower

    def describe(self) -> str:
        """E.g. ``US_EQUITY 66.2% > 65.0% upper band (abs 5 pp)``."""
        weight, edge = pct_pair(self.weight, self.edge)
        op = ">" if self.side == "upper" else "<"
        tier = "outer " if self.tier == "outer" else ""
        return f"{self.asset_class} {weight} {op} {edge} {tier}{self.side} band ({self.band_text})"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Decision:
    """Whether and how to rebalance one account now.

    - ``mode``: ``full`` (to target), ``partial`` (breaching classes back inside
      ``class_bounds``), ``harvest`` (a tax-loss harvest only, every class kept within
      ``class_bounds``: :func:`planner.harvest.harvest_decision`), ``cash_only`` (invest a
      contribution / raise a withdrawal only), ``none`` (exactly when ``fire`` is false).
    - ``rebalance_to``: how far a partial rebalance goes; ``target`` for other modes.
    - ``class_bounds``: asset class -> (lower, upper) post-trade weight, partial and
      harvest modes only.
    - ``cash_flow_mode``: set when a cash-flow trigger fired (``buy_only`` / ``sell_only``).
    - ``breaches``: every band breach seen, whether or not it fired.
    - ``max_drift``: the largest ``|weight - target|`` over classes (a fraction, >= 0), of
      class ``max_drift_class``.
    """

    fire: bool
    mode: Mode = "none"
    rebalance_to: RebalanceTo = "target"
    reasons: tuple[str, ...] = ()
    class_bounds: Mapping[str, tuple[float, float]] = field(default_factory=FrozenDict)
    cash_flow_mode: CashFlowMode = "none"
    breaches: tuple[Breach, ...] = ()
    max_drift: float = 0.0
    max_drift_class: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODE_RANK:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.rebalance_to not in REBALANCE_TO:
            raise ValueError(f"unknown rebalance_to {self.rebalance_to!r}")
        if self.cash_flow_mode not in CASH_FLOW_MODES:
            raise ValueError(f"unknown cash_flow_mode {self.cash_flow_mode!r}")
        if self.fire != (self.mode != "none"):
            raise ValueError(f"fire={self.fire} contradicts mode {self.mode!r}")
        if self.class_bounds and self.mode not in ("partial", "harvest"):
            raise ValueError("only a partial or harvest decision has class bounds")
        # FrozenDict, not MappingProxyType: decisions are pickled to worker processes.
        object.__setattr__(self, "class_bounds", FrozenDict(self.class_bounds))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        object.__setattr__(self, "breaches", tuple(self.breaches))

    def __str__(self) -> str:
        if not self.fire:
            if not self.max_drift_class:
                return "no rebalance"
            return f"no rebalance (largest drift {self.max_drift_class} {self.max_drift:.1%})"
        if self.mode == "harvest":
            return "harvest only: " + "; ".join(self.reasons)
        head = f"{self.mode} rebalance"
        if self.mode != "cash_only":
            head += f" to {self.rebalance_to}"
        if self.cash_flow_mode != "none":
            head += f" ({self.cash_flow_mode})"
        return f"{head}: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class AccountState:
    """What a policy sees of one account.

    ``weights``: asset class -> fraction of account value, cash under ``CASH``; classes not in
    the model are legacy holdings (target 0). ``cash_flow``: pending contribution (> 0) or
    withdrawal (< 0), dollars. ``value``: account value in dollars (``None``: unknown); the
    built-in policies do not need it. ``last_rebalanced`` / ``last_reviewed``: the account's
    last rebalance and last calendar review (``None``: none on record).
    """

    as_of: date
    weights: Mapping[str, float]
    model: Model
    last_rebalanced: date | None = None
    cash_flow: float = 0.0
    value: float | None = None
    last_reviewed: date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", FrozenDict(self.weights))

    @property
    def reviewed_through(self) -> date | None:
        """The later of ``last_rebalanced`` and ``last_reviewed``: reviews on or before this
        date are done (``None``: no history)."""
        known = [d for d in (self.last_rebalanced, self.last_reviewed) if d is not None]
        return max(known) if known else None

    def history_text(self) -> str:
        """E.g. ``last rebalanced 2025-10-16`` or ``last reviewed 2026-07-01``."""
        rebalanced, reviewed = self.last_rebalanced, self.last_reviewed
        if reviewed is not None and (rebalanced is None or reviewed > rebalanced):
            return f"last reviewed {reviewed.isoformat()}"
        if rebalanced is not None:
            return f"last rebalanced {rebalanced.isoformat()}"
        return "no earlier review on record"

    @cached_property
    def targets(self) -> dict[str, float]:
        """Target weight per class of the model, cash included."""
        return self.model.class_targets

    @cached_property
    def classes(self) -> tuple[str, ...]:
        """The model's classes (model order), then legacy classes held (weight != 0), sorted."""
        legacy = sorted(c for c, w in self.weights.items() if w and c not in self.targets)
        return (*self.targets, *legacy)

    def weight(self, asset_class: str) -> float:
        return float(self.weights.get(asset_class, 0.0))

    def target(self, asset_class: str) -> float:
        return self.targets.get(asset_class, 0.0)

    @cached_property
    def max_drift(self) -> tuple[float, str]:
        """(largest |weight - target|, its class); the first class in :attr:`classes` wins ties."""
        best, name = 0.0, ""
        for c in self.classes:
            d = abs(self.weight(c) - self.target(c))
            if d > best:
                best, name = d, c
        return best, name
