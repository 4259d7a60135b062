"""Writing a rolled-forward book: into a hidden temporary folder first, read back and
checked, then put in place in one rename (or, in place, file by file after a backup copy),
so that the old book is untouched until the new one is complete.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from planner.blotter.rollforward import RollForward
from planner.errors import OutputError
from planner.io import load_book, write_book
from planner.io.tables import SUFFIXES

BOOK_TABLES = ("securities", "accounts", "lots", "trades", "returns", "prices")
BOOK_TEXT_FILES = ("models.toml", "book.toml")


@dataclass
class StagedBook:
    """A rolled-forward book written and checked in a hidden temporary folder beside
    ``out``, waiting for :meth:`commit` to put it in place (or :meth:`discard`)."""

    staging: Path
    source: Path
    out: Path
    in_place: bool
    label: str = ""
    backup: Path | None = None

    def commit(self) -> Path:
        """Put the new book in place: rename the temporary folder to ``out``; in place,
        copy the old book's files to ``<book>.before-<label>`` first, then replace each
        file in one rename. Returns ``out``. On failure the temporary folder is left for
        the caller to keep or :meth:`discard`."""
        try:
            if self.in_place:
                self.backup = _backup(self.source, self.label)
                for f in sorted(self.staging.iterdir()):
                    os.replace(f, self.source / f.name)
                    other = _other_format(self.source, f.name)
                    if other is not None:
                        other.unlink()
                self.staging.rmdir()
            else:
                if self.out.exists():
                    self.out.rmdir()  # an empty folder, checked when staged
                os.rename(self.staging, self.out)
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot write the rolled-forward book ({exc})") from None
        return self.out

    def discard(self) -> None:
        """Remove the temporary folder; the old book and ``out`` stay as they were."""
        shutil.rmtree(self.staging, ignore_errors=True)


def stage_rolled_book(
    rolled: RollForward, source: str | Path, out: str | Path, label: str = ""
) -> StagedBook:
    """Write the rolled-forward book to a hidden temporary folder beside ``out``, read it
    back and check it; :meth:`StagedBook.commit` then puts it in place.

    ``source`` is the book folder it was rolled from. The files the roll-forward does not
    change (``securities``, ``prices``, ``models.toml``) are copied as they are, and its
    ``book.toml`` is kept line for line (settings the planner does not know of included)
    with ``as_of`` moved to the new date; the tables are written in the source's format
    (Parquet when it has ``lots.parquet``, else CSV). ``out`` equal to ``source`` rolls in
    place. Raises :class:`OutputError` naming the path when ``out`` is a file or a
    non-empty folder other than ``source``, or cannot be written.
    """
    source, out = Path(source), Path(out)
    fmt = "parquet" if (source / "lots.parquet").exists() else "csv"
    in_place = out.exists() and source.exists() and out.resolve() == source.resolve()
    if not in_place and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out}: expected a new or empty folder for the rolled-forward book")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.rolling-", dir=parent))
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the rolled-forward book ({exc.strerror})") from None
    staged = StagedBook(staging, source, out, in_place, label)
    try:
        write_book(rolled.book, staging, format=fmt)
        for stem in ("securities", "prices"):
            kept = [source / f"{stem}{s}" for s in SUFFIXES if (source / f"{stem}{s}").exists()]
            if kept:
                for s in SUFFIXES:
                    (staging / f"{stem}{s}").unlink(missing_ok=True)
                shutil.copyfile(kept[0], staging / kept[0].name)
        if (source / "models.toml").exists():
            shutil.copyfile(source / "models.toml", staging / "models.toml")
        (staging / "book.toml").write_text(
            _settings_text(source / "book.toml", rolled.as_of), encoding="utf-8"
        )
        load_book(staging)  # the new book must read back valid before it replaces anything
    except BaseException:
        staged.discard()
        raise
    return staged


def write_rolled_book(
    rolled: RollForward, source: str | Path, out: str | Path, label: str = ""
) -> Path:
    """Stage and commit the rolled-forward book (see :func:`stage_rolled_book`); returns
    ``out``."""
    staged = stage_rolled_book(rolled, source, out, label)
    try:
        return staged.commit()
    except BaseException:
        staged.discard()
        raise


def _other_format(folder: Path, name: str) -> Path | None:
    """The same table in the other format, left over from the old book (``lots.csv`` for a
    new ``lots.parquet``)."""
    stem, suffix = os.path.splitext(name)
    if stem not in BOOK_TABLES:
        return None
    for s in SUFFIXES:
        if s != suffix and (folder / f"{stem}{s}").exists():
            return folder / f"{stem}{s}"
    return None


def _backup(source: Path, label: str) -> Path:
    """Copy the book's own files (not a store or anything else kept beside them) to a new
    sibling folder ``<book>.before-<label>``; returns it."""
    base = source.resolve()
    name = f"{base.name}.before-{label or date.today().isoformat()}"
    target, k = base.parent / name, 1
    while target.exists():
        k += 1
        target = base.parent / f"{name}-{k}"
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=base.parent))
    for stem in BOOK_TABLES:
        for s in SUFFIXES:
            if (base / f"{stem}{s}").exists():
                shutil.copy2(base / f"{stem}{s}", staging / f"{stem}{s}")
    for text in BOOK_TEXT_FILES:
        if (base / text).exists():
            shutil.copy2(base / text, staging / text)
    os.rename(staging, target)
    return target


_AS_OF = re.compile(r"^(\s*as_of\s*=\s*)([^#\s]+)(.*)$")


def _settings_text(path: Path, as_of: date) -> str:
    """The source ``book.toml`` with its ``as_of`` set to ``as_of`` (added to
    ``[settings]`` where it had none); every other line as it was."""
    if not path.exists():
        return f"[settings]\nas_of = {as_of.isoformat()}\n"
    lines = path.read_text(encoding="utf-8").splitlines()
    out, done = [], False
    for line in lines:
        m = _AS_OF.match(line)
        if m and not done:
            out.append(f"{m.group(1)}{as_of.isoformat()}{m.group(3)}")
            done = True
        else:
            out.append(line)
    if not done:
        at = next((i for i, ln in enumerate(out) if ln.strip() == "[settings]"), None)
        if at is None:
            out = ["[settings]", f"as_of = {as_of.isoformat()}", "", *out]
        else:
            out.insert(at + 1, f"as_of = {as_of.isoformat()}")
    text = "\n".join(out) + "\n"
    tomllib.loads(text)  # a book.toml we cannot parse again must not be written
    return text
