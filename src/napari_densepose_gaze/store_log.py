"""The frame log of a results store: what happened to each frame, one checksummed line per event.

The log is append-only. Each line is ``<crc32 of payload, 8 hex digits> <JSON payload>``;
the events are::

    {"frame": i, "event": "done", "detections": [[person, x1, y1, x2, y2, score], ...],
     "chunks": {"labels": [size, crc32] | null, "persons": ...},    # older lines have no chunks
     "gazed": [radius, "px" | "deg"]}                               # only gaze-guided frames have it
    {"frame": i, "event": "edited"}                                 # corrected by hand
    {"frame": i, "event": "reset"}                                  # forget the frame
    {"frames": [i, ...], "event": "claimed", "by": writer}          # a run is computing them
    {"frames": [i, ...], "event": "released", "by": writer}         # ... no longer

and each line written by this version also carries ``"seq"``, its place in the
order of events (lines without one, from older versions, take the place of the
line before them in their file).

A frame is processed while its last done line has not been undone by a reset;
``chunks`` records the size and checksum of each chunk file the done line vouches
for (null: no file, the frame is all background); ``gazed`` marks a frame whose
DensePose heads ran only for the detections within that hit radius of its gaze
(:mod:`.gaze_guided`), and its absence (on every line of older versions) a frame
where every detection has its body parts. A done line never clears an
edit mark: a writer that overwrites an edit logs a reset first, so an edit that
lands after the writer looked is kept whatever order the lines are replayed in.

Where the lines live: ``frames.log``, or, once a store is shared between hosts
(:func:`share_between_hosts`, done by cluster runs), one segment per writing
handle, ``writers/<writer>.log``. Appends to one file from several hosts are
not atomic on network file systems (NFS), so there every file has a single
writer and the reader merges them all, ordered by ``(seq, file, position)``.
A writer numbers its lines one above the highest number it has seen, under the
lock, so the merged order is the order in which writers held the lock; should
the lock not reach across hosts, the order is still the same for every reader.

Why a kill can never corrupt it: a line is appended with one ``write`` and
fsynced; a line cut short has no newline (not read until one follows) or a
wrong checksum (ignored), and the next append starts on a fresh line. Readers
in other processes pick up new lines incrementally (:meth:`FrameLog.sync`).
Writers serialise through :meth:`FrameLog.locked`, an exclusive lock on
``frames.log`` shared by the threads of this handle, other handles and other
processes (``flock``; where it is missing, as on Windows, only within a handle).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .durable import fsync_dir

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = [
    "DoneFrame", "FrameLog", "LOG_NAME", "SEGMENT_SUFFIX", "SHARED_MARKER", "WRITERS_FOLDER", "covers",
    "format_line", "parse_line", "share_between_hosts", "writer_name",
]

LOG_NAME = "frames.log"
#: The folder of a store that holds one lease (``.lock``) and, once shared, one log segment per writer.
WRITERS_FOLDER = "writers"
SEGMENT_SUFFIX = ".log"
#: Its presence in the writers folder makes every writer append to a segment of its own.
SHARED_MARKER = "shared-between-hosts"
# A reader that is not holding the lock reads the files one after the other; it
# reads again until no file grew meanwhile, so what it saw is a prefix of the order.
_MAX_READ_PASSES = 8
# A sort key of a line: (seq, file, offset); files sort by name, frames.log first.
_Key = tuple[int, str, int]


def writer_name() -> str:
    """A name no other writer has, carrying host and pid to help a person reading the store."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:60] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def share_between_hosts(store_folder: str | os.PathLike[str]) -> None:
    """From now on, let every writer of the store in ``store_folder`` append to a log segment of its own.

    Idempotent. Versions from before segments do not read them: open such a
    store with this version or later.
    """
    folder = Path(store_folder) / WRITERS_FOLDER
    folder.mkdir(exist_ok=True)
    marker = folder / SHARED_MARKER
    if not marker.exists():
        marker.touch()
        fsync_dir(folder)


@dataclass(frozen=True)
class DoneFrame:
    """What the done line of a processed frame says."""

    detections: list[list[float]]
    # array name -> (size, crc32) or None for "no file"; None for lines written before checksums
    chunks: Mapping[str, tuple[int, int] | None] | None
    # (radius, unit) the DensePose heads were limited to around the gaze; None: every detection has its parts
    gazed: tuple[float, str] | None = None

    def covers(self, gazed: tuple[float, str] | None) -> bool:
        """Whether the frame has the body parts a run limited to ``gazed`` needs (None: every detection's)."""
        return covers(self.gazed, gazed)


def covers(made: tuple[float, str] | None, needed: tuple[float, str] | None) -> bool:
    """Whether body parts made for the hit radius ``made`` serve ``needed`` ((radius, unit); None: everyone)."""
    if made is None:
        return True
    # A wider radius in the same unit reaches every detection a narrower one does.
    return needed is not None and needed[1] == made[1] and needed[0] <= made[0]


@dataclass
class _FileState:
    offset: int = 0  # bytes replayed so far (always at a line end)
    seen: int = 0  # the file's size when last read
    seq: int = 0  # the seq of its last line, inherited by a following line without one


