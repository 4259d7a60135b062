"""Approving, rejecting and cancelling a batch, with the maker-checker rules of the book's
``[blotter]`` settings.

- With ``maker_checker`` (the default) whoever proposed a batch cannot approve it, and
  nobody approves the same batch twice; names are compared without case and surrounding
  whitespace (``Alice `` is ``alice``).
- A batch whose estimated tax is above ``second_approval_tax`` dollars, or whose traded
  value (buys plus sells) is above ``second_approval_value`` dollars, needs two approvers;
  after the first it stays ``proposed`` (the approval is recorded and audited). The
  batch's estimated tax for this test is the sum of its accounts' positive taxes: the
  accounts belong to different taxpayers, so one client's saving does not offset
  another's tax.
- ``--accounts`` approves some accounts only: the accounts every approver covered are
  approved when the batch is, the rest are ``rejected`` (their orders are not exported and
  they may be planned again at once).

Every step checks first that the batch's book has not changed since it was planned, and
each is one transaction in the store (two approvers at once cannot both win).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from planner.blotter.fingerprint import ensure_book_unchanged
from planner.blotter.records import (
    APPROVED,
    CANCELLED,
    PROPOSED,
    REJECTED,
    Batch,
)
from planner.blotter.store import Store
from planner.domain import BlotterSettings
from planner.errors import ApprovalError, BatchStatusError, BlotterError, BookError
from planner.io.cells import Issues
from planner.io.toml_files import read_settings


@dataclass(frozen=True)
class ApprovalOutcome:
    """What an approval did: the batch's status after it, the approvals it now has and
    needs, and the accounts approved (when the batch became approved)."""

    batch_id: str
    status: str
    approvals: int
    needed: int
    approved_accounts: tuple[str, ...] = ()


def blotter_settings(batch: Batch) -> BlotterSettings:
    """The ``[blotter]`` settings of the batch's book (its ``book.toml``)."""
    issues = Issues()
    settings = read_settings(Path(batch.book_path), issues)
    if issues.items:
        raise BookError(issues.finish())
    return settings.blotter


def same_person(a: str, b: str) -> bool:
    """Whether two names given as ``--by`` are the same person: compared without case and
    surrounding whitespace."""
    return a.strip().casefold() == b.strip().casefold()


def approvals_needed(batch: Batch, settings: BlotterSettings, accounts: Iterable[str]) -> int:
    """1, or 2 when the accounts' estimated tax or traded value is above its threshold.

    The estimated tax is the sum of each account's positive ``est_tax``: a saving in one
    account (another taxpayer, as a rule) never offsets tax in another."""
    chosen = set(accounts)
    tax = sum(
        max(a.summary.get("est_tax") or 0.0, 0.0) for a in batch.accounts if a.account_id in chosen
    )
    value = sum(o.est_value for o in batch.orders if o.account_id in chosen)
    above_tax = settings.second_approval_tax > 0 and tax > settings.second_approval_tax
    above_value = settings.second_approval_value > 0 and value > settings.second_approval_value
    return 2 if above_tax or above_value else 1


def approve(
    store: Store, batch_id: str, approver: str, account_ids: Iterable[str] | None = None
) -> ApprovalOutcome:
    """Record ``approver``'s approval of the batch (or of ``account_ids`` only); the batch
    becomes ``approved`` once it has the approvals it needs."""
    approver = approver.strip()
    if not approver:
        raise ApprovalError(f"batch {batch_id}: --by must name the approver (nothing changed)")
    wanted = tuple(sorted(set(account_ids))) if account_ids else ()
    batch = store.load_batch(batch_id)
    ensure_book_unchanged(batch)
    settings = blotter_settings(batch)
    with store.change(batch_id, expect_revision=batch.revision, others=True) as change:
        batch = change.batch
        # Accounts whose orders of another batch may be in the market (a plan saved before
        # that batch was approved): approving them again would send their trades twice.
        elsewhere = {} if batch.options.get("ignore_pending") else change.pending_elsewhere
        if change.status != PROPOSED:
            raise BatchStatusError(
                f"batch {batch_id} is {change.status}; only a proposed batch can be approved "
                f"(nothing changed)"
            )
        known = set(batch.account_ids)
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise ApprovalError(
                f"batch {batch_id} has no account(s) {', '.join(unknown)}; it has "
                f"{', '.join(batch.account_ids)} (nothing changed)"
            )
        if settings.maker_checker and same_person(approver, batch.proposer):
            raise ApprovalError(
                f"batch {batch_id}: {approver} proposed it and cannot approve it "
                f"(maker-checker; nothing changed)"
            )
        if any(same_person(a.approver, approver) for a in change.approvals):
            raise ApprovalError(
                f"batch {batch_id}: {approver} has already approved it; a second approval "
                f"must come from someone else (nothing changed)"
            )
        # The accounts approved are those every approver covered (empty: all of them).
        covered = set(known)
        for scope in [a.account_ids for a in change.approvals] + [wanted]:
            if scope:
                covered &= set(scope)
        if not covered:
            raise ApprovalError(
                f"batch {batch_id}: the approvers' accounts have none in common (nothing changed)"
            )
        clash = sorted(a for a in covered if a in elsewhere)
        if clash:
            raise ApprovalError(
                f"batch {batch_id}: account(s) {', '.join(clash)} are in batch "
                f"{', '.join(sorted({elsewhere[a] for a in clash}))}, approved and not yet "
                f"reconciled; reconcile, reject or cancel it first, or approve the others "
                f"with --accounts (nothing changed)"
            )
        needed = approvals_needed(batch, settings, covered)
        change.add_approval(approver, wanted)
        count = len(change.approvals) + 1
        scope = f"accounts {', '.join(wanted)}" if wanted else "all accounts"
        if count < needed:
            change.audit(
                actor=approver, action="approve", detail=f"approval {count} of {needed}; {scope}"
            )
            return ApprovalOutcome(batch_id, PROPOSED, count, needed)
        change.set_account_status(sorted(covered), APPROVED)
        change.set_account_status(sorted(known - covered), REJECTED)
        change.move_to(
            APPROVED,
            actor=approver,
            action="approve",
            detail=f"approval {count} of {needed}; {scope}; approved "
            f"{len(covered)} of {len(known)} accounts",
        )
    return ApprovalOutcome(batch_id, APPROVED, count, needed, tuple(sorted(covered)))


def reject(store: Store, batch_id: str, by: str, why: str) -> Batch:
    """Reject a proposed or approved (not yet exported) batch; ``why`` is required."""
    return _close(store, batch_id, by, why, REJECTED, "reject")


def cancel(store: Store, batch_id: str, by: str, why: str) -> Batch:
    """Cancel a batch not yet filled (e.g. its orders were withdrawn at the broker)."""
    return _close(store, batch_id, by, why, CANCELLED, "cancel")


def _close(store: Store, batch_id: str, by: str, why: str, status: str, action: str) -> Batch:
    if not by.strip():
        raise BlotterError(f"batch {batch_id}: --by must name who {action}s (nothing changed)")
    if not why.strip():
        raise BlotterError(f"batch {batch_id}: --why must say why (nothing changed)")
    seen = store.load_batch(batch_id)
    with store.change(batch_id, expect_revision=seen.revision) as change:
        change.move_to(status, actor=by.strip(), action=action, detail=why.strip())
    return store.load_batch(batch_id)
