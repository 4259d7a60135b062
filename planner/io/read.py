"""Loading and validating books (see data/README.md for the format).

Validation collects every problem of a book in one pass; each names the file, the row (a CSV
line or a Parquet row), the field and what was expected. The book is built only when there
is none. Tables are read through pyarrow (:mod:`planner.io.tables`) and checked a column at
a time (:mod:`planner.io.cells`); lots and trades keep their text columns as Arrow strings.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from planner.domain import (
    AS_OF_RANGE,
    CASH,
    DEDUCTION_LIMITS,
    HARVEST_MODES,
    LOT_COLUMNS,
    LOT_OPTIONAL,
    REGISTRATIONS,
    RESTRICTIONS,
    Account,
    Book,
    Model,
    Security,
    TaxReturn,
    runs,
)
from planner.errors import BookError, BookIssue
from planner.io import cells
from planner.io.cells import Issues
from planner.io.tables import Table, read, read_any_columns
from planner.io.toml_files import read_models, read_settings

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
    "tax_return",
    "harvest",
)
RETURN_REQUIRED = ("tax_return",)
RETURN_OPTIONAL = (
    "filing_status",
    "ytd_st_gain",
    "ytd_lt_gain",
    "carryforward_st",
    "carryforward_lt",
)
TRADE_REQUIRED = ("account_id", "trade_date", "symbol", "side", "shares", "price")
TRADE_OPTIONAL = ("realized_gain",)


def load_book(path: str | Path, as_of: date | None = None) -> Book:
    """Load and validate a book; raises :class:`BookError` listing every problem."""
    book, problems = _load(Path(path), as_of)
    if problems:
        raise BookError(problems)
    return book


def validate_book(path: str | Path, as_of: date | None = None) -> list[BookIssue]:
    """Every problem of the book at ``path`` (empty when it is valid)."""
    return _load(Path(path), as_of)[1]


def _load(folder: Path, as_of: date | None) -> tuple[Book | None, list[BookIssue]]:
    if not folder.is_dir():
        return None, [BookIssue(str(folder), None, "(folder)", "expected a book folder")]
    issues = Issues()
    settings = read_settings(folder, issues)
    if as_of is not None and not AS_OF_RANGE[0] <= as_of <= AS_OF_RANGE[1]:
        message = f"expected a date from {AS_OF_RANGE[0]} to {AS_OF_RANGE[1]}, got {as_of}"
        return None, [BookIssue("(as-of)", None, "as_of", message)]
    as_of = as_of or settings.as_of or date.today()
    settings = replace(settings, as_of=as_of)
    # None where a file could not be read: references to it are then not checked, since
    # every one of them would only repeat that problem.
    securities, symbols = _securities(folder, issues)
    models = read_models(folder, securities, issues)
    accounts, account_ids = _accounts(folder, issues, models, symbols, as_of)
    lots = _lots(folder, issues, account_ids, symbols, as_of)
    trades = _trades(folder, issues, account_ids, symbols, as_of)
    prices = _prices(folder, issues, symbols)
    returns = _returns(folder, issues, accounts)
    problems = issues.finish()
    if problems:
        return None, problems
    book = Book(securities, models, accounts, lots, trades, prices, settings, folder, returns)
    return book, []


# -- securities and accounts ---------------------------------------------------------------


def _securities(folder: Path, issues: Issues) -> tuple[dict[str, Security] | None, set | None]:
    """The securities, and every symbol the file names (a row left out for its number of
    cells included); ``(None, None)`` if the file could not be read."""
    table = read(folder, "securities", SECURITY_COLUMNS, SECURITY_OPTIONAL, issues)
    if table is None:
        return None, None
    symbol = cells.ids(table, "symbol", issues, "a symbol").to_pylist()
    _repeats(table, "symbol", symbol, issues)
    asset_class = cells.ids(table, "asset_class", issues, "an asset class").to_pylist()
    issues.rows(
        table,
        "asset_class",
        [c == CASH for c in asset_class],
        lambda raw: f"expected an asset class other than {CASH} (it is reserved), got {raw}",
    )

    def at_least(bound: float, strict: bool = False):
        return (lambda v: v > bound) if strict else (lambda v: v >= bound)

    price = cells.numbers(table, "price", issues, "a number > 0", at_least(0, strict=True))
    spread, commission, minimum = (
        cells.numbers(table, f, issues, "a number >= 0", at_least(0), optional=True)
        for f in ("spread_bps", "commission", "min_trade_value")
    )
    restricted = cells.choices(table, "restricted", issues, RESTRICTIONS, default="none")
    adv = cells.numbers(table, "adv", issues, "dollars > 0", at_least(0, strict=True), True)
    volatility = cells.numbers(table, "volatility", issues, "a number >= 0", at_least(0), True)
    group = cells.ids(table, "wash_group", issues, "a wash group", optional=True).to_pylist()
    # Every symbol stays known even when another cell of its row is invalid, so that the
    # mistake is reported once, here, and not again wherever the symbol is used. (The book
    # is only built when there are no issues, so no invalid value gets through.)
    out: dict[str, Security] = {}
    for k, s in enumerate(symbol):
        if s and s not in out:
            out[s] = Security(
                s,
                asset_class[k],
                float(price[k]),
                group[k] or s,
                float(np.nan_to_num(spread[k])),
                float(np.nan_to_num(commission[k])),
                float(np.nan_to_num(minimum[k])),
                restricted[k] if restricted[k] in RESTRICTIONS else "none",
                None if np.isnan(adv[k]) else float(adv[k]),
                None if np.isnan(volatility[k]) else float(volatility[k]),
            )
    return out, {*out, *_named_by_skipped(table, "symbol")}


def _accounts(
    folder: Path,
    issues: Issues,
    models: dict[str, Model] | None,
    symbols: set[str] | None,
    as_of: date,
) -> tuple[dict[str, Account] | None, set | None]:
    """The accounts, and every account id the file names (as :func:`_securities`)."""
    table = read(folder, "accounts", ACCOUNT_COLUMNS, ACCOUNT_OPTIONAL, issues)
    if table is None:
        return None, None
    account_id = cells.ids(table, "account_id", issues, "an account id")
    ids = account_id.to_pylist()
    _repeats(table, "account_id", ids, issues)
    model = cells.texts(table, "model")
    cells.unknown(table, "model", model, issues, None if models is None else set(models), "model")
    registration = cells.choices(table, "registration", issues, REGISTRATIONS)
    rate = lambda v: (v >= 0) & (v <= 1)  # noqa: E731
    cash = cells.numbers(table, "cash", issues)
    st = cells.numbers(table, "st_rate", issues, "a rate in [0, 1]", rate)
    lt = cells.numbers(table, "lt_rate", issues, "a rate in [0, 1]", rate)
    budget, st_cap = (
        cells.numbers(table, f, issues, "a number >= 0", lambda v: v >= 0, optional=True)
        for f in ("gain_budget", "st_gain_cap")
    )
    flow = cells.numbers(table, "cash_flow", issues, optional=True)
    fractional = cells.flags(table, "fractional_shares", issues)
    last = cells.dates(table, "last_rebalanced", issues, as_of, optional=True)
    reviewed = cells.dates(table, "last_reviewed", issues, as_of, optional=True)
    lists = {
        f: cells.symbol_sets(table, f, issues, symbols)
        for f in ("do_not_buy", "do_not_sell", "do_not_trade")
    }
    household = cells.ids(table, "household_id", issues, "a household id", optional=True)
    household = household.to_pylist()
    tax_return = cells.ids(table, "tax_return", issues, "a tax return id", optional=True)
    tax_return = tax_return.to_pylist()
    harvest = cells.texts(table, "harvest").to_pylist()
    issues.rows(
        table,
        "harvest",
        [h not in ("", *HARVEST_MODES) for h in harvest],
        lambda raw: f"expected one of {', '.join(HARVEST_MODES)} (or empty), got {raw}",
    )
    # Plain Python values, converted a column at a time (not a cell at a time).
    cash, st, lt, flow = (np.nan_to_num(v).tolist() for v in (cash, st, lt, flow))
    budget, st_cap = ([None if math.isnan(x) else x for x in v.tolist()] for v in (budget, st_cap))
    out: dict[str, Account] = {}
    for k, (a, m) in enumerate(zip(ids, model.to_pylist(), strict=True)):
        if not a or a in out:
            continue
        out[a] = Account(
            a,
            m,
            household[k] or a,
            registration[k],
            cash[k],
            st[k],
            lt[k],
            budget[k],
            st_cap[k],
            flow[k],
            bool(fractional[k]),
            last_rebalanced=_day(last[k]),
            last_reviewed=_day(reviewed[k]),
            **{f: values[k] for f, values in lists.items()},
            tax_return=tax_return[k] or None,
            harvest=harvest[k] or None,
        )
    _one_rate_per_return(table, ids, out, issues)
    return out, {*out, *_named_by_skipped(table, "account_id")}


def _one_rate_per_return(table: Table, ids: list[str], accounts: dict, issues: Issues) -> None:
    """Report a taxable account whose rates differ from its return's first account's: one
    return has one marginal rate for each term."""
    first: dict[str, Account] = {}
    for field in ("st_rate", "lt_rate"):
        differs = []
        for a in ids:
            account = accounts.get(a)
            return_id = account.return_id if account else None
            if return_id is None:
                differs.append(False)
                continue
            leader = first.setdefault(return_id, account)
            differs.append(getattr(account, field) != getattr(leader, field))
        issues.rows(
            table,
            field,
            differs,
            lambda raw, field=field: (
                f"expected the {field} of the other accounts of its tax return (one return "
                f"has one rate; give the account its own tax_return), got {raw}"
            ),
        )


def _returns(folder: Path, issues: Issues, accounts: dict | None) -> dict[str, TaxReturn]:
    """The tax returns of returns.csv (optional): each return's year so far."""
    table = read(folder, "returns", RETURN_REQUIRED, RETURN_OPTIONAL, issues, must_exist=False)
    if table is None:
        return {}
    return_id = cells.ids(table, "tax_return", issues, "a tax return id").to_pylist()
    _repeats(table, "tax_return", return_id, issues)
    if accounts is not None:
        used = {a.return_id for a in accounts.values()}
        issues.rows(
            table,
            "tax_return",
            [r != "" and r not in used for r in return_id],
            lambda raw: (
                f"expected the tax return of a taxable account (its tax_return, else its "
                f"household_id, else its account_id), got {raw}"
            ),
        )
    status = cells.choices(table, "filing_status", issues, DEDUCTION_LIMITS, default="single")
    ytd_st, ytd_lt = (
        np.nan_to_num(cells.numbers(table, f, issues, optional=True)).tolist()
        for f in ("ytd_st_gain", "ytd_lt_gain")
    )
    carry_st, carry_lt = (
        np.nan_to_num(
            cells.numbers(table, f, issues, "a loss >= 0", lambda v: v >= 0, optional=True)
        ).tolist()
        for f in ("carryforward_st", "carryforward_lt")
    )
    out = {}
    for k, r in enumerate(return_id):
        if r and r not in out:
            out[r] = TaxReturn(r, status[k], ytd_st[k], ytd_lt[k], carry_st[k], carry_lt[k])
    return out


