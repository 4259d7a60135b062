"""Optimality gap of the heuristic (relax, fix directions, drop-and-resolve) against the
exact mixed-integer solve (SCIP), on small random accounts.

    python examples/heuristic_gap.py [--accounts 100] [--securities 5] [--effort thorough]
                                     [--reference exact|brute]
    python examples/heuristic_gap.py --tax-model data/demo

Both are compared on the same continuous objective (tracking error + costs + tax, fractions
of account value), before the whole-share repair that both share. The gap is printed in
basis points of account value.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cvxpy as cp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.errors import InfeasibleError, RuleViolationError  # noqa: E402
from planner.exact import solve_exact  # noqa: E402
from planner.search import solve_account  # noqa: E402
from tests.optimiser_helpers import brute_force, make_template, random_account  # noqa: E402


def tax_model_gap(book_path: str) -> None:
    """The optimiser's tax term against exact netting on a book's taxable plans: per
    account, ``model_tax`` against the exact increment of its return's year (the accounts
    of a return in the order they are planned) less ``loss_benefit`` times the tax of the
    loss it carries forward, each term's carryforward at its own rate; in bp of account
    value."""
    from planner import tax
    from planner.io import load_book
    from planner.run import plan

    book = load_book(book_path)
    s = plan(book, executor="serial").summary.set_index("account_id")
    lb = book.settings.loss_benefit
    years: dict[str, tax.YearSoFar] = {}
    gaps, dollars = [], []
    for a in sorted(s.index):
        account, row = book.accounts[a], s.loc[a]
        if not account.taxable or row["status"] != "optimal":
            continue
        rid = account.return_id
        year = years.get(rid) or tax.YearSoFar.of(book.tax_return(a))
        before, after = year.netting(), year.netting(row["realized_st"], row["realized_lt"])
        carried = account.st_rate * (
            after.carryforward_st - before.carryforward_st
        ) + account.lt_rate * (after.carryforward_lt - before.carryforward_lt)
        increment = year.increment(
            row["realized_st"], row["realized_lt"], account.st_rate, account.lt_rate
        )
        years[rid] = year.plus(row["realized_st"], row["realized_lt"])
        off = row["model_tax"] - (increment - lb * carried)
        dollars.append(abs(off))
        gaps.append(abs(off) / row["value"] * 1e4)
    gap, dollars = np.array(gaps), np.array(dollars)
    print(f"tax term against exact netting on {len(gap)} taxable plans of {book_path}, bp:")
    print(f"  mean {gap.mean():.3f}  p95 {np.percentile(gap, 95):.3f}  max {gap.max():.3f}")
    print(f"  accounts off by more than $100: {int((dollars > 100).sum())}")


def _reference(name: str, template, inputs):
    """The best plan to measure against: SCIP's mixed-integer optimum (``exact``) or the
    brute force over every per-security state (``brute``; 3^n solves)."""
    if name == "brute":
        best = brute_force(template, inputs)
        if best is None:
            raise InfeasibleError(inputs.account_id, [], "no state obeys every rule")
        return best
    return solve_exact(template, inputs).solution


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--securities", type=int, default=5, help="per account (default 5)")
    parser.add_argument("--effort", choices=("standard", "thorough"), default="standard")
    parser.add_argument(
        "--reference",
        choices=("exact", "brute"),
        default="exact",
        help="SCIP (default) or the brute force over every per-security state",
    )
    parser.add_argument("--tax-model", metavar="BOOK", help="compare the tax term instead")
    args = parser.parse_args()
    if args.tax_model:
        tax_model_gap(args.tax_model)
        return
    gaps, heuristic_ms, exact_ms, passes = [], [], [], []
    skipped = 0
    for seed in range(args.accounts):
        inputs, risk = random_account(seed, n=args.securities)
        template = make_template(inputs, risk, 3)
        try:
            t0 = time.perf_counter()
            report = solve_account(template, inputs, effort=args.effort)
            t1 = time.perf_counter()
            best = _reference(args.reference, template, inputs)
            t2 = time.perf_counter()
        except (InfeasibleError, RuleViolationError, cp.error.SolverError):
            # Infeasible under the trade rules, or SCIP's LP failed numerically.
            skipped += 1
            continue
        gaps.append((report.solution.objective - best.objective) * 1e4)
        passes.append(report.passes)
        heuristic_ms.append((t1 - t0) * 1e3)
        exact_ms.append((t2 - t1) * 1e3)
    g = np.array(gaps)
    print(f"accounts: {len(g)} solved by both, {skipped} skipped (infeasible or SCIP failed)")
    print(f"gap = heuristic objective - {args.reference} objective, in bps of account value")
    for q in (50, 90, 95, 99, 100):
        print(f"  p{q:<3} {np.percentile(g, q):10.4f}")
    print(f"  mean {g.mean():10.4f}")
    print(f"  share with gap <= 0.01 bp: {np.mean(g <= 0.01):.1%}")
    print(f"  share with gap <= 1 bp:    {np.mean(g <= 1.0):.1%}")
    print(
        f"time per account: heuristic {np.median(heuristic_ms):.1f} ms "
        f"({np.mean(passes):.1f} solves), {args.reference} {np.median(exact_ms):.1f} ms "
        "(medians)"
    )


if __name__ == "__main__":
    main()
