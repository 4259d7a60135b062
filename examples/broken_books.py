"""Break the demo book in many ways and see what `rebalance` makes of each.

    python examples/broken_books.py            # the table
    python examples/broken_books.py --list     # every kind, one line each

Each kind is one mutation of a copy of data/demo. For each, `rebalance validate` runs and,
when it accepts the book, `rebalance plan` on a few accounts; the outcome is one of:
- message: rejected with problems naming file, row and field (exit code 1), or for a
  setting, the setting;
- accepted: the book was taken as valid (right for the few kinds that are not errors:
  Windows line ends, a byte-order mark, blank lines, reordered columns);
- traceback: an exception escaped (a bug).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"


def _cell(name: str, row: int, column: str, value: str):
    def edit(book: Path) -> None:
        import pandas as pd

        frame = pd.read_csv(book / name, dtype=str, keep_default_na=False)
        frame.loc[row, column] = value
        frame.to_csv(book / name, index=False)

    return edit


def _text(name: str, change):
    def edit(book: Path) -> None:
        path = book / name
        path.write_bytes(change(path.read_bytes()))

    return edit


def _lines(name: str, change):
    return _text(name, lambda b: ("\n".join(change(b.decode().splitlines())) + "\n").encode())


def _toml(name: str, old: str, new: str):
    return _text(name, lambda b: b.decode().replace(old, new, 1).encode())


def _append(name: str, text: str):
    return _text(name, lambda b: b + text.encode())


def _replace_file(name: str, how: str):
    def edit(book: Path) -> None:
        path = book / name
        path.unlink()
        if how == "dir":
            path.mkdir()
        elif how == "devzero":
            path.symlink_to("/dev/zero")
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "missing":
            pass

    return edit


def _drop_column(name: str, column: str):
    def edit(book: Path) -> None:
        import pandas as pd

        frame = pd.read_csv(book / name, dtype=str, keep_default_na=False)
        frame.drop(columns=[column]).to_csv(book / name, index=False)

    return edit


KINDS = {
    # securities.csv
    "securities: price text": _cell("securities.csv", 3, "price", "abc"),
    "securities: price negative": _cell("securities.csv", 3, "price", "-5"),
    "securities: price empty": _cell("securities.csv", 3, "price", ""),
    "securities: price inf": _cell("securities.csv", 3, "price", "inf"),
    "securities: duplicate symbol": _cell("securities.csv", 3, "symbol", "VTI"),
    "securities: empty symbol": _cell("securities.csv", 3, "symbol", ""),
    "securities: formula symbol": _cell("securities.csv", 3, "symbol", "=HYPERLINK(1)"),
    "securities: CASH class": _cell("securities.csv", 3, "asset_class", "CASH"),
    "securities: bad restricted": _cell("securities.csv", 3, "restricted", "maybe"),
    "securities: spread negative": _cell("securities.csv", 3, "spread_bps", "-1"),
    "securities: min trade text": _cell("securities.csv", 3, "min_trade_value", "lots"),
    "securities: missing column": _drop_column("securities.csv", "price"),
    "securities: unknown column": _lines(
        "securities.csv", lambda r: [r[0] + ",pirce"] + [x + ",1" for x in r[1:]]
    ),
    "securities: duplicate header": _lines(
        "securities.csv", lambda r: [r[0] + ", symbol"] + [x + ",X" for x in r[1:]]
    ),
    "securities: empty file": _replace_file("securities.csv", "empty"),
    "securities: missing file": _replace_file("securities.csv", "missing"),
    "securities: a folder": _replace_file("securities.csv", "dir"),
    # accounts.csv
    "accounts: cash text": _cell("accounts.csv", 2, "cash", "lots"),
    "accounts: rate above 1": _cell("accounts.csv", 2, "st_rate", "1.5"),
    "accounts: rate negative": _cell("accounts.csv", 2, "lt_rate", "-0.1"),
    "accounts: unknown model": _cell("accounts.csv", 2, "model", "nope"),
    "accounts: bad registration": _cell("accounts.csv", 2, "registration", "401k"),
    "accounts: duplicate id": _cell("accounts.csv", 2, "account_id", "A0001"),
    "accounts: empty id": _cell("accounts.csv", 2, "account_id", ""),
    "accounts: formula id": _cell("accounts.csv", 2, "account_id", "@SUM(1+1)"),
    "accounts: markup id": _cell("accounts.csv", 2, "account_id", "A0003[/]"),
    "accounts: escape in id": _cell("accounts.csv", 2, "account_id", "A\x1b[31m3"),
    "accounts: bad boolean": _cell("accounts.csv", 2, "fractional_shares", "perhaps"),
    "accounts: date not ISO": _cell("accounts.csv", 2, "last_rebalanced", "2025-1-2"),
    "accounts: date after as-of": _cell("accounts.csv", 2, "last_rebalanced", "2030-01-01"),
    "accounts: unknown do_not_buy": _cell("accounts.csv", 2, "do_not_buy", "ZZZ"),
    "accounts: negative budget": _cell("accounts.csv", 2, "gain_budget", "-5"),
    "accounts: truncated row": _lines(
        "accounts.csv", lambda r: [*r[:3], ",".join(r[3].split(",")[:8]), *r[4:]]
    ),
    "accounts: extra cell": _lines("accounts.csv", lambda r: [*r[:3], r[3] + ",x", *r[4:]]),
    "accounts: missing column": _drop_column("accounts.csv", "cash"),
    # lots.csv
    "lots: shares zero": _cell("lots.csv", 5, "shares", "0"),
    "lots: shares nan": _cell("lots.csv", 5, "shares", "nan"),
    "lots: thousands separator": _lines(
        "lots.csv", lambda r: [r[0], r[1].replace(r[1].split(",")[3], "1,234.5"), *r[2:]]
    ),
    "lots: cost negative": _cell("lots.csv", 5, "unit_cost", "-1"),
    "lots: unknown account": _cell("lots.csv", 5, "account_id", "ZZZ"),
    "lots: unknown symbol": _cell("lots.csv", 5, "symbol", "ZZZ"),
    "lots: empty lot id": _cell("lots.csv", 5, "lot_id", ""),
    "lots: duplicate lot id": _cell("lots.csv", 5, "lot_id", "A0001-L018"),
    "lots: newline in id": _cell("lots.csv", 5, "lot_id", "L\n1"),
    "lots: 10 MB id": _cell("lots.csv", 5, "lot_id", "L" * 10_000_000),
    "lots: date not ISO": _cell("lots.csv", 5, "acquired", "2025-1-2"),
    "lots: date 30 Feb": _cell("lots.csv", 5, "acquired", "2025-02-30"),
    "lots: date before 1677": _cell("lots.csv", 5, "acquired", "1650-01-01"),
    "lots: date after as-of": _cell("lots.csv", 5, "acquired", "2030-01-01"),
    "lots: 10 MB garbage line": _append("lots.csv", "x" * 10_000_000 + "\n"),
    "lots: not UTF-8": _text("lots.csv", lambda b: b + b"A0001,L\xff,VTI,1,1,2020-01-01\n"),
    "lots: binary garbage": _append("lots.csv", "\x00\x01\x02,,,\n"),
    "lots: symlink to /dev/zero": _replace_file("lots.csv", "devzero"),
    "lots: header only": _lines("lots.csv", lambda r: r[:1]),
    "lots: blank lines": _lines("lots.csv", lambda r: [r[0], "", *r[1:3], "", *r[3:]]),
    "lots: Windows line ends": _text("lots.csv", lambda b: b.replace(b"\n", b"\r\n")),
    "lots: byte-order mark": _text("lots.csv", lambda b: b"\xef\xbb\xbf" + b),
    "lots: reordered columns": _lines(
        "lots.csv", lambda r: [",".join(reversed(x.split(","))) for x in r]
    ),
    "lots: parquet beside csv": lambda book: (
        __import__("pandas").read_csv(book / "lots.csv").to_parquet(book / "lots.parquet")
    ),
    # trades.csv
    "trades: bad side": _cell("trades.csv", 1, "side", "short"),
    "trades: price zero": _cell("trades.csv", 1, "price", "0"),
    "trades: date not a date": _cell("trades.csv", 1, "trade_date", "yesterday"),
    "trades: unknown account": _cell("trades.csv", 1, "account_id", "ZZZ"),
    # prices.csv
    "prices: dates not increasing": _lines("prices.csv", lambda r: [r[0], r[2], r[1], *r[3:]]),
    "prices: unknown symbol column": _lines(
        "prices.csv", lambda r: [r[0] + ",ZZZ"] + [x + ",1" for x in r[1:]]
    ),
    "prices: negative price": _cell("prices.csv", 1, "VTI", "-1"),
    # models.toml
    "models: syntax error": _append("models.toml", "\n[broken\n"),
    "models: unknown key": _toml("models.toml", "rebalance_to", "rebalance_too"),
    "models: targets not summing": _toml("models.toml", "target = 0.", "target = 0.9"),
    "models: band negative": _toml("models.toml", "abs = 0.0", "abs = -0.0"),
    "models: unknown trigger kind": _toml("models.toml", 'kind = "', 'kind = "x'),
    "models: unknown security": _toml("models.toml", 'securities = ["', 'securities = ["ZZZ", "'),
    "models: formula model name": _append(
        "models.toml", '\n["=cmd"]\ncash = 1.0\n[ "=cmd".classes ]\n'
    ),
    "models: symlink to /dev/zero": _replace_file("models.toml", "devzero"),
    "models: missing file": _replace_file("models.toml", "missing"),
    # book.toml
    # (the demo's book.toml holds only settings that differ from their defaults)
    "book: wash window 1e9": _append("book.toml", "wash_window_days = 1000000000\n"),
    "book: hold days negative": _append("book.toml", "hold_lt_days = -1\n"),
    "book: loss benefit 2": _append("book.toml", "loss_benefit = 2\n"),
    "book: harvest sometimes": _append("book.toml", 'harvest = "sometimes"\n'),
    "book: dust value negative": _append("book.toml", "dust_value = -5.0\n"),
    # returns.csv
    "returns: bad filing status": _append("returns.csv", "H0090,widowed,0,0,0,0\n"),
    "returns: negative carryforward": _append("returns.csv", "H0089,single,0,0,-10,0\n"),
    "returns: unknown return": _append("returns.csv", "NOBODY,single,0,0,0,0\n"),
    "returns: repeated return": _append("returns.csv", "H0002,single,0,0,0,0\n"),
    "book: as-of 9999-12-31": _toml("book.toml", "as_of = 2026-11-20", "as_of = 9999-12-31"),
    "book: as-of not a date": _toml("book.toml", "as_of = 2026-11-20", 'as_of = "soon"'),
    "book: unknown setting": _append("book.toml", "colour = 1\n"),
    "book: bad scope": _toml("book.toml", 'wash_sale_scope = "', 'wash_sale_scope = "x'),
    "book: syntax error": _append("book.toml", "= = =\n"),
}


def outcome(book: Path) -> str:
    """What the command makes of ``book``: message, accepted or traceback (with why)."""
    from typer.testing import CliRunner

    from planner.cli import app

    runner = CliRunner()
    checked = runner.invoke(app, ["validate", str(book)])
    if checked.exception and not isinstance(checked.exception, SystemExit):
        return f"traceback ({type(checked.exception).__name__})"
    if checked.exit_code != 0:
        return "message"
    with tempfile.TemporaryDirectory() as out:
        accounts = "A0001,A0002,A0003,A0004,A0005"
        planned = runner.invoke(app, ["plan", str(book), "--accounts", accounts, "--out", out])
    if planned.exception and not isinstance(planned.exception, SystemExit):
        return f"traceback in plan ({type(planned.exception).__name__})"
    return "accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="one line per kind")
    parser.add_argument("--skip", default="", help="leave out kinds whose name holds this")
    args = parser.parse_args()
    counts: Counter = Counter()
    for kind, edit in KINDS.items():
        if args.skip and args.skip in kind:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            book = Path(tmp) / "book"
            shutil.copytree(DEMO, book)
            try:
                edit(book)
            except Exception as exc:  # noqa: BLE001 - the mutation itself failed
                print(f"{kind}: could not break the book: {exc}", file=sys.stderr)
                continue
            result = outcome(book)
        counts[result.split(" ")[0]] += 1
        if args.list:
            print(f"{kind:<36} {result}", flush=True)
    total = sum(counts.values())
    print(
        f"\n{total} kinds of broken book: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "200")
    main()
