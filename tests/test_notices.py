"""Client notices: one per account in Markdown and text, saying what was (or is to be)
traded and why in plain words and the tax impact; a firm's own template; clear errors."""

from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from planner.blotter.notices import plain_reason, write_notices
from planner.blotter.reconcile import reconcile
from planner.blotter.store import open_store
from planner.cli import app
from planner.errors import BlotterError, ConfigError, UnknownBatchError
from tests.reconcile_helpers import (
    BATCH_ID,
    exported_batch,
    hand_fills,
    order_id,
    tiny_batch,
    tiny_book,
)


@pytest.fixture
def batch(store, tmp_path):
    return exported_batch(store, tiny_book(tmp_path / "book"), tmp_path)


def test_notices_before_the_fills(store, batch, tmp_path):
    paths = write_notices(BATCH_ID, tmp_path / "notices", store=store)
    # A2's plan was not approved (rejected): its client is told nothing.
    assert sorted(p.name for p in paths) == ["A1.md", "A1.txt"]
    md = (tmp_path / "notices" / "A1.md").read_text()
    assert md.startswith("# Your account A1: portfolio rebalancing of 2026-11-20\n")
    assert "We plan to trade" in md and "**What we plan to trade**" in md
    assert "- Sell 50 shares of BND (US bonds) at about $70.00 each, $3,500.00 in all" in md
    assert "US bonds from 40.0% to 38.0% (target 38.0%)" in md  # the reason, in words
    # The plan's figures, said to be planned.
    assert "The planned sales would realise a loss of $750.00 in all: a loss of $500.00 " in md
    assert "We estimate they would lower your tax for 2026 by about $300.00" in md
    assert "These figures are planned estimates at the prices of 2026-11-20" in md
    txt = (tmp_path / "notices" / "A1.txt").read_text()
    assert "**" not in txt and "# " not in txt
    assert txt.startswith("Your account A1: portfolio rebalancing of 2026-11-20\n=====")


def test_notices_after_the_fills_tell_what_was_done(store, batch, tmp_path):
    reconcile(BATCH_ID, hand_fills(tmp_path / "F.csv"), tmp_path / "book", tmp_path / "next",
              store=store)  # fmt: skip
    write_notices(BATCH_ID, tmp_path / "notices", store=store)
    md = (tmp_path / "notices" / "A1.md").read_text()
    assert "We have traded" in md and "**What was traded**" in md
    assert "- Sold 30 shares of BND" in md  # the partial fill
    assert "- Bought 20 shares of ITOT (US stocks) at about $101.00 each" in md
    assert not (tmp_path / "notices" / "A2.md").exists()  # rejected: no notice
    # The tax of what was filled, not the plan's $300 saving: 30 of 50 BND sold, their
    # $300 loss washed by the BND bought on Nov 10; VTI's $500 short-term loss less the
    # $200 the VTI buy washes, plus the $100 ITOT loss of Nov 5 the ITOT buy disallows:
    # -$200 short-term, +$250 long-term (A1-L2), a net gain of $50 taxed at 20%.
    assert "These sales realise a gain of $50.00 in all: a loss of $200.00 short-term and " \
        "a gain of $250.00 long-term." in md  # fmt: skip
    assert "We estimate they add about $10.00 to your tax for 2026" in md
    assert "$300.00" not in md
    assert "estimates from the prices the trades were filled at" in md
    summary = store.load_batch(BATCH_ID).accounts[0].summary
    assert summary["est_tax"] == -300.0  # the plan's figure stays as planned
    assert summary["filled"] == pytest.approx(
        {"realized_st": -200.0, "realized_lt": 250.0, "est_tax": 10.0,
         "carryforward_added": 0.0, "harvested_loss": 0.0}
    )  # fmt: skip


def test_an_approved_account_left_unfilled_traded_nothing(store, tmp_path):
    # Both accounts approved; only A2's order filled: A1's client is told nothing traded.
    exported_batch(store, tiny_book(tmp_path / "book"), tmp_path, accounts=("A1", "A2"))
    fills = tmp_path / "F.csv"
    fills.write_text(f"order_id,shares,price,date\n{order_id(5)},10,70,2026-11-23\n")
    reconcile(BATCH_ID, fills, tmp_path / "book", tmp_path / "next", store=store)
    write_notices(BATCH_ID, tmp_path / "notices", store=store)
    md = (tmp_path / "notices" / "A1.md").read_text()
    assert "We have traded" not in md and "We plan to trade" not in md
    assert "but none of the orders was filled: nothing was traded" in md
    assert "- No trade was made." in md
    assert "As nothing was traded, your taxes are unchanged." in md
    assert "$300.00" not in md and "estimate" not in md
    a2 = (tmp_path / "notices" / "A2.md").read_text()
    assert "We have traded" in a2 and "- Bought 10 shares of BND" in a2


