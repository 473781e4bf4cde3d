"""The results store: DensePose output of one recording, on disk, resumable, editable, self-checking.

One folder per recording (by default beside the export, see
:meth:`ResultsStore.default_folder`)::

    <folder>/zarr.json        zarr v3 group; attributes hold the run metadata
    <folder>/labels/          (frames, height, width) uint8 body-part ids, 0 = background
    <folder>/persons/         (frames, height, width) uint8 person index, 0 = nobody
    <folder>/frames.log       append-only log of frame events (:mod:`.store_log`)
    <folder>/person_ids.csv   optional: stable person ids linking detections across
                              frames (:mod:`.tracking`), replaced atomically
    <folder>/writers/         a lock file per live writer (:mod:`.store_claims`)

Why it survives a SIGKILL at any moment: a frame's chunks are encoded and
fsynced to temporary files first; then, under the log's lock, the frame's
"done" mark is withdrawn, the files are renamed into place and a "done" line
carrying the detections and each chunk's size and crc32 is appended
(:mod:`.store_chunks`). A frame counts as processed only while its last log
line says so, so a half-written frame is simply pending again. A store is
built in a temporary folder and renamed into place (:mod:`.store_create`).

Why hand edits and runs coexist: marking a frame edited takes the same lock as
writing one, so a writer either sees the mark and keeps the frame (returns
False), or its done line lands before the mark and the edit stays marked.
Runs claim the frames they compute (:meth:`ResultsStore.claim`), so two runs
on one store share the work; a killed run's claims die with it.

Why damage is found: reading a frame (:meth:`ResultsStore.read_frame`),
:meth:`ResultsStore.pending` and :meth:`ResultsStore.verify` compare the chunk
files with the checksums of their done line; a damaged frame is reported with
its number and is pending again. Frames edited by hand and frames stored
before checksums existed are trusted.

The arrays are plain ``zarr.Array`` objects (``store.labels``, ``store.persons``)
that napari can show and paint as Labels layers directly; hand edits are
recorded with :meth:`ResultsStore.mark_edited` (or painted inside
:meth:`ResultsStore.editing`) and are never overwritten by a re-run unless asked.

Requires zarr >= 3.1.3 (zarr v3 format).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import zarr

from .durable import atomic_write
from .errors import DensePoseGazeError
from .store_chunks import FrameChunks, checksum
from .store_claims import WriterLease, claimable
from .store_create import ARRAY_NAMES, ATTRS_KEY, PERSON_IDS_NAME, make_store_folder, open_store_group
from .store_detections import (
    DETECTION_COLUMNS,
    PERSON_ID_COLUMNS,
    detection_records,
    detection_table,
    read_person_ids,
    typed_person_ids,
)
from .store_log import LOG_NAME, DoneFrame, FrameLog
from .store_verify import FrameVerifier

__all__ = ["DETECTION_COLUMNS", "PERSON_ID_COLUMNS", "RESULT_DEFINING_KEYS", "ResultsStore"]

#: Metadata keys whose values decide what the stored results are. Re-opening a
#: store for writing with different values is refused: the frames would mix
#: two models or thresholds.
RESULT_DEFINING_KEYS = ("recording_id", "model", "checkpoint_sha256", "score_threshold", "input_size")

# Stores with chunk checksums read the same as before: old versions can still
# open them (they just do not check), so the format version stays 1.
_FORMAT_VERSION = 1
# Leftover temporary chunk files of a killed writer older than this are removed
# when a store is opened for writing; younger ones may belong to a live writer.
_STALE_PARTIAL_S = 600.0
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class ResultsStore:
    """Per-frame body-part labels, person index and detections of one recording.

    Make one with :meth:`create`, open an existing one with :meth:`open`.
    Frame indices are 0-based positions in the scene video. A handle that
    claimed frames holds a writer lease until :meth:`close` (or its end):
    ``with ResultsStore.open(folder, "r+") as store: ...``.
    """

    def __init__(self, folder: Path, group: zarr.Group, mode: Literal["r", "r+"]) -> None:
        # Use create() / open(); this only wires the parts together.
        self._folder = folder
        self._group = group
        self._mode = mode
        self._labels: zarr.Array = group["labels"]  # type: ignore[assignment]
        self._persons: zarr.Array = group["persons"]  # type: ignore[assignment]
        self._log_path = folder / LOG_NAME
        # frames.log is read incrementally so a second process (napari beside a
        # command-line run) sees new frames.
        self._log = FrameLog(self._log_path)
        self._chunks = {name: FrameChunks(folder, group[name]) for name in ARRAY_NAMES}  # type: ignore[arg-type]
        self._verifier = FrameVerifier(folder, self._log, self._chunks)
        self._lease: WriterLease | None = None

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
        included) and starts over. Creation is atomic: a folder holds no store,
        or a complete one; a store whose making was cut short is made anew, and
        of two processes creating the same store at once, the second opens the
        first one's store.
        """
        folder = Path(folder).expanduser()
        shape = (int(n_frames), int(height), int(width))
        if min(shape) < 1:
            raise DensePoseGazeError(
                f"Cannot create a results store in {folder} with {n_frames} frames of "
                f"{height}x{width} pixels: all three must be positive."
            )
        metadata = _json_roundtrip(metadata, folder)
        attrs = {"format_version": _FORMAT_VERSION, "metadata": metadata}
        if make_store_folder(folder, shape, attrs, exist_ok=exist_ok, overwrite=overwrite):
            return cls.open(folder, mode="r+")
        store = cls.open(folder, mode="r+")  # an existing store, to resume
        store._check_compatible(shape, metadata)
        store._group.attrs[ATTRS_KEY] = {
            **store._group.attrs[ATTRS_KEY],  # type: ignore[dict-item]
            "metadata": {**store.metadata, **metadata},
        }
        return store

    @classmethod
    def open(cls, folder: str | os.PathLike[str], mode: Literal["r", "r+"] = "r") -> ResultsStore:
        """Open an existing store, read-only (``"r"``) or for writing (``"r+"``)."""
        folder = Path(folder).expanduser()
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}")
        group = open_store_group(folder, mode, format_version=_FORMAT_VERSION)
        try:
            store = cls(folder, group, mode)
        except (OSError, KeyError, ValueError) as exc:
            raise DensePoseGazeError(f"Cannot open the results store {folder}: {exc}") from exc
        if mode == "r+":
            store._check_writable()
            store._remove_stale_partials()
        return store

    def close(self) -> None:
        """Give up this handle's claims and writer lease (reading still works)."""
        if self._lease is not None:
            with contextlib.suppress(DensePoseGazeError):
                self.release()
            self._lease.close()
            self._lease = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------- reading
    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def labels(self) -> zarr.Array:
        """Body-part ids, (frames, height, width) uint8; napari Labels layer data.

        Reading a damaged chunk through it may raise from the codec; use
        :meth:`read_frame` for an error that names the frame.
        """
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
        return dict(self._group.attrs[ATTRS_KEY]["metadata"])  # type: ignore[index,arg-type]

    def read_frame(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, persons)`` of one frame, each (height, width) uint8, checked against its checksums.

        A damaged frame raises a :class:`DensePoseGazeError` naming the frame.
        """
        return self._verifier.read_frame(self._frame_index(frame))

    def processed_frames(self) -> np.ndarray:
        """Sorted indices of frames whose results are completely written (damaged or not: see :meth:`verify`)."""
        with self._log.current() as log:
            return np.array(sorted(log.done), dtype=np.int64)

    def is_processed(self, frame: int) -> bool:
        i = self._frame_index(frame)
        with self._log.current() as log:
            return i in log.done

    def edited_frames(self) -> np.ndarray:
        """Sorted indices of frames a person corrected by hand."""
        with self._log.current() as log:
            return np.array(sorted(log.edited), dtype=np.int64)

    def is_edited(self, frame: int) -> bool:
        i = self._frame_index(frame)
        with self._log.current() as log:
            return i in log.edited

    def pending(self, frames: Iterable[int], *, overwrite_edited: bool = False) -> list[int]:
        """The frames of ``frames`` still to run, in the given order, without repeats.

        Processed frames are done unless damaged (their chunk files do not match
        their checksums). Frames edited by hand are left alone unless
        ``overwrite_edited`` (then they are redone even if processed).
        """
        return self._pending(frames, overwrite_edited)[0]

    def _pending(self, frames: Iterable[int], overwrite_edited: bool) -> tuple[list[int], dict[int, DoneFrame]]:
        """:meth:`pending`, and the done records the damaged ones among them were checked against."""
        with self._log.current() as log:
            candidates: list[int] = []  # in the given order, without repeats
            done: list[tuple[int, DoneFrame]] = []  # of those, processed: done unless damaged
            for i in dict.fromkeys(self._frame_index(frame) for frame in frames):
                if i in log.edited:
                    if overwrite_edited:
                        candidates.append(i)
                    continue
                candidates.append(i)
                if i in log.done:
                    done.append((i, log.done[i]))
        damaged = self._verifier.damage(done, use_cache=True)
        intact = {i for i, _ in done if i not in damaged}
        records = dict(done)
        return [i for i in candidates if i not in intact], {i: records[i] for i in damaged}

    def verify(self, frames: Iterable[int] | None = None) -> list[tuple[int, str]]:
        """Every damaged processed frame (of ``frames``, default all) with what is wrong, sorted by frame.

        Reads every chunk file: frames with checksums are compared with them,
        frames without (stored by older versions, or edited by hand) must at
        least decode. Damaged frames are pending again (:meth:`pending`).
        """
        return self._verifier.verify(None if frames is None else [self._frame_index(f) for f in frames])

    def detections(self, frames: Iterable[int] | None = None) -> pd.DataFrame:
        """Detections of processed frames, one row each (:data:`DETECTION_COLUMNS`)."""
        with self._log.current() as log:
            wanted = sorted(log.done) if frames is None else sorted(
                {self._frame_index(f) for f in frames} & log.done.keys()
            )
            rows = [[i, *det] for i in wanted for det in log.done[i].detections]
        return detection_table(rows)

    def person_ids(self) -> pd.DataFrame | None:
        """The stored person ids (:data:`PERSON_ID_COLUMNS`), or None if none were written.

        Rows whose detection has changed since (a frame re-run or reset) are
        dropped, so what comes back always describes the current detections;
        compare its length with :meth:`detections` to see whether ids are missing.
        """
        return read_person_ids(self._folder / PERSON_IDS_NAME, self.detections())

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
        table = typed_person_ids(table[list(PERSON_ID_COLUMNS)])
        with atomic_write(self._folder / PERSON_IDS_NAME, newline="", what="the person ids") as f:
            table.to_csv(f, index=False, float_format="%.17g")

    def write_frame(
        self,
        frame: int,
        labels: np.ndarray,
        persons: np.ndarray,
        detections: pd.DataFrame | Sequence[Mapping[str, Any]] | None,
        *,
        overwrite_edited: bool = False,
    ) -> bool:
        """Store one frame's results and mark it processed, safe against a kill at any point.

        ``detections`` has one row (or mapping) per detection with ``person``
        (optional: 1..n in order), ``x1 [px]``, ``y1 [px]``, ``x2 [px]``,
        ``y2 [px]`` (or ``x1``... without unit) and ``score``.
        Returns True when stored; False when the frame is edited by hand (even
        if the edit lands while this call runs) and is kept, unless ``overwrite_edited``.
        A full disk raises a :class:`DensePoseGazeError`; the frame stays pending
        and every frame stored before stays processed.
        """
        self._check_writable()
        i = self._frame_index(frame)
        height, width = self.shape[1:]
        maps = {"labels": _as_uint8_map(labels, (height, width), "labels"),
                "persons": _as_uint8_map(persons, (height, width), "persons")}
        records = detection_records(detections)
        staged: dict[str, Path | None] = {}
        try:
            # Compressing and writing the chunks is the slow part (tens of ms at
            # Neon size): done before taking the lock so several threads and
            # processes write frames at once; only putting them in place is serialised.
            sums = {}
            for name, chunks in self._chunks.items():
                data = chunks.encode(maps[name])
                sums[name] = checksum(data)
                staged[name] = chunks.stage(i, data)
            with self._log.locked() as log:
                if i in log.edited and not overwrite_edited:
                    return False
                # Withdraw the mark first, so a kill while the chunks change
                # leaves the frame pending rather than "done" with mixed data.
                if i in log.done or i in log.edited:
                    log.append(FrameLog.frame_record(i, "reset"))
                for name, chunks in self._chunks.items():
                    chunks.install(i, staged[name])
                    staged[name] = None
                    self._verifier.note_intact(i, name, sums[name])
                log.append(FrameLog.done_record(i, records, sums))
            return True
        except OSError as exc:
            raise self._write_error(f"frame {i}", exc) from exc
        finally:
            for path in staged.values():
                if path is not None:
                    path.unlink(missing_ok=True)

    def mark_edited(self, frame: int) -> None:
        """Record that a person changed this frame by hand (cheap if already marked)."""
        self._check_writable()
        i = self._frame_index(frame)
        with self._log.current() as log:
            if i in log.edited:
                return
        try:
            with self._log.locked() as log:
                if i not in log.edited:
                    log.append(FrameLog.frame_record(i, "edited"))
        except OSError as exc:
            raise self._write_error(f"the edit mark of frame {i}", exc) from exc

    @contextlib.contextmanager
    def editing(self, frame: int) -> Iterator[None]:
        """Mark ``frame`` edited, then hold off writers while the block changes its pixels.

        Painting inside the block can never be overwritten by a run: the mark
        is in the log before the first pixel changes, and no writer can be
        between its check and its write meanwhile.
        """
        self._check_writable()
        i = self._frame_index(frame)
        try:
            with self._log.locked() as log:
                if i not in log.edited:
                    log.append(FrameLog.frame_record(i, "edited"))
                yield
        except OSError as exc:
            raise self._write_error(f"the hand edit of frame {i}", exc) from exc

    def clear_frame(self, frame: int) -> None:
        """Forget a frame: not processed, not edited, labels and persons zero."""
        self._check_writable()
        i = self._frame_index(frame)
        try:
            with self._log.locked() as log:
                log.append(FrameLog.frame_record(i, "reset"))
                for chunks in self._chunks.values():
                    chunks.install(i, None)  # no chunk file reads as the fill value, 0
        except OSError as exc:
            raise self._write_error(f"the reset of frame {i}", exc) from exc

    # ----------------------------------------------------------------- claims
    def claim(self, frames: Iterable[int], *, overwrite_edited: bool = False) -> list[int]:
        """Claim the frames of :meth:`pending` that no other live run claimed; returns them in order.

        A run claims what it is about to compute, so a second run on the store
        skips those frames. Claims end with the frame's done line, with
        :meth:`release` or :meth:`close`, or when the claiming process ends (a
        kill included), so nothing waits on a dead run.
        """
        self._check_writable()
        wanted, damaged = self._pending(frames, overwrite_edited)
        try:
            with self._log.locked() as log:
                lease = self._writer_lease()
                mine = claimable(log, self._folder, lease, wanted, damaged, overwrite_edited=overwrite_edited)
                if mine:
                    log.append(FrameLog.claim_record(mine, lease.name))
        except OSError as exc:
            raise self._write_error("the claim of frames", exc) from exc
        return mine

    def release(self, frames: Iterable[int] | None = None) -> None:
        """Give up this handle's claims on ``frames`` (default: all), e.g. when a run is cancelled."""
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
            raise self._write_error("the release of claimed frames", exc) from exc

    def _writer_lease(self) -> WriterLease:
        if self._lease is None:
            self._lease = WriterLease(self._folder)
            weakref.finalize(self, self._lease.close)
        return self._lease

    # --------------------------------------------------------------- internals
    def _frame_index(self, frame: int) -> int:
        i = int(frame)
        if i != frame or not 0 <= i < self.n_frames:
            raise DensePoseGazeError(
                f"Frame {frame!r} is outside the results store {self._folder}, which "
                f"holds frames 0..{self.n_frames - 1}. Check the frame selection."
            )
        return i

    def _write_error(self, what: str, exc: OSError) -> DensePoseGazeError:
        if exc.errno in _NO_SPACE:
            return DensePoseGazeError(
                f"The disk holding the results store {self._folder} is full: {what} was not stored. "
                "Every frame stored before is kept; free disk space and run again to resume."
            )
        return DensePoseGazeError(
            f"Cannot store {what} in the results store {self._folder}: {exc}. Check the folder's "
            "permissions and free space, then run again to resume."
        )

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

    def _remove_stale_partials(self) -> None:
        """Delete temporary chunk files that a killed writer left behind."""
        now = time.time()
        for name in ARRAY_NAMES:
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
            f"size={h}x{w}, processed={len(self._log.done)}, edited={len(self._log.edited)})"
        )


# ---------------------------------------------------------------------- helpers
def _json_roundtrip(metadata: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as exc:
        raise DensePoseGazeError(
            f"The metadata for the results store {folder} cannot be saved as JSON "
            f"({exc}): pass plain strings, numbers, lists and dicts."
        ) from exc


def _as_uint8_map(values: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"{name} values must lie in 0..255 to be stored as uint8")
        array = array.astype(np.uint8)
    return array
