"""Keep a results store told about every change of a napari Labels layer that shows it.

A Labels layer whose data is ``store.labels`` (a ``zarr.Array``) or
``store.persons`` seen as stable ids (:class:`.StablePersons`) writes painted
pixels straight into the store; what napari does not know is that those frames
must now be protected from a re-run, and that the gaze hits read from them are
stale. The labels change along three paths, and
napari announces only the first:

- brush strokes, fills, polygons, erasing and ``data_setitem`` emit ``paint``
  with the history item (the frames touched);
- undo and redo replay a history item through ``Labels._load_history`` and emit
  nothing, so that method is wrapped on the layer;
- a script writing ``layer.data[...]`` and calling ``layer.refresh()`` leaves no
  history at all: ``refresh`` is wrapped, and the frame on screen before and
  after it is compared (frames not shown cannot be seen changing).

:func:`connect_edits` hooks all three, marks the frames edited and calls
``on_edit(frames)``. For the body parts it also refuses labels that are no part
(above 24): such an edit is undone with a message, and a part painted onto
background takes the person around it. The persons layer shows stable person
ids (:mod:`.stable_persons`); a stroke of a person not detected on the frame is
undone the same way.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer

from ..store import ResultsStore
from .layer_roles import unproxied
from .stable_persons import StablePersons, give_strokes_a_person

__all__ = ["EditHook", "connect_edits", "edited_frames_of", "new_values_of"]

_log = logging.getLogger(__name__)

def edited_frames_of(history_item: Iterable[Any]) -> set[int]:
    """Frame indices (axis 0) touched by one napari Labels history item.

    An item is a list of atoms: napari >= 0.9 paints, fills and draws polygons
    as masked atoms with a ``slice_key`` (a tuple of slices); ``data_setitem``
    (and older napari) stores ``(indices, old values, new values)``.
    """
    frames: set[int] = set()
    for atom in history_item:
        slice_key = getattr(atom, "slice_key", None)
        if slice_key is not None:
            first = slice_key[0]
            if isinstance(first, slice):
                frames.update(range(first.start or 0, first.stop))
            else:
                frames.add(int(first))
        else:
            indices = atom[0]
            frames.update(int(i) for i in np.unique(np.asarray(indices[0])))
    return frames


def new_values_of(history_item: Iterable[Any]) -> np.ndarray:
    """The labels one history item writes (its atoms' "after" values), as a flat array."""
    values = [np.ravel(getattr(atom, "new_value", None) if hasattr(atom, "slice_key") else atom[2])
              for atom in history_item]
    return np.concatenate(values) if values else np.zeros(0, np.int64)


class EditHook:
    """The hooks of one layer on one store; calling it disconnects them. Made by :func:`connect_edits`."""

    def __init__(self, layer: Labels, store: ResultsStore, on_edit: Callable[[set[int]], None] | None,
                 max_label: int | None) -> None:
        self._layer = weakref.ref(layer)
        self._store = store
        self._on_edit = on_edit
        self._max_label = max_label
        self._quiet = 0
        self._last_label = int(layer.selected_label) if max_label is None else min(int(layer.selected_label),
                                                                                 max_label)
        self._original_load_history = layer._load_history  # bound methods of the class
        self._original_refresh = layer.refresh
        layer._load_history = self._load_history  # instance attributes win: undo() and redo() call these
        layer.refresh = self._refresh
        layer.events.paint.connect(self._on_paint)
        layer.events.selected_label.connect(self._on_selected_label)

    # ------------------------------------------------------------ the three paths
    def _on_paint(self, event: Any) -> None:
        item = event.value
        layer = self._layer()
        reason = None
        if self._max_label is not None:
            values = new_values_of(item)
            if values.size and int(values.max()) > self._max_label:
                name = layer.name if layer is not None else "body parts"
                reason = (f"Label {int(values.max())} is not a body part: only 1..{self._max_label} (0 erases) can "
                          f'be painted on "{name}"; the edit was undone. Pick a part in the part legend.')
        elif layer is not None and isinstance(layer.data, StablePersons):
            reason = layer.data.refused(edited_frames_of(item), new_values_of(item).tolist())
            if reason is not None:
                reason += " The edit was undone."
        if reason is not None:
            # napari announces some edits before it writes them: undo on the next turn of the event loop;
            # the undo tells the change, so listeners never read the refused labels
            QTimer.singleShot(0, lambda: self._refuse(item, reason))
            return
        if self._max_label is not None:
            give_strokes_a_person(self._store, item)
        self._edited(edited_frames_of(item))

    def _load_history(self, before: list, after: list, undoing: bool = True) -> None:
        frames = edited_frames_of(before[-1]) if before else set()
        with self.quietly():  # the refresh inside sees the replayed change: it is told here
            self._original_load_history(before, after, undoing)
        self._edited(frames)

    def _refresh(self, *args: Any, **kwargs: Any) -> None:
        layer = self._layer()
        if layer is None or self._quiet:
            self._original_refresh(*args, **kwargs)
            return
        frame, shown = _shown_frame(layer)
        self._original_refresh(*args, **kwargs)
        frame_now, shown_now = _shown_frame(layer)
        if (frame is None or frame != frame_now or shown is None or shown_now is None
                or shown.shape != shown_now.shape or np.array_equal(shown, shown_now)):
            return
        if self._max_label is not None and int(shown_now.max()) > self._max_label:
            self._clear_non_parts(layer, frame)
        self._edited({frame})

    # ------------------------------------------------------------ helpers
    @contextmanager
    def quietly(self) -> Iterator[None]:
        """Refreshes inside are not edits (e.g. a DensePose run wrote the frames shown)."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _edited(self, frames: set[int]) -> None:
        if not frames:
            return
        for frame in sorted(frames):
            self._store.mark_edited(frame)
        _log.debug("marked frames %s edited in %s", sorted(frames), self._store.folder)
        if self._on_edit is not None:
            self._on_edit(frames)

    def _refuse(self, item: Any, reason: str) -> None:
        layer = self._layer()
        if layer is None:
            return
        if isinstance(layer.data, StablePersons):
            # a person not on the frame was never written (StablePersons has no index for them): only the
            # history and the drawn slice hold the stroke, wherever it is in the history
            history = layer._undo_history
            at = next((k for k, done in enumerate(history) if done is item), None)
            if at is not None:
                del history[at]
            with self.quietly():
                self._original_refresh()
        elif layer._undo_history and layer._undo_history[-1] is item:
            layer.undo()
            if layer._redo_history:
                layer._redo_history.pop()  # redo must not bring it back
        show_warning(reason)

    def _clear_non_parts(self, layer: Labels, frame: int) -> None:
        labels = np.asarray(layer.data[frame])
        wrong = labels > self._max_label
        values = sorted(set(np.unique(labels[wrong]).tolist()))
        labels = labels.copy()
        labels[wrong] = 0
        layer.data[frame] = labels
        with self.quietly():
            self._original_refresh()
        show_warning(f"Labels {values} on frame {frame} of \"{layer.name}\" are no body part (1..{self._max_label}): "
                     "they were set to background.")

    def _on_selected_label(self, _event: Any = None) -> None:
        layer = self._layer()
        if layer is None or self._max_label is None:
            return
        label = int(layer.selected_label)
        if label <= self._max_label:
            self._last_label = label
            return
        show_warning(f"Label {label} is not a body part: pick 1..{self._max_label} (0 erases).")
        layer.selected_label = self._last_label

    def __call__(self) -> None:
        """Disconnect: the layer behaves as napari's own again."""
        layer = self._layer()
        if layer is None:
            return
        layer.events.paint.disconnect(self._on_paint)
        layer.events.selected_label.disconnect(self._on_selected_label)
        for name in ("_load_history", "refresh"):
            layer.__dict__.pop(name, None)


def _shown_frame(layer: Labels) -> tuple[int | None, np.ndarray | None]:
    """(frame, labels shown) of a 2D view of a (frames, rows, columns) layer; (None, None) otherwise.

    The raw slice is napari's own array, replaced (not changed) by the next
    slicing, so holding it across a refresh compares before with after.
    """
    try:
        raw = layer._slice.image.raw
        point = layer._get_pt_not_disp()
    except AttributeError:  # another napari: scripted writes go unseen, paint and undo still count
        return None, None
    if layer.ndim != 3 or np.ndim(raw) != 2 or 0 not in point:
        return None, None
    return int(point[0]), np.asarray(raw)


def connect_edits(
    layer: Labels, store: ResultsStore, on_edit: Callable[[set[int]], None] | None = None, *,
    max_label: int | None = None,
) -> EditHook | Callable[[], None]:
    """Mark frames edited in ``store`` whenever ``layer``'s labels change; returns the disconnect.

    ``on_edit(frames)`` is called after the frames are marked (napari may write
    the pixels just after, see :meth:`.session.RecordingSession.labels_changed`).
    ``max_label``: labels above it are refused (the body parts: :data:`MAX_PART`).
    ``layer.data`` must be ``store.labels`` or a :class:`.StablePersons` of
    ``store``. A store open read-only makes the layer non-editable instead,
    since painting would fail.
    """
    layer = unproxied(layer)  # the hook wraps the layer's own methods, not a proxy's
    shows_persons = isinstance(layer.data, StablePersons) and layer.data.store is store
    if layer.data is not store.labels and not shows_persons:
        raise ValueError(f'layer.data of "{layer.name}" must be store.labels or StablePersons(store) of '
                         f"{store.folder}, not {type(layer.data).__name__}"
                         + (f" of {layer.data.store.folder}" if isinstance(layer.data, StablePersons) else ""))
    if store.mode != "r+":
        layer.editable = False
        return lambda: None
    return EditHook(layer, store, on_edit, max_label)
