"""Writing plan files and books: fixed number formats, sorted rows, atomic files.

Numbers are written with a fixed number of decimals per column (:data:`COLUMN_FORMATS`),
rounded correctly from their binary value (pyarrow's cast to a decimal type), never with a
"-0.00"; a book's numbers lose their trailing zeros. Text goes through pandas' CSV writer
(minimal quoting). Parquet files keep the types: numbers rounded as in the CSV, dates as
dates, symbol lists as lists. The same inputs give byte-identical files; how a set of them
replaces the last one is :mod:`planner.io.outputs`'s business.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from planner.domain import (
    CASH,
    LOT_COLUMNS,
    TRADE_COLUMNS,
    Band,
    Book,
    Model,
    Settings,
    purchase_dates,
)
from planner.io.blotter_toml import blotter_toml

FORMATS = ("csv", "parquet")

SHARES, MONEY, PRICE, WEIGHT, MS = 6, 2, 4, 6, 3
"""Decimals of shares, dollars, prices, weights (fractions) and milliseconds."""

COLUMN_FORMATS: dict[str, int] = {
    "shares": SHARES,
    "est_price": PRICE,
    "price": PRICE,
    "unit_cost": PRICE,
    "est_value": MONEY,
    "est_cost": MONEY,
    "proceeds": MONEY,
    "realized_gain": MONEY,
    "realized_st": MONEY,
    "realized_lt": MONEY,
    "est_tax": MONEY,
    "value": MONEY,
    "rounding_residual": MONEY,
    "solve_ms": MS,
    "te_before": WEIGHT,
    "te_after": WEIGHT,
    "turnover": WEIGHT,
    "current": WEIGHT,
    "target": WEIGHT,
    "drift": WEIGHT,
    "max_drift": WEIGHT,
}
"""Decimals of each numeric output column; any other float column is dollars when its name
says so (:data:`MONEY_WORDS`), else a weight (class weights ``pre_*``/``post_*`` among
them)."""


MONEY_WORDS = ("gain", "tax", "carryforward", "deduction", "harvest")
"""A column named with one of these (the tax year's and the harvest's figures) is dollars."""


def decimals_of(column: str) -> int:
    if column in COLUMN_FORMATS:
        return COLUMN_FORMATS[column]
    if not column.startswith(("pre_", "post_")) and any(w in column for w in MONEY_WORDS):
        return MONEY
    return WEIGHT


def fixed(values, decimals: int, strip: bool = False) -> pa.Array:
    """Numbers as text with ``decimals`` digits after the point, correctly rounded from
    their binary value as ``f"{v:.{decimals}f}"`` rounds it, "0" rather than "-0"; NaN as
    an empty text. With ``strip``, trailing zeros of the fraction (and a bare point) go."""
    numbers = pa.array(np.asarray(values, dtype=float), from_pandas=True)  # NaN -> null
    text = pc.cast(pc.cast(numbers, pa.decimal128(38, decimals), safe=False), pa.string())
    if strip and decimals:
        text = pc.replace_substring_regex(text, r"(\.[0-9]*?)0+$", r"\1")
        text = pc.replace_substring_regex(text, r"\.$", "")
    return pc.fill_null(text, "")


def rounded(values, decimals: int) -> np.ndarray:
    """Numbers rounded to ``decimals`` as :func:`fixed` writes them (NaN stays NaN)."""
    numbers = pa.array(np.asarray(values, dtype=float), from_pandas=True)
    exact = pc.cast(pc.cast(numbers, pa.decimal128(38, decimals), safe=False), pa.string())
    return pc.cast(exact, pa.float64()).to_numpy(zero_copy_only=False)


def _cell_text(value, decimals: int) -> str:
    """One cell of a column of mixed values (Python objects) as text."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return fixed([value], decimals).to_pylist()[0]
    return str(value)


