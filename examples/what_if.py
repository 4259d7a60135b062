"""What-if for a high-bracket client: how much tax buys how much drift reduction.

    python examples/what_if.py [BOOK] [--account ID]

A thin wrapper over :mod:`planner.whatif` (the ``rebalance whatif`` command does this and
more: tax rates, gain budgets, rebalance_to, waiting; CSV and an HTML chart). Plans one
taxable account at a range of tracking-error values and prints the frontier: tracking
error after the trades against the tax and costs they incur. Without ``--account`` it
takes the taxable account with the largest embedded tax (``rebalance whatif
--top-bracket 1``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.io import load_book  # noqa: E402
from planner.whatif import WhatIfOptions, run_whatif, top_bracket  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("book", nargs="?", default=str(DEMO))
    parser.add_argument("--account")
    args = parser.parse_args()
    book = load_book(args.book)
    account_id = args.account or str(top_bracket(book, 1).iloc[0]["account_id"])
    account = book.accounts[account_id]
    print(
        f"account {account_id} ({account.model}, {account.registration}, "
        f"ST rate {account.st_rate:.1%}, LT rate {account.lt_rate:.1%})"
    )
    result = run_whatif(book, account_id, WhatIfOptions(sweeps=("te_value",), full=True))
    print(
        f"{'TE value':>9} {'TE before':>9} {'TE after':>8} {'turnover':>8} "
        f"{'real. ST':>10} {'real. LT':>10} {'est. tax':>10} {'est. cost':>9}"
    )
    for row in result.rows[result.rows["sweep"] == "te_value"].itertuples():
        if row.status != "optimal":
            print(f"{row.te_value:>9g}  {row.status}: {row.message}")
            continue
        print(
            f"{row.te_value:>9g} {row.te_before:>9.2%} {row.te_after:>8.2%} "
            f"{row.turnover:>8.1%} {row.realized_st:>10,.0f} {row.realized_lt:>10,.0f} "
            f"{row.est_tax:>10,.0f} {row.est_cost:>9,.0f}"
        )


if __name__ == "__main__":
    main()
