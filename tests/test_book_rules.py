"""One bad-input test per validation rule: each names the file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from planner.book import load_book, validate_book, write_book
from planner.errors import BookError

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.fixture
def book(tmp_path) -> Path:
    path = tmp_path / "book"
    shutil.copytree(DEMO, path)
    return path


def edit_csv(path: Path, name: str, row: int, column: str, value: str) -> None:
    """Set one cell (``row`` 0-based among data rows, i.e. file line row + 2)."""
    frame = pd.read_csv(path / name, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path / name, index=False)


def find(issues, file, line, field):
    hits = [i for i in issues if i.file == file and i.line == line and i.field == field]
    assert hits, f"no issue {file}:{line}: {field} in\n" + "\n".join(map(str, issues))
    return hits[0]


def test_demo_book_is_valid():
    assert validate_book(DEMO) == []


def test_missing_file(book):
    (book / "accounts.csv").unlink()
    issue = find(validate_book(book), "accounts.csv", None, "(file)")
    assert "missing" in issue.message


def test_missing_column(book):
    frame = pd.read_csv(book / "lots.csv", dtype=str).drop(columns=["shares"])
    frame.to_csv(book / "lots.csv", index=False)
    find(validate_book(book), "lots.csv", 1, "shares")


def test_unknown_column(book):
    frame = pd.read_csv(book / "securities.csv", dtype=str, keep_default_na=False)
    frame["pirce"] = "1"
    frame.to_csv(book / "securities.csv", index=False)
    find(validate_book(book), "securities.csv", 1, "pirce")


@pytest.mark.parametrize(
    ("name", "column", "value"),
    [
        ("securities.csv", "price", "abc"),
        ("securities.csv", "price", "-5"),
        ("lots.csv", "shares", "nan"),
        ("lots.csv", "shares", "-3"),
        ("lots.csv", "unit_cost", "-1"),
        ("lots.csv", "unit_cost", "inf"),
        ("accounts.csv", "cash", "12,5"),
        ("accounts.csv", "st_rate", "1.5"),
        ("accounts.csv", "lt_rate", "-0.1"),
    ],
)
def test_bad_numbers(book, name, column, value):
    edit_csv(book, name, 2, column, value)
    issue = find(validate_book(book), name, 4, column)
    assert value in issue.message


@pytest.mark.parametrize("value", ["2024-13-01", "01/02/2024", "yesterday"])
def test_malformed_date(book, value):
    edit_csv(book, "lots.csv", 0, "acquired", value)
    find(validate_book(book), "lots.csv", 2, "acquired")


def test_acquired_after_as_of(book):
    edit_csv(book, "lots.csv", 5, "acquired", "2026-12-25")
    issue = find(validate_book(book), "lots.csv", 7, "acquired")
    assert "as-of" in issue.message


def test_duplicate_ids(book):
    lots = pd.read_csv(book / "lots.csv", dtype=str, keep_default_na=False)
    edit_csv(book, "lots.csv", 1, "lot_id", lots.loc[0, "lot_id"])
    edit_csv(book, "lots.csv", 1, "account_id", lots.loc[0, "account_id"])
    find(validate_book(book), "lots.csv", 3, "lot_id")
    accounts = pd.read_csv(book / "accounts.csv", dtype=str, keep_default_na=False)
    edit_csv(book, "accounts.csv", 3, "account_id", accounts.loc[2, "account_id"])
    find(validate_book(book), "accounts.csv", 5, "account_id")


def test_unknown_references(book):
    edit_csv(book, "lots.csv", 0, "symbol", "NOPE")
    edit_csv(book, "accounts.csv", 0, "model", "nomodel")
    edit_csv(book, "trades.csv", 0, "account_id", "A9999")
    issues = validate_book(book)
    find(issues, "lots.csv", 2, "symbol")
    find(issues, "accounts.csv", 2, "model")
    find(issues, "trades.csv", 2, "account_id")


def test_unknown_enum_value(book):
    edit_csv(book, "accounts.csv", 1, "registration", "401k")
    edit_csv(book, "securities.csv", 1, "restricted", "maybe")
    edit_csv(book, "trades.csv", 1, "side", "short")
    issues = validate_book(book)
    find(issues, "accounts.csv", 3, "registration")
    find(issues, "securities.csv", 3, "restricted")
    find(issues, "trades.csv", 3, "side")


def test_trade_after_as_of(book):
    edit_csv(book, "trades.csv", 0, "trade_date", "2027-01-04")
    find(validate_book(book), "trades.csv", 2, "trade_date")


def _models_text(book: Path) -> str:
    return (book / "models.toml").read_text()


def test_targets_must_sum_to_one(book):
    text = _models_text(book).replace("cash = 0.02\n", "cash = 0.05\n", 1)
    (book / "models.toml").write_text(text)
    issues = validate_book(book)
    hits = [i for i in issues if i.file == "models.toml" and "sum to 1" in i.message]
    assert hits and hits[0].line is not None and hits[0].field


def test_band_that_makes_no_sense(book):
    text = _models_text(book).replace(
        'band = { abs = 0.05, combine = "tighter" }',
        'band = { abs = -0.05, combine = "tighter" }',
        1,
    )
    assert text != _models_text(book)
    (book / "models.toml").write_text(text)
    issues = validate_book(book)
    hits = [i for i in issues if i.file == "models.toml" and i.field.endswith("band.abs")]
    assert hits and hits[0].line is not None


def test_calendar_trigger_needs_frequency(book):
    text = _models_text(book).replace('calendar = "semiannual"\n', "", 1)
    (book / "models.toml").write_text(text)
    issues = validate_book(book)
    assert any(i.field.endswith("trigger.calendar") for i in issues)


def test_security_in_wrong_class(book):
    edit_csv(book, "securities.csv", 0, "asset_class", "REIT")  # AGG is a bond fund
    issues = validate_book(book)
    assert any(i.file == "models.toml" and "asset class" in i.message for i in issues)


def test_prices_must_increase(book):
    frame = pd.read_csv(book / "prices.csv", dtype=str, keep_default_na=False)
    frame.loc[5, "date"] = frame.loc[3, "date"]
    frame.to_csv(book / "prices.csv", index=False)
    find(validate_book(book), "prices.csv", 7, "date")


def test_book_toml_unknown_key(book):
    text = (book / "book.toml").read_text() + "colour = 3\n"
    (book / "book.toml").write_text(text)
    issue = find(validate_book(book), "book.toml", text.count("\n"), "colour")
    assert "unknown" in issue.message


def test_all_problems_reported_together(book):
    edit_csv(book, "lots.csv", 0, "shares", "-1")
    edit_csv(book, "accounts.csv", 0, "st_rate", "2")
    edit_csv(book, "securities.csv", 0, "price", "0")
    with pytest.raises(BookError) as info:
        load_book(book)
    files = {i.file for i in info.value.issues}
    assert {"lots.csv", "accounts.csv", "securities.csv"} <= files
    assert "lots.csv:2: shares" in str(info.value)


def test_round_trip(tmp_path):
    original = load_book(DEMO)
    write_book(original, tmp_path / "copy")
    again = load_book(tmp_path / "copy")
    assert dict(again.accounts) == dict(original.accounts)
    assert dict(again.securities) == dict(original.securities)
    assert dict(again.models) == dict(original.models)
    pd.testing.assert_frame_equal(again.lots, original.lots)
    for name in ("accounts.csv", "lots.csv", "models.toml", "securities.csv", "trades.csv"):
        assert (tmp_path / "copy" / name).read_text() == (DEMO / name).read_text()


def test_book_views(tmp_path):
    book = load_book(DEMO)
    account_id = sorted(book.accounts)[0]
    lots = book.lots_of(account_id)
    assert lots and all(lot.account_id == account_id for lot in lots)
    holdings = book.holdings(account_id)
    assert sum(holdings.values()) == pytest.approx(sum(lot.shares for lot in lots))
    assert account_id in book.household(account_id)
