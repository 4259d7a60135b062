"""Loading, validating and writing books (see data/README.md for the format).

Validation collects every problem of a book in one pass; each names the file, the 1-based
line (the CSV header is line 1), the field and what was expected. Large files (lots,
trades) are checked vectorised with pandas, and at most :data:`MAX_PER_FIELD` problems are
listed per file and field (then a count of the rest).
"""

from __future__ import annotations

import codecs
import math
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from planner.domain import (
    CALENDAR_FREQUENCIES,
    CASH,
    LOT_COLUMNS,
    REBALANCE_TO,
    REGISTRATIONS,
    RESTRICTIONS,
    TRADE_COLUMNS,
    TRIGGER_KINDS,
    Account,
    Band,
    Book,
    ClassTarget,
    Model,
    Security,
    Settings,
    TriggerSpec,
)
from planner.errors import BookError, BookIssue
from planner.io.write import Slow as _Slow
from planner.io.write import byte_rows as _byte_rows
from planner.io.write import file_mode, number_bytes, rounded
from planner.io.write import joined_rows as _joined_rows
from planner.memory import small_pages

MAX_PER_FIELD = 50
TOLERANCE = 1e-6
TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no"}

SECURITY_COLUMNS = ("symbol", "asset_class", "price")
SECURITY_OPTIONAL = (
    "wash_group",
    "spread_bps",
    "commission",
    "min_trade_value",
    "restricted",
    "adv",
    "volatility",
)
ACCOUNT_COLUMNS = (
    "account_id",
    "model",
    "household_id",
    "registration",
    "cash",
    "st_rate",
    "lt_rate",
)
ACCOUNT_OPTIONAL = (
    "gain_budget",
    "st_gain_cap",
    "cash_flow",
    "fractional_shares",
    "do_not_buy",
    "do_not_sell",
    "last_rebalanced",
    "last_reviewed",
    "do_not_trade",
)
TRADE_REQUIRED = ("account_id", "trade_date", "symbol", "side", "shares", "price")


class _Issues:
    """Collects issues, capping how many are listed per (file, field)."""

    def __init__(self) -> None:
        self.items: list[BookIssue] = []
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, file: str, line: int | None, field: str, message: str) -> None:
        key = (file, field)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.counts[key] <= MAX_PER_FIELD:
            self.items.append(BookIssue(file, line, field, message))

    def rows(self, file: str, field: str, frame: pd.DataFrame, mask, message) -> None:
        """One issue per masked row; ``message`` is a function of the raw cell text."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        raw = frame[field].to_numpy() if field in frame.columns else [""] * len(frame)
        for i in np.flatnonzero(mask):
            self.add(file, int(i) + 2, field, message(str(raw[i])))

    def finish(self) -> list[BookIssue]:
        out = list(self.items)
        for (file, field), n in self.counts.items():
            if n > MAX_PER_FIELD:
                out.append(BookIssue(file, None, field, f"... and {n - MAX_PER_FIELD} more rows"))
        return out


def _read_csv(path: Path, name: str, required, optional, issues: _Issues, must_exist=True):
    file = path / name
    if not file.exists():
        if must_exist:
            issues.add(name, None, "(file)", f"missing file: expected {name} in {path}")
        return None
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        issues.add(name, None, "(file)", f"not a readable CSV file: {exc}")
        return None
    columns = [c.strip() for c in frame.columns]
    frame.columns = columns
    missing = [c for c in required if c not in columns]
    for c in missing:
        issues.add(name, 1, c, "missing required column")
    for c in columns:
        if c not in required and c not in optional:
            issues.add(
                name, 1, c, f"unknown column (expected one of {', '.join(required + optional)})"
            )
    if missing:
        return None
    return frame.apply(lambda s: s.str.strip()) if len(frame) else frame


def _number(frame, field, name, issues, expected="a number", check=None, optional=False):
    """Parse a numeric column; report malformed and out-of-range cells; NaN where empty."""
    if field not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    text = frame[field]
    empty = text == ""
    values = pd.to_numeric(text, errors="coerce")
    bad = ~empty & (values.isna() | ~np.isfinite(values.fillna(0.0)))
    if not optional:
        bad |= empty
    if check is not None:
        bad |= ~empty & values.notna() & ~check(values)
    issues.rows(name, field, frame, bad, lambda raw: f"expected {expected}, got {raw!r}")
    return values.astype(float)


def _date(frame, field, name, issues, as_of=None, optional=False):
    if field not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index)
    text = frame[field]
    empty = text == ""
    parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    bad = ~empty & parsed.isna()
    if not optional:
        bad |= empty
    issues.rows(name, field, frame, bad, lambda raw: f"expected a date YYYY-MM-DD, got {raw!r}")
    # pandas reads a date outside datetime64[ns] at a coarser unit; the book keeps [ns].
    outside = parsed.notna() & ((parsed < _FIRST_DAY) | (parsed > _LAST_DAY))
    issues.rows(
        name,
        field,
        frame,
        outside,
        lambda raw: f"expected a date from {_FIRST_DAY.date()} to {_LAST_DAY.date()}, got {raw!r}",
    )
    parsed = parsed.where(~outside, pd.NaT)
    if as_of is not None:
        late = parsed.notna() & (parsed > pd.Timestamp(as_of))
        issues.rows(
            name,
            field,
            frame,
            late,
            lambda raw: f"expected a date on or before the as-of date {as_of}, got {raw!r}",
        )
    return parsed


def _enum(frame, field, name, issues, allowed, default=None):
    text = frame[field] if field in frame.columns else pd.Series("", index=frame.index)
    if default is not None:
        text = text.where(text != "", default)
    bad = ~text.isin(allowed)
    issues.rows(
        name, field, frame, bad, lambda raw: f"expected one of {', '.join(allowed)}, got {raw!r}"
    )
    return text


def _bool(frame, field, name, issues):
    text = frame[field].str.lower() if field in frame.columns else pd.Series("", index=frame.index)
    bad = ~(text.isin(TRUE | FALSE) | (text == ""))
    issues.rows(name, field, frame, bad, lambda raw: f"expected true or false, got {raw!r}")
    return text.isin(TRUE)


def _duplicates(frame, keys, name, issues, field):
    # An empty id is reported as empty, not also as a duplicate of another empty one.
    dup = frame.duplicated(list(keys), keep="first") & (frame[field] != "")
    issues.rows(name, field, frame, dup, lambda raw: f"duplicate {field} {raw!r}")


def _unknown(frame, field, name, issues, known, what):
    """Report cells not in ``known``; ``None`` means the file defining them could not be
    read (already reported), so nothing is checked."""
    if known is None:
        return
    bad = ~frame[field].isin(known)
    issues.rows(name, field, frame, bad, lambda raw: f"unknown {what} {raw!r}")


# -- the fast path for the large files -----------------------------------------------------
#
# lots.csv and trades.csv can have millions of rows. Reading every cell as text, stripping it
# and parsing it again takes tens of seconds, so these files are first read typed: numbers by
# the CSV parser itself (the same conversion as ``pd.to_numeric``), every other column as
# fixed-width bytes. A column of few distinct values (ids, symbols, dates) is numbered by a
# hash of its bytes, and each distinct text is checked and parsed once; the lot ids are
# turned into str in numpy; duplicates and the sort order are checked on integer keys. The
# fast path checks every rule of the careful path and raises :class:`_Decline` at the first
# doubt: any problem, blanks around a value, a value it cannot vouch for. The careful path
# then reads the file again as text and reports (or builds) exactly as before. Both use the
# same tokenizer, so they see the same cells.

_BLANK = np.zeros(256, dtype=bool)
_BLANK[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # the ASCII that str.strip() removes
_EXACT = 2.0**53  # below this, integers parse exactly whether read as int or as float
_MAX_WIDTH = 1024  # bytes: a longer text cell declines


FAST_PATH = True
"""Whether lots.csv and trades.csv are first tried on the fast path (tests turn it off to
compare the two paths)."""


class _Decline(Exception):
    """The fast path cannot vouch for a file: the careful path reads it."""


def _str_dtype():
    """The dtype ``pd.read_csv(dtype=str)`` gives a text column (``str`` on pandas 3)."""
    return pd.Series([""], dtype=str).dtype


def _fast_read(file: Path, kinds: dict[str, str], required) -> dict[str, np.ndarray]:
    """The columns of ``file``: kind ``float`` as float64, the others (``code``: few distinct
    values; ``id``: many) as fixed-width bytes. Declines on any surprise."""
    if not file.exists():
        raise _Decline
    options = {"keep_default_na": False, "na_filter": False}
    try:
        sample = pd.read_csv(file, dtype=str, nrows=1000, **options)
    except Exception as exc:
        raise _Decline from exc
    names = list(sample.columns)
    if (
        len(set(names)) != len(names)
        or any(c not in kinds for c in names)
        or any(c not in names for c in required)
    ):
        raise _Decline
    # Widths from the first rows, with room to spare; a cell as wide as its column may have
    # been cut, and then the file is read again with that column wider.
    widths = {
        c: 8 * (max([len(v.encode()) for v in sample[c]] + [1]) * 3 // 16 + 1)
        for c in names
        if kinds[c] != "float"
    }
    while True:
        dtype = {c: f"S{widths[c]}" if c in widths else "float64" for c in names}
        try:
            frame = pd.read_csv(file, dtype=dtype, **options)
        except Exception as exc:  # a cell that is not a number, a ragged row, bad UTF-8, ...
            raise _Decline from exc
        if (
            list(frame.columns) != names
            or not isinstance(frame.index, pd.RangeIndex)
            or len(frame) == 0
        ):
            raise _Decline
        columns = {c: np.ascontiguousarray(frame[c].to_numpy()) for c in names}
        del frame
        if any(columns[c].dtype.kind != ("S" if c in widths else "f") for c in names):
            raise _Decline
        cut = [c for c in widths if _last_byte(columns[c]).any()]
        if not cut:
            return columns
        for c in cut:
            widths[c] *= 4
            if widths[c] > _MAX_WIDTH:
                raise _Decline


def _last_byte(raw: np.ndarray) -> np.ndarray:
    """The last byte of each fixed-width cell: not 0 where the text fills (or overflowed) it."""
    return raw.view(np.uint8).reshape(len(raw), raw.dtype.itemsize)[:, -1]


def _words(raw: np.ndarray) -> np.ndarray:
    """Fixed-width bytes as rows of uint64 words (zero-padded)."""
    n, width = len(raw), raw.dtype.itemsize
    if width % 8 == 0 and raw.flags.c_contiguous:
        return raw.view(np.uint64).reshape(n, width // 8)
    padded = np.zeros((n, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = raw.view(np.uint8).reshape(n, width)
    return padded.view(np.uint64)


def _hash(words: np.ndarray, seed: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit hash of each row of uint64 ``words`` (and of ``seed``, if given)."""
    h = np.zeros(len(words), dtype=np.uint64) if seed is None else seed.astype(np.uint64)
    h = h * np.uint64(0x9E3779B97F4A7C15)
    for j in range(words.shape[1]):
        h = (h ^ words[:, j]) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return h


