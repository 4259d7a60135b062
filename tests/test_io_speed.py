"""The fast readers and writers give exactly what the careful ones give.

lots.csv and trades.csv are read on a fast path (typed columns, vectorised checks) that
declines any file it cannot vouch for; the careful path (every cell as text) then reads it.
These tests compare the two paths on valid books, on books the fast path must decline, and
on invalid books (same messages); and the vectorised writers against the row-by-row ones.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.io import read as book_module
from planner.io import write as report
from planner.io.read import load_book, validate_book, write_book
from planner.positions import lot_arrays
from planner.synthetic import generate_benchmark_book

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def load_both(path: Path):
    """(book or issues) on the fast path, then on the careful path alone."""
    results = []
    for fast in (True, False):
        old = book_module.FAST_PATH
        book_module.FAST_PATH = fast
        try:
            results.append(book_module._load(path, None))
        finally:
            book_module.FAST_PATH = old
    return results


def assert_same(path: Path) -> None:
    (fast, fast_issues), (careful, careful_issues) = load_both(path)
    assert fast_issues == careful_issues
    assert (fast is None) == (careful is None)
    if fast is None:
        return
    for name in ("lots", "trades"):
        pd.testing.assert_frame_equal(getattr(fast, name), getattr(careful, name), check_exact=True)
    assert dict(fast.accounts) == dict(careful.accounts)
    assert dict(fast.securities) == dict(careful.securities)
    assert dict(fast.models) == dict(careful.models)
    assert fast.settings == careful.settings
    pd.testing.assert_frame_equal(fast.prices, careful.prices, check_exact=True)
    # Planning's lot arrays from the loader's codes equal those read from the frame.
    quick, slow = lot_arrays(fast), lot_arrays(careful)
    assert quick.symbols == slow.symbols and quick.ranges == slow.ranges
    assert quick.max_lots == slow.max_lots
    for name in ("symbol_code", "shares", "unit_cost", "acquired", "within"):
        np.testing.assert_array_equal(getattr(quick, name), getattr(slow, name))
    ids = quick.lot_id.tolist()
    assert [b.decode() if isinstance(b, bytes) else b for b in ids] == slow.lot_id.tolist()


@pytest.fixture
def demo(tmp_path) -> Path:
    path = tmp_path / "book"
    shutil.copytree(DEMO, path)
    return path


def test_fast_path_is_taken_on_the_demo():
    book = load_book(DEMO)
    accounts, symbols = set(book.accounts), set(book.securities)
    as_of = book.settings.as_of
    fast = book_module._fast_lots(DEMO, accounts, symbols, as_of)
    trades = book_module._fast_trades(DEMO, accounts, symbols, as_of)
    assert fast is not None and trades is not None
    lots, codes = fast
    pd.testing.assert_frame_equal(lots, book.lots, check_exact=True)
    # The ids and symbols planning reads are the frame's, as bytes and codes.
    assert [b.decode() for b in codes.lot_id_bytes.tolist()] == book.lots["lot_id"].tolist()
    assert codes.symbol_names[codes.symbol_code].tolist() == book.lots["symbol"].tolist()
    assert lot_arrays(book).lot_id is book._loader_codes.lot_id_bytes


def test_demo_same_on_both_paths():
    assert_same(DEMO)


def test_benchmark_book_same_on_both_paths(tmp_path):
    generated = generate_benchmark_book(30, n_securities=12, lots_per_holding=4, seed=3)
    write_book(generated, tmp_path)
    assert_same(tmp_path)
    fast = book_module._fast_lots(
        tmp_path, set(generated.accounts), set(generated.securities), generated.settings.as_of
    )
    assert fast is not None  # the fast path reads what write_book writes


def edit_lines(path: Path, name: str, edit) -> None:
    lines = (path / name).read_text().split("\n")
    (path / name).write_text("\n".join(edit(lines)))


# Each edit keeps the book valid (or makes it invalid) in a way the fast path must either
# read exactly as the careful path does, or decline.
EDITS = {
    "unsorted": lambda lines: [lines[0], *reversed(lines[1:-1]), ""],
    "blank around an id": lambda lines: (
        [lines[0], " " + lines[1].replace(",", " ,", 1)] + lines[2:]
    ),
    "tab around a lot id": lambda lines: [lines[0], lines[1].replace(",", ",\t", 1)] + lines[2:],
    "blank around a number": lambda lines: [lines[0], lines[1].replace(",", ", ", 3)] + lines[2:],
    "quoted cells": lambda lines: (
        [lines[0]] + ['"' + x.replace(",", '","') + '"' for x in lines[1:-1]] + [""]
    ),
    "CRLF": lambda lines: [x + "\r" for x in lines[:-1]] + [""],
    "no final newline": lambda lines: lines[:-1],
    "blank line": lambda lines: [lines[0], lines[1], "", *lines[2:]],
    "non-ASCII lot id": lambda lines: [lines[0], lines[1].replace("-L", "-Lé", 1)] + lines[2:],
    # Ids the line-joined text path leaves to the general one, and one it takes.
    "newline inside a quoted lot id": lambda lines: (
        [lines[0], '{},"{}\nx",{}'.format(*lines[1].split(",", 2))] + lines[2:]
    ),
    "blank inside a lot id": lambda lines: [lines[0], lines[1].replace("-L", "- L", 1)] + lines[2:],
    "long lot id": lambda lines: (
        [lines[0], lines[1].replace("-L", "-L" + "x" * 300, 1)] + lines[2:]
    ),
    "integer numbers": lambda lines: (
        [lines[0]]
        + [",".join(x.split(",")[:3] + ["7", "12"] + x.split(",")[5:]) for x in lines[1:-1]]
        + [""]
    ),
    "-0 cost": lambda lines: (
        [lines[0], ",".join(lines[1].split(",")[:4] + ["-0"]) + "," + lines[1].split(",")[5]]
        + lines[2:]
    ),
    "huge shares": lambda lines: (
        [
            lines[0],
            ",".join(lines[1].split(",")[:3] + ["1e17"]) + "," + ",".join(lines[1].split(",")[4:]),
        ]
        + lines[2:]
    ),
    "columns reordered": lambda lines: [
        ",".join(reversed(x.split(","))) if x else x for x in lines
    ],
    "extra column": lambda lines: [lines[0] + ",note"] + [x + ",n" if x else x for x in lines[1:]],
    "bad number": lambda lines: [lines[0], lines[1].replace(".", "x", 1)] + lines[2:],
    "empty lot id": lambda lines: (
        [lines[0], ",".join([lines[1].split(",")[0], ""]) + "," + ",".join(lines[1].split(",")[2:])]
        + lines[2:]
    ),
    "duplicate lot": lambda lines: [lines[0], lines[1], *lines[1:]],
    "unknown symbol": lambda lines: [lines[0], lines[1].replace(",", ",X", 2)] + lines[2:],
    "late date": lambda lines: (
        [lines[0], lines[1][: lines[1].rindex(",")] + ",2031-01-02"] + lines[2:]
    ),
    "bad date": lambda lines: (
        [lines[0], lines[1][: lines[1].rindex(",")] + ",2024-02-30"] + lines[2:]
    ),
    # Dates the compiled ISO reader leaves to the general path: they must come out the same.
    "one-digit month": lambda lines: (
        [lines[0], lines[1][: lines[1].rindex(",")] + ",2024-2-05"] + lines[2:]
    ),
    "date before datetime64[ns]": lambda lines: (
        [lines[0], lines[1][: lines[1].rindex(",")] + ",1650-01-01"] + lines[2:]
    ),
    "leap day": lambda lines: (
        [lines[0], lines[1][: lines[1].rindex(",")] + ",2024-02-29"] + lines[2:]
    ),
    "ragged row": lambda lines: [lines[0], lines[1] + ",1"] + lines[2:],
    "header only": lambda lines: [lines[0], ""],
}


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("name", ["lots.csv", "trades.csv"])
def test_edited_files_same_on_both_paths(demo, name, edit):
    edit_lines(demo, name, EDITS[edit])
    assert_same(demo)


def test_trades_without_realized_gain_and_with_odd_gains(demo):
    frame = pd.read_csv(demo / "trades.csv", dtype=str, keep_default_na=False)
    frame.drop(columns=["realized_gain"]).to_csv(demo / "trades.csv", index=False)
    assert_same(demo)
    for value in ("nan", "-0", "1e400", " 12.5", "12,5"):
        odd = frame.copy()
        odd.loc[3, "realized_gain"] = value
        odd.to_csv(demo / "trades.csv", index=False)
        assert_same(demo)


def test_invalid_large_file_reports_like_the_careful_path(tmp_path):
    write_book(generate_benchmark_book(40, n_securities=10, lots_per_holding=3, seed=5), tmp_path)
    edit_lines(
        tmp_path, "lots.csv", lambda lines: [lines[0], lines[1].replace(".", ";")] + lines[2:]
    )
    (_, fast), (_, careful) = load_both(tmp_path)
    assert fast == careful and len(fast) == 2
    assert fast == validate_book(tmp_path)


# -- writers -------------------------------------------------------------------------------


def old_write(frame: pd.DataFrame) -> str:
    """What write_outputs wrote before: every cell through _format_value, then to_csv."""
    out = {}
    for col in frame.columns:
        fmt = report.COLUMN_FORMATS.get(col)
        if fmt is None and col.startswith(("pre_", "post_")):
            fmt = report.WEIGHT
        out[col] = [report._format_value(v, fmt) for v in frame[col].tolist()]
    handle = io.StringIO()
    pd.DataFrame(out, columns=list(frame.columns)).to_csv(handle, index=False, lineterminator="\n")
    return handle.getvalue()


def new_write(frame: pd.DataFrame) -> str:
    handle = io.StringIO()
    report._write_csv(handle, frame)
    return handle.getvalue()


def awkward_floats(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, n) * 10.0 ** rng.integers(-9, 12, n)
    values[rng.random(n) < 0.1] = np.nan
    values[rng.random(n) < 0.05] = -0.0
    values[rng.random(n) < 0.05] = -4e-7  # prints as -0.000000 with 6 places
    values[rng.random(n) < 0.05] = -0.004  # -0.00 with 2 places
    values[rng.random(n) < 0.02] = np.inf
    values[rng.random(n) < 0.02] = -np.inf
    values[rng.random(n) < 0.05] = 0.125  # a tie at 2 places: printed 0.12
    # Decimal half-way points whose binary value is just above or below: 5505.665 is a
    # cost of 1.1 * 5005.15; 2.00005 and 5e-7 are ties at 4 and 6 places.
    ties = np.array([5505.665, -38.855, 1519.685, -9301.135, 2.00005, 5e-7, -5e-7, 0.0000015])
    at = rng.random(n) < 0.1
    values[at] = ties[rng.integers(0, len(ties), at.sum())]
    return values


def test_write_outputs_bytes_match_the_old_formatter():
    n = 400
    rng = np.random.default_rng(1)
    texts = np.array(["a", "b,c", 'say "hi"', "two\nlines", "", "x"], dtype=object)
    frame = pd.DataFrame(
        {
            "account_id": [f"A{i:04d}" for i in range(n)],
            "shares": awkward_floats(n, 2),
            "est_price": awkward_floats(n, 3),
            "est_value": awkward_floats(n, 4),
            "solve_ms": awkward_floats(n, 5),
            "pre_US_EQUITY": awkward_floats(n, 6),
            "unnamed": awkward_floats(n, 7),
            "passes": rng.integers(-3, 30, n),
            "flag": rng.random(n) < 0.5,
            "reason": texts[rng.integers(0, len(texts), n)],
            "object": pd.Series([None, 1.5, "t", np.nan, 3, -0.0] * (n // 6) + [None] * (n % 6)),
            "maybe": pd.Series(["u", None] * (n // 2), dtype=str),
            "f32": awkward_floats(n, 8).astype(np.float32),
        }
    )
    assert new_write(frame) == old_write(frame)
    for cols in (["reason", "shares"], ["shares"], ["reason"], ["maybe", "shares"]):
        assert new_write(frame[cols]) == old_write(frame[cols])
        assert new_write(frame[cols].iloc[:0]) == old_write(frame[cols].iloc[:0])
    assert new_write(frame.assign(reason="carriage\rreturn")) == old_write(
        frame.assign(reason="carriage\rreturn")
    )


def test_write_outputs_of_a_demo_plan(tmp_path):
    from planner.run import plan

    result = plan(load_book(DEMO), workers=1)
    files = {"orders.csv": result.orders, "lot_sales.csv": result.lot_sales}
    files["summary.csv"] = result.summary
    written = report.write_outputs(tmp_path, files)
    for path in written:
        assert path.read_text() == old_write(files[path.name]), path.name


def test_number_bytes_match_fmt_and_format_value():
    for decimals in (2, 3, 4, 6):
        values = awkward_floats(5000, decimals)
        values = values[np.isnan(values) | (np.abs(values) < 1e8)]
        stripped = report.number_bytes(values, decimals, strip=True)
        fixed = report.number_bytes(values, decimals)
        texts = [bytes(r[r != 0]).decode() for r in stripped]
        assert texts == [book_module._fmt(float(v), decimals) for v in values]
        texts = [bytes(r[r != 0]).decode() for r in fixed]
        fmt = "{:." + str(decimals) + "f}"
        assert texts == [report._format_value(float(v), fmt) for v in values]
    with pytest.raises(report.Slow):
        report.number_bytes(np.array([1.0, np.inf]), 2)
    with pytest.raises(report.Slow):
        report.number_bytes(np.array([1e13]), 2)


def row_by_row_lots(lots: pd.DataFrame) -> str:
    columns = [
        lots["account_id"].tolist(),
        lots["lot_id"].tolist(),
        lots["symbol"].tolist(),
        [book_module._fmt(float(v), 6) for v in lots["shares"]],
        [book_module._fmt(float(v), 4) for v in lots["unit_cost"]],
        pd.to_datetime(lots["acquired"]).dt.strftime("%Y-%m-%d").tolist(),
    ]
    return "".join(book_module._csv_columns(columns, list(lots.columns)))


def row_by_row_trades(t: pd.DataFrame) -> str:
    columns = [
        t["account_id"].tolist(),
        [pd.Timestamp(d).strftime("%Y-%m-%d") for d in t["trade_date"]],
        t["symbol"].tolist(),
        t["side"].tolist(),
        [book_module._fmt(float(v), 6) for v in t["shares"]],
        [book_module._fmt(float(v), 4) for v in t["price"]],
        [book_module._fmt(float(v), 2) for v in t["realized_gain"]],
    ]
    return "".join(book_module._csv_columns(columns, list(t.columns)))


@pytest.mark.parametrize("unsafe", [False, True])
def test_write_book_lots_and_trades_as_row_by_row(tmp_path, unsafe):
    book = load_book(DEMO)
    lots = book.lots.copy()
    lots.loc[3, "lot_id"] = "Lé-ü"
    lots.loc[5, "shares"] = 1e-7
    lots.loc[7, "shares"] = 0.0000005  # a half-way case: 0.000001 or 0.000000?
    trades = book.trades.copy()
    trades.loc[2, "realized_gain"] = -0.001
    trades.loc[4, "realized_gain"] = -0.0
    if unsafe:  # too near half-way for the vectorised writer: written row by row
        lots.loc[6, "unit_cost"] = 2.00005
        trades.loc[3, "price"] = 1e300
    copy = book_module.Book(
        book.securities, book.models, book.accounts, lots, trades, book.prices, book.settings
    )
    write_book(copy, tmp_path)
    assert (tmp_path / "lots.csv").read_text() == row_by_row_lots(lots)
    assert (tmp_path / "trades.csv").read_text() == row_by_row_trades(trades)
    for chunk in (1, 97):
        text = book_module._vector_csv(
            [
                ("text", book.lots["account_id"]),
                ("id", book.lots["lot_id"]),
                ("text", book.lots["symbol"]),
                ("number", book.lots["shares"], 6),
                ("number", book.lots["unit_cost"], 4),
                ("day", book.lots["acquired"], False),
            ],
            list(book.lots.columns),
            chunk=chunk,
        )
        assert "".join(text) == row_by_row_lots(book.lots)


def test_write_book_of_the_demo_is_the_demo(tmp_path):
    write_book(load_book(DEMO), tmp_path)
    for name in ("lots.csv", "trades.csv", "accounts.csv", "securities.csv", "prices.csv"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_benchmark_book_values_unchanged(tmp_path):
    # lots.csv of this seed as the generator wrote it before it was vectorised.
    write_book(generate_benchmark_book(20, n_securities=30, lots_per_holding=3, seed=1), tmp_path)
    digest = hashlib.sha256((tmp_path / "lots.csv").read_bytes()).hexdigest()
    assert digest == "a730194d7af9cc923bebb563e6132520227316d3093f0308cbf6d364cd409fd3"
    write_book(generate_benchmark_book(7, n_securities=12, lots_per_holding=1, seed=4), tmp_path)
    digest = hashlib.sha256((tmp_path / "lots.csv").read_bytes()).hexdigest()
    assert digest == "306b515e8913b1aa5b6bfb859227b8011e16b401217afbdb0c9cad5831abe5ae"


def test_benchmark_lots_sorted_as_by_text():
    book = generate_benchmark_book(3, n_securities=1003, lots_per_holding=12, seed=2)
    lots = book.lots
    again = lots.sort_values(
        ["account_id", "symbol", "acquired", "lot_id"], kind="stable", ignore_index=True
    )
    pd.testing.assert_frame_equal(lots, again, check_exact=True)


def as_if_single_threaded(monkeypatch) -> None:
    """The writer forks only in a single-threaded process; a thread an earlier test left
    behind (a Dask cluster's) must not turn these tests into serial writes."""
    monkeypatch.setattr(report.threading, "active_count", lambda: 1)


def test_the_largest_file_written_by_a_child_is_byte_identical(tmp_path, monkeypatch):
    from planner.run import plan

    files = plan(load_book(DEMO), workers=1).files()
    serial = report.write_outputs(tmp_path / "serial", files)
    monkeypatch.setattr(report, "PARALLEL_ROWS", 1)  # every run forks a writer
    as_if_single_threaded(monkeypatch)
    children = []
    real_fork = report._fork_writer
    monkeypatch.setattr(
        report, "_fork_writer", lambda *a: children.append(real_fork(*a)) or children[-1]
    )
    forked = report.write_outputs(tmp_path / "forked", files)
    assert len(children) == 1
    assert [p.name for p in forked] == [p.name for p in serial]
    for a, b in zip(serial, forked, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
        assert a.stat().st_mode == b.stat().st_mode
    assert sorted(p.name for p in (tmp_path / "forked").iterdir()) == sorted(files)


def test_a_failing_child_writer_fails_the_write_and_leaves_nothing(tmp_path, monkeypatch):
    frames = {
        "big.csv": pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0)}),
        "small.csv": pd.DataFrame({"a": [1.0], "b": [2.0]}),
    }
    real = report._write_csv

    def broken(handle, frame):
        if len(frame) == 50:  # only the child writes this one
            raise ValueError("disk on fire")
        real(handle, frame)

    monkeypatch.setattr(report, "PARALLEL_ROWS", 10)
    as_if_single_threaded(monkeypatch)
    monkeypatch.setattr(report, "_write_csv", broken)
    with pytest.raises(OSError, match=r"writing big\.csv failed: ValueError: disk on fire"):
        report.write_outputs(tmp_path / "out", frames)
    assert list((tmp_path / "out").iterdir()) == []


