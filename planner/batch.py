"""Running chunks of accounts: in process, on a local process pool, or on Dask.

Workers get account data (a sub-book per chunk, or the whole book inherited by fork) and the
run's :class:`~planner.plan.RunSpec`; never cvxpy objects, which do not pickle once solved.
Each worker compiles a model's template once and re-uses it for every account it plans.
A chunk that dies with its worker is reported account by account as an error.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from planner.domain import Book
from planner.errors import ConfigError, MissingExtraError
from planner.plan import ChunkResult, RunSpec, _failed, chunk_decisions, pack, plan_chunk

EXECUTORS = ("auto", "serial", "process", "dask")
AUTO_PROCESS_MIN_ACCOUNTS = 300
"""Accounts in a run from which ``auto`` uses a local process pool (fork and set-up cost
about half a second; below this a serial run is quicker)."""

_FORKED: tuple[Book, RunSpec] | None = None


def household_chunks(book: Book, ids: Sequence[str], size: int) -> list[list[str]]:
    """Chunks of about ``size`` accounts. With the household wash-sale scope a household's
    accounts stay in one chunk, because they are planned in turn (see
    :func:`planner.plan.plan_chunk`)."""
    size = max(1, int(size))
    if book.settings.wash_sale_scope != "household":
        return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
    households: dict[str, list[str]] = {}
    for a in ids:
        households.setdefault(book.accounts[a].household_id, []).append(a)
    chunks: list[list[str]] = [[]]
    for h in sorted(households):
        if len(chunks[-1]) >= size:
            chunks.append([])
        chunks[-1].extend(households[h])
    return [c for c in chunks if c]


def _crashed(book: Book, spec: RunSpec, chunk: Sequence[str], exc: BaseException):
    decisions = chunk_decisions(book, spec, chunk)
    return pack(
        [
            _failed(a, book.accounts[a].model, decisions[a], "error", f"worker failed: {exc!r}")
            for a in chunk
        ]
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
    chunks = household_chunks(book, ids, chunk_size)
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


def _fork_chunk(chunk: list[str]) -> list[ChunkResult]:
    book, spec = _FORKED
    return plan_chunk(book, spec, chunk)


def _process(book, spec, chunks, total, workers, progress):
    """A fork-based pool: workers inherit the book copy-on-write, chunks travel as ids."""
    global _FORKED
    _FORKED = (book, spec)
    out: list[ChunkResult] = []
    # The book's objects move to the permanent generation first: a worker's collections
    # then never traverse (and copy-on-write) the heap it inherited, about 8% of a run.
    gc.freeze()
    try:
        context = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_fork_chunk, chunk): chunk for chunk in chunks}
            for future in as_completed(futures):
                try:
                    out.append(future.result())
                except Exception as exc:  # a dead worker fails its chunk, not the run
                    out.append(_crashed(book, spec, futures[future], exc))
                if progress:
                    progress(sum(c.accounts for c in out), total)
    finally:
        _FORKED = None
        gc.unfreeze()
    return out


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
            future = client.submit(plan_chunk, book.subset(chunk), spec_future, chunk, pure=False)
            futures[future] = chunk
        for future in dask_completed(list(futures)):
            try:
                out.append(future.result())
            except Exception as exc:
                out.append(_crashed(book, spec, futures[future], exc))
            if progress:
                progress(sum(c.accounts for c in out), total)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return out
