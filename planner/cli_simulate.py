"""``rebalance simulate``: run one account through a price history under several
rebalancing workflows, with the planner at every trigger, and compare them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from planner.cli import (
    EXIT_BOOK,
    EXIT_USAGE,
    OutOpt,
    _money,
    _output_folder,
    _parse_date,
    _prepare_process,
    _progress,
    _safe,
    _stoppable,
    console,
    err,
)
from planner.errors import BookError, ConfigError


class Registration(StrEnum):
    taxable = "taxable"
    ira = "ira"


class TaxesFrom(StrEnum):
    portfolio = "portfolio"
    external = "external"


def simulate(
    book: Annotated[
        Path | None,
        typer.Argument(help="Book folder whose model to simulate (or give --weights)."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="The book's model.")] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", help="Start from this account's lots and cash (its model)."),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="A quick portfolio, e.g. SPY=0.6,AGG=0.4 (rest cash)."),
    ] = None,
    initial: Annotated[
        float | None,
        typer.Option("--initial", help="Starting cash in dollars (default 1,000,000)."),
    ] = None,
    registration: Annotated[
        Registration | None,
        typer.Option(
            "--registration", help="taxable or ira (default: the account's, else taxable)."
        ),
    ] = None,
    fractional: Annotated[
        bool | None, typer.Option("--fractional/--whole-shares", help="Fractional shares.")
    ] = None,
    st_rate: Annotated[
        float | None, typer.Option("--st-rate", help="Short-term rate (default 0.408).")
    ] = None,
    lt_rate: Annotated[
        float | None, typer.Option("--lt-rate", help="Long-term rate (default 0.238).")
    ] = None,
    spread_bps: Annotated[
        float, typer.Option("--spread-bps", help="Full bid-ask spread, bp (a trade pays half).")
    ] = 2.0,
    flows: Annotated[
        Path | None,
        typer.Option("--flows", help="CSV date,amount: contributions (+), withdrawals (-)."),
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            help="Price history (date, one column per symbol of adjusted closes); default: "
            "the seeded synthetic market.",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="First day YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last day YYYY-MM-DD.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic market.")] = 0,
    workflows: Annotated[
        str | None,
        typer.Option(
            "--workflows",
            help="Comma list (default all): never, monthly, quarterly, annual, threshold:A, "
            "relative:R, 5/25, hybrid:quarterly+0.05, tiered[:IN/OUT], daryanani[:R/N].",
        ),
    ] = None,
    tiered: Annotated[
        str, typer.Option("--tiered", help="Inner/outer absolute bands of `tiered`.")
    ] = "0.05/0.10",
    naive: Annotated[
        bool,
        typer.Option("--naive", help="Add per workflow a full rebalance to target, HIFO lots."),
    ] = False,
    taxes_from: Annotated[
        TaxesFrom,
        typer.Option("--taxes-from", help="Pay each year's tax from the account or outside."),
    ] = TaxesFrom.portfolio,
    out: OutOpt = Path("out"),
) -> None:
    """Simulate workflows on one account; write metrics.csv, daily.csv, trade_log.csv and
    report.html."""
    from planner.pool import start_loading_kernels
    from planner.simulate import (
        book_portfolio,
        market_for,
        parse_weights,
        parse_workflows,
        read_flows,
        weights_portfolio,
    )
    from planner.simulate import (
        simulate as run_simulation,
    )
    from planner.simulate.report import writers

    try:
        first, last = _parse_date(start), _parse_date(end)
        chosen = parse_workflows(workflows, naive, _pair(tiered))
        if (book is None) == (weights is None):
            raise ConfigError("give a BOOK (with --model or --account) or --weights, not both")
        if weights is not None and (model or account):
            raise ConfigError("--model and --account need a BOOK, not --weights")
        if spread_bps < 0:
            raise ConfigError(f"--spread-bps {spread_bps}: expected 0 or more basis points")
    except (ConfigError, typer.BadParameter) as exc:
        err.print(f"[red]{_safe(exc)}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        if weights is not None:
            portfolio = weights_portfolio(
                parse_weights(weights),
                1_000_000.0 if initial is None else initial,
                (registration or Registration.taxable).value,
                0.408 if st_rate is None else st_rate,
                0.238 if lt_rate is None else lt_rate,
                bool(fractional),
                spread_bps,
            )
        else:
            portfolio = book_portfolio(
                book,
                model,
                account,
                initial=initial,
                registration=registration.value if registration else None,
                st_rate=st_rate,
                lt_rate=lt_rate,
                fractional=fractional,
                spread_bps=spread_bps,
            )
        schedule = read_flows(flows) if flows else None
        portfolio, market = market_for(portfolio, prices, first, last, seed, schedule)
    except BookError as exc:
        err.print(f"[bold red]{len(exc.issues)} problem(s) in book {_safe(book)}[/]")
        for issue in exc.issues:
            err.print(f"  {_safe(issue)}", highlight=False)
        raise typer.Exit(EXIT_BOOK) from None
    except ConfigError as exc:
        err.print(f"[red]{_safe(exc)}[/]")
        raise typer.Exit(EXIT_BOOK) from None
    days = len(market.prices)
    with _stoppable(), _output_folder(out) as folder:
        _prepare_process(start_loading_kernels())
        with _progress() as bar:
            task = bar.add_task("simulating", total=days * len(chosen), rate="")
            result = run_simulation(
                portfolio,
                market,
                chosen,
                taxes_from.value,
                progress=lambda n: bar.advance(task, n),
            )
        title = (
            f"Simulation: {portfolio.account.registration} {portfolio.model.name}, "
            f"{market.prices.index[0].date()} to {market.prices.index[-1].date()}"
        )
        written = folder.write(
            "simulate", writers(result.setup, list(result.runs), result.metrics, title)
        )
    _print(result.metrics, title)
    failed = int(result.metrics["failed_plans"].sum())
    if failed:
        console.print(f"[yellow]{failed} plan(s) failed; listed in report.html[/]")
    console.print(f"wrote {_safe(', '.join(str(p) for p in written))}")


def _pair(text: str) -> tuple[float, float]:
    try:
        inner, outer = (float(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--tiered {text!r}: expected INNER/OUTER, e.g. 0.05/0.10") from None
    if not 0 < inner < outer < 1:
        raise ConfigError(f"--tiered {text!r}: expected 0 < inner < outer < 1")
    return inner, outer


def _thousands(value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value) / 1000:,.1f}k"


def _print(metrics, title: str) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    heads = (
        "workflow",
        "rebal",
        "trades",
        "turnover",
        "max drift",
        "TE",
        "return",
        "costs",
        "taxes paid",
        "after tax",
        "liquidation",
    )
    # Dollar values in thousands keep the table inside 132 columns.
    for h in heads:
        if h == "workflow":
            table.add_column(h, no_wrap=True)
        else:
            table.add_column(h, justify="right", no_wrap=True)
    for r in metrics.itertuples():
        table.add_row(
            _safe(r.workflow),
            str(r.rebalances),
            str(r.trades),
            f"{r.turnover:.1%}",
            f"{r.max_abs_drift:.2%}",
            f"{r.tracking_error:.2%}",
            f"{r.annual_return:.2%}",
            _money(r.costs, 0),
            _money(r.taxes_paid, 0),
            _thousands(r.after_tax_value),
            _thousands(r.liquidation_value),
        )
    console.print(table)
    console.print("mean drift, days outside the band and the rest: metrics.csv and report.html")