def _named_by_skipped(table: Table, field: str) -> set[str]:
    return {row[field] for row in table.skipped if row.get(field)}


def _day(value: np.datetime64) -> date | None:
    return None if np.isnat(value) else value.astype("datetime64[D]").item()


def _repeats(table: Table, field: str, values: list[str], issues: Issues) -> None:
    """Report a value that repeats an earlier row's (an empty cell is reported as empty)."""
    seen: set[str] = set()
    again = []
    for v in values:
        again.append(v in seen and v != "")
        seen.add(v)
    issues.rows(table, field, again, lambda raw: f"duplicate {field} {raw}")


# -- lots and trades -----------------------------------------------------------------------


def _lots(
    folder: Path,
    issues: Issues,
    account_ids: set[str] | None,
    symbols: set[str] | None,
    as_of: date,
) -> pd.DataFrame:
    table = read(folder, "lots", LOT_COLUMNS, LOT_OPTIONAL, issues)
    if table is None:
        return _empty_lots()
    account_id = cells.texts(table, "account_id")
    symbol = cells.texts(table, "symbol")
    cells.unknown(table, "account_id", account_id, issues, account_ids, "account")
    cells.unknown(table, "symbol", symbol, issues, symbols, "symbol")
    lot_id = cells.ids(table, "lot_id", issues, "a lot id")
    shares = cells.numbers(table, "shares", issues, "a number > 0", lambda v: v > 0)
    cost = cells.numbers(table, "unit_cost", issues, "a number >= 0", lambda v: v >= 0)
    acquired = cells.dates(table, "acquired", issues, as_of)
    purchased = cells.dates(table, "purchased", issues, as_of, optional=True)
    issues.rows(
        table,
        "purchased",
        purchased < acquired,  # NaT compares False
        lambda raw: f"expected a date on or after the lot's acquired date, got {raw}",
    )
    columns = {
        "account_id": account_id,
        "lot_id": lot_id,
        "symbol": symbol,
        "shares": pa.array(shares),
        "unit_cost": pa.array(cost),
        "acquired": pa.array(acquired),
        # The trade date (the look-back's); acquired, the holding period's, where not given.
        "purchased": pa.array(np.where(np.isnat(purchased), acquired, purchased)),
    }
    order = _sort_order(columns, ("account_id", "symbol", "acquired", "lot_id"))
    _repeated_lots(table, account_id, lot_id, order, issues)
    return _frame(columns, order)


