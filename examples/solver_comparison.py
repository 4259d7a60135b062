"""Which QP solver for the rebalance program? Time and accuracy on the same accounts.

    python examples/solver_comparison.py [--accounts 40] [--securities 50] [--lots 10]

Solves the relaxation of each account of a synthetic book with one compiled template per
solver, and prints the median time per solve and the worst objective error against Clarabel
at tight tolerances. "LOTQP" is the structured interior-point method the planner uses
(planner.solvers.lotqp); the others are reached through cvxpy (DPP: canonicalised once per
template; with its warm start PIQP is also set up once and updated), as the planner reaches
PIQP and Clarabel when LotQP does not answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner import solvers as planner_solvers  # noqa: E402
from planner.benchmark_book import generate_benchmark_book  # noqa: E402
from planner.program.inputs import build_inputs, slot_bucket, slots_needed  # noqa: E402
from planner.program.problem import Template, constraints_for  # noqa: E402
from planner.run import PlanOptions, prepare  # noqa: E402

SOLVERS = [
    ("LOTQP", ("LOTQP",)),
    ("PIQP (cvxpy DPP)", ("PIQP",)),
    ("CLARABEL (cvxpy DPP)", ("CLARABEL",)),
    ("OSQP (cvxpy DPP)", ("OSQP",)),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--securities", type=int, default=50)
    parser.add_argument("--lots", type=int, default=10)
    args = parser.parse_args()
    book = generate_benchmark_book(args.accounts, args.securities, args.lots, seed=1)
    ids = sorted(book.accounts)
    spec = prepare(book, book.settings.as_of, ids, PlanOptions())
    universe = next(iter(spec.universes.values()))
    slots = max(slot_bucket(slots_needed(book, a)) for a in ids)
    risk = spec.risks[universe.symbols]
    constraints = constraints_for(min_trade=True)
    inputs = [
        build_inputs(
            book,
            book.accounts[a],
            spec.decisions[a],
            universe,
            slots,
            book.settings.as_of,
            class_names=tuple(sorted(set(universe.asset_classes))),
        )
        for a in ids
    ]
    reference = Template(
        universe.symbols,
        universe.asset_classes,
        slots,
        risk,
        spec.objective,
        constraints,
        ("CLARABEL",),
    )
    truth = [planner_solvers.solve(reference, i).objective for i in inputs]
    print(f"{args.accounts} accounts, {len(universe.symbols)} securities, {slots} lot slots each")
    print(f"{'solver':<22} {'median ms':>9} {'p90 ms':>7} {'failed':>6} {'max |obj err| (bp)':>19}")
    for name, solvers in SOLVERS:
        template = Template(
            universe.symbols,
            universe.asset_classes,
            slots,
            risk,
            spec.objective,
            constraints,
            solvers,
        )
        planner_solvers.solve(template, inputs[0])  # compile and set up outside the timing
        times, errors, failed = [], [], 0
        for k, i in enumerate(inputs):
            start = time.perf_counter()
            sol = planner_solvers.solve(template, i)
            times.append((time.perf_counter() - start) * 1e3)
            if not sol.ok:
                failed += 1
                continue
            errors.append(abs(sol.objective - truth[k]) * 1e4)
        print(
            f"{name:<22} {np.median(times):>9.2f} {np.percentile(times, 90):>7.2f} {failed:>6} "
            f"{max(errors) if errors else float('nan'):>19.2e}"
        )


if __name__ == "__main__":
    main()
