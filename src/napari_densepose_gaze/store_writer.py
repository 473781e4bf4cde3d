"""Every change of a results store's frames, each made one step under the frame log's lock.

Why a frame survives a SIGKILL at any moment: its chunks are encoded and
fsynced to temporary files first (:meth:`.FrameChunks.stage`, outside any
lock, as compression is the slow part); then, under the log's lock, the
frame's "done" mark is withdrawn, the files are renamed into place and a
"done" line carrying the detections and each chunk's size and crc32 is
appended. A frame counts as processed only while its last log line says so, so
a half-written frame is simply pending again.

Why hand edits and runs coexist: marking a frame edited takes the same lock as
writing one, so a writer either sees the mark and keeps the frame (returns
False), or its done line lands before the mark and the edit stays marked.
Runs claim the frames they compute (:mod:`.store_claims`), so two runs on one
store share the work; a killed run's claims die with it.

Callers (:class:`.ResultsStore`) check frame numbers and values; here every
``OSError`` becomes a message saying what was not stored (:func:`.write_error`).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from .errors import DensePoseGazeError
from .store_chunks import FrameChunks, checksum
from .store_claims import WriterLease, claimable
from .store_errors import write_error
from .store_log import DoneFrame, FrameLog
from .store_verify import FrameVerifier

__all__ = ["FrameWriter"]


class FrameWriter:
    """Writes, marks, resets and claims the frames of one store handle."""

    def __init__(self, folder: Path, log: FrameLog, chunks: Mapping[str, FrameChunks], verifier: FrameVerifier) -> None:
        self._folder = folder
        self._log = log
        self._chunks = chunks
        self._verifier = verifier
        self._lease: WriterLease | None = None

    def write(self, frame: int, maps: Mapping[str, np.ndarray], records: list[list[float]], *,
              overwrite_edited: bool, gazed: tuple[float, str] | None = None) -> bool:
        """Store ``maps`` (one per array) and the detection ``records`` as frame ``frame``; False: kept as edited."""
        staged: dict[str, Path | None] = {}
        try:
            # Done before taking the lock so several threads and processes write
            # frames at once; only putting them in place is serialised.
            sums = {}
            for name, chunks in self._chunks.items():
                data = chunks.encode(maps[name])
                sums[name] = checksum(data)
                staged[name] = chunks.stage(frame, data)
            with self._log.locked() as log:
                if frame in log.edited and not overwrite_edited:
                    return False
                # Withdraw the mark first, so a kill while the chunks change
                # leaves the frame pending rather than "done" with mixed data.
                if frame in log.done or frame in log.edited:
                    log.append(FrameLog.frame_record(frame, "reset"))
                for name, chunks in self._chunks.items():
                    chunks.install(frame, staged[name])
                    staged[name] = None
                    self._verifier.note_intact(frame, name, sums[name])
                log.append(FrameLog.done_record(frame, records, sums, gazed))
            return True
        except OSError as exc:
            raise write_error(self._folder, f"frame {frame}", exc) from exc
        finally:
            for path in staged.values():
                if path is not None:
                    path.unlink(missing_ok=True)

    def mark_edited(self, frame: int) -> None:
        with self._log.current() as log:
            if frame in log.edited:
                return
        try:
            with self._log.locked() as log:
                if frame not in log.edited:
                    log.append(FrameLog.frame_record(frame, "edited"))
        except OSError as exc:
            raise write_error(self._folder, f"the edit mark of frame {frame}", exc) from exc

    @contextlib.contextmanager
    def editing(self, frame: int) -> Iterator[None]:
        try:
            with self._log.locked() as log:
                if frame not in log.edited:
                    log.append(FrameLog.frame_record(frame, "edited"))
                yield
        except OSError as exc:
            raise write_error(self._folder, f"the hand edit of frame {frame}", exc) from exc

    def clear(self, frame: int) -> None:
        try:
            with self._log.locked() as log:
                log.append(FrameLog.frame_record(frame, "reset"))
                for chunks in self._chunks.values():
                    chunks.install(frame, None)  # no chunk file reads as the fill value, 0
        except OSError as exc:
            raise write_error(self._folder, f"the reset of frame {frame}", exc) from exc

    # ----------------------------------------------------------------- claims
    def claim(self, wanted: list[int], damaged: Mapping[int, DoneFrame], *, overwrite_edited: bool) -> list[int]:
        """Claim those of the pending frames ``wanted`` that no other live run claimed."""
        try:
            with self._log.locked() as log:
                lease = self._writer_lease()
                mine = claimable(log, self._folder, lease, wanted, damaged, overwrite_edited=overwrite_edited)
                if mine:
                    log.append(FrameLog.claim_record(mine, lease.name))
        except OSError as exc:
            raise write_error(self._folder, "the claim of frames", exc) from exc
        return mine

    def release(self, frames: Iterable[int] | None = None) -> None:
        """Give up this handle's claims on ``frames`` (default: all)."""
        if self._lease is None:
            return
        wanted = None if frames is None else {int(f) for f in frames}
        try:
            with self._log.locked() as log:
                mine = [i for i, holder in log.claims.items()
                        if holder == self._lease.name and (wanted is None or i in wanted)]
                if mine:
                    log.append(FrameLog.claim_record(sorted(mine), self._lease.name, release=True))
        except OSError as exc:
            raise write_error(self._folder, "the release of claimed frames", exc) from exc

    def close(self) -> None:
        """Release every claim and end the writer lease."""
        if self._lease is not None:
            with contextlib.suppress(DensePoseGazeError):
                self.release()
            self._lease.close()
            self._lease = None

    def _writer_lease(self) -> WriterLease:
        if self._lease is None:
            self._lease = WriterLease(self._folder)
            weakref.finalize(self, self._lease.close)
        return self._lease