class FrameLog:
    """The replayed state of a store's frame log plus appending to it; one per store handle.

    The state (:attr:`done`, :attr:`edited`, :attr:`claims`) is only current
    after :meth:`sync`, which :meth:`locked` does on entry; read it under
    :meth:`locked` (writers) or right after :meth:`sync` (readers).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._segments = self._path.parent / WRITERS_FOLDER
        self._mutex = threading.RLock()  # the threads of this handle
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._segment: Path | None = None  # this handle's own segment, made at its first append there
        self._reset_state()
        self.sync()

    def _reset_state(self) -> None:
        self._files: dict[str, _FileState] = {}
        self._last_key: _Key | None = None  # of the last line applied
        self._max_seq = 0  # the highest seq read, applied or not
        self.done: dict[int, DoneFrame] = {}
        self.edited: set[int] = set()
        self.claims: dict[int, str] = {}  # frame -> writer that claimed it

    @property
    def path(self) -> Path:
        return self._path

    @property
    def shared(self) -> bool:
        """Whether writers append to segments of their own (:func:`share_between_hosts`)."""
        return (self._segments / SHARED_MARKER).exists()

    # ------------------------------------------------------------------ reading
    def sync(self) -> None:
        """Apply the lines appended since the last sync, by this handle or any other process."""
        with self._mutex:
            lines = self._read_new()
            if not lines:
                return
            lines.sort(key=lambda line: line[0])
            if self._last_key is not None and lines[0][0] < self._last_key:
                # Lines that belong before ones already applied: only when the
                # lock did not order the writers. Replay all, in the one order.
                self._reset_state()
                lines = sorted(self._read_new(), key=lambda line: line[0])
            for _key, record in lines:
                self._apply(record)
            self._last_key = lines[-1][0] if lines else self._last_key

    def _read_new(self) -> list[tuple[_Key, dict[str, Any]]]:
        lines: list[tuple[_Key, dict[str, Any]]] = []
        for _ in range(_MAX_READ_PASSES):
            sizes = self._sizes()
            if any(size < self._files[name].offset for name, size in sizes.items() if name in self._files):
                self._reset_state()  # a file was replaced (a store made anew in its place): start over
                return self._read_new()
            grown = [(name, size) for name, size in sizes.items()
                     if size != self._files.setdefault(name, _FileState()).seen]
            if not grown:
                break
            for name, size in grown:
                lines.extend(self._read_file(name, size))
        return lines

    def _sizes(self) -> dict[str, int]:
        """The size of every file of the log, by name relative to the store (frames.log first)."""
        sizes = {}
        with contextlib.suppress(FileNotFoundError):
            sizes[LOG_NAME] = self._path.stat().st_size
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            with os.scandir(self._segments) as entries:
                for entry in entries:
                    if entry.name.endswith(SEGMENT_SUFFIX):
                        with contextlib.suppress(FileNotFoundError):
                            sizes[f"{WRITERS_FOLDER}/{entry.name}"] = entry.stat().st_size
        return sizes

    def _read_file(self, name: str, size: int) -> list[tuple[_Key, dict[str, Any]]]:
        state = self._files[name]
        path = self._path if name == LOG_NAME else self._path.parent / name
        try:
            with path.open("rb") as f:
                f.seek(state.offset)
                chunk = f.read(max(0, size - state.offset))
        except FileNotFoundError:
            return []
        state.seen = state.offset + len(chunk)
        end = chunk.rfind(b"\n") + 1  # an unterminated tail is not complete yet
        lines = []
        position = state.offset
        for raw in chunk[:end].split(b"\n")[:-1]:
            record = parse_line(raw)
            if record is not None:
                state.seq = record.pop("seq", state.seq)
                self._max_seq = max(self._max_seq, state.seq)
                lines.append(((state.seq, name, position), record))
            position += len(raw) + 1
        state.offset += end
        return lines

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
                None if record.get("gazed") is None else (float(record["gazed"][0]), str(record["gazed"][1])),
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
                    os.close(fd)  # closing releases the flock

    def append(self, *records: Mapping[str, Any]) -> None:
        """Append the records as checksummed lines in one write, fsync, and apply them.

        Call it inside :meth:`locked` whenever another writer might append too:
        only there is the highest number seen the highest of all.
        """
        with self._mutex:
            seq = self._max_seq + 1
            data = b"".join(format_line({**record, "seq": seq}) for record in records)
            target = self._own_segment() if self.shared else self._path
            fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                # A line cut short by a kill has no newline; start on a fresh line
                # so the cut line stays invalid on its own instead of eating this one.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                written = os.write(fd, data)  # one write: a kill leaves all or a prefix of it
                if written != len(data):
                    raise OSError(f"short write to {target} ({written} of {len(data)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)
            self.sync()

    def _own_segment(self) -> Path:
        if self._segment is None:
            self._segment = self._segments / f"{writer_name()}{SEGMENT_SUFFIX}"
            os.close(os.open(self._segment, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            fsync_dir(self._segments)  # the segment's name must outlive a crash as its lines do
        return self._segment

    # ------------------------------------------------------------------ records
    @staticmethod
    def done_record(
        frame: int,
        detections: Sequence[Sequence[float]],
        chunks: Mapping[str, tuple[int, int] | None],
        gazed: tuple[float, str] | None = None,
    ) -> dict[str, Any]:
        record = {
            "frame": frame,
            "event": "done",
            "detections": [list(d) for d in detections],
            "chunks": {k: None if v is None else list(v) for k, v in chunks.items()},
        }
        if gazed is not None:  # absent on full frames, so their lines read as before in older versions
            record["gazed"] = [float(gazed[0]), str(gazed[1])]
        return record

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
    seq = record.get("seq", 0)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
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
    if event == "done" and not _is_radius(record.get("gazed")):
        return None
    return record


def _is_radius(value: Any) -> bool:
    """None, or ``[radius, unit]`` as a gaze-guided done line carries it."""
    if value is None:
        return True
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (int, float))
            and not isinstance(value[0], bool) and value[1] in ("px", "deg"))
