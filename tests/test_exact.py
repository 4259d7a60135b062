"""Heuristic mode against exact mode (SCIP) on small random accounts.

The exact mixed-integer solve is a global optimum of the same continuous objective, so the
heuristic can never beat it, and both must obey the non-convex rules: one direction per
security, never a buy and a loss sale in one wash group, every trade 0 or at least its
minimum (or the whole position). See examples/heuristic_gap.py for the gap itself.

Where SCIP proves no optimum (an error, a limit, an optimum worse than the heuristic's plan),
exact mode keeps the heuristic's plan with a note: the tests at the end force each case.
"""

from __future__ import annotations

from dataclasses import replace

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from cvxpy.reductions.solvers.solving_chain import SolvingChain

from planner.errors import ConfigError, InfeasibleError, RuleViolationError
from planner.run import PlanOptions, plan
from planner.search import solve_account
from planner.search_state import TRADE_EPS, obeys_rules, trades
from planner.synthetic import generate_book
from tests.optimiser_helpers import all_constraints, covariance_risk, make_inputs, make_template

pytest.importorskip("pyscipopt")

import planner.exact as ex  # noqa: E402
from planner.exact import solve_exact  # noqa: E402

SEEDS = range(15)
SLOTS = 3


def small_account(seed: int):
    """3-5 securities; the first two share a wash group (substitutes: same class, correlation
    0.98); 1-3 lots each, about a third of them at a loss, short- and long-term; minimum
    trades of 2-8 % of the account; a drifted goal; some cash."""
    r = np.random.default_rng(1000 + seed)
    n = int(r.integers(3, 6))
    symbols = [f"S{i}" for i in range(n)]
    prices = r.uniform(20, 200, n)
    lots = []
    for i in range(n):
        for _ in range(int(r.integers(1, SLOTS + 1))):
            loss = r.random() < 0.35
            cost = prices[i] * (r.uniform(1.05, 1.4) if loss else r.uniform(0.5, 0.95))
            lots.append((i, float(r.integers(5, 60)), float(cost), bool(r.random() < 0.5)))
    classes = ["C0", "C0", *(f"C{i}" for i in range(1, n - 1))]
    groups = ["G0", "G0", *(f"G{i}" for i in range(1, n - 1))]
    vols = r.uniform(0.05, 0.25, n)
    vols[1] = vols[0] * r.uniform(0.95, 1.05)
    corr = np.full((n, n), 0.3)
    corr[0, 1] = corr[1, 0] = 0.98
    np.fill_diagonal(corr, 1.0)
    cov = corr * np.outer(vols, vols)
    cash = float(r.uniform(0, 3000))
    held_value = sum(q * prices[i] for i, q, _, _ in lots) + cash
    inputs = make_inputs(
        symbols,
        prices,
        lots,
        slots=SLOTS,
        cash=cash,
        goal=r.dirichlet(np.ones(n)) * 0.98,
        classes=classes,
        groups=groups,
        cost_per_dollar=r.uniform(1e-4, 1e-3, n),
        min_trade_value=held_value * r.uniform(0.02, 0.08, n),
        loss_benefit=0.5,
        st_rate=0.408,
        lt_rate=0.238,
    )
    return inputs, covariance_risk(symbols, cov)


@pytest.fixture(scope="module")
def solved():
    out = []
    for seed in SEEDS:
        inputs, risk = small_account(seed)
        template = make_template(inputs, risk, SLOTS)
        heuristic = solve_account(template, inputs)
        exact = solve_exact(template, inputs, time_limit=20.0)
        out.append((seed, inputs, heuristic, exact))
    return out


def test_generated_accounts_have_what_the_rules_need(solved):
    """The accounts exercise the rules: loss lots in the shared wash group, minimum trades
    that bind, and plans that trade."""
    shared_losses = sum(
        bool((inputs.lot_loss & (inputs.lot_security < 2)).any()) for _, inputs, _, _ in solved
    )
    assert shared_losses >= 5
    traded = [
        (exact.solution.buy > TRADE_EPS).any() or (exact.solution.sell > TRADE_EPS).any()
        for *_, exact in solved
    ]
    assert sum(traded) >= 12
    assert (
        sum(bool(heuristic.notes) or heuristic.passes > 1 for _, _, heuristic, _ in solved) >= 3
    ), "the heuristic should have had to repair some relaxations"


