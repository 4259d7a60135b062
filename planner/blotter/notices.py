"""Client notices: one short letter per account of a batch, in Markdown and in plain text,
saying what was traded (or is planned, before any fill) and why in plain words, and what
it does to the client's tax: the plan's estimate before the fills, what the fills
realised after them.

The letter is a Jinja2 template the firm can replace (``--template PATH``); the default is
``planner/blotter/templates/notice.j2``. A template is rendered twice per account, once
with ``markdown`` true (``<account>.md``) and once false (``<account>.txt``), and sees:

- ``account_id``, ``batch_id``, ``as_of`` (a date);
- ``stage``: ``planned`` before any fill (the trades and figures are the plan's),
  ``traded`` once the account's orders have fills (the trades are what was filled, at the
  average fill price, and the figures what those fills realised, as reconciliation
  worked them out), ``unfilled`` when the batch's fills are in but none of the account's
  orders was filled (no trades, figures nil); ``traded`` is ``stage == "traded"``;
- ``why``: the plan's reason for the account, in plain words;
- ``trades``: a list, sells first, each with ``verb`` (``Sold``/``Bought``, or ``Sell``/
  ``Buy`` when planned), ``side``, ``shares``, ``symbol``, ``asset_class`` (in words),
  ``price`` and ``value`` (dollars) and ``why`` (the order's reason in plain words);
- ``taxable`` (false for an IRA or Roth), ``realized_st``, ``realized_lt`` (the gains
  for the tax return, after any wash-sale adjustment), ``est_tax`` (dollars; negative is
  a saving), ``carryforward`` (loss carried to next year, dollars), ``harvested_loss``
  (dollars);
- filters ``money``, ``shares``, ``percent``, ``gain`` (``a gain of $1.00`` / ``a loss
  of $1.00``); ``strong(text)`` and ``heading(text)``, which
  mark text up in Markdown and leave it plain in text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from planner.blotter.fingerprint import ensure_book_unchanged
from planner.blotter.reconcile import FILLED_FIGURES, filled_figures, match_fills
from planner.blotter.records import (
    APPROVED,
    CANCELLED,
    FILLED,
    RECONCILED,
    REJECTED,
    Batch,
    BlotterOrder,
    Fill,
)
from planner.blotter.report import (
    TEMPLATES,
    environment,
    fill_summaries,
    money,
    percent,
    shares,
    write_text_atomic,
)
from planner.blotter.rollforward import roll_forward
from planner.blotter.store import Store, open_store
from planner.domain import Book
from planner.errors import BlotterError, BookError, ConfigError, StaleBookError

DEFAULT_TEMPLATE = TEMPLATES / "notice.j2"

CLASS_WORDS = {
    "US_EQUITY": "US stocks",
    "US_SMALL": "US small-company stocks",
    "INTL_DEV": "international developed-market stocks",
    "EM_EQUITY": "emerging-market stocks",
    "US_BONDS": "US bonds",
    "TIPS": "inflation-protected bonds",
    "REIT": "real estate",
    "CASH": "cash",
}
"""Plain words for the demo's asset classes; any other class is written in lower case."""

DECISION_WORDS = {
    "full": "parts of your portfolio had drifted away from the mix agreed for it, so we "
    "brought it back to its targets",
    "partial": "some parts of your portfolio had drifted outside the ranges agreed for them, "
    "so we moved them back inside",
    "harvest": "some holdings were worth less than you paid for them; selling them lets you "
    "use the loss against your taxes, and we bought similar investments so that your mix "
    "stays the same",
}


def class_words(asset_class: str) -> str:
    """An asset class in plain words (``US_BONDS`` -> ``US bonds``)."""
    return CLASS_WORDS.get(asset_class, asset_class.replace("_", " ").lower())


def plain_reason(reason: str) -> str:
    """An order's reason with asset-class codes and arrows in plain words:
    ``REIT 9.0% -> 6.0% (target 6.0%)`` reads ``real estate from 9.0% to 6.0% (target
    6.0%)``."""
    text = reason.replace(" -> ", " to ")
    text = re.sub(
        r"\b([A-Z][A-Z_]+)\b(?= [0-9.]+% to)", lambda m: f"{class_words(m[1])} from", text
    )
    for code in sorted(CLASS_WORDS, key=len, reverse=True):
        text = re.sub(rf"\b{code}\b", class_words(code), text)
    return text