def _factorize(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, row of each value's first appearance) of fixed-width bytes, values numbered
    in order of first appearance."""
    return _factorize_words(_words(raw))


def _factorize_words(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(words) > 1:
        # Runs of one value (ids in a sorted file): number the runs' values only.
        change = words[1:, 0] != words[:-1, 0]
        for j in range(1, words.shape[1]):
            change |= words[1:, j] != words[:-1, j]
        starts = np.flatnonzero(np.r_[True, change])
        if len(starts) * 4 < len(words):
            codes, first = _factorize_words(words[starts])
            return np.repeat(codes, np.diff(np.r_[starts, len(words)])), starts[first]
    if words.shape[1] == 1:
        codes, _ = pd.factorize(words[:, 0])
    else:
        codes, _ = pd.factorize(_hash(words))
    # pd.factorize numbers values in order of first appearance: a value first appears
    # where the running maximum of the codes grows.
    peak = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.r_[True, peak[1:] > peak[:-1]])
    if words.shape[1] > 1 and not (words[first][codes] == words).all():
        # Two values share a hash: number them word by word instead.
        codes, distinct = pd.factorize(words[:, 0])
        for j in range(1, words.shape[1]):
            more, distinct = pd.factorize(words[:, j])
            codes, _ = pd.factorize(codes.astype(np.int64) * len(distinct) + more)
        peak = np.maximum.accumulate(codes)
        first = np.flatnonzero(np.r_[True, peak[1:] > peak[:-1]])
    return codes, first


def _codes(raw: np.ndarray, known=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, distinct values as an object array of str, lexical rank of each value) of a
    column of few distinct values; declines on text that is not UTF-8, blanks around a
    value, or a value not in ``known``."""
    codes, first = _factorize(raw)
    try:
        values = np.array([v.decode("utf-8") for v in raw[first].tolist()], dtype=object)
    except UnicodeDecodeError as exc:
        raise _Decline from exc
    if any(v != v.strip() for v in values):
        raise _Decline
    if known is not None and not all(v in known for v in values):
        raise _Decline
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    return codes, values, rank


def _fast_dates(raw: np.ndarray, as_of: date) -> tuple[np.ndarray, np.ndarray]:
    """(datetime64[ns] values, chronological rank) of a column of dates; declines unless
    every date is valid and on or before ``as_of``."""
    days, strict = _iso_days(_byte_rows(raw))
    if strict:
        # Every cell a plain YYYY-MM-DD of a real day in datetime64[ns] range: what
        # pd.to_datetime(format="%Y-%m-%d") reads it as, without factorising the text.
        if as_of is not None and len(days) and days.max() > (as_of - _EPOCH).days:
            raise _Decline
        return (days * _NS_PER_DAY).view("datetime64[ns]"), _dense_rank(days)
    codes, values, _ = _codes(raw)
    parsed = pd.to_datetime(pd.Series(values, dtype=str), format="%Y-%m-%d", errors="coerce")
    if parsed.isna().any() or (parsed > pd.Timestamp(as_of)).any():
        raise _Decline
    try:
        days = parsed.astype("datetime64[ns]").to_numpy()
    except pd.errors.OutOfBoundsDatetime as exc:  # pandas 3 reads 1650-01-01 at [us]
        raise _Decline from exc
    _, rank = np.unique(days, return_inverse=True)
    return days[codes], rank.reshape(-1)[codes]


_FIRST_DAY = pd.Timestamp.min.ceil("D")
_LAST_DAY = pd.Timestamp.max.floor("D")
"""The dates a book can hold (datetime64[ns]): 1677-09-22 to 2262-04-11."""
_EPOCH = date(1970, 1, 1)
_NS_PER_DAY = 86_400 * 10**9
_FIRST_YEAR, _LAST_YEAR = _FIRST_DAY.year + 1, _LAST_DAY.year - 1
"""The whole years a book can hold; a date outside them takes the general path, which
reports the ones outside the book's range."""


@njit(cache=True)
def _iso_days(cells: np.ndarray) -> tuple[np.ndarray, bool]:
    """(days since 1970-01-01, whether every cell is strict) of fixed-width cells (rows of
    bytes): strict is exactly ``YYYY-MM-DD`` (NUL padding after it) naming a real day of a
    year in [_FIRST_YEAR, _LAST_YEAR]. On the first cell that is not, returns at once."""
    n, width = cells.shape
    days = np.empty(n, np.int64)
    if width < 10:
        return days, False
    lengths = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    for r in range(n):
        if cells[r, 4] != 45 or cells[r, 7] != 45:  # "-"
            return days, False
        for j in range(10, width):
            if cells[r, j] != 0:
                return days, False
        d0, d1, d2, d3 = cells[r, 0] - 48, cells[r, 1] - 48, cells[r, 2] - 48, cells[r, 3] - 48
        m0, m1, e0, e1 = cells[r, 5] - 48, cells[r, 6] - 48, cells[r, 8] - 48, cells[r, 9] - 48
        # (uint8 arithmetic: a byte below "0" wraps above 9)
        if max(d0, d1, d2, d3, m0, m1, e0, e1) > 9:
            return days, False
        year = int(d0) * 1000 + int(d1) * 100 + int(d2) * 10 + int(d3)
        month = int(m0) * 10 + int(m1)
        day = int(e0) * 10 + int(e1)
        if year < _FIRST_YEAR or year > _LAST_YEAR or month < 1 or month > 12 or day < 1:
            return days, False
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        if day > lengths[month - 1] + (1 if month == 2 and leap else 0):
            return days, False
        # Days from the civil date (H. Hinnant's days_from_civil).
        y = year - (1 if month <= 2 else 0)
        era = y // 400
        yoe = y - era * 400
        doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
        doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
        days[r] = era * 146097 + doe - 719468
    return days, True


@njit(cache=True)
def _dense_rank(values: np.ndarray) -> np.ndarray:
    """Rank of each of ``values`` (small ints) among the distinct ones, from 0."""
    out = np.empty(values.shape[0], np.int64)
    if values.shape[0] == 0:
        return out
    low, high = values.min(), values.max()
    rank = np.zeros(high - low + 1, np.int64)
    for v in values:
        rank[v - low] = 1
    running = -1
    for k in range(rank.shape[0]):
        running += rank[k]
        rank[k] = running
    for r in range(values.shape[0]):
        out[r] = rank[values[r] - low]
    return out


def _exact(values: np.ndarray) -> None:
    """Declines unless every value is finite, below 2**53 in size and not -0.0: then the
    number parsed from the cell is the one ``pd.to_numeric`` gives, whatever else the column
    holds (it reads an all-integer column as int64)."""
    if not (np.abs(values) < _EXACT).all() or (np.signbit(values) & (values == 0)).any():
        raise _Decline


def _fast_numbers(values: np.ndarray, positive: bool) -> np.ndarray:
    if not ((values > 0) if positive else (values >= 0)).all():
        raise _Decline
    _exact(values)
    return values


def _fast_ids(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(text as an object array of str, the narrowed bytes) of an id column; declines on an
    empty id, blanks around one, or text that is not UTF-8."""
    cells = _byte_rows(raw)
    lengths, kind = _id_cells(cells, _BLANK)
    if kind == _ID_BLANK:
        raise _Decline
    width = -(-int(lengths.max()) // 8) * 8  # whole words, for hashing
    if width != raw.dtype.itemsize:
        raw = raw.astype(f"S{width}")
    if kind == _ID_PLAIN:
        # One text of all ids, a line each, split by str.split: the quickest way here to
        # five million str objects (about 0.45 s against 0.6-0.75 s through numpy's
        # variable-width strings).
        lines = codecs.ascii_decode(_id_lines(cells, lengths))[0].split("\n")
        lines.pop()  # after the last newline
        text = np.empty(len(lines), dtype=object)
        text[:] = lines
        return text, raw
    try:
        text = np.array([b.decode("utf-8") for b in raw.tolist()], dtype=object)
    except UnicodeDecodeError as exc:
        raise _Decline from exc
    if any(t != t.strip() for t in text):
        raise _Decline
    return text, raw


_ID_PLAIN, _ID_OTHER, _ID_BLANK = 0, 1, 2


@njit(cache=True)
def _id_cells(cells: np.ndarray, blank: np.ndarray) -> tuple[np.ndarray, int]:
    """(length of each fixed-width cell, its trailing NULs left out; the column's kind):
    _ID_BLANK if a cell is empty or starts or ends with a byte ``str.strip`` removes, else
    _ID_OTHER if one holds a byte the line-joined path cannot take (non-ASCII, a NUL or a
    newline inside), else _ID_PLAIN."""
    n, width = cells.shape
    lengths = np.zeros(n, np.int64)
    kind = _ID_PLAIN
    for r in range(n):
        length = width
        while length > 0 and cells[r, length - 1] == 0:
            length -= 1
        if length == 0 or blank[cells[r, 0]] or blank[cells[r, length - 1]]:
            return lengths, _ID_BLANK
        lengths[r] = length
        for j in range(length):
            byte = cells[r, j]
            if byte >= 128 or byte == 0 or byte == 10:
                kind = _ID_OTHER
    return lengths, kind


@njit(cache=True)
def _id_lines(cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The cells' bytes (``lengths`` of each) as one buffer, each followed by a newline
    (``report.joined_rows`` would first build an ``(n, width + 1)`` matrix: 125 MB more on
    five million ids)."""
    out = np.empty(lengths.sum() + cells.shape[0], np.uint8)
    k = 0
    for r in range(cells.shape[0]):
        for j in range(lengths[r]):
            out[k] = cells[r, j]
            k += 1
        out[k] = 10
        k += 1
    return out


def _any_duplicate(group: np.ndarray, raw: np.ndarray) -> bool:
    """Whether two rows have the same (group code, id bytes). Rows of one group in one run
    (a file sorted by account): a small hash table per run; otherwise a 64-bit hash of
    each pair finds the candidates, which are then compared exactly."""
    words = _words(raw)
    found = _duplicate_in_runs(np.asarray(group, dtype=np.int64), words)
    if found >= 0:
        return bool(found)
    h = _hash(words, group)
    ordered = np.sort(h)
    if not (ordered[1:] == ordered[:-1]).any():
        return False
    shared = np.isin(h, ordered[1:][ordered[1:] == ordered[:-1]])
    pairs = list(zip(group[shared].tolist(), raw[shared].tolist(), strict=True))
    return len(set(pairs)) < len(pairs)


@njit(cache=True)
def _duplicate_in_runs(group: np.ndarray, words: np.ndarray) -> int:
    """1 if two rows of one run of ``group`` have equal ``words`` rows, 0 if none do, -1 if
    a group comes back after its run ended (the caller then checks another way)."""
    n, width = words.shape
    if n == 0:
        return 0
    seen = np.zeros(group.max() + 1, np.bool_)
    table = np.zeros(16, np.int64)  # row + 1 per slot, 0 empty; grown for longer runs
    start = 0
    while start < n:
        g = group[start]
        if seen[g]:
            return -1
        seen[g] = True
        stop = start + 1
        while stop < n and group[stop] == g:
            stop += 1
        size = 16
        while size < 2 * (stop - start):
            size *= 2
        if size > table.shape[0]:
            table = np.zeros(size, np.int64)
        else:
            table[:size] = 0
        for r in range(start, stop):
            h = np.uint64(0x9E3779B97F4A7C15)
            for j in range(width):
                h = (h ^ words[r, j]) * np.uint64(0xBF58476D1CE4E5B9)
                h ^= h >> np.uint64(31)
            slot = np.int64(h & np.uint64(size - 1))
            while table[slot] != 0:
                other = table[slot] - 1
                same = True
                for j in range(width):
                    if words[other, j] != words[r, j]:
                        same = False
                        break
                if same:
                    return 1
                slot = (slot + 1) & (size - 1)
            table[slot] = r + 1
        start = stop
    return 0


def _sort_key(ranks: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """One int64 key ordering rows like the tuple of ranks (each rank with its count)."""
    size = 1
    for _, count in ranks:
        size *= max(count, 1)
    if size >= 2**62:
        raise _Decline
    key = np.zeros(len(ranks[0][0]), dtype=np.int64)
    for rank, count in ranks:
        _scale_add(key, np.asarray(rank, dtype=np.int64), max(count, 1))
    return key


@njit(cache=True)
def _scale_add(key: np.ndarray, rank: np.ndarray, count: int) -> None:
    """``key = key * count + rank`` in place (no 40 MB temporaries on 5M rows)."""
    for r in range(key.shape[0]):
        key[r] = key[r] * count + rank[r]


def _fast_order(key: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray | None:
    """The stable permutation sorting rows by ``key`` then by ``tie`` (bytes), or ``None``
    when they already are (the usual case: write_book writes them sorted)."""
    up, same = key[1:] > key[:-1], key[1:] == key[:-1]
    if tie is None:
        if (up | same).all():
            return None
    else:
        at = np.flatnonzero(same)
        if (up | same).all() and (tie[at + 1] >= tie[at]).all():
            return None
    order = np.argsort(key, kind="stable")
    if tie is not None:
        ordered = key[order]
        same = ordered[1:] == ordered[:-1]
        at = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
        if len(at):
            rows = order[at]
            order[at] = rows[np.lexsort((tie[rows], ordered[at]))]
    return order


@dataclass(frozen=True)
class LoaderCodes:
    """What the fast loader knows of the lots frame it built, row for row: the lot ids as
    UTF-8 bytes (a fixed-width ``S`` array) and each row's symbol as a code into
    ``symbol_names``. Kept on a book read from disk (``Book._loader_codes``); a book made
    with ``replace`` or ``subset`` starts without it."""

    lot_id_bytes: np.ndarray
    symbol_names: np.ndarray
    symbol_code: np.ndarray


def _fast_lots(
    path: Path, account_ids, symbols, as_of: date
) -> tuple[pd.DataFrame, LoaderCodes] | None:
    """The lots frame exactly as the careful path builds it, and what the loader already
    knows of its rows (see :class:`LoaderCodes`); ``None`` if the fast path declines
    lots.csv (a problem to report, or something it cannot vouch for)."""
    if not FAST_PATH or account_ids is None or symbols is None:
        return None
    kinds = {
        "account_id": "code",
        "lot_id": "id",
        "symbol": "code",
        "shares": "float",
        "unit_cost": "float",
        "acquired": "code",
    }
    try:
        raw = _fast_read(path / "lots.csv", kinds, LOT_COLUMNS)
        account, accounts, account_rank = _codes(raw["account_id"], account_ids)
        symbol, symbol_names, symbol_rank = _codes(raw["symbol"], symbols)
        lot_text, lot_bytes = _fast_ids(raw["lot_id"])
        shares = _fast_numbers(raw["shares"], positive=True)
        cost = _fast_numbers(raw["unit_cost"], positive=False)
        acquired, day_rank = _fast_dates(raw["acquired"], as_of)
        del raw
        if _any_duplicate(account, lot_bytes):
            raise _Decline
        key = _sort_key(
            [
                (account_rank[account], len(accounts)),
                (symbol_rank[symbol], len(symbol_names)),
                (day_rank, int(day_rank.max()) + 1),
            ]
        )
        order = _fast_order(key, lot_bytes)
    except _Decline:
        return None
    columns = {
        "account_id": accounts[account],
        "lot_id": lot_text,
        "symbol": symbol_names[symbol],
        "shares": shares,
        "unit_cost": cost,
        "acquired": acquired,
    }
    frame = _fast_frame(columns, order, ("account_id", "lot_id", "symbol"))
    if order is not None:
        lot_bytes, symbol = lot_bytes[order], symbol[order]
    return frame, LoaderCodes(lot_bytes, symbol_names, symbol.astype(np.int32))


def _fast_frame(columns: dict, order, text: tuple[str, ...]) -> pd.DataFrame:
    """The frame of ``columns`` (numpy arrays) in ``order``, text columns as read_csv's."""
    dtype = _str_dtype()
    out = {}
    for name, values in columns.items():
        if order is not None:
            values = values[order]
        # Fresh arrays, nobody else's: the Series may keep them rather than copy them.
        out[name] = pd.Series(values, dtype=dtype if name in text else None, copy=False)
    return pd.DataFrame(out, copy=False)


def _fast_trades(path: Path, account_ids, symbols, as_of: date) -> pd.DataFrame | None:
    """The trades frame exactly as the careful path builds it, or ``None`` if the fast path
    declines trades.csv (absent, a problem to report, or something it cannot vouch for)."""
    if not FAST_PATH or account_ids is None or symbols is None:
        return None
    kinds = {
        "account_id": "code",
        "trade_date": "code",
        "symbol": "code",
        "side": "code",
        "shares": "float",
        "price": "float",
        "realized_gain": "code",
    }
    try:
        raw = _fast_read(path / "trades.csv", kinds, TRADE_REQUIRED)
        account, accounts, account_rank = _codes(raw["account_id"], account_ids)
        symbol, symbol_names, symbol_rank = _codes(raw["symbol"], symbols)
        side, sides, side_rank = _codes(raw["side"], ("buy", "sell"))
        when, day_rank = _fast_dates(raw["trade_date"], as_of)
        shares = _fast_numbers(raw["shares"], positive=True)
        price = _fast_numbers(raw["price"], positive=True)
        gain = np.full(len(shares), np.nan)
        if "realized_gain" in raw:
            codes, texts, _ = _codes(raw["realized_gain"])
            values = pd.to_numeric(pd.Series(texts, dtype=str), errors="coerce").to_numpy(
                dtype=float
            )
            given = texts != ""
            if not np.isfinite(values[given]).all():
                raise _Decline
            _exact(values[given])
            gain = values[codes]
        key = _sort_key(
            [
                (account_rank[account], len(accounts)),
                (day_rank, int(day_rank.max()) + 1),
                (symbol_rank[symbol], len(symbol_names)),
                (side_rank[side], len(sides)),
            ]
        )
        order = _fast_order(key)
    except _Decline:
        return None
    columns = {
        "account_id": accounts[account],
        "trade_date": when,
        "symbol": symbol_names[symbol],
        "side": sides[side],
        "shares": shares,
        "price": price,
        "realized_gain": gain,
    }
    return _fast_frame(columns, order, ("account_id", "symbol", "side"))


# -- TOML ----------------------------------------------------------------------------------

MODEL_KEYS = (
    "bands",
    "cash",
    "cash_band",
    "classes",
    "description",
    "rebalance_to",
    "securities",
    "trigger",
)
BAND_KEYS = ("abs", "combine", "outer_abs", "outer_rel", "rel")
TRIGGER_KEYS = ("calendar", "cash_flow_min", "force_on_calendar", "kind")
CLASS_KEYS = ("band", "securities", "target", "weights")
# The settings a book may give: every field of Settings.
SETTINGS_KEYS = (
    "as_of",
    "wash_sale_scope",
    "loss_benefit",
    "tracking_error_value",
    "hold_lt_days",
    "wash_window_days",
)
_HEADER = re.compile(r"^\s*\[(?!\[)\s*([^\]]+?)\s*\]")


def _toml_line(text: str, *path: str) -> int | None:
    """1-based line defining the table or key at ``path`` in TOML text, for messages.

    A table is found by its ``[header]``; a key (also an inline table or one of its keys) on
    the line of its key in the deepest enclosing table that has a header; failing that, the
    line of that header, or of the first header under ``path[0]``.
    """
    lines = text.splitlines()
    headers: dict[tuple[str, ...], int] = {}
    for i, line in enumerate(lines):
        match = _HEADER.match(line)
        if match:
            name = tuple(p.strip().strip("\"'") for p in match.group(1).split("."))
            headers.setdefault(name, i)
    if path in headers:
        return headers[path] + 1
    for cut in range(len(path) - 1, -1, -1):
        table = path[:cut]
        start = headers.get(table) if table else -1
        if start is None:
            continue
        key = re.escape(path[cut])
        pattern = re.compile(rf"""^\s*(?:{key}|"{key}"|'{key}')\s*[=.]""")
        for j in range(start + 1, len(lines)):
            if lines[j].lstrip().startswith("["):
                break
            if pattern.match(lines[j]):
                return j + 1
        if table:
            return start + 1
    under = [i for name, i in headers.items() if name[:1] == path[:1]]
    return min(under) + 1 if under else None


def _is_number(value) -> bool:
    """A finite TOML integer or float (TOML booleans are Python ints, but not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Toml:
    """One parsed TOML file: reports issues at the line of a key path."""

    def __init__(self, file: str, text: str, data: dict, issues: _Issues) -> None:
        self.file, self.text, self.data, self.issues = file, text, data, issues

    def report(self, path: tuple[str, ...], message: str) -> None:
        self.issues.add(self.file, _toml_line(self.text, *path), ".".join(path), message)

    def table(self, value, path: tuple[str, ...], allowed: tuple[str, ...] | None, what: str):
        """``value`` if it is a table (reporting keys not in ``allowed``), else ``None``."""
        if not isinstance(value, dict):
            self.report(path, f"expected a table ({what}), got {value!r}")
            return None
        for k in value:
            if allowed is not None and k not in allowed:
                self.report((*path, k), f"unknown key (expected one of {', '.join(allowed)})")
        return value

    def weight(self, value, path: tuple[str, ...]) -> float | None:
        """``value`` as a weight in [0, 1], or ``None`` after reporting it."""
        if not _is_number(value) or not (0 <= value <= 1):
            self.report(path, f"expected a weight in [0, 1], got {value!r}")
            return None
        return float(value)


def _read_toml(path: Path, name: str, issues: _Issues) -> _Toml | None:
    """The parsed file, or ``None`` after reporting why it could not be read."""
    file = path / name
    try:
        text = file.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        issues.add(name, None, "(file)", f"expected UTF-8 text: {exc}")
        return None
    except tomllib.TOMLDecodeError as exc:
        # Python < 3.14 has no lineno attribute; the message ends "(at line N, column M)".
        found = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        issues.add(name, line, "(syntax)", f"not valid TOML: {exc}")
        return None
    return _Toml(name, text, data, issues)


def _band(
    toml: _Toml, spec, path: tuple[str, ...], default: Band
) -> tuple[Band, Band | None, bool]:
    """(inner band, outer band or None, whether the spec was valid) of a band table.

    Giving only ``abs`` (or only ``rel``) replaces the default band; giving neither keeps
    the default inner band (e.g. a table with only ``outer_abs``).
    """
    if spec is None:
        return default, None, True
    spec = toml.table(spec, path, BAND_KEYS, "abs, rel, combine, outer_abs, outer_rel")
    if spec is None:
        return default, None, False
    valid = True

    def width(k: str, fallback: float | None) -> float | None:
        nonlocal valid
        value = spec.get(k, fallback)
        if value is None:
            return None
        if not _is_number(value) or not (0 <= value <= 1):
            toml.report((*path, k), f"expected a number in [0, 1], got {value!r}")
            valid = False
            return None
        return float(value)

    combine = spec.get("combine", default.combine)
    if combine not in ("tighter", "looser"):
        toml.report((*path, "combine"), f"expected tighter or looser, got {combine!r}")
        combine, valid = "tighter", False
    if "abs" in spec or "rel" in spec:
        inner = Band(width("abs", None), width("rel", None), combine)
    else:
        inner = Band(default.abs, default.rel, combine)
    outer_abs, outer_rel = width("outer_abs", None), width("outer_rel", None)
    outer = None
    if outer_abs is not None or outer_rel is not None:
        outer = Band(outer_abs, outer_rel, combine)
    return inner, outer, valid


def _outer_covers_inner(outer: Band, inner: Band, target: float) -> bool:
    """Whether ``outer`` is at least as wide as ``inner`` around ``target``, on both sides."""
    outer_lo, outer_hi = outer.bounds(target)
    inner_lo, inner_hi = inner.bounds(target)
    return outer_lo <= inner_lo + TOLERANCE and outer_hi >= inner_hi - TOLERANCE


def _trigger(toml: _Toml, spec, name: str) -> TriggerSpec:
    path = (name, "trigger")
    spec = toml.table(
        {} if spec is None else spec,
        path,
        TRIGGER_KEYS,
        "kind, calendar, force_on_calendar, cash_flow_min",
    )
    if spec is None:
        return TriggerSpec()
    kind = spec.get("kind", "threshold")
    if kind not in TRIGGER_KINDS:
        toml.report((*path, "kind"), f"expected one of {', '.join(TRIGGER_KINDS)}, got {kind!r}")
        kind = None
    freq = spec.get("calendar")
    if freq is not None and freq not in CALENDAR_FREQUENCIES:
        toml.report(
            (*path, "calendar"),
            f"expected one of {', '.join(CALENDAR_FREQUENCIES)}, got {freq!r}",
        )
    elif kind in ("calendar", "hybrid") and freq is None:
        toml.report((*path, "calendar"), f"a {kind} trigger needs a calendar frequency")
    force = spec.get("force_on_calendar", False)
    if not isinstance(force, bool):
        toml.report((*path, "force_on_calendar"), f"expected true or false, got {force!r}")
        force = False
    cash_flow_min = spec.get("cash_flow_min")
    if cash_flow_min is not None and (not _is_number(cash_flow_min) or cash_flow_min < 0):
        toml.report((*path, "cash_flow_min"), f"expected dollars >= 0, got {cash_flow_min!r}")
        cash_flow_min = None
    return TriggerSpec(
        kind or "threshold",
        freq if freq in CALENDAR_FREQUENCIES else None,
        force,
        None if cash_flow_min is None else float(cash_flow_min),
    )


def _models(
    path: Path, securities: dict[str, Security] | None, issues: _Issues
) -> dict[str, Model] | None:
    """The models of ``models.toml``; ``None`` if it is missing or unreadable (so that
    accounts are not also reported for naming unknown models). ``securities`` is ``None``
    when securities.csv could not be read: security checks are then skipped."""
    if not (path / "models.toml").exists():
        issues.add("models.toml", None, "(file)", f"missing file: expected models.toml in {path}")
        return None
    toml = _read_toml(path, "models.toml", issues)
    if toml is None:
        return None
    return {name: _model(toml, name, spec, securities) for name, spec in toml.data.items()}


def _model(toml: _Toml, name: str, spec, securities: dict[str, Security] | None) -> Model:
    """One model table. An invalid model still gets a (placeholder) entry, so that accounts
    naming it are not reported too."""
    spec = toml.table(spec, (name,), MODEL_KEYS, "a model's settings")
    if spec is None:
        return Model(name, ())
    description = spec.get("description", "")
    if not isinstance(description, str):
        toml.report((name, "description"), f"expected text, got {description!r}")
        description = ""
    rebalance_to = spec.get("rebalance_to", "target")
    if rebalance_to not in REBALANCE_TO:
        toml.report(
            (name, "rebalance_to"),
            f"expected one of {', '.join(REBALANCE_TO)}, got {rebalance_to!r}",
        )
        rebalance_to = "target"
    default_inner, default_outer, bands_ok = _band(toml, spec.get("bands"), (name, "bands"), Band())
    trigger = _trigger(toml, spec.get("trigger"), name)

    classes: list[ClassTarget] = []
    # (class, where its bands are reported, whether they and its target are valid): the
    # tiers are checked at each class's own target once all are known.
    tiers: list[tuple[ClassTarget, tuple[str, ...], bool]] = []
    # Whether every target was read; if not, the sum check would only repeat the problem.
    targets_ok = True
    used: dict[str, str] = {}
    classes_spec = spec.get("classes")
    if classes_spec is not None:
        classes_spec = toml.table(classes_spec, (name, "classes"), None, "one table per class")
        targets_ok &= classes_spec is not None
    for cls, cspec in (classes_spec or {}).items():
        where = (name, "classes", cls)
        if cls == CASH:
            toml.report(where, f"{CASH} is reserved: give the cash target as {name}.cash")
            continue
        cspec = toml.table(cspec, where, CLASS_KEYS, "target, securities, band, weights")
        if cspec is None:
            targets_ok = False
            continue
        target = cspec.get("target")
        if target is None:
            toml.report((*where, "target"), "missing: expected a weight in [0, 1]")
        else:
            target = toml.weight(target, (*where, "target"))
        targets_ok &= target is not None
        listed = cspec.get("securities")
        if not isinstance(listed, list) or not listed:
            toml.report(
                (*where, "securities"),
                f"expected a list of symbols, preferred first, got {listed!r}",
            )
            listed = []
        syms: list[str] = []
        for sym in listed:
            if not isinstance(sym, str):
                toml.report((*where, "securities"), f"expected symbols (text), got {sym!r}")
            elif sym in syms:
                toml.report((*where, "securities"), f"security {sym} is listed twice")
            elif _implements(toml, sym, cls, (*where, "securities"), securities, used):
                syms.append(sym)
        inner, outer, band_ok = _band(toml, cspec.get("band"), (*where, "band"), default_inner)
        band_path = (*where, "band") if "band" in cspec else (name, "bands")
        split = _weights(toml, cspec.get("weights"), (*where, "weights"), listed, target)
        if split is not None:
            sec_targets = {s: w for s, w in split.items() if s in syms}
        else:
            sec_targets = {syms[0]: target or 0.0} if syms else {}
        c = ClassTarget(cls, target or 0.0, tuple(syms), sec_targets, inner, outer or default_outer)
        classes.append(c)
        tiers.append((c, band_path, band_ok and bands_ok and target is not None))

    by_security = spec.get("securities")
    if by_security is not None:
        by_security = toml.table(by_security, (name, "securities"), None, "symbol = target weight")
        targets_ok &= by_security is not None
    grouped: dict[str, list[tuple[str, float]]] = {}
    for sym, value in (by_security or {}).items():
        where = (name, "securities", sym)
        weight = toml.weight(value, where)
        if weight is None or securities is None:
            targets_ok = False
            continue
        if sym not in securities:
            toml.report(where, f"unknown security {sym!r} (not in securities.csv)")
            targets_ok = False
            continue
        cls = securities[sym].asset_class
        if cls in ("", CASH):  # reported in securities.csv
            targets_ok = False
            continue
        if cls in (classes_spec or {}):
            toml.report(
                where,
                f"{sym} is of class {cls}, which {name}.classes.{cls} also targets: give a "
                "class's targets either under classes or under securities, not both",
            )
            targets_ok = False
            continue
        grouped.setdefault(cls, []).append((sym, weight))
    for cls, members in sorted(grouped.items()):
        members.sort(key=lambda t: (-t[1], t[0]))
        c = ClassTarget(
            cls,
            sum(w for _, w in members),
            tuple(s for s, _ in members),
            dict(members),
            default_inner,
            default_outer,
        )
        classes.append(c)
        tiers.append((c, (name, "bands"), bands_ok))

    cash = toml.weight(spec.get("cash", 0.0), (name, "cash"))
    targets_ok &= cash is not None
    cash_inner, cash_outer, cash_band_ok = _band(
        toml, spec.get("cash_band"), (name, "cash_band"), default_inner
    )
    cash_class = ClassTarget(CASH, cash or 0.0, (), {}, cash_inner, cash_outer or default_outer)
    classes.append(cash_class)
    cash_path = (name, "cash_band") if "cash_band" in spec else (name, "bands")
    tiers.append((cash_class, cash_path, cash_band_ok and bands_ok and cash is not None))

    for c, band_path, ok in tiers:
        if (
            ok
            and c.outer_band is not None
            and not _outer_covers_inner(c.outer_band, c.band, c.target)
        ):
            inner_lo, inner_hi = c.band.bounds(c.target)
            outer_lo, outer_hi = c.outer_band.bounds(c.target)
            toml.report(
                band_path,
                f"expected the outer band to be at least as wide as the inner band at the "
                f"{c.asset_class} target {c.target:g}, got outer {outer_lo:.4f}..{outer_hi:.4f}"
                f" inside inner {inner_lo:.4f}..{inner_hi:.4f}",
            )
    if "classes" not in spec and "securities" not in spec:
        toml.report((name,), "expected [classes] or [securities] targets")
    elif targets_ok:
        total = sum(c.target for c in classes)
        if abs(total - 1.0) > TOLERANCE:
            toml.report(
                (name,), f"targets plus cash must sum to 1 (tolerance 1e-6), got {total:.6f}"
            )
    return Model(name, tuple(classes), rebalance_to, trigger, description)


def _implements(
    toml: _Toml,
    sym: str,
    cls: str,
    path: tuple[str, ...],
    securities: dict[str, Security] | None,
    used: dict[str, str],
) -> bool:
    """Whether ``sym`` may implement class ``cls``; reports why not."""
    if securities is None:  # securities.csv unreadable: reported there
        return True
    if sym not in securities:
        toml.report(path, f"unknown security {sym!r} (not in securities.csv)")
        return False
    actual = securities[sym].asset_class
    if actual not in ("", CASH, cls):  # an empty or CASH class is reported in securities.csv
        toml.report(path, f"security {sym} has asset class {actual}, not {cls}")
        return False
    if sym in used and used[sym] != cls:
        toml.report(path, f"security {sym} implements two classes ({used[sym]}, {cls})")
        return False
    used[sym] = cls
    return True


def _weights(
    toml: _Toml, split, path: tuple[str, ...], listed: list, target: float | None
) -> dict[str, float] | None:
    """A class's split of its target among its securities, or ``None`` (not given or
    invalid, reported)."""
    if split is None:
        return None
    if not isinstance(split, dict) or not split:
        toml.report(path, f"expected a table of symbol = weight, got {split!r}")
        return None
    out: dict[str, float] = {}
    for sym, value in split.items():
        weight = toml.weight(value, (*path, sym))
        if weight is None:
            continue
        if sym not in listed:
            toml.report(
                (*path, sym),
                f"expected one of the class's securities ({', '.join(map(str, listed))}), "
                f"got {sym!r}",
            )
            continue
        out[sym] = weight
    if len(out) < len(split):
        return None
    total = sum(out.values())
    if target is not None and abs(total - target) > TOLERANCE:
        toml.report(path, f"expected weights summing to the class target {target}, got {total}")
    return out


def _settings(path: Path, issues: _Issues) -> Settings:
    if not (path / "book.toml").exists():
        return Settings()
    toml = _read_toml(path, "book.toml", issues)
    if toml is None:
        return Settings()
    for k in toml.data:
        if k != "settings":
            toml.report((k,), "unknown table (expected [settings])")
    table = toml.data.get("settings", {})
    if not isinstance(table, dict):
        toml.report(("settings",), f"expected a [settings] table, got {table!r}")
        return Settings()
    values = {}
    for k, v in table.items():
        # Settings are reported by bare name (the file has only the one table).
        line = _toml_line(toml.text, "settings", k)

        def bad(expected: str, k=k, v=v, line=line) -> None:
            issues.add("book.toml", line, k, f"expected {expected}, got {v!r}")

        if k not in SETTINGS_KEYS:
            issues.add(
                "book.toml",
                line,
                k,
                f"unknown setting (expected one of {', '.join(SETTINGS_KEYS)})",
            )
        elif k == "as_of" and (not isinstance(v, date) or isinstance(v, datetime)):
            bad("a date YYYY-MM-DD")
        elif k == "wash_sale_scope" and v not in ("account", "household"):
            bad("account or household")
        elif k == "loss_benefit" and not (_is_number(v) and 0 <= v <= 1):
            bad("a number in [0, 1]")
        elif k == "tracking_error_value" and not (_is_number(v) and v >= 0):
            bad("a number >= 0")
        elif k in ("hold_lt_days", "wash_window_days") and not (
            isinstance(v, int) and not isinstance(v, bool) and v >= 0
        ):
            bad("a whole number of days >= 0")
        else:
            values[k] = v
    return Settings(**values)


# -- the book ------------------------------------------------------------------------------


def _load(path: str | Path, as_of: date | None) -> tuple[Book | None, list[BookIssue]]:
    path = Path(path)
    issues = _Issues()
    if not path.is_dir():
        return None, [BookIssue(str(path), None, "(folder)", "expected a book folder")]
    settings = _settings(path, issues)
    as_of = as_of or settings.as_of or date.today()
    settings = replace(settings, as_of=as_of)

    sec = _read_csv(path, "securities.csv", SECURITY_COLUMNS, SECURITY_OPTIONAL, issues)
    securities: dict[str, Security] = {}
    # None when the file could not be read: references to it are then not checked, since
    # every one of them would only repeat that problem.
    symbols: set[str] | None = None
    if sec is not None:
        _duplicates(sec, ["symbol"], "securities.csv", issues, "symbol")
        issues.rows(
            "securities.csv", "symbol", sec, sec["symbol"] == "", lambda r: "expected a symbol"
        )
        issues.rows(
            "securities.csv",
            "asset_class",
            sec,
            sec["asset_class"].isin(["", CASH]),
            lambda r: f"expected an asset class (not empty, not {CASH}), got {r!r}",
        )
        price = _number(sec, "price", "securities.csv", issues, "a number > 0", lambda v: v > 0)
        spread = _number(
            sec, "spread_bps", "securities.csv", issues, "a number >= 0", lambda v: v >= 0, True
        )
        commission = _number(
            sec, "commission", "securities.csv", issues, "a number >= 0", lambda v: v >= 0, True
        )
        minimum = _number(
            sec,
            "min_trade_value",
            "securities.csv",
            issues,
            "a number >= 0",
            lambda v: v >= 0,
            True,
        )
        restricted = _enum(sec, "restricted", "securities.csv", issues, RESTRICTIONS, "none")
        adv = _number(sec, "adv", "securities.csv", issues, "dollars > 0", lambda v: v > 0, True)
        vol = _number(
            sec, "volatility", "securities.csv", issues, "a number >= 0", lambda v: v >= 0, True
        )
        group = sec["wash_group"] if "wash_group" in sec.columns else sec["symbol"]
        # Every symbol stays known even when another cell of its row is invalid, so that the
        # mistake is reported once, here, and not again wherever the symbol is used. (The book
        # is only built when there are no issues, so no invalid value gets through.)
        for k in range(len(sec)):
            s = sec["symbol"].iat[k]
            if s and s not in securities:
                securities[s] = Security(
                    s,
                    sec["asset_class"].iat[k],
                    float(price.iat[k]),
                    group.iat[k] or s,
                    float(np.nan_to_num(spread.iat[k])),
                    float(np.nan_to_num(commission.iat[k])),
                    float(np.nan_to_num(minimum.iat[k])),
                    restricted.iat[k] if restricted.iat[k] in RESTRICTIONS else "none",
                    None if np.isnan(adv.iat[k]) else float(adv.iat[k]),
                    None if np.isnan(vol.iat[k]) else float(vol.iat[k]),
                )
        symbols = set(securities)
    models = _models(path, securities if sec is not None else None, issues)

    acc = _read_csv(path, "accounts.csv", ACCOUNT_COLUMNS, ACCOUNT_OPTIONAL, issues)
    accounts: dict[str, Account] = {}
    account_ids: set[str] | None = None
    if acc is not None:
        issues.rows(
            "accounts.csv",
            "account_id",
            acc,
            acc["account_id"] == "",
            lambda r: "expected an account id, got an empty cell",
        )
        _duplicates(acc, ["account_id"], "accounts.csv", issues, "account_id")
        _unknown(
            acc, "model", "accounts.csv", issues, None if models is None else set(models), "model"
        )
        registration = _enum(acc, "registration", "accounts.csv", issues, REGISTRATIONS)
        cash = _number(acc, "cash", "accounts.csv", issues)
        st = _number(
            acc,
            "st_rate",
            "accounts.csv",
            issues,
            "a rate in [0, 1]",
            lambda v: (v >= 0) & (v <= 1),
        )
        lt = _number(
            acc,
            "lt_rate",
            "accounts.csv",
            issues,
            "a rate in [0, 1]",
            lambda v: (v >= 0) & (v <= 1),
        )
        budget = _number(
            acc, "gain_budget", "accounts.csv", issues, "a number >= 0", lambda v: v >= 0, True
        )
        st_cap = _number(
            acc, "st_gain_cap", "accounts.csv", issues, "a number >= 0", lambda v: v >= 0, True
        )
        flow = _number(acc, "cash_flow", "accounts.csv", issues, optional=True)
        fractional = _bool(acc, "fractional_shares", "accounts.csv", issues)
        last = _date(acc, "last_rebalanced", "accounts.csv", issues, as_of, optional=True)
        reviewed = _date(acc, "last_reviewed", "accounts.csv", issues, as_of, optional=True)
        lists = {}
        for field in ("do_not_buy", "do_not_sell", "do_not_trade"):
            col = acc[field] if field in acc.columns else pd.Series("", index=acc.index)
            texts = col.tolist()
            # Each distinct cell parsed once (most are empty).
            sets = {t: frozenset(x.strip() for x in t.split(";") if x.strip()) for t in set(texts)}
            if symbols is not None:
                unknown = {t: any(s not in symbols for s in syms) for t, syms in sets.items()}
                bad = [unknown[t] for t in texts]
                issues.rows("accounts.csv", field, acc, bad, lambda r: f"unknown symbol in {r!r}")
            lists[field] = [sets[t] for t in texts]
        # Plain Python lists: one .iat per cell costs seconds for 10,000 accounts.
        rows = zip(
            acc["account_id"].tolist(),
            acc["model"].tolist(),
            acc["household_id"].tolist(),
            registration.tolist(),
            np.nan_to_num(cash.to_numpy(dtype=float)).tolist(),
            np.nan_to_num(st.to_numpy(dtype=float)).tolist(),
            np.nan_to_num(lt.to_numpy(dtype=float)).tolist(),
            budget.to_numpy(dtype=float).tolist(),
            st_cap.to_numpy(dtype=float).tolist(),
            flow.to_numpy(dtype=float).tolist(),
            fractional.tolist(),
            last.tolist(),
            reviewed.tolist(),
            strict=True,
        )
        for k, (a, model, household, reg, c, st_k, lt_k, b, cap, f, frac, lr, rv) in enumerate(
            rows
        ):
            if not a or a in accounts:
                continue
            accounts[a] = Account(
                a,
                model,
                household or a,
                reg,
                c,
                st_k,
                lt_k,
                None if math.isnan(b) else b,
                None if math.isnan(cap) else cap,
                0.0 if math.isnan(f) else f,
                bool(frac),
                last_rebalanced=None if pd.isna(lr) else lr.date(),
                last_reviewed=None if pd.isna(rv) else rv.date(),
                **{field: values[k] for field, values in lists.items()},
            )
        account_ids = set(accounts)

    fast_lots = _fast_lots(path, account_ids, symbols, as_of)
    lots, loader_codes = fast_lots if fast_lots is not None else (None, None)
    lots_raw = None if lots is not None else _read_csv(path, "lots.csv", LOT_COLUMNS, (), issues)
    if lots is None:
        lots = pd.DataFrame({c: pd.Series(dtype=object) for c in LOT_COLUMNS})
    if lots_raw is not None:
        _unknown(lots_raw, "account_id", "lots.csv", issues, account_ids, "account")
        _unknown(lots_raw, "symbol", "lots.csv", issues, symbols, "symbol")
        issues.rows(
            "lots.csv",
            "lot_id",
            lots_raw,
            lots_raw["lot_id"] == "",
            lambda r: "expected a lot id, got an empty cell",
        )
        _duplicates(lots_raw, ["account_id", "lot_id"], "lots.csv", issues, "lot_id")
        shares = _number(lots_raw, "shares", "lots.csv", issues, "a number > 0", lambda v: v > 0)
        cost = _number(lots_raw, "unit_cost", "lots.csv", issues, "a number >= 0", lambda v: v >= 0)
        acquired = _date(lots_raw, "acquired", "lots.csv", issues, as_of)
        lots = pd.DataFrame(
            {
                "account_id": lots_raw["account_id"],
                "lot_id": lots_raw["lot_id"],
                "symbol": lots_raw["symbol"],
                "shares": shares,
                "unit_cost": cost,
                "acquired": acquired.astype("datetime64[ns]"),
            }
        ).sort_values(
            ["account_id", "symbol", "acquired", "lot_id"], kind="stable", ignore_index=True
        )

    trades = _fast_trades(path, account_ids, symbols, as_of)
    tr = None
    if trades is None:
        tr = _read_csv(
            path, "trades.csv", TRADE_REQUIRED, ("realized_gain",), issues, must_exist=False
        )
        trades = pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS})
        trades["trade_date"] = pd.Series(dtype="datetime64[ns]")
        for c in ("shares", "price", "realized_gain"):
            trades[c] = pd.Series(dtype=float)
    if tr is not None:
        _unknown(tr, "account_id", "trades.csv", issues, account_ids, "account")
        _unknown(tr, "symbol", "trades.csv", issues, symbols, "symbol")
        side = _enum(tr, "side", "trades.csv", issues, ("buy", "sell"))
        when = _date(tr, "trade_date", "trades.csv", issues, as_of)
        shares = _number(tr, "shares", "trades.csv", issues, "a number > 0", lambda v: v > 0)
        price = _number(tr, "price", "trades.csv", issues, "a number > 0", lambda v: v > 0)
        gain = _number(tr, "realized_gain", "trades.csv", issues, optional=True)
        trades = pd.DataFrame(
            {
                "account_id": tr["account_id"],
                "trade_date": when.astype("datetime64[ns]"),
                "symbol": tr["symbol"],
                "side": side,
                "shares": shares,
                "price": price,
                "realized_gain": gain,
            }
        ).sort_values(
            ["account_id", "trade_date", "symbol", "side"], kind="stable", ignore_index=True
        )

    prices = _prices(path, symbols, issues)
    problems = issues.finish()
    if problems:
        return None, problems
    book = Book(securities, models, accounts, lots, trades, prices, settings, path)
    if loader_codes is not None:
        # Planning reads lot ids from these bytes, never from the frame's str objects: a
        # forked worker would copy every page of them it touched (see LotArrays.lot_id).
        # The symbol codes spare the lot arrays a 5M-row string lookup (about 0.4 s).
        object.__setattr__(book, "_loader_codes", loader_codes)
    return book, []


def _prices(path: Path, symbols: set[str] | None, issues: _Issues) -> pd.DataFrame | None:
    file = path / "prices.csv"
    if not file.exists():
        return None
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        issues.add("prices.csv", None, "(file)", f"not a readable CSV file: {exc}")
        return None
    if "date" not in raw.columns:
        issues.add("prices.csv", 1, "date", "missing required column")
        return None
    dates = _date(raw, "date", "prices.csv", issues)
    order = dates.diff().dt.days
    issues.rows(
        "prices.csv",
        "date",
        raw,
        (order <= 0).fillna(False).to_numpy(),
        lambda r: f"expected dates strictly increasing, got {r!r}",
    )
    out = {}
    for c in raw.columns:
        if c == "date":
            continue
        if symbols is not None and c not in symbols:
            issues.add("prices.csv", 1, c, "unknown symbol column (not in securities.csv)")
            continue
        out[c] = _number(raw, c, "prices.csv", issues, "a price > 0", lambda v: v > 0, True)
    frame = pd.DataFrame(out)
    frame.index = pd.DatetimeIndex(dates, name="date")
    return frame


def validate_book(path: str | Path, as_of: date | None = None) -> list[BookIssue]:
    """Every problem of the book at ``path`` (empty when it is valid)."""
    with small_pages():
        return _load(path, as_of)[1]


def load_book(path: str | Path, as_of: date | None = None) -> Book:
    """Load and validate a book; raises :class:`BookError` listing every problem."""
    with small_pages():
        book, problems = _load(path, as_of)
    if problems:
        raise BookError(problems)
    return book


# -- writing -------------------------------------------------------------------------------


def _fmt(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _fmt_many(values, decimals: int) -> list[str]:
    """``_fmt`` of every value (the writers' fallback for what the vectorised path cannot
    vouch for: rare, so one by one)."""
    return [_fmt(v, decimals) for v in np.asarray(values, dtype=float).tolist()]


def _text_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, each distinct text as UTF-8 bytes) of a text column; raises :class:`_Slow`
    on a missing value or a NUL character (which the joined rows would lose)."""
    values = values.to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else []
    if len(starts) * 4 < len(values):
        # Runs of one value (ids in a sorted frame): number the runs' values only.
        codes, distinct = pd.factorize(values[starts])
        codes = np.repeat(codes, np.diff(np.r_[starts, len(values)]))
    else:
        codes, distinct = pd.factorize(values)
    if (codes < 0).any() or not all(isinstance(t, str) and "\x00" not in t for t in distinct):
        raise _Slow
    return codes, np.array([t.encode() for t in distinct], dtype=np.bytes_)


def _text_bytes(column: pd.Series) -> np.ndarray:
    """Texts as UTF-8 bytes (``S`` array); raises :class:`_Slow` as :func:`_text_codes`."""
    values = column.to_numpy(dtype=object)
    if isinstance(column.dtype, pd.StringDtype):
        text = not column.hasnans  # then every value is a str
    else:
        text = all(isinstance(t, str) for t in values)
    if not text or "\x00" in "".join(values):
        raise _Slow
    try:
        return values.astype(np.bytes_)
    except UnicodeEncodeError:
        return np.array([t.encode() for t in values], dtype=np.bytes_)


def _vector_csv(columns: list[tuple], header: list[str], chunk: int = 250_000):
    """The text of a CSV file (as pieces): what :func:`_csv_columns` writes, built in numpy
    a chunk of rows at a time. Columns are given as ``("text", Series)`` (few distinct
    values), ``("id", Series)`` (many), ``("number", values, decimals)`` or ``("day",
    datetime64 values, one_by_one)``. Raises :class:`_Slow` (before anything is written)
    if a column needs the row-by-row writer."""
    n = len(columns[0][1])
    prepared = []
    for kind, values, *extra in columns:
        if kind == "id":  # (nearly) all distinct
            prepared.append(("raw", _text_bytes(values), None))
        elif kind == "text":  # few distinct values
            prepared.append(("codes", *_text_codes(values)))
        elif kind == "day":
            codes, distinct = pd.factorize(pd.Series(values), use_na_sentinel=False)
            texts = _day_texts(distinct, *extra)
            if not all(isinstance(t, str) for t in texts):
                raise _Slow
            prepared.append(("codes", codes, np.array([t.encode() for t in texts], np.bytes_)))
        else:
            values = np.asarray(values, dtype=float)
            rounded(values, extra[0])  # raises _Slow now rather than mid-file
            prepared.append(("number", values, extra[0]))

    def pieces():
        yield ",".join(header) + "\n"
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            fields = []
            for kind, values, extra in prepared:
                if kind == "raw":
                    fields.append(_byte_rows(values[rows]))
                elif kind == "codes":
                    fields.append(_byte_rows(extra[values[rows]]))
                else:
                    fields.append(number_bytes(values[rows], extra, strip=True))
            yield _joined_rows(fields)

    return pieces()


def _day_texts(values, one_by_one: bool = False) -> list:
    """``YYYY-MM-DD`` of every date (datetime64 values), each distinct date formatted once
    by ``Series.dt.strftime`` (or ``Timestamp.strftime``, if ``one_by_one``)."""
    codes, distinct = pd.factorize(pd.Series(values), use_na_sentinel=False)
    if one_by_one:
        texts = [pd.Timestamp(d).strftime("%Y-%m-%d") for d in distinct]
    else:
        texts = pd.Series(distinct).dt.strftime("%Y-%m-%d").tolist()
    return [texts[c] for c in codes.tolist()]


def _atomic(path: Path, text) -> None:
    """Write ``text`` (a string, or an iterable of strings written one after the other) to
    a temporary file, then rename it to ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            if isinstance(text, str):
                handle.write(text)
            else:
                handle.writelines(text)
        # mkstemp creates the file private (0o600); the book is for others to read too.
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv(rows: list[list[str]], header: list[str]) -> str:
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def _csv_columns(columns: list[list[str]], header: list[str], chunk: int = 200_000):
    """The text of ``_csv`` of the rows of ``columns`` (lists of text), in pieces of
    ``chunk`` rows so that a large file is never one string in memory."""
    yield ",".join(header) + "\n"
    n = len(columns[0]) if columns else 0
    for start in range(0, n, chunk):
        piece = [c[start : start + chunk] for c in columns]
        yield "\n".join(map(",".join, zip(*piece, strict=True))) + "\n"


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


def models_toml(models: dict[str, Model]) -> str:
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


def write_book(book: Book, path: str | Path) -> Path:
    """Write ``book`` in the folder format (sorted rows, fixed number formats, atomic files)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    secs = [book.securities[s] for s in sorted(book.securities)]
    _atomic(
        path / "securities.csv",
        _csv(
            [
                [
                    s.symbol,
                    s.asset_class,
                    _fmt(s.price, 4),
                    s.wash_group,
                    _fmt(s.spread_bps, 4),
                    _fmt(s.commission, 4),
                    _fmt(s.min_trade_value, 2),
                    s.restricted,
                    _fmt(s.adv, 2),
                    _fmt(s.volatility, 6),
                ]
                for s in secs
            ],
            ["symbol", "asset_class", "price", *SECURITY_OPTIONAL],
        ),
    )
    _atomic(path / "models.toml", models_toml(dict(book.models)))
    accs = [book.accounts[a] for a in sorted(book.accounts)]
    # do_not_trade is written only when some account has one, so books without it (the
    # demo among them) keep their files byte for byte.
    account_columns = [*ACCOUNT_COLUMNS, *ACCOUNT_OPTIONAL]
    if not any(a.do_not_trade for a in accs):
        account_columns.remove("do_not_trade")
    _atomic(
        path / "accounts.csv",
        _csv(
            [
                [
                    a.account_id,
                    a.model,
                    a.household_id,
                    a.registration,
                    _fmt(a.cash, 2),
                    _fmt(a.st_rate, 6),
                    _fmt(a.lt_rate, 6),
                    _fmt(a.gain_budget, 2),
                    _fmt(a.st_gain_cap, 2),
                    _fmt(a.cash_flow, 2),
                    "true" if a.fractional_shares else "false",
                    ";".join(sorted(a.do_not_buy)),
                    ";".join(sorted(a.do_not_sell)),
                    a.last_rebalanced.isoformat() if a.last_rebalanced else "",
                    a.last_reviewed.isoformat() if a.last_reviewed else "",
                    ";".join(sorted(a.do_not_trade)),
                ][: len(account_columns)]
                for a in accs
            ],
            account_columns,
        ),
    )
    lots = book.lots
    try:
        text = _vector_csv(
            [
                ("text", lots["account_id"]),
                ("id", lots["lot_id"]),
                ("text", lots["symbol"]),
                ("number", lots["shares"], 6),
                ("number", lots["unit_cost"], 4),
                ("day", pd.to_datetime(lots["acquired"]), False),
            ],
            list(LOT_COLUMNS),
        )
    except _Slow:
        columns = [
            lots["account_id"].tolist(),
            lots["lot_id"].tolist(),
            lots["symbol"].tolist(),
            _fmt_many(lots["shares"], 6),
            _fmt_many(lots["unit_cost"], 4),
            _day_texts(pd.to_datetime(lots["acquired"])),
        ]
        text = _csv_columns(columns, list(LOT_COLUMNS))
    _atomic(path / "lots.csv", text)
    if len(book.trades):
        t = book.trades
        try:
            text = _vector_csv(
                [
                    ("text", t["account_id"]),
                    ("day", t["trade_date"], True),
                    ("text", t["symbol"]),
                    ("text", t["side"]),
                    ("number", t["shares"], 6),
                    ("number", t["price"], 4),
                    ("number", t["realized_gain"], 2),
                ],
                list(TRADE_COLUMNS),
            )
        except _Slow:
            columns = [
                t["account_id"].tolist(),
                _day_texts(t["trade_date"], one_by_one=True),
                t["symbol"].tolist(),
                t["side"].tolist(),
                _fmt_many(t["shares"], 6),
                _fmt_many(t["price"], 4),
                _fmt_many(t["realized_gain"], 2),
            ]
            text = _csv_columns(columns, list(TRADE_COLUMNS))
        _atomic(path / "trades.csv", text)
    if book.prices is not None:
        p = book.prices
        rows = [
            [pd.Timestamp(d).strftime("%Y-%m-%d"), *(_fmt(float(v), 4) for v in values)]
            for d, values in zip(p.index, p.to_numpy(), strict=True)
        ]
        _atomic(path / "prices.csv", _csv(rows, ["date", *p.columns]))
    s = book.settings
    lines = ["[settings]"]
    if s.as_of:
        lines.append(f"as_of = {s.as_of.isoformat()}")
    lines += [
        f'wash_sale_scope = "{s.wash_sale_scope}"',
        f"loss_benefit = {s.loss_benefit!r}",
        f"tracking_error_value = {s.tracking_error_value!r}",
        f"hold_lt_days = {s.hold_lt_days}",
        f"wash_window_days = {s.wash_window_days}",
    ]
    _atomic(path / "book.toml", "\n".join(lines) + "\n")
    return path
