"""Rebalancing workflows the simulator compares, built from the planner's trigger policies.

A workflow says on which days it looks at the account (every day, the first trading day of
each calendar period, or every n-th trading day) and what it does when it looks: a calendar
review always rebalances; a threshold workflow rebalances only when a class is outside its
band. The decision itself comes from :mod:`planner.triggers` (``Calendar``, ``Threshold``
with its tiers and partial bounds, composed with ``&`` and ``|``), so a simulated trigger
fires exactly as ``rebalance check`` would.

Names accepted by :func:`parse_workflows` (weights and bands are fractions):

- ``never``: buy at target on the first day, then only invest flows and pay taxes;
- ``monthly``, ``quarterly``, ``semiannual``, ``annual``: full rebalance to target on the
  first trading day of each period;
- ``threshold:A``: any class more than ``A`` (absolute) from target, any day: full
  rebalance to target;
- ``relative:R``: the same with a band of ``R`` times the class's target;
- ``5/25``: the tighter of 5 pp absolute and 25% relative, full rebalance;
- ``hybrid:FREQ+A``: look on each FREQ review date, rebalance fully only if a class is
  more than ``A`` from target;
- ``tiered`` (``tiered:INNER/OUTER``, default 0.05/0.10): an inner breach is a partial
  rebalance of the breaching classes to their band edge, an outer breach a full one;
- ``daryanani`` (``daryanani:R/N``, default 0.20/10): look every ``N`` trading days, band
  ``R`` relative, and trade a breaching class half-way back: to the midpoint between its
  band edge and its target (the triggers' ``midpoint``).

Cash has no band of its own in any workflow: it moves with flows and trades, and its target
is kept by the planner's cash floor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.calendar import FREQUENCY_MONTHS
from planner.domain import CASH, Band, RebalanceTo
from planner.errors import ConfigError
from planner.triggers import EDGE_TOL, Calendar, CashFlow, Policy, Threshold

DEFAULT_WORKFLOWS = (
    "never",
    "monthly",
    "quarterly",
    "annual",
    "threshold:0.01",
    "threshold:0.02",
    "threshold:0.05",
    "relative:0.20",
    "5/25",
    "hybrid:quarterly+0.05",
    "tiered",
    "daryanani",
)
"""The workflows run when ``--workflows`` is not given, in the order reported."""


@dataclass(frozen=True)
class Workflow:
    """One rebalancing workflow.

    - ``name``: as given (the row label of every output).
    - ``looks``: ``daily``, a calendar frequency (``monthly`` ... ``annual``: the first
      trading day of each period), ``every:N`` (every N-th trading day after the first),
      or ``never``.
    - ``band`` / ``outer``: inner and outer bands of every non-cash class (``None``: the
      workflow has no band and rebalances at every look).
    - ``rebalance_to``: how far an inner-band breach trades (``target`` is a full
      rebalance).
    - ``naive``: the baseline variant: at each trigger a full rebalance to target that
      ignores tax and sells the highest-cost lots first (HIFO).
    """

    name: str
    looks: str
    band: Band | None = None
    outer: Band | None = None
    rebalance_to: RebalanceTo = "target"
    naive: bool = False

    @property
    def label(self) -> str:
        """The row label: the name, with `` naive`` for the baseline variant."""
        return f"{self.name} naive" if self.naive else self.name

    def threshold(self, classes: tuple[str, ...]) -> Threshold | None:
        """The workflow's band check as a :class:`planner.triggers.Threshold` over the
        model's ``classes`` (cash without a band), or ``None`` without a band."""
        if self.band is None:
            return None
        return Threshold(
            self.band.abs,
            self.band.rel,
            self.band.combine,
            overrides={CASH: Band()},
            outer=self.outer,
            outer_overrides={CASH: None},
            rebalance_to=self.rebalance_to,
        )

    def policy(self, classes: tuple[str, ...]) -> Policy:
        """The trigger policy evaluated on a day the workflow looks (and on flow days).

        A pending contribution or withdrawal (a flow, or taxes paid from the portfolio)
        always fires a cash-flow rebalance, whatever the workflow, so money is invested or
        raised on its day.
        """
        flows = CashFlow(0.0)
        if self.looks == "never":
            return flows
        threshold = self.threshold(classes)
        if self.looks in FREQUENCY_MONTHS:
            review = Calendar(self.looks)
            return (review & threshold if threshold else review) | flows
        assert threshold is not None
        return threshold | flows

    def look_days(self, days: pd.DatetimeIndex) -> np.ndarray:
        """Whether the workflow looks at the close of each day (never on the first, the
        day of the initial purchase): a calendar review on the first trading day of each
        period, as the price history's days have it."""
        n = len(days)
        out = np.zeros(n, dtype=bool)
        if self.looks == "daily":
            out[1:] = True
        elif self.looks.startswith("every:"):
            step = int(self.looks.split(":")[1])
            out[step::step] = True
        elif self.looks in FREQUENCY_MONTHS:
            months = FREQUENCY_MONTHS[self.looks]
            period = days.year.to_numpy() * 12 + (days.month.to_numpy() - 1) // months
            out[1:] = period[1:] != period[:-1]
        return out

    def breach_limits(
        self, classes: tuple[str, ...], targets: np.ndarray, in_model: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(lower, upper) inner-band weights per class, widened by the triggers' edge
        tolerance, for the vectorised screen of :mod:`.engine` (``None``: no band). A
        weight outside them is where :class:`Threshold` sees a breach."""
        threshold = self.threshold(classes)
        if threshold is None:
            return None
        lower = np.full(len(classes), -math.inf)
        upper = np.full(len(classes), math.inf)
        for k, (c, t, own) in enumerate(zip(classes, targets, in_model, strict=True)):
            band = threshold.band(c, bool(own))
            if math.isinf(band.half_width(float(t))):
                continue
            lo, hi = band.bounds(float(t))
            lower[k], upper[k] = lo - EDGE_TOL, hi + EDGE_TOL
        return lower, upper


_FRACTION = r"(\d+(?:\.\d+)?)"


def _fraction(text: str, name: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ConfigError(f"workflow {name!r}: {text} is not a fraction between 0 and 1")
    return value


def parse_workflow(name: str, tiered: tuple[float, float] = (0.05, 0.10)) -> Workflow:
    """The workflow a ``--workflows`` entry names (see the module doc); ``tiered`` is the
    default (inner, outer) absolute band of ``tiered``."""
    text = name.strip()
    if text == "never":
        return Workflow(text, "never")
    if text in FREQUENCY_MONTHS:
        return Workflow(text, text)
    if m := re.fullmatch(rf"threshold:{_FRACTION}", text):
        return Workflow(text, "daily", Band(abs=_fraction(m[1], text)))
    if m := re.fullmatch(rf"relative:{_FRACTION}", text):
        return Workflow(text, "daily", Band(rel=_fraction(m[1], text)))
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)", text):
        band = Band(abs=float(m[1]) / 100, rel=float(m[2]) / 100, combine="tighter")
        return Workflow(text, "daily", band)
    if m := re.fullmatch(rf"hybrid:(\w+)\+{_FRACTION}", text):
        if m[1] not in FREQUENCY_MONTHS:
            raise ConfigError(
                f"workflow {text!r}: {m[1]!r} is not a calendar frequency "
                f"({', '.join(FREQUENCY_MONTHS)})"
            )
        return Workflow(text, m[1], Band(abs=_fraction(m[2], text)))
    if m := re.fullmatch(rf"tiered(?::{_FRACTION}/{_FRACTION})?", text):
        inner, outer = (_fraction(m[1], text), _fraction(m[2], text)) if m[1] else tiered
        if not inner < outer:
            raise ConfigError(
                f"workflow {text!r}: the inner band {inner} must be narrower than the outer {outer}"
            )
        return Workflow(text, "daily", Band(abs=inner), Band(abs=outer), "band_edge")
    if m := re.fullmatch(rf"daryanani(?::{_FRACTION}/(\d+))?", text):
        rel = _fraction(m[1], text) if m[1] else 0.20
        step = int(m[2]) if m[2] else 10
        if step < 1:
            raise ConfigError(f"workflow {text!r}: look every 1 or more trading days")
        return Workflow(text, f"every:{step}", Band(rel=rel), None, "midpoint")
    raise ConfigError(
        f"unknown workflow {text!r}: expected never, monthly, quarterly, semiannual, annual, "
        "threshold:A, relative:R, A/R (e.g. 5/25), hybrid:FREQ+A, tiered[:INNER/OUTER] or "
        "daryanani[:R/N]"
    )


def parse_workflows(
    text: str | None, naive: bool = False, tiered: tuple[float, float] = (0.05, 0.10)
) -> tuple[Workflow, ...]:
    """The workflows of a ``--workflows`` comma list (default :data:`DEFAULT_WORKFLOWS`),
    each followed by its naive variant when ``naive``; a name given twice is an error."""
    names = [n.strip() for n in text.split(",")] if text else list(DEFAULT_WORKFLOWS)
    names = [n for n in names if n]
    if not names:
        raise ConfigError("--workflows: no workflow named")
    seen = [n for n in names if names.count(n) > 1]
    if seen:
        raise ConfigError(f"--workflows: {seen[0]!r} is named twice")
    out: list[Workflow] = []
    for n in names:
        wf = parse_workflow(n, tiered)
        out.append(wf)
        if naive:
            out.append(Workflow(wf.name, wf.looks, wf.band, wf.outer, "target", naive=True))
    return tuple(out)
