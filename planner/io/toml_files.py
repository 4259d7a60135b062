"""The book's TOML files: ``models.toml`` (model portfolios) and ``book.toml`` (settings).

Problems are reported like those of the tables, at the line of the key (or table) they
concern, found in the text, since tomllib keeps no positions.
"""

from __future__ import annotations

import math
import re
import stat
import tomllib
from datetime import date, datetime
from pathlib import Path

from planner.domain import (
    AS_OF_RANGE,
    CALENDAR_FREQUENCIES,
    CASH,
    HARVEST_MODES,
    REBALANCE_TO,
    TRIGGER_KINDS,
    Band,
    ClassTarget,
    Model,
    Security,
    Settings,
    TriggerSpec,
)
from planner.io.blotter_toml import read_blotter_table
from planner.io.cells import ID_MAX_CHARACTERS, Issues, bad_id

TOLERANCE = 1e-6
DAY_SETTINGS = {"hold_lt_days": 366, "wash_window_days": 365}
"""Settings in whole days, and the largest each may be."""

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
    "dust_value",
    "harvest",
    "harvest_min_loss",
    "harvest_min_loss_fraction",
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

    def __init__(self, file: str, text: str, data: dict, issues: Issues) -> None:
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


MAX_TOML_BYTES = 16 << 20
"""Largest TOML file read (16 MiB)."""


def _read_toml(path: Path, name: str, issues: Issues) -> _Toml | None:
    """The parsed file, or ``None`` after reporting why it could not be read."""
    file = path / name
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            issues.add(name, None, "(file)", "expected a regular file")
            return None
        if info.st_size > MAX_TOML_BYTES:
            issues.add(name, None, "(file)", f"larger than the {MAX_TOML_BYTES:,} bytes allowed")
            return None
        text = file.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        issues.add(name, None, "(file)", f"expected UTF-8 text: {exc}")
        return None
    except OSError as exc:
        issues.add(name, None, "(file)", f"cannot read it: {exc.strerror}")
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


def read_models(
    path: Path, securities: dict[str, Security] | None, issues: Issues
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
    if bad_id(name):
        toml.report(
            (name,),
            f"expected a model name of at most {ID_MAX_CHARACTERS} printable characters, not "
            f"starting with = + - or @, got {name!r}",
        )
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


def read_settings(path: Path, issues: Issues) -> Settings:
    if not (path / "book.toml").exists():
        return Settings()
    toml = _read_toml(path, "book.toml", issues)
    if toml is None:
        return Settings()
    for k in toml.data:
        if k not in ("settings", "blotter"):
            toml.report((k,), "unknown table (expected [settings] or [blotter])")
    blotter = read_blotter_table(
        toml.data.get("blotter", {}), issues, lambda key: _toml_line(toml.text, "blotter", key)
    )
    table = toml.data.get("settings", {})
    if not isinstance(table, dict):
        toml.report(("settings",), f"expected a [settings] table, got {table!r}")
        return Settings(blotter=blotter)
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
        elif k == "as_of" and not (AS_OF_RANGE[0] <= v <= AS_OF_RANGE[1]):
            bad(f"a date from {AS_OF_RANGE[0]} to {AS_OF_RANGE[1]}")
        elif k == "wash_sale_scope" and v not in ("account", "household"):
            bad("account or household")
        elif (
            k == "loss_benefit"
            and not (_is_number(v) and 0 <= v <= 1)
            or k == "tracking_error_value"
            and not (_is_number(v) and 0 <= v <= 1)
        ):
            bad("a number in [0, 1]")
        elif k in ("dust_value", "harvest_min_loss") and not (_is_number(v) and 0 <= v <= 1e9):
            bad("a number of dollars from 0 to 1e9")
        elif k == "harvest_min_loss_fraction" and not (_is_number(v) and 0 <= v <= 1):
            bad("a number in [0, 1]")
        elif k == "harvest" and v not in HARVEST_MODES:
            bad(" or ".join(HARVEST_MODES))
        elif k in DAY_SETTINGS and not (
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= DAY_SETTINGS[k]
        ):
            bad(f"a whole number of days from 0 to {DAY_SETTINGS[k]}")
        else:
            values[k] = v
    return Settings(**values, blotter=blotter)
