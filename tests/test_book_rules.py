"""One bad-input test per validation rule: each names the file, line and field."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest

from planner.errors import BookError
from planner.io import load_book, validate_book, write_book

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


def line_of(text: str, snippet: str, after: str | None = None) -> int:
    """1-based line of the first line containing ``snippet`` (after the line ``after``)."""
    lines = text.splitlines()
    start = lines.index(after) + 1 if after is not None else 0
    for i in range(start, len(lines)):
        if snippet in lines[i]:
            return i + 1
    raise AssertionError(f"{snippet!r} not found")


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


@pytest.mark.parametrize("value", ["1650-01-01", "1677-09-21"])
def test_date_before_the_books_range(book, value):
    # pandas reads these (at a coarser unit than the book's nanoseconds): an issue, not a
    # crash.
    edit_csv(book, "lots.csv", 0, "acquired", value)
    issue = find(validate_book(book), "lots.csv", 2, "acquired")
    assert "from 1677-09-22" in issue.message and value in issue.message


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
    text = _models_text(book).replace("cash = 0.02\n", "cash = 0.05\n", 1)  # moderate's
    (book / "models.toml").write_text(text)
    issue = find(validate_book(book), "models.toml", line_of(text, "[moderate]"), "moderate")
    assert "sum to 1" in issue.message and "1.030000" in issue.message


def test_band_that_makes_no_sense(book):
    text = _models_text(book).replace(
        'band = { abs = 0.05, combine = "tighter" }',
        'band = { abs = -0.05, combine = "tighter" }',
        1,
    )
    assert text != _models_text(book)
    (book / "models.toml").write_text(text)
    line = line_of(text, "band = { abs = -0.05", after="[aggressive.classes.US_EQUITY]")
    issue = find(validate_book(book), "models.toml", line, "aggressive.classes.US_EQUITY.band.abs")
    assert "expected a number in [0, 1], got -0.05" in issue.message


def test_calendar_trigger_needs_frequency(book):
    text = _models_text(book).replace('calendar = "semiannual"\n', "", 1)
    (book / "models.toml").write_text(text)
    line = line_of(text, "[conservative.trigger]")  # no calendar key: the table's header
    issue = find(validate_book(book), "models.toml", line, "conservative.trigger.calendar")
    assert "needs a calendar frequency" in issue.message


def test_security_in_wrong_class(book):
    edit_csv(book, "securities.csv", 0, "asset_class", "REIT")  # AGG is a bond fund
    text = _models_text(book)
    line = line_of(text, "securities = ", after="[aggressive.classes.US_BONDS]")
    field = "aggressive.classes.US_BONDS.securities"
    issue = find(validate_book(book), "models.toml", line, field)
    assert issue.message == "security AGG has asset class REIT, not US_BONDS"


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


# -- models.toml: types, unknown keys, tiers -----------------------------------------------

# A valid model appended to the demo's models.toml; the tests below change one thing in it.
EXTRA = """
[extra]
description = "Test model"
cash = 0.05

[extra.trigger]
kind = "hybrid"
calendar = "quarterly"
cash_flow_min = 5000

[extra.classes.US_EQUITY]
target = 0.45
securities = ["VTI", "ITOT"]
band = { abs = 0.05 }

[extra.classes.US_BONDS]
target = 0.5
securities = ["BND", "AGG"]
"""


def add_extra(book: Path, old: str = "", new: str = "") -> str:
    """Append :data:`EXTRA` with ``old`` replaced by ``new``; return the file's text."""
    extra = EXTRA.replace(old, new, 1)
    assert extra != EXTRA or old == new, f"{old!r} not in EXTRA"
    text = _models_text(book) + extra
    (book / "models.toml").write_text(text)
    return text


def extra_issues(book: Path) -> list:
    return [i for i in validate_book(book) if i.field.split(".")[0] in ("extra", "(syntax)")]


def test_extra_model_is_valid(book):
    add_extra(book)
    assert validate_book(book) == []


