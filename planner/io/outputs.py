"""The output folder of a command: a set of files that is all old or all new.

A command writes its files (``plan``: orders, lot sales, summary, timings; ``check``: drift
and triggers) into a fresh hidden folder beside them, ``out/.plan.csv-<id>``, syncs them to
disk, then switches the set in one step: the link ``out/.plan.csv`` is replaced (an atomic
rename) to point at the new folder. The documented paths (``out/orders.csv`` ...) are links
through it, made once. A reader sees the previous complete set until the new one is
complete, and never a mix; a kill at any moment leaves one or the other. The files of
another command or format in the same folder are their own set and are left alone.

While a command runs it holds a lock on the folder (``out/.rebalance.lock``): a second run
on the same folder is refused at once with a message. Stale folders of a run that was
killed are removed when the next one starts.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from planner.errors import OutputError
from planner.io.write import FORMATS, file_mode, write_csv_frame, write_parquet_frame

LOCK_NAME = ".rebalance.lock"


class OutputFolder:
    """An output folder, checked and locked on entry (before any planning is done), that
    writes sets of files atomically (:meth:`write`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock: int | None = None

    def __enter__(self) -> OutputFolder:
        try:
            if self.path.exists() and not self.path.is_dir():
                raise NotADirectoryError(
                    errno.ENOTDIR, "it is a file, not a folder", str(self.path)
                )
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".rebalance-probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
            self._lock = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(_say(exc, self.path)) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise OutputError(
                f"{self.path}: another rebalance run is writing to this folder; wait for it "
                "to finish or choose another --out"
            ) from None
        return self

    def __exit__(self, *exc_info) -> None:
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None

    def write(self, name: str, files: Mapping[str, Callable[[Path], None]]) -> list[Path]:
        """Write the set ``name`` (e.g. ``plan.csv``): ``files[file](path)`` writes each
        file; returns the documented paths (links through the set's current folder)."""
        if self._lock is None:
            raise RuntimeError("OutputFolder.write outside its with-block")
        try:
            return self._write(name, files)
        except OSError as exc:
            raise OutputError(_say(exc, self.path)) from None

    def _write(self, name: str, files: Mapping[str, Callable[[Path], None]]) -> list[Path]:
        current = self.path / f".{name}"
        self._remove_stale(name, current)
        for file in files:
            target = self.path / file
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(target))
        fresh = self.path / f".{name}-{uuid.uuid4().hex[:12]}"
        fresh.mkdir()
        try:
            for file, write in files.items():
                write(fresh / file)
                os.chmod(fresh / file, file_mode())
                _sync(fresh / file)
            _sync(fresh)
            # The switch: one rename of the set's link to the complete new folder.
            link = self.path / f".{name}.next"
            link.unlink(missing_ok=True)
            os.symlink(fresh.name, link)
            previous = os.readlink(current) if current.is_symlink() else None
            os.replace(link, current)
            _sync(self.path)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
        if previous and previous != fresh.name:
            shutil.rmtree(self.path / previous, ignore_errors=True)
        out = []
        for file in files:
            out.append(self._link(file, f"{current.name}/{file}"))
        _sync(self.path)
        return out

    def _link(self, file: str, through: str) -> Path:
        """``out/file`` as a link to ``through`` (made once; a plain file from an older
        version is replaced by the link in one rename)."""
        path = self.path / file
        if path.is_symlink() and os.readlink(path) == through:
            return path
        temporary = self.path / f".{file}.link"
        temporary.unlink(missing_ok=True)
        os.symlink(through, temporary)
        os.replace(temporary, path)
        return path

    def _remove_stale(self, name: str, current: Path) -> None:
        """Folders and links of this set that a killed run left behind."""
        keep = os.readlink(current) if current.is_symlink() else None
        for entry in self.path.glob(f".{name}-*"):
            if entry.name != keep:
                shutil.rmtree(entry, ignore_errors=True)
        for entry in self.path.glob(".*.link"):
            entry.unlink(missing_ok=True)
        (self.path / f".{name}.next").unlink(missing_ok=True)


def _sync(path: Path) -> None:
    """Flush a file or folder to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _say(exc: OSError, folder: Path) -> str:
    """One line for a failed write: the path and what went wrong."""
    where = exc.filename or folder
    return f"cannot write to {where}: {exc.strerror or exc}"


def write_outputs(
    out_dir: str | Path,
    files: Mapping[str, pd.DataFrame],
    format: str = "csv",
    name: str = "plan",
) -> list[Path]:
    """Write each frame into ``out_dir`` as CSV (or Parquet: the name's ``.csv`` becomes
    ``.parquet``), as the set ``name`` switched in one step (see the module doc)."""
    with OutputFolder(out_dir) as folder:
        return write_frames(folder, files, format, name)


def write_frames(
    folder: OutputFolder, files: Mapping[str, pd.DataFrame], format: str, name: str
) -> list[Path]:
    """:func:`write_outputs` into a folder already checked and locked."""
    if format not in FORMATS:
        raise ValueError(f"output format {format!r}: expected one of {', '.join(FORMATS)}")
    writer = write_parquet_frame if format == "parquet" else write_csv_frame
    suffix = ".parquet" if format == "parquet" else ".csv"
    writers = {
        str(Path(file).with_suffix(suffix)): _writing(writer, frame)
        for file, frame in files.items()
    }
    return folder.write(f"{name}.{format}", writers)


def _writing(writer, frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: writer(path, frame)
