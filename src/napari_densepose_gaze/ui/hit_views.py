"""How the gaze hit tables show in napari: the views, their leading columns, where a row points, the rings' colours."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..hits import HitTables
from ..hits.colors import gaze_colors

if TYPE_CHECKING:
    import napari
    from napari.layers import Points

__all__ = ["LEADING_COLUMNS", "VIEWS", "GazeRings", "leading_order", "row_target", "rows_of_frame", "show_target"]

#: view name in the selector -> table of :class:`HitTables`
VIEWS = {
    "per frame": "frames",
    "per fixation": "fixations",
    "per part": "parts",
    "per group": "groups",
    "per person": "persons",
    "per head region": "regions",
    "per sample": "samples",
}
#: per view, the columns that answer "what was looked at" first on screen (exports keep the documented order)
LEADING_COLUMNS = {
    "frames": ["frame", "part", "region", "share", "person id", "distance [px]"],
    "fixations": ["fixation id", "part", "region", "share", "person id", "distance [px]", "start frame"],
    "samples": ["frame", "hit part", "hit region", "hit person id", "distance [px]"],
    "parts": ["part", "dwell time [s]", "share of worn time"],
    "groups": ["group", "dwell time [s]", "share of worn time"],
    "persons": ["person id", "dwell time [s]", "share of worn time"],
    "regions": ["person id", "region", "dwell time [s]", "share of worn time"],
}
RING_OUTLINE = "black"


def leading_order(view: str, columns: list[str]) -> list[str]:
    """``columns`` in on-screen order: the view's :data:`LEADING_COLUMNS` first, then the rest as they are."""
    order = [c for c in LEADING_COLUMNS.get(view, []) if c in columns]
    return order + [c for c in columns if c not in order]


def show_target(viewer: napari.Viewer, target: tuple[int, float, float]) -> None:
    """Show a :func:`row_target`'s frame, centred on its point when it has one."""
    frame, y, x = target
    viewer.dims.set_current_step(0, frame)
    if math.isfinite(y) and math.isfinite(x):
        # napari 0.9 moved the camera to viewer.scene; a 2-tuple sets the displayed (y, x)
        scene = getattr(viewer, "scene", None)
        camera = scene.camera if scene is not None else viewer.camera
        camera.center = (y, x)


def row_target(view: str, row: pd.Series, tables: HitTables) -> tuple[int, float, float] | None:
    """(frame, y, x) a row of the ``view`` table points at (a summary row: its first hit), or None (no frame)."""
    if view in ("frames", "samples"):
        frame, x, y = row["frame"], row["gaze x [px]"], row["gaze y [px]"]
    elif view == "fixations":
        decided = _deciding_frame(row, tables.samples)
        if decided is not None:
            return decided
        frame, x, y = row["start frame"], row.get("fixation x [px]", np.nan), row.get("fixation y [px]", np.nan)
    else:
        first = row["first hit timestamp [ns]"]
        if pd.isna(first):
            return None
        samples = tables.samples
        hits = samples[samples["assessed"].to_numpy(dtype=bool) & (samples["hit part id"].fillna(0) > 0)]
        if hits.empty:
            return None
        # nearest rather than equal: the summary's timestamp may have passed through float64
        ts = hits["timestamp [ns]"].to_numpy(dtype=np.int64)
        hit = hits.iloc[int(np.argmin(np.abs(ts - int(first))))]
        frame, x, y = hit["frame"], hit["gaze x [px]"], hit["gaze y [px]"]
    if pd.isna(frame) or int(frame) < 0:
        return None
    return int(frame), _as_float(y), _as_float(x)


def _deciding_frame(fixation: pd.Series, samples: pd.DataFrame) -> tuple[int, float, float] | None:
    """(frame, y, x) of the frame whose labels decided a fixation's part: most of its samples on that part.

    With one frame per fixation processed, that is the key frame, not the
    first frame of the fixation (which has no results). None: no sample of the
    fixation was assessed.
    """
    start, end = fixation.get("start timestamp [ns]"), fixation.get("end timestamp [ns]")
    if pd.isna(start) or pd.isna(end) or samples.empty:
        return None
    ts = samples["timestamp [ns]"].to_numpy(dtype=np.int64)
    inside = (ts >= int(start)) & (ts <= int(end)) & samples["assessed"].to_numpy(dtype=bool)
    mine = samples[inside]
    part = fixation.get("part id")
    if not pd.isna(part):
        on_part = mine[mine["hit part id"].fillna(-1).to_numpy() == int(part)]
        mine = on_part if len(on_part) else mine
    if mine.empty:
        return None
    frame = int(mine["frame"].value_counts(sort=True).index[0])
    on_frame = mine[mine["frame"] == frame]
    return frame, float(on_frame["gaze y [px]"].mean()), float(on_frame["gaze x [px]"].mean())


def rows_of_frame(view: str, frame: int, table: pd.DataFrame) -> np.ndarray:
    """Row numbers of ``table`` (the ``view`` shown) that belong to ``frame``: its frame, samples or fixation."""
    if view in ("frames", "samples") and "frame" in table:
        return np.flatnonzero(table["frame"].to_numpy() == frame)
    if view == "fixations" and {"start frame", "end frame"} <= set(table.columns):
        first = table["start frame"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        last = table["end frame"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        return np.flatnonzero((first <= frame) & (frame <= last))
    return np.zeros(0, np.int64)


def _as_float(value: Any) -> float:
    return float("nan") if pd.isna(value) else float(value)


class GazeRings:
    """Colours a gaze layer's rings by the part each frame's gaze hit, and gives the layer its own colours back."""

    def __init__(self) -> None:
        self._saved: tuple | None = None  # (layer, its face colours, border colours, border widths)

    def color(self, layer: Points | None, frames: pd.DataFrame) -> None:
        """Colour each ring of ``layer`` by the per-frame majority part in ``frames`` (HitTables.frames)."""
        if layer is None or len(layer.data) == 0:
            return
        if self._saved is None or self._saved[0] is not layer:
            self.restore()
            self._saved = (layer, np.array(layer.face_color, copy=True), np.array(layer.border_color, copy=True),
                           np.array(layer.border_width, copy=True))
            # a ring in the colour of the part it lies on would vanish: outline it
            layer.border_color = RING_OUTLINE
            layer.border_width = 0.12
        layer.face_color = gaze_colors(frames, layer.data[:, 0])

    def restore(self, still_shown: Any = None) -> None:
        """Give the coloured layer its colours back (unless ``still_shown`` is given and does not hold it)."""
        if self._saved is None:
            return
        layer, faces, borders, widths = self._saved
        self._saved = None
        if (still_shown is None or layer in still_shown) and len(layer.data) == len(faces):
            layer.face_color = faces
            layer.border_color = borders
            layer.border_width = widths


