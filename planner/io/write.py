"""Writing outputs: fixed number formats, sorted rows, atomic replacement.

Every file of one run is first written to a temporary file in the output folder; only when
all of them are complete are they renamed into place, so a failed run leaves no half-written
output behind and the same inputs give byte-identical files.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from planner.memory import small_pages

SHARES = "{:.6f}"
MONEY = "{:.2f}"
PRICE = "{:.4f}"
WEIGHT = "{:.6f}"
MS = "{:.3f}"

COLUMN_FORMATS: dict[str, str] = {
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


def _format_value(value, fmt: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        text = (fmt or WEIGHT).format(value)
        # Avoid "-0.00" so that re-runs and platforms agree byte for byte.
        return text[1:] if text.startswith("-") and float(text) == 0 else text
    return str(value)


_FIXED = re.compile(r"\{:\.\d+f\}")
"""A fixed-point format, e.g. ``{:.6f}``: the same as ``%.6f``."""


def _format_floats(values: np.ndarray, fmt: str) -> list[str]:
    """``_format_value`` of every value of a float array, in a few C-level passes: one
    %-format of all the numbers at once (the same conversion as ``str.format``), then the
    few texts that could read "-0.00" looked at one by one."""
    spec = "%" + fmt[2:-1]  # "{:.6f}" -> "%.6f"
    missing = np.isnan(values)
    numbers = values[~missing].tolist()
    texts = ("\n".join([spec] * len(numbers)) % tuple(numbers)).split("\n") if numbers else []
    if missing.any():
        out = [""] * len(values)
        for i, text in zip(np.flatnonzero(~missing).tolist(), texts, strict=True):
            out[i] = text
    else:
        out = texts
    # Only a negative value below 1 in size can print as all zeros with a minus sign.
    for i in np.flatnonzero(np.signbit(values) & (np.abs(values) < 1)).tolist():
        text = out[i]
        if text.startswith("-") and float(text) == 0:
            out[i] = text[1:]
    return out


def _format_column(column: pd.Series, fmt: str | None) -> list[str]:
    """Every cell of ``column`` as ``_format_value`` gives it."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f" and _FIXED.fullmatch(fmt or WEIGHT):
        # Every value is a float (tolist() gives Python floats): vectorised.
        return _format_floats(column.to_numpy(dtype=np.float64), fmt or WEIGHT)
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return [str(v) for v in column.tolist()]  # never None or a float
    values = column.tolist()
    if isinstance(dtype, pd.StringDtype) and not column.hasnans:
        return values  # all text already
    return [_format_value(v, fmt) for v in values]


def _column_format(column: str) -> str | None:
    """The fixed format of a named column (class weights ``pre_*``/``post_*`` are weights)."""
    if column in COLUMN_FORMATS:
        return COLUMN_FORMATS[column]
    return WEIGHT if column.startswith(("pre_", "post_")) else None


def format_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text with the column's fixed format (weights for unnamed floats)."""
    out = {col: _format_column(frame[col], _column_format(col)) for col in frame.columns}
    return pd.DataFrame(out, columns=list(frame.columns))


class Slow(Exception):
    """A vectorised writer cannot vouch for a column: the value-by-value one is used."""


def rounded(x: np.ndarray, decimals: int) -> np.ndarray:
    """``x * 10**decimals`` rounded to whole numbers as ``f"{x:.{decimals}f}"`` rounds it
    (correctly, half to even on the exact binary value), as floats (NaN as 0); raises
    :class:`Slow` for a value of 1e15 or more in size (or infinite) after scaling.

    The float product ``s`` errs from the exact one by at most ``|s| * 2**-53``: when ``s``
    is farther than that from a half-way point, the exact product rounds as ``s`` does. The
    few values nearer (a cost like 5505.665 is) are rounded by Python itself."""
    scaled = np.where(np.isnan(x), 0.0, x) * 10.0**decimals
    with np.errstate(invalid="ignore"):
        if not (np.abs(scaled) < 1e15).all():
            raise Slow
        m = np.rint(scaled)
        near = 0.5 - np.abs(scaled - m) <= np.abs(scaled) * 2.0**-50
    for i in np.flatnonzero(near).tolist():
        m[i] = float(int(f"{x[i]:.{decimals}f}".replace(".", "")))  # "-0.00" gives 0
    return m


