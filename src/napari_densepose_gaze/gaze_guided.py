"""DensePose only where the gaze can land: the detections of a frame that a gaze hit can reach.

A tolerant hit (:mod:`.hits`) is the part pixel nearest to a valid gaze sample,
at most the sample's radius away. A detection's body parts are pasted inside its
integer box (origin ``int(x1), int(y1)``, at least one pixel, see
:func:`~.engine.chart.paste_charts`), which lies inside its box grown by one
pixel on every side. So a detection whose grown box is farther than the radius
from every valid gaze sample of its frame owns no pixel a hit can land on.

Overlaps: a pixel shows the most confident detection whose parts cover it. A
pixel within the radius lies in the box of whoever shows there, so that one is
reached too. But a hit person's head pose (yaw, facing the wearer) comes from
all of their visible head pixels, far from the gaze as well, and which of them
are visible depends on the more confident people painted over them. So the
heads run for the reached detections and for every detection at least as
confident whose box overlaps one of theirs; the others change no hit table.
Boxes and scores of every detection are kept, so person tracking is the same
as after a full run.

The radius per sample is the one the hit tables use (:func:`~.hits.radius_px`,
in pixels or degrees); a frame made this way records ``(radius, unit)`` in the
store, so that hits with a wider radius, or a full run, know it lacks persons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .errors import DensePoseGazeError
from .hits.compute import frames_lacking_people  # the hits' rule: which frames their radius can assess
from .hits.radius import HitSettings, default_radius, radius_px

if TYPE_CHECKING:
    from .engine.predictor import BoxFilter
    from .recording import Recording

__all__ = ["DENSEPOSE_MODES", "DensePoseMode", "GazeGuide", "boxes_within_reach", "default_densepose_mode",
           "detections_needed", "frames_lacking_people", "gaze_guide"]

DensePoseMode = Literal["gazed", "all"]
#: ``gazed``: DensePose only for the detections a gaze hit can reach; ``all``: for every detection.
DENSEPOSE_MODES: tuple[str, ...] = ("gazed", "all")
# The integer box a detection's parts are pasted in lies within its float box grown by this much.
_PASTE_MARGIN_PX = 1.0
# Slack for float round-off between this radius and the hit tables' own (computed on other arrays).
_RADIUS_SLACK_PX = 1e-6



def default_densepose_mode(selection_mode: str) -> DensePoseMode:
    """``gazed`` for the frame selections driven by gaze (``gaze``, ``fixations``), ``all`` for all frames."""
    return "all" if selection_mode == "all" else "gazed"


def _paste_areas(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 that hold each box's pasted pixels: the box grown by the paste margin."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, 0] - _PASTE_MARGIN_PX, boxes[:, 1] - _PASTE_MARGIN_PX,
                            np.maximum(boxes[:, 2], boxes[:, 0]) + _PASTE_MARGIN_PX,
                            np.maximum(boxes[:, 3], boxes[:, 1]) + _PASTE_MARGIN_PX])


def boxes_within_reach(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which ``boxes`` (N, 4) come within reach of a gaze point ``points`` (M, 3: x, y, radius in px).

    Reach: the box grown by the paste margin is at most the radius from the point.
    """
    areas = _paste_areas(boxes)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not len(areas) or not len(points):
        return np.zeros(len(areas), dtype=bool)
    x, y, radius = points[None, :, 0], points[None, :, 1], points[None, :, 2]
    dx = np.maximum(np.maximum(areas[:, None, 0] - x, x - areas[:, None, 2]), 0.0)
    dy = np.maximum(np.maximum(areas[:, None, 1] - y, y - areas[:, None, 3]), 0.0)
    return (np.hypot(dx, dy) <= radius + _RADIUS_SLACK_PX).any(axis=1)


def detections_needed(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bool: the detections whose body parts the hit tables can see (see the module docstring).

    Those within reach of a gaze point ``points`` (M, 3: x, y, radius in px), and those
    at least as confident whose box overlaps the box of one within reach.
    """
    reached = boxes_within_reach(boxes, points)
    if not reached.any():
        return reached
    areas = _paste_areas(boxes)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    near = areas[reached]
    overlaps = ((areas[:, None, 0] < near[None, :, 2]) & (near[None, :, 0] < areas[:, None, 2])
                & (areas[:, None, 1] < near[None, :, 3]) & (near[None, :, 1] < areas[:, None, 3]))
    # equal scores count as painted over: which of two equals wins is the paster's business
    over = overlaps & (scores[:, None] >= scores[reached][None, :])
    return reached | over.any(axis=1)


@dataclass(frozen=True)
class GazeGuide:
    """The valid gaze of each frame with its hit radius: which detections need body parts."""

    settings: HitSettings
    points: Mapping[int, np.ndarray]  # frame -> (M, 3) gaze x, gaze y, radius [px] of its valid samples

    @property
    def coverage(self) -> tuple[float, str]:
        """``(radius, unit)`` as the results store records it for the frames this guide limits."""
        return float(self.settings.radius), str(self.settings.unit)

    def gaze_points(self, frame: int) -> np.ndarray:
        """(M, 3) gaze x, gaze y, radius [px] of the valid samples of ``frame``."""
        return self.points.get(int(frame), np.empty((0, 3)))

    def box_filter(self, frame: int) -> BoxFilter:
        """:func:`detections_needed` on one frame, as the engine takes it."""
        return lambda boxes, scores: detections_needed(boxes, scores, self.gaze_points(frame))


def gaze_guide(recording: Recording, settings: HitSettings | None = None) -> GazeGuide:
    """The guide of a recording for hits with ``settings`` (default: :func:`~.hits.default_radius`, as the hits)."""
    if settings is None:
        settings = default_radius(recording.scene_camera, recording.frame_size, recording.info)
    samples = recording.gaze_samples
    frames = samples["frame"].to_numpy(dtype=np.int64)
    # The samples a hit table assesses: valid, on a video frame (whether it is processed is the run's business).
    used = samples["valid"].to_numpy(dtype=bool) & (frames >= 0) & (frames < recording.n_frames)
    x = samples["gaze x [px]"].to_numpy(dtype=np.float64)[used]
    y = samples["gaze y [px]"].to_numpy(dtype=np.float64)[used]
    try:
        radius = radius_px(x, y, settings, recording.scene_camera)
    except DensePoseGazeError as exc:
        raise DensePoseGazeError(
            f"{exc} (Gaze-guided DensePose on {recording.name} needs the hit radius; or run it with "
            "DensePose for all detections.)"
        ) from exc
    frames = frames[used]
    order = np.argsort(frames, kind="stable")
    frames, table = frames[order], np.column_stack([x, y, radius])[order]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]]) if len(frames) else np.array([], np.int64)
    ends = np.r_[starts[1:], len(frames)]
    return GazeGuide(settings, {int(frames[s]): table[s:e] for s, e in zip(starts, ends)})

