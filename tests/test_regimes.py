"""The netting regimes (planner.tax.regimes): each regime's linear tax is the exact netted
tax wherever a plan's gains fall in it, checked against planner.tax.netting on worked
cases with exact dollars and on a seeded grid; and the search makes a plan's tax exact."""

from __future__ import annotations

import numpy as np
import pytest

from planner.program.objective import Tax, realized
from planner.search import solve_account
from planner.tax import YearSoFar
from planner.tax.regimes import (
    REGIMES,
    locally_above,
    neighbours,
    pieces,
    regime_of,
    valued_increment,
)
from tests.optimiser_helpers import diagonal_risk, make_inputs, make_template

RS, RL, LB = 0.37, 0.20, 0.5


@pytest.mark.parametrize(
    ("year", "st", "lt", "regime", "dollars"),
    [
        # $10k ST loss beside $10k LT gain nets to nothing: no tax (the per-lot model said
        # -$1,700 here, 0.37 x -10,000 + 0.20 x 10,000).
        (YearSoFar(), -10_000.0, 10_000.0, "lt_net", 0.0),
        # An LT loss inside the $3,000 deduction saves tax at the ordinary rate.
        (YearSoFar(), 0.0, -2_000.0, "deducted", -740.0),
        # $10k LT loss: $3,000 deducted at 37%, $7,000 carried at half its 20% value.
        (YearSoFar(), 0.0, -10_000.0, "lt_carry", -1_110.0 - 700.0),
        # A year with $8,000 of LT gains: a $5,000 ST loss offsets them at the LT rate.
        (YearSoFar(lt_gain=8_000.0), -5_000.0, 0.0, "lt_net", -1_000.0),
        # Both gains: each at its rate.
        (YearSoFar(), 1_000.0, 2_000.0, "gains", 370.0 + 400.0),
        # An ST carryforward of $4,000 shelters a $1,000 ST gain: it only uses up carried
        # loss worth 0.5 x 37% = $185 (married filing separately: $1,500 deduction).
        (
            YearSoFar(carryforward_st=4_000.0, deduction_limit=1_500.0),
            1_000.0,
            0.0,
            "st_carry",
            185.0,
        ),
    ],
)
def test_worked_cases(year, st, lt, regime, dollars):
    assert valued_increment(year, st, lt, RS, RL, LB) == pytest.approx(dollars, abs=1e-9)
    k = regime_of(year, st, lt)
    assert REGIMES[k] == regime
    assert pieces(year, RS, RL, LB)[k].value(st, lt) == pytest.approx(dollars, abs=1e-9)


def test_each_regime_is_exact_where_it_holds():
    rng = np.random.default_rng(7)
    for _ in range(3000):
        year = YearSoFar(
            *rng.normal(0, 6000, 2) * rng.integers(0, 2, 2),
            *np.abs(rng.normal(0, 4000, 2)) * rng.integers(0, 2, 2),
            deduction_limit=float(rng.choice([3000.0, 1500.0])),
        )
        st, lt = rng.normal(0, 9000, 2)
        lb = float(rng.uniform(0, 1))
        exact = valued_increment(year, st, lt, RS, RL, lb)
        all_pieces = pieces(year, RS, RL, lb)
        assert all_pieces[regime_of(year, st, lt)].value(st, lt) == pytest.approx(exact, abs=1e-6)
        # Every piece that holds the point (on a boundary: several) gives the same tax.
        for piece in all_pieces:
            if piece.violation(st, lt) <= 0:
                assert piece.value(st, lt) == pytest.approx(exact, abs=1e-6)


def test_neighbours_are_the_regimes_across_a_boundary():
    year = YearSoFar()
    # Net LT loss of exactly the deduction: on the edge of deducted and the carry regimes.
    near = {REGIMES[k] for k in neighbours(year, 0.0, -3_000.0, 1e-6)}
    assert "lt_carry" in near
    assert neighbours(year, 500.0, 800.0, 1e-6) == []


def test_locally_above_sees_a_concave_kink():
    year = YearSoFar()
    all_pieces = pieces(year, RS, RL, LB)
    # At a $2,000 LT gain and no ST gain, a model taxing ST at 37% lies below the tax
    # (an ST loss there only offsets LT gains, at 20%): locally exact.
    assert locally_above(all_pieces, 0.0, 2_000.0, [(RS, RL)], 1.0)
    # At a $10,000 LT loss (carried), a model taxing ST gains at 0.5 x 37% lies above the
    # tax (an ST gain there only uses up carried LT loss worth 0.5 x 20%): not exact.
    assert not locally_above(all_pieces, 0.0, -10_000.0, [(LB * RS, LB * RL)], 1.0)


def test_search_plan_tax_is_exact():
    """An account holding an ST gain lot and an LT loss lot of two substitutes, both over
    goal: selling both nets the gain against the loss. The plan's tax, as the search
    values it, is the exact netted tax."""
    inputs = make_inputs(
        ["A", "B", "C"],
        [100.0, 100.0, 100.0],
        [(0, 100.0, 60.0, False), (1, 100.0, 140.0, True), (2, 100.0, 100.0, True)],
        slots=1,
        cash=0.0,
        goal=[0.25, 0.25, 0.5],
        st_rate=RS,
        lt_rate=RL,
        loss_benefit=LB,
    )
    template = make_template(inputs, diagonal_risk(["A", "B", "C"], [0.2, 0.2, 0.2]), 1)
    report = solve_account(template, inputs)
    st, lt = realized(report.inputs, report.solution.sell)
    assert st > 0 > lt
    exact = valued_increment(YearSoFar(), st, lt, RS, RL, LB) / inputs.value
    assert Tax().exact(report.inputs, report.solution.sell) == pytest.approx(exact)
    assert report.inputs.tax_regime is not None
    assert Tax().value(report.inputs, None, report.solution.sell, None, None) == pytest.approx(
        exact, abs=1e-12
    )
