"""planner.pool: forked workers that cost only their own task when they die, and never
outlive their parent; and the run and the command on top of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from planner.pool import Failed, Lost, run_tasks

ROOT = Path(__file__).resolve().parents[1]


def _square(task):
    kind, value = task
    if kind == "die":
        os._exit(9)
    if kind == "die_once":
        marker = Path(value)
        if not marker.exists():
            marker.write_text("died")
            os._exit(9)
        return "survived"
    if kind == "raise":
        raise ValueError("bad task")
    return value * value


def _gone(pids, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_every_task_comes_back_once():
    tasks = [("square", k) for k in range(20)]
    results = dict(run_tasks(_square, tasks, workers=2))
    assert results == {k: k * k for k in range(20)}


def test_a_dead_worker_costs_only_its_own_task(tmp_path):
    tasks = [("square", 3), ("die", 0), ("square", 4), ("die_once", tmp_path / "m"), ("raise", 0)]
    tasks += [("square", k) for k in range(5, 15)]
    results = dict(run_tasks(_square, tasks, workers=2))
    assert results[0] == 9 and results[2] == 16
    assert isinstance(results[1], Lost) and results[1].exit_code == 9  # tried twice
    assert results[3] == "survived"  # died once, then planned on a fresh worker
    assert isinstance(results[4], Failed) and "bad task" in results[4].message
    assert all(results[k] == (k - 0) ** 2 for k in range(5, 15))


def test_workers_die_with_their_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from planner.pool import run_tasks

            def slow(task):
                time.sleep(60)

            for _ in run_tasks(slow, [1, 2], workers=2):
                pass
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        children = []
        while time.monotonic() < deadline and len(children) < 2:
            children = psutil.Process(parent.pid).children()
            time.sleep(0.1)
        assert len(children) == 2
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _gone([c.pid for c in children])
    finally:
        parent.kill()


def test_a_dead_worker_in_a_plan_fails_only_its_chunk(monkeypatch):
    import planner.run
    from planner.benchmark_book import generate_benchmark_book

    book = generate_benchmark_book(12, n_securities=8, lots_per_holding=2, seed=5)
    real = planner.run.plan_chunk

    def poisoned(book, spec, chunk):
        if "B000004" in chunk:
            os._exit(11)
        return real(book, spec, chunk)

    monkeypatch.setattr(planner.run, "plan_chunk", poisoned)
    result = planner.run.plan(book, executor="process", workers=2, chunk_size=3)
    status = result.summary.set_index("account_id")["status"]
    lost = ["B000003", "B000004", "B000005"]  # the chunk holding B000004
    assert (status[lost] == "error").all()
    assert "worker died" in result.summary.set_index("account_id").loc["B000004", "message"]
    assert not (status.drop(lost) == "error").any()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_command_stops_on_a_signal_and_leaves_nothing(tmp_path, signum):
    from planner.benchmark_book import generate_benchmark_book
    from planner.io import write_book

    book = tmp_path / "book"
    write_book(generate_benchmark_book(1500, n_securities=40, lots_per_holding=8, seed=2), book)
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from planner.cli import main; main()", "plan", str(book)]
    command += ["--out", str(out), "--executor", "process", "--workers", "2"]
    run = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        children = []
        while time.monotonic() < deadline and len(children) < 2:
            if run.poll() is not None:
                pytest.fail(f"the plan ended before it could be stopped: {run.stderr.read()}")
            children = psutil.Process(run.pid).children()
            time.sleep(0.2)
        assert len(children) >= 2, "no workers started"
        time.sleep(1.0)
        run.send_signal(signum)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 128 + signum, stderr
    lines = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and signal.Signals(signum).name in lines[0]
    assert _gone([c.pid for c in children])
    leftovers = [p.name for p in out.iterdir() if p.name != ".rebalance.lock"]
    assert leftovers == []
