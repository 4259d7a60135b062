"""Speed and memory benchmark of `rebalance plan` on synthetic books.

    python examples/benchmark.py            # the full grid (a few minutes)
    python examples/benchmark.py --quick    # a small grid, for a smoke test
    python examples/benchmark.py --markdown docs/performance.md   # regenerate that page

Each configuration runs in its own process (so peak RSS is its own) and measures, end to
end: load the book from disk, evaluate triggers, solve every account, write the outputs.
In the same process it then measures, on a sample of the same accounts:
- our per-account solve: all passes of the heuristic through the compiled template;
- LotQP kernel: the structured interior-point kernel alone on the final pass's prebuilt
  arrays, and summed over the account's passes (what the wrapper adds is the rest);
- PIQP solver-only: PIQP's own update + solve on the same final problem, set up once per
  template with the data cvxpy canonicalises it to (bounds as rows, as cvxpy hands them
  over), only the account's vectors updated;
- naive: a fresh cvxpy problem built and solved per account (what a simple script does).
"""

from __future__ import annotations

import os

# One BLAS thread per process, set before numpy loads (see planner/__init__.py).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

GRID = [
    # (accounts, lots per holding, securities)
    (1_000, 10, 50),
    (5_000, 10, 50),
    (10_000, 10, 50),
    (1_000, 1, 50),
    (1_000, 50, 50),
    (1_000, 10, 500),
]
QUICK = [(200, 10, 50), (200, 2, 50), (100, 10, 200)]
SAMPLE = 100
NAIVE_SAMPLE = 10


def run_one(
    accounts: int, lots: int, securities: int, workers: int | None, effort: str = "standard"
) -> dict:
    from planner import solvers
    from planner.benchmark_book import generate_benchmark_book
    from planner.io import load_book, write_book, write_outputs
    from planner.program.inputs import build_inputs, slot_bucket, slots_needed
    from planner.program.problem import Template
    from planner.run import PlanOptions, plan, prepare, template_for
    from planner.search import solve_account
    from planner.solvers import lotqp_kernel

    with tempfile.TemporaryDirectory() as tmp:
        book_dir = Path(tmp) / "book"
        out_dir = Path(tmp) / "out"
        generated = generate_benchmark_book(
            n_accounts=accounts, n_securities=securities, lots_per_holding=lots, seed=0
        )
        write_book(generated, book_dir)
        del generated

        start = time.perf_counter()
        book = load_book(book_dir)
        loaded = time.perf_counter()
        result = plan(book, workers=workers, options=PlanOptions(effort=effort))
        planned = time.perf_counter()
        write_outputs(out_dir, result.files())
        done = time.perf_counter()

    summary = result.summary
    ok = summary[summary["status"] == "optimal"]
    as_of = book.settings.as_of
    options = PlanOptions(effort=effort)
    sample = list(ok["account_id"].iloc[:SAMPLE])
    spec = prepare(book, as_of, sample, options)
    ours_ms, passes, kernel_ms, kernel_all_ms, piqp_ms = [], [], [], [], []
    piqp_cache: dict = {}
    for account_id in sample:
        account = book.accounts[account_id]
        universe = spec.universes[account.model]
        slots = slot_bucket(slots_needed(book, account_id))
        template = template_for(spec, book, universe, slots, account)
        inputs = build_inputs(
            book,
            account,
            spec.decisions[account_id],
            universe,
            slots,
            as_of,
            class_names=template.classes,
        )
        solvers.solve(template, inputs)  # the template's solvers set up before timing
        lot = solvers.chain(template).solver("LOTQP")
        before = lot.kernel_ms_total
        t0 = time.perf_counter()
        report = solve_account(template, inputs, effort=effort)
        ours_ms.append((time.perf_counter() - t0) * 1e3)
        passes.append(report.passes)
        kernel_all_ms.append(lot.kernel_ms_total - before)
        # The final pass alone: LotQP's kernel on prebuilt arrays, and PIQP set up once and
        # updated with this account's vectors.
        values = template.values(report.inputs)
        args = lot.problem(values)
        t0 = time.perf_counter()
        lotqp_kernel.solve(*args)
        kernel_ms.append((time.perf_counter() - t0) * 1e3)
        piqp_ms.append(piqp_only_ms(template, values, piqp_cache))
    naive_ms = []
    for account_id in sample[:NAIVE_SAMPLE]:
        account = book.accounts[account_id]
        universe = spec.universes[account.model]
        slots = slot_bucket(slots_needed(book, account_id))
        t0 = time.perf_counter()
        fresh = Template(
            universe.symbols,
            universe.asset_classes,
            slots,
            spec.risks[universe.symbols],
            spec.objective,
            template.constraints,
            ("PIQP",),
        )
        inputs = build_inputs(
            book,
            account,
            spec.decisions[account_id],
            universe,
            slots,
            as_of,
            class_names=fresh.classes,
        )
        solvers.solve(fresh, replace(inputs))
        naive_ms.append((time.perf_counter() - t0) * 1e3)

    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    total_s = done - start
    return {
        "accounts": accounts,
        "lots": lots,
        "securities": securities,
        "lot_rows": int(len(book.lots)),
        "planned": int(len(ok)),
        "failed": int(summary["status"].isin(["infeasible", "error"]).sum()),
        "load_s": loaded - start,
        "plan_s": planned - loaded,
        "write_s": done - planned,
        "total_s": total_s,
        "accounts_per_s": accounts / total_s,
        "ms_per_account": total_s * 1e3 / accounts,
        "solve_ms_median": float(np.median(ours_ms)),
        "passes_mean": float(np.mean(passes)),
        "kernel_ms_median": float(np.median(kernel_ms)),
        "kernel_all_passes_ms_median": float(np.median(kernel_all_ms)),
        "piqp_only_ms_median": float(np.median(piqp_ms)),
        "ratio_to_piqp_median": float(np.median(np.array(ours_ms) / np.array(piqp_ms))),
        "naive_ms_median": float(np.median(naive_ms)),
        "peak_rss_mb_parent": self_rss,
        "peak_rss_mb_worker": child_rss,
    }