@pytest.mark.parametrize(
    ("old", "new", "field", "at", "expected"),
    [
        # Wrongly typed values: each one a clear issue, no traceback.
        (
            "band = { abs = 0.05 }",
            "band = 0.05",
            "extra.classes.US_EQUITY.band",
            "band =",
            "got 0.05",
        ),
        (
            "band = { abs = 0.05 }",
            'band = "wide"',
            "extra.classes.US_EQUITY.band",
            "band =",
            "table",
        ),
        ("cash = 0.05\n", 'cash = 0.05\nbands = "x"\n', "extra.bands", "bands =", "got 'x'"),
        (
            '[extra.trigger]\nkind = "hybrid"\ncalendar = "quarterly"\ncash_flow_min = 5000\n',
            'trigger = "quarterly"\n',
            "extra.trigger",
            "trigger =",
            "got 'quarterly'",
        ),
        (
            '[extra.classes.US_EQUITY]\ntarget = 0.45\nsecurities = ["VTI", "ITOT"]\n'
            "band = { abs = 0.05 }\n",
            "[extra.classes]\nUS_EQUITY = 0.45\n",
            "extra.classes.US_EQUITY",
            "US_EQUITY = 0.45",
            "got 0.45",
        ),
        (
            "band = { abs = 0.05 }\n",
            "band = { abs = 0.05 }\nweights = [1]\n",
            "extra.classes.US_EQUITY.weights",
            "weights =",
            "table of symbol = weight",
        ),
        (
            "band = { abs = 0.05 }\n",
            'band = { abs = 0.05 }\nweights = { VTI = "a" }\n',
            "extra.classes.US_EQUITY.weights.VTI",
            "weights =",
            "weight in [0, 1], got 'a'",
        ),
        (
            'securities = ["VTI", "ITOT"]',
            "securities = 3",
            "extra.classes.US_EQUITY.securities",
            "securities = 3",
            "list of symbols",
        ),
        (
            "cash = 0.05\n",
            "cash = 0.05\nsecurities = 3\n",
            "extra.securities",
            "securities = 3",
            "table",
        ),
        # Silent mistakes: unknown keys name the allowed ones; booleans are not numbers and
        # numbers or text are not booleans; a symbol is not a list of symbols.
        (
            "cash_flow_min = 5000",
            "cash_flow_minimum = 5000",
            "extra.trigger.cash_flow_minimum",
            "cash_flow_minimum",
            "unknown key (expected one of calendar, cash_flow_min, force_on_calendar, kind)",
        ),
        (
            "cash_flow_min = 5000",
            "force_on_calender = true",
            "extra.trigger.force_on_calender",
            "force_on_calender",
            "force_on_calendar",
        ),
        (
            "band = { abs = 0.05 }",
            "bnad = { abs = 0.05 }",
            "extra.classes.US_EQUITY.bnad",
            "bnad",
            "unknown key (expected one of band, securities, target, weights)",
        ),
        (
            "band = { abs = 0.05 }",
            "band = { abs = 0.05, outer_bas = 0.1 }",
            "extra.classes.US_EQUITY.band.outer_bas",
            "band =",
            "unknown key (expected one of abs, combine, outer_abs, outer_rel, rel)",
        ),
        (
            "cash_flow_min = 5000",
            'force_on_calendar = "no"',
            "extra.trigger.force_on_calendar",
            "force_on_calendar",
            "expected true or false, got 'no'",
        ),
        (
            "cash_flow_min = 5000",
            "cash_flow_min = true",
            "extra.trigger.cash_flow_min",
            "cash_flow_min",
            "got True",
        ),
        ("cash = 0.05", "cash = true", "extra.cash", "cash = true", "got True"),
        (
            "target = 0.45",
            "target = true",
            "extra.classes.US_EQUITY.target",
            "target = true",
            "got True",
        ),
        (
            'securities = ["VTI", "ITOT"]',
            'securities = "VTI"',
            "extra.classes.US_EQUITY.securities",
            'securities = "VTI"',
            "expected a list of symbols, preferred first, got 'VTI'",
        ),
        (
            'securities = ["VTI", "ITOT"]',
            'securities = ["VTI", 3]',
            "extra.classes.US_EQUITY.securities",
            "securities = ",
            "expected symbols (text), got 3",
        ),
        # Rules that were there without a test.
        (
            'securities = ["VTI", "ITOT"]',
            'securities = ["VTI", "NOPE"]',
            "extra.classes.US_EQUITY.securities",
            "securities = ",
            "unknown security 'NOPE'",
        ),
        (
            "band = { abs = 0.05 }",
            'band = { abs = 0.05, combine = "average" }',
            "extra.classes.US_EQUITY.band.combine",
            "band =",
            "expected tighter or looser, got 'average'",
        ),
        (
            "band = { abs = 0.05 }",
            "band = { abs = 0.05, outer_abs = 0.03 }",
            "extra.classes.US_EQUITY.band",
            "band =",
            "at least as wide as the inner band at the US_EQUITY target 0.45",
        ),
        (
            "band = { abs = 0.05 }\n",
            "band = { abs = 0.05 }\nweights = { VTI = 0.4, ITOT = 0.04 }\n",
            "extra.classes.US_EQUITY.weights",
            "weights =",
            "summing to the class target 0.45, got 0.44",
        ),
        (
            "band = { abs = 0.05 }\n",
            "band = { abs = 0.05 }\nweights = { VTI = 0.4, SCHB = 0.05 }\n",
            "extra.classes.US_EQUITY.weights.SCHB",
            "weights =",
            "expected one of the class's securities (VTI, ITOT), got 'SCHB'",
        ),
        (
            "[extra.classes.US_BONDS]",
            "[extra.classes.CASH]\ntarget = 0.0\nsecurities = []\n\n[extra.classes.US_BONDS]",
            "extra.classes.CASH",
            "[extra.classes.CASH]",
            "reserved",
        ),
    ],
)
def test_models_toml_value_problems(book, old, new, field, at, expected):
    text = add_extra(book, old, new)
    issue = find(validate_book(book), "models.toml", line_of(text, at, after="[extra]"), field)
    assert expected in issue.message


