"""Checking and parsing the cells of a book's tables, a column at a time.

Every check collects its problems in :class:`Issues`, each naming the file, the row as a
person finds it (a CSV line, a Parquet row), the field and what was expected; at most
:data:`MAX_PER_FIELD` are listed per file and field, then a count of the rest. A cell is
echoed in a message at most :data:`SHOWN_CHARACTERS` long.

CSV cells arrive as text and are stripped of blanks; Parquet columns may also come typed
(numbers, dates, booleans, lists), and are read as such. Columns with few distinct values
(ids, symbols, dates) are checked once per distinct text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from planner.errors import BookIssue

if TYPE_CHECKING:
    from planner.io.tables import Table

MAX_PER_FIELD = 50
SHOWN_CHARACTERS = 80
TRUE = frozenset({"true", "1", "yes"})
FALSE = frozenset({"false", "0", "no"})
NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
"""A number cell: decimal digits with an optional sign, point and exponent."""
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ID_MAX_CHARACTERS = 64
ID_FORBIDDEN = r"^[=+\-@]|[\p{Cc}\p{Cf}]"
"""What an id or symbol may not hold: a first character a spreadsheet reads as the start of
a formula (= + - @), or a control or format character (tab, newline, escape, bidi
overrides). Ids round-trip through exports, fills and new books, so they are refused
rather than escaped."""
FIRST_DAY = np.datetime64("1677-09-22", "D")
LAST_DAY = np.datetime64("2262-04-11", "D")
"""The dates a book can hold (those of ``datetime64[ns]``)."""


def shown(text: str) -> str:
    """A cell as a message echoes it: at most :data:`SHOWN_CHARACTERS`, then an ellipsis."""
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return text[: SHOWN_CHARACTERS - 1] + "…"


class Issues:
    """Collects a book's problems, capping how many are listed per (file, field)."""

    def __init__(self) -> None:
        self.items: list[BookIssue] = []
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, file: str, line: int | None, field: str, message: str) -> None:
        key = (file, field)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.counts[key] <= MAX_PER_FIELD:
            self.items.append(BookIssue(file, line, field, message))

    def rows(self, table: Table, field: str, mask, message: Callable[[str], str]) -> None:
        """One issue per masked row; ``message`` is a function of the cell as shown."""
        bad = np.flatnonzero(np.asarray(mask, dtype=bool))
        if not len(bad):
            return
        listed = bad[: max(MAX_PER_FIELD - self.counts.get((table.name, field), 0), 0)]
        texts = cell_texts(table, field, listed)
        for row, text in zip(listed.tolist(), texts, strict=True):
            self.add(table.name, table.line(row), field, message(repr(shown(text))))
        key = (table.name, field)
        self.counts[key] = self.counts.get(key, 0) + len(bad) - len(listed)

    def finish(self) -> list[BookIssue]:
        out = list(self.items)
        for (file, field), n in self.counts.items():
            if n > MAX_PER_FIELD:
                out.append(BookIssue(file, None, field, f"... and {n - MAX_PER_FIELD} more rows"))
        return out


def cell_texts(table: Table, field: str, rows: np.ndarray) -> list[str]:
    """The cells of column ``field`` at data ``rows`` as text ("" where absent)."""
    if field not in table.columns:
        return [""] * len(rows)
    values = table.data.column(field).take(pa.array(rows, type=pa.int64())).to_pylist()
    return ["" if v is None else str(v) for v in values]


def _is_text(column: pa.Array) -> bool:
    return pa.types.is_string(column.type) or pa.types.is_large_string(column.type)


def texts(table: Table, field: str) -> pa.Array:
    """Column ``field`` as stripped text ("" where empty or absent); a typed Parquet column
    (numeric ids, say) as its text."""
    if field not in table.columns:
        return pa.array([""] * len(table), pa.string())
    column = table.column(field)
    if not _is_text(column):
        column = pc.cast(column, pa.string())
    return pc.fill_null(pc.utf8_trim_whitespace(column), "")