def _empty_lots() -> pd.DataFrame:
    return _frame(
        {
            "account_id": pa.array([], pa.string()),
            "lot_id": pa.array([], pa.string()),
            "symbol": pa.array([], pa.string()),
            "shares": pa.array([], pa.float64()),
            "unit_cost": pa.array([], pa.float64()),
            "acquired": pa.array([], pa.timestamp("ns")),
            "purchased": pa.array([], pa.timestamp("ns")),
        },
        None,
    )


def _repeated_lots(
    table: Table, account_id: pa.Array, lot_id: pa.Array, order, issues: Issues
) -> None:
    """Report a lot id that repeats one of the same account's earlier rows. The rows are
    looked at in account order, one account's ids at a time."""
    accounts = account_id if order is None else account_id.take(order)
    ids = lot_id if order is None else lot_id.take(order)
    rows = np.arange(len(table)) if order is None else np.asarray(order)
    again = np.zeros(len(table), dtype=bool)
    for start, stop in runs(accounts):
        chunk = ids.slice(start, stop - start).to_pylist()
        if len(set(chunk)) == len(chunk):
            continue
        seen: set[str] = set()
        # Within the account, in file order: the first of equal ids is the original.
        for k in sorted(range(start, stop), key=lambda k: rows[k]):
            lot = chunk[k - start]
            if lot in seen and lot != "":
                again[rows[k]] = True
            seen.add(lot)
    issues.rows(table, "lot_id", again, lambda raw: f"duplicate lot_id {raw}")