def _text_column(column: pd.Series, decimals: int) -> pa.Array:
    """A column's cells as text: numbers fixed to ``decimals``, dates ISO, absent empty."""
    dtype = column.dtype
    if pd.api.types.is_float_dtype(dtype):
        return fixed(column.to_numpy(dtype=float), decimals)
    if pd.api.types.is_datetime64_dtype(dtype):
        return pc.fill_null(pc.cast(pa.array(column, pa.date32()), pa.string()), "")
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return pa.array([str(v) for v in column.tolist()], pa.string())
    if isinstance(dtype, pd.StringDtype):
        return _no_formulas(pc.fill_null(pa.array(column), ""))
    return _no_formulas(pa.array([_cell_text(v, decimals) for v in column.tolist()], pa.string()))


FORMULA_START = r"^[=+\-@\t\r]"
"""A text cell starting so is read as a formula by spreadsheets (OWASP, CSV injection)."""


def _no_formulas(cells: pa.Array) -> pa.Array:
    """Text cells with a quote mark put before any that a spreadsheet would read as a
    formula (ids and symbols never need it: the reader refuses them)."""
    cells = cells.cast(pa.large_string())
    risky = pc.match_substring_regex(cells, FORMULA_START)
    if not pc.any(risky).as_py():
        return cells
    quote, none = pa.scalar("'", pa.large_string()), pa.scalar("", pa.large_string())
    return pc.if_else(risky, pc.binary_join_element_wise(quote, cells, none), cells)


def text_table(frame: pd.DataFrame) -> pa.Table:
    """Every cell as text with the column's fixed format (weights for unnamed floats)."""
    return pa.table(
        [_text_column(frame[name], decimals_of(name)) for name in frame.columns],
        names=[str(name) for name in frame.columns],
    )


def format_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`text_table` as a frame of pandas' Arrow-backed strings."""
    return text_table(frame).to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow"))


_SPECIAL = r'[,"\r\n]'
"""A cell holding any of these is quoted (the csv module's minimal quoting)."""


def _quoted(cells: pa.Array) -> pa.Array:
    """Cells as the csv module writes them: in quotes, inner quotes doubled, when they hold
    a comma, a quote or a line break; as they are otherwise."""
    special = pc.match_substring_regex(cells, _SPECIAL)
    if not pc.any(special).as_py():
        return cells
    quote, none = pa.scalar('"', pa.large_string()), pa.scalar("", pa.large_string())
    wrapped = pc.binary_join_element_wise(
        quote, pc.replace_substring(cells, '"', '""'), quote, none
    )
    return pc.if_else(special, wrapped, cells)


CHUNK_ROWS = 100_000


def _free_text(frame: pd.DataFrame) -> set[str]:
    """Columns whose text may hold a comma, a quote or a line break (not numbers or dates)."""
    return {
        str(name)
        for name in frame.columns
        if not (
            pd.api.types.is_numeric_dtype(frame[name].dtype)
            or pd.api.types.is_datetime64_dtype(frame[name].dtype)
        )
    }


def write_csv(path: Path, table: pa.Table, free_text: set[str] | None = None) -> None:
    """A table of text as CSV, byte for byte what pandas' ``to_csv(index=False,
    lineterminator="\\n")`` writes, several times faster on a large plan: pandas writes
    every cell through the csv module, here pyarrow builds whole lines at once. Only the
    ``free_text`` columns (default: all) are looked at for cells to quote."""
    names = table.column_names
    free_text = set(names) if free_text is None else free_text
    header = _quoted(pa.array(names, pa.large_string())).to_pylist()
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(header) + "\n")
        for start in range(0, table.num_rows, CHUNK_ROWS):
            chunk = table.slice(start, CHUNK_ROWS)
            columns = [c.combine_chunks().cast(pa.large_string()) for c in chunk.columns]
            cells = [
                _quoted(column) if n in free_text else column
                for n, column in zip(names, columns, strict=True)
            ]
            if len(cells) == 1:  # one column: an empty cell is written as "" (csv module)
                lines = pc.if_else(pc.equal(cells[0], ""), '""', cells[0])
            else:
                lines = pc.binary_join_element_wise(*cells, pa.scalar(",", pa.large_string()))
            rows = pa.LargeListArray.from_arrays([0, len(lines)], lines)
            text = pc.binary_join(rows, pa.scalar("\n", pa.large_string()))
            handle.write(text[0].as_py() + "\n")


