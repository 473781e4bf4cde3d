"""The colour of each gaze point: the part its frame's gaze hit, or why there is none."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..parts import part_color

__all__ = ["NO_PART_COLOR", "UNPROCESSED_COLOR", "gaze_colors"]

#: gaze ring on a processed frame whose gaze hit no part, and on a frame without results
NO_PART_COLOR = (1.0, 1.0, 1.0, 1.0)
UNPROCESSED_COLOR = (0.55, 0.55, 0.55, 1.0)


def gaze_colors(frames: pd.DataFrame, point_frames: Iterable[float]) -> np.ndarray:
    """RGBA per gaze point: the colour of its frame's hit part; white without a part, grey without results.

    ``frames`` is a per-frame hit table (:attr:`HitTables.frames`), ``point_frames``
    the frame of each point (napari's float coordinates, rounded).
    """
    point_frames = np.asarray(point_frames, dtype=np.float64).round().astype(np.int64)
    n = int(max(point_frames.max(initial=-1), frames["frame"].max() if len(frames) else -1)) + 1
    lut = np.tile(np.asarray(UNPROCESSED_COLOR), (max(n, 0), 1))
    processed = frames[frames["processed"].to_numpy(dtype=bool)]
    lut[processed["frame"].to_numpy(dtype=np.int64)] = NO_PART_COLOR
    parts = processed["part id"].fillna(0).to_numpy(dtype=np.int64)
    on_part = parts > 0
    if on_part.any():
        lut[processed["frame"].to_numpy(dtype=np.int64)[on_part]] = [part_color(int(p)) for p in parts[on_part]]
    return lut[point_frames] if len(point_frames) else np.zeros((0, 4))
