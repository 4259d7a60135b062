"""Loading, validating and writing books (see data/README.md for the format).

Validation collects every problem of a book in one pass; each names the file, the 1-based
line (the CSV header is line 1), the field and what was expected. Large files (lots,
trades) are checked vectorised with pandas, and at most :data:`MAX_PER_FIELD` problems are
listed per file and field (then a count of the rest).
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from dataclasses import fields, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

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
    dup = frame.duplicated(list(keys), keep="first")
    issues.rows(name, field, frame, dup, lambda raw: f"duplicate {field} {raw!r}")


def _unknown(frame, field, name, issues, known, what):
    bad = ~frame[field].isin(known)
    issues.rows(name, field, frame, bad, lambda raw: f"unknown {what} {raw!r}")


# -- TOML ----------------------------------------------------------------------------------


def _toml_line(text: str, table: str, key: str | None = None) -> int | None:
    """Line of ``[table]`` (or of ``key`` inside it) in TOML text, for messages."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
    for i, line in enumerate(lines):
        if header.match(line):
            if key is None:
                return i + 1
            for j in range(i + 1, len(lines)):
                if lines[j].lstrip().startswith("["):
                    break
                if re.match(r"^\s*" + re.escape(key) + r"\s*=", lines[j]):
                    return j + 1
            return i + 1
    return None


def _band(
    spec, where, issues, text, table, default: Band | None = None
) -> tuple[Band, Band | None]:
    spec = spec or {}
    base = default or Band()
    known = {"abs", "rel", "combine", "outer_abs", "outer_rel"}
    for k in spec:
        if k not in known:
            issues.add(
                "models.toml",
                _toml_line(text, table, k),
                f"{where}.{k}",
                f"unknown band key (expected {', '.join(sorted(known))})",
            )

    def val(k, fallback):
        v = spec.get(k, fallback)
        if v is None:
            return None
        if not isinstance(v, int | float) or isinstance(v, bool) or not (0 <= v <= 1):
            issues.add(
                "models.toml",
                _toml_line(text, table, k),
                f"{where}.{k}",
                f"expected a number in [0, 1], got {v!r}",
            )
            return None
        return float(v)

    combine = spec.get("combine", base.combine)
    if combine not in ("tighter", "looser"):
        issues.add(
            "models.toml",
            _toml_line(text, table, "combine"),
            f"{where}.combine",
            f"expected tighter or looser, got {combine!r}",
        )
        combine = "tighter"
    inner = Band(
        val(
            "abs",
            base.abs if not spec else None if "rel" in spec and "abs" not in spec else base.abs,
        ),
        val(
            "rel",
            base.rel if not spec else None if "abs" in spec and "rel" not in spec else base.rel,
        ),
        combine,
    )
    if spec and "abs" not in spec and "rel" not in spec:
        inner = Band(base.abs, base.rel, combine)
    outer_abs, outer_rel = val("outer_abs", None), val("outer_rel", None)
    outer = (
        Band(outer_abs, outer_rel, combine)
        if (outer_abs is not None or outer_rel is not None)
        else None
    )
    return inner, outer


