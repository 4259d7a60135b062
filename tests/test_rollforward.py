"""Rolling a book forward by executed trades: exact lots, bases, tacked dates, wash-sale
adjustments, cash, returns and trades on a hand-checked case; refusals that change
nothing; writing a new folder or in place; and the next plan seeing the new windows."""

from __future__ import annotations

from datetime import date

import pytest

from planner.blotter import rolled_book
from planner.blotter.rolled_book import stage_rolled_book, write_rolled_book
from planner.blotter.rollforward import Execution, roll_forward
from planner.errors import BlotterError, OutputError
from planner.io import load_book
from tests.reconcile_helpers import TRADE_DAY, snapshot, tiny_book

D = TRADE_DAY


def executions() -> list[Execution]:
    """The hand-checked case: A1 sells 10 VTI of A1-L1 (a $500 short-term loss) and 5 of
    A1-L2 (a $250 long-term gain), buys back 4 VTI at $201, sells all 50 BND of A1-L4 (a
    $500 long-term loss) and buys 20 ITOT at $101."""
    return [
        Execution("A1", "VTI", "sell", 10, 200, D, "A1-L1"),
        Execution("A1", "VTI", "sell", 5, 200, D, "A1-L2"),
        Execution("A1", "VTI", "buy", 4, 201, D),
        Execution("A1", "BND", "sell", 50, 70, D, "A1-L4"),
        Execution("A1", "ITOT", "buy", 20, 101, D),
    ]


@pytest.fixture
def book(tmp_path):
    return load_book(tiny_book(tmp_path / "book"))


def lots_of(book, account):
    return {
        lot.lot_id: (lot.symbol, lot.shares, round(lot.unit_cost, 6), lot.acquired, lot.bought_on)
        for lot in book.lots_of(account)
    }


def test_hand_checked_lots_bases_and_tacked_dates(book):
    rolled = roll_forward(book, executions())
    assert lots_of(rolled.book, "A1") == {
        # 4 of the 10 loss shares of A1-L1 replaced by the VTI buy: 4/10 of the $500 loss
        # ($200) is added to its basis ($201 + $50 a share), and its holding period
        # starts when A1-L1's did (2026-11-23 less the 266 days A1-L1 was held).
        "A1-20261123-VTI": ("VTI", 4.0, 251.0, date(2026, 3, 2), D),
        # The BND loss sale is replaced by 50 of the 100 shares bought on 2026-11-10: they
        # split off as A1-L3.w1, with the $500 loss ($10 a share) and A1-L4's start date.
        "A1-L3.w1": ("BND", 50.0, 80.0, date(2024, 1, 5), date(2026, 11, 10)),
        "A1-L3": ("BND", 50.0, 70.0, date(2026, 11, 10), date(2026, 11, 10)),
        # 10 of the 20 ITOT replace the $100 loss sale of 2026-11-05 in trades.csv.
        "A1-20261123-ITOT.w1": ("ITOT", 10.0, 111.0, D, D),
        "A1-20261123-ITOT": ("ITOT", 10.0, 101.0, D, D),
    }
    assert lots_of(rolled.book, "A2") == {
        "A2-L1": ("VTI", 3.0, 100.0, date(2020, 1, 2), date(2020, 1, 2))
    }
    sales = {s.execution.lot_id: s for s in rolled.sales}
    assert (sales["A1-L1"].realized_gain, sales["A1-L1"].disallowed_loss) == (-500.0, 200.0)
    assert (sales["A1-L1"].reported_st, sales["A1-L1"].reported_lt) == (-300.0, 0.0)
    assert (sales["A1-L2"].reported_st, sales["A1-L2"].reported_lt) == (0.0, 250.0)
    assert (sales["A1-L4"].disallowed_loss, sales["A1-L4"].reported_lt) == (500.0, 0.0)
    assert len(rolled.replacements) == 3


def test_hand_checked_cash_returns_trades_and_dates(book):
    rolled = roll_forward(book, executions())
    a1 = rolled.book.accounts["A1"]
    # $1,000 + sales $3,500 + $3,000 - buys $804 - $2,020 + the $500 contribution.
    assert (a1.cash, a1.cash_flow, a1.last_rebalanced) == (5176.0, 0.0, D)
    assert rolled.book.accounts["A2"] == book.accounts["A2"]
    # ST: -$300 of VTI and the $100 ITOT loss of Nov 5 now disallowed; LT: +$250 + $0.
    assert rolled.returns_added == {"H1": (-200.0, 250.0)}
    ret = rolled.book.returns["H1"]
    assert (ret.ytd_st_gain, ret.ytd_lt_gain, ret.filing_status) == (-200.0, 250.0, "single")
    trades = rolled.book.trade_frame("A1")
    assert len(trades) == 2 + 5
    sells = trades[(trades["side"] == "sell") & (trades["trade_date"] == str(D))]
    assert sorted(sells["realized_gain"]) == [-500.0, -500.0, 250.0]
    assert rolled.as_of == D and rolled.book.settings.as_of == D