def ids(table: Table, field: str, issues: Issues, what: str, optional: bool = False) -> pa.Array:
    """An id column (stripped text); reports ids that are longer than
    :data:`ID_MAX_CHARACTERS` or hold what :data:`ID_FORBIDDEN` names, and (unless
    ``optional``) empty cells."""
    values = texts(table, field)
    if not optional:
        empty_cells(table, field, values, issues, what)
    formula = pc.match_substring_regex(values, r"^[=+\-@]")
    long = pc.greater(pc.binary_length(values), ID_MAX_CHARACTERS)  # bytes >= characters
    if pc.any(long).as_py():
        long = pc.greater(pc.utf8_length(values), ID_MAX_CHARACTERS)
    bad = pc.or_(formula, long)
    # Plain ASCII (the usual ids) holds no control or format character: the Unicode
    # check runs only when some id is not.
    if not pc.all(pc.ascii_is_printable(values)).as_py():
        bad = pc.or_(bad, pc.match_substring_regex(values, ID_FORBIDDEN))
    issues.rows(
        table,
        field,
        np.asarray(bad, dtype=bool),
        lambda raw: (
            f"expected {what} of at most {ID_MAX_CHARACTERS} printable characters, not "
            f"starting with = + - or @ (a spreadsheet reads those as formulas), got {raw}"
        ),
    )
    return values


def bad_id(text: str) -> bool:
    """Whether one id breaks the rule :func:`ids` checks a column against."""
    return (
        len(text) > ID_MAX_CHARACTERS
        or text[:1] in ("=", "+", "-", "@")
        or any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)
    )


def numbers(
    table: Table,
    field: str,
    issues: Issues,
    expected: str = "a number",
    check: Callable[[np.ndarray], np.ndarray] | None = None,
    optional: bool = False,
) -> np.ndarray:
    """A numeric column as float64 (NaN where empty or absent); reports cells that are not
    finite numbers, are empty when required, or fail ``check``."""
    if field not in table.columns:
        return np.full(len(table), np.nan)
    column = table.column(field)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        empty = np.isnan(values) & np.asarray(column.is_null(), dtype=bool)
    elif _is_text(column):
        text = pc.fill_null(pc.utf8_trim_whitespace(column), "")
        empty = np.asarray(pc.equal(text, ""), dtype=bool)
        try:
            values = pc.cast(pc.if_else(empty, "0", text), pa.float64()).to_numpy()
        except pa.ArrowInvalid:  # some cell is not a number: find them
            valid = pc.match_substring_regex(text, NUMBER)
            values = pc.cast(pc.if_else(valid, text, "nan"), pa.float64()).to_numpy()
    else:
        issues.add(table.name, None, field, f"expected a column of numbers, got {column.type}")
        return np.full(len(table), np.nan)
    bad = ~empty & ~np.isfinite(values)
    if not optional:
        bad |= empty
    if check is not None:
        with np.errstate(invalid="ignore"):
            bad |= ~empty & np.isfinite(values) & ~check(values)
    issues.rows(table, field, bad, lambda raw: f"expected {expected}, got {raw}")
    return np.where(empty | bad, np.nan, values)