def number_bytes(values: np.ndarray, decimals: int, strip: bool = False) -> np.ndarray:
    """``f"{v:.{decimals}f}"`` of every value, without a minus sign on a value that prints
    as zero, as rows of bytes: NUL (0) bytes stand for absent characters and are dropped
    when the rows are joined; NaN gives an empty text. With ``strip``, trailing zeros of the
    fraction (and a bare point) are dropped, as ``planner.io.read._fmt`` does. The digits come
    from the integer :func:`rounded` (which raises :class:`Slow` when it cannot vouch)."""
    x = np.asarray(values, dtype=float)
    return _digit_rows(rounded(x, decimals), np.isnan(x), decimals, strip)


@njit(cache=True)
def _digit_rows(m: np.ndarray, nan: np.ndarray, decimals: int, strip: bool) -> np.ndarray:
    """The text rows of :func:`number_bytes` from ``m``, the values times ``10**decimals``
    rounded to whole numbers (below 1e15 in size): sign, whole digits right-aligned in the
    widest one's width, point and fraction digits."""
    n = m.shape[0]
    scale = 10**decimals
    largest = 0.0
    for i in range(n):
        largest = max(largest, abs(m[i]))
    top = int(largest) // scale
    width = 1
    while top >= 10:
        top //= 10
        width += 1
    out = np.zeros((n, 1 + width + 1 + decimals), dtype=np.uint8)
    for i in range(n):
        if nan[i]:
            continue  # an empty text
        if m[i] < 0:  # m == 0 (also -0.0) prints no sign
            out[i, 0] = 45  # "-"
        whole, part = divmod(int(abs(m[i])), scale)
        k = width  # the units digit always shows, leading zeros do not
        out[i, k] = 48 + whole % 10
        whole //= 10
        while whole > 0:
            k -= 1
            out[i, k] = 48 + whole % 10
            whole //= 10
        if decimals:
            out[i, width + 1] = 0 if strip and part == 0 else 46  # "."
        shown = not strip  # with strip, a fraction digit shows once one to its right is not 0
        for k in range(decimals, 0, -1):
            digit = part % 10
            part //= 10
            shown = shown or digit != 0
            if shown:
                out[i, width + 1 + k] = 48 + digit
    return out


def byte_rows(raw: np.ndarray) -> np.ndarray:
    """An ``S`` array as rows of bytes (NUL-padded)."""
    width = raw.dtype.itemsize
    return np.ascontiguousarray(raw).view(np.uint8).reshape(len(raw), width)


def joined_rows(fields: list[np.ndarray]) -> str:
    """The CSV text of rows given as one byte matrix per field (NUL bytes dropped)."""
    n = len(fields[0])
    out = np.empty((n, sum(f.shape[1] for f in fields) + len(fields)), dtype=np.uint8)
    at = 0
    for f in fields:
        out[:, at : at + f.shape[1]] = f
        out[:, at + f.shape[1]] = ord(",")
        at += f.shape[1] + 1
    out[:, -1] = ord("\n")
    return _without_nul(out.ravel()).tobytes().decode("utf-8")


@njit(cache=True)
def _without_nul(flat: np.ndarray) -> np.ndarray:
    """``flat[flat != 0]`` in one pass (a boolean mask and a compress were 0.3 s of a
    10,000-account plan's lot sales)."""
    out = np.empty_like(flat)
    at = 0
    for k in range(flat.shape[0]):
        if flat[k] != 0:
            out[at] = flat[k]
            at += 1
    return out[:at]


def _texts_bytes(texts: list[str]) -> np.ndarray:
    """Finished field texts as rows of UTF-8 bytes; raises :class:`Slow` on a NUL."""
    if "\x00" in "".join(texts):
        raise Slow
    values = np.array(texts, dtype=object)
    if not len(values) or not max(map(len, texts)):
        return np.zeros((len(values), 1), dtype=np.uint8)  # nothing but empty texts
    try:
        raw = values.astype(np.bytes_)
    except UnicodeEncodeError:
        raw = np.array([t.encode() for t in texts], dtype=np.bytes_)
    return byte_rows(raw)


def _field_bytes(column: pd.Series, fmt: str | None) -> np.ndarray:
    """A column's cells, formatted and quoted as :func:`_write_csv` writes them, as rows of
    bytes; raises :class:`Slow` when that needs the value-by-value writer."""
    dtype = column.dtype
    numeric = isinstance(dtype, np.dtype) and dtype.kind in "fiub"
    if numeric and dtype.kind == "f" and _FIXED.fullmatch(fmt or WEIGHT):
        values = column.to_numpy(dtype=np.float64)
        try:
            return number_bytes(values, int((fmt or WEIGHT)[3:-2]))
        except Slow:
            return _texts_bytes(_format_floats(values, fmt or WEIGHT))
    if isinstance(dtype, pd.StringDtype) and len(column.iloc[:10_000].unique()) * 4 < min(
        len(column), 10_000
    ):
        # Few distinct texts (judged by the first rows): each formatted once.
        codes, distinct = pd.factorize(column)
        if not (codes < 0).any():  # no missing value
            return _texts_bytes([_quoted(t) for t in distinct])[codes]
    texts = _format_column(column, fmt)
    if not numeric:
        joined = "".join(texts)
        if "\r" in joined:
            raise Slow
        if "," in joined or '"' in joined or "\n" in joined:
            texts = [_quoted(t) for t in texts]
    return _texts_bytes(texts)


