"""The search's optimality gap against a brute force over every per-security trade state and
netting regime, on 40 seeded small accounts (4-6 securities, several lots each, minimum
trades, wash groups shared by two securities): the continuous objective with the exact
netted tax, before rounding, in bp of account value.

Issue 14's goals: standard p95 <= 2, p99 <= 5, max <= 20; thorough p99 <= 1, max <= 10, and
never worse than standard. Both meet them here (0 on all 40 accounts): on universes this
small the standard effort runs the thorough one (planner.search.small_universe), and both
make the plan's tax exact in its regime (planner.search._exact_tax).
"""

from __future__ import annotations

import numpy as np
import pytest

from planner.errors import InfeasibleError, RuleViolationError
from planner.search import solve_account
from tests.optimiser_helpers import brute_force, make_template, random_account

ACCOUNTS = 40


def _gaps() -> tuple[np.ndarray, np.ndarray]:
    standard, thorough = [], []
    for seed in range(ACCOUNTS):
        inputs, risk = random_account(seed, n=4 + seed % 3)
        template = make_template(inputs, risk, 3)
        best = brute_force(template, inputs)
        if best is None:  # no state obeys every rule: nothing to compare
            continue
        found = []
        for effort in ("standard", "thorough"):
            try:
                found.append(solve_account(template, inputs, effort=effort).solution.objective)
            except (InfeasibleError, RuleViolationError):
                found.append(np.inf)
        standard.append((found[0] - best.objective) * 1e4)
        thorough.append((found[1] - best.objective) * 1e4)
    return np.array(standard), np.array(thorough)


@pytest.fixture(scope="module")
def gaps():
    return _gaps()


def test_most_accounts_are_compared(gaps):
    standard, _ = gaps
    assert len(standard) >= 35


def test_no_search_beats_the_brute_force(gaps):
    """The brute force is the best plan over its states: a search finding a better one
    would mean the brute force misses states."""
    for found in gaps:
        assert found.min() > -1e-4


def test_thorough_meets_the_goals(gaps):
    _, thorough = gaps
    assert np.percentile(thorough, 99) <= 1.0
    assert thorough.max() <= 10.0


def test_thorough_is_never_worse_than_standard(gaps):
    standard, thorough = gaps
    assert (thorough <= standard + 1e-6).all()


def test_standard_meets_the_goals(gaps):
    standard, _ = gaps
    assert np.percentile(standard, 95) <= 2.0
    assert np.percentile(standard, 99) <= 5.0
    assert standard.max() <= 20.0
