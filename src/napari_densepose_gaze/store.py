"""The results store: DensePose output of one recording, on disk, resumable, editable.

One folder per recording (by default beside the export, see
:meth:`ResultsStore.default_folder`)::

    <folder>/zarr.json        zarr v3 group; attributes hold the run metadata
    <folder>/labels/          (frames, height, width) uint8 body-part ids, 0 = background
    <folder>/persons/         (frames, height, width) uint8 person index, 0 = nobody
    <folder>/frames.log       append-only log of frame events (done + detections,
                              edited, reset), one checksummed JSON line per event
    <folder>/person_ids.csv   optional: stable person ids linking detections across
                              frames (:mod:`.tracking`), replaced atomically

Why it survives a SIGKILL at any moment: zarr (>= 3.1.3) writes each chunk to a
temporary file and renames it into place, so a chunk is always either old or
new; :meth:`ResultsStore.write_frame` first withdraws a frame's "done" mark,
then writes (and fsyncs) its chunks, and only then appends the "done" line that
carries the detections. A frame counts as processed only while its last log
line says so, so a half-written frame is simply pending again. A line cut short
by a kill has no newline or a wrong checksum and is ignored.

The arrays are plain ``zarr.Array`` objects (``store.labels``, ``store.persons``)
that napari can show and paint as Labels layers directly; hand edits are
recorded with :meth:`ResultsStore.mark_edited` and are never overwritten by a
re-run unless asked.

Requires zarr >= 3.1.3 (zarr v3 format; atomic chunk writes of ``LocalStore``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec

from .errors import DensePoseGazeError

__all__ = ["DETECTION_COLUMNS", "PERSON_ID_COLUMNS", "RESULT_DEFINING_KEYS", "ResultsStore"]

#: Columns of :meth:`ResultsStore.detections`, one row per detection.
DETECTION_COLUMNS = ("frame", "person", "x1 [px]", "y1 [px]", "x2 [px]", "y2 [px]", "score")
_BOX_COLUMNS = DETECTION_COLUMNS[2:6]

#: Metadata keys whose values decide what the stored results are. Re-opening a
#: store for writing with different values is refused: the frames would mix
#: two models or thresholds.
RESULT_DEFINING_KEYS = ("recording_id", "model", "checkpoint_sha256", "score_threshold", "input_size")

_ATTRS_KEY = "napari_densepose_gaze"
_FORMAT_VERSION = 1
_LOG_NAME = "frames.log"
_PERSON_IDS_NAME = "person_ids.csv"
#: Columns of :meth:`ResultsStore.person_ids`: a detection and its stable id.
PERSON_ID_COLUMNS = (*DETECTION_COLUMNS, "person id")
_ARRAY_NAMES = ("labels", "persons")
# Leftover temporary chunk files of a killed writer older than this are removed
# when a store is opened for writing; younger ones may belong to a live writer.
_STALE_PARTIAL_S = 600.0


class ResultsStore:
    """Per-frame body-part labels, person index and detections of one recording.

    Make one with :meth:`create`, open an existing one with :meth:`open`.
    Frame indices are 0-based positions in the scene video.
    """

    def __init__(self, folder: Path, group: zarr.Group, mode: Literal["r", "r+"]) -> None:
        # Use create() / open(); this only wires the parts together.
        self._folder = folder
        self._group = group
        self._mode = mode
        self._labels: zarr.Array = group["labels"]  # type: ignore[assignment]
        self._persons: zarr.Array = group["persons"]  # type: ignore[assignment]
        self._log_path = folder / _LOG_NAME
        self._lock = threading.RLock()
        # State replayed from the log; frames.log is read incrementally so a
        # second process (napari beside a command-line run) sees new frames.
        self._log_offset = 0
        self._done: dict[int, list[list[float]]] = {}
        self._edited: set[int] = set()
        self._writing: set[int] = set()  # frames whose chunks a thread is writing now
        self._sync()

    # ------------------------------------------------------------------ making
    @staticmethod
    def default_folder(recording_folder: str | os.PathLike[str]) -> Path:
        """The default store folder: ``<recording folder>.densepose`` beside the export.

        A sibling rather than a subfolder keeps the export untouched (it can be
        re-downloaded or read by other tools). Any other folder works too.
        """
        recording = Path(recording_folder).expanduser().resolve()
        return recording.with_name(recording.name + ".densepose")

    @classmethod
    def create(
        cls,
        folder: str | os.PathLike[str],
        *,
        n_frames: int,
        height: int,
        width: int,
        metadata: Mapping[str, Any],
        exist_ok: bool = False,
        overwrite: bool = False,
    ) -> ResultsStore:
        """Make a new store, or (``exist_ok``) reopen a matching one to resume.

        With ``exist_ok=True`` an existing store is opened for writing when its
        shape and its result-defining metadata (:data:`RESULT_DEFINING_KEYS`)
        match; other metadata values (device, date, ...) are updated.
        ``overwrite=True`` deletes an existing store in ``folder`` (hand edits
        included) and starts over.
        """
        folder = Path(folder).expanduser()
        shape = (int(n_frames), int(height), int(width))
        if min(shape) < 1:
            raise DensePoseGazeError(
                f"Cannot create a results store in {folder} with {n_frames} frames of "
                f"{height}x{width} pixels: all three must be positive."
            )
        metadata = _json_roundtrip(metadata, folder)
        if _is_store(folder):
            if overwrite:
                _remove_store(folder)
            elif not exist_ok:
                raise DensePoseGazeError(
                    f"{folder} already holds a results store. Open it to resume "
                    "(exist_ok=True), pass overwrite=True to delete it and start over, "
                    "or choose another folder."
                )
            else:
                store = cls.open(folder, mode="r+")
                store._check_compatible(shape, metadata)
                store._group.attrs[_ATTRS_KEY] = {
                    **store._group.attrs[_ATTRS_KEY],  # type: ignore[dict-item]
                    "metadata": {**store.metadata, **metadata},
                }
                return store
        elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise DensePoseGazeError(
                f"{folder} exists and is not a results store: choose a new or empty "
                "folder for the results."
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            group = zarr.open_group(store=folder, mode="w-", zarr_format=3)
            # Blosc/zstd without shuffle: label maps of 1200x1600 px shrink to a
            # few kB; one chunk per frame matches how frames are written and shown.
            for name in _ARRAY_NAMES:
                group.create_array(
                    name,
                    shape=shape,
                    dtype="uint8",
                    chunks=(1, shape[1], shape[2]),
                    compressors=BloscCodec(cname="zstd", clevel=5, shuffle="noshuffle"),
                    fill_value=0,
                    dimension_names=("frame", "y", "x"),
                )
            (folder / _LOG_NAME).touch()
            # The group attributes come last: a folder without them is not a
            # store, so a creation cut short is never mistaken for one.
            group.attrs[_ATTRS_KEY] = {"format_version": _FORMAT_VERSION, "metadata": metadata}
        except OSError as exc:
            raise DensePoseGazeError(
                f"Cannot create a results store in {folder}: {exc}. Choose a folder "
                "you can write to."
            ) from exc
        return cls(folder, group, "r+")

    @classmethod
    def open(cls, folder: str | os.PathLike[str], mode: Literal["r", "r+"] = "r") -> ResultsStore:
        """Open an existing store, read-only (``"r"``) or for writing (``"r+"``)."""
        folder = Path(folder).expanduser()
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}")
        if not folder.is_dir():
            raise DensePoseGazeError(
                f"No results store at {folder}: the folder does not exist. Check the "
                "path, or run DensePose on the recording first."
            )
        if not _is_store(folder):
            raise DensePoseGazeError(
                f"{folder} is not a results store of napari-densepose-gaze (no store "
                "attributes in zarr.json). Choose the folder the results were written to."
            )
        try:
            group = zarr.open_group(store=folder, mode=mode)
            info = group.attrs[_ATTRS_KEY]
            if int(info["format_version"]) > _FORMAT_VERSION:  # type: ignore[index,arg-type]
                raise DensePoseGazeError(
                    f"The results store {folder} was written by a newer version of "
                    "napari-densepose-gaze: update the package to read it."
                )
            missing = [n for n in _ARRAY_NAMES if n not in group]
            if missing or not (folder / _LOG_NAME).is_file():
                raise DensePoseGazeError(
                    f"The results store {folder} is incomplete (missing "
                    f"{', '.join(missing) or _LOG_NAME}). Create it anew with overwrite=True "
                    "or choose another folder."
                )
        except (OSError, KeyError, ValueError) as exc:
            raise DensePoseGazeError(f"Cannot open the results store {folder}: {exc}") from exc
        store = cls(folder, group, mode)
        if mode == "r+":
            store._check_writable()
            store._remove_stale_partials()
        return store

    # ---------------------------------------------------------------- reading
    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def labels(self) -> zarr.Array:
        """Body-part ids, (frames, height, width) uint8; napari Labels layer data."""
        return self._labels

    @property
    def persons(self) -> zarr.Array:
        """Person index per pixel (k = k-th detection of the frame), same shape."""
        return self._persons

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_frames, height, width)``."""
        return tuple(self._labels.shape)  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    @property
    def metadata(self) -> dict[str, Any]:
        """Run metadata (model, checkpoint SHA-256, score threshold, device, ...)."""
        return dict(self._group.attrs[_ATTRS_KEY]["metadata"])  # type: ignore[index,arg-type]

    def read_frame(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, persons)`` of one frame, each (height, width) uint8."""
        i = self._frame_index(frame)
        return np.asarray(self._labels[i]), np.asarray(self._persons[i])

    def processed_frames(self) -> np.ndarray:
        """Sorted indices of frames whose results are completely written."""
        with self._lock:
            self._sync()
            return np.array(sorted(self._done), dtype=np.int64)

    def is_processed(self, frame: int) -> bool:
        i = self._frame_index(frame)
        with self._lock:
            self._sync()
            return i in self._done

    def edited_frames(self) -> np.ndarray:
        """Sorted indices of frames a person corrected by hand."""
        with self._lock:
            self._sync()
            return np.array(sorted(self._edited), dtype=np.int64)

    def is_edited(self, frame: int) -> bool:
        i = self._frame_index(frame)
        with self._lock:
            self._sync()
            return i in self._edited

    def pending(self, frames: Iterable[int], *, overwrite_edited: bool = False) -> list[int]:
        """The frames of ``frames`` still to run, in the given order, without repeats.

        Processed frames are done. Frames edited by hand are left alone unless
        ``overwrite_edited`` (then they are redone even if processed).
        """
        with self._lock:
            self._sync()
            todo: list[int] = []
            seen: set[int] = set()
            for frame in frames:
                i = self._frame_index(frame)
                if i in seen:
                    continue
                seen.add(i)
                if i in self._edited:
                    if overwrite_edited:
                        todo.append(i)
                elif i not in self._done:
                    todo.append(i)
            return todo

    def detections(self, frames: Iterable[int] | None = None) -> pd.DataFrame:
        """Detections of processed frames, one row each (:data:`DETECTION_COLUMNS`)."""
        with self._lock:
            self._sync()
            wanted = sorted(self._done) if frames is None else sorted(
                {self._frame_index(f) for f in frames} & self._done.keys()
            )
            rows = [[i, *det] for i in wanted for det in self._done[i]]
        table = pd.DataFrame(rows, columns=list(DETECTION_COLUMNS))
        return table.astype(
            {"frame": "int64", "person": "int64", **dict.fromkeys(DETECTION_COLUMNS[2:], "float64")}
        )

    def person_ids(self) -> pd.DataFrame | None:
        """The stored person ids (:data:`PERSON_ID_COLUMNS`), or None if none were written.

        Rows whose detection has changed since (a frame re-run or reset) are
        dropped, so what comes back always describes the current detections;
        compare its length with :meth:`detections` to see whether ids are missing.
        """
        path = self._folder / _PERSON_IDS_NAME
        try:
            table = pd.read_csv(path)
            missing = [c for c in PERSON_ID_COLUMNS if c not in table]
            if missing:
                raise ValueError(f"the column(s) {', '.join(missing)} are missing")
            table = _typed_person_ids(table[list(PERSON_ID_COLUMNS)])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise DensePoseGazeError(
                f"Cannot read the person ids {path}: {exc}. Delete the file and link the "
                "detections again (napari_densepose_gaze.tracking.link_store)."
            ) from exc
        current = self.detections()
        merged = table.merge(current, on=["frame", "person"], how="inner", suffixes=("", " now"))
        same = np.ones(len(merged), dtype=bool)
        for col in DETECTION_COLUMNS[2:]:
            same &= np.isclose(merged[col].to_numpy(), merged[f"{col} now"].to_numpy(), rtol=0, atol=1e-6)
        return merged.loc[same, list(PERSON_ID_COLUMNS)].reset_index(drop=True)

    # ---------------------------------------------------------------- writing
    def write_person_ids(self, table: pd.DataFrame) -> None:
        """Store stable person ids: detections (:data:`DETECTION_COLUMNS`) plus ``person id``.

        Written to a temporary file that is fsynced and renamed over
        ``person_ids.csv``, so a kill leaves the old file or the new one.
        """
        self._check_writable()
        missing = [c for c in PERSON_ID_COLUMNS if c not in table]
        if missing:
            raise ValueError(f"person ids need the columns {PERSON_ID_COLUMNS}; missing {missing}")
        table = _typed_person_ids(table[list(PERSON_ID_COLUMNS)])
        path = self._folder / _PERSON_IDS_NAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock:
            try:
                with tmp.open("w", encoding="utf-8", newline="") as f:
                    table.to_csv(f, index=False, float_format="%.17g")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                _fsync_dir(self._folder)
            finally:
                tmp.unlink(missing_ok=True)

    def write_frame(
        self,
        frame: int,
        labels: np.ndarray,
        persons: np.ndarray,
        detections: pd.DataFrame | Sequence[Mapping[str, Any]] | None,
        *,
        overwrite_edited: bool = False,
    ) -> None:
        """Store one frame's results and mark it processed, safe against a kill at any point.

        ``detections`` has one row (or mapping) per detection with ``person``
        (optional: 1..n in order), ``x1 [px]``, ``y1 [px]``, ``x2 [px]``,
        ``y2 [px]`` (or ``x1``... without unit) and ``score``.
        A frame edited by hand is refused unless ``overwrite_edited``.
        """
        self._check_writable()
        i = self._frame_index(frame)
        height, width = self.shape[1:]
        labels = _as_uint8_map(labels, (height, width), "labels")
        persons = _as_uint8_map(persons, (height, width), "persons")
        records = _detection_records(detections)
        with self._lock:
            self._sync()
            if i in self._edited and not overwrite_edited:
                raise DensePoseGazeError(
                    f"Frame {i} of {self._folder} was corrected by hand; pass "
                    "overwrite_edited=True to replace the correction."
                )
            if i in self._writing:
                raise RuntimeError(f"frame {i} of {self._folder} is being written by another thread")
            # Withdraw the mark first, so a kill while the chunks change
            # leaves the frame pending rather than "done" with mixed data.
            if i in self._done or i in self._edited:
                self._append({"frame": i, "event": "reset"})
            self._writing.add(i)
        try:
            # Compressing and writing the chunks is the slow part (tens of ms at
            # Neon size): done outside the lock so several threads can write
            # different frames at once; only the log lines are serialised.
            self._labels[i] = labels
            self._persons[i] = persons
            self._fsync_frame_chunks(i)
            with self._lock:
                self._append({"frame": i, "event": "done", "detections": records})
        finally:
            with self._lock:
                self._writing.discard(i)

    def mark_edited(self, frame: int) -> None:
        """Record that a person changed this frame by hand (cheap if already marked)."""
        self._check_writable()
        i = self._frame_index(frame)
        with self._lock:
            self._sync()
            if i not in self._edited:
                self._append({"frame": i, "event": "edited"})

    def clear_frame(self, frame: int) -> None:
        """Forget a frame: not processed, not edited, labels and persons zero."""
        self._check_writable()
        i = self._frame_index(frame)
        with self._lock:
            self._sync()
            self._append({"frame": i, "event": "reset"})
            # Writing the fill value makes zarr delete the chunks.
            self._labels[i] = 0
            self._persons[i] = 0

    # --------------------------------------------------------------- internals
    def _frame_index(self, frame: int) -> int:
        i = int(frame)
        if i != frame or not 0 <= i < self.n_frames:
            raise DensePoseGazeError(
                f"Frame {frame!r} is outside the results store {self._folder}, which "
                f"holds frames 0..{self.n_frames - 1}. Check the frame selection."
            )
        return i

    def _check_writable(self) -> None:
        if self._mode != "r+":
            raise DensePoseGazeError(
                f"The results store {self._folder} is open read-only: open it with "
                "mode='r+' to write or edit."
            )
        if not os.access(self._folder, os.W_OK) or not os.access(self._log_path, os.W_OK):
            raise DensePoseGazeError(
                f"The results store {self._folder} is not writable (file permissions): "
                "choose a folder you can write to or fix the permissions."
            )

    def _check_compatible(self, shape: tuple[int, int, int], metadata: Mapping[str, Any]) -> None:
        if self.shape != shape:
            raise DensePoseGazeError(
                f"The results store {self._folder} holds {self.shape[0]} frames of "
                f"{self.shape[1]}x{self.shape[2]} px, but the recording has {shape[0]} "
                f"frames of {shape[1]}x{shape[2]} px. Choose another folder for this "
                "recording, or pass overwrite=True to delete the store and start over."
            )
        stored = self.metadata
        differing = [
            f"{key}: stored {stored.get(key)!r}, now {metadata.get(key)!r}"
            for key in RESULT_DEFINING_KEYS
            if (key in stored or key in metadata) and stored.get(key) != metadata.get(key)
        ]
        if differing:
            raise DensePoseGazeError(
                f"The results store {self._folder} was made with different settings "
                f"({'; '.join(differing)}). Choose another folder to keep both results, "
                "or pass overwrite=True to delete the stored results (hand edits "
                "included) and start over."
            )

    def _append(self, record: dict[str, Any]) -> None:
        """Append one checksummed line to the log, fsync it, and apply it."""
        payload = json.dumps(record, separators=(",", ":"), allow_nan=False)
        line = f"{zlib.crc32(payload.encode()):08x} {payload}\n".encode()
        fd = os.open(self._log_path, os.O_RDWR | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            # A line cut short by a kill has no newline; start on a fresh line
            # so the cut line stays invalid on its own instead of eating this one.
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)  # one write: a kill leaves all or a prefix of it
            os.fsync(fd)
        finally:
            os.close(fd)
        self._sync()

    def _sync(self) -> None:
        """Apply log lines appended since the last read (by us or another process)."""
        try:
            size = self._log_path.stat().st_size
        except FileNotFoundError:
            return
        if size == self._log_offset:
            return
        with self._log_path.open("rb") as f:
            f.seek(self._log_offset)
            chunk = f.read(size - self._log_offset)
        end = chunk.rfind(b"\n") + 1  # an unterminated tail is not read yet
        for raw in chunk[:end].splitlines():
            record = _parse_line(raw)
            if record is not None:
                self._apply(record)
        self._log_offset += end

    def _apply(self, record: dict[str, Any]) -> None:
        frame, event = record["frame"], record["event"]
        if event == "done":
            self._done[frame] = record["detections"]
            self._edited.discard(frame)  # fresh engine output replaces any edit
        elif event == "edited":
            self._edited.add(frame)
        elif event == "reset":
            self._done.pop(frame, None)
            self._edited.discard(frame)

    def _fsync_frame_chunks(self, frame: int) -> None:
        # zarr renames chunks into place but does not fsync them; do it so a
        # "done" line on disk never outlives the data it vouches for.
        for array in (self._labels, self._persons):
            grid = [range(math.ceil(n / c)) for n, c in zip(array.shape[1:], array.chunks[1:])]
            for coords in np.ndindex(*(len(r) for r in grid)):
                key = array.metadata.encode_chunk_key((frame, *coords))  # type: ignore[union-attr]
                path = self._folder / array.path / key
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # an all-zero chunk is not stored at all
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _remove_stale_partials(self) -> None:
        """Delete temporary chunk files that a killed writer left behind."""
        now = time.time()
        for name in _ARRAY_NAMES:
            for path in (self._folder / name).rglob("*.partial"):
                try:
                    if now - path.stat().st_mtime > _STALE_PARTIAL_S:
                        path.unlink()
                except OSError:
                    pass  # gone already, or not ours to delete

    def __repr__(self) -> str:
        n, h, w = self.shape
        return (
            f"ResultsStore({str(self._folder)!r}, mode={self._mode!r}, frames={n}, "
            f"size={h}x{w}, processed={len(self._done)}, edited={len(self._edited)})"
        )


# ---------------------------------------------------------------------- helpers
def _is_store(folder: Path) -> bool:
    meta = folder / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return _ATTRS_KEY in json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


def _remove_store(folder: Path) -> None:
    # Only what a store consists of: never a whole folder a user pointed at.
    (folder / "zarr.json").unlink(missing_ok=True)
    (folder / _LOG_NAME).unlink(missing_ok=True)
    (folder / _PERSON_IDS_NAME).unlink(missing_ok=True)
    for name in _ARRAY_NAMES:
        shutil.rmtree(folder / name, ignore_errors=True)


def _typed_person_ids(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype(
        {"frame": "int64", "person": "int64", "person id": "int64", **dict.fromkeys(DETECTION_COLUMNS[2:], "float64")}
    )


def _fsync_dir(folder: Path) -> None:
    # the rename itself must reach the disk, or a crash can bring the old file back
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform (Windows); the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_roundtrip(metadata: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as exc:
        raise DensePoseGazeError(
            f"The metadata for the results store {folder} cannot be saved as JSON "
            f"({exc}): pass plain strings, numbers, lists and dicts."
        ) from exc


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    """A log record, or None for a line cut short or damaged."""
    crc, _, payload = raw.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("frame"), int):
        return None
    return record


def _as_uint8_map(values: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"{name} values must lie in 0..255 to be stored as uint8")
        array = array.astype(np.uint8)
    return array


def _detection_records(
    detections: pd.DataFrame | Sequence[Mapping[str, Any]] | None,
) -> list[list[float]]:
    """``[[person, x1, y1, x2, y2, score], ...]`` from a table or mappings."""
    if detections is None:
        return []
    rows = detections.to_dict("records") if isinstance(detections, pd.DataFrame) else detections
    records: list[list[float]] = []
    for k, row in enumerate(rows, start=1):
        try:
            box = [
                float(row[col] if col in row else row[col.split(" ")[0]]) for col in _BOX_COLUMNS
            ]
            score = float(row["score"])
        except KeyError as exc:
            raise ValueError(
                f"a detection needs the keys {', '.join(DETECTION_COLUMNS[1:])}; missing {exc}"
            ) from None
        person = int(row.get("person", k))
        if not all(math.isfinite(v) for v in (*box, score)):
            raise ValueError(f"detection {k} has a non-finite box or score: {box}, {score}")
        records.append([person, *box, score])
    return records