def test_fills_recorded_without_reconciling_are_worked_out(store, batch, tmp_path):
    # Fills recorded by another route (Python): the notice works out their tax itself, on
    # the batch's book as planned.
    from planner.blotter.records import Fill

    fills = [Fill(BATCH_ID, order_id(2), 10.0, 200.0, date(2026, 11, 23), "A1-L1")]
    store.record_fills(BATCH_ID, fills, actor="olivia", status="filled")
    write_notices(BATCH_ID, tmp_path / "notices", store=store)
    md = (tmp_path / "notices" / "A1.md").read_text()
    assert "- Sold 10 shares of VTI" in md and "Sold 50" not in md
    # A $500 short-term loss alone: $3,000 deductible at 40%, all of it used.
    assert "These sales realise a loss of $500.00 in all" in md
    assert "lower your tax for 2026 by about $200.00" in md


def test_a_firms_own_template(store, batch, tmp_path):
    template = tmp_path / "firm.j2"
    template.write_text(
        "{{ strong('Acme Wealth') }} for {{ account_id }}: "
        "{% for t in trades %}{{ t.verb }} {{ t.symbol }}; {% endfor %}"
        "tax {{ est_tax | money }}\n"
    )
    write_notices(BATCH_ID, tmp_path / "n", store=store, template=template)
    assert (tmp_path / "n" / "A1.md").read_text() == (
        "**Acme Wealth** for A1: Sell BND; Sell VTI; Buy ITOT; Buy VTI; tax -$300.00\n"
    )
    assert (tmp_path / "n" / "A1.txt").read_text().startswith("Acme Wealth for A1")


def test_template_errors_are_clear(store, batch, tmp_path):
    with pytest.raises(ConfigError, match="expected a Jinja2 template file"):
        write_notices(BATCH_ID, tmp_path / "n", store=store, template=tmp_path / "none.j2")
    bad = tmp_path / "bad.j2"
    bad.write_text("Hello {{ client_name }}\n")
    with pytest.raises(ConfigError, match="bad.j2.*client_name"):
        write_notices(BATCH_ID, tmp_path / "n", store=store, template=bad)
    bad.write_text("Hello {% if %}\n")
    with pytest.raises(ConfigError, match="bad.j2 line 1"):
        write_notices(BATCH_ID, tmp_path / "n", store=store, template=bad)
    assert not (tmp_path / "n").exists()


def test_unknown_batch(store, tmp_path):
    with pytest.raises(UnknownBatchError, match="no batch B-NONE"):
        write_notices("B-NONE", tmp_path / "n", store=store)


def test_an_ira_notice_says_no_tax(store, tmp_path):
    book = tiny_book(tmp_path / "book")
    accounts = (book / "accounts.csv").read_text().replace("A1,m,H1,taxable", "A1,m,H1,ira")
    (book / "accounts.csv").write_text(accounts)
    exported_batch(store, book, tmp_path)
    write_notices(BATCH_ID, tmp_path / "n", store=store)
    assert "This is a retirement account" in (tmp_path / "n" / "A1.md").read_text()


def test_a_rejected_batch_has_no_notices(store, tmp_path):
    from planner.blotter.approvals import reject

    batch = tiny_batch(tiny_book(tmp_path / "book"))
    store.save_batch(batch, batch.orders, batch.accounts)
    reject(store, BATCH_ID, "bob", "too much tax")
    with pytest.raises(BlotterError, match="is rejected: it trades nothing"):
        write_notices(BATCH_ID, tmp_path / "notices", store=store)
    assert not (tmp_path / "notices").exists()


def test_plain_reason():
    assert plain_reason("rebalance US_EQUITY: 42.3% -> 42.9% (target 45.0%)") == (
        "rebalance US stocks: 42.3% to 42.9% (target 45.0%)"
    )
    assert plain_reason("invest cash: REIT 11.05% -> 11.10% (target 9.0%)") == (
        "invest cash: real estate from 11.05% to 11.10% (target 9.0%)"
    )


def test_cli_notices(store_url, tmp_path):
    with open_store(store_url) as store:
        exported_batch(store, tiny_book(tmp_path / "book"), tmp_path)
    result = CliRunner().invoke(
        app, ["notices", BATCH_ID, "--out", str(tmp_path / "n"), "--db", store_url]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 1 notices" in result.output
