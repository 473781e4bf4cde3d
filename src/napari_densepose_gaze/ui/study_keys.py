"""Keyboard shortcuts for moving through a recording the way a study does: by fixation and by results.

Shift+Right / Shift+Left: next / previous fixation (its first frame with
results, else its first frame); Alt+Right / Alt+Left: next / previous frame with
results; Shift+Alt+Right: next frame without results. None of these is one of
napari's own shortcuts.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DensePoseGazeError
from .session import RecordingSession, current_session

if TYPE_CHECKING:
    import napari

__all__ = ["SHORTCUTS", "bind_study_keys", "fixation_frames", "step_to"]

#: key -> what it does (the guide lists these)
SHORTCUTS = {
    "Shift-Right": "next fixation",
    "Shift-Left": "previous fixation",
    "Alt-Right": "next frame with results",
    "Alt-Left": "previous frame with results",
    "Shift-Alt-Right": "next frame without results",
}
#: key -> (where to, forward)
_MOVES = {
    "Shift-Right": ("fixation", True), "Shift-Left": ("fixation", False),
    "Alt-Right": ("results", True), "Alt-Left": ("results", False),
    "Shift-Alt-Right": ("unprocessed", True),
}
_BOUND: weakref.WeakSet[napari.Viewer] = weakref.WeakSet()


def fixation_frames(session: RecordingSession) -> np.ndarray:
    """The frame each fixation is shown at: its first frame with results, else its first frame (sorted)."""
    table = session.recording.fixation_frames()
    first = table["start frame"].to_numpy(np.int64)
    last = table["end frame"].to_numpy(np.int64)
    store = session.store
    processed = store.processed_frames() if store is not None else np.zeros(0, np.int64)
    shown = []
    for start, end in zip(first, last, strict=True):
        if start < 0:
            continue
        done = processed[(processed >= start) & (processed <= max(end, start))]
        shown.append(int(done[0]) if len(done) else int(start))
    return np.unique(np.array(shown, dtype=np.int64))


def step_to(frames: np.ndarray, current: int, forward: bool) -> int | None:
    """The first of the sorted ``frames`` after (or before) ``current``; None if there is none."""
    if forward:
        later = frames[frames > current]
        return int(later[0]) if len(later) else None
    earlier = frames[frames < current]
    return int(earlier[-1]) if len(earlier) else None


def _targets(session: RecordingSession, what: str) -> np.ndarray:
    if what == "fixation":
        return fixation_frames(session)
    store = session.store
    processed = store.processed_frames() if store is not None else np.zeros(0, np.int64)
    if what == "results":
        return processed
    return np.setdiff1d(np.arange(session.recording.n_frames), processed)


def bind_study_keys(viewer: napari.Viewer) -> None:
    """Bind :data:`SHORTCUTS` on ``viewer`` (once per viewer)."""
    if viewer in _BOUND:
        return
    _BOUND.add(viewer)
    for key, (what, forward) in _MOVES.items():
        viewer.bind_key(key, _mover(what, forward, SHORTCUTS[key]), overwrite=True)


def _mover(what: str, forward: bool, doc: str):
    def move(viewer: napari.Viewer) -> None:
        try:
            session = current_session(viewer)
        except DensePoseGazeError:
            return
        if session is None or viewer.dims.ndim < 3:
            return
        target = step_to(_targets(session, what), int(viewer.dims.current_step[0]), forward)
        if target is not None:
            viewer.dims.set_current_step(0, target)

    move.__doc__ = doc  # napari's shortcut list shows it
    return move