def test_commission_adds_to_basis_and_comes_off_proceeds(book):
    rolled = roll_forward(
        book,
        [
            Execution("A1", "VTI", "sell", 5, 200, D, "A1-L2", commission=5.0),
            Execution("A1", "ITOT", "buy", 10, 100, D, commission=10.0),
        ],
    )
    assert rolled.sales[0].realized_gain == pytest.approx(5 * 200 - 5 - 5 * 150)
    bought = [lot for lot in rolled.new_lots if lot.symbol == "ITOT"]
    assert sum(lot.shares * lot.unit_cost for lot in bought) == pytest.approx(1010 + 100)
    assert rolled.book.accounts["A1"].cash == pytest.approx(1000 + 995 - 1010 + 500)


def test_an_ira_replacement_loses_the_loss(tmp_path):
    folder = tiny_book(tmp_path / "book")
    (folder / "accounts.csv").write_text(
        "account_id,model,household_id,registration,cash,st_rate,lt_rate,cash_flow\n"
        "A1,m,H1,taxable,1000,0.4,0.2,0\nA2,m,H1,ira,50,0,0,0\n"
    )
    (folder / "book.toml").write_text(
        '[settings]\nas_of = 2026-11-20\nwash_sale_scope = "household"\n'
    )
    book = load_book(folder)
    rolled = roll_forward(
        book,
        [
            Execution("A1", "VTI", "sell", 10, 200, D, "A1-L1"),
            Execution("A2", "VTI", "buy", 10, 200, D),
        ],
    )
    sale = rolled.sales[0]
    assert (sale.disallowed_loss, sale.reported_st) == (500.0, 0.0)
    ira = [lot for lot in rolled.new_lots if lot.account_id == "A2"]
    assert [(lot.shares, lot.unit_cost, lot.acquired) for lot in ira] == [(10.0, 200.0, D)]
    assert rolled.returns_added == {"H1": (0.0, 0.0)}


def test_a_loss_replaced_in_an_earlier_roll_is_not_disallowed_twice(book, tmp_path):
    # Roll 1: the $500 VTI loss of A1-L1, 4 of its 10 shares bought back ($200 disallowed).
    first = roll_forward(
        book,
        [
            Execution("A1", "VTI", "sell", 10, 200, D, "A1-L1"),
            Execution("A1", "VTI", "buy", 4, 201, D),
        ],
    )
    assert first.returns_added == {"H1": (-300.0, 0.0)}
    rolled = load_book(write_rolled_book(first, tmp_path / "book", tmp_path / "next"))
    # Roll 2, five days on: 10 more VTI replace only the 6 shares left ($300), not all 10.
    later = date(2026, 11, 28)
    second = roll_forward(rolled, [Execution("A1", "VTI", "buy", 10, 200, later)])
    assert sum(r.disallowed_loss for r in second.replacements) == pytest.approx(300.0)
    assert second.returns_added == {"H1": (300.0, 0.0)}
    bought = [lot for lot in second.new_lots if lot.bought_on == later]
    assert sum(lot.shares * lot.unit_cost for lot in bought) == pytest.approx(2000 + 300)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Execution("A9", "VTI", "sell", 1, 200, D, "A1-L1"), "unknown account"),
        (Execution("A1", "XXX", "buy", 1, 200, D), "unknown symbol"),
        (Execution("A1", "VTI", "sell", 1, 200, D, "A1-L9"), "lot 'A1-L9' is not held"),
        (Execution("A1", "VTI", "sell", 1, 200, D, "A1-L3"), "lot A1-L3 holds BND, not VTI"),
        (Execution("A1", "VTI", "sell", 11, 200, D, "A1-L1"), "which holds 10"),
        (Execution("A1", "VTI", "buy", 1, -5, D), "price must be > 0"),
        (Execution("A1", "BND", "sell", 1, 70, date(2026, 11, 1), "A1-L3"), "bought later"),
    ],
)
def test_bad_executions_are_refused_whole(book, bad, message):
    with pytest.raises(BlotterError, match=message) as info:
        roll_forward(book, [executions()[0], bad])
    assert "roll-forward refused: 1 problem" in str(info.value)


