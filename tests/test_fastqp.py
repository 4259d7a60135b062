"""The PIQP fast path is the same program as cvxpy's own canonicalisation and solve."""

from __future__ import annotations

import numpy as np
import pytest

from tests.optimiser_helpers import make_inputs, make_template, random_lots, random_risk

N, SLOTS = 12, 4
SYMBOLS = [f"S{i}" for i in range(N)]


def _risk():
    return random_risk(SYMBOLS)


def _inputs(seed: int):
    r = np.random.default_rng(seed)
    prices = r.uniform(20, 300, N)
    lots = random_lots(r, prices, SLOTS)
    return make_inputs(
        SYMBOLS,
        prices,
        lots,
        slots=SLOTS,
        cash=r.uniform(-500, 5000),
        goal=r.dirichlet(np.ones(N)) * 0.98,
        cost_per_dollar=r.uniform(1e-4, 5e-4, N),
        classes=[f"C{i % 4}" for i in range(N)],
        groups=[f"G{i // 2}" for i in range(N)],
        loss_benefit=0.5,
        gain_budget=float(r.uniform(0, 2e4)) if seed % 2 else None,
        st_gain_cap=float(r.uniform(0, 5e3)) if seed % 3 == 0 else None,
        do_not_buy=r.random(N) < 0.1,
        wash_buy_blocked=r.random(N) < 0.1,
    )


@pytest.mark.parametrize("seed", range(8))
def test_fast_path_matches_cvxpy(seed):
    risk = _risk()
    fast = make_template(_inputs(100), risk, SLOTS)
    slow = make_template(_inputs(100), risk, SLOTS)
    slow.fast = False
    # Warm the fast template with another account first: the update path is what matters.
    fast.solve(_inputs(seed + 1000))
    inputs = _inputs(seed)
    a = fast.solve(inputs)
    b = slow.solve(inputs, solvers=("CLARABEL",))
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective, abs=1e-8)
    np.testing.assert_allclose(a.sell, b.sell, atol=2e-5)
    np.testing.assert_allclose(a.buy, b.buy, atol=2e-5)


def test_fast_path_reports_infeasible():
    inputs = _inputs(3)
    template = make_template(inputs, _risk(), SLOTS)
    template.solve(inputs)
    blocked = make_inputs(
        SYMBOLS[:N],
        inputs.prices,
        [(0, 1.0, 10.0, True)],
        slots=SLOTS,
        cash=-0.5 * inputs.prices[0],
        do_not_sell=np.arange(N) == 0,
        goal=np.full(N, 1.0 / N),
        classes=[f"C{i % 4}" for i in range(N)],
        groups=[f"G{i // 2}" for i in range(N)],
    )
    assert template.solve(blocked, solvers=("PIQP",)).status == "infeasible"