def account_why(summary: Mapping[str, object], orders: list[BlotterOrder]) -> str:
    """Why the account traded, in plain words, from its decision and its orders."""
    reasons = " ".join(o.reason for o in orders)
    decision = str(summary.get("decision", ""))
    if "contribution" in reasons:
        return "you added money to the account, and we invested it in line with your target mix"
    if "withdrawal" in reasons:
        return "you asked to take money out, and we raised the cash while keeping your mix close to its targets"
    if decision in DECISION_WORDS:
        return DECISION_WORDS[decision]
    return "we reviewed your portfolio against the mix agreed for it"


@dataclass(frozen=True)
class NoticeTrade:
    """One trade as a notice tells it (dollars, shares)."""

    verb: str
    side: str
    shares: float
    symbol: str
    asset_class: str
    price: float
    value: float
    why: str


PLANNED, TRADED, UNFILLED = "planned", "traded", "unfilled"
"""A notice's ``stage``: before any fill, after fills of the account's orders, after the
batch's fills when none of the account's orders was filled."""


def notice_context(
    batch: Batch,
    account_id: str,
    book: Book | None,
    fills: Sequence[Fill],
    filled: Mapping[str, float] | None = None,
) -> dict:
    """What a notice template sees for one account (see the module's docstring).

    Before the batch's fills the trades and tax figures are the plan's. Once fills are
    recorded (or the batch is filled or reconciled) they are what was filled: the filled
    shares at their average price, and the tax figures ``filled`` (default: those the
    reconciliation recorded in the account's summary, :data:`FILLED_FIGURES`); an account
    none of whose orders was filled traded nothing and its figures are nil. Raises
    :class:`BlotterError` for an account with fills but no filled figures."""
    plan = next(a for a in batch.accounts if a.account_id == account_id)
    orders = sorted(
        (o for o in batch.orders if o.account_id == account_id), key=lambda o: o.sequence
    )
    done = fill_summaries(batch, fills)
    if not fills and batch.status not in (FILLED, RECONCILED):
        stage = PLANNED
    elif any(o.order_id in done for o in orders):
        stage = TRADED
    else:
        stage = UNFILLED
    verbs = {"sell": "Sold", "buy": "Bought"} if stage == TRADED else {"sell": "Sell", "buy": "Buy"}
    trades = []
    for o in orders:
        if stage == PLANNED:
            count, price = o.shares, o.est_price
        elif o.order_id in done:
            count, price = done[o.order_id].filled, done[o.order_id].average_price
        else:
            continue
        security = book.securities.get(o.symbol) if book is not None else None
        trades.append(
            NoticeTrade(
                verb=verbs[o.side],
                side=o.side,
                shares=count,
                symbol=o.symbol,
                asset_class=class_words(security.asset_class) if security else "",
                price=price,
                value=count * price,
                why=plain_reason(o.reason),
            )
        )
    if stage == PLANNED:
        figures: Mapping[str, object] = plan.summary
    elif stage == UNFILLED:
        figures = {}
    else:
        figures = filled if filled is not None else plan.summary.get(FILLED_FIGURES)
        if figures is None:
            raise BlotterError(
                f"batch {batch.batch_id}: account {account_id} has fills but no record of "
                f"what they realised; reconcile the batch first (rebalance reconcile)"
            )
    account = book.accounts.get(account_id) if book is not None else None
    return {
        "account_id": account_id,
        "batch_id": batch.batch_id,
        "as_of": batch.as_of,
        "stage": stage,
        "traded": stage == TRADED,
        "why": account_why(plan.summary, orders),
        "trades": trades,
        "taxable": account.taxable if account is not None else True,
        "realized_st": _number(figures.get("realized_st")),
        "realized_lt": _number(figures.get("realized_lt")),
        "est_tax": _number(figures.get("est_tax")),
        "carryforward": _number(figures.get("carryforward_added")),
        "harvested_loss": _number(figures.get("harvested_loss")),
    }


def unrecorded_figures(
    batch: Batch, fills: Sequence[Fill], book: Book | None
) -> dict[str, dict[str, float]]:
    """The filled figures of the accounts that have fills but no record of them (fills
    recorded without :func:`~planner.blotter.reconcile.reconcile`), worked out by rolling
    the batch's book, unchanged since the plan, forward by the fills; ``{}`` when every
    account has its record. Raises :class:`BlotterError` when the book has changed (or
    is gone), as then the year the fills fall in is not known."""
    done = fill_summaries(batch, fills)
    missing = [
        a.account_id
        for a in batch.accounts
        if a.status == APPROVED
        and FILLED_FIGURES not in a.summary
        and any(o.order_id in done for o in batch.orders if o.account_id == a.account_id)
    ]
    if not missing:
        return {}
    try:
        ensure_book_unchanged(batch)
    except StaleBookError:
        book = None
    if book is None:
        raise BlotterError(
            f"batch {batch.batch_id}: account(s) {', '.join(missing)} have fills but no record "
            f"of what they realised, and the batch's book {batch.book_path} is not as planned "
            f"to work it out; reconcile the batch (rebalance reconcile) first"
        )
    executions, _ = match_fills(batch, (), fills)
    rolled = roll_forward(book, executions)
    return filled_figures(book, batch, executions, rolled)