@pytest.mark.parametrize("k", range(len(SEEDS)))
def test_exact_objective_is_never_worse_than_heuristic(solved, k):
    seed, inputs, heuristic, exact = solved[k]
    assert exact.solution.solver == "SCIP"
    assert exact.solution.objective <= heuristic.solution.objective + 1e-7, (
        seed,
        exact.solution.objective,
        heuristic.solution.objective,
    )


SCIP_NOISE = 1e-5
"""Trades up to this fraction of V in a direction that exact mode's binaries switched off:
SCIP's integrality tolerance (1e-6) times the big-M of 2 on buys, plus its feasibility
tolerance. Above the planner's TRADE_EPS (1e-7), so the rules see them as trades."""


def valid(inputs, sol) -> bool:
    return obeys_rules(all_constraints(), inputs, sol)


def without_scip_noise(sol):
    return replace(
        sol,
        sell=np.where(sol.sell > SCIP_NOISE, sol.sell, 0.0),
        buy=np.where(sol.buy > SCIP_NOISE, sol.buy, 0.0),
    )


def assert_rules(inputs, sol, where) -> None:
    """The rules as the constraints judge them, and written out once more."""
    assert valid(inputs, sol), where
    assert np.all(sol.sell <= inputs.lot_value_weight + 1e-7), where
    done = trades(inputs, sol)
    sales, loss_sales = done.sales, done.loss_sales
    assert not np.any((sol.buy > TRADE_EPS) & (sales > TRADE_EPS)), where
    shared = slice(0, 2)  # the one wash group with two members
    assert not (sol.buy[shared].sum() > TRADE_EPS and loss_sales[shared].sum() > TRADE_EPS), where
    dollars = (sales + sol.buy) * inputs.value
    whole = sales >= inputs.hold_weight - 1e-9
    traded = dollars > TRADE_EPS * inputs.value
    assert np.all(~traded | whole | (dollars >= inputs.min_trade_value * (1 - 1e-6))), where


@pytest.mark.parametrize("k", range(len(SEEDS)))
def test_both_modes_obey_the_non_convex_rules(solved, k):
    seed, inputs, heuristic, exact = solved[k]
    assert_rules(inputs, heuristic.solution, (seed, "heuristic"))
    assert_rules(inputs, without_scip_noise(exact.solution), (seed, "exact"))


def test_exact_solutions_are_valid_as_returned(solved):
    """Exact mode zeroes the trades its yes/no switches turned off (SCIP leaves dust of up
    to ~1e-6 of account value there), so its plans obey the rules as returned."""
    for seed, inputs, _, exact in solved:
        assert valid(inputs, exact.solution), seed


# -- exact mode keeps the heuristic's plan where SCIP proves nothing ----------------------

TIME_LIMIT_NOTE = "exact solve: SCIP stopped at its time limit of 1e-06 s (no bound, no plan)"


def account(seed: int):
    inputs, risk = small_account(seed)
    return make_template(inputs, risk, SLOTS), inputs


def assert_kept(report, heuristic, note_start: str) -> None:
    """``report`` is the heuristic's plan, with exact mode's note first."""
    assert report.solution.solver == heuristic.solution.solver != "SCIP"
    np.testing.assert_array_equal(report.solution.sell, heuristic.solution.sell)
    np.testing.assert_array_equal(report.solution.buy, heuristic.solution.buy)
    assert report.notes[0].startswith(note_start), report.notes[0]
    assert "the heuristic's plan" in report.notes[0] and "is kept" in report.notes[0]
    assert report.notes[1:] == heuristic.notes
    assert report.passes == heuristic.passes + 1


def fail_scip(monkeypatch) -> None:
    def solve_via_data(*args, **kwargs):
        raise cp.error.SolverError("SCIP is broken today")

    monkeypatch.setattr(SolvingChain, "solve_via_data", solve_via_data)