def test_lot_ids_planned_from_bytes_are_the_books_text(tmp_path):
    from dataclasses import replace

    from planner.run import plan

    generated = generate_benchmark_book(20, n_securities=8, lots_per_holding=3, seed=1)
    lots = generated.lots.assign(lot_id=generated.lots["lot_id"] + "-é")  # not ASCII
    generated = replace(generated, lots=lots)
    write_book(generated, tmp_path)
    book = load_book(tmp_path)
    assert lot_arrays(book).lot_id.dtype.kind == "S"  # read from disk: bytes
    assert lot_arrays(generated).lot_id.dtype == object  # built in memory: the str objects
    from_disk = plan(book, executor="serial").lot_sales
    in_memory = plan(generated, executor="serial").lot_sales
    assert len(from_disk) > 0
    pd.testing.assert_frame_equal(from_disk, in_memory, check_exact=True)
    assert from_disk["lot_id"].str.endswith("-é").all()


def test_no_forked_writer_while_other_threads_run(tmp_path, monkeypatch):
    import threading

    def no_fork(*args):
        raise AssertionError("forked with another thread alive")

    monkeypatch.setattr(report, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(report, "_fork_writer", no_fork)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        frames = {n: pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}) for n in ("x.csv", "y.csv")}
        written = report.write_outputs(tmp_path, frames)
    finally:
        stop.set()
        other.join()
    assert [p.read_text() for p in written] == ["a,b\n1.000000,3.000000\n2.000000,4.000000\n"] * 2