def typed_table(frame: pd.DataFrame) -> pa.Table:
    """The frame for a Parquet file: numbers rounded as the CSV writes them, dates as
    dates, text as text."""
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_float_dtype(column.dtype):
            columns[name] = pa.array(rounded(column, decimals_of(name)), from_pandas=True)
        elif pd.api.types.is_datetime64_dtype(column.dtype):
            columns[name] = pa.array(column, pa.date32())
        elif pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_integer_dtype(
            column.dtype
        ):
            columns[name] = pa.array(column)
        else:
            columns[name] = pa.array(
                [None if v is None or v != v else str(v) for v in column.tolist()], pa.string()
            )
    return pa.table(columns)


def write_csv_frame(path: Path, frame: pd.DataFrame) -> None:
    """A plan frame as CSV (fixed number formats, quoting as the csv module quotes)."""
    write_csv(path, text_table(frame), _free_text(frame))


def write_parquet_frame(path: Path, frame: pd.DataFrame) -> None:
    """A plan frame as Parquet (numbers rounded as the CSV writes them)."""
    pq.write_table(typed_table(frame), path)


def file_mode() -> int:
    """Permission bits of a new output file: 0o644 less the process umask."""
    umask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(umask)
    return 0o644 & ~umask


def _writing(writer, frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: writer(path, frame)


def _atomic_set(folder: Path, files: Mapping[str, Callable[[Path], None]]) -> list[Path]:
    """Each ``files[name](path)`` writes a temporary file in ``folder``; only when all are
    complete are they renamed to their names (a book's files; plan files are a set switched
    in one step, see :mod:`planner.io.outputs`)."""
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, write in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            staged.append((name, Path(tmp)))
            write(Path(tmp))
            # mkstemp creates the file private (0o600); outputs are for others to read too.
            os.chmod(tmp, file_mode())
    except BaseException:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    written = []
    for name, tmp in staged:
        os.replace(tmp, folder / name)
        written.append(folder / name)
    return written


# -- books ---------------------------------------------------------------------------------


def _band_toml(band: Band, outer: Band | None) -> str:
    parts = []
    if band.abs is not None:
        parts.append(f"abs = {band.abs!r}")
    if band.rel is not None:
        parts.append(f"rel = {band.rel!r}")
    parts.append(f'combine = "{band.combine}"')
    if outer is not None:
        if outer.abs is not None:
            parts.append(f"outer_abs = {outer.abs!r}")
        if outer.rel is not None:
            parts.append(f"outer_rel = {outer.rel!r}")
    return "{ " + ", ".join(parts) + " }"


def models_toml(models: Mapping[str, Model]) -> str:
    """The text of ``models.toml`` for ``models``."""
    out = []
    for name in sorted(models):
        m = models[name]
        cash = m.cash
        out.append(f"[{name}]")
        out.append(f'description = "{m.description}"')
        out.append(f'rebalance_to = "{m.rebalance_to}"')
        out.append(f"cash = {cash.target!r}")
        out.append(f"cash_band = {_band_toml(cash.band, cash.outer_band)}")
        out.append("")
        t = m.trigger
        out.append(f"[{name}.trigger]")
        out.append(f'kind = "{t.kind}"')
        if t.calendar:
            out.append(f'calendar = "{t.calendar}"')
        out.append(f"force_on_calendar = {'true' if t.force_on_calendar else 'false'}")
        if t.cash_flow_min is not None:
            out.append(f"cash_flow_min = {t.cash_flow_min!r}")
        out.append("")
        for c in m.classes:
            if c.asset_class == CASH:
                continue
            out.append(f"[{name}.classes.{c.asset_class}]")
            out.append(f"target = {c.target!r}")
            out.append("securities = [" + ", ".join(f'"{s}"' for s in c.securities) + "]")
            out.append(f"band = {_band_toml(c.band, c.outer_band)}")
            default = {c.securities[0]: c.target} if c.securities else {}
            if dict(c.security_targets) != default:
                weights = ", ".join(f"{s} = {w!r}" for s, w in c.security_targets.items())
                out.append(f"weights = {{ {weights} }}")
            out.append("")
    return "\n".join(out)


def settings_toml(book: Book) -> str:
    """The text of ``book.toml`` for the book's settings: the as-of date and every setting
    that differs from its default, so that a book takes later defaults."""
    s = book.settings
    lines = ["[settings]"]
    if s.as_of:
        lines.append(f"as_of = {s.as_of.isoformat()}")
    default = Settings()
    for f in fields(Settings):
        value = getattr(s, f.name)
        if f.name in ("as_of", "blotter") or value == getattr(default, f.name):
            continue
        text = f'"{value}"' if isinstance(value, str) else repr(value)
        lines.append(f"{f.name} = {text}")
    blotter = blotter_toml(s.blotter)
    return "\n".join(lines) + "\n" + (f"\n{blotter}" if blotter else "")


def book_tables(book: Book) -> dict[str, pd.DataFrame]:
    """The book's tables as frames with typed columns (numbers as floats, NaN where
    absent; dates as ``datetime64``; symbol lists as sorted lists), rows sorted."""
    secs = [book.securities[s] for s in sorted(book.securities)]
    securities = pd.DataFrame(
        {
            "symbol": [s.symbol for s in secs],
            "asset_class": [s.asset_class for s in secs],
            "price": [s.price for s in secs],
            "wash_group": [s.wash_group for s in secs],
            "spread_bps": [s.spread_bps for s in secs],
            "commission": [s.commission for s in secs],
            "min_trade_value": [s.min_trade_value for s in secs],
            "restricted": [s.restricted for s in secs],
            "adv": [np.nan if s.adv is None else s.adv for s in secs],
            "volatility": [np.nan if s.volatility is None else s.volatility for s in secs],
        }
    )
    accs = [book.accounts[a] for a in sorted(book.accounts)]

    def day(d):
        return pd.NaT if d is None else pd.Timestamp(d)

    accounts = pd.DataFrame(
        {
            "account_id": [a.account_id for a in accs],
            "model": [a.model for a in accs],
            "household_id": [a.household_id for a in accs],
            "registration": [a.registration for a in accs],
            "cash": [a.cash for a in accs],
            "st_rate": [a.st_rate for a in accs],
            "lt_rate": [a.lt_rate for a in accs],
            "gain_budget": [np.nan if a.gain_budget is None else a.gain_budget for a in accs],
            "st_gain_cap": [np.nan if a.st_gain_cap is None else a.st_gain_cap for a in accs],
            "cash_flow": [a.cash_flow for a in accs],
            "fractional_shares": [a.fractional_shares for a in accs],
            "do_not_buy": [sorted(a.do_not_buy) for a in accs],
            "do_not_sell": [sorted(a.do_not_sell) for a in accs],
            "last_rebalanced": pd.to_datetime([day(a.last_rebalanced) for a in accs]),
            "last_reviewed": pd.to_datetime([day(a.last_reviewed) for a in accs]),
            "do_not_trade": [sorted(a.do_not_trade) for a in accs],
            "tax_return": [a.tax_return or "" for a in accs],
            "harvest": [a.harvest or "" for a in accs],
        }
    )
    # Optional columns are written only when some account has one, so books without them
    # keep their files byte for byte.
    accounts = accounts.drop(
        columns=[
            c
            for c, given in (
                ("do_not_trade", any(a.do_not_trade for a in accs)),
                ("tax_return", any(a.tax_return for a in accs)),
                ("harvest", any(a.harvest for a in accs)),
            )
            if not given
        ]
    )
    lots = book.lots[list(LOT_COLUMNS)]
    # purchased is written only where some lot has one of its own (a wash-sale
    # replacement), so books without them keep their files byte for byte.
    bought = purchase_dates(book.lots)
    if len(lots) and not (bought.to_numpy() == lots["acquired"].to_numpy()).all():
        lots = lots.assign(purchased=bought.to_numpy())
    tables = {
        "securities": securities,
        "accounts": accounts,
        "lots": lots,
    }
    if len(book.trades):
        tables["trades"] = book.trades[list(TRADE_COLUMNS)]
    if book.returns:
        rets = [book.returns[r] for r in sorted(book.returns)]
        tables["returns"] = pd.DataFrame(
            {
                "tax_return": [r.return_id for r in rets],
                "filing_status": [r.filing_status for r in rets],
                "ytd_st_gain": [r.ytd_st_gain for r in rets],
                "ytd_lt_gain": [r.ytd_lt_gain for r in rets],
                "carryforward_st": [r.carryforward_st for r in rets],
                "carryforward_lt": [r.carryforward_lt for r in rets],
            }
        )
    if book.prices is not None:
        tables["prices"] = book.prices.reset_index(names="date")
    return tables


BOOK_DECIMALS = {
    "price": 4,
    "spread_bps": 4,
    "commission": 4,
    "min_trade_value": 2,
    "adv": 2,
    "volatility": 6,
    "cash": 2,
    "st_rate": 6,
    "lt_rate": 6,
    "gain_budget": 2,
    "st_gain_cap": 2,
    "cash_flow": 2,
    "shares": 6,
    "unit_cost": 4,
    "realized_gain": 2,
    "ytd_st_gain": 2,
    "ytd_lt_gain": 2,
    "carryforward_st": 2,
    "carryforward_lt": 2,
}
"""Decimals of a book's numbers as written to CSV (trailing zeros dropped); prices.csv
has 4 in every column."""


def _book_csv(path: Path, frame: pd.DataFrame, decimals: Mapping[str, int]) -> None:
    out = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_float_dtype(column.dtype):
            out[name] = fixed(column.to_numpy(dtype=float), decimals.get(name, 4), strip=True)
        elif pd.api.types.is_datetime64_dtype(column.dtype):
            out[name] = pc.fill_null(pc.cast(pa.array(column, pa.date32()), pa.string()), "")
        elif pd.api.types.is_bool_dtype(column.dtype):
            out[name] = pa.array(["true" if v else "false" for v in column.tolist()])
        elif column.dtype == object and len(column) and isinstance(column.iloc[0], list):
            out[name] = pa.array([";".join(v) for v in column.tolist()], pa.string())
        else:
            out[name] = pa.array(column, pa.string())
    write_csv(path, pa.table(out), _free_text(frame))


def _book_parquet(path: Path, frame: pd.DataFrame, decimals: Mapping[str, int]) -> None:
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_dtype(column.dtype):
            columns[name] = pa.array(column, pa.date32())
        elif column.dtype == object and len(column) and isinstance(column.iloc[0], list):
            columns[name] = pa.array(column.tolist(), pa.list_(pa.string()))
        else:
            columns[name] = pa.array(column)
    pq.write_table(pa.table(columns), path)


def write_book(book: Book, path: str | Path, format: str = "csv") -> Path:
    """Write ``book`` in the folder format: CSV (sorted rows, fixed number formats) or
    Parquet tables (exact values), TOML settings and models; atomic files."""
    if format not in FORMATS:
        raise ValueError(f"book format {format!r}: expected one of {', '.join(FORMATS)}")
    path = Path(path)
    writer = _book_parquet if format == "parquet" else _book_csv
    files: dict[str, Callable[[Path], None]] = {
        f"{stem}.{format}": _book_file(writer, frame, {} if stem == "prices" else BOOK_DECIMALS)
        for stem, frame in book_tables(book).items()
    }
    files["models.toml"] = _text(models_toml(book.models))
    files["book.toml"] = _text(settings_toml(book))
    _atomic_set(path, files)
    return path


def _book_file(writer, frame: pd.DataFrame, decimals) -> Callable[[Path], None]:
    return lambda path: writer(path, frame, decimals)


def _text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text, encoding="utf-8", newline="")
