"""A book's fingerprint: a SHA-256 over its files and settings, so a batch can tell whether
the book it was planned on has changed since. The store (``rebalance.db`` or any other
file that is not one of the book's tables) is never part of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from planner.blotter.records import Batch
from planner.errors import StaleBookError

BOOK_FILES: tuple[str, ...] = (
    "accounts",
    "book",
    "lots",
    "models",
    "prices",
    "returns",
    "securities",
    "trades",
)
"""Stems of the files a book is read from (``.csv``, ``.parquet`` or ``.toml``)."""

_SUFFIXES = (".csv", ".parquet", ".toml")


def book_files(folder: Path) -> list[Path]:
    """The book's files in ``folder``, sorted by name."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.stem in BOOK_FILES and p.suffix in _SUFFIXES
    )


def book_fingerprint(folder: Path) -> str:
    """Hex SHA-256 of the book's file names and contents (``book.toml``, the settings,
    included)."""
    digest = hashlib.sha256()
    for path in book_files(folder):
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def ensure_book_unchanged(batch: Batch, folder: Path | None = None) -> None:
    """Raise :class:`StaleBookError` if the batch's book (``folder``, default the path the
    batch recorded) is missing or its fingerprint differs from the batch's."""
    folder = Path(folder or batch.book_path)
    if not folder.is_dir():
        raise StaleBookError(
            f"batch {batch.batch_id}: its book {folder} is gone; nothing changed "
            f"(re-plan, or pass the book's new location)"
        )
    now = book_fingerprint(folder)
    if now != batch.book_fingerprint:
        raise StaleBookError(
            f"batch {batch.batch_id}: the book {folder} changed since the batch was planned "
            f"(fingerprint {batch.book_fingerprint[:12]}, now {now[:12]}); nothing changed "
            f"(reject the batch and plan again)"
        )
