"""The ``rebalance`` command: validate a book, check triggers, plan trades."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import unicodedata
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from planner.cli_blotter import DbOpt, blotter_for_plan, save_for_plan
from planner.cli_blotter import app as blotter_app
from planner.errors import BookError, PlannerError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Tax-aware trade planner for portfolio rebalancing.",
)
# Wide tables even when piped (rich falls back to 80 columns without a terminal).
console = Console(width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, soft_wrap=True)  # a message stays one line in a log

TABLE_ROWS = 30
"""Rows shown in terminal tables; the CSV files hold all of them."""

BookArg = Annotated[Path, typer.Argument(help="Book folder (see data/README.md).")]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="As-of date YYYY-MM-DD (default: book.toml, else today)."),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder.")]
app.add_typer(blotter_app, name="blotter")


class OutputFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


class FailOn(StrEnum):
    error = "error"
    failed = "failed"
    never = "never"


FormatOpt = Annotated[
    OutputFormat,
    typer.Option("--format", help="Output files: csv, or parquet (the same tables, typed)."),
]


def _safe(value) -> str:
    """Text from a book, a file name or an error, printed as it is: Rich markup escaped (an id
    such as ``A1[/]`` must not be read as markup) and control characters shown as escapes
    (an escape sequence must not reach the terminal)."""
    text = "".join(
        repr(ch)[1:-1] if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in str(value)
    )
    return escape(text)


def _parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"--as-of: expected a date YYYY-MM-DD, got {text!r}") from None


def _fraction(ctx: typer.Context, param: typer.CallbackParam, value: float | None):
    """A fraction of account value in [0, 1] (or the option left out)."""
    if value is None:
        return None
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise typer.BadParameter(
            f"expected a fraction of account value in [0, 1] (0.05 = 5%), got {value:g}"
        )
    return value


def _load(book_path: Path, as_of: str | None):
    from planner.io import load_book

    try:
        return load_book(book_path, _parse_date(as_of))
    except BookError as exc:
        err.print(f"[bold red]{len(exc.issues)} problem(s) in book {_safe(book_path)}[/]")
        for issue in exc.issues:
            err.print(f"  {_safe(issue)}", highlight=False)
        raise typer.Exit(1) from None


EXIT_BOOK, EXIT_USAGE, EXIT_ACCOUNTS = 1, 2, 3
"""Exit codes besides 0 (success): a book or file problem, a usage error, account failures
(what counts is ``plan --fail-on``); an interrupted run exits 128 + the signal number."""
FAIL_ON = {
    "error": ("error",),
    "failed": ("infeasible", "rule_violation", "error"),
    "never": (),
}
"""``plan --fail-on``: the summary statuses that make the run exit with EXIT_ACCOUNTS."""


class _Stopped(BaseException):
    """SIGTERM arrived (SIGINT arrives as KeyboardInterrupt)."""


@contextlib.contextmanager
def _stoppable():
    """SIGINT or SIGTERM stops the command: pools and temporary files are cleaned up by
    their own ``finally`` blocks on the way out, and one line says what happened."""

    def stop(signum, frame):
        raise _Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except (KeyboardInterrupt, _Stopped) as exc:
        signum = exc.args[0] if isinstance(exc, _Stopped) else signal.SIGINT
        name = signal.Signals(signum).name
        err.print(f"[red]interrupted by {name}: stopped; no new files were written[/]")
        raise typer.Exit(128 + signum) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _output_folder(out: Path):
    """The output folder, checked and locked before any planning (see planner.io.outputs);
    a problem with it is one line and exit code 1."""
    from planner.errors import OutputError
    from planner.io import OutputFolder

    try:
        with OutputFolder(out) as folder:
            yield folder
    except OutputError as exc:
        err.print(f"[red]{_safe(exc)}[/]")
        raise typer.Exit(EXIT_BOOK) from None


COMPILE_NOTICE = 1.0
"""Seconds the kernels may take to load before the command says it is compiling them."""


def _prepare_process(load_kernels) -> None:
    """One BLAS thread, and the numba kernels compiled or loaded from numba's cache by
    ``load_kernels``. A first run after installing compiles them, which takes a while: the
    command says so rather than sit silent."""
    from planner.pool import single_threaded_blas

    single_threaded_blas()
    failure: list[BaseException] = []

    def load() -> None:
        try:
            load_kernels()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in this thread
            failure.append(exc)

    loader = threading.Thread(target=load, name="load-kernels", daemon=True)
    loader.start()
    loader.join(COMPILE_NOTICE)
    if loader.is_alive():
        message = (
            "compiling the solver's and the rounding's numba kernels (the first run after "
            "installing; later runs load them from numba's cache)"
        )
        if err.is_terminal:
            with err.status(message):
                loader.join()
        else:
            err.print(message + " ...", highlight=False)
            loader.join()
    if failure:
        raise failure[0]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@app.command()
def validate(book: BookArg, as_of: AsOfOpt = None) -> None:
    """Check a book and report every problem (file, line, field, what was expected)."""
    from planner.io import validate_book

    issues = validate_book(book, _parse_date(as_of))
    if issues:
        err.print(f"[bold red]{len(issues)} problem(s) in book {_safe(book)}[/]")
        for issue in issues:
            err.print(f"  {_safe(issue)}", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]book {_safe(book)} is valid[/]")


@app.command()
def check(
    book: BookArg,
    as_of: AsOfOpt = None,
    out: OutOpt = Path("out"),
    fmt: FormatOpt = OutputFormat.csv,
) -> None:
    """Evaluate the trigger of every account; write drift.csv and triggers.csv."""
    from planner.io.outputs import write_frames
    from planner.positions import drift_frame

    loaded = _load(book, as_of)
    with _stoppable(), _output_folder(out) as folder:
        when = loaded.settings.as_of or date.today()
        decisions = _check_decisions(loaded, when)
        drift = drift_frame(loaded)
        triggers = triggers_frame(loaded, decisions, drift)
        files = {"drift.csv": drift, "triggers.csv": triggers}
        written = write_frames(folder, files, fmt.value, "check")
    fired = triggers[triggers["fire"]]
    title = f"Triggers as of {when.isoformat()}: {len(fired)} of {len(triggers)} fire"
    table = Table(title=title)
    for col in ("account", "model", "largest drift", "decision", "reasons"):
        table.add_column(col, overflow="fold")
    for row in fired.head(TABLE_ROWS).itertuples():
        table.add_row(
            _safe(row.account_id),
            _safe(row.model),
            f"{_safe(row.max_drift_class)} {row.max_drift:+.1%}",
            row.mode,
            _safe(row.reasons),
        )
    console.print(table)
    if len(fired) > TABLE_ROWS:
        console.print(f"... and {len(fired) - TABLE_ROWS} more in {_safe(written[1])}")
    console.print(f"wrote {_safe(' and '.join(str(p) for p in written))}")


def _check_decisions(book, when: date) -> dict:
    """Trigger decision of every account, with a progress bar."""
    from planner.run import decide

    with _progress() as progress:
        task = progress.add_task("triggers", total=len(book.accounts), rate="")
        return decide(book, when, progress=lambda done, _: progress.update(task, completed=done))


def triggers_frame(book, decisions, drift: pd.DataFrame) -> pd.DataFrame:
    """One row per account: decision, mode, largest drift and reasons."""
    largest = drift.assign(abs_drift=drift["drift"].abs()).sort_values(
        ["account_id", "abs_drift", "asset_class"], ascending=[True, False, True], kind="stable"
    )
    largest = largest.drop_duplicates("account_id").set_index("account_id")
    rows = []
    for account_id in sorted(decisions):
        d = decisions[account_id]
        has = account_id in largest.index
        rows.append(
            {
                "account_id": account_id,
                "model": book.accounts[account_id].model,
                "fire": bool(d.fire),
                "mode": d.mode,
                "rebalance_to": d.rebalance_to,
                "cash_flow_mode": d.cash_flow_mode,
                "max_drift_class": largest.at[account_id, "asset_class"] if has else "",
                "max_drift": float(largest.at[account_id, "drift"]) if has else 0.0,
                "reasons": "; ".join(d.reasons),
            }
        )
    return pd.DataFrame(rows)


@app.command()
def plan(
    book: BookArg,
    as_of: AsOfOpt = None,
    out: OutOpt = Path("out"),
    fmt: FormatOpt = OutputFormat.csv,
    accounts: Annotated[
        str | None, typer.Option("--accounts", help="Comma-separated account ids (default: all).")
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Mixed-integer exact mode (needs the 'exact' extra).")
    ] = False,
    exact_time_limit: Annotated[
        float | None,
        typer.Option(
            "--exact-time-limit",
            help="SCIP's time limit per account in seconds with --exact (default 60); an "
            "account it does not prove optimal by then keeps the heuristic's plan.",
        ),
    ] = None,
    relief: Annotated[
        str, typer.Option("--relief", help="Lot relief: optimal, min_tax, hifo, fifo, lifo.")
    ] = "optimal",
    what_if: Annotated[
        bool, typer.Option("--all", help="Plan every account, triggered or not (what-if).")
    ] = False,
    te_value: Annotated[
        float | None,
        typer.Option(
            "--te-value",
            help="Fraction of account value worth paying to remove 1 pp^2 of tracking error.",
        ),
    ] = None,
    impact: Annotated[
        float | None,
        typer.Option(
            "--impact",
            help="Market-impact coefficient b (needs adv and volatility in securities.csv).",
        ),
    ] = None,
    turnover_cap: Annotated[
        float | None,
        typer.Option(
            "--turnover-cap",
            help="Cap on traded value (buys plus sells) per account, a fraction of the "
            "account's value in [0, 1] (0.2 = 20%; default: no cap).",
            callback=_fraction,
        ),
    ] = None,
    min_weight: Annotated[
        float | None,
        typer.Option(
            "--min-weight",
            help="Smallest post-trade weight of each security with a positive model target, "
            "a fraction of account value in [0, 1] (0.01 = 1%; alternates and legacy "
            "holdings are exempt; default: none).",
            callback=_fraction,
        ),
    ] = None,
    max_weight: Annotated[
        float | None,
        typer.Option(
            "--max-weight",
            help="Largest post-trade weight of each model security, a fraction of account "
            "value in [0, 1] (0.25 = 25%; legacy holdings are exempt; default: none).",
            callback=_fraction,
        ),
    ] = None,
    effort: Annotated[
        str,
        typer.Option(
            "--effort",
            help="standard (every rule in the first re-solve, up to three wash groups "
            "enumerated) or thorough (a wider candidate search, about twice the solves).",
        ),
    ] = "standard",
    executor: Annotated[
        str, typer.Option("--executor", help="auto, serial, process or dask.")
    ] = "auto",
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes (default: all cores).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address (implies --executor dask)."),
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on",
            help="Which accounts make the run exit with code 3: error (an account's plan "
            "raised an error), failed (also infeasible and rule_violation) or never.",
        ),
    ] = FailOn.error,
    save: Annotated[
        bool, typer.Option("--save", help="Record the plan as a blotter batch; prints its id.")
    ] = False,
    db: DbOpt = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who proposes the batch (default: login name).")
    ] = None,
    ignore_pending: Annotated[
        bool,
        typer.Option("--ignore-pending", help="Also plan accounts whose batch is in the market."),
    ] = False,
) -> None:
    """Plan trades for every triggered account; write orders, lot_sales and summary CSVs.

    Exit codes: 0 success, 1 a book or file problem, 2 a usage error, 3 accounts that
    failed (see --fail-on), 128 + N when stopped by signal N."""
    from planner.io.outputs import write_frames
    from planner.pool import start_loading_kernels
    from planner.run import PlanOptions

    if min_weight is not None and max_weight is not None and min_weight > max_weight:
        err.print(f"[red]--min-weight {min_weight:g} is above --max-weight {max_weight:g}[/]")
        raise typer.Exit(2)
    loaded = _load(book, as_of)
    ids = None
    if accounts:
        ids = [a.strip() for a in accounts.split(",") if a.strip()]
        unknown = [a for a in ids if a not in loaded.accounts]
        if unknown:
            err.print(f"[red]--accounts: unknown account ids: {_safe(', '.join(unknown))}[/]")
            raise typer.Exit(2)
    try:
        options = PlanOptions(
            relief=relief,
            exact=exact,
            exact_time_limit=exact_time_limit,
            include_untriggered=what_if,
            tracking_error_value=te_value,
            effort=effort,
            market_impact=impact,
            turnover_cap=turnover_cap,
            min_weight=min_weight,
            max_weight=max_weight,
        )
    except PlannerError as exc:
        err.print(f"[red]{_safe(exc)}[/]")
        raise typer.Exit(2) from None
    blotter = blotter_for_plan(db, save, ignore_pending)  # accounts in the market wait
    with _stoppable(), _output_folder(out) as folder:
        # Two kernels compile at once on a first run (this process has no other thread
        # yet, as the fork in start_loading_kernels needs).
        _prepare_process(start_loading_kernels())
        started = time.perf_counter()
        planned = blotter.accounts_to_plan(loaded, ids)
        result = _run_plan(loaded, planned, options, executor, workers, scheduler)
        result = blotter.finish(result, loaded)
        elapsed = time.perf_counter() - started
        written = write_frames(folder, result.files(), fmt.value, "plan")
    _print_plan(result, elapsed, written, exact)
    if save:
        save_for_plan(blotter, loaded, result, by, options, ids, book)
    blotter.close()
    failing = result.summary["status"].isin(FAIL_ON[fail_on.value])
    if failing.any():
        err.print(
            f"[red]{int(failing.sum())} account(s) with status "
            f"{' or '.join(FAIL_ON[fail_on.value])} (--fail-on {fail_on.value}): exit code "
            f"{EXIT_ACCOUNTS}[/]"
        )
        raise typer.Exit(EXIT_ACCOUNTS)


def _run_plan(loaded, ids, options, executor, workers, scheduler):
    """The plan, with a progress bar."""
    from planner.run import plan as run_plan

    total = len(ids) if ids is not None else len(loaded.accounts)
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("planning", total=total, rate="")

        def tick(done: int, _total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done, rate=f"{rate:,.0f} accounts/s")

        try:
            result = run_plan(
                loaded,
                accounts=ids,
                options=options,
                progress=tick,
                executor="dask" if scheduler else executor,
                workers=workers,
                scheduler=scheduler,
            )
        except PlannerError as exc:
            err.print(f"[red]{_safe(exc)}[/]")
            raise typer.Exit(EXIT_BOOK) from None
    return result


def _print_plan(result, elapsed: float, written: list[Path], exact: bool = False) -> None:
    from planner.orders import FAILED_STATUSES

    s = result.summary
    planned = s[s["status"] == "optimal"]
    table = Table(title=f"Plan: {len(planned)} accounts with trades")
    for col in (
        "account",
        "model",
        "decision",
        "orders",
        "TE before",
        "TE after",
        "turnover",
        "est cost",
        "est tax",
        "status",
    ):
        table.add_column(
            col,
            justify="right" if col not in ("account", "model", "decision", "status") else "left",
        )
    order_counts = result.orders.groupby("account_id").size()
    shown = s[s["status"] != "no_trigger"]
    for row in shown.head(TABLE_ROWS).itertuples():
        table.add_row(
            _safe(row.account_id),
            _safe(row.model),
            row.decision,
            str(int(order_counts.get(row.account_id, 0))),
            f"{row.te_before:.2%}" if row.te_before == row.te_before else "",
            f"{row.te_after:.2%}" if row.te_after == row.te_after else "",
            f"{row.turnover:.1%}",
            _money(row.est_cost),
            _money(row.est_tax),
            row.status,
        )
    console.print(table)
    if len(shown) > TABLE_ROWS:
        console.print(f"... and {len(shown) - TABLE_ROWS} more in {_safe(written[2])}")
    t = result.totals()
    failed = s[s["status"].isin(FAILED_STATUSES)]
    for row in failed.itertuples():
        err.print(
            f"[yellow]{_safe(row.account_id)}: {row.status}: {_safe(row.message)}[/]",
            highlight=False,
        )
    console.print(
        f"[bold]Totals[/]: {int(t['accounts'])} accounts, {int(t['planned'])} planned, "
        f"{int(t['failed'])} failed, {int(t['orders'])} orders; "
        f"buys {_money(t['buy_value'], 0)}, sells {_money(t['sell_value'], 0)}, "
        f"est. cost {_money(t['est_cost'])}, est. tax {_money(t['est_tax'])}; "
        f"{elapsed:.1f} s"
    )
    if exact:
        from planner.exact import NOTE

        kept = int(planned["message"].fillna("").str.startswith(NOTE).sum())
        console.print(
            f"[bold]Exact mode[/]: {len(planned) - kept} accounts planned to SCIP's optimum; "
            f"{kept} not, SCIP having failed, stopped at its time limit or done worse than the "
            "heuristic (each one's message says which)"
        )
    if result.returns is not None and len(result.returns):
        from planner.returns import return_totals

        r = return_totals(result.returns)
        console.print(
            f"[bold]Tax year[/]: {int(r['returns'])} returns, capital-gains tax "
            f"{_money(r['tax_before'])} before the plan, {_money(r['tax_after'])} after; "
            f"loss carried forward {_money(r['carryforward_out'], 0)}"
        )
    console.print(f"wrote {_safe(', '.join(str(p) for p in written))}")


def _money(value: float, decimals: int = 2) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{decimals}f}"


# Commands in their own modules, which import this one's helpers (hence at the end).
from planner.cli_whatif import whatif  # noqa: E402

app.command()(whatif)

from planner import cli_operations  # noqa: E402

app.command("reconcile")(cli_operations.reconcile)
app.command("report")(cli_operations.report)
app.command("notices")(cli_operations.notices)

from planner.cli_simulate import simulate  # noqa: E402

app.command()(simulate)


def main() -> None:  # pragma: no cover - the console script
    try:
        app()
    except PlannerError as exc:
        err.print(f"[red]{_safe(exc)}[/]")
        sys.exit(EXIT_BOOK)
