"""Who is who on the "persons" layer: the stable person ids the tables and figures use.

The store keeps, per pixel, the detection index of its frame (1..n, in the
order DensePose found the people), and beside it the links from each
``(frame, detection)`` to a stable ``person id`` (:mod:`napari_densepose_gaze.tracking`).
The tables speak in stable ids only, so the layer must too: :class:`StablePersons`
is the array napari shows and paints. It reads detection indices and shows
their stable ids; painting a stable id writes the detection index that person
has on that frame. A person who was not detected on a frame has no index
there and cannot be painted onto it (the edit hook undoes such a stroke and
says which persons the frame has); pixels of no detection show as 0, like
the empty person id of the tables.

A corrected part keeps its person: painting a part over a person's pixels
leaves their person as it is (the persons are a separate array), and
painting a part onto background gives the new pixels the person most of the
part pixels around the stroke belong to (:func:`give_strokes_a_person`), so
that extending an arm DensePose cut short adds to that person's dwell. A
stroke with no person's part pixels around it stays without a person (the
tables show an empty person id) until the persons layer is painted there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..store import ResultsStore
from ..tracking import current_person_ids  # the rule the tables use: never disagree with them

__all__ = ["StablePersons", "give_strokes_a_person", "STROKE_NEIGHBOURHOOD_PX"]

#: How far around a stroke onto background its pixels look for the person whose part they extend.
STROKE_NEIGHBOURHOOD_PX = 3

_DETECTION_VALUES = 256  # the store's person map is uint8: every detection index has a row in the look-up


class StablePersons:
    """``store.persons`` seen as stable person ids: a ``(frames, height, width)`` array-like napari can show and paint.

    The links are read when first needed and again after :meth:`relink` (a
    run wrote frames, or linked them anew).
    """

    def __init__(self, store: ResultsStore) -> None:
        self.store = store
        self._detections = store.persons
        self.shape = tuple(self._detections.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.int32)  # stable ids count every person of the recording: past 255 in long ones
        self._stable: np.ndarray | None = None  # (frames, 256): detection index -> stable id, 0 where none
        self._index_of: dict[tuple[int, int], int] = {}  # (frame, stable id) -> detection index

    # ------------------------------------------------------------ the links
    def relink(self) -> None:
        """Forget the links: the next read takes the store's current ones."""
        self._stable = None

    def _links(self) -> np.ndarray:
        if self._stable is None:
            table: pd.DataFrame = current_person_ids(self.store)
            stable = np.zeros((self.shape[0], _DETECTION_VALUES), np.int32)
            frames = table["frame"].to_numpy(np.int64)
            persons = table["person"].to_numpy(np.int64)
            ids = table["person id"].to_numpy(np.int64)
            keep = (frames >= 0) & (frames < self.shape[0]) & (persons > 0) & (persons < _DETECTION_VALUES)
            stable[frames[keep], persons[keep]] = ids[keep]
            self._index_of = {(int(f), int(i)): int(p) for f, p, i in zip(frames[keep], persons[keep], ids[keep])}
            self._stable = stable
        return self._stable

    def persons_on(self, frame: int) -> list[int]:
        """The stable ids of the persons detected on ``frame``, ascending."""
        row = self._links()[int(frame)]
        return sorted(int(v) for v in np.unique(row[row > 0]))

    # ------------------------------------------------------------ reading
    def __getitem__(self, key: Any) -> np.ndarray:
        key, fancy = _full_key(key, self.ndim)
        raw = np.asarray(self._detections.vindex[key] if fancy else self._detections[key])
        return self._show(raw, _frames_of(key, fancy, self.shape[0], raw))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        shown = self[:]
        return shown if dtype is None else shown.astype(dtype)

    def _show(self, raw: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return self._links()[frames, raw.astype(np.int64)]

    # ------------------------------------------------------------ painting
    def __setitem__(self, key: Any, value: Any) -> None:
        """Write stable ids as detection indices; pixels whose shown id does not change are left as they are.

        napari writes a stroke's whole bounding box back: comparing with what
        is shown keeps pixels of no detection (shown as 0) untouched. An id
        the frame has no detection of is not written.
        """
        key, fancy = _full_key(key, self.ndim)
        raw = np.asarray(self._detections.vindex[key] if fancy else self._detections[key])
        frames = _frames_of(key, fancy, self.shape[0], raw)
        wanted = np.broadcast_to(np.asarray(value, dtype=np.int64), raw.shape)
        changed = wanted != self._show(raw, frames)
        if not changed.any():
            return
        written = raw.copy()
        for frame, person in set(zip(frames[changed].tolist(), wanted[changed].tolist())):
            index = 0 if person == 0 else self._index_of.get((frame, person))
            if index is not None:
                written[changed & (frames == frame) & (wanted == person)] = index
        if fancy:
            self._detections.vindex[key] = written
        else:
            self._detections[key] = written

    def refused(self, frames: Iterable[int], persons: Iterable[int]) -> str | None:
        """Why painting ``persons`` onto ``frames`` cannot be stored, or None when it can."""
        self._links()
        for frame in sorted(set(int(f) for f in frames)):
            missing = sorted(p for p in set(int(p) for p in persons) if p and (frame, p) not in self._index_of)
            if missing:
                there = ", ".join(map(str, self.persons_on(frame))) or "none"
                return (f"Person {missing[0]} is not detected on frame {frame} (persons there: {there}): "
                        "pick one of them as the label (0 erases), or run DensePose on the frame again.")
        return None


def give_strokes_a_person(store: ResultsStore, history_item: Iterable[Any]) -> None:
    """Give the pixels a part stroke painted onto background the person whose part pixels surround them.

    ``history_item`` is napari's record of the stroke on the "body parts"
    layer; it is read before napari writes the stroke (the parts around it
    are those DensePose or earlier strokes made). Pixels that already have a
    person keep theirs; erasing (label 0) changes no person.
    """
    for atom in history_item:
        slice_key = getattr(atom, "slice_key", None)
        if slice_key is None or not getattr(atom, "new_value", 0) or len(slice_key) != 3:
            continue  # data_setitem's scripted writes and erasing: nobody to infer
        frame, rows, cols = slice_key
        frame = frame.start if isinstance(frame, slice) else int(frame)
        mask = np.ones((rows.stop - rows.start, cols.stop - cols.start), bool) if atom.mask is None \
            else np.asarray(atom.mask).reshape(rows.stop - rows.start, cols.stop - cols.start)
        reach = STROKE_NEIGHBOURHOOD_PX
        top, left = max(rows.start - reach, 0), max(cols.start - reach, 0)
        bottom, right = min(rows.stop + reach, store.persons.shape[1]), min(cols.stop + reach, store.persons.shape[2])
        persons = np.asarray(store.persons[frame, top:bottom, left:right])
        parts = np.asarray(store.labels[frame, top:bottom, left:right])
        stroke = np.zeros(persons.shape, bool)
        stroke[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = mask
        owners = persons[(parts > 0) & (persons > 0) & ~stroke]
        new = stroke & (persons == 0)
        if not owners.size or not new.any():
            continue
        persons[new] = np.bincount(owners).argmax()
        store.persons[frame, top:bottom, left:right] = persons


def _full_key(key: Any, ndim: int) -> tuple[tuple, bool]:
    """``key`` as a tuple of ``ndim`` entries, and whether it is napari's fancy (integer arrays) indexing."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (ndim - len(key) + 1) + key[at + 1:]
    fancy = any(isinstance(k, np.ndarray | list) for k in key)
    if fancy:
        return tuple(np.asarray(k, dtype=np.int64) for k in key), True
    return key + (slice(None),) * (ndim - len(key)), False


def _frames_of(key: tuple, fancy: bool, n_frames: int, raw: np.ndarray) -> np.ndarray:
    """The frame of every value in ``raw``, read with ``key``, broadcast to its shape."""
    first = key[0]
    if fancy:
        return np.broadcast_to(first, raw.shape)
    if isinstance(first, slice):
        frames = np.arange(n_frames)[first]
        return np.broadcast_to(frames.reshape((-1,) + (1,) * (raw.ndim - 1)), raw.shape)
    return np.full(raw.shape, int(first) % n_frames, dtype=np.int64)
