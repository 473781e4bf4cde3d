"""Gaze hits: which body part of whom each gaze sample looked at.

Definitions (docs/hits.md says the same for users); the modules follow the
computation: :mod:`.radius` (how tolerant), :mod:`.lookup` (per sample),
:mod:`.summary` (the tables), :mod:`.schema` (their columns), :mod:`.colors`
(gaze colours by hit), :mod:`.provenance` (what an export says made it) and
:mod:`.compute` (the entry points).

Pixels. Gaze is in scene-video pixels, origin at the top-left corner of the
image, x right, y down (Pupil Cloud). Pixel ``(row, col)`` covers the square
``col <= x < col + 1``, ``row <= y < row + 1``; its centre is
``(col + 0.5, row + 0.5)``. A gaze point ``(x, y)`` falls on pixel
``(floor(y), floor(x))``, matching :func:`~napari_densepose_gaze.gaze.flag_gaze`,
which calls a sample inside the frame when ``0 <= x < width`` and ``0 <= y < height``.

Which samples are looked up. A sample is *assessed* when it is valid (worn,
not in a blink, inside the frame, not NaN, on a video frame) and its frame is
processed. Every other sample stays in the tables with its flags and a
``status`` naming the first reason it was not assessed, in this order: not worn,
in blink, nan, outside frame, before first frame, after last frame, frame not
processed. Nothing is dropped.

Exact hit. ``part id`` is the label of the pixel under the gaze point (0 is
background) and ``person`` the person index of that pixel (missing on background).

Tolerant hit (``hit part id``, ``hit person``, ``distance [px]``). On a part
pixel the hit is that pixel and the distance 0. Otherwise it is the part pixel
whose centre is nearest to the gaze point (Euclidean), provided that distance
is at most the sample's radius; among pixels at exactly the same distance the
first in row-major order (smallest row, then smallest column) wins. With no
part pixel within the radius the hit part is 0 (background) and the distance
missing. The summaries count tolerant hits; radius 0 makes them exact.

Persons. The results store holds one winner per pixel (labels and person index
come from the same detection), so overlapping persons need no rule here: the
person of the hit pixel is the person hit. ``person`` is the detection index
on that frame (1..n); ``person id`` is the stable id from
:mod:`~napari_densepose_gaze.tracking` (missing where the pixel's person index
has no detection, e.g. painted by hand).

Radius. In pixels, or in degrees of visual angle: with the scene camera
intrinsics, the gaze point is undistorted to a ray ``d``
(:func:`cv2.undistortPoints`, iterated to 1e-12); eight rays at angle ``radius`` from ``d``,
at azimuths 0, 45, ..., 315 degrees around it, are projected back with the lens
distortion (:func:`cv2.projectPoints`); the radius in pixels is the mean
distance of those eight points from the projection of ``d``. Without
intrinsics a radius in degrees cannot be converted (an error says so).
:func:`~.radius.default_radius` picks the default (see docs/hits.md for its reasons).

Dwell time. Each sample lasts until the next sample, at most
``max_gap_ms`` (so gaps in the data and long blinks do not inflate dwell);
the last sample lasts the median sample interval, also capped. Dwell time of a
part or person is the summed duration of its hit samples. *Worn time* is the
summed duration of the samples that are worn and lie on a processed frame
(blinks and looks outside the image included); *share of worn time* is
dwell time / worn time.

Majorities. Per frame and per fixation the part is the most common hit part
among the assessed samples, background counting as a value; ties go to a part
over background, then to the smaller id. Its person is the most common person
among the samples on that part (ties: the smaller id). ``share`` is the
part's count over the assessed samples. Summary counts of fixations follow the
fixation's majority part.
"""

from __future__ import annotations

from .colors import NO_PART_COLOR, UNPROCESSED_COLOR, gaze_colors
from .compute import compute_hits, hits_from_samples, update_frames
from .lookup import STATUSES, look_up, sample_durations, sample_hits
from .provenance import Provenance
from .radius import DEFAULT_MAX_GAP_MS, HitSettings, default_radius, radius_px
from .schema import COLUMNS, documented_order
from .summary import HitContext, HitTables, summarize

__all__ = [
    "COLUMNS",
    "DEFAULT_MAX_GAP_MS",
    "NO_PART_COLOR",
    "STATUSES",
    "UNPROCESSED_COLOR",
    "HitContext",
    "HitSettings",
    "HitTables",
    "Provenance",
    "compute_hits",
    "default_radius",
    "documented_order",
    "gaze_colors",
    "hits_from_samples",
    "look_up",
    "radius_px",
    "sample_durations",
    "sample_hits",
    "summarize",
    "update_frames",
]
