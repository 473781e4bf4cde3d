"""Keep a results store told about hand edits made in a napari Labels layer.

A Labels layer whose data is ``store.labels`` or ``store.persons`` (a
``zarr.Array``) writes painted pixels straight into the store; what napari does
not know is that those frames must now be protected from a re-run.
:func:`connect_edits` listens to the layer's ``paint`` event, which napari emits
once per committed brush stroke, fill, polygon, erase or ``data_setitem``, and
marks the touched frames edited.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from napari.layers import Labels

from ..store import ResultsStore

__all__ = ["connect_edits", "edited_frames_of"]

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


def connect_edits(
    layer: Labels, store: ResultsStore, on_edit: Callable[[set[int]], None] | None = None
) -> Callable[[], None]:
    """Mark frames edited in ``store`` whenever ``layer`` is painted; returns a disconnect.

    ``on_edit(frames)`` is called after the frames are marked (napari writes the
    pixels just after, see :meth:`.session.RecordingSession.labels_changed`).
    ``layer.data`` must be ``store.labels`` or ``store.persons``. A store open
    read-only makes the layer non-editable instead, since painting would fail.
    Undo and redo emit no paint event; the frames they touch were marked by the
    edit they undo.
    """
    if layer.data is not store.labels and layer.data is not store.persons:
        raise ValueError("layer.data must be store.labels or store.persons")
    if store.mode != "r+":
        layer.editable = False
        return lambda: None

    def on_paint(event: Any) -> None:
        frames = edited_frames_of(event.value)
        for frame in sorted(frames):
            store.mark_edited(frame)
        _log.debug("marked frames %s edited in %s", sorted(frames), store.folder)
        if on_edit is not None:
            on_edit(frames)

    layer.events.paint.connect(on_paint)
    # the disconnect holds the layer weakly: a registry may keep it as long as the layer lives
    layer_ref = weakref.ref(layer)

    def disconnect() -> None:
        hooked = layer_ref()
        if hooked is not None:
            hooked.events.paint.disconnect(on_paint)

    return disconnect
