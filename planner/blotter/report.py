"""A batch's report: one self-contained HTML file for the reviewer and the record.

It holds the batch's facts and totals, its flags, and per account the allocation before
and after the plan against target (inline-SVG bar charts and a table), the drift before
and after, the trades with their lot instructions, the realised gains and tax, the costs,
and the fills once there are any. It needs no network and no script to view: styles are
inline, charts are SVG drawn by :mod:`planner.charts`, and a Content-Security-Policy
forbids loading anything. The page comes from the Jinja2 template
``planner/blotter/templates/report.html.j2``; the same batch gives the same bytes.

Targets come from the models of the batch's book (its recorded folder), when it can be
read; the weights before and after are the plan's (its ``summary.csv`` row).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from planner.blotter.records import AuditEntry, Batch, BlotterOrder, Fill
from planner.blotter.store import Store, open_store
from planner.charts import bar_chart
from planner.domain import CASH, Model
from planner.errors import BookError, OutputError

TEMPLATES = Path(__file__).with_name("templates")


def money(value: object) -> str:
    """Dollars as ``$1,234.56`` / ``-$1,234.56``; an empty cell for a missing number."""
    x = _float(value)
    if math.isnan(x):
        return ""
    x = round(x, 2) + 0.0  # no "-$0.00"
    return f"-${-x:,.2f}" if x < 0 else f"${x:,.2f}"


def percent(value: object, decimals: int = 1) -> str:
    """A fraction as a percentage, ``0.1234`` -> ``12.3%``."""
    x = _float(value)
    return "" if math.isnan(x) else f"{x * 100:.{decimals}f}%"


def points(value: object) -> str:
    """A weight difference in percentage points, signed: ``+1.23 pp``."""
    x = _float(value)
    return "" if math.isnan(x) else f"{round(x * 100, 2) + 0.0:+.2f} pp"


def shares(value: object) -> str:
    """A share count, without trailing zeros."""
    x = _float(value)
    return "" if math.isnan(x) else f"{x:,.6f}".rstrip("0").rstrip(".")


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def environment(folder: Path | None = None) -> Environment:
    """The Jinja2 environment of the blotter's templates (HTML autoescaped; an unknown
    name in a template is an error, not an empty string), with the number filters."""
    env = Environment(
        loader=FileSystemLoader(str(folder or TEMPLATES)),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, percent=percent, points=points, shares=shares)
    return env


@dataclass(frozen=True)
class ClassRow:
    """One asset class of an account: weights before and after the plan and the target
    (fractions; target NaN when the book's model could not be read)."""

    asset_class: str
    before: float
    after: float
    target: float

    @property
    def drift_before(self) -> float:
        return self.before - self.target

    @property
    def drift_after(self) -> float:
        return self.after - self.target


@dataclass(frozen=True)
class FillSummary:
    """An order's fills so far: shares filled and their average price (dollars/share)."""

    filled: float
    average_price: float
    status: str


@dataclass(frozen=True)
class AccountView:
    """What the report shows of one account."""

    account_id: str
    status: str
    summary: Mapping[str, object]
    flags: tuple[str, ...]
    classes: tuple[ClassRow, ...]
    orders: tuple[BlotterOrder, ...]
    allocation_chart: Markup
    drift_chart: Markup
    buys: float
    sells: float


def account_views(batch: Batch, models: Mapping[str, Model] | None) -> tuple[AccountView, ...]:
    """One :class:`AccountView` per account of the batch, by account id."""
    by_account: dict[str, list[BlotterOrder]] = {}
    for o in batch.orders:
        by_account.setdefault(o.account_id, []).append(o)
    views = []
    for plan in sorted(batch.accounts, key=lambda a: a.account_id):
        summary = plan.summary
        model = (models or {}).get(str(summary.get("model", "")))
        classes = _classes(summary, model)
        names = [c.asset_class for c in classes]
        targets = [c.target for c in classes]
        has_targets = any(not math.isnan(t) for t in targets)
        allocation = bar_chart(
            names,
            {"before": [c.before for c in classes], "after": [c.after for c in classes]},
            title=f"{plan.account_id}: allocation before and after, against target",
            value_label="weight",
            reference={"target": targets} if has_targets else None,
            value_format="%",
        )
        drift = bar_chart(
            names,
            {
                "drift before": [c.drift_before for c in classes],
                "drift after": [c.drift_after for c in classes],
            },
            title=f"{plan.account_id}: drift from target before and after",
            value_label="weight minus target",
            value_format="%",
        )
        orders = tuple(sorted(by_account.get(plan.account_id, ()), key=lambda o: o.sequence))
        views.append(
            AccountView(
                account_id=plan.account_id,
                status=plan.status,
                summary=summary,
                flags=plan.flags,
                classes=classes,
                orders=orders,
                allocation_chart=Markup(allocation),
                drift_chart=Markup(drift) if has_targets else Markup(""),
                buys=sum(o.est_value for o in orders if o.side == "buy"),
                sells=sum(o.est_value for o in orders if o.side == "sell"),
            )
        )
    return tuple(views)


def _classes(summary: Mapping[str, object], model: Model | None) -> tuple[ClassRow, ...]:
    """The account's classes in the model's order (cash last), then any other class the
    summary has weights for (a legacy holding's, target 0)."""
    named = [k[len("pre_") :] for k in summary if k.startswith("pre_")]
    order: list[str] = []
    if model is not None:
        order = [c.asset_class for c in model.classes if c.asset_class != CASH]
    order += sorted(c for c in named if c not in order and c != CASH)
    order.append(CASH)
    targets = dict(model.class_targets) if model is not None else {}
    rows = []
    for c in order:
        before, after = _float(summary.get(f"pre_{c}")), _float(summary.get(f"post_{c}"))
        if math.isnan(before) and math.isnan(after):
            continue
        target = targets.get(c, 0.0) if model is not None else float("nan")
        rows.append(ClassRow(c, _nan0(before), _nan0(after), target))
    return tuple(rows)


def _nan0(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def fill_summaries(batch: Batch, fills: Sequence[Fill]) -> dict[str, FillSummary]:
    """Per order with fills: shares filled, average price, ``filled`` or ``partial``."""
    shares_by: dict[str, float] = {}
    value_by: dict[str, float] = {}
    for f in fills:
        shares_by[f.order_id] = shares_by.get(f.order_id, 0.0) + f.shares
        value_by[f.order_id] = value_by.get(f.order_id, 0.0) + f.shares * f.price
    out = {}
    for o in batch.orders:
        done = shares_by.get(o.order_id, 0.0)
        if done <= 0:
            continue
        status = "filled" if done >= o.shares - 1e-6 else "partial"
        out[o.order_id] = FillSummary(done, value_by[o.order_id] / done, status)
    return out


def totals(batch: Batch) -> dict[str, float]:
    """The batch's totals, dollars (and counts): orders, buys, sells, costs, realised
    short- and long-term gains, estimated tax (the accounts' exact netted figures)."""

    def total(key: str) -> float:
        return sum(_nan0(_float(a.summary.get(key))) for a in batch.accounts)

    return {
        "accounts": len(batch.accounts),
        "orders": len(batch.orders),
        "flagged_orders": sum(bool(o.flags) for o in batch.orders),
        "flagged_accounts": sum(bool(a.flags) for a in batch.accounts),
        "buys": sum(o.est_value for o in batch.orders if o.side == "buy"),
        "sells": sum(o.est_value for o in batch.orders if o.side == "sell"),
        "cost": sum(o.est_cost for o in batch.orders),
        "realized_st": total("realized_st"),
        "realized_lt": total("realized_lt"),
        "est_tax": total("est_tax"),
    }


def render_report(
    batch: Batch,
    *,
    models: Mapping[str, Model] | None = None,
    fills: Sequence[Fill] = (),
    audit: Sequence[AuditEntry] = (),
    note: str = "",
) -> str:
    """The report's HTML for ``batch`` (loaded with its orders and accounts), with its
    ``fills`` and ``audit`` log entries when given."""
    flagged_orders = [o for o in batch.orders if o.flags]
    flagged_accounts = [a for a in sorted(batch.accounts, key=lambda a: a.account_id) if a.flags]
    template = environment().get_template("report.html.j2")
    return template.render(
        batch=batch,
        options=sorted(batch.options.items()),
        totals=totals(batch),
        accounts=account_views(batch, models),
        flagged_orders=flagged_orders,
        flagged_accounts=flagged_accounts,
        fills=fill_summaries(batch, fills),
        audit=audit,
        note=note,
    )


def write_report(
    batch_id: str, out: str | Path, *, db: str | None = None, store: Store | None = None
) -> Path:
    """Write the report of batch ``batch_id`` to ``out`` (one HTML file, written to a
    temporary file beside it and renamed); returns ``out``."""
    owned = store is None
    store = store or open_store(db)
    try:
        batch = store.load_batch(batch_id)
        fills = store.fills(batch_id)
        audit = store.audit_log(batch_id)
    finally:
        if owned:
            store.close()
    models, note = _models(batch)
    html = render_report(batch, models=models, fills=fills, audit=audit, note=note)
    return write_text_atomic(Path(out), html)


def _models(batch: Batch) -> tuple[Mapping[str, Model] | None, str]:
    """The models of the batch's book, or ``None`` and why they are not shown."""
    from planner.io import load_book

    try:
        return load_book(batch.book_path).models, ""
    except (BookError, OSError) as exc:
        first = str(exc).splitlines()[0]
        return (
            None,
            f"targets not shown: the batch's book {batch.book_path} cannot be read ({first})",
        )


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder,
    renamed over it once complete; :class:`OutputError` naming the path when it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write it ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o644 & ~umask)  # mkstemp makes it private; a report is for others
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write it ({exc.strerror})") from None
    return path