def _quoted(text: str) -> str:
    """A field as the csv module writes it (minimal quoting, doubled quotes)."""
    if "," in text or '"' in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_csv(handle, frame: pd.DataFrame, chunk: int = 200_000) -> None:
    """``frame`` as CSV: the bytes ``format_frame(frame).to_csv(handle, index=False,
    lineterminator="\n")`` writes. Fields are quoted as the csv module does (pandas writes
    through it, with these settings) when they hold a comma, a quote or a newline, and the
    rows are put together in numpy; a carriage return (whose quoting depends on the Python
    version), a NUL or a one-column frame (where an empty field is quoted) goes through
    pandas itself."""
    names = list(frame.columns)
    if (
        len(names) < 2
        or len(set(names)) != len(names)
        or not all(isinstance(c, str) for c in names)
        or any("\r" in c or "\x00" in c for c in names)
    ):
        format_frame(frame).to_csv(handle, index=False, lineterminator="\n")
        return
    fields = []
    for col in names:
        try:
            fields.append(_field_bytes(frame[col], _column_format(col)))
        except Slow:
            format_frame(frame).to_csv(handle, index=False, lineterminator="\n")
            return
    handle.write(",".join(_quoted(c) for c in names) + "\n")
    for start in range(0, len(frame), chunk):
        handle.write(joined_rows([f[start : start + chunk] for f in fields]))


def file_mode() -> int:
    """Permission bits of a new output file: 0o644 less the process umask."""
    umask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(umask)
    return 0o644 & ~umask


PARALLEL_ROWS = 200_000
"""Rows from which the largest file of a run is written by a forked child process while
this one writes the others (a 10,000-account plan's lot sales: about half the writing)."""


def write_outputs(out_dir: str | Path, files: Mapping[str, pd.DataFrame]) -> list[Path]:
    """Write each frame as CSV into ``out_dir`` atomically (all temp files, then renames)."""
    with small_pages():  # see planner.memory
        return _write_outputs(out_dir, files)


def _write_outputs(out_dir: str | Path, files: Mapping[str, pd.DataFrame]) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    child = None
    try:
        for name in files:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
            os.close(fd)
            staged.append((name, Path(tmp)))
        largest = max(files, key=lambda name: len(files[name]), default=None)
        if (
            len(files) > 1
            and len(files[largest]) >= PARALLEL_ROWS
            and hasattr(os, "fork")
            # A fork copies only this thread; one left by a client library (Dask's event
            # loop) could hold a lock the child then waits on for ever.
            and threading.active_count() == 1
        ):
            child = _fork_writer(dict(staged)[largest], files[largest])
        for name, tmp in staged:
            if child is None or name != largest:
                _write_file(tmp, files[name])
        if child is not None:
            running, child = child, None  # joined here: nothing left to kill on an error
            _join_writer(*running, largest)
    except BaseException:
        if child is not None:  # an error here: do not leave the child running
            os.kill(child[0], 9)
            os.waitpid(child[0], 0)
            os.close(child[1])
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    written = []
    for name, tmp in staged:
        target = out / name
        os.replace(tmp, target)
        written.append(target)
    return written


def _write_file(path: Path, frame: pd.DataFrame) -> None:
    with open(path, "w", newline="") as handle:
        _write_csv(handle, frame)
    # mkstemp creates the file private (0o600); outputs are for others to read too.
    os.chmod(path, file_mode())


def _fork_writer(path: Path, frame: pd.DataFrame) -> tuple[int, int]:
    """Write ``frame`` to ``path`` in a forked child; (pid, read end of its error pipe)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write, report any error on the pipe, exit without clean-up
        code = 1
        try:
            import gc

            gc.disable()  # a collection would copy the parent's heap page by page
            os.close(read_end)
            _write_file(path, frame)
            code = 0
        except BaseException as exc:
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:4000])
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _join_writer(pid: int, read_end: int, name: str) -> None:
    """Wait for a :func:`_fork_writer` child; raise its error if it failed."""
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"writing {name} failed: {message or f'child exit status {status}'}")
