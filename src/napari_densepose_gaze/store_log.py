"""The frame log of a results store: what happened to each frame, one checksummed line per event.

``frames.log`` is append-only. Each line is ``<crc32 of payload, 8 hex digits> <JSON payload>``;
the events are::

    {"frame": i, "event": "done", "detections": [[person, x1, y1, x2, y2, score], ...],
     "chunks": {"labels": [size, crc32] | null, "persons": ...}}   # older lines have no chunks
    {"frame": i, "event": "edited"}                                 # corrected by hand
    {"frame": i, "event": "reset"}                                  # forget the frame
    {"frames": [i, ...], "event": "claimed", "by": writer}          # a run is computing them
    {"frames": [i, ...], "event": "released", "by": writer}         # ... no longer

A frame is processed while its last done line has not been undone by a reset;
``chunks`` records the size and checksum of each chunk file the done line vouches
for (null: no file, the frame is all background). A done line never clears an
edit mark: a writer that overwrites an edit logs a reset first, so an edit that
lands after the writer looked is kept whatever order the lines are replayed in.

Why a kill can never corrupt it: a line is appended with one ``write`` and
fsynced; a line cut short has no newline (not read until one follows) or a
wrong checksum (ignored), and the next append starts on a fresh line. Readers
in other processes pick up new lines incrementally (:meth:`FrameLog.sync`).
Writers serialise through :meth:`FrameLog.locked`, an exclusive lock on the
log file shared by the threads of this handle, other handles and other
processes (``flock``; where it is missing, as on Windows, only within a handle).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DoneFrame", "FrameLog", "LOG_NAME", "format_line", "parse_line"]

LOG_NAME = "frames.log"

@dataclass(frozen=True)
class DoneFrame:
    """What the done line of a processed frame says."""

    detections: list[list[float]]
    # array name -> (size, crc32) or None for "no file"; None for lines written before checksums
    chunks: Mapping[str, tuple[int, int] | None] | None


class FrameLog:
    """The replayed state of ``frames.log`` plus appending to it; one per store handle.

    The state (:attr:`done`, :attr:`edited`, :attr:`claims`) is only current
    after :meth:`sync`, which :meth:`locked` does on entry; read it under
    :meth:`locked` (writers) or right after :meth:`sync` (readers).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._mutex = threading.RLock()  # the threads of this handle
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._offset = 0  # bytes of the file replayed so far (always at a line end)
        self.done: dict[int, DoneFrame] = {}
        self.edited: set[int] = set()
        self.claims: dict[int, str] = {}  # frame -> writer that claimed it
        self.sync()

    @property
    def path(self) -> Path:
        return self._path

    # ------------------------------------------------------------------ reading
    def sync(self) -> None:
        """Apply the lines appended since the last sync, by this handle or any other process."""
        with self._mutex:
            try:
                size = self._path.stat().st_size
            except FileNotFoundError:
                return
            if size <= self._offset:
                return
            with self._path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read(size - self._offset)
            end = chunk.rfind(b"\n") + 1  # an unterminated tail is not complete yet
            for raw in chunk[:end].splitlines():
                record = parse_line(raw)
                if record is not None:
                    self._apply(record)
            self._offset += end

    def _apply(self, record: dict[str, Any]) -> None:
        event = record["event"]
        if event in ("claimed", "released"):
            for frame in record["frames"]:
                if event == "claimed":
                    self.claims[frame] = record["by"]
                elif self.claims.get(frame) == record["by"]:
                    del self.claims[frame]
            return
        frame = record["frame"]
        if event == "done":
            chunks = record.get("chunks")
            self.done[frame] = DoneFrame(
                record["detections"],
                None if chunks is None else {k: None if v is None else (v[0], v[1]) for k, v in chunks.items()},
            )
            self.claims.pop(frame, None)
        elif event == "edited":
            self.edited.add(frame)
        elif event == "reset":
            self.done.pop(frame, None)
            self.edited.discard(frame)

    @contextlib.contextmanager
    def current(self) -> Iterator[FrameLog]:
        """The state synced and kept still (against this handle's other threads) while the block runs."""
        with self._mutex:
            self.sync()
            yield self

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def locked(self) -> Iterator[FrameLog]:
        """Hold the log's exclusive lock (re-entrant within a thread) with the state synced."""
        with self._mutex:
            if self._lock_depth == 0:
                fd = os.open(self._path, os.O_RDWR)
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                self.sync()
                yield self
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    fd, self._lock_fd = self._lock_fd, None
                    os.close(fd)  # type: ignore[arg-type]  # closing releases the flock

    def append(self, *records: Mapping[str, Any]) -> None:
        """Append the records as checksummed lines in one write, fsync, and apply them.

        Call it inside :meth:`locked` whenever another writer might append too.
        """
        data = b"".join(format_line(record) for record in records)
        with self._mutex:
            fd = os.open(self._path, os.O_RDWR | os.O_APPEND)
            try:
                size = os.fstat(fd).st_size
                # A line cut short by a kill has no newline; start on a fresh line
                # so the cut line stays invalid on its own instead of eating this one.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                written = os.write(fd, data)  # one write: a kill leaves all or a prefix of it
                if written != len(data):
                    raise OSError(f"short write to {self._path} ({written} of {len(data)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)
            self.sync()

    # ------------------------------------------------------------------ records
    @staticmethod
    def done_record(
        frame: int, detections: Sequence[Sequence[float]], chunks: Mapping[str, tuple[int, int] | None]
    ) -> dict[str, Any]:
        return {
            "frame": frame,
            "event": "done",
            "detections": [list(d) for d in detections],
            "chunks": {k: None if v is None else list(v) for k, v in chunks.items()},
        }

    @staticmethod
    def frame_record(frame: int, event: str) -> dict[str, Any]:
        """An ``edited`` or ``reset`` line."""
        if event not in ("edited", "reset"):
            raise ValueError(f"event must be 'edited' or 'reset', not {event!r}")
        return {"frame": frame, "event": event}

    @staticmethod
    def claim_record(frames: Iterable[int], writer: str, *, release: bool = False) -> dict[str, Any]:
        return {"frames": [int(f) for f in frames], "event": "released" if release else "claimed", "by": writer}


def format_line(record: Mapping[str, Any]) -> bytes:
    payload = json.dumps(dict(record), separators=(",", ":"), allow_nan=False)
    return f"{zlib.crc32(payload.encode()):08x} {payload}\n".encode()


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """A log record, or None for a line cut short, damaged or of an unknown shape."""
    crc, _, payload = raw.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    event = record.get("event")
    if event in ("claimed", "released"):
        frames = record.get("frames")
        if not isinstance(record.get("by"), str) or not isinstance(frames, list):
            return None
        return record if all(isinstance(f, int) for f in frames) else None
    if not isinstance(record.get("frame"), int) or event not in ("done", "edited", "reset"):
        return None
    if event == "done" and not isinstance(record.get("detections"), list):
        return None
    return record
