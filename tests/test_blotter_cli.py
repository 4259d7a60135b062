"""The blotter from the command line, end to end on demo accounts: plan and save, review,
approve (maker-checker), hold back accounts in the market, export, and bad inputs refused
with a clear message and exit code 1, changing nothing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from planner.cli import app

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
ACCOUNTS = "A0004,A0005,A0006"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _batch_id(output: str) -> str:
    match = re.search(r"Saved batch (B\S+):", output)
    assert match, output
    return match.group(1)


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REBALANCE_DB", raising=False)
    return Path(shutil.copytree(DEMO, tmp_path / "book"))


def _plan(book, db, *extra):
    return run("plan", book, "--accounts", ACCOUNTS, "--out", "out", "--db", db, *extra)


def test_plan_review_approve_export(book, store_url, tmp_path):
    first = _plan(book, store_url, "--save", "--by", "alice")
    assert first.exit_code == 0, first.output
    batch_id = _batch_id(first.output)
    files = {f: (tmp_path / "out" / f).read_bytes() for f in ("orders.csv", "summary.csv")}
    second = _plan(book, store_url, "--save", "--by", "alice")
    assert second.exit_code == 0, second.output
    other = _batch_id(second.output)
    assert other != batch_id
    # plan's own files do not change with saving.
    assert {f: (tmp_path / "out" / f).read_bytes() for f in files} == files

    listed = run("blotter", "list", "--db", store_url, "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert {r["batch_id"] for r in rows} == {batch_id, other}
    assert {(r["status"], r["as_of"], r["accounts"]) for r in rows} == {
        ("proposed", "2026-11-20", 3)
    }

    shown = run("blotter", "show", batch_id, "--db", store_url, "--flagged", "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["batch_id"] == batch_id and data["proposer"] == "alice"
    assert data["orders"] and all(o["flags"] for o in data["orders"])
    assert run("blotter", "show", batch_id, "--db", store_url).exit_code == 0

    refused = run("blotter", "approve", batch_id, "--by", "alice", "--db", store_url)
    assert refused.exit_code == 1
    assert "alice proposed it and cannot approve it" in refused.output
    approved = run("blotter", "approve", batch_id, "--by", "bob", "--db", store_url)
    assert approved.exit_code == 0, approved.output
    rejected = run(
        "blotter", "reject", other, "--by", "bob", "--why", "duplicate", "--db", store_url
    )
    assert rejected.exit_code == 0, rejected.output

    # The approved batch's accounts are held back until it is reconciled.
    again = _plan(book, store_url)
    assert again.exit_code == 0, again.output
    summary = (tmp_path / "out" / "summary.csv").read_text()
    assert summary.count(",pending_batch,") == 3 and batch_id in summary
    anyway = _plan(book, store_url, "--ignore-pending")
    assert anyway.exit_code == 0
    assert (tmp_path / "out" / "summary.csv").read_bytes() == files["summary.csv"]

    for fmt in ("csv", "xlsx", "fix"):
        out = tmp_path / f"orders.{fmt}"
        exported = run(
            "blotter", "export", batch_id, "--format", fmt, "--out", out, "--db", store_url
        )
        assert exported.exit_code == 0, exported.output
        assert out.stat().st_size > 0
    assert batch_id in (tmp_path / "orders.csv").read_text()
    late = run("blotter", "reject", batch_id, "--by", "bob", "--why", "x", "--db", store_url)
    assert late.exit_code == 1 and "is exported; it cannot become rejected" in late.output

    audit = run("blotter", "audit", batch_id, "--db", store_url, "--json")
    actions = [(e["actor"], e["action"]) for e in json.loads(audit.output)]
    assert actions[:2] == [("alice", "propose"), ("bob", "approve")]
    assert [a for _, a in actions[2:]] == ["export"] * 3


def test_bad_inputs_change_nothing(book, tmp_path):
    db = "store.db"  # a plain path is a SQLite file
    saved = _plan(book, db, "--save", "--by", "alice")
    batch_id = _batch_id(saved.output)
    before = run("blotter", "audit", "--db", db, "--json").output

    unknown = run("blotter", "show", "B-nope", "--db", db)
    assert unknown.exit_code == 1 and "no batch B-nope in the store" in unknown.output
    assert run("blotter", "approve", "B-nope", "--by", "bob", "--db", db).exit_code == 1
    early = run("blotter", "export", batch_id, "--format", "csv", "--out", "o.csv", "--db", db)
    assert early.exit_code == 1 and "only an approved batch is exported" in early.output
    assert not (tmp_path / "o.csv").exists()
    usage = run("blotter", "export", batch_id, "--format", "pdf", "--out", "o.pdf", "--db", db)
    assert usage.exit_code == 2

    (book / "lots.csv").write_text((book / "lots.csv").read_text() + "\n")
    stale = run("blotter", "approve", batch_id, "--by", "bob", "--db", db)
    assert stale.exit_code == 1
    assert "changed since the batch was planned" in stale.output
    assert run("blotter", "audit", "--db", db, "--json").output == before
    listed = json.loads(run("blotter", "list", "--db", db, "--json").output)
    assert [b["status"] for b in listed] == ["proposed"]


def test_default_store_and_plain_plan(book, tmp_path):
    # Without --save, --db or $REBALANCE_DB, a plan in a folder without a store makes none.
    plain = run("plan", book, "--accounts", ACCOUNTS, "--out", "out")
    assert plain.exit_code == 0 and not (tmp_path / "rebalance.db").exists()
    saved = run("plan", book, "--accounts", ACCOUNTS, "--out", "out", "--save", "--by", "al")
    assert saved.exit_code == 0, saved.output
    assert (tmp_path / "rebalance.db").exists()
    listed = json.loads(run("blotter", "list", "--json").output)
    assert [b["batch_id"] for b in listed] == [_batch_id(saved.output)]
    bad = run("blotter", "list", "--db", "nosuchdriver://x")
    assert bad.exit_code == 1 and "not a usable database URL" in bad.output
