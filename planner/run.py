"""Book -> triggers -> problem -> solve -> plan: the planner's main entry point.

``plan(book, as_of=...)`` evaluates every account's trigger, groups the triggered accounts
by model and lot-slot bucket, compiles one template per group, solves each account, rounds
to executable shares and returns three DataFrames: orders, lot sales and a per-account
summary. One failing account is reported in the summary and never stops the batch.
"""

from __future__ import annotations

import gc
import os
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd

from planner import harvest, tax
from planner.decisions import Decision
from planner.domain import Account, Book
from planner.errors import ConfigError, InfeasibleError, MissingExtraError, RuleViolationError
from planner.households import (
    HouseholdTrades,
    household_harvests,
    household_order,
    planning_chunks,
)
from planner.orders import (
    AccountOutcome,
    ChunkResult,
    PlanResult,
    account_outcome,
    assemble,
    failed_outcome,
    pack,
)
from planner.pool import Failed, Lost, load_kernels, run_tasks, single_threaded_blas
from planner.positions import weights_and_values
from planner.program.inputs import (
    Universe,
    build_inputs,
    slot_bucket,
    slots_needed,
    universe_for,
    year_to_date,
)
from planner.program.objective import MarketImpact, Objective, default_objective
from planner.program.problem import Template, constraints_for
from planner.program.risk import RiskModel, risk_model
from planner.returns import returns_frame
from planner.rounding import RELIEF_METHODS, to_shares
from planner.search import EFFORTS, solve_account, solve_capped
from planner.search_tax import in_regime, plan_objective
from planner.solvers import DEFAULT_SOLVERS
from planner.triggers import evaluate_account


