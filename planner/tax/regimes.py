"""The netting regimes: the year's tax as a piecewise-linear function of a plan's gains.

A plan that realises ``st`` and ``lt`` dollars of short- and long-term gain (negative: a
loss) moves its return's year to ``a = a0 + st`` net short-term and ``b = b0 + lt`` net
long-term (``a0``, ``b0``: the year so far less the carried-in losses, see
:class:`~planner.tax.netting.YearSoFar`). What the planner minimises is the year's tax
(:func:`~planner.tax.netting.capital_gains_tax`, Schedule D netting with the deduction
``D``) less ``loss_benefit`` times the tax value of the loss carried to next year (each
term's carryforward at its own rate): the README's "a net loss beyond what the year uses is
worth ``loss_benefit`` of its face value". With rates ``rs`` (short) and ``rl`` (long) that
function ``F(a, b)`` is continuous and linear on seven regions, but not convex:

============  ==============================  ==========================================
regime        where                           F(a, b)
============  ==============================  ==========================================
gains         a >= 0, b >= 0                  rs a + rl b
st_net        a >= 0, b <= 0, a + b >= 0      rs (a + b)
lt_net        a <= 0, b >= 0, a + b >= 0      rl (a + b)
deducted      -D <= a + b <= 0                rs (a + b)
st_carry      a + b <= -D, b >= 0             -rs D + lb rs (a + b + D)
lt_carry      a + b <= -D, a >= -D            -rs D + lb rl (a + b + D)
both_carry    a <= -D, b <= 0                 -rs D + lb rs (a + D) + lb rl b
============  ==============================  ==========================================

(``lb``: ``loss_benefit``.) Inside one regime the tax is linear in the lot sales, so a
plan's tax is exact once its regime is fixed; the search (:mod:`planner.search`) picks the
regime from a plan and tries the neighbours whose boundary the plan sits on. All amounts
in dollars; rates are fractions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.tax.netting import YearSoFar

INF = math.inf


@dataclass(frozen=True)
class Piece:
    """One regime of one return's year: ``F = st_slope * st + lt_slope * lt + constant``
    for plan gains ``st``, ``lt`` (dollars) within the bounds, which are on the plan's
    ``st``, ``lt`` and ``st + lt`` (dollars; infinite: no bound). ``constant`` makes ``F``
    the increment over the year without the plan."""

    name: str
    st_slope: float
    lt_slope: float
    constant: float
    st_bounds: tuple[float, float]
    lt_bounds: tuple[float, float]
    sum_bounds: tuple[float, float]

    def value(self, st: float, lt: float) -> float:
        """The piece's tax at plan gains ``st``, ``lt`` (dollars), inside or outside it."""
        return self.st_slope * st + self.lt_slope * lt + self.constant

    def violation(self, st: float, lt: float) -> float:
        """How far (dollars, the largest bound's excess) plan gains lie outside the piece."""
        out = 0.0
        for x, (lo, hi) in ((st, self.st_bounds), (lt, self.lt_bounds), (st + lt, self.sum_bounds)):
            out = max(out, lo - x, x - hi)
        return out


REGIMES = ("gains", "st_net", "lt_net", "deducted", "st_carry", "lt_carry", "both_carry")
"""The regimes' names, in the order of :func:`pieces` (their indices are the search's
``tax_regime`` state)."""


def _affine(rs: float, rl: float, lb: float, d: float) -> dict[str, tuple[float, float, float]]:
    """Each regime's ``F(a, b) = sa a + sb b + k``, as ``(sa, sb, k)`` (the module doc's
    table, multiplied out)."""
    return {
        "gains": (rs, rl, 0.0),
        "st_net": (rs, rs, 0.0),
        "lt_net": (rl, rl, 0.0),
        "deducted": (rs, rs, 0.0),
        "st_carry": (lb * rs, lb * rs, (lb - 1.0) * rs * d),
        "lt_carry": (lb * rl, lb * rl, (lb * rl - rs) * d),
        "both_carry": (lb * rs, lb * rl, (lb - 1.0) * rs * d),
    }


def _regions(d: float) -> dict[str, tuple[tuple, tuple, tuple]]:
    """Each regime's bounds on ``a``, ``b`` and ``a + b`` (dollars)."""
    return {
        "gains": ((0.0, INF), (0.0, INF), (-INF, INF)),
        "st_net": ((0.0, INF), (-INF, 0.0), (0.0, INF)),
        "lt_net": ((-INF, 0.0), (0.0, INF), (0.0, INF)),
        "deducted": ((-INF, INF), (-INF, INF), (-d, 0.0)),
        "st_carry": ((-INF, INF), (0.0, INF), (-INF, -d)),
        "lt_carry": ((-d, INF), (-INF, INF), (-INF, -d)),
        "both_carry": ((-INF, -d), (-INF, 0.0), (-INF, INF)),
    }


