"""Outlier flags, each rule on its own and all of them on a plan of demo accounts; the
``[blotter]`` settings read from and written to book.toml."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from planner.blotter import flags
from planner.blotter.batch import build_batch
from planner.blotter.flags import FlagContext, OrderFacts, flag_code
from planner.domain import BlotterSettings
from planner.errors import BookError
from planner.io import load_book
from planner.io.write import settings_toml
from planner.run import plan

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
ACCOUNTS = ["A0004", "A0005", "A0006", "A0009"]


@pytest.fixture(scope="module")
def demo():
    book = load_book(DEMO)
    return book, plan(book, accounts=ACCOUNTS, executor="serial")


def _with(book, **blotter):
    settings = replace(book.settings, blotter=replace(book.settings.blotter, **blotter))
    return replace(book, settings=settings)


def _context(book, as_of=None, held=None):
    return FlagContext(book, as_of or book.settings.as_of, held or {})


def _taxable(book) -> str:
    return next(a for a in sorted(book.accounts) if book.accounts[a].taxable)


def test_short_term_gain(demo):
    book, _ = demo
    account = _taxable(book)
    facts = OrderFacts(account, "VTI", "sell", 5000.0, 120.0, (120.0,))
    assert [flag_code(f) for f in flags.short_term_gain(facts, _context(book))] == [
        "short_term_gain"
    ]
    off = _with(book, flag_short_term_gain=False)
    assert list(flags.short_term_gain(facts, _context(off))) == []
    loss = replace(facts, est_st_gain=-5.0)
    assert list(flags.short_term_gain(loss, _context(book))) == []


def test_wash_window_and_dividend_reinvestment(demo):
    book, _ = demo
    account = _taxable(book)
    facts = OrderFacts(account, "VTI", "sell", 5000.0, 0.0, (-40.0, 10.0))
    group = book.securities["VTI"].wash_group
    until = book.settings.as_of + timedelta(days=book.settings.wash_window_days)
    [flag] = flags.wash_window_opened(facts, _context(book))
    assert flag == f"wash_window: loss sale; no buys of wash group {group} until {until}"
    held = {account: {"VTI": 3.0}}
    assert list(flags.dividend_reinvestment(facts, _context(book, held=held))) == []
    reinvested = _with(book, dividend_reinvest=("VTI",))
    [flag] = flags.dividend_reinvestment(facts, _context(reinvested, held=held))
    assert flag.startswith("wash_by_dividend: VTI still held")
    sold_out = {account: {"VTI": 0.0}}
    assert list(flags.dividend_reinvestment(facts, _context(reinvested, held=sold_out))) == []
    gain = replace(facts, lot_gains=(10.0,))
    assert list(flags.wash_window_opened(gain, _context(book))) == []


def test_dust_and_stale_price(demo):
    book, _ = demo
    small = OrderFacts(_taxable(book), "VTI", "buy", 50.0, 0.0, ())
    assert [flag_code(f) for f in flags.dust(small, _context(book))] == ["dust"]
    assert list(flags.dust(replace(small, est_value=500.0), _context(book))) == []
    assert list(flags.stale_price(small, _context(book))) == []
    later = book.settings.as_of + timedelta(days=book.settings.blotter.flag_price_age_days + 1)
    [flag] = flags.stale_price(small, _context(book, as_of=later))
    assert flag.startswith("stale_price: last price of VTI is from")


def test_account_rules(demo):
    book, result = demo
    row = dict(result.summary.set_index("account_id").loc["A0009"]) | {"account_id": "A0009"}
    context = _context(book)
    row_taxed = row | {"est_tax": 6000.0, "value": 100000.0}
    assert [flag_code(f) for f in flags.tax_amount(row_taxed, context)] == ["tax_amount"]
    assert [flag_code(f) for f in flags.tax_fraction(row_taxed, context)] == ["tax_fraction"]
    assert list(flags.tax_amount(row | {"est_tax": -900.0}, context)) == []
    assert [flag_code(f) for f in flags.turnover(row | {"turnover": 0.9}, context)] == ["turnover"]
    assert list(flags.solver_fallback(row | {"solver": "LOTQP"}, context)) == []
    assert [flag_code(f) for f in flags.solver_fallback(row | {"solver": "PIQP"}, context)] == [
        "solver_fallback"
    ]
    assert [flag_code(f) for f in flags.notes(row | {"message": "a note"}, context)] == ["notes"]
    assert [flag_code(f) for f in flags.cash_level(row | {"post_CASH": 0.0}, context)] == [
        "cash_below_floor"
    ]
    assert [flag_code(f) for f in flags.cash_level(row | {"post_CASH": 0.5}, context)] == [
        "cash_above_target"
    ]


def test_batch_of_a_plan(demo):
    book, result = demo
    strict = _with(book, flag_turnover=0.1, dividend_reinvest=("*",), order_type="limit")
    batch = build_batch(
        strict, result, proposer="alice", as_of=book.settings.as_of, options={}, book_path=DEMO
    )
    assert batch.account_ids == tuple(sorted(set(result.orders["account_id"])))
    by_account = {a.account_id: [flag_code(f) for f in a.flags] for a in batch.accounts}
    assert "turnover" in by_account["A0005"]
    assert "outside_bands" in by_account["A0009"]
    assert "notes" in by_account["A0006"]
    codes = {(o.account_id, o.symbol): [flag_code(f) for f in o.flags] for o in batch.orders}
    assert codes[("A0006", "IJR")] == ["wash_window", "wash_by_dividend"]
    # Sells come before buys within an account; order ids follow the sequence.
    for account in batch.account_ids:
        sides = [o.side for o in batch.orders if o.account_id == account]
        assert sides == sorted(sides, key=["sell", "buy"].index)
    assert [o.sequence for o in batch.orders] == list(range(1, len(batch.orders) + 1))
    assert all(o.order_id == f"{batch.batch_id}-{o.sequence:05d}" for o in batch.orders)
    # Lot instructions add up to the sell, gains by term, limit prices on the right side.
    for order in batch.orders:
        if order.side == "sell":
            assert sum(i.shares for i in order.lot_instructions) == pytest.approx(order.shares)
            st = sum(i.realized_gain for i in order.lot_instructions if i.term == "ST")
            assert order.est_st_gain == pytest.approx(st)
            assert order.limit_price < order.est_price
        else:
            assert order.lot_instructions == () and order.limit_price > order.est_price
    assert {o.order_type for o in batch.orders} == {"limit"}


def test_blotter_settings_read_and_written(tmp_path):
    folder = tmp_path / "book"
    folder.mkdir()
    for f in DEMO.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    text = (DEMO / "book.toml").read_text()
    (folder / "book.toml").write_text(
        text + '\n[blotter]\norder_type = "limit"\nflag_turnover = 0.3\n'
        'dividend_reinvest = ["VTI", "BND"]\nmaker_checker = false\n'
    )
    book = load_book(folder)
    assert book.settings.blotter == BlotterSettings(
        order_type="limit", flag_turnover=0.3, dividend_reinvest=("VTI", "BND"), maker_checker=False
    )
    written = settings_toml(book)
    assert '[blotter]\norder_type = "limit"\nflag_turnover = 0.3\n' in written
    assert 'dividend_reinvest = ["VTI", "BND"]\nmaker_checker = false\n' in written


def test_bad_blotter_settings_name_file_line_and_field(tmp_path):
    folder = tmp_path / "book"
    folder.mkdir()
    for f in DEMO.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    lines = (DEMO / "book.toml").read_text().splitlines()
    (folder / "book.toml").write_text(
        "\n".join(lines)
        + '\n[blotter]\norder_type = "stop"\nflag_turnover = -1\nmaker_checker = "yes"\n'
        "colour = 1\n"
    )
    with pytest.raises(BookError) as caught:
        load_book(folder)
    messages = [str(i) for i in caught.value.issues]
    n = len(lines)
    assert messages == [
        f"book.toml:{n + 2}: blotter.order_type: expected market or limit, got 'stop'",
        f"book.toml:{n + 3}: blotter.flag_turnover: expected a fraction from 0 to 2, got -1",
        f"book.toml:{n + 4}: blotter.maker_checker: expected true or false, got 'yes'",
        f"book.toml:{n + 5}: blotter.colour: unknown setting (expected one of "
        + ", ".join(f.name for f in __import__("dataclasses").fields(BlotterSettings))
        + ")",
    ]
