"""Head regions in napari: the region under the cursor in the status bar, and a layer of them over the body parts.

A frame's regions (eyes, nose, mouth, rest of face, back or side of the head:
:mod:`..face_regions`) come from its labels and the store's head U, V
(:meth:`.ResultsStore.read_head_uv`), computed once per frame shown and dropped
when the frame's labels change (:meth:`.RecordingSession.on_labels_changed`), so
both follow a correction. The status bar gets them by wrapping the "body parts"
layer's ``get_status``: napari asks the selected layer what lies under the
cursor, from a thread of its own, and a pixel of part 23 or 24 answers with its
region too.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from napari.utils.colormaps import DirectLabelColormap

from ..errors import DensePoseGazeError
from ..face_regions import REGION_COLORS, REGION_NAMES, region_ids
from .layer_roles import BODY_PARTS, HEAD_REGIONS, layer_metadata, layer_name, role_of
from .session import RecordingSession, find_layer, session_of

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels, Layer

__all__ = [
    "FrameRegions",
    "frame_regions",
    "head_regions_layer",
    "hide_head_regions",
    "region_colormap",
    "region_status",
    "show_head_region_status",
    "show_head_regions",
]

_STATUS_KEY = "head region"


class FrameRegions:
    """The head-region ids of a session's frames, one frame kept at a time (napari shows one)."""

    def __init__(self, session: RecordingSession) -> None:
        self._session = weakref.ref(session)
        self._lock = threading.Lock()  # the status bar asks from napari's status thread
        self._kept: tuple[Any, int, np.ndarray] | None = None  # (store, frame, region ids)
        session.on_labels_changed(self.forget)

    def of_frame(self, frame: int) -> np.ndarray | None:
        """(height, width) uint8 region ids of ``frame`` (0 off the head), or None without results or U, V."""
        session = self._session()
        store = None if session is None else session.store
        if store is None or store.head_uv is None or not 0 <= frame < store.n_frames:
            return None
        with self._lock:
            kept = self._kept
        if kept is not None and kept[0] is store and kept[1] == frame:
            return kept[2]
        try:
            labels, _ = store.read_frame(frame)
            ids = region_ids(labels, *store.read_head_uv(frame))
        except DensePoseGazeError:
            return None  # a damaged frame: its body parts say so already
        with self._lock:
            self._kept = (store, frame, ids)
        return ids

    def at(self, frame: int, y: int, x: int) -> str | None:
        """The region name at a pixel, or None (off the head, outside the frame, no results)."""
        ids = self.of_frame(frame)
        if ids is None or not (0 <= y < ids.shape[0] and 0 <= x < ids.shape[1]):
            return None
        region = int(ids[y, x])
        return REGION_NAMES[region] if region else None

    def forget(self, frames: list[int]) -> None:
        """Drop what is kept of ``frames`` (their labels changed)."""
        with self._lock:
            if self._kept is not None and self._kept[1] in frames:
                self._kept = None


_REGIONS: weakref.WeakKeyDictionary[RecordingSession, FrameRegions] = weakref.WeakKeyDictionary()


def frame_regions(session: RecordingSession) -> FrameRegions:
    """The session's :class:`FrameRegions` (one per session)."""
    regions = _REGIONS.get(session)
    if regions is None:
        regions = _REGIONS[session] = FrameRegions(session)
    return regions


# ------------------------------------------------------------------ status bar
def region_status(layer: Labels, position: Any, world: bool = True) -> str | None:
    """The head region of ``layer``'s session under ``position`` (a cursor position), or None."""
    try:
        session = session_of(layer)
    except DensePoseGazeError:
        return None
    if session is None:
        return None
    point = np.asarray(layer.world_to_data(position) if world else position, dtype=np.float64)
    if point.size < 3 or not np.isfinite(point[-3:]).all():
        return None
    frame, y, x = (int(np.round(c)) for c in point[-3:])
    return frame_regions(session).at(frame, y, x)


def _with_region_status(layer: Labels) -> None:
    """Make ``layer.get_status`` add the head region under the cursor (once per layer)."""
    if _STATUS_KEY in getattr(layer.get_status, "__dict__", {}):
        return
    own = layer.get_status

    def get_status(position: Any = None, **kwargs: Any) -> dict[str, str]:
        status = own(position, **kwargs)
        if position is None or not isinstance(status, dict):
            return status
        region = region_status(layer, position, world=kwargs.get("world", False))
        if region is not None:
            for key in ("coordinates", "value"):
                if key in status:
                    status[key] += f"; {_STATUS_KEY}: {region}"
        return status

    get_status.__dict__[_STATUS_KEY] = True
    layer.get_status = get_status