def _f(a: float, b: float, rs: float, rl: float, lb: float, d: float) -> float:
    """``F(a, b)`` (see the module doc)."""
    sa, sb, k = _affine(rs, rl, lb, d)[_region_of(a, b, d)]
    return sa * a + sb * b + k


def _region_of(a: float, b: float, d: float) -> str:
    """The first regime (in :data:`REGIMES` order) that holds ``(a, b)``."""
    for name, bounds in _regions(d).items():
        if all(lo <= x <= hi for x, (lo, hi) in zip((a, b, a + b), bounds, strict=True)):
            return name
    raise AssertionError("the regimes cover the plane")  # pragma: no cover


def pieces(year: YearSoFar, st_rate: float, lt_rate: float, loss_benefit: float) -> list[Piece]:
    """The seven regimes of ``year`` (see the module doc), as functions of a plan's gains:
    each piece's value is the plan's exact tax increment (less the carried loss's worth)
    wherever the plan's gains fall inside it."""
    a0 = year.st_gain - year.carryforward_st
    b0 = year.lt_gain - year.carryforward_lt
    d = year.deduction_limit
    rs, rl, lb = st_rate, lt_rate, loss_benefit
    before = _f(a0, b0, rs, rl, lb, d)
    out = []
    for name, (a_bounds, b_bounds, sum_bounds) in _regions(d).items():
        sa, sb, k = _affine(rs, rl, lb, d)[name]
        out.append(
            Piece(
                name,
                sa,
                sb,
                sa * a0 + sb * b0 + k - before,
                (a_bounds[0] - a0, a_bounds[1] - a0),
                (b_bounds[0] - b0, b_bounds[1] - b0),
                (sum_bounds[0] - a0 - b0, sum_bounds[1] - a0 - b0),
            )
        )
    return out


def regime_of(year: YearSoFar, st: float, lt: float) -> int:
    """Index (into :data:`REGIMES`) of the regime that plan gains ``st``, ``lt`` (dollars)
    fall in; on a boundary, the first that holds them."""
    a = year.st_gain - year.carryforward_st + st
    b = year.lt_gain - year.carryforward_lt + lt
    return REGIMES.index(_region_of(a, b, year.deduction_limit))


def valued_increment(
    year: YearSoFar, st: float, lt: float, st_rate: float, lt_rate: float, loss_benefit: float
) -> float:
    """The tax a plan realising ``st`` and ``lt`` (dollars) adds to ``year``, less
    ``loss_benefit`` times the tax value of the loss it adds to the carryforward (each term
    at its own rate): exact netting, what the planner minimises (dollars)."""
    before, after = year.netting(), year.netting(st, lt)
    carried = st_rate * (after.carryforward_st - before.carryforward_st) + lt_rate * (
        after.carryforward_lt - before.carryforward_lt
    )
    return year.increment(st, lt, st_rate, lt_rate) - loss_benefit * carried


def neighbours(year: YearSoFar, st: float, lt: float, tolerance: float) -> list[int]:
    """Regimes (indices) other than :func:`regime_of`'s whose region lies within
    ``tolerance`` dollars of plan gains ``st``, ``lt``: those across a boundary the plan
    sits on."""
    a = year.st_gain - year.carryforward_st + st
    b = year.lt_gain - year.carryforward_lt + lt
    own = regime_of(year, st, lt)
    out = []
    for k, bounds in enumerate(_regions(year.deduction_limit).values()):
        if k == own:
            continue
        gap = max(max(lo - x, x - hi) for x, (lo, hi) in zip((a, b, a + b), bounds, strict=True))
        if gap <= tolerance:
            out.append(k)
    return out


_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1), (1, 1), (-1, -1))
"""Every edge direction of the regions in the ``(st, lt)`` plane (their bounds are on
``st``, ``lt`` and ``st + lt``), both ways: the extreme rays of any region's cone of
directions at a point are among them."""


def locally_above(
    pieces_: list[Piece], st: float, lt: float, slopes: list[tuple[float, float]], step: float
) -> bool:
    """Whether the exact tax, near plan gains ``st``, ``lt`` (dollars), is at least each
    linear function with the given ``(st, lt)`` slopes that meets it there: then a plan
    that is optimal for a convex tax model with those slopes at the point (a model below
    the tax nearby, equal at the point) is locally optimal for the exact tax too. Checked
    along every direction a region can be entered in (``step``: dollars, the distance to
    look; a point within a tenth of it of a boundary is taken to sit on it)."""
    near = step / 10
    for d_st, d_lt in _DIRECTIONS:
        q_st, q_lt = st + step * d_st, lt + step * d_lt
        for piece in pieces_:
            if piece.violation(st, lt) > near or piece.violation(q_st, q_lt) > near:
                continue  # the piece does not hold the point, or not this way out of it
            rise = piece.st_slope * d_st + piece.lt_slope * d_lt
            if any(s_st * d_st + s_lt * d_lt > rise + 1e-12 for s_st, s_lt in slopes):
                return False
    return True