def _models(path: Path, securities: dict[str, Security], issues: _Issues) -> dict[str, Model]:
    file = path / "models.toml"
    if not file.exists():
        issues.add("models.toml", None, "(file)", f"missing file: expected models.toml in {path}")
        return {}
    text = file.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        issues.add("models.toml", line, "(syntax)", f"not valid TOML: {exc}")
        return {}
    models = {}
    known = {
        "description",
        "rebalance_to",
        "cash",
        "cash_band",
        "bands",
        "trigger",
        "classes",
        "securities",
    }
    for name, spec in data.items():
        line = _toml_line(text, name)
        if not isinstance(spec, dict):
            issues.add("models.toml", line, name, "expected a table of model settings")
            continue
        for k in spec:
            if k not in known:
                issues.add(
                    "models.toml",
                    _toml_line(text, name, k),
                    f"{name}.{k}",
                    f"unknown key (expected one of {', '.join(sorted(known))})",
                )
        default_inner, default_outer = _band(
            spec.get("bands"), f"{name}.bands", issues, text, f"{name}.bands"
        )
        if default_outer is not None and not _wider(default_outer, default_inner):
            issues.add(
                "models.toml",
                _toml_line(text, f"{name}.bands"),
                f"{name}.bands",
                "outer band must be wider than the inner band",
            )
        rebalance_to = spec.get("rebalance_to", "target")
        if rebalance_to not in REBALANCE_TO:
            issues.add(
                "models.toml",
                _toml_line(text, name, "rebalance_to"),
                f"{name}.rebalance_to",
                f"expected one of {', '.join(REBALANCE_TO)}, got {rebalance_to!r}",
            )
        trig = spec.get("trigger", {})
        kind = trig.get("kind", "threshold")
        freq = trig.get("calendar")
        if kind not in TRIGGER_KINDS:
            issues.add(
                "models.toml",
                _toml_line(text, f"{name}.trigger", "kind"),
                f"{name}.trigger.kind",
                f"expected one of {', '.join(TRIGGER_KINDS)}, got {kind!r}",
            )
        if freq is not None and freq not in CALENDAR_FREQUENCIES:
            issues.add(
                "models.toml",
                _toml_line(text, f"{name}.trigger", "calendar"),
                f"{name}.trigger.calendar",
                f"expected one of {', '.join(CALENDAR_FREQUENCIES)}, got {freq!r}",
            )
        if kind in ("calendar", "hybrid") and freq is None:
            issues.add(
                "models.toml",
                _toml_line(text, f"{name}.trigger"),
                f"{name}.trigger.calendar",
                f"a {kind} trigger needs a calendar frequency",
            )
        cash_flow_min = trig.get("cash_flow_min")
        if cash_flow_min is not None and (
            not isinstance(cash_flow_min, int | float) or cash_flow_min < 0
        ):
            issues.add(
                "models.toml",
                _toml_line(text, f"{name}.trigger", "cash_flow_min"),
                f"{name}.trigger.cash_flow_min",
                f"expected dollars >= 0, got {cash_flow_min!r}",
            )
            cash_flow_min = None
        trigger = TriggerSpec(
            kind if kind in TRIGGER_KINDS else "threshold",
            freq if freq in CALENDAR_FREQUENCIES else None,
            bool(trig.get("force_on_calendar", False)),
            None if cash_flow_min is None else float(cash_flow_min),
        )
        classes: list[ClassTarget] = []
        used: dict[str, str] = {}

        def check_security(sym, cls, where, used=used):
            if sym not in securities:
                issues.add(
                    "models.toml", _toml_line(text, where), f"{where}", f"unknown security {sym!r}"
                )
                return False
            if cls is not None and securities[sym].asset_class != cls:
                issues.add(
                    "models.toml",
                    _toml_line(text, where),
                    f"{where}",
                    f"security {sym} has asset class {securities[sym].asset_class}, not {cls}",
                )
                return False
            if sym in used and used[sym] != cls:
                issues.add(
                    "models.toml",
                    _toml_line(text, where),
                    f"{where}",
                    f"security {sym} implements two classes ({used[sym]}, {cls})",
                )
                return False
            used[sym] = cls
            return True

        for cls, cspec in (spec.get("classes") or {}).items():
            where = f"{name}.classes.{cls}"
            target = cspec.get("target")
            if (
                not isinstance(target, int | float)
                or isinstance(target, bool)
                or not (0 <= target <= 1)
            ):
                issues.add(
                    "models.toml",
                    _toml_line(text, where, "target"),
                    f"{where}.target",
                    f"expected a weight in [0, 1], got {target!r}",
                )
                target = 0.0
            syms = [s for s in cspec.get("securities", []) if check_security(s, cls, where)]
            if not cspec.get("securities"):
                issues.add(
                    "models.toml",
                    _toml_line(text, where),
                    f"{where}.securities",
                    "expected a list of securities (preferred first)",
                )
            inner, outer = _band(
                cspec.get("band"), f"{where}.band", issues, text, where, default_inner
            )
            outer = outer or default_outer
            if outer is not None and not _wider(outer, inner):
                issues.add(
                    "models.toml",
                    _toml_line(text, where, "band"),
                    f"{where}.band",
                    "outer band must be wider than the inner band",
                )
            split = cspec.get("weights")
            if split:
                total = sum(split.values())
                if abs(total - target) > TOLERANCE:
                    issues.add(
                        "models.toml",
                        _toml_line(text, where, "weights"),
                        f"{where}.weights",
                        f"expected weights summing to the class target {target}, got {total}",
                    )
                sec_targets = {s: float(w) for s, w in split.items() if s in syms}
            else:
                sec_targets = {syms[0]: float(target)} if syms else {}
            classes.append(ClassTarget(cls, float(target), tuple(syms), sec_targets, inner, outer))
        by_security = spec.get("securities") or {}
        grouped: dict[str, list[tuple[str, float]]] = {}
        for sym, w in by_security.items():
            where = f"{name}.securities"
            if not isinstance(w, int | float) or not (0 <= w <= 1):
                issues.add(
                    "models.toml",
                    _toml_line(text, where, sym),
                    f"{where}.{sym}",
                    f"expected a weight in [0, 1], got {w!r}",
                )
                continue
            if sym not in securities:
                issues.add(
                    "models.toml",
                    _toml_line(text, where, sym),
                    f"{where}.{sym}",
                    f"unknown security {sym!r}",
                )
                continue
            grouped.setdefault(securities[sym].asset_class, []).append((sym, float(w)))
        for cls, members in sorted(grouped.items()):
            members.sort(key=lambda t: (-t[1], t[0]))
            classes.append(
                ClassTarget(
                    cls,
                    sum(w for _, w in members),
                    tuple(s for s, _ in members),
                    dict(members),
                    default_inner,
                    default_outer,
                )
            )
        cash = spec.get("cash", 0.0)
        if not isinstance(cash, int | float) or not (0 <= cash <= 1):
            issues.add(
                "models.toml",
                _toml_line(text, name, "cash"),
                f"{name}.cash",
                f"expected a weight in [0, 1], got {cash!r}",
            )
            cash = 0.0
        cash_inner, cash_outer = _band(
            spec.get("cash_band"), f"{name}.cash_band", issues, text, name, default_inner
        )
        classes.append(
            ClassTarget(CASH, float(cash), (), {}, cash_inner, cash_outer or default_outer)
        )
        total = sum(c.target for c in classes)
        if abs(total - 1.0) > TOLERANCE:
            issues.add(
                "models.toml",
                line,
                name,
                f"targets plus cash must sum to 1 (tolerance 1e-6), got {total:.6f}",
            )
        if len(classes) == 1:
            issues.add("models.toml", line, name, "expected [classes] or [securities] targets")
        models[name] = Model(
            name,
            tuple(classes),
            rebalance_to if rebalance_to in REBALANCE_TO else "target",
            trigger,
            str(spec.get("description", "")),
        )
    return models


