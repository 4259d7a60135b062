"""Time ``rebalance simulate``: twenty years of daily prices, one account, every default
workflow, with the planner at every trigger.

    python examples/simulate_benchmark.py             # the demo book's moderate model
    python examples/simulate_benchmark.py --weights SPY=0.6,AGG=0.4 --registration ira
    python examples/simulate_benchmark.py --real-2020  # the README's SPY/AGG 2020 figures

The default market is the seeded synthetic one (2006-2025, one crash); prints, per
workflow, the seconds it took, the optimiser calls, the rebalances and trades, then the
total. ``--real-2020`` runs a 60/40 SPY/AGG IRA through 2020 on
``../shared/data/etf_prices.csv`` (skipped when the file is absent) under quarterly and
2 pp / 5 pp thresholds and prints peak drift (largest absolute class drift at a close, and
the equity class's), rebalances and trades.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np

from planner.pool import load_kernels, single_threaded_blas
from planner.simulate import (
    book_portfolio,
    market_for,
    parse_weights,
    parse_workflows,
    weights_portfolio,
)
from planner.simulate.engine import run_workflow, setup
from planner.simulate.metrics import metrics_frame

REPO = Path(__file__).resolve().parent.parent
REAL_PRICES = REPO.parent / "shared" / "data" / "etf_prices.csv"


def benchmark(args: argparse.Namespace) -> None:
    if args.weights:
        portfolio = weights_portfolio(parse_weights(args.weights), 1_000_000, args.registration)
        what = f"--weights {args.weights}"
    else:
        portfolio = book_portfolio(
            REPO / "data" / "demo", "moderate", initial=1_000_000, registration=args.registration
        )
        what = "demo book, model moderate"
    started = time.perf_counter()
    portfolio, market = market_for(portfolio, None, date(2006, 1, 1), date(2025, 12, 31), args.seed)
    shared = setup(portfolio, market)
    prepared = time.perf_counter() - started
    days = len(market.prices)
    print(
        f"{what}, {args.registration}, $1,000,000 from cash; synthetic market seed {args.seed}: "
        f"{days} trading days {market.prices.index[0].date()}..{market.prices.index[-1].date()}, "
        f"{len(shared.symbols)} securities; market and risk model {prepared:.2f} s"
    )
    print(f"{'workflow':<24}{'seconds':>9}{'plans':>7}{'rebal':>7}{'trades':>8}")
    runs = []
    total = time.perf_counter()
    for workflow in parse_workflows(None, args.naive):
        t0 = time.perf_counter()
        run = run_workflow(shared, workflow)
        elapsed = time.perf_counter() - t0
        runs.append(run)
        first = market.prices.index[0].date()
        trades = sum(1 for t in run.trades if t["date"] > first)
        print(
            f"{run.label:<24}{elapsed:>9.2f}{int(run.path.planned.sum()):>7}"
            f"{int(run.path.traded.sum()):>7}{trades:>8}"
        )
    metrics = metrics_frame(shared, runs)
    elapsed = time.perf_counter() - total
    plans = sum(int(r.path.planned.sum()) for r in runs)
    print(
        f"total: {elapsed:.1f} s for {len(runs)} workflows x {days} days, {plans} optimiser "
        f"calls ({elapsed / max(plans, 1) * 1e3:.1f} ms a call, day loop included); "
        f"with the market {elapsed + prepared:.1f} s"
    )
    print(metrics[["workflow", "max_abs_drift", "tracking_error", "taxes_paid"]].to_string())


def real_2020() -> None:
    if not REAL_PRICES.is_file():
        print(f"{REAL_PRICES} is absent: skipped")
        return
    portfolio = weights_portfolio({"SPY": 0.6, "AGG": 0.4}, 1_000_000, "ira")
    portfolio, market = market_for(portfolio, REAL_PRICES, date(2020, 1, 1), date(2020, 12, 31))
    shared = setup(portfolio, market)
    runs = [
        run_workflow(shared, w) for w in parse_workflows("quarterly,threshold:0.02,threshold:0.05")
    ]
    metrics = metrics_frame(shared, runs).set_index("workflow")
    days = market.prices.index
    spy = shared.classes.index("SPY")
    print(
        "60/40 SPY/AGG IRA, $1,000,000, whole shares, 2 bp spread, "
        f"{days[0].date()}..{days[-1].date()} ({len(days)} closes)"
    )
    for run in runs:
        row = metrics.loc[run.label]
        drift = run.path.weights[:, spy] - 0.6
        worst = int(np.argmax(np.abs(drift)))
        dates = ", ".join(str(days[i].date()) for i in np.flatnonzero(run.path.traded))
        print(
            f"{run.label}: peak drift {row['max_abs_drift']:.2%} (SPY {drift[worst]:+.2%} on "
            f"{days[worst].date()}, {drift[worst] / 0.6:+.1%} of its target), "
            f"{int(row['rebalances'])} rebalances, {int(row['trades'])} trades ({dates}); "
            f"mean drift {row['mean_abs_drift']:.2%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="A quick portfolio instead of the demo model.")
    parser.add_argument("--registration", default="taxable", choices=("taxable", "ira"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--naive", action="store_true", help="Add the naive variants.")
    parser.add_argument("--real-2020", action="store_true", help="The README's 2020 figures.")
    args = parser.parse_args()
    single_threaded_blas()
    load_kernels()
    if args.real_2020:
        real_2020()
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
