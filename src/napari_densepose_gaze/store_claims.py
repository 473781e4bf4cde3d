"""Who is writing a results store: one lease per writing handle, alive exactly as long as its holder.

A run claims the frames it is about to compute (a ``claimed`` line in the frame
log, naming its lease), so a second run on the same store skips them. A claim
only counts while its lease is alive: each lease is a file
``<store>/writers/<lease>.lock`` that its holder keeps ``flock``-ed, and the
kernel drops that lock when the holder exits in any way, SIGKILL included.
So a killed run's claims expire at once, without timeouts and without trusting
process ids (which get reused). The lease name carries host and pid only to
help a person reading the log.

Where ``flock`` is missing (Windows) leases of other processes count as dead:
claims then only keep the runs of one process apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .store_log import WRITERS_FOLDER, DoneFrame, FrameLog, writer_name

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["WRITERS_FOLDER", "WriterLease", "claimable", "lease_is_alive"]


class WriterLease:
    """This handle's identity as a writer of the store in ``folder``; :meth:`close` ends it."""

    def __init__(self, folder: Path) -> None:
        self.name = writer_name()
        self._folder = folder
        self._path = folder / WRITERS_FOLDER / f"{self.name}.lock"
        self._path.parent.mkdir(exist_ok=True)
        self._fd: int | None = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh name: never held by another

    @property
    def alive(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        if self._fd is None:
            return
        self._path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def lease_is_alive(folder: Path, name: str, own: WriterLease | None = None) -> bool:
    """Whether the lease ``name`` of the store in ``folder`` is still held by a live writer."""
    if own is not None and name == own.name:
        return own.alive
    if fcntl is None:
        return False
    path = folder / WRITERS_FOLDER / f"{name}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    # Nobody holds it: its writer died without closing. Remove the leftover.
    path.unlink(missing_ok=True)
    return False


def claimable(
    log: FrameLog,
    folder: Path,
    lease: WriterLease,
    wanted: Sequence[int],
    seen_done: Mapping[int, DoneFrame],
    *,
    overwrite_edited: bool,
) -> list[int]:
    """The frames of ``wanted`` (pending when last looked at) that ``lease`` may claim now.

    Call under the log's lock. Left out: frames a live other writer claimed,
    and frames edited or stored since (``seen_done``: the done records of
    frames that were pending because damaged).
    """
    alive: dict[str, bool] = {}
    mine = []
    for i in wanted:
        holder = log.claims.get(i)
        if holder is not None and holder != lease.name:
            if holder not in alive:
                alive[holder] = lease_is_alive(folder, holder, lease)
            if alive[holder]:
                continue
        if i in log.edited and not overwrite_edited:
            continue
        if i in log.done and log.done[i] is not seen_done.get(i):
            continue
        mine.append(i)
    return mine
