"""Forked worker processes that hand back their tasks one at a time.

:func:`run_tasks` gives each worker one task at a time over its own pipe, so the parent
always knows which task a worker is on: a worker that dies (killed, out of memory, a crash
in compiled code) costs only its own task, which is tried once more on a fresh worker and
then reported as lost; the other tasks go on. Workers are forked, so they inherit the
parent's memory (the book) copy-on-write.

A planning process first limits BLAS to one thread and loads the numba kernels
(:func:`single_threaded_blas`, :func:`load_kernels`), so that forked workers inherit them.

A worker exits when its parent dies (``PR_SET_PDEATHSIG`` on Linux, and a watch on its
parent's pid elsewhere): a killed ``rebalance plan`` leaves no worker behind. When the
parent stops on an exception (Ctrl-C among them), the workers are terminated before it
goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

TRIES = 2
"""Times a task is given to a worker before it counts as lost."""


@dataclass(frozen=True)
class Lost:
    """A task whose worker died every time it tried it (``exit_code`` of the last, negative
    for a signal)."""

    exit_code: int | None


@dataclass(frozen=True)
class Failed:
    """A task that raised an exception in its worker (the text of the exception)."""

    message: str


def run_tasks(
    job: Callable, tasks: Sequence, workers: int, start: Callable[[], None] | None = None
) -> Iterator[tuple[int, object]]:
    """``(index, job(tasks[index]))`` for every task as it completes, on ``workers``
    forked processes (``start`` runs in each as it starts); a :class:`Failed` or
    :class:`Lost` stands for the result of a task that did not complete.

    Each worker holds :data:`AHEAD` tasks: the one it works on and the next, so that it
    never waits for the parent. Its pipe keeps them in order, so the first of a dead
    worker's tasks is the one it died on; the others go back to the queue untried."""
    context = mp.get_context("fork")
    todo = deque(range(len(tasks)))
    tries = [0] * len(tasks)
    crew = [_Worker(context, job, start) for _ in range(min(workers, len(tasks)))]
    try:
        while todo or any(w.held for w in crew):
            for worker in crew:
                while todo and len(worker.held) < AHEAD:
                    worker.give(todo.popleft(), tasks)
            ready = wait([w.connection for w in crew if w.held] + [w.sentinel for w in crew])
            for worker in list(crew):
                if worker.connection in ready and worker.held:
                    try:
                        outcome = worker.connection.recv()
                    except (EOFError, OSError):
                        pass  # it died: seen below
                    else:
                        index = worker.held.popleft()
                        yield index, outcome
                        continue
                if worker.sentinel in ready or not worker.process.is_alive():
                    crew.remove(worker)
                    worker.close()
                    if worker.held:
                        index = worker.held.popleft()  # the task it died on
                        tries[index] += 1
                        if tries[index] < TRIES:
                            todo.appendleft(index)
                        else:
                            yield index, Lost(worker.process.exitcode)
                        todo.extendleft(reversed(worker.held))  # queued behind it, untried
                    if todo:
                        crew.append(_Worker(context, job, start))
    finally:
        for worker in crew:
            worker.close()


AHEAD = 2
"""Tasks a worker holds at a time (see :func:`run_tasks`)."""


class _Worker:
    """One forked process, its end of a pipe, and the tasks it holds (in order)."""

    def __init__(self, context, job: Callable, start: Callable[[], None] | None):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, job, start, os.getpid()), daemon=True
        )
        self.process.start()
        self.sentinel = self.process.sentinel
        self.held: deque[int] = deque()
        child.close()

    def give(self, index: int, tasks: Sequence) -> None:
        """Send task ``index``; a worker that died meanwhile is found by its sentinel."""
        self.held.append(index)
        with contextlib.suppress(OSError):
            self.connection.send(tasks[index])

    def close(self) -> None:
        """Stop the process (it may be done or dead already) and reap it."""
        with contextlib.suppress(OSError):
            self.connection.close()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _serve(connection: Connection, job: Callable, start, parent: int) -> None:
    """A worker's life: tasks in, results out, until the pipe closes."""
    exit_with_parent(parent)
    # Ctrl-C reaches the whole process group: the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if start is not None:
        start()
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        try:
            outcome = job(task)
        except Exception as exc:  # noqa: BLE001 - reported as the task's outcome
            outcome = Failed(f"{type(exc).__name__}: {exc}")
        connection.send(outcome)


def exit_with_parent(parent: int) -> None:
    """Make this process die with its parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: Linux
    except (OSError, AttributeError):
        _watch(parent)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _watch(parent: int) -> None:
    """Where prctl is missing: a thread that ends the process once its parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# -- what a planning process sets up first ---------------------------------------------------


def single_threaded_blas() -> None:
    """One BLAS/OpenMP thread in this process. Each solve is small and a BLAS thread pool
    only spins on it, and the planner's own parallelism is one worker process per core
    (see docs/performance.md). Called where processes start: the command line, each pool
    worker, each Dask chunk."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def load_kernels() -> None:
    """Compile the solver's and the rounding's numba kernels, or load them from numba's
    cache: a fresh install compiles them once, which takes a while. Done before a pool
    starts, so that forked workers inherit them rather than each compiling its own."""
    from planner import rounding_kernel
    from planner.solvers import lotqp

    lotqp.load_kernel()
    rounding_kernel.load_kernel()


def start_loading_kernels() -> Callable[[], None]:
    """Start :func:`load_kernels` with the rounding kernel in a forked child, which puts it
    in numba's cache while this process compiles (or loads) the solver's: on a fresh
    install the two compiles overlap on two cores (numba compiles one function at a time
    per process). Returns the call that finishes the job here. Only for a process without
    other threads (a fork copies the calling thread alone): the command line, at its
    start."""
    from planner import rounding_kernel

    parent = os.getpid()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            exit_with_parent(parent)
            rounding_kernel.load_kernel()
            code = 0
        finally:
            os._exit(code)

    def finish() -> None:
        from planner.solvers import lotqp

        lotqp.load_kernel()
        os.waitpid(child, 0)
        load_kernels()  # the rounding kernel from the cache the child wrote

    return finish