def test_books_are_read_and_plans_written_without_huge_pages(tmp_path, monkeypatch):
    core = getattr(np, "_core", None) or np.core
    get = getattr(core.multiarray, "_get_madvise_hugepage", None)
    if get is None:
        pytest.skip("this numpy has no huge-page switch")
    seen = []
    real = book_module._load

    def spy(path, as_of):
        seen.append(get())
        return real(path, as_of)

    monkeypatch.setattr(book_module, "_load", spy)
    real_csv = report._write_csv

    def spy_csv(handle, frame):
        seen.append(get())
        real_csv(handle, frame)

    monkeypatch.setattr(report, "_write_csv", spy_csv)
    before = get()
    load_book(DEMO)
    book_module.validate_book(DEMO)
    report.write_outputs(tmp_path, {"a.csv": pd.DataFrame({"x": [1.0], "y": [2.0]})})
    assert seen == [False, False, False]
    assert get() == before


def test_a_book_replaced_from_a_loaded_one_plans_with_its_own_lot_ids():
    from dataclasses import replace

    loaded = load_book(DEMO)
    renamed = replace(loaded, lots=loaded.lots.assign(lot_id=loaded.lots["lot_id"] + "x"))
    ids = lot_arrays(renamed).lot_id
    assert ids.dtype == object and all(i.endswith("x") for i in ids)


def test_universe_holds_what_the_models_accounts_hold():
    """The one-pass universe (lot rows flagged per account) against a per-account scan, on
    the demo's three models, and on a book where one model has every account."""
    from planner.program.inputs import universe_for

    demo = load_book(DEMO)
    single = generate_benchmark_book(12, n_securities=9, lots_per_holding=2, seed=4)
    for book in (demo, single):
        for model in book.models.values():
            own = list(model.securities)
            held = set()
            for a, account in book.accounts.items():
                if account.model == model.name:
                    held |= set(book.lot_frame(a)["symbol"])
            expected = tuple(own + sorted(held - set(own)))
            assert universe_for(book, model).symbols == expected