def test_written_book_reads_back_and_keeps_the_files_it_does_not_change(book, tmp_path):
    source = tmp_path / "book"
    before = snapshot(source)
    out = write_rolled_book(roll_forward(book, executions()), source, tmp_path / "next")
    assert snapshot(source) == before  # the old book is untouched
    after = snapshot(out)
    assert after["securities.csv"] == before["securities.csv"]
    assert after["models.toml"] == before["models.toml"]
    # book.toml line for line (a comment and the [blotter] table kept), as_of moved on.
    assert after["book.toml"] == before["book.toml"].replace(b"2026-11-20", b"2026-11-23")
    again = load_book(out)
    assert lots_of(again, "A1") == lots_of(roll_forward(book, executions()).book, "A1")
    assert again.returns["H1"].ytd_st_gain == -200.0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_non_empty_output_folder_is_refused(book, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.txt").write_text("mine")
    with pytest.raises(OutputError, match="expected a new or empty folder"):
        write_rolled_book(roll_forward(book, executions()), tmp_path / "book", tmp_path / "taken")
    assert (tmp_path / "taken" / "x.txt").read_text() == "mine"


def test_in_place_keeps_a_backup(book, tmp_path):
    source = tmp_path / "book"
    before = snapshot(source)
    (source / "rebalance.db").write_bytes(b"store")  # not a book file: stays, not copied
    write_rolled_book(roll_forward(book, executions()), source, source, label="B1")
    backup = tmp_path / "book.before-B1"
    assert snapshot(backup) == before
    assert (source / "rebalance.db").read_bytes() == b"store"
    assert load_book(source).accounts["A1"].cash == 5176.0


def test_a_failure_while_writing_leaves_nothing(book, tmp_path, monkeypatch):
    def broken(path):
        raise OSError("disk full")

    monkeypatch.setattr(rolled_book, "load_book", broken)
    with pytest.raises(OSError, match="disk full"):
        stage_rolled_book(roll_forward(book, executions()), tmp_path / "book", tmp_path / "next")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book"]


def test_the_next_plan_keeps_out_of_the_new_wash_windows(book, tmp_path):
    """After the roll-forward A1 holds no US equity; VTI was sold at a loss on 2026-11-23
    (and ITOT on 2026-11-05), so a week later the plan buys neither and says why; once
    both windows are over, it buys again."""
    from planner.run import plan

    out = write_rolled_book(
        roll_forward(
            book,
            [
                Execution("A1", "VTI", "sell", 10, 200, D, "A1-L1"),
                Execution("A1", "VTI", "sell", 5, 200, D, "A1-L2"),
            ],
        ),
        tmp_path / "book",
        tmp_path / "next",
    )
    later = load_book(out, as_of=date(2026, 11, 30))
    result = plan(later, accounts=["A1"])
    buys = result.orders[result.orders["side"] == "buy"]
    assert not {"VTI", "ITOT"} & set(buys["symbol"])
    assert "VTI would wash a recent loss sale" in result.summary["message"].iloc[0]
    # 31 days after the sale the window is closed and US equity is bought again.
    free = plan(load_book(out, as_of=date(2026, 12, 24)), accounts=["A1"])
    assert {"VTI", "ITOT"} & set(free.orders[free.orders["side"] == "buy"]["symbol"])


def test_trades_in_a_new_year_close_the_old_one(tmp_path):
    folder = tiny_book(tmp_path / "book")
    (folder / "returns.csv").write_text(
        "tax_return,filing_status,ytd_st_gain,ytd_lt_gain\nH1,single,-5000,1000\n"
    )
    book = load_book(folder)
    day = date(2027, 1, 4)
    rolled = roll_forward(book, [Execution("A1", "VTI", "sell", 5, 200, day, "A1-L2")])
    ret = rolled.book.returns["H1"]
    # 2026: -5,000 ST + 1,000 LT nets to a 4,000 loss, 3,000 deducted, 1,000 carried (ST).
    assert (ret.carryforward_st, ret.carryforward_lt) == (1000.0, 0.0)
    # 2027 starts with the sale: a 250 long-term gain.
    assert (ret.ytd_st_gain, ret.ytd_lt_gain) == (0.0, 250.0)
    assert rolled.as_of == day