_STATUS_VIEWERS: weakref.WeakSet[napari.Viewer] = weakref.WeakSet()


def show_head_region_status(viewer: napari.Viewer) -> None:
    """Let every "body parts" layer of ``viewer`` name the head region under the cursor (once per viewer)."""
    for layer in list(viewer.layers):
        if role_of(layer) == BODY_PARTS:
            _with_region_status(layer)
    if viewer in _STATUS_VIEWERS:
        return
    _STATUS_VIEWERS.add(viewer)
    viewer.layers.events.inserted.connect(
        lambda event: _with_region_status(event.value) if role_of(event.value) == BODY_PARTS else None)


# ------------------------------------------------------------------ the layer
def region_colormap() -> DirectLabelColormap:
    """The head regions' colours (:data:`..face_regions.REGION_COLORS`); no region is transparent."""
    colors: dict[int | None, Any] = {region: color for region, color in REGION_COLORS.items()}
    colors[0] = (0.0, 0.0, 0.0, 0.0)
    colors[None] = (0.0, 0.0, 0.0, 0.0)
    return DirectLabelColormap(color_dict=colors)


def _regions_table() -> pd.DataFrame:
    ids = [0, *sorted(REGION_NAMES)]
    return pd.DataFrame({"index": ids, _STATUS_KEY: ["" if r == 0 else REGION_NAMES[r] for r in ids]})


class _Follower:
    """Keeps a head-regions layer showing the regions of the frame shown, until the layer is removed."""

    def __init__(self, viewer: napari.Viewer, layer: Labels, session: RecordingSession) -> None:
        self._viewer, self._layer, self._session = weakref.ref(viewer), weakref.ref(layer), session
        viewer.dims.events.current_step.connect(self.update)
        viewer.layers.events.removed.connect(self._removed)
        self._unsubscribe = session.on_labels_changed(self._labels_changed)

    def update(self, _event: Any = None) -> None:
        viewer, layer = self._viewer(), self._layer()
        if viewer is None or layer is None:
            return
        frame = int(viewer.dims.current_step[0])
        ids = frame_regions(self._session).of_frame(frame)
        layer.data = ids if ids is not None else np.zeros(layer.data.shape, np.uint8)

    def _labels_changed(self, frames: list[int]) -> None:
        viewer = self._viewer()
        if viewer is not None and int(viewer.dims.current_step[0]) in frames:
            frame_regions(self._session).forget(frames)  # its own listener may be told after this one
            self.update()

    def _removed(self, event: Any) -> None:
        if event.value is not self._layer():
            return
        viewer = self._viewer()
        if viewer is not None:
            viewer.dims.events.current_step.disconnect(self.update)
            viewer.layers.events.removed.disconnect(self._removed)
        self._unsubscribe()
        _FOLLOWERS.pop(event.value, None)


_FOLLOWERS: weakref.WeakKeyDictionary[Layer, _Follower] = weakref.WeakKeyDictionary()


def head_regions_layer(viewer: napari.Viewer, session: RecordingSession) -> Labels | None:
    """The session's head-regions layer in ``viewer``, or None."""
    return find_layer(viewer, HEAD_REGIONS, session)


def show_head_regions(viewer: napari.Viewer, session: RecordingSession) -> Labels:
    """Add (or return) a layer of the head regions of the frame shown, over the body parts; it follows the frame.

    The selected layer stays selected: brush strokes must not land on regions.
    """
    store = session.store
    if store is None or store.head_uv is None:
        raise DensePoseGazeError(f"{session.recording.name} has no head U, V in {session.store_folder}: "
                                 "run DensePose on it with this version to see head regions.")
    layer = head_regions_layer(viewer, session)
    if layer is not None:
        return layer
    active = viewer.layers.selection.active
    parts = find_layer(viewer, BODY_PARTS, session)
    layer = viewer.add_labels(
        np.zeros(store.shape[1:], np.uint8), name=layer_name(HEAD_REGIONS, session.recording.name),
        colormap=region_colormap(), features=_regions_table(), opacity=0.8,
        metadata=layer_metadata(session.folder, HEAD_REGIONS, store.folder))
    if parts is not None:  # just above the body parts it shades
        viewer.layers.move(viewer.layers.index(layer), viewer.layers.index(parts) + 1)
    follower = _FOLLOWERS[layer] = _Follower(viewer, layer, session)
    follower.update()
    if active is not None:
        viewer.layers.selection.select_only(active)
    return layer


def hide_head_regions(viewer: napari.Viewer, session: RecordingSession) -> None:
    """Remove the session's head-regions layer from ``viewer`` (if shown)."""
    layer = head_regions_layer(viewer, session)
    if layer is not None:
        viewer.layers.remove(layer)