def test_proven_optimum_is_scips_plan():
    template, inputs = account(0)
    report = ex.exact_mode(template, inputs, time_limit=20.0)
    assert report.solution.solver == "SCIP"
    assert report.notes == ("exact mixed-integer solve",)


def test_time_limit_keeps_the_heuristics_plan():
    template, inputs = account(4)
    heuristic = solve_account(template, inputs)
    report = ex.exact_mode(template, inputs, time_limit=1e-6)
    assert_kept(report, heuristic, TIME_LIMIT_NOTE)
    objective = heuristic.solution.objective
    assert report.notes[0].endswith(f"; the heuristic's plan {objective:.9g} is kept")


def test_a_bound_without_proof_is_given_with_the_plans_gap_to_it(monkeypatch):
    """One branch-and-bound node (deterministic, unlike a time limit) leaves SCIP with a
    bound, a plan and no proof: the note gives the bound, and the bound is one."""
    template, inputs = account(4)
    heuristic = solve_account(template, inputs)
    optimum = ex.solve_exact(template, inputs, time_limit=20.0).solution.objective
    monkeypatch.setattr(ex, "SCIP_PARAMS", {**ex.SCIP_PARAMS, "limits/nodes": 1})
    report = ex.exact_mode(template, inputs, time_limit=20.0)
    assert_kept(report, heuristic, "exact solve: SCIP stopped with status nodelimit (best bound ")
    note = report.notes[0]
    bound = float(note.split("best bound ")[1].split(",")[0])
    assert bound <= optimum + 1e-9 <= heuristic.solution.objective + 1e-7
    assert f"the heuristic's plan {heuristic.solution.objective:.9g} is kept (gap $" in note


def test_solver_error_keeps_the_heuristics_plan(monkeypatch):
    template, inputs = account(4)
    heuristic = solve_account(template, inputs)
    fail_scip(monkeypatch)
    report = ex.exact_mode(template, inputs)
    assert_kept(
        report,
        heuristic,
        "exact solve: SCIP failed (SolverError: SCIP is broken today; no bound, no plan); "
        "the heuristic's plan",
    )
    with pytest.raises(cp.error.SolverError, match="SCIP is broken today"):
        ex.solve_exact(template, inputs)


def test_an_error_scip_logs_is_named(monkeypatch):
    """cvxpy's SCIP interface logs an error in SCIP's optimize (an LP error) rather than
    raising it; the note names it, and nothing is printed."""
    from cvxpy.reductions.solvers.conic_solvers import scip_conif

    template, inputs = account(4)
    heuristic = solve_account(template, inputs)
    solve = scip_conif.SCIP._solve

    class LpError:
        """SCIP's model, whose optimize fails as SCIP's does on an LP error: after some
        solving (here one node), pyscipopt raises."""

        def __init__(self, model):
            self.model = model

        def optimize(self):
            self.model.setParam("limits/nodes", 1)
            self.model.optimize()
            raise Exception("SCIP: error in LP solver!")

        def __getattr__(self, name):
            return getattr(self.model, name)

    monkeypatch.setattr(
        scip_conif.SCIP, "_solve", lambda self, model, *a: solve(self, LpError(model), *a)
    )
    report = ex.exact_mode(template, inputs)
    assert_kept(
        report,
        heuristic,
        "exact solve: SCIP failed with status nodelimit (SCIP: error in LP solver!; best bound",
    )
    assert ", its best plan " in report.notes[0]


def test_an_lp_error_account_keeps_a_plan():
    """Seed 252 makes SCIP 10 (SoPlex) stop on an LP error ("unresolved numerical troubles
    in LP"); wherever it does, the account keeps the heuristic's plan."""
    template, inputs = account(252)
    report = ex.exact_mode(template, inputs, time_limit=20.0)
    if report.solution.solver != "SCIP":
        assert report.notes[0].startswith(ex.NOTE)