def _trades(
    folder: Path,
    issues: Issues,
    account_ids: set[str] | None,
    symbols: set[str] | None,
    as_of: date,
) -> pd.DataFrame:
    table = read(folder, "trades", TRADE_REQUIRED, TRADE_OPTIONAL, issues, must_exist=False)
    if table is None:
        table_columns = {
            "account_id": pa.array([], pa.string()),
            "trade_date": pa.array([], pa.timestamp("ns")),
            "symbol": pa.array([], pa.string()),
            "side": pa.array([], pa.string()),
            "shares": pa.array([], pa.float64()),
            "price": pa.array([], pa.float64()),
            "realized_gain": pa.array([], pa.float64()),
        }
        return _frame(table_columns, None)
    account_id = cells.texts(table, "account_id")
    symbol = cells.texts(table, "symbol")
    cells.unknown(table, "account_id", account_id, issues, account_ids, "account")
    cells.unknown(table, "symbol", symbol, issues, symbols, "symbol")
    side = cells.choices(table, "side", issues, ("buy", "sell"))
    columns = {
        "account_id": account_id,
        "trade_date": pa.array(cells.dates(table, "trade_date", issues, as_of)),
        "symbol": symbol,
        "side": pa.array(side, pa.string()),
        "shares": pa.array(cells.numbers(table, "shares", issues, "a number > 0", lambda v: v > 0)),
        "price": pa.array(cells.numbers(table, "price", issues, "a number > 0", lambda v: v > 0)),
        "realized_gain": pa.array(
            cells.numbers(table, "realized_gain", issues, optional=True), from_pandas=False
        ),
    }
    order = _sort_order(columns, ("account_id", "trade_date", "symbol", "side"))
    return _frame(columns, order)