def _wider(outer: Band, inner: Band) -> bool:
    probe = (0.05, 0.1, 0.3, 0.6)
    return all(outer.half_width(t) > inner.half_width(t) for t in probe)


def _settings(path: Path, issues: _Issues) -> Settings:
    file = path / "book.toml"
    if not file.exists():
        return Settings()
    text = file.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        issues.add("book.toml", getattr(exc, "lineno", None), "(syntax)", f"not valid TOML: {exc}")
        return Settings()
    table = data.get("settings", {})
    for k in data:
        if k != "settings":
            issues.add("book.toml", _toml_line(text, k), k, "unknown table (expected [settings])")
    known = {f.name: f for f in fields(Settings)}
    values = {}
    for k, v in table.items():
        line = _toml_line(text, "settings", k)
        if k not in known:
            issues.add(
                "book.toml", line, k, f"unknown setting (expected one of {', '.join(known)})"
            )
            continue
        if k == "as_of":
            if not isinstance(v, date):
                issues.add("book.toml", line, k, f"expected a date YYYY-MM-DD, got {v!r}")
                continue
        elif k == "wash_sale_scope":
            if v not in ("account", "household"):
                issues.add("book.toml", line, k, f"expected account or household, got {v!r}")
                continue
        elif k in ("loss_benefit",):
            if not isinstance(v, int | float) or not (0 <= v <= 1):
                issues.add("book.toml", line, k, f"expected a number in [0, 1], got {v!r}")
                continue
        elif k in ("tracking_error_value",):
            if not isinstance(v, int | float) or v < 0:
                issues.add("book.toml", line, k, f"expected a number >= 0, got {v!r}")
                continue
        elif k in ("hold_lt_days", "wash_window_days") and (not isinstance(v, int) or v < 0):
            issues.add("book.toml", line, k, f"expected a whole number of days >= 0, got {v!r}")
            continue
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
        for k in range(len(sec)):
            s = sec["symbol"].iat[k]
            if s and s not in securities and price.iat[k] > 0:
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
    models = _models(path, securities, issues)

    acc = _read_csv(path, "accounts.csv", ACCOUNT_COLUMNS, ACCOUNT_OPTIONAL, issues)
    accounts: dict[str, Account] = {}
    if acc is not None:
        _duplicates(acc, ["account_id"], "accounts.csv", issues, "account_id")
        _unknown(acc, "model", "accounts.csv", issues, set(models), "model")
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
        budget = _number(acc, "gain_budget", "accounts.csv", issues, optional=True)
        st_cap = _number(acc, "st_gain_cap", "accounts.csv", issues, optional=True)
        flow = _number(acc, "cash_flow", "accounts.csv", issues, optional=True)
        fractional = _bool(acc, "fractional_shares", "accounts.csv", issues)
        last = _date(acc, "last_rebalanced", "accounts.csv", issues, as_of, optional=True)
        lists = {}
        for field in ("do_not_buy", "do_not_sell"):
            col = acc[field] if field in acc.columns else pd.Series("", index=acc.index)
            parsed = col.map(lambda t: frozenset(x.strip() for x in t.split(";") if x.strip()))
            bad = parsed.map(lambda syms: any(s not in securities for s in syms))
            issues.rows("accounts.csv", field, acc, bad, lambda r: f"unknown symbol in {r!r}")
            lists[field] = parsed
        for k in range(len(acc)):
            a = acc["account_id"].iat[k]
            if not a or a in accounts:
                continue
            accounts[a] = Account(
                a,
                acc["model"].iat[k],
                acc["household_id"].iat[k] or a,
                registration.iat[k],
                float(np.nan_to_num(cash.iat[k])),
                float(np.nan_to_num(st.iat[k])),
                float(np.nan_to_num(lt.iat[k])),
                None if np.isnan(budget.iat[k]) else float(budget.iat[k]),
                None if np.isnan(st_cap.iat[k]) else float(st_cap.iat[k]),
                0.0 if np.isnan(flow.iat[k]) else float(flow.iat[k]),
                bool(fractional.iat[k]),
                lists["do_not_buy"].iat[k],
                lists["do_not_sell"].iat[k],
                None if pd.isna(last.iat[k]) else last.iat[k].date(),
            )

    lots_raw = _read_csv(path, "lots.csv", LOT_COLUMNS, (), issues)
    lots = pd.DataFrame({c: pd.Series(dtype=object) for c in LOT_COLUMNS})
    if lots_raw is not None:
        _unknown(lots_raw, "account_id", "lots.csv", issues, set(accounts), "account")
        _unknown(lots_raw, "symbol", "lots.csv", issues, set(securities), "symbol")
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

    tr = _read_csv(path, "trades.csv", TRADE_REQUIRED, ("realized_gain",), issues, must_exist=False)
    trades = pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS})
    trades["trade_date"] = pd.Series(dtype="datetime64[ns]")
    for c in ("shares", "price", "realized_gain"):
        trades[c] = pd.Series(dtype=float)
    if tr is not None:
        _unknown(tr, "account_id", "trades.csv", issues, set(accounts), "account")
        _unknown(tr, "symbol", "trades.csv", issues, set(securities), "symbol")
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

    prices = _prices(path, securities, issues)
    problems = issues.finish()
    if problems:
        return None, problems
    book = Book(securities, models, accounts, lots, trades, prices, settings, path)
    return book, []