COLUMNS = (
    ("accounts", "accounts", "{:,}"),
    ("lots", "lots per holding", "{}"),
    ("securities", "securities", "{}"),
    ("lot_rows", "lot rows", "{:,}"),
    ("load_s", "load s", "{:.1f}"),
    ("plan_s", "plan s", "{:.1f}"),
    ("write_s", "write s", "{:.1f}"),
    ("total_s", "total s", "{:.1f}"),
    ("ms_per_account", "ms per account", "{:.2f}"),
    ("solve_ms_median", "solve ms", "{:.2f}"),
    ("passes_mean", "passes", "{:.2f}"),
    ("kernel_ms_median", "kernel ms", "{:.2f}"),
    ("piqp_only_ms_median", "PIQP ms", "{:.2f}"),
    ("ratio_to_piqp_median", "ours / PIQP", "{:.1f}"),
    ("naive_ms_median", "naive ms", "{:.1f}"),
    ("peak_rss_mb_parent", "RSS MB", "{:.0f}"),
    ("peak_rss_mb_worker", "worker MB", "{:.0f}"),
    ("failed", "failed", "{}"),
)

DESIGN_NOTES = """\
## What the design choices were measured to buy

These figures were measured once, when each choice was made; they explain the code and do
not come from the table above.

- **One BLAS thread per process** (`planner.pool.single_threaded_blas`, called by the CLI and
  every worker): on 500-security accounts a BLAS thread pool doubled the CPU time of a
  solve without changing its wall time, and two such workers on two cores slowed each other
  down.
- **Fork-based pool with `gc.freeze()`** (`planner.run`): workers inherit the book
  copy-on-write; freezing the parent's objects first keeps the workers' garbage collections
  from touching (and copying) the inherited heap, about 8% of a 10,000-account run.
- **`auto` uses the pool from 300 accounts** (`AUTO_PROCESS_MIN_ACCOUNTS`): forking and
  setting up the workers costs about half a second, more than they save below that.
- **LotQP** (`planner/solvers/lotqp.py`): 3-4x faster per account than PIQP set up once
  and updated with new vectors (measured against the project's former hand-built PIQP
  map with native bounds; the table's *PIQP ms* is PIQP on cvxpy's data), and it matches
  Clarabel (see `tests/test_solvers.py`).
- **PIQP through cvxpy's public API** (`planner/solvers/cvxpy_solvers.py`): about 7 ms a
  solve on 50 x 10 accounts against 2.5 ms for the hand-built map over cvxpy's internals
  it replaced; it is the fallback (every account of the demo and the benchmark books ends
  on LotQP), so the simpler code won.
- **The search** (`planner/search.py`): the standard effort takes about 3 solves per
  synthetic benchmark account (500 x 10 x 50: 1,741 solves, against 1,204 before the tax
  became exact and 2,079 when each plan was solved once more in its netting regime; on
  2,000 accounts `passes_mean` 3.02 against 2.38 and 3.57, `plan_s` 5.3 s against 3.5 s
  and 5.4-6.5 s, alternating runs on 2026-12-07). Where the relaxation's plan lies inside
  a regime, every candidate is solved with the tax exact in that regime, so the final
  plan needs no solve of its own; a candidate that cannot reach the regime is answered by
  LotQP alone (asking PIQP and Clarabel through cvxpy to confirm "infeasible" doubled the
  plan time). The thorough one runs the standard one first, then searches wider, takes
  the runners-up of its first wash choice through the other rules, improves the plan
  locally (at most 80 solves, first improving move, likeliest pairs first) and again in
  the netting regimes near the plan (24 solves each): about 195 solves per benchmark
  account, better than standard on all 500 (mean 8.6 bp). On a universe of at most 12
  securities the standard effort runs the thorough one (about 55 solves per 5-security
  account, 150 per 12-security one, 140 ms). Gaps, continuous objective with the exact
  tax, in bp of account value (`examples/heuristic_gap.py`): 100 accounts of 5 securities
  against SCIP p95 0, p99 0, max 0.02; 60 of 6 against a brute force over every
  per-security state and netting regime 0; 60 of 12 against SCIP p95 0, p99 0.70, max 1.7
  (seeds 0-119: p99 1.4, max 5.5; the misses change three securities' trades at once);
  `tests/test_search_gap.py` (40 accounts of 4-6 securities against the brute force) 0.
- **Reading books through pyarrow** (`planner/io/`): a 10,000-account, 5M-lot book loads in
  4.8-7.1 s on the 2-core VM against 4.9-6.3 s for the hand-written fast reader it
  replaced (alternating runs, 2026-12-07; the VM was in a slow phase that day).
- **Writing CSV lines with pyarrow compute** (`planner.io.write.write_csv`): the files of a
  10,000-account plan (1.2M rows) in 1.6-1.8 s, against 5.1 s in pandas' `to_csv` and
  about 1.0 s for the byte-level writer it replaced.
- **Numba kernels** (`planner/solvers/lotqp_kernel.py`, `planner/rounding_kernel.py`):
  compiled on the first run after installing (the command says so), loaded from numba's
  cache afterwards. On a first run the command compiles the rounding kernel in a forked
  child while it compiles the solver's (numba compiles one function at a time per
  process): 30-33 s instead of 43-44 s on the 2-core VM on 2026-12-07 (the code before
  this wave took 46-47 s there). The rounding kernel earns its compile: as numpy it made
  the 10,000-account row about 16% slower (1 ms against 0.15 ms per account). The solver
  kernel's copies are explicit loops: an array-to-array slice assignment made numba
  compile its shape-error message too, 5-10 s of a first run (same results bit for bit on
  4,227 recorded solves). Splitting the kernel's big function made both its compile and
  its solves slower (numba optimises every helper again inside its caller).
"""