def _sort_order(columns: dict[str, pa.Array], keys: tuple[str, ...]) -> pa.Array | None:
    """The stable permutation that sorts the rows by ``keys`` in turn, or ``None`` when
    they are sorted already (as :func:`planner.io.write.write_book` writes them)."""
    n = len(columns[keys[0]])
    if n < 2:
        return None
    ascending = np.zeros(n - 1, dtype=bool)
    tied = np.ones(n - 1, dtype=bool)
    for key in keys:
        before, after = columns[key].slice(0, n - 1), columns[key].slice(1)
        ascending |= tied & np.asarray(pc.fill_null(pc.less(before, after), False), dtype=bool)
        tied &= np.asarray(pc.fill_null(pc.equal(before, after), True), dtype=bool)
    if (ascending | tied).all():
        return None
    table = pa.table({k: columns[k] for k in keys})
    return pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])


def _frame(columns: dict[str, pa.Array], order: pa.Array | None) -> pd.DataFrame:
    """The columns (in ``order``) as a DataFrame: text as pandas' Arrow-backed strings,
    numbers as float64, dates as ``datetime64[ns]``."""
    table = pa.table(columns)
    if order is not None:
        table = table.take(order)
    return table.to_pandas(types_mapper=_STRINGS.get)


_STRINGS = {
    pa.string(): pd.StringDtype("pyarrow", na_value=np.nan),
    pa.large_string(): pd.StringDtype("pyarrow", na_value=np.nan),
}


# -- prices --------------------------------------------------------------------------------


def _prices(folder: Path, issues: Issues, symbols: set[str] | None) -> pd.DataFrame | None:
    table = read_any_columns(folder, "prices", issues)
    if table is None:
        return None
    if "date" not in table.columns:
        issues.add(table.name, 1, "date", "missing required column")
        return None
    days = cells.dates(table, "date", issues)
    with np.errstate(invalid="ignore"):
        gaps = np.diff(days.astype("datetime64[D]").astype(np.float64))
    issues.rows(
        table,
        "date",
        np.r_[False, gaps <= 0],
        lambda raw: f"expected dates strictly increasing, got {raw}",
    )
    out = {}
    for c in table.columns:
        if c == "date":
            continue
        if symbols is not None and c not in symbols:
            issues.add(table.name, 1, c, "unknown symbol column (not in securities.csv)")
            continue
        out[c] = cells.numbers(table, c, issues, "a price > 0", lambda v: v > 0, optional=True)
    frame = pd.DataFrame(out)
    frame.index = pd.DatetimeIndex(days, name="date")
    return frame