def _prices(path: Path, securities, issues: _Issues) -> pd.DataFrame | None:
    file = path / "prices.csv"
    if not file.exists():
        return None
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
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
        if c not in securities:
            issues.add("prices.csv", 1, c, "unknown symbol column (not in securities.csv)")
            continue
        out[c] = _number(raw, c, "prices.csv", issues, "a price > 0", lambda v: v > 0, True)
    frame = pd.DataFrame(out)
    frame.index = pd.DatetimeIndex(dates, name="date")
    return frame


def validate_book(path: str | Path, as_of: date | None = None) -> list[BookIssue]:
    """Every problem of the book at ``path`` (empty when it is valid)."""
    return _load(path, as_of)[1]


def load_book(path: str | Path, as_of: date | None = None) -> Book:
    """Load and validate a book; raises :class:`BookError` listing every problem."""
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


def _atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv(rows: list[list[str]], header: list[str]) -> str:
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


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
                ]
                for a in accs
            ],
            [*ACCOUNT_COLUMNS, *ACCOUNT_OPTIONAL],
        ),
    )
    lots = book.lots
    acquired = pd.to_datetime(lots["acquired"]).dt.strftime("%Y-%m-%d")
    shares = [_fmt(float(v), 6) for v in lots["shares"]]
    costs = [_fmt(float(v), 4) for v in lots["unit_cost"]]
    rows = [
        list(r)
        for r in zip(
            lots["account_id"], lots["lot_id"], lots["symbol"], shares, costs, acquired, strict=True
        )
    ]
    _atomic(path / "lots.csv", _csv(rows, list(LOT_COLUMNS)))
    if len(book.trades):
        t = book.trades
        rows = [
            [
                a,
                pd.Timestamp(d).strftime("%Y-%m-%d"),
                s,
                side,
                _fmt(float(q), 6),
                _fmt(float(p), 4),
                _fmt(float(g), 2),
            ]
            for a, d, s, side, q, p, g in zip(
                t["account_id"],
                t["trade_date"],
                t["symbol"],
                t["side"],
                t["shares"],
                t["price"],
                t["realized_gain"],
                strict=True,
            )
        ]
        _atomic(path / "trades.csv", _csv(rows, list(TRADE_COLUMNS)))
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
    ]
    _atomic(path / "book.toml", "\n".join(lines) + "\n")
    return path