def test_a_worse_optimum_keeps_the_heuristics_plan(monkeypatch):
    """SCIP's tolerances can leave its optimum above the heuristic's plan; here the
    heuristic's objective is made better than it is."""
    template, inputs = account(4)
    heuristic = solve_account(template, inputs)
    better = replace(
        heuristic,
        solution=replace(heuristic.solution, objective=heuristic.solution.objective - 1e-3),
    )
    monkeypatch.setattr(ex, "solve_account", lambda *args: better)
    report = ex.exact_mode(template, inputs, time_limit=20.0)
    assert_kept(report, better, "exact solve: SCIP's optimum ")
    assert "is worse than the heuristic's plan" in report.notes[0]


def test_scips_plan_is_kept_where_the_heuristic_finds_none(monkeypatch):
    template, inputs = account(4)

    def no_plan(*args):
        raise RuleViolationError(inputs.account_id, "none")

    monkeypatch.setattr(ex, "solve_account", no_plan)
    assert ex.exact_mode(template, inputs, time_limit=20.0).solution.solver == "SCIP"
    fail_scip(monkeypatch)
    with pytest.raises(RuleViolationError):
        ex.exact_mode(template, inputs)


def test_infeasible_for_both_raises_the_heuristics_error(monkeypatch):
    template, inputs = account(4)

    def infeasible(*args):
        raise InfeasibleError(inputs.account_id, ["cash floor"])

    monkeypatch.setattr(ex, "solve_account", infeasible)
    fail_scip(monkeypatch)
    with pytest.raises(InfeasibleError, match="cash floor"):
        ex.exact_mode(template, inputs)


def test_time_limit_must_be_positive():
    with pytest.raises(ConfigError, match="exact_time_limit"):
        PlanOptions(exact=True, exact_time_limit=0.0)


@pytest.fixture(scope="module")
def book_and_heuristic_plan():
    book = generate_book(seed=3, n_accounts=12)
    return book, plan(book, executor="serial")


def without_exact_note(summary):
    out = summary.drop(columns=["passes", "solve_ms"]).copy()
    # The note ends at "is kept" or its gap; the heuristic's own notes follow it.
    kept = r"^exact solve: .*? is kept( \(gap [^)]*\))?(; |$)"
    out["message"] = out["message"].str.replace(kept, "", regex=True)
    return out


@pytest.mark.parametrize("failure", ["time_limit", "solver_error"])
def test_a_run_keeps_the_heuristics_plans(book_and_heuristic_plan, monkeypatch, failure):
    """End to end: every account SCIP proves nothing for is planned as the heuristic plans
    it, status optimal, its message saying why."""
    book, heuristic = book_and_heuristic_plan
    limit = 1e-6 if failure == "time_limit" else None
    if failure == "solver_error":
        fail_scip(monkeypatch)
    result = plan(book, options=PlanOptions(exact=True, exact_time_limit=limit), executor="serial")
    planned = result.summary[result.summary["status"] == "optimal"]
    assert len(planned) >= 3
    assert (planned["solver"] == "LOTQP").all()
    start = TIME_LIMIT_NOTE if limit else "exact solve: SCIP failed (SolverError: SCIP is broken"
    assert planned["message"].str.startswith(start).all(), planned["message"].tolist()
    pd.testing.assert_frame_equal(result.orders, heuristic.orders)
    pd.testing.assert_frame_equal(result.lot_sales, heuristic.lot_sales)
    pd.testing.assert_frame_equal(
        without_exact_note(result.summary), without_exact_note(heuristic.summary)
    )


def test_cli_counts_the_accounts_scip_did_not_plan(tmp_path):
    from typer.testing import CliRunner

    from planner.cli import app
    from tests.test_cli import DEMO

    out = tmp_path / "out"
    args = ["plan", str(DEMO), "--accounts", "A0001,A0009,A0021", "--out", str(out), "--exact"]
    result = CliRunner().invoke(app, [*args, "--exact-time-limit", "1e-6"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    planned = summary[summary["status"] == "optimal"]
    kept = int(planned["message"].str.startswith(ex.NOTE).sum())
    assert kept >= 1
    assert f"{len(planned) - kept} accounts planned to SCIP's optimum; {kept} not" in " ".join(
        result.output.split()
    )
    bad = CliRunner().invoke(app, [*args, "--exact-time-limit", "0"])
    assert bad.exit_code == 2
