"""The tables of a book, read through pyarrow from CSV or Parquet.

A CSV file is read whole with every cell as text (the checks in :mod:`planner.io.cells`
parse them, so that a bad cell is reported rather than guessed at); a Parquet file keeps its
own column types. Column names are stripped of blanks. Rows are named as a person finds
them: by the physical line of a CSV record (the header is line 1; blank lines and quoted
newlines count) or by the 1-based data row of a Parquet file. Lines are worked out only when
a problem is reported, by Python's own CSV reader.
"""

from __future__ import annotations

import csv
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from planner.io.cells import Issues

MAX_FILE_BYTES = 4 << 30
"""Largest book file read (4 GiB): a bigger one, or anything but a regular file (a device
such as /dev/zero), is refused before reading."""
MAX_LINE_BYTES = 1 << 20
"""Largest CSV record (1 MiB): the reader's block size, so a longer line is refused."""
SUFFIXES = (".csv", ".parquet")


@dataclass(eq=False)
class Table:
    """One table of a book: ``data`` (pyarrow) with stripped column names, and where each
    data row sits in its file."""

    name: str
    path: Path
    data: pa.Table
    skipped: list[dict[str, str]] = field(default_factory=list)
    """Rows left out for having the wrong number of cells (reported), as far as their cells
    go: ids they name are still known, so that they are not reported again elsewhere."""
    _lines: list[int] | None = field(default=None, repr=False)

    @property
    def parquet(self) -> bool:
        return self.path.suffix == ".parquet"

    @property
    def columns(self) -> list[str]:
        return self.data.column_names

    def __len__(self) -> int:
        return self.data.num_rows

    def column(self, name: str) -> pa.Array:
        """A column as one array (chunks combined)."""
        return self.data.column(name).combine_chunks()

    def line(self, row: int) -> int:
        """Where data row ``row`` (0-based) is: its physical line in a CSV file, its
        1-based row in a Parquet file."""
        if self.parquet:
            return row + 1
        if self._lines is None:
            width = self.data.num_columns
            self._lines = [start for start, cells in _records(self.path)[1:] if len(cells) == width]
        return self._lines[row] if row < len(self._lines) else row + 2


def find(folder: Path, stem: str, issues: Issues, must_exist: bool = True) -> Path | None:
    """The file of table ``stem`` (``stem.csv`` or ``stem.parquet``), or ``None`` after
    reporting why there is none to read."""
    present = [folder / f"{stem}{s}" for s in SUFFIXES if (folder / f"{stem}{s}").exists()]
    if len(present) > 1:
        names = " and ".join(p.name for p in present)
        issues.add(present[0].name, None, "(file)", f"both {names} are present: keep one")
        return None
    if not present:
        if must_exist:
            issues.add(
                f"{stem}.csv", None, "(file)", f"missing file: expected {stem}.csv in {folder}"
            )
        return None
    path = present[0]
    return path if _readable(path, issues) else None


def _readable(path: Path, issues: Issues) -> bool:
    """Whether ``path`` is a regular file within :data:`MAX_FILE_BYTES`; reported if not."""
    try:
        info = path.stat()
    except OSError as exc:
        issues.add(path.name, None, "(file)", f"cannot read it: {exc.strerror}")
        return False
    if not stat.S_ISREG(info.st_mode):
        issues.add(path.name, None, "(file)", "expected a regular file")
        return False
    if info.st_size > MAX_FILE_BYTES:
        issues.add(
            path.name,
            None,
            "(file)",
            f"{info.st_size:,} bytes: larger than the {MAX_FILE_BYTES:,} a book file may have",
        )
        return False
    return True


def read_file(path: Path, issues: Issues) -> Table | None:
    """The table in one file given by its path (``.parquet``, else CSV), for files outside
    a book (a fills file); ``None`` after reporting why it cannot be read."""
    if not path.exists():
        issues.add(path.name, None, "(file)", f"missing file: {path}")
        return None
    if not _readable(path, issues):
        return None
    return _read_parquet(path, issues) if path.suffix == ".parquet" else _read_csv(path, issues)


def checked(
    table: Table, required: tuple[str, ...], optional: tuple[str, ...], issues: Issues
) -> Table | None:
    """``table`` if it has every ``required`` column; a column in neither ``required`` nor
    ``optional`` is reported too. ``None`` when one is missing (reported)."""
    missing = [c for c in required if c not in table.columns]
    for c in missing:
        issues.add(table.name, 1, c, "missing required column")
    known = required + optional
    for c in table.columns:
        if c not in known:
            issues.add(table.name, 1, c, f"unknown column (expected one of {', '.join(known)})")
    return None if missing else table


