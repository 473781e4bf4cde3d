"""Durable file writes: a reader sees the old file or the new one, never half of one.

:func:`atomic_write` writes to a temporary file in the target's folder, fsyncs
it, renames it over the target and fsyncs the folder, so the rename survives a
crash too. Every file the project writes for a user (CSV tables, settings,
person ids, videos, sample recordings) goes through it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import DensePoseGazeError

__all__ = ["atomic_write", "atomic_path", "export_folder", "fsync_dir"]


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, what: str = "the file") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it replaces ``path`` durably.

    For writers that want a file name (a video muxer, ``DataFrame.to_csv``).
    On an error the temporary file is removed and ``path`` is unchanged; an
    ``OSError`` becomes a :class:`DensePoseGazeError` naming ``path``.
    """
    target = Path(path)
    tmp = _temporary(target)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        raise DensePoseGazeError(
            f"Cannot write {what} {target}: {exc}. Close it in other programs, free disk space, "
            "or choose a folder you can write to."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None,
    what: str = "the file",
) -> Iterator[IO]:
    """An open file that replaces ``path`` durably when the block ends without an error (see module)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path, what=what) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()


def export_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder`` for exported files, created if needed; a clear error if it cannot be."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DensePoseGazeError(
            f"Cannot create the export folder {path}: {exc}. Choose a folder you can write to."
        ) from exc
    return path
