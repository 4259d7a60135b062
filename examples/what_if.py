"""What-if for a high-bracket client: how much tax buys how much drift reduction.

    python examples/what_if.py [BOOK] [--account ID]

Plans one taxable account at a range of tracking-error weights (the fraction of account value
worth paying to remove one squared percentage point of tracking error) and prints the
frontier: tracking error after the trades against the tax and costs they incur. Without
``--account`` it picks the taxable account with the largest embedded net gain (short-term
gains weighted double).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.io import load_book  # noqa: E402
from planner.run import PlanOptions, plan  # noqa: E402
from planner.tax import holding_terms  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
WEIGHTS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


def largest_net_gain(book) -> str:
    """The taxable account whose lots, sold today, would realise the largest net gain, with
    short-term gains counted at twice their weight (they cost the most to realise)."""
    as_of = book.settings.as_of
    lots = book.lots
    price = lots["symbol"].map({s: sec.price for s, sec in book.securities.items()})
    gain = lots["shares"] * (price - lots["unit_cost"])
    short = ~holding_terms(lots["acquired"].to_numpy(), as_of)
    weighted = gain.where(~short, 2.0 * gain)
    by_account = weighted.groupby(lots["account_id"]).sum()
    taxable = [a for a in by_account.index if book.accounts[a].taxable]
    return str(by_account.loc[taxable].idxmax())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("book", nargs="?", default=str(DEMO))
    parser.add_argument("--account")
    args = parser.parse_args()
    book = load_book(args.book)
    account_id = args.account or largest_net_gain(book)
    account = book.accounts[account_id]
    print(
        f"account {account_id} ({account.model}, {account.registration}, "
        f"ST rate {account.st_rate:.1%}, LT rate {account.lt_rate:.1%})"
    )
    print(
        f"{'TE weight':>9} {'TE before':>9} {'TE after':>8} {'turnover':>8} "
        f"{'real. ST':>10} {'real. LT':>10} {'est. tax':>10} {'est. cost':>9}"
    )
    for weight in WEIGHTS:
        options = PlanOptions(
            tracking_error_value=weight, include_untriggered=True, force_full=True
        )
        row = plan(book, accounts=[account_id], options=options, executor="serial").summary.iloc[0]
        if row["status"] != "optimal":
            print(f"{weight:>9g}  {row['status']}: {row['message']}")
            continue
        print(
            f"{weight:>9g} {row['te_before']:>9.2%} {row['te_after']:>8.2%} "
            f"{row['turnover']:>8.1%} {row['realized_st']:>10,.0f} {row['realized_lt']:>10,.0f} "
            f"{row['est_tax']:>10,.0f} {row['est_cost']:>9,.0f}"
        )


if __name__ == "__main__":
    main()
