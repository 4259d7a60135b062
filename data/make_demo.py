"""Generate the bundled demo book (seeded, deterministic): python data/make_demo.py"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.io import write_book  # noqa: E402
from planner.synthetic import AS_OF, generate_book  # noqa: E402

SEED = 20261120


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "demo"))
    parser.add_argument("--accounts", type=int, default=200)
    args = parser.parse_args()
    book = generate_book(seed=SEED, n_accounts=args.accounts, as_of=AS_OF)
    path = write_book(book, args.out)
    print(
        f"wrote demo book to {path}: {len(book.accounts)} accounts, {len(book.lots)} lots, "
        f"{len(book.trades)} trades ({(book.trades['side'] == 'sell').sum()} loss sales), "
        f"{len(book.securities)} securities, "
        f"{len(book.prices)} days of prices"
    )


if __name__ == "__main__":
    main()