def test_models_toml_problem_is_reported_once(book):
    # The bad target is the only problem reported: it does not also break the sum of targets.
    add_extra(book, "target = 0.45", "target = -0.45")
    issues = extra_issues(book)
    assert [i.field for i in issues] == ["extra.classes.US_EQUITY.target"]


def test_class_targeted_by_class_and_by_security_is_rejected(book):
    text = add_extra(book, "cash = 0.05\n", "cash = 0.05\nsecurities = { IVV = 0.0 }\n")
    line = line_of(text, "securities = { IVV", after="[extra]")
    issue = find(validate_book(book), "models.toml", line, "extra.securities.IVV")
    assert "US_EQUITY" in issue.message and "not both" in issue.message


def test_targets_by_security(book):
    text = _models_text(book) + (
        "\n[bysec]\ncash = 0.02\n\n[bysec.securities]\nBND = 0.5\nVTI = 0.3\nITOT = 0.18\n"
    )
    (book / "models.toml").write_text(text)
    model = load_book(book).models["bysec"]
    assert model.class_targets == {"US_BONDS": 0.5, "US_EQUITY": 0.48, "CASH": 0.02}
    assert model.class_target("US_EQUITY").securities == ("VTI", "ITOT")
    (book / "models.toml").write_text(text.replace("ITOT = 0.18", "ITOT = true"))
    line = line_of(text, "ITOT = 0.18")
    issue = find(validate_book(book), "models.toml", line, "bysec.securities.ITOT")
    assert issue.message == "expected a weight in [0, 1], got True"


def test_tiered_band_is_compared_at_the_class_target(book):
    # Inner +/-5 pp, outer +/-50% of target: at the 45% US_EQUITY target the outer band is
    # +/-22.5 pp, wider than the inner one, so the tiers are valid ...
    tiered = "band = { abs = 0.05, outer_rel = 0.5 }"
    text = add_extra(book, "band = { abs = 0.05 }", tiered)
    assert validate_book(book) == []
    # ... while at a 5% target the same bands give an outer band of +/-2.5 pp, inside the
    # inner +/-5 pp: refused, at the class's band line.
    demo, extra = text.split("\n[extra]\n")
    extra = extra.replace("target = 0.45", "target = 0.05").replace("cash = 0.05", "cash = 0.45")
    text = f"{demo}\n[extra]\n{extra}"
    (book / "models.toml").write_text(text)
    line = line_of(text, "band = { abs = 0.05, outer_rel", after="[extra]")
    (issue,) = validate_book(book)
    assert (issue.file, issue.line, issue.field) == (
        "models.toml",
        line,
        "extra.classes.US_EQUITY.band",
    )
    assert "0.0250..0.0750 inside inner 0.0000..0.1000" in issue.message


def test_model_default_bands_are_checked_at_each_class_target(book):
    # Default bands inner +/-5 pp, outer +/-50%: fine for the 45% and 50% classes, not for
    # 5% cash; reported at the model's bands, naming the class.
    text = add_extra(
        book, "cash = 0.05\n", "cash = 0.05\nbands = { abs = 0.05, outer_rel = 0.5 }\n"
    )
    issues = extra_issues(book)
    assert [i.field for i in issues] == ["extra.bands"]
    assert issues[0].line == line_of(text, "bands =", after="[extra]")
    assert "CASH target 0.05" in issues[0].message


@pytest.mark.parametrize(
    ("name", "garbage"), [("models.toml", "[broken\n"), ("book.toml", "x = = 1\n")]
)
def test_malformed_toml(book, name, garbage):
    text = (book / name).read_text() + garbage
    (book / name).write_text(text)
    issues = validate_book(book)
    issue = find(issues, name, text.count("\n"), "(syntax)")
    assert "not valid TOML" in issue.message
    if name == "models.toml":  # accounts are not also reported for naming unknown models
        assert {i.file for i in issues} == {"models.toml"}