def _number(value: object) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if x != x else x


def _environment(template: Path | None) -> tuple[Environment, str]:
    """The environment and template name for ``template`` (``None``: the default)."""
    if template is None:
        env = environment()
        env.filters["gain"] = gain_words
        return env, DEFAULT_TEMPLATE.name
    if not template.is_file():
        raise ConfigError(f"--template {template}: expected a Jinja2 template file")
    env = Environment(
        loader=FileSystemLoader(str(template.parent)),
        autoescape=False,  # Markdown and text, not HTML
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, percent=percent, shares=shares, gain=gain_words)
    return env, template.name


def gain_words(value: float) -> str:
    """``a gain of $1,234.00`` or ``a loss of $56.00``."""
    return f"a gain of {money(value)}" if value >= 0 else f"a loss of {money(-value)}"


def render_notice(context: Mapping, markdown: bool, template: Path | None = None) -> str:
    """One account's notice, Markdown or plain text."""
    env, name = _environment(template)
    try:
        text = env.get_template(name).render(
            **context,
            markdown=markdown,
            strong=lambda t: f"**{t}**" if markdown else str(t),
            heading=lambda t: f"# {t}" if markdown else f"{t}\n{'=' * len(str(t))}",
        )
    except TemplateError as exc:
        where = template or DEFAULT_TEMPLATE
        line = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise ConfigError(f"template {where}{line}: {exc}") from None
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def write_notices(
    batch_id: str,
    out: str | Path,
    *,
    db: str | None = None,
    store: Store | None = None,
    template: str | Path | None = None,
) -> list[Path]:
    """Write ``<account>.md`` and ``<account>.txt`` for every account of the batch into
    the folder ``out`` (each file through a temporary file, renamed); returns the paths."""
    owned = store is None
    store = store or open_store(db)
    try:
        batch = store.load_batch(batch_id)
        fills = store.fills(batch_id)
    finally:
        if owned:
            store.close()
    if batch.status in (REJECTED, CANCELLED):
        raise BlotterError(
            f"batch {batch_id} is {batch.status}: it trades nothing, so no notices are written"
        )
    book = _book(batch)
    chosen = Path(template) if template is not None else None
    out = Path(out)
    # Every notice is rendered before any is written: a template error leaves no half set.
    texts: dict[str, str] = {}
    taken: dict[str, str] = {}
    unrecorded = unrecorded_figures(batch, fills, book)
    for plan in sorted(batch.accounts, key=lambda a: a.account_id):
        if plan.status == REJECTED:  # not approved (approve --accounts): nothing to tell
            continue
        context = notice_context(
            batch, plan.account_id, book, fills, unrecorded.get(plan.account_id)
        )
        for suffix, markdown in ((".md", True), (".txt", False)):
            name = file_stem(plan.account_id, taken)
            texts[f"{name}{suffix}"] = render_notice(context, markdown, chosen)
    return [write_text_atomic(out / name, text) for name, text in texts.items()]


def file_stem(account_id: str, taken: dict[str, str]) -> str:
    """A file name for the account's notices: its id with anything but letters, digits,
    ``.``, ``_`` and ``-`` as ``_`` (an id may hold ``/``), unique among ``taken`` (id ->
    stem, updated)."""
    if account_id in taken:
        return taken[account_id]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", account_id)
    if stem.startswith("."):
        stem = "_" + stem[1:]
    base, k = stem, 1
    while stem in taken.values():
        k += 1
        stem = f"{base}-{k}"
    taken[account_id] = stem
    return stem


def _book(batch: Batch) -> Book | None:
    from planner.io import load_book

    try:
        return load_book(batch.book_path)
    except (BookError, OSError):
        return None


__all__ = [
    "DEFAULT_TEMPLATE",
    "NoticeTrade",
    "class_words",
    "notice_context",
    "plain_reason",
    "render_notice",
    "write_notices",
]