@dataclass(frozen=True)
class PlanOptions:
    """Knobs of a planning run.

    ``tracking_error_value`` (fraction of V worth one pp^2 of tracking variance) defaults to
    the book's setting; ``objective`` overrides the whole objective. ``relief`` picks lots:
    ``optimal`` (the optimiser's choice) or a fixed method applied to its per-security sales.
    ``turnover_cap`` and ``max_weight``/``min_weight`` are fractions of account value.
    ``include_untriggered`` plans every account (what-if), not only triggered ones;
    ``force_full`` plans a full rebalance to target whatever the trigger asked for.
    ``exact`` solves each account's mixed-integer program with SCIP, within
    ``exact_time_limit`` seconds (default :data:`planner.exact.TIME_LIMIT_S`); where SCIP
    proves no optimum the account keeps the heuristic's plan, noted (:mod:`planner.exact`).
    """

    tracking_error_value: float | None = None
    objective: Objective | None = None
    solvers: tuple[str, ...] = DEFAULT_SOLVERS
    relief: str = "optimal"
    turnover_cap: float | None = None
    max_weight: float | None = None
    min_weight: float | None = None
    include_untriggered: bool = False
    exact: bool = False
    exact_time_limit: float | None = None
    min_trade_passes: int = 3
    effort: str = "standard"
    market_impact: float | None = None
    force_full: bool = False

    def __post_init__(self) -> None:
        if self.effort not in EFFORTS:
            raise ConfigError(f"effort {self.effort!r}: expected one of {', '.join(EFFORTS)}")
        if self.exact_time_limit is not None and not self.exact_time_limit > 0:
            raise ConfigError(
                f"exact_time_limit {self.exact_time_limit!r}: expected a positive number of seconds"
            )
        if self.relief not in RELIEF_METHODS:
            raise ConfigError(f"relief method {self.relief!r}: expected one of {RELIEF_METHODS}")
        for name in ("turnover_cap", "min_weight", "max_weight"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(
                    f"{name} {value!r}: expected a fraction of account value in [0, 1]"
                )
        if (
            self.min_weight is not None
            and self.max_weight is not None
            and self.min_weight > self.max_weight
        ):
            raise ConfigError(f"min_weight {self.min_weight} is above max_weight {self.max_weight}")


@dataclass(frozen=True, eq=False)
class RunSpec:
    """Everything a worker needs besides account data: picklable, computed once per run.

    ``universes`` maps a model to its traded securities; ``risks`` maps a universe's symbols
    to its risk model; ``token`` keys the per-process template cache. ``decisions`` are the
    trigger decisions, or ``None`` when each chunk decides its own accounts (a pooled run:
    the workers then decide in parallel what the parent would decide alone).
    """

    as_of: date
    options: PlanOptions
    objective: Objective
    decisions: dict[str, Decision] | None
    universes: dict[str, Universe]
    risks: dict[tuple[str, ...], RiskModel]
    hold_lt_days: int
    token: str


_TEMPLATES: dict[tuple, Template] = {}
"""Compiled templates of this process, keyed by (run token, symbols, slots)."""


def prepare(
    book: Book, as_of: date, ids: Sequence[str], options: PlanOptions, decide_now: bool = True
) -> RunSpec:
    """Trigger decisions (unless ``decide_now`` is false: see :class:`RunSpec`), universes
    and risk models of a run (in the parent process)."""
    te_value = options.tracking_error_value
    if te_value is None:
        te_value = book.settings.tracking_error_value
    objective = options.objective or default_objective(te_value)
    if options.market_impact:
        objective = objective + MarketImpact(options.market_impact)
    decisions = decide(book, as_of, ids) if decide_now else None
    by_model: dict[str, list[str]] = {}
    for a in ids:
        by_model.setdefault(book.accounts[a].model, []).append(a)
    classes = {s: sec.asset_class for s, sec in book.securities.items()}
    # One estimate over every security of the book, then restricted to each universe, so an
    # account's plan does not depend on which other accounts share its run.
    full = risk_model(book.prices, sorted(book.securities), classes)
    universes, risks = {}, {}
    for model_name in sorted(by_model):
        universe = universe_for(book, book.models[model_name])
        universes[model_name] = universe
        if universe.symbols not in risks:
            risks[universe.symbols] = full.subset(universe.symbols)
    token = f"{id(book)}-{time.time_ns()}"
    return RunSpec(
        as_of, options, objective, decisions, universes, risks, book.settings.hold_lt_days, token
    )


def template_for(
    spec: RunSpec,
    book: Book,
    universe: Universe,
    slots: int,
    account: Account | None = None,
) -> Template:
    """The compiled template of a universe, a slot count and the gain limits ``account``
    has (cached per process and run); without ``account``, one with every limit."""
    gain_budget = account is None or (account.taxable and account.gain_budget is not None)
    st_gain_cap = account is None or (account.taxable and account.st_gain_cap is not None)
    key = (spec.token, universe.symbols, slots, gain_budget, st_gain_cap)
    if key not in _TEMPLATES:
        if len(_TEMPLATES) > 64:
            _TEMPLATES.clear()
        has_min = bool(np.any(universe.min_trade_value > 0))
        _TEMPLATES[key] = Template(
            universe.symbols,
            universe.asset_classes,
            slots,
            spec.risks[universe.symbols],
            spec.objective,
            constraints_for(
                min_trade=has_min,
                hold_lt_days=spec.hold_lt_days,
                gain_budget=gain_budget,
                st_gain_cap=st_gain_cap,
                turnover_cap=spec.options.turnover_cap,
                min_weight=spec.options.min_weight,
                max_weight=spec.options.max_weight,
            ),
            spec.options.solvers,
        )
    return _TEMPLATES[key]


def plan_chunk(book: Book, spec: RunSpec, account_ids: Sequence[str]) -> ChunkResult:
    """Plan a chunk of accounts; ``book`` needs only these accounts (see Book.subset).

    A chunk holds whole tax returns and, with the household wash-sale scope, whole
    households (see :func:`planning_chunks`). The accounts of a return are planned in
    turn, each seeing what the earlier ones realised (the year's netting and deduction are
    the return's). With the household scope, a household's accounts are planned in turn,
    taxable ones first: a later account may not buy a wash group in which an earlier
    taxable one sells at a loss, nor sell at a loss a group an earlier one buys. Otherwise
    two accounts of one household could wash each other's losses in the same plan (a
    loss washed by an IRA buy is lost for good, Rev. Rul. 2008-5).
    """
    decisions = chunk_decisions(book, spec, account_ids)
    household_scope = book.settings.wash_sale_scope == "household"
    order = (lambda a: household_order(book, a)) if household_scope else None
    out = []
    planned: dict[str, HouseholdTrades] = {}
    years: dict[str, tax.YearSoFar] = {}
    for account_id in sorted(account_ids, key=order):
        account = book.accounts[account_id]
        if household_scope and account.household_id not in planned:
            planned[account.household_id] = household_harvests(
                book, account_id, decisions, spec.universes, spec.as_of
            )
        siblings = planned.setdefault(account.household_id, HouseholdTrades())
        return_id = account.return_id
        year = years.get(return_id) if return_id else None
        outcome = _plan_one(
            book,
            spec,
            account_id,
            decisions[account_id],
            siblings if household_scope else None,
            year,
        )
        if household_scope:
            siblings.record(book, account_id, outcome)
        if return_id is not None:
            year = year or year_to_date(book, account_id)
            years[return_id] = year.plus(
                outcome.summary["realized_st"], outcome.summary["realized_lt"]
            )
        out.append(outcome)
    return pack(out)


def chunk_decisions(book: Book, spec: RunSpec, account_ids: Sequence[str]) -> dict[str, Decision]:
    """The trigger decisions of a chunk's accounts: the run's, or decided here."""
    if spec.decisions is not None:
        return spec.decisions
    return decide(book, spec.as_of, account_ids)


def plan_account(
    book: Book,
    spec: RunSpec,
    account_id: str,
    decision: Decision,
    siblings: HouseholdTrades | None = None,
    tax_year: tax.YearSoFar | None = None,
) -> AccountOutcome:
    """Solve one triggered account and turn the solution into output rows; ``siblings``
    are the trades already planned in its household this run, ``tax_year`` its return's
    year before it (default: the year to date)."""
    account = book.accounts[account_id]
    universe = spec.universes[account.model]
    slots = slot_bucket(slots_needed(book, account_id))
    template = template_for(spec, book, universe, slots, account)
    options = spec.options
    inputs = build_inputs(
        book,
        account,
        decision,
        universe,
        slots,
        spec.as_of,
        class_names=template.classes,
        turnover_cap=options.turnover_cap,
        weight_lower=options.min_weight,
        weight_upper=options.max_weight,
        household_buys=siblings.bought if siblings else (),
        household_loss_sales=(
            siblings.sold_at_loss | siblings.reserved_for(book, account_id) if siblings else ()
        ),
        tax_year=tax_year,
    )
    rules = harvest.rules_of(book, account)
    inputs = harvest.with_rules(inputs, rules)
    report = _solve(template, inputs, options)
    # A plan SCIP proved optimal is kept as SCIP planned it; undo_small below still applies.
    capped = (
        None
        if report.solution.solver == "SCIP"
        else harvest.small_harvest_caps(report.inputs, rules, report.solution.sell)
    )
    if capped is not None:
        # Undone by hand below, unless that moves the plan out of its netting regime (its
        # tax then no longer exact): then re-solved with the caps too, and the better kept.
        caps, note = capped
        by_hand = harvest.undo_small(
            report.inputs, rules, report.solution.sell, report.solution.buy
        )
        redone = (
            None
            if in_regime(report.inputs, by_hand[0])
            else solve_capped(template, report, caps, options.effort)
        )
        if redone is not None and plan_objective(
            template, redone.inputs, redone.solution.sell, redone.solution.buy
        ) <= plan_objective(template, report.inputs, *by_hand[:2]):
            report = replace(redone, notes=(*redone.notes, note))
    # Whatever small harvest is left (a capped solve that broke a rule), undone by hand.
    sell, buy, notes = harvest.undo_small(
        report.inputs, rules, report.solution.sell, report.solution.buy
    )
    if notes:
        report = replace(report, notes=(*report.notes, *notes))
    executable = to_shares(
        report.inputs,
        sell,
        buy,
        whole_shares=not account.fractional_shares,
        method=options.relief,
        sellable=template.sellable(report.inputs),
    )
    return account_outcome(
        book, account_id, account.model, decision, report.inputs, template.risk, report, executable
    )


def _solve(template: Template, inputs, options: PlanOptions):
    if options.exact:
        from planner.exact import TIME_LIMIT_S, exact_mode

        limit = options.exact_time_limit or TIME_LIMIT_S
        return exact_mode(template, inputs, limit, options.min_trade_passes, options.effort)
    return solve_account(template, inputs, options.min_trade_passes, options.effort)


def decide(
    book: Book,
    as_of: date,
    account_ids: Iterable[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Decision]:
    """Trigger decision of every (or each listed) account; the book's weights and values
    are computed once, vectorised. ``progress(done, total)`` is called every 500 accounts
    and at the end."""
    rows, values = _weights_and_values(book)
    ids = list(account_ids) if account_ids is not None else sorted(book.accounts)
    out = {}
    for k, account_id in enumerate(ids, 1):
        account = book.accounts[account_id]
        out[account_id] = evaluate_account(
            account,
            book.models[account.model],
            rows[account_id],
            as_of,
            float(values.get(account_id, 0.0)),
        )
        if progress and (k % 500 == 0 or k == len(ids)):
            progress(k, len(ids))
    return out


_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Per book (while it lives): each account's class weights and value, for the triggers."""


def _weights_and_values(book: Book) -> tuple[dict, pd.Series]:
    """Class weights per account (row dicts) and account values, computed once per book
    and process: chunks that decide their own accounts share them, and forked workers
    inherit them when the parent built them first."""
    if book not in _WEIGHTS:
        weights, values = weights_and_values(book)
        _WEIGHTS[book] = (weights.to_dict("index"), values)
    return _WEIGHTS[book]


def plan(
    book: Book,
    as_of: date | None = None,
    accounts: Sequence[str] | None = None,
    options: PlanOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    executor: str = "auto",
    workers: int | None = None,
    chunk_size: int = 50,
    scheduler: str | None = None,
) -> PlanResult:
    """Plan every triggered account (or the listed ones) of ``book``; see the module doc.

    ``executor``: ``serial``, ``process`` (a local process pool over all cores), ``dask``
    (a Dask cluster at ``scheduler``, or a local one), or ``auto`` (process pool for books
    of a few hundred accounts or more on a multi-core machine, else serial).
    """
    as_of = as_of or book.settings.as_of or date.today()
    options = options or PlanOptions()
    ids = sorted(book.accounts) if accounts is None else sorted(set(accounts))
    unknown = [a for a in ids if a not in book.accounts]
    if unknown:
        raise ConfigError(f"unknown account ids: {', '.join(unknown)}")
    pool = pooled(executor, len(ids), workers, scheduler)
    spec = prepare(book, as_of, ids, options, decide_now=not pool)
    outcomes = run_chunks(book, spec, ids, executor, workers, chunk_size, scheduler, progress)
    result = assemble(outcomes)
    return replace(result, returns=returns_frame(book, result.summary))


def _plan_one(
    book: Book,
    spec: RunSpec,
    account_id: str,
    decision: Decision,
    siblings: HouseholdTrades | None = None,
    tax_year: tax.YearSoFar | None = None,
) -> AccountOutcome:
    model_name = book.accounts[account_id].model
    if not decision.fire and not spec.options.include_untriggered:
        opportunity = _harvest_trigger(book, spec, account_id, decision, siblings)
        if opportunity is None:
            return failed_outcome(account_id, model_name, decision, "no_trigger", "")
        decision = opportunity
    if not decision.fire or (spec.options.force_full and decision.mode != "full"):
        decision = _full_decision(decision)
    start = time.perf_counter()
    try:
        return plan_account(book, spec, account_id, decision, siblings, tax_year)
    except InfeasibleError as exc:
        return failed_outcome(account_id, model_name, decision, "infeasible", str(exc))
    except RuleViolationError as exc:
        return failed_outcome(account_id, model_name, decision, "rule_violation", str(exc))
    except Exception as exc:  # one bad account never stops the batch
        # The time goes to timings.csv, not the message: summary.csv stays the same on re-run.
        elapsed = (time.perf_counter() - start) * 1e3
        message = f"{type(exc).__name__}: {exc}"
        return failed_outcome(account_id, model_name, decision, "error", message, solve_ms=elapsed)


def _harvest_trigger(
    book: Book,
    spec: RunSpec,
    account_id: str,
    decision: Decision,
    siblings: HouseholdTrades | None,
) -> Decision | None:
    """The harvest-only decision of an untriggered account that harvests opportunistically
    and has a loss worth harvesting (see :mod:`planner.harvest`), else ``None``."""
    account = book.accounts[account_id]
    if harvest.rules_of(book, account).mode != "opportunistic":
        return None
    reserved = siblings.reserved_for(book, account_id) if siblings else frozenset()
    universe = spec.universes[account.model]
    weights = _weights_and_values(book)[0][account_id]
    return harvest.harvest_decision(
        book, account, universe, spec.as_of, decision, weights, reserved
    )


def _full_decision(decision: Decision) -> Decision:
    if decision.fire:
        return replace(
            decision,
            mode="full",
            rebalance_to="target",
            class_bounds={},
            reasons=(*decision.reasons, "what-if: full rebalance to target"),
        )
    return replace(
        decision,
        fire=True,
        mode="full",
        rebalance_to="target",
        reasons=(*decision.reasons, "what-if: planned without a trigger"),
    )


# -- executors ------------------------------------------------------------------------------

EXECUTORS = ("auto", "serial", "process", "dask")
AUTO_PROCESS_MIN_ACCOUNTS = 300
"""Accounts in a run from which ``auto`` uses a local process pool: below it, forking and
setting up the workers costs more than they save (docs/performance.md)."""

_FORKED: tuple[Book, RunSpec] | None = None


def _crashed(book: Book, spec: RunSpec, chunk: Sequence[str], why: str):
    """The rows of a chunk that could not be planned: every account an error."""
    decisions = chunk_decisions(book, spec, chunk)
    message = f"chunk not planned: {why}"
    return pack(
        [failed_outcome(a, book.accounts[a].model, decisions[a], "error", message) for a in chunk]
    )


def pooled(executor: str, accounts: int, workers: int | None, scheduler: str | None) -> bool:
    """Whether a run of ``accounts`` goes to worker processes (``process``, ``dask``, or
    ``auto`` with a scheduler or at least :data:`AUTO_PROCESS_MIN_ACCOUNTS` accounts on a
    multi-core machine)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor {executor!r}: expected one of {EXECUTORS}")
    if executor == "auto":
        cores = workers or os.cpu_count() or 1
        return bool(scheduler) or (accounts >= AUTO_PROCESS_MIN_ACCOUNTS and cores > 1)
    return executor != "serial"


def run_chunks(
    book: Book,
    spec: RunSpec,
    ids: Sequence[str],
    executor: str = "auto",
    workers: int | None = None,
    chunk_size: int = 50,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ChunkResult]:
    if executor == "auto":
        executor = "serial"
        if pooled("auto", len(ids), workers, scheduler):
            executor = "dask" if scheduler else "process"
    elif executor not in EXECUTORS:
        raise ConfigError(f"executor {executor!r}: expected one of {EXECUTORS}")
    workers = workers or os.cpu_count() or 1
    chunks = planning_chunks(book, ids, chunk_size)
    if executor == "serial":
        return _serial(book, spec, chunks, len(ids), progress)
    if executor == "process":
        return _process(book, spec, chunks, len(ids), workers, progress)
    return _dask(book, spec, chunks, len(ids), workers, scheduler, progress)


def _serial(book, spec, chunks, total, progress):
    out: list[ChunkResult] = []
    for chunk in chunks:
        out.append(plan_chunk(book, spec, chunk))
        if progress:
            progress(sum(c.accounts for c in out), total)
    return out


def _fork_chunk(chunk: list[str]) -> ChunkResult:
    book, spec = _FORKED
    return plan_chunk(book, spec, chunk)


def _process(book, spec, chunks, total, workers, progress):
    """Forked worker processes (see :mod:`planner.pool`): they inherit the book
    copy-on-write and chunks travel as ids. A worker that dies costs only its own chunk,
    which is tried once more and then reported account by account."""
    global _FORKED
    _FORKED = (book, spec)
    out: list[ChunkResult] = []
    # The book's objects move to the permanent generation first: a worker's collections
    # then never traverse (and copy-on-write) the heap it inherited (docs/performance.md).
    gc.freeze()
    try:
        load_kernels()
        done = run_tasks(_fork_chunk, chunks, workers, start=single_threaded_blas)
        for index, outcome in done:
            if isinstance(outcome, Lost):
                why = f"its worker died planning it twice (exit code {outcome.exit_code})"
                out.append(_crashed(book, spec, chunks[index], why))
            elif isinstance(outcome, Failed):
                out.append(_crashed(book, spec, chunks[index], outcome.message))
            else:
                out.append(outcome)
            if progress:
                progress(sum(c.accounts for c in out), total)
    finally:
        _FORKED = None
        gc.unfreeze()
    return out


def _dask_chunk(book: Book, spec: RunSpec, chunk: list[str]) -> ChunkResult:
    single_threaded_blas()
    return plan_chunk(book, spec, chunk)


def _dask(book, spec, chunks, total, workers, scheduler, progress):
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError as exc:
        raise MissingExtraError("the Dask executor", "dask", "distributed") from exc
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    out: list[ChunkResult] = []
    try:
        spec_future = client.scatter(spec, broadcast=True)
        futures = {}
        for chunk in chunks:
            future = client.submit(_dask_chunk, book.subset(chunk), spec_future, chunk, pure=False)
            futures[future] = chunk
        for future in dask_completed(list(futures)):
            try:
                out.append(future.result())
            except Exception as exc:
                out.append(_crashed(book, spec, futures[future], repr(exc)))
            if progress:
                progress(sum(c.accounts for c in out), total)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return out
