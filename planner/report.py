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


def format_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text with the column's fixed format (weights for unnamed floats)."""
    out = {}
    for col in frame.columns:
        fmt = COLUMN_FORMATS.get(col)
        if fmt is None and col.startswith(("pre_", "post_")):
            fmt = WEIGHT
        out[col] = [_format_value(v, fmt) for v in frame[col].tolist()]
    return pd.DataFrame(out, columns=list(frame.columns))


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
                format_frame(frame).to_csv(handle, index=False, lineterminator="\n")
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
