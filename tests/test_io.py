"""planner.io: books read from CSV or Parquet, rows named as people find them, and files
written with fixed, correctly rounded numbers."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.benchmark_book import generate_benchmark_book
from planner.errors import OutputError
from planner.io import load_book, validate_book, write_book, write_outputs
from planner.io.write import fixed, format_frame
from planner.run import plan

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.fixture
def demo(tmp_path) -> Path:
    path = tmp_path / "book"
    shutil.copytree(DEMO, path)
    return path


def assert_same_book(a, b) -> None:
    for name in ("lots", "trades"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert dict(a.accounts) == dict(b.accounts)
    assert dict(a.securities) == dict(b.securities)
    assert dict(a.models) == dict(b.models)
    assert a.settings == b.settings
    pd.testing.assert_frame_equal(a.prices, b.prices, check_exact=True)


# -- writing books ---------------------------------------------------------------------------


def test_write_book_of_the_demo_is_the_demo(tmp_path):
    write_book(load_book(DEMO), tmp_path)
    for name in ("lots.csv", "trades.csv", "accounts.csv", "securities.csv", "prices.csv"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_benchmark_book_values_unchanged(tmp_path):
    # lots.csv of these seeds as the generator and writer have always written it.
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


def test_a_written_book_reads_back_the_same(tmp_path):
    book = generate_benchmark_book(30, n_securities=20, lots_per_holding=4, seed=3)
    write_book(book, tmp_path / "csv")
    again = load_book(tmp_path / "csv")
    assert np.allclose(again.lots["shares"], book.lots["shares"], rtol=0, atol=5e-7)
    assert list(again.lots["lot_id"]) == list(book.lots["lot_id"])


# -- Parquet books ---------------------------------------------------------------------------


def test_a_parquet_copy_of_the_demo_is_the_same_book_and_plans_the_same(tmp_path):
    csv_book = load_book(DEMO)
    write_book(csv_book, tmp_path / "pq", format="parquet")
    assert not list((tmp_path / "pq").glob("*.csv"))
    parquet_book = load_book(tmp_path / "pq")
    assert_same_book(csv_book, parquet_book)
    a, b = plan(csv_book), plan(parquet_book)
    pd.testing.assert_frame_equal(a.orders, b.orders, check_exact=True)
    pd.testing.assert_frame_equal(a.lot_sales, b.lot_sales, check_exact=True)


def test_parquet_tables_may_hold_dates_and_lists_as_text(tmp_path):
    book = load_book(DEMO)
    write_book(book, tmp_path, format="parquet")
    accounts = pd.read_parquet(tmp_path / "accounts.parquet")
    accounts["last_rebalanced"] = accounts["last_rebalanced"].astype(str).replace("NaT", "")
    accounts["do_not_buy"] = [";".join(v) for v in accounts["do_not_buy"]]
    accounts.to_parquet(tmp_path / "accounts.parquet", index=False)
    assert dict(load_book(tmp_path).accounts) == dict(book.accounts)


def test_a_bad_parquet_cell_names_its_row(tmp_path):
    write_book(load_book(DEMO), tmp_path, format="parquet")
    lots = pd.read_parquet(tmp_path / "lots.parquet")
    lots.loc[6, "shares"] = -2.0
    lots.to_parquet(tmp_path / "lots.parquet", index=False)
    issues = validate_book(tmp_path)
    assert [(i.file, i.line, i.field) for i in issues] == [("lots.parquet", 7, "shares")]
    assert str(issues[0]).startswith("lots.parquet row 7: shares: expected a number > 0")


def test_csv_and_parquet_of_one_table_is_an_error(demo):
    pd.read_csv(demo / "lots.csv").to_parquet(demo / "lots.parquet", index=False)
    issues = validate_book(demo)
    assert len(issues) == 1
    assert "lots.csv and lots.parquet" in issues[0].message


# -- rows as people find them ----------------------------------------------------------------


def test_lines_count_blank_lines_and_quoted_newlines(demo):
    header, *rows = (demo / "accounts.csv").read_text().splitlines()
    columns = header.split(",")
    first = rows[0].split(",")
    first[columns.index("do_not_buy")] = '"AGG;\nBND"'  # a quoted newline: two lines
    bad = rows[3].split(",")
    bad[4] = "lots"  # cash
    text = [header, ",".join(first), "", rows[1], rows[2], ",".join(bad)]
    (demo / "accounts.csv").write_text("\n".join(text) + "\n")
    issues = [i for i in validate_book(demo) if i.file == "accounts.csv"]
    # header 1, the first row 2-3, a blank line 4, rows on 5 and 6, the bad one on 7
    assert [(i.line, i.field) for i in issues] == [(7, "cash")]


def test_a_short_row_is_reported_at_its_line(demo):
    lines = (demo / "accounts.csv").read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:8])
    (demo / "accounts.csv").write_text("\n".join(lines) + "\n")
    issues = validate_book(demo)
    assert [(i.file, i.line, i.field) for i in issues] == [("accounts.csv", 3, "(row)")]
    assert "got 8" in issues[0].message


def test_an_unquoted_thousands_separator_on_the_first_row_is_one_issue(demo):
    lines = (demo / "lots.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[3] = "1,234.5"
    lines[1] = ",".join(cells)
    (demo / "lots.csv").write_text("\n".join(lines) + "\n")
    issues = validate_book(demo)
    assert [(i.file, i.line, i.field) for i in issues] == [("lots.csv", 2, "(row)")]


def test_a_long_cell_is_echoed_short(demo):
    lines = (demo / "securities.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[2] = "9" * 50 + "x" * 5000
    lines[1] = ",".join(cells)
    (demo / "securities.csv").write_text("\n".join(lines) + "\n")
    (issue,) = validate_book(demo)
    assert (issue.line, issue.field) == (2, "price")
    assert len(issue.message) < 140 and "…" in issue.message


def test_unsorted_lots_load_as_sorted(demo):
    lots = pd.read_csv(demo / "lots.csv", dtype=str, keep_default_na=False)
    lots.sample(frac=1.0, random_state=0).to_csv(demo / "lots.csv", index=False)
    assert_same_book(load_book(demo), load_book(DEMO))


def test_duplicate_lot_ids_in_an_unsorted_file_name_the_later_row(demo):
    lots = pd.read_csv(demo / "lots.csv", dtype=str, keep_default_na=False)
    lots = lots.iloc[::-1].reset_index(drop=True)
    first = lots.iloc[0]
    twin = lots.index[(lots["account_id"] == first["account_id"])][3]
    lots.loc[twin, "lot_id"] = first["lot_id"]
    lots.to_csv(demo / "lots.csv", index=False)
    issues = validate_book(demo)
    assert [(i.file, i.line, i.field) for i in issues] == [("lots.csv", twin + 2, "lot_id")]


# -- plan files --------------------------------------------------------------------------


def test_fixed_numbers_round_as_python_formats_them():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.normal(0, 1e4, 20_000),
            np.round(rng.normal(0, 1e3, 20_000), 3) + 0.005,  # ties in decimal
            [0.665, 5505.665, 2.675, 1.005, -0.001, -0.004, -0.0, 1e-9, -1e-9, 0.125, 2.5],
        ]
    )
    for decimals in (2, 4, 6):
        expected = [f"{v:.{decimals}f}" for v in values.tolist()]
        expected = [e[1:] if e.startswith("-") and float(e) == 0 else e for e in expected]
        assert fixed(values, decimals).to_pylist() == expected
    assert fixed([np.nan, 1.5], 2).to_pylist() == ["", "1.50"]
    assert fixed([1.50, 100.0, 0.0, 2.125], 4, strip=True).to_pylist() == [
        "1.5",
        "100",
        "0",
        "2.125",
    ]


def test_written_text_is_quoted_as_the_csv_module_quotes_it(tmp_path):
    frame = pd.DataFrame(
        {
            "account_id": ["A1", "A,2", 'A"3', "A\n4"],
            "reason": ["x", "", "y, z", "w"],
            "est_value": [1.0, -0.001, 2.345, np.nan],
            "passes": [1, 2, 3, 4],
        }
    )
    (path,) = write_outputs(tmp_path, {"orders.csv": frame})
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(frame.columns)
    writer.writerows(format_frame(frame).itertuples(index=False))
    assert path.read_text() == expected.getvalue()
    assert path.read_text().splitlines()[2].startswith('"A,2",,0.00,')


def test_plan_files_as_parquet_hold_the_csv_numbers(tmp_path):
    result = plan(load_book(DEMO))
    write_outputs(tmp_path / "csv", result.files())
    write_outputs(tmp_path / "pq", result.files(), format="parquet")
    for name in ("orders", "lot_sales", "summary"):
        text = pd.read_csv(tmp_path / "csv" / f"{name}.csv", keep_default_na=False)
        typed = pd.read_parquet(tmp_path / "pq" / f"{name}.parquet")
        assert list(text.columns) == list(typed.columns)
        for column in typed.columns:
            if pd.api.types.is_float_dtype(typed[column].dtype):
                np.testing.assert_array_equal(
                    pd.to_numeric(text[column]).to_numpy(dtype=float), typed[column].to_numpy()
                )


def test_write_outputs_writes_nothing_when_a_file_fails(tmp_path, monkeypatch):
    from planner.io import outputs

    real = outputs.write_csv_frame

    def failing(path, frame):
        if "b" in frame.columns:
            raise OSError(28, "No space left on device", str(path))
        real(path, frame)

    monkeypatch.setattr(outputs, "write_csv_frame", failing)
    with pytest.raises(OutputError, match="No space left on device"):
        write_outputs(
            tmp_path, {"a.csv": pd.DataFrame({"a": [1.0]}), "b.csv": pd.DataFrame({"b": [1.0]})}
        )
    assert [p.name for p in tmp_path.iterdir()] == [".rebalance.lock"]


# -- hostile input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "column", "value"),
    [
        ("accounts.csv", "account_id", "=HYPERLINK(1)"),
        ("accounts.csv", "account_id", "@SUM(1+1)"),
        ("accounts.csv", "household_id", "+cmd"),
        ("lots.csv", "lot_id", "-1"),
        ("lots.csv", "lot_id", "L\x1b[31m"),
        ("lots.csv", "lot_id", "L" * 65),
        ("securities.csv", "wash_group", "G\x07"),
    ],
)
def test_ids_a_spreadsheet_or_terminal_would_run_are_refused(demo, name, column, value):
    rows = pd.read_csv(demo / name, dtype=str, keep_default_na=False)
    rows.loc[3, column] = value
    rows.to_csv(demo / name, index=False)
    issues = [i for i in validate_book(demo) if i.file == name and i.field == column]
    assert issues and issues[0].line == 5, issues
    assert "printable characters" in issues[0].message


def test_a_lot_id_with_a_newline_is_refused(demo):
    rows = pd.read_csv(demo / "lots.csv", dtype=str, keep_default_na=False)
    rows.loc[0, "lot_id"] = "L\n1"
    rows.to_csv(demo / "lots.csv", index=False)
    (issue,) = validate_book(demo)
    assert (issue.file, issue.line, issue.field) == ("lots.csv", 2, "lot_id")


def test_a_date_must_be_iso(demo):
    rows = pd.read_csv(demo / "lots.csv", dtype=str, keep_default_na=False)
    rows.loc[0, "acquired"] = "2025-1-2"
    rows.to_csv(demo / "lots.csv", index=False)
    (issue,) = validate_book(demo)
    assert (issue.line, issue.field) == (2, "acquired")
    assert "YYYY-MM-DD" in issue.message


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("wash_window_days = 1000000000", "from 0 to 365"),
        ("hold_lt_days = 400", "from 0 to 366"),
        ("tracking_error_value = 5", "in [0, 1]"),
        ("as_of = 9999-12-31", "from 1900-01-01 to 2199-12-31"),
    ],
)
def test_every_setting_is_range_checked(demo, setting, expected):
    key = setting.split(" =")[0]
    kept = [line for line in (demo / "book.toml").read_text().splitlines() if key not in line]
    (demo / "book.toml").write_text("\n".join([*kept, setting]) + "\n")
    (issue,) = validate_book(demo)
    assert (issue.file, issue.field) == ("book.toml", key)
    assert expected in issue.message


def test_an_as_of_date_far_from_the_lots_is_refused():
    from datetime import date

    (issue,) = validate_book(DEMO, as_of=date(9999, 12, 31))
    assert issue.field == "as_of" and "2199-12-31" in issue.message


@pytest.mark.parametrize("name", ["lots.csv", "models.toml"])
def test_a_device_instead_of_a_file_is_refused_before_reading(demo, name):
    (demo / name).unlink()
    (demo / name).symlink_to("/dev/zero")
    issues = validate_book(demo)
    assert [(i.file, i.field, i.message) for i in issues] == [
        (name, "(file)", "expected a regular file")
    ]


def test_a_line_over_the_limit_is_refused_and_not_echoed(demo):
    from planner.io.tables import MAX_LINE_BYTES

    with open(demo / "lots.csv", "a") as handle:
        handle.write("x" * (MAX_LINE_BYTES + 10) + "\n")
    issues = validate_book(demo)
    assert len(issues) == 1 and issues[0].file == "lots.csv"
    assert len(str(issues[0])) < 200


def test_two_header_names_equal_after_stripping_are_one_issue(demo):
    text = (demo / "securities.csv").read_text().splitlines()
    text[0] = text[0] + ", symbol"
    text[1:] = [line + ",X" for line in text[1:]]
    (demo / "securities.csv").write_text("\n".join(text) + "\n")
    issues = validate_book(demo)
    assert [(i.file, i.line, i.field) for i in issues] == [("securities.csv", 1, "symbol")]
    assert "duplicate column" in issues[0].message


def test_text_cells_a_spreadsheet_would_run_are_quoted(tmp_path):
    frame = pd.DataFrame(
        {"account_id": ["A1", "A2"], "reason": ["=1+1", "rebalance"], "est_value": [-1.0, 2.0]}
    )
    (path,) = write_outputs(tmp_path, {"orders.csv": frame})
    assert path.read_text().splitlines()[1:] == ["A1,'=1+1,-1.00", "A2,rebalance,2.00"]


# -- the output folder ---------------------------------------------------------------------


def _set(tag: str) -> dict[str, pd.DataFrame]:
    return {f"{name}.csv": pd.DataFrame({"x": [tag]}) for name in ("orders", "lot_sales")}


def _read_set(out: Path) -> set[str]:
    return {pd.read_csv(out / f"{name}.csv")["x"][0] for name in ("orders", "lot_sales")}


def test_a_set_is_switched_in_one_step(tmp_path, monkeypatch):
    from planner.io import outputs

    out = tmp_path / "out"
    write_outputs(out, _set("old"))
    real_replace = os.replace

    def killed_at_the_switch(src, dst):
        if Path(dst).name == ".plan.csv":
            raise OSError(5, "Input/output error", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", killed_at_the_switch)
    with pytest.raises(OutputError):
        write_outputs(out, _set("new"))
    assert _read_set(out) == {"old"}  # all old, no new file beside an old one
    monkeypatch.undo()
    write_outputs(out, _set("new"))
    assert _read_set(out) == {"new"}
    assert len(list(out.glob(".plan.csv-*"))) == 1  # the previous set is gone


def test_a_killed_runs_leftovers_are_removed_by_the_next(tmp_path):
    out = tmp_path / "out"
    write_outputs(out, _set("one"))
    (out / ".plan.csv-deadbeef0000").mkdir()
    (out / ".plan.csv-deadbeef0000" / "orders.csv").write_text("x\nhalf")
    (out / ".orders.csv.link").symlink_to("nowhere")
    write_outputs(out, _set("two"))
    assert not (out / ".plan.csv-deadbeef0000").exists()
    assert not (out / ".orders.csv.link").is_symlink()
    assert _read_set(out) == {"two"}


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    from planner.io import OutputFolder

    with (
        OutputFolder(tmp_path / "out"),
        pytest.raises(OutputError, match="another rebalance run"),
        OutputFolder(tmp_path / "out"),
    ):
        pass
    with OutputFolder(tmp_path / "out"):  # free again once the first is done
        pass


def test_an_older_plain_output_file_becomes_a_link(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "orders.csv").write_text("stale\n")
    write_outputs(out, _set("fresh"))
    assert (out / "orders.csv").is_symlink() and _read_set(out) == {"fresh"}


def test_a_byte_order_mark_is_not_part_of_the_header(demo):
    for name in ("lots.csv", "accounts.csv"):
        (demo / name).write_bytes(b"\xef\xbb\xbf" + (demo / name).read_bytes())
    assert validate_book(demo) == []


def test_a_book_without_lots_plans(demo):
    lines = (demo / "lots.csv").read_text().splitlines()
    (demo / "lots.csv").write_text(lines[0] + "\n")
    result = plan(load_book(demo), accounts=["A0001", "A0002"], executor="serial")
    assert list(result.summary["status"]) == ["optimal", "optimal"]