def dates(
    table: Table,
    field: str,
    issues: Issues,
    as_of: date | None = None,
    optional: bool = False,
) -> np.ndarray:
    """A date column as ``datetime64[ns]`` (NaT where empty or absent): ISO ``YYYY-MM-DD``
    text, or a Parquet date or timestamp column. Reports anything else, dates outside what
    a book can hold, and (with ``as_of``) dates after it."""
    out = np.full(len(table), np.datetime64("NaT"), dtype="datetime64[D]")
    if field not in table.columns:
        return out.astype("datetime64[ns]")
    column = table.column(field)
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        days = pc.cast(column, pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
        empty = np.isnat(days)
        bad = np.zeros(len(table), dtype=bool)
    elif _is_text(column):
        encoded = pc.dictionary_encode(pc.fill_null(pc.utf8_trim_whitespace(column), ""))
        distinct = [_iso_day(t) for t in encoded.dictionary.to_pylist()]
        codes = encoded.indices.to_numpy()
        parsed = np.array([d for d, _ in distinct] or [np.datetime64("NaT")], "datetime64[D]")
        valid = np.array([ok for _, ok in distinct] or [False])
        blank = np.array([t == "" for t in encoded.dictionary.to_pylist()] or [False])
        days, empty, bad = parsed[codes], blank[codes], ~valid[codes] & ~blank[codes]
    else:
        issues.add(table.name, None, field, f"expected a column of dates, got {column.type}")
        return out.astype("datetime64[ns]")
    if not optional:
        bad |= empty
    issues.rows(table, field, bad, lambda raw: f"expected a date YYYY-MM-DD, got {raw}")
    outside = ~bad & ~empty & ((days < FIRST_DAY) | (days > LAST_DAY))
    issues.rows(
        table,
        field,
        outside,
        lambda raw: f"expected a date from {FIRST_DAY} to {LAST_DAY}, got {raw}",
    )
    ok = ~(bad | empty | outside)
    if as_of is not None:
        late = ok & (days > np.datetime64(as_of, "D"))
        issues.rows(
            table,
            field,
            late,
            lambda raw: f"expected a date on or before the as-of date {as_of}, got {raw}",
        )
    return np.where(ok, days, np.datetime64("NaT")).astype("datetime64[ns]")


def _iso_day(text: str) -> tuple[np.datetime64, bool]:
    """(the day, whether ``text`` is one) of an ISO ``YYYY-MM-DD`` text."""
    if ISO_DATE.fullmatch(text):
        try:
            return np.datetime64(date.fromisoformat(text), "D"), True
        except ValueError:
            pass
    return np.datetime64("NaT"), False


def choices(
    table: Table,
    field: str,
    issues: Issues,
    allowed: Iterable[str],
    default: str | None = None,
) -> list[str]:
    """A column of words from ``allowed`` (``default`` where empty)."""
    allowed = tuple(allowed)
    text = texts(table, field).to_pylist()
    if default is not None:
        text = [t or default for t in text]
    bad = [t not in allowed for t in text]
    issues.rows(table, field, bad, lambda raw: f"expected one of {', '.join(allowed)}, got {raw}")
    return text


def flags(table: Table, field: str, issues: Issues) -> np.ndarray:
    """A true/false column (empty: false)."""
    if field in table.columns and pa.types.is_boolean(table.column(field).type):
        return np.asarray(pc.fill_null(table.column(field), False), dtype=bool)
    text = [t.lower() for t in texts(table, field).to_pylist()]
    bad = [not (t in TRUE or t in FALSE or t == "") for t in text]
    issues.rows(table, field, bad, lambda raw: f"expected true or false, got {raw}")
    return np.array([t in TRUE for t in text], dtype=bool)


def symbol_sets(
    table: Table, field: str, issues: Issues, symbols: set[str] | None
) -> list[frozenset[str]]:
    """A column of symbol lists: ``;``-separated text or a Parquet list column; reports
    symbols not in ``symbols`` (unless it is ``None``: securities could not be read)."""
    if field not in table.columns:
        return [frozenset()] * len(table)
    column = table.column(field)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        sets = [
            frozenset(s.strip() for s in (v or []) if s and s.strip()) for v in column.to_pylist()
        ]
    else:
        cells = texts(table, field).to_pylist()
        parsed = {t: frozenset(x.strip() for x in t.split(";") if x.strip()) for t in set(cells)}
        sets = [parsed[t] for t in cells]
    if symbols is not None:
        bad = [any(s not in symbols for s in members) for members in sets]
        issues.rows(table, field, bad, lambda raw: f"unknown symbol in {raw}")
    return sets


def unknown(table: Table, field: str, values: pa.Array, issues: Issues, known, what: str) -> None:
    """Report cells not in ``known``; ``None`` means the file defining them could not be
    read (already reported), so nothing is checked."""
    if known is None:
        return
    encoded = pc.dictionary_encode(values)
    missing = np.array([v not in known for v in encoded.dictionary.to_pylist()] or [False])
    issues.rows(
        table, field, missing[encoded.indices.to_numpy()], lambda raw: f"unknown {what} {raw}"
    )


def empty_cells(table: Table, field: str, values: pa.Array, issues: Issues, what: str) -> None:
    """Report empty cells of a column that names something."""
    issues.rows(
        table,
        field,
        np.asarray(pc.equal(values, ""), dtype=bool),
        lambda raw: f"expected {what}, got an empty cell",
    )
