"""The one place where the planner's exceptions live.

Every error a user can cause names where it came from: for book problems that is the file,
the line number (1-based, the header is line 1), the field and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class PlannerError(Exception):
    """Base class of every error the planner raises on purpose."""


@dataclass(frozen=True, order=True)
class BookIssue:
    """One problem found in a book: where it is and what was expected.

    ``line`` is the 1-based physical line in ``file`` (the CSV header is line 1, so the
    first data row is line 2 unless a blank line or a quoted newline comes before it), or
    the 1-based data row of a Parquet file; ``None`` when the problem concerns the file as
    a whole.
    """

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        if self.line is None:
            where = self.file
        elif self.file.endswith(".parquet"):
            where = f"{self.file} row {self.line}"
        else:
            where = f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


class BookError(PlannerError):
    """A book failed validation; carries every problem found in one pass."""

    def __init__(self, issues: Iterable[BookIssue]):
        self.issues: tuple[BookIssue, ...] = tuple(sorted(issues, key=_issue_key))
        n = len(self.issues)
        head = f"{n} problem{'s' if n != 1 else ''} in book"
        super().__init__("\n".join([head, *(f"  {i}" for i in self.issues)]))


def _issue_key(issue: BookIssue) -> tuple:
    return (issue.file, issue.line if issue.line is not None else -1, issue.field, issue.message)


class OutputError(PlannerError):
    """An output folder cannot be written (read-only, a file in the way, a full disk, another
    run using it); the message is one line naming the path."""


class ConfigError(PlannerError):
    """A setting, option or argument outside what is allowed."""


class InfeasibleError(PlannerError):
    """An account's constraints cannot all hold; ``conflicts`` names the culprits by label."""

    def __init__(self, account_id: str, conflicts: Iterable[str], detail: str = ""):
        self.account_id = account_id
        self.conflicts = tuple(conflicts)
        names = "; ".join(self.conflicts) if self.conflicts else "none isolated"
        msg = f"account {account_id}: infeasible; conflicting constraints: {names}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


class RuleViolationError(PlannerError):
    """The convex program is feasible but no solution found obeys every trade rule (one
    direction per security, no wash sale within the plan, minimum trade sizes)."""

    def __init__(self, account_id: str, detail: str):
        self.account_id = account_id
        super().__init__(
            f"account {account_id}: no plan found that obeys every trade rule ({detail})"
        )


class SolverError(PlannerError):
    """Every solver tried failed on a problem that is not known to be infeasible."""


class MissingExtraError(PlannerError):
    """An optional feature was asked for but its extra is not installed."""

    def __init__(self, feature: str, extra: str, module: str):
        super().__init__(
            f"{feature} needs the optional package '{module}': "
            f"pip install 'rebalance-planner[{extra}]'"
        )


class BlotterError(PlannerError):
    """A blotter command cannot proceed (an unknown batch, a status that does not allow the
    step, a book changed since the batch was planned, a maker-checker rule); nothing was
    changed. The message says which batch and what was expected."""


class UnknownBatchError(BlotterError):
    """No batch with the given id is in the store."""


class BatchStatusError(BlotterError):
    """The batch's status does not allow the step (or another user moved it first)."""


class StaleBookError(BlotterError):
    """The book's files or settings changed since the batch was planned."""


class ApprovalError(BlotterError):
    """A maker-checker rule refuses the approval (the proposer approving, the same person
    approving twice, accounts not in the batch)."""
