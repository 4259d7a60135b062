"""Writing outputs: fixed number formats, sorted rows, atomic replacement.

Every file of one run is first written to a temporary file in the output folder; only when
all of them are complete are they renamed into place, so a failed run leaves no half-written
output behind and the same inputs give byte-identical files.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

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
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        # Every value is a float (tolist() gives Python floats): vectorised.
        return _format_floats(column.to_numpy(dtype=np.float64), fmt or WEIGHT)
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return [str(v) for v in column.tolist()]  # never None or a float
    values = column.tolist()
    if isinstance(dtype, pd.StringDtype) and not column.hasnans:
        return values  # all text already
    return [_format_value(v, fmt) for v in values]


def format_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text with the column's fixed format (weights for unnamed floats)."""
    out = {}
    for col in frame.columns:
        fmt = COLUMN_FORMATS.get(col)
        if fmt is None and col.startswith(("pre_", "post_")):
            fmt = WEIGHT
        out[col] = _format_column(frame[col], fmt)
    return pd.DataFrame(out, columns=list(frame.columns))


def _quoted(text: str) -> str:
    """A field as the csv module writes it (minimal quoting, doubled quotes)."""
    if "," in text or '"' in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_csv(handle, frame: pd.DataFrame) -> None:
    """``frame`` as CSV: the bytes ``format_frame(frame).to_csv(handle, index=False,
    lineterminator="\n")`` writes. The rows are joined directly, quoting a field as the csv
    module does (pandas writes through it, with these settings) when it holds a comma, a
    quote or a newline; a carriage return (whose quoting depends on the Python version) or
    a one-column frame (where an empty field is quoted) goes through pandas itself."""
    names = list(frame.columns)
    if (
        len(names) < 2
        or len(set(names)) != len(names)
        or not all(isinstance(c, str) for c in names)
    ):
        format_frame(frame).to_csv(handle, index=False, lineterminator="\n")
        return
    columns = []
    for col in names:
        fmt = COLUMN_FORMATS.get(col)
        if fmt is None and col.startswith(("pre_", "post_")):
            fmt = WEIGHT
        texts = _format_column(frame[col], fmt)
        dtype = frame[col].dtype
        if not (isinstance(dtype, np.dtype) and dtype.kind in "fiub"):  # numbers need none
            joined = "".join(texts)
            if "\r" in joined:
                format_frame(frame).to_csv(handle, index=False, lineterminator="\n")
                return
            if "," in joined or '"' in joined or "\n" in joined:
                texts = [_quoted(t) for t in texts]
        columns.append(texts)
    header = ",".join(_quoted(c) for c in names)
    if "\r" in header:
        format_frame(frame).to_csv(handle, index=False, lineterminator="\n")
        return
    handle.write(header + "\n")
    if len(frame):
        handle.write("\n".join(map(",".join, zip(*columns, strict=True))) + "\n")


def _file_mode() -> int:
    """Permission bits of a new output file: 0o644 less the process umask."""
    umask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(umask)
    return 0o644 & ~umask


def write_outputs(out_dir: str | Path, files: Mapping[str, pd.DataFrame]) -> list[Path]:
    """Write each frame as CSV into ``out_dir`` atomically (all temp files, then renames)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, frame in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
            staged.append((name, Path(tmp)))
            with os.fdopen(fd, "w", newline="") as handle:
                _write_csv(handle, frame)
            # mkstemp creates the file private (0o600); outputs are for others to read too.
            os.chmod(tmp, _file_mode())
    except BaseException:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    written = []
    for name, tmp in staged:
        target = out / name
        os.replace(tmp, target)
        written.append(target)
    return written