def write_markdown(path: Path, results: list[dict], effort: str) -> None:
    """docs/performance.md: the grid as a table, where and when it was measured, what the
    columns mean, and the design notes."""
    import datetime
    import platform

    import cvxpy
    import numba
    import numpy
    import pandas
    import pyarrow

    versions = ", ".join(
        f"{m.__name__} {m.__version__}" for m in (numpy, pandas, pyarrow, cvxpy, numba)
    )
    lines = [
        "# Performance",
        "",
        "Generated by `python examples/benchmark.py --markdown docs/performance.md`; every",
        "figure below comes from that run. Machines differ and this project's VM drifts a lot",
        "from day to day: compare figures measured in the same run (or alternating runs).",
        "",
        f"- measured: {datetime.date.today().isoformat()}, effort `{effort}`",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        f"- libraries: {versions}",
        "",
        "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|" + "|".join("---:" for _ in COLUMNS) + "|",
    ]
    for r in results:
        lines.append("| " + " | ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS) + " |")
    lines += [
        "",
        "Each row is one run in its own process: load the book from disk, evaluate triggers,",
        "solve every account (a process pool over all cores), write the files. *solve ms* is",
        "one account's whole search (all passes, median over a sample), *passes* the solves it",
        "took, *kernel ms* LotQP's kernel alone on the final pass, *PIQP ms* PIQP's own update",
        "and solve of the same final problem (set up once per template from cvxpy's data),",
        "*naive ms* a fresh cvxpy problem built and solved per account; *RSS* is the peak",
        "resident memory of the parent and of the largest worker.",
        "",
        DESIGN_NOTES,
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def piqp_only_ms(template, values, cache: dict) -> float:
    """PIQP's own update and solve, in ms, of the program at parameter ``values``: a PIQP
    solver set up once per template from cvxpy's canonical data, then updated."""
    import cvxpy as cp
    import piqp

    from planner.solvers.cvxpy_solvers import OPTIONS

    for name, value in values.items():
        template.ctx.params[name].value = value
    data, _, _ = template.problem.get_problem_data(cp.PIQP)
    args = {"P": data["P"], "c": data["q"], "A": data["A"], "b": data["b"]}
    args |= {"G": data["F"], "h_u": data["G"]}
    solver = cache.get(id(template))
    if solver is None:
        solver = cache[id(template)] = piqp.SparseSolver()
        for key, value in OPTIONS["PIQP"].items():
            setattr(solver.settings, key, value)
        solver.setup(**args)
    start = time.perf_counter()
    solver.update(c=args["c"], b=args["b"], h_u=args["h_u"], A=args["A"], G=args["G"])
    solver.solve()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid (smoke test)")
    parser.add_argument("--one", nargs=3, type=int, metavar=("ACCOUNTS", "LOTS", "SECURITIES"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--effort", choices=("standard", "thorough"), default="standard")
    parser.add_argument("--markdown", type=Path, help="also write the results to this page")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.workers, args.effort)))
        return
    grid = QUICK if args.quick else GRID
    header = (
        f"{'accounts':>8} {'lots':>4} {'secs':>4} {'lot rows':>10} {'total s':>8} "
        f"{'acct/s':>7} {'ms/acct':>7} {'solve ms':>8} {'passes':>6} {'kernel':>6} "
        f"{'k.all':>6} {'PIQP ms':>7} {'ratio':>5} {'naive ms':>8} {'RSS MB':>7} "
        f"{'worker MB':>9} {'failed':>6}"
    )
    print(f"effort: {args.effort}")
    print(header)
    print("-" * len(header))
    results = []
    for accounts, lots, securities in grid:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(accounts),
            str(lots),
            str(securities),
            "--effort",
            args.effort,
        ]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{accounts:>8} {lots:>4} {securities:>4}  FAILED: {proc.stderr.strip()[-300:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{r['accounts']:>8} {r['lots']:>4} {r['securities']:>4} {r['lot_rows']:>10,} "
            f"{r['total_s']:>8.1f} {r['accounts_per_s']:>7.0f} {r['ms_per_account']:>7.2f} "
            f"{r['solve_ms_median']:>8.2f} {r['passes_mean']:>6.2f} "
            f"{r['kernel_ms_median']:>6.2f} {r['kernel_all_passes_ms_median']:>6.2f} "
            f"{r['piqp_only_ms_median']:>7.2f} {r['ratio_to_piqp_median']:>5.1f} "
            f"{r['naive_ms_median']:>8.1f} {r['peak_rss_mb_parent']:>7.0f} "
            f"{r['peak_rss_mb_worker']:>9.0f} {r['failed']:>6}",
            flush=True,
        )
    if args.markdown:
        write_markdown(args.markdown, results, args.effort)
        print(f"wrote {args.markdown}")
    print(
        "\ntotal s: load + triggers + solve + write, end to end; solve ms: our per-account "
        "solve (all passes, median);\nkernel: LotQP's kernel alone on the final pass "
        "(median); k.all: the kernel summed over the account's passes (median);\nPIQP ms: "
        "PIQP update + solve alone on the same final problem, set up once (median);\n"
        "ratio: solve ms / PIQP ms per account (median); naive ms: fresh cvxpy build + solve "
        "per account;\nRSS: peak resident set of the parent and of the largest worker."
    )


if __name__ == "__main__":
    main()