def read(
    folder: Path,
    stem: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    issues: Issues,
    must_exist: bool = True,
) -> Table | None:
    """Table ``stem`` of the book in ``folder``, its columns checked against ``required``
    and ``optional``; ``None`` when it is absent or unreadable (reported)."""
    table = read_any_columns(folder, stem, issues, must_exist)
    return None if table is None else checked(table, required, optional, issues)


def read_any_columns(
    folder: Path, stem: str, issues: Issues, must_exist: bool = False
) -> Table | None:
    """Table ``stem`` with whatever columns it has (prices: a date and one per symbol)."""
    path = find(folder, stem, issues, must_exist)
    if path is None:
        return None
    return _read_parquet(path, issues) if path.suffix == ".parquet" else _read_csv(path, issues)


def _named(path: Path, data: pa.Table, names: list[str], issues: Issues) -> Table | None:
    """``data`` under its stripped column names; ``None`` if two of them are the same."""
    stripped = [n.strip() for n in names]
    seen: set[str] = set()
    for n in stripped:
        if n in seen:
            issues.add(path.name, 1, n, "duplicate column name (after stripping blanks)")
        seen.add(n)
    if len(seen) < len(stripped):
        return None
    return Table(path.name, path, data.rename_columns(stripped))


def _read_parquet(path: Path, issues: Issues) -> Table | None:
    try:
        data = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        issues.add(path.name, None, "(file)", f"not a readable Parquet file: {exc}")
        return None
    return _named(path, data, data.column_names, issues)


def _read_csv(path: Path, issues: Issues) -> Table | None:
    """Every cell as text. Rows with a different number of cells than the header are
    reported at their lines and left out."""
    names = _header(path)
    if names is None:
        issues.add(path.name, *_unreadable(path, None))
        return None
    ragged = []

    def skip(row) -> str:
        ragged.append(row)
        return "skip"

    try:
        data = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(
                column_names=[f"f{i}" for i in range(len(names))],
                skip_rows=1,
                block_size=MAX_LINE_BYTES,
            ),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
            convert_options=pa_csv.ConvertOptions(
                column_types={f"f{i}": pa.string() for i in range(len(names))},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" not in str(exc):
            issues.add(path.name, *_unreadable(path, exc))
            return None
        # A header and no rows.
        data = pa.table({f"f{i}": pa.array([], pa.string()) for i in range(len(names))})
    skipped = []
    if ragged:
        for start, cells in _records(path)[1:]:
            if len(cells) == len(names):
                continue
            if sum(map(len, cells)) > MAX_LINE_BYTES:
                message = f"a line longer than the {MAX_LINE_BYTES:,} bytes allowed"
            else:
                message = f"expected {len(names)} cells as in the header, got {len(cells)}"
            issues.add(path.name, start, "(row)", message)
            skipped.append({n.strip(): c.strip() for n, c in zip(names, cells, strict=False)})
    table = _named(path, data, names, issues)
    if table is not None:
        table.skipped = skipped
    return table


def _header(path: Path) -> list[str] | None:
    """The cells of the first record, or ``None`` if there is none (or it is not text)."""
    csv.field_size_limit(MAX_LINE_BYTES)
    try:
        # utf-8-sig: a byte-order mark (spreadsheets write one) is not part of the header.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for record in csv.reader(handle):
                if record:
                    return record
    except (UnicodeDecodeError, csv.Error):
        return None
    return None


def _unreadable(path: Path, exc: Exception | None) -> tuple[int | None, str, str]:
    """(line, field, message) of a CSV file that could not be read."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if len(raw) > MAX_LINE_BYTES:
                return number, "(row)", f"line longer than {MAX_LINE_BYTES:,} bytes"
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return number, "(row)", f"expected UTF-8 text: {bad.reason} at byte {bad.start}"
    if exc is None:
        return None, "(file)", "empty file: expected a header line"
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None, "(file)", f"not a readable CSV file: {message}"


def _records(path: Path) -> list[tuple[int, list[str]]]:
    """(first physical line, cells) of every record of a CSV file, as Python's CSV reader
    sees them; blank lines, which pyarrow skips too, are left out."""
    out = []
    csv.field_size_limit(MAX_FILE_BYTES)  # long cells are reported, not refused, here
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        end = 0
        for record in reader:
            if record:
                out.append((end + 1, record))
            end = reader.line_num
    return out
