"""Recording time in the viewer: seconds from the first frame and the events around the frame shown.

napari's frame slider only counts (its axis is even labelled "-3"); a study is
planned in seconds and events ("start", "stimulus on"). The viewer's text
overlay shows both for the recording of the selected layer, and the slider's
axis is called "frame".
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import DensePoseGazeError
from .layer_roles import recording_folder_of
from .session import RecordingSession, current_session

if TYPE_CHECKING:
    import napari

    from ..recording import Recording

__all__ = ["recording_time_text", "show_recording_time"]

_SHOWN: weakref.WeakSet[napari.Viewer] = weakref.WeakSet()


def recording_time_text(recording: Recording, frame: int) -> str:
    """'12.345 s (frame 370) · after "start" · before "end"' for ``frame`` of ``recording``."""
    timestamps = np.asarray(recording.frame_timestamps, dtype=np.int64)
    if not 0 <= frame < len(timestamps):
        return f"frame {frame}"
    now = int(timestamps[frame])
    parts = [f"{(now - int(timestamps[0])) / 1e9:.3f} s (frame {frame})"]
    events = recording.events
    if events is not None and len(events) and {"name", "timestamp [ns]"} <= set(events.columns):
        ts = pd.to_numeric(events["timestamp [ns]"], errors="coerce").to_numpy(dtype=np.float64)
        names = events["name"].astype(str).to_numpy()
        before, after = np.flatnonzero(ts <= now), np.flatnonzero(ts > now)
        if len(before):
            parts.append(f'after "{names[before[np.argmax(ts[before])]]}"')
        if len(after):
            parts.append(f'before "{names[after[np.argmin(ts[after])]]}"')
    return " · ".join(parts)


def _n_recordings(viewer: napari.Viewer) -> int:
    return len({folder for layer in viewer.layers if (folder := recording_folder_of(layer)) is not None})


def _text_overlay(viewer: napari.Viewer):
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9; before: viewer.text_overlay
    return canvas.overlays["text"] if canvas is not None else viewer.text_overlay


def show_recording_time(viewer: napari.Viewer) -> None:
    """Keep ``viewer``'s text overlay showing the recording time of the frame shown (once per viewer)."""
    if viewer in _SHOWN:
        return
    _SHOWN.add(viewer)
    viewer_ref = weakref.ref(viewer)

    def update(_event: object = None) -> None:
        shown = viewer_ref()
        if shown is None:
            return
        try:
            session: RecordingSession | None = current_session(shown)
        except DensePoseGazeError:
            session = None
        overlay = _text_overlay(shown)
        if session is None or shown.dims.ndim < 3:
            overlay.visible = False
            return
        labels = list(shown.dims.axis_labels)
        if labels[0] != "frame":
            labels[0] = "frame"
            shown.dims.axis_labels = labels
        text = recording_time_text(session.recording, shown.dims.current_step[0])
        # with several recordings open, say which one's time this is
        overlay.text = f"{session.recording.name}: {text}" if _n_recordings(shown) > 1 else text
        overlay.position = "top_left"
        overlay.visible = True

    viewer.dims.events.current_step.connect(update)
    viewer.layers.events.inserted.connect(update)
    viewer.layers.events.removed.connect(update)
    viewer.layers.selection.events.active.connect(update)
    update()