# -- book.toml -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        ("loss_benefit = true", "loss_benefit", "expected a number in [0, 1], got True"),
        (
            "tracking_error_value = inf",
            "tracking_error_value",
            "expected a number in [0, 1], got inf",
        ),
        ("hold_lt_days = true", "hold_lt_days", "whole number of days from 0 to 366, got True"),
        (
            "wash_window_days = 30.5",
            "wash_window_days",
            "whole number of days from 0 to 365, got 30.5",
        ),
        ("as_of = 2026-11-20T10:00:00", "as_of", "expected a date YYYY-MM-DD"),
        ("cash_flow_first = false", "cash_flow_first", "unknown setting"),
    ],
)
def test_book_toml_bad_setting(book, line, field, expected):
    text = (book / "book.toml").read_text()
    key = line.split(" =")[0]
    kept = [x for x in text.splitlines() if not x.startswith(key + " ")]
    text = "\n".join([*kept, line]) + "\n"
    (book / "book.toml").write_text(text)
    issue = find(validate_book(book), "book.toml", text.count("\n"), field)
    assert expected in issue.message


def test_book_toml_settings_must_be_a_table(book):
    (book / "book.toml").write_text("settings = 3\n")
    issue = find(validate_book(book), "book.toml", 1, "settings")
    assert issue.message == "expected a [settings] table, got 3"


def test_wash_window_days_is_read_and_written(book, tmp_path):
    (book / "book.toml").write_text("[settings]\nas_of = 2026-11-20\nwash_window_days = 31\n")
    loaded = load_book(book)
    assert loaded.settings.wash_window_days == 31
    write_book(loaded, tmp_path / "copy")
    assert load_book(tmp_path / "copy").settings == loaded.settings


# -- CSV files: empty ids, negative caps, references, cascades --------------------------------


def test_empty_ids_are_reported(book):
    edit_csv(book, "accounts.csv", 3, "account_id", "")
    edit_csv(book, "lots.csv", 2, "lot_id", "")
    issues = validate_book(book)
    assert "expected an account id" in find(issues, "accounts.csv", 5, "account_id").message
    assert "expected a lot id" in find(issues, "lots.csv", 4, "lot_id").message


@pytest.mark.parametrize("column", ["gain_budget", "st_gain_cap"])
def test_negative_gain_caps(book, column):
    edit_csv(book, "accounts.csv", 2, column, "-100")
    issue = find(validate_book(book), "accounts.csv", 4, column)
    assert issue.message == "expected a number >= 0, got '-100'"


def test_unknown_account_and_symbol_references(book):
    edit_csv(book, "lots.csv", 0, "account_id", "A9999")
    edit_csv(book, "trades.csv", 1, "symbol", "NOPE")
    issues = validate_book(book)
    assert find(issues, "lots.csv", 2, "account_id").message == "unknown account 'A9999'"
    assert find(issues, "trades.csv", 3, "symbol").message == "unknown symbol 'NOPE'"


def test_duplicate_symbol(book):
    securities = pd.read_csv(book / "securities.csv", dtype=str, keep_default_na=False)
    edit_csv(book, "securities.csv", 3, "symbol", securities.loc[1, "symbol"])
    issue = find(validate_book(book), "securities.csv", 5, "symbol")
    assert issue.message == f"duplicate symbol {securities.loc[1, 'symbol']!r}"


@pytest.mark.parametrize("name", ["models.toml", "securities.csv", "lots.csv", "accounts.csv"])
def test_missing_required_file_is_reported_once(book, name):
    (book / name).unlink()
    issues = validate_book(book)
    assert "missing file" in find(issues, name, None, "(file)").message
    # References to the missing file are not checked (each would repeat the problem).
    assert {i.file for i in issues} == {name}


@pytest.mark.parametrize(
    ("name", "column", "value"),
    [
        ("securities.csv", "price", "abc"),
        ("securities.csv", "asset_class", ""),
        ("accounts.csv", "cash", "lots"),
        ("accounts.csv", "registration", "401k"),
    ],
)
def test_one_bad_cell_is_one_issue(book, name, column, value):
    # VTI (row 18) and the first account are used all over the book; one bad cell of
    # their rows must not make every lot, trade and model naming them an error too.
    row = 18 if name == "securities.csv" else 0
    edit_csv(book, name, row, column, value)
    issues = validate_book(book)
    assert [(i.file, i.line, i.field) for i in issues] == [(name, row + 2, column)]


# -- written files -------------------------------------------------------------------------


def test_written_files_are_readable_by_others(tmp_path):
    from planner.io import write_outputs

    umask = os.umask(0o022)
    try:
        write_book(load_book(DEMO), tmp_path / "copy")
        write_outputs(tmp_path / "out", {"orders.csv": pd.DataFrame({"a": [1.0]})})
    finally:
        os.umask(umask)
    for file in [*(tmp_path / "copy").iterdir(), tmp_path / "out" / "orders.csv"]:
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file
