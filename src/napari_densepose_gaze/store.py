"""The results store: DensePose output of one recording, on disk, resumable, editable, self-checking.

One folder per recording (by default beside the export, see
:meth:`ResultsStore.default_folder`)::

    <folder>/zarr.json        zarr v3 group; attributes hold the run metadata
    <folder>/labels/          (frames, height, width) uint8 body-part ids, 0 = background
    <folder>/persons/         (frames, height, width) uint8 person index, 0 = nobody
    <folder>/head_u/          (frames, height, width) uint8 code of U on the head (:mod:`.store_head_uv`:
    <folder>/head_v/          chart-23 U and V of pixels labelled 23 or 24; 0 = no U, V), added
                              to older stores when they are opened for writing
    <folder>/frames.log       append-only log of frame events (:mod:`.store_log`)
    <folder>/person_ids.csv   optional: stable person ids linking detections across
                              frames (:mod:`.tracking`), replaced atomically
    <folder>/writers/         a lock file per live writer (:mod:`.store_claims`)

How it is kept safe: every change of a frame is one step under the frame
log's lock, so a SIGKILL at any moment leaves the frame as it was or pending
again, and hand edits are never overwritten by a run that did not see them
(:mod:`.store_writer`). Runs claim the frames they compute
(:meth:`ResultsStore.claim`), so two runs on one store share the work. A store
is built in a temporary folder and renamed into place (:mod:`.store_create`).

Why damage is found: reading a frame (:meth:`ResultsStore.read_frame`),
:meth:`ResultsStore.pending` and :meth:`ResultsStore.verify` compare the chunk
files with the checksums of their done line (:mod:`.store_verify`); a damaged
frame is reported with its number and is pending again. Frames edited by hand
and frames stored before checksums existed are trusted.

The arrays are plain ``zarr.Array`` objects (``store.labels``, ``store.persons``)
that napari can show and paint as Labels layers directly; hand edits are
recorded with :meth:`ResultsStore.mark_edited` (or painted inside
:meth:`ResultsStore.editing`) and are never overwritten by a re-run unless asked.
Head U, V are kept for head pixels only, and count only where the label is
still a head patch (:mod:`.store_head_uv`). A run with other result-defining
settings may not resume a store (:mod:`.store_metadata`). A gaze-guided run
(:mod:`.gaze_guided`) marks the frames whose body parts cover only the people near
the gaze (:meth:`ResultsStore.gazed_frames`); a full run counts them as pending.

Requires zarr >= 3.1.3 (zarr v3 format).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import zarr

from .durable import atomic_write
from .errors import DensePoseGazeError
from .store_chunks import FrameChunks
from .store_create import ARRAY_NAMES, ATTRS_KEY, PERSON_IDS_NAME, make_store_folder, open_store_group
from .store_detections import (
    DETECTION_COLUMNS,
    PERSON_ID_COLUMNS,
    detection_records,
    detection_table,
    read_person_ids,
    typed_person_ids,
)
from .store_errors import open_error, write_error
from .store_head_uv import HEAD_UV_NAMES, add_head_uv_arrays, head_uv_codes, head_uv_values
from .store_log import LOG_NAME, FrameLog
from .store_metadata import FORMAT_VERSION, RESULT_DEFINING_KEYS, check_same_results, json_metadata
from .store_verify import FrameVerifier
from .store_writer import FrameWriter

__all__ = ["DETECTION_COLUMNS", "HEAD_UV_NAMES", "PERSON_ID_COLUMNS", "RESULT_DEFINING_KEYS", "ResultsStore"]

# Leftover temporary chunk files of a killed writer older than this are removed
# when a store is opened for writing; younger ones may belong to a live writer.
_STALE_PARTIAL_S = 600.0


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
        self._labels: zarr.Array = group["labels"]
        self._persons: zarr.Array = group["persons"]
        self._head_uv: tuple[zarr.Array, zarr.Array] | None = (
            (group[HEAD_UV_NAMES[0]], group[HEAD_UV_NAMES[1]]) if all(n in group for n in HEAD_UV_NAMES) else None
        )
        self._log_path = folder / LOG_NAME
        self._log = FrameLog(self._log_path)  # read incrementally: napari sees a command-line run's new frames
        names = ARRAY_NAMES + (HEAD_UV_NAMES if self._head_uv is not None else ())
        self._chunks = {name: FrameChunks(folder, group[name]) for name in names}
        self._verifier = FrameVerifier(folder, self._log, self._chunks)
        self._writer = FrameWriter(folder, self._log, self._chunks, self._verifier)

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
        metadata = json_metadata(metadata, folder)
        attrs = {"format_version": FORMAT_VERSION, "metadata": metadata}
        made = make_store_folder(folder, shape, attrs, exist_ok=exist_ok, overwrite=overwrite)
        store = cls.open(folder, mode="r+")
        if not made:  # an existing store, to resume
            store.check_compatible(shape, metadata)
        return store

    @classmethod
    def open(cls, folder: str | os.PathLike[str], mode: Literal["r", "r+"] = "r") -> ResultsStore:
        """Open an existing store, read-only (``"r"``) or for writing (``"r+"``)."""
        folder = Path(folder).expanduser()
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}")
        group = open_store_group(folder, mode, format_version=FORMAT_VERSION)
        try:
            store = cls(folder, group, mode)
        except (OSError, KeyError, ValueError) as exc:
            raise open_error(folder, exc) from exc
        if mode == "r+":
            store._check_writable()
            for chunks in store._chunks.values():
                chunks.remove_stale_partials(_STALE_PARTIAL_S)
            if store._head_uv is None:
                try:
                    add_head_uv_arrays(folder, store._labels)
                except OSError as exc:
                    raise write_error(folder, "the head U, V arrays", exc) from exc
                store = cls(folder, zarr.open_group(store=folder, mode=mode), mode)
        return store

    def check_compatible(self, shape: tuple[int, int, int], metadata: Mapping[str, Any]) -> None:
        """Refuse a run of ``shape`` (frames, height, width) with ``metadata`` that may not resume this store.

        It may when the shape and the result-defining metadata
        (:data:`RESULT_DEFINING_KEYS`) match; the other values (device, date,
        ...) are then recorded as the latest run's, as :meth:`create` with
        ``exist_ok=True`` does. Needs a store open for writing.
        """
        self._check_writable()
        metadata = json_metadata(metadata, self._folder)
        stored = self.metadata
        check_same_results(self._folder, self.shape, stored, tuple(shape), metadata)
        if {**stored, **metadata} != stored:
            try:  # zarr replaces zarr.json by a rename: a kill leaves the old metadata or the new
                attrs = dict(self._group.attrs[ATTRS_KEY])
                self._group.attrs[ATTRS_KEY] = {**attrs, "metadata": {**stored, **metadata}}
            except OSError as exc:
                raise write_error(self._folder, "the run metadata", exc) from exc

    def close(self) -> None:
        """Give up this handle's claims and writer lease (reading still works)."""
        self._writer.close()

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
    def head_uv(self) -> tuple[zarr.Array, zarr.Array] | None:
        """The ``(head_u, head_v)`` code arrays (:func:`.face_regions.decode_uv`), or None in a store without them.

        Raw codes, valid only where ``labels`` is 23 or 24; :meth:`read_head_uv`
        applies that rule and decodes.
        """
        return self._head_uv

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_frames, height, width)``."""
        return tuple(self._labels.shape)

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    @property
    def metadata(self) -> dict[str, Any]:
        """Run metadata (model, checkpoint SHA-256, score threshold, device, ...)."""
        return dict(self._group.attrs[ATTRS_KEY]["metadata"])

    def read_frame(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, persons)`` of one frame, each (height, width) uint8, checked against its checksums.

        A damaged frame raises a :class:`DensePoseGazeError` naming the frame.
        """
        found = self._verifier.read_arrays(self._frame_index(frame), ARRAY_NAMES)
        return found["labels"], found["persons"]

    def read_head_uv(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """``(u23, v)`` of one frame's head pixels, float32, NaN where there is none; checked like :meth:`read_frame`.

        ``u23`` is chart-23 U (:mod:`.face_regions`). Pixels not labelled 23 or
        24 now (painted off the head, or never on it) have none; so has every
        pixel of a store without U, V.
        """
        i = self._frame_index(frame)
        if self._head_uv is None:
            empty = np.full(self.shape[1:], np.nan, dtype=np.float32)
            return empty, empty.copy()
        return head_uv_values(self._verifier.read_arrays(i, ("labels", *HEAD_UV_NAMES)))

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

    def pending(
        self, frames: Iterable[int], *, overwrite_edited: bool = False, gazed: tuple[float, str] | None = None
    ) -> list[int]:
        """The frames of ``frames`` still to run, in the given order, without repeats.

        Processed frames are done unless damaged (their chunk files do not match
        their checksums). Frames edited by hand are left alone unless
        ``overwrite_edited`` (then they are redone even if processed).
        ``gazed`` is the ``(radius, unit)`` a gaze-guided run limits DensePose to;
        by default (None) a run needs every detection's body parts, so frames a
        gaze-guided run made (:meth:`gazed_frames`) are pending too.
        """
        return self._verifier.pending([self._frame_index(f) for f in frames], overwrite_edited, gazed)[0]

    def gazed_frames(self) -> dict[int, tuple[float, str]]:
        """Processed frames whose body parts cover only the detections near the gaze, with that ``(radius, unit)``.

        Every other processed frame (all of them in stores from before gaze-guided runs) has
        the body parts of every detection.
        """
        with self._log.current() as log:
            return {i: record.gazed for i, record in sorted(log.done.items()) if record.gazed is not None}

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
        head_uv: tuple[np.ndarray, np.ndarray] | None = None,
        gazed: tuple[float, str] | None = None,
    ) -> bool:
        """Store one frame's results and mark it processed, safe against a kill at any point.

        ``detections`` has one row (or mapping) per detection with ``person``
        (optional: 1..n in order), ``x1 [px]``, ``y1 [px]``, ``x2 [px]``,
        ``y2 [px]`` (or ``x1``... without unit) and ``score``.
        ``head_uv`` is ``(u23, v)`` (:func:`.face_regions.head_uv_map`), floats
        in [0, 1] or NaN, kept where ``labels`` is 23 or 24; without it the
        frame's head pixels have no U, V. ``gazed`` is the ``(radius, unit)`` a gaze-guided
        run limited the body parts to (None: every detection has them). Returns True when stored;
        False when the frame is edited by hand (even if the edit lands while this call runs) and is
        kept, unless ``overwrite_edited``.
        A full disk raises a :class:`DensePoseGazeError`; the frame stays pending
        and every frame stored before stays processed.
        """
        self._check_writable()
        i = self._frame_index(frame)
        height, width = self.shape[1:]
        maps = {"labels": _as_uint8_map(labels, (height, width), "labels"),
                "persons": _as_uint8_map(persons, (height, width), "persons")}
        if self._head_uv is not None:
            maps.update(head_uv_codes(maps["labels"], head_uv, (height, width)))
        records = detection_records(detections)
        if gazed is not None:
            gazed = (float(gazed[0]), str(gazed[1]))
        return self._writer.write(i, maps, records, overwrite_edited=overwrite_edited, gazed=gazed)

    def mark_edited(self, frame: int) -> None:
        """Record that a person changed this frame by hand (cheap if already marked)."""
        self._check_writable()
        self._writer.mark_edited(self._frame_index(frame))

    @contextlib.contextmanager
    def editing(self, frame: int) -> Iterator[None]:
        """Mark ``frame`` edited, then hold off writers while the block changes its pixels.

        Painting inside the block can never be overwritten by a run: the mark
        is in the log before the first pixel changes, and no writer can be
        between its check and its write meanwhile.
        """
        self._check_writable()
        with self._writer.editing(self._frame_index(frame)):
            yield

    def clear_frame(self, frame: int) -> None:
        """Forget a frame: not processed, not edited, labels and persons zero."""
        self._check_writable()
        self._writer.clear(self._frame_index(frame))

    # ----------------------------------------------------------------- claims
    def claim(
        self, frames: Iterable[int], *, overwrite_edited: bool = False, gazed: tuple[float, str] | None = None
    ) -> list[int]:
        """Claim the frames of :meth:`pending` (same arguments) that no other live run claimed, in order.

        A run claims what it is about to compute, so a second run on the store
        skips those frames. Claims end with the frame's done line, with
        :meth:`release` or :meth:`close`, or when the claiming process ends (a
        kill included), so nothing waits on a dead run.
        """
        self._check_writable()
        indices = [self._frame_index(f) for f in frames]
        wanted, damaged = self._verifier.pending(indices, overwrite_edited, gazed)
        return self._writer.claim(wanted, damaged, overwrite_edited=overwrite_edited)

    def release(self, frames: Iterable[int] | None = None) -> None:
        """Give up this handle's claims on ``frames`` (default: all), e.g. when a run is cancelled."""
        self._writer.release(frames)

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

    def __repr__(self) -> str:
        n, h, w = self.shape
        return (
            f"ResultsStore({str(self._folder)!r}, mode={self._mode!r}, frames={n}, "
            f"size={h}x{w}, processed={len(self._log.done)}, edited={len(self._log.edited)})"
        )


def _as_uint8_map(values: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"{name} values must lie in 0..255 to be stored as uint8")
        array = array.astype(np.uint8)
    return array
