"""``rebalance whatif``: sweep one account's settings through the planner, or list the
taxable accounts where such a sweep matters most (``--top-bracket N``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from planner.cli import (
    EXIT_USAGE,
    AsOfOpt,
    BookArg,
    OutOpt,
    _load,
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
from planner.errors import ConfigError

NO_ACCOUNT = (
    "whatif sweeps one account: give --account ID. To find the accounts where it matters "
    "most, run `rebalance whatif BOOK --top-bracket N`: the N taxable accounts with the "
    "largest embedded tax (unrealised gains at their own rates, short-term at the "
    "short-term rate)."
)


def whatif(
    book: BookArg,
    account: Annotated[str | None, typer.Option("--account", help="The account to sweep.")] = None,
    top_bracket: Annotated[
        int | None,
        typer.Option(
            "--top-bracket",
            help="List the N taxable accounts with the largest embedded tax (what selling "
            "every lot would cost at the account's rates, gains and losses netted by term) "
            "instead of sweeping; writes top_bracket.csv.",
        ),
    ] = None,
    as_of: AsOfOpt = None,
    out: OutOpt = Path("out"),
    sweep: Annotated[
        str,
        typer.Option(
            "--sweep",
            help="Comma list of sweeps: te_value, tax_rate, gain_budget, rebalance_to, wait "
            "(default: all; an IRA or Roth takes te_value and rebalance_to only).",
        ),
    ] = "",
    te_values: Annotated[
        str,
        typer.Option(
            "--te-values",
            help="Tracking-error values to sweep (fractions of account value per pp^2).",
        ),
    ] = "0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1",
    brackets: Annotated[
        str,
        typer.Option(
            "--brackets",
            help="Federal ORDINARY:LONGTERM rate pairs to sweep.",
        ),
    ] = "0.24:0.15,0.32:0.15,0.35:0.15,0.37:0.20",
    niit: Annotated[
        bool,
        typer.Option("--niit/--no-niit", help="Add the 3.8% net investment income tax."),
    ] = True,
    state_rate: Annotated[
        float,
        typer.Option(
            "--state-rate", help="State rate added to both terms in the tax-rate sweep (0.05 = 5%)."
        ),
    ] = 0.0,
    gain_budgets: Annotated[
        str, typer.Option("--gain-budgets", help="Gain budgets to sweep, dollars.")
    ] = "0,1000,5000,25000",
    wait: Annotated[
        str,
        typer.Option(
            "--wait", help="Days to wait, prices held (lots turn long-term, wash windows close)."
        ),
    ] = "0,7,30,90",
    te_value: Annotated[
        float | None,
        typer.Option(
            "--te-value",
            help="Tracking-error value of the current setting, from which the other sweeps "
            "start (default: the book's).",
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Plan a full rebalance to target whatever the trigger asks for."
        ),
    ] = False,
) -> None:
    """What-if for one account: tax, cost and tracking error as one setting changes at a
    time; writes whatif.csv and whatif.html (tax against tracking error).

    Exit codes: 0 success, 1 a book or file problem, 2 a usage error (no --account, an
    unknown account, a tax sweep of an IRA or Roth)."""
    from planner.pool import start_loading_kernels
    from planner.whatif import SWEEPS, TAX_SWEEPS, WhatIfOptions, scenarios
    from planner.whatif.parse import bracket_pairs, numbers, sweep_names

    if account is None and top_bracket is None:
        err.print(f"[red]{NO_ACCOUNT}[/]", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    if account is not None and top_bracket is not None:
        err.print("[red]give either --account or --top-bracket, not both[/]")
        raise typer.Exit(EXIT_USAGE)
    loaded = _load(book, as_of)
    if top_bracket is not None:
        _top_bracket(loaded, top_bracket, as_of, out)
        return
    if account not in loaded.accounts:
        err.print(f"[red]--account: unknown account {_safe(account)} in {_safe(book)}[/]")
        raise typer.Exit(EXIT_USAGE)
    taxable = loaded.accounts[account].taxable
    try:
        if sweep:
            sweeps = sweep_names(sweep)
        else:
            sweeps = SWEEPS if taxable else tuple(s for s in SWEEPS if s not in TAX_SWEEPS)
        options = WhatIfOptions(
            sweeps=sweeps,
            te_values=numbers(te_values, "--te-values"),
            brackets=bracket_pairs(brackets),
            niit=niit,
            state_rate=state_rate,
            gain_budgets=numbers(gain_budgets, "--gain-budgets"),
            wait_days=numbers(wait, "--wait", int),
            full=full,
            te_value=te_value,
        )
        scenarios(loaded, account, options)  # refuses a tax sweep of an IRA before planning
    except ConfigError as exc:
        err.print(f"[red]{_safe(exc)}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    if not taxable and not sweep:
        err.print(
            f"[yellow]{_safe(account)} is {loaded.accounts[account].registration}: its trades "
            "are not taxed; sweeping te_value and rebalance_to only[/]"
        )
    with _stoppable(), _output_folder(out) as folder:
        _prepare_process(start_loading_kernels())
        result = _run(loaded, account, options, as_of)
        written = _write(folder, result)
    _print(result, written)


def _run(book, account: str, options, as_of: str | None):
    from planner.whatif import run_whatif

    with _progress() as progress:
        task = progress.add_task("scenarios", total=None, rate="")

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return run_whatif(book, account, options, _parse_date(as_of), tick)


def _write(folder, result) -> list[Path]:
    from planner.whatif.report import whatif_csv, whatif_html

    files = {
        "whatif.csv": lambda path: whatif_csv(path, result),
        "whatif.html": lambda path: path.write_text(whatif_html(result), encoding="utf-8"),
    }
    return folder.write("whatif", files)


def _print(result, written: list[Path]) -> None:
    rows = result.rows
    current = rows[rows["current"]].iloc[0]
    title = (
        f"What-if for {_safe(result.account_id)} ({_safe(result.model)}, "
        f"{result.registration}, {_money(result.value, 0)}) as of {result.as_of.isoformat()}"
    )
    table = Table(title=title)
    for col in (
        "sweep",
        "scenario",
        "decision",
        "orders",
        "turnover",
        "real. ST",
        "real. LT",
        "est tax",
        "est cost",
        "TE after",
        "status",
    ):
        left = col in ("sweep", "scenario", "decision", "status")
        table.add_column(col, justify="left" if left else "right")
    for row in rows.itertuples():
        planned = row.status == "optimal"
        style = "bold" if row.current else None
        table.add_row(
            row.sweep,
            _safe(row.scenario),
            row.decision,
            str(row.orders),
            f"{row.turnover:.1%}" if planned else "",
            _money(row.realized_st, 0) if planned else "",
            _money(row.realized_lt, 0) if planned else "",
            _money(row.est_tax) if planned else "",
            _money(row.est_cost) if planned else "",
            f"{row.te_after:.2%}" if planned else "",
            row.status,
            style=style,
        )
    console.print(table)
    console.print(
        f"current setting: TE before {current.te_before:.2%}; rates ST {current.st_rate:.1%} / "
        f"LT {current.lt_rate:.1%}; TE value {current.te_value:g}"
    )
    for row in rows[rows["status"] != "optimal"].itertuples():
        err.print(
            f"[yellow]{row.sweep} {_safe(row.scenario)}: {row.status}: {_safe(row.message)}[/]",
            highlight=False,
        )
    console.print(f"wrote {_safe(', '.join(str(p) for p in written))}")


def _top_bracket(book, count: int, as_of: str | None, out: Path) -> None:
    from planner.whatif import top_bracket
    from planner.whatif.report import top_bracket_csv

    try:
        frame = top_bracket(book, count, _parse_date(as_of))
    except ConfigError as exc:
        err.print(f"[red]{_safe(exc)}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    with _stoppable(), _output_folder(out) as folder:
        written = folder.write(
            "top_bracket", {"top_bracket.csv": lambda path: top_bracket_csv(path, frame)}
        )
    _print_top(frame, count, written)


def _print_top(frame: pd.DataFrame, count: int, written: list[Path]) -> None:
    table = Table(title=f"Top {count} taxable accounts by embedded tax")
    for col in ("account", "model", "ST/LT rate", "value", "unreal. ST", "unreal. LT", "tax"):
        table.add_column(col, justify="left" if col in ("account", "model") else "right")
    for row in frame.itertuples():
        table.add_row(
            _safe(row.account_id),
            _safe(row.model),
            f"{row.st_rate:.1%}/{row.lt_rate:.1%}",
            _money(row.value, 0),
            _money(row.unrealized_st, 0),
            _money(row.unrealized_lt, 0),
            f"{_money(row.embedded_tax, 0)} ({row.embedded_tax_pct:.1%})",
        )
    console.print(table)
    if len(frame):
        first = frame.iloc[0]["account_id"]
        console.print(f"next: rebalance whatif BOOK --account {_safe(first)}")
    console.print(f"wrote {_safe(', '.join(str(p) for p in written))}")
