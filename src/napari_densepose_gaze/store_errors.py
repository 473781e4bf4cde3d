"""What a results store tells its user when the file system refuses to read or write it.

An ``OSError`` alone names a file and an errno; a user needs to know what was
not stored, that what was stored before is safe, and what to do next. The
store's modules raise these instead of the bare error.
"""

from __future__ import annotations

import errno
from pathlib import Path

from .errors import DensePoseGazeError

__all__ = ["open_error", "write_error"]

_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def write_error(folder: Path, what: str, exc: OSError) -> DensePoseGazeError:
    """``what`` (e.g. "frame 12") could not be stored in the store in ``folder``."""
    if exc.errno in _NO_SPACE:
        return DensePoseGazeError(
            f"The disk holding the results store {folder} is full: {what} was not stored. "
            "Every frame stored before is kept; free disk space and run again to resume."
        )
    return DensePoseGazeError(
        f"Cannot store {what} in the results store {folder}: {exc}. Check the folder's "
        "permissions and free space, then run again to resume."
    )


def open_error(folder: Path, exc: Exception) -> DensePoseGazeError:
    """The store in ``folder`` cannot be opened: unreadable (``OSError``) or with damaged metadata (other errors)."""
    if isinstance(exc, PermissionError):
        todo = ("This user may not read it: fix the file permissions of the folder and its files, "
                "or open a copy you can read.")
    elif isinstance(exc, OSError):
        todo = "Check that the disk holding it is reachable, then try again."
    else:  # a zarr.json that is not what the store wrote
        todo = ("Its zarr.json files are damaged: restore them from a copy, or create the store anew "
                "with overwrite=True (the stored results are lost).")
    return DensePoseGazeError(f"Cannot open the results store {folder}: {str(exc).rstrip('.')}. {todo}")
