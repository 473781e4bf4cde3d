"""Gaze hits: which body part of whom each gaze sample looked at.

Definitions (docs/hits.md says the same for users):

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
:func:`default_radius` picks the default (see docs/hits.md for its reasons).

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

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .errors import DensePoseGazeError
from .gaze import fixation_frames, flag_gaze
from .parts import PART_GROUPS, PART_NAMES
from .tracking import link_detections, person_id_lookup

if TYPE_CHECKING:
    from .recording import Recording
    from .store import ResultsStore

__all__ = [
    "DEFAULT_RADIUS_DEG",
    "DEFAULT_MAX_GAP_MS",
    "STATUSES",
    "HitSettings",
    "HitTables",
    "default_radius",
    "radius_px",
    "sample_durations",
    "sample_hits",
    "look_up",
    "summarize",
    "compute_hits",
    "update_frames",
    "hits_from_samples",
    "device_of",
]

#: Default tolerance per device, degrees of visual angle: the published
#: uncalibrated gaze accuracy (docs/hits.md gives the sources).
DEFAULT_RADIUS_DEG = {"neon": 1.8, "invisible": 4.6}
#: Nominal focal length in pixels of each scene camera at its full size, used
#: only to turn the default into pixels when a recording has no intrinsics.
_NOMINAL_FOCAL_PX = {"neon": (1600, 892.0), "invisible": (1088, 766.0)}
DEFAULT_MAX_GAP_MS = 50.0

#: ``progress(done, total)``: frames read so far and frames to read
Progress = Callable[[int, int], None]

#: Values of the per-sample ``status`` column: reasons not to look a sample up
#: (in priority order), then the three outcomes of a look-up.
_STATUS_FLAGS = ("not worn", "in blink", "nan", "outside frame", "before first frame", "after last frame")
STATUSES = (*_STATUS_FLAGS, "frame not processed", "on part", "near part", "no part")
_CONE_DIRECTIONS = 8
_BACKGROUND_NAME = "background"


@dataclass(frozen=True)
class HitSettings:
    """How tolerant a hit is: ``radius`` in ``unit`` ("px" or "deg"), and the dwell-time gap cap."""

    radius: float
    unit: Literal["px", "deg"] = "px"
    max_gap_ms: float = DEFAULT_MAX_GAP_MS

    def __post_init__(self) -> None:
        if self.unit not in ("px", "deg"):
            raise DensePoseGazeError(f"The hit radius unit must be 'px' or 'deg', not {self.unit!r}.")
        if not (math.isfinite(self.radius) and self.radius >= 0):
            raise DensePoseGazeError(f"The hit radius must be a number >= 0, not {self.radius!r}.")
        if self.unit == "deg" and self.radius >= 45:
            raise DensePoseGazeError(
                f"A hit radius of {self.radius} degrees is larger than any gaze error; give less than 45 degrees."
            )
        if not (math.isfinite(self.max_gap_ms) and self.max_gap_ms > 0):
            raise DensePoseGazeError(f"max_gap_ms must be a positive number of milliseconds, not {self.max_gap_ms!r}.")


def device_of(scene_camera: dict | None, frame_size: tuple[int, int]) -> str:
    """The device: "invisible" for a rotation matrix in the intrinsics or a ~1088x1080 video, else "neon"."""
    if scene_camera and "rotation_matrix" in scene_camera:
        return "invisible"
    width, height = frame_size
    return "invisible" if abs(width / height - 1088 / 1080) < 0.02 else "neon"


def default_radius(scene_camera: dict | None, frame_size: tuple[int, int]) -> HitSettings:
    """The default tolerance: the device's published gaze accuracy in degrees.

    Without intrinsics it is converted to pixels with the device's nominal
    focal length scaled to the video width, at the image centre.
    """
    device = device_of(scene_camera, frame_size)
    degrees = DEFAULT_RADIUS_DEG[device]
    if scene_camera and "camera_matrix" in scene_camera:
        return HitSettings(degrees, "deg")
    full_width, focal = _NOMINAL_FOCAL_PX[device]
    pixels = focal * frame_size[0] / full_width * math.tan(math.radians(degrees))
    return HitSettings(round(pixels, 1), "px")


def radius_px(
    x: np.ndarray, y: np.ndarray, settings: HitSettings, scene_camera: dict | None = None
) -> np.ndarray:
    """The radius in pixels around each gaze point (NaN where the point is NaN), see the module docstring."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if settings.unit == "px":
        return np.full(x.shape, float(settings.radius))
    if not scene_camera or "camera_matrix" not in scene_camera:
        raise DensePoseGazeError(
            f"A hit radius of {settings.radius} degrees needs the scene camera intrinsics "
            "(scene_camera.json), which this recording lacks: give the radius in pixels instead."
        )
    import cv2  # OpenCV only for degree radii

    try:
        camera = np.asarray(scene_camera["camera_matrix"], dtype=np.float64).reshape(3, 3)
        dist = np.asarray(scene_camera.get("dist_coefs", []), dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise DensePoseGazeError(
            f"scene_camera.json has a malformed camera_matrix or dist_coefs ({exc}): "
            "give the hit radius in pixels, or download the recording again."
        ) from exc
    out = np.full(x.shape, np.nan)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any() or settings.radius == 0:
        out[finite] = 0.0
        return out
    points = np.stack([x[finite], y[finite]], axis=-1).reshape(-1, 1, 2)
    try:
        out[finite] = _cone_radius(points, camera, dist, math.radians(settings.radius))
    except cv2.error as exc:
        raise DensePoseGazeError(
            f"OpenCV cannot use the intrinsics of scene_camera.json ({getattr(exc, 'err', exc)}): "
            "give the hit radius in pixels, or download the recording again."
        ) from exc
    return out


def _cone_radius(points: np.ndarray, camera: np.ndarray, dist: np.ndarray, theta: float) -> np.ndarray:
    """Mean pixel distance of a cone of half-angle ``theta`` around each point's ray (module docstring)."""
    import cv2

    # gaze pixels go to OpenCV as they are, as Pupil Labs' tools do; whether pixel
    # centres sit at integers or half-integers moves a point by half a pixel and
    # changes its radius negligibly
    normalized = undistort_points(points, camera, dist).reshape(-1, 2)
    rays = np.column_stack([normalized, np.ones(len(normalized))])
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    # two unit vectors perpendicular to each ray (its z is > 0, so d x e_y is never 0)
    u = np.column_stack([-rays[:, 2], np.zeros(len(rays)), rays[:, 0]])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(rays, u)
    phi = 2 * np.pi * np.arange(_CONE_DIRECTIONS) / _CONE_DIRECTIONS
    around = np.cos(phi)[None, :, None] * u[:, None, :] + np.sin(phi)[None, :, None] * v[:, None, :]
    cone = math.cos(theta) * rays[:, None, :] + math.sin(theta) * around
    zero = np.zeros(3)
    centre, _ = cv2.projectPoints(rays.reshape(-1, 1, 3), zero, zero, camera, dist)
    ring, _ = cv2.projectPoints(cone.reshape(-1, 1, 3), zero, zero, camera, dist)
    ring = ring.reshape(-1, _CONE_DIRECTIONS, 2)
    return np.linalg.norm(ring - centre.reshape(-1, 1, 2), axis=-1).mean(axis=1)


def undistort_points(points: np.ndarray, camera: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Normalized image coordinates of distorted pixel points, iterated to 1e-12 (OpenCV 4 and 5)."""
    import cv2

    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4 names the overload with criteria so
        return cv2.undistortPointsIter(points, camera, dist, None, None, criteria)
    return cv2.undistortPoints(points, camera, dist, R=None, P=None, criteria=criteria)


def sample_durations(timestamps: np.ndarray, max_gap_ms: float = DEFAULT_MAX_GAP_MS) -> np.ndarray:
    """How long each sample lasts (int64 ns): until the next one, capped at ``max_gap_ms``.

    ``timestamps`` must be sorted. The last sample lasts the median interval (capped).
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    cap = int(round(max_gap_ms * 1e6))
    out = np.zeros(ts.shape, dtype=np.int64)
    if ts.size == 0:
        return out
    gaps = np.diff(ts)
    out[:-1] = np.minimum(gaps, cap)
    out[-1] = min(int(np.median(gaps)), cap) if gaps.size else 0
    return out


# ---------------------------------------------------------------- per sample
def _processed_mask(processed: Any, n_frames: int) -> np.ndarray:
    values = np.asarray(processed if processed is not None else [], dtype=None)
    if values.dtype == bool and values.shape == (n_frames,):
        return values.copy()
    mask = np.zeros(n_frames, dtype=bool)
    idx = np.asarray(values, dtype=np.int64).ravel()
    idx = idx[(idx >= 0) & (idx < n_frames)]
    mask[idx] = True
    return mask


def look_up(
    frames: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    radius: np.ndarray,
    labels: Any,
    persons: Any,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Exact and tolerant hits of gaze points inside the image, reading one frame at a time.

    ``progress(done, total)`` gets the frames done so far, before each frame and once at the end.

    Returns arrays ``part``, ``person`` (0: none), ``hit_part``, ``hit_person``,
    ``distance`` (NaN: no part within the radius), ``hit_x``, ``hit_y`` (the hit
    pixel's centre) and ``in_radius`` (the ids,
    0 for background, of the pixels whose centre lies within the radius plus the
    pixel under the point, as ``"0;2;23"``).
    """
    n = len(frames)
    part = np.zeros(n, dtype=np.int64)
    person = np.zeros(n, dtype=np.int64)
    hit_part = np.zeros(n, dtype=np.int64)
    hit_person = np.zeros(n, dtype=np.int64)
    distance = np.full(n, np.nan)
    hit_x = np.full(n, np.nan)
    hit_y = np.full(n, np.nan)
    in_radius = np.empty(n, dtype=object)
    _, height, width = labels.shape
    col = np.floor(x).astype(np.int64)
    row = np.floor(y).astype(np.int64)
    r = np.nan_to_num(radius, nan=0.0)
    # pixel centres within r of x: ceil(x - r - 0.5) <= col <= floor(x + r - 0.5); always include the pixel under x
    c_lo = np.clip(np.minimum(col, np.ceil(x - r - 0.5).astype(np.int64)), 0, width - 1)
    c_hi = np.clip(np.maximum(col, np.floor(x + r - 0.5).astype(np.int64)), 0, width - 1)
    r_lo = np.clip(np.minimum(row, np.ceil(y - r - 0.5).astype(np.int64)), 0, height - 1)
    r_hi = np.clip(np.maximum(row, np.floor(y + r - 0.5).astype(np.int64)), 0, height - 1)
    order = np.argsort(frames, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(frames[order]) != 0]) if n else np.zeros(0, dtype=np.int64)
    groups = np.split(order, starts[1:]) if n else []
    for done, group in enumerate(groups, start=1):
        if progress is not None:
            progress(done - 1, len(groups))
        f = int(frames[group[0]])
        top, bottom = int(r_lo[group].min()), int(r_hi[group].max()) + 1
        left, right = int(c_lo[group].min()), int(c_hi[group].max()) + 1
        lab = np.asarray(labels[f, top:bottom, left:right])
        # persons matter only where there are parts: skip decoding them otherwise
        per = np.asarray(persons[f, top:bottom, left:right]) if lab.any() else np.zeros_like(lab)
        for j in group:
            rows = np.arange(r_lo[j], r_hi[j] + 1)
            cols = np.arange(c_lo[j], c_hi[j] + 1)
            window = lab[rows[0] - top : rows[-1] + 1 - top, cols[0] - left : cols[-1] + 1 - left]
            owners = per[rows[0] - top : rows[-1] + 1 - top, cols[0] - left : cols[-1] + 1 - left]
            d2 = ((rows + 0.5 - y[j]) ** 2)[:, None] + ((cols + 0.5 - x[j]) ** 2)[None, :]
            disc = d2 <= r[j] * r[j]
            under = (row[j] - rows[0], col[j] - cols[0])
            disc[under] = True
            in_radius[j] = ";".join(str(v) for v in np.unique(window[disc]))
            part[j] = window[under]
            person[j] = owners[under] if part[j] else 0
            if part[j]:
                hit_part[j], hit_person[j], distance[j] = part[j], person[j], 0.0
                hit_x[j], hit_y[j] = col[j] + 0.5, row[j] + 0.5
                continue
            candidates = np.where(disc & (window > 0), d2, np.inf)
            k = int(np.argmin(candidates))  # first minimum in row-major order
            if np.isfinite(candidates.flat[k]):
                hit_part[j] = window.flat[k]
                hit_person[j] = owners.flat[k]
                distance[j] = math.sqrt(candidates.flat[k])
                hit_y[j] = rows[k // len(cols)] + 0.5
                hit_x[j] = cols[k % len(cols)] + 0.5
    if progress is not None:
        progress(len(groups), len(groups))
    return {"part": part, "person": person, "hit_part": hit_part, "hit_person": hit_person,
            "distance": distance, "hit_x": hit_x, "hit_y": hit_y, "in_radius": in_radius}


def _status(
    samples: pd.DataFrame, processed_frame: np.ndarray, hit_part: np.ndarray, distance: np.ndarray
) -> np.ndarray:
    status = np.full(len(samples), "", dtype=object)
    undecided = np.ones(len(samples), dtype=bool)
    for flag in _STATUS_FLAGS:
        mask = undecided & samples[flag].to_numpy(dtype=bool)
        status[mask] = flag
        undecided &= ~mask
    mask = undecided & ~processed_frame
    status[mask] = "frame not processed"
    undecided &= ~mask
    status[undecided & (hit_part > 0) & (distance == 0)] = "on part"
    status[undecided & (hit_part > 0) & (distance > 0)] = "near part"
    status[undecided & (hit_part == 0)] = "no part"
    return status


def _names(ids: pd.Series, table: dict[int, str]) -> pd.Series:
    names = {0: _BACKGROUND_NAME, **table}
    return ids.map(lambda v: None if pd.isna(v) else names[int(v)]).astype(object)


def sample_hits(
    samples: pd.DataFrame,
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    radius_px: np.ndarray | float,
    person_ids: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """``samples`` (from :func:`~napari_densepose_gaze.gaze.flag_gaze`) with hit columns.

    ``labels`` and ``persons`` are ``(frames, height, width)`` array-likes (a
    zarr array or numpy volume); only the frames with assessed samples are
    read, one at a time, and of each only the window the radius reaches.
    ``processed`` holds the processed frame indices (or a boolean mask per
    frame). ``person_ids`` maps ``(frame, person)`` to a stable ``person id``.
    ``progress(done, total)`` is called per frame read; raising in it cancels.
    """
    out = samples.copy()
    n_frames = labels.shape[0]
    processed_mask = _processed_mask(processed, n_frames)
    frames = out["frame"].to_numpy(dtype=np.int64)
    on_video = (frames >= 0) & (frames < n_frames)
    processed_frame = np.zeros(len(out), dtype=bool)
    processed_frame[on_video] = processed_mask[frames[on_video]]
    radius = np.broadcast_to(np.asarray(radius_px, dtype=np.float64), (len(out),)).copy()
    valid = out["valid"].to_numpy(dtype=bool)
    assessed = valid & processed_frame & on_video
    idx = np.flatnonzero(assessed)
    found = look_up(
        frames[idx],
        out["gaze x [px]"].to_numpy(dtype=np.float64)[idx],
        out["gaze y [px]"].to_numpy(dtype=np.float64)[idx],
        radius[idx],
        labels,
        persons,
        progress,
    )
    lookup = person_id_lookup(person_ids)

    def column(values: np.ndarray, *, zero_is_missing: bool = False) -> pd.Series:
        result = pd.Series(pd.NA, index=out.index, dtype="Int64")
        vals = pd.array(values, dtype="Int64")
        if zero_is_missing:
            vals[values == 0] = pd.NA
        result.iloc[idx] = vals
        return result

    def stable(values: np.ndarray) -> pd.Series:
        ids = [lookup.get((int(f), int(p)), pd.NA) if p else pd.NA for f, p in zip(frames[idx], values)]
        result = pd.Series(pd.NA, index=out.index, dtype="Int64")
        result.iloc[idx] = pd.array(ids, dtype="Int64")
        return result

    hit_part_all = np.zeros(len(out), dtype=np.int64)
    hit_part_all[idx] = found["hit_part"]
    distance_all = np.full(len(out), np.nan)
    distance_all[idx] = found["distance"]
    out["frame processed"] = processed_frame
    out["assessed"] = assessed
    out["status"] = _status(out, processed_frame, hit_part_all, distance_all)
    out["radius [px]"] = radius
    out["part id"] = column(found["part"])
    out["part"] = _names(out["part id"], PART_NAMES)
    out["group"] = _names(out["part id"], PART_GROUPS)
    out["person"] = column(found["person"], zero_is_missing=True)
    out["person id"] = stable(found["person"])
    out["hit part id"] = column(found["hit_part"])
    out["hit part"] = _names(out["hit part id"], PART_NAMES)
    out["hit group"] = _names(out["hit part id"], PART_GROUPS)
    out["hit person"] = column(found["hit_person"], zero_is_missing=True)
    out["hit person id"] = stable(found["hit_person"])
    out["distance [px]"] = distance_all
    for name, key in (("hit x [px]", "hit_x"), ("hit y [px]", "hit_y")):
        values = np.full(len(out), np.nan)
        values[idx] = found[key]
        out[name] = values
    in_radius = pd.Series(None, index=out.index, dtype=object)
    in_radius.iloc[idx] = found["in_radius"]
    out["parts in radius"] = in_radius
    return out


# ---------------------------------------------------------------- summaries
@dataclass(eq=False)
class HitTables:
    """Every table of a hit computation, and what is needed to update it.

    ``samples``: one row per gaze sample; ``frames``: one per frame with
    samples; ``fixations``: one per fixation; ``parts`` (24 rows), ``groups``
    and ``persons``: summaries of tolerant hits.
    """

    samples: pd.DataFrame
    frames: pd.DataFrame
    fixations: pd.DataFrame
    parts: pd.DataFrame
    groups: pd.DataFrame
    persons: pd.DataFrame
    settings: HitSettings
    context: dict[str, Any] = field(default_factory=dict, repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The six tables by name (``samples``, ``frames``, ``fixations``, ``parts``, ``groups``, ``persons``)."""
        return {name: getattr(self, name) for name in ("samples", "frames", "fixations", "parts", "groups", "persons")}

    def refresh(self, store: ResultsStore, frames: Any, *, person_ids: pd.DataFrame | None = None) -> HitTables:
        """:func:`update_frames` reading the results store (after a person edited ``frames``)."""
        return update_frames(self, frames, store.labels, store.persons, store.processed_frames(),
                             person_ids=person_ids)


def _majority(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of ``by``: majority ``hit part id``, its count, its majority person and mean distance."""
    columns = ["part id", "n", "person id", "person", "distance [px]"]
    if rows.empty:
        return pd.DataFrame({c: pd.Series([], dtype="Int64" if c != "distance [px]" else float) for c in columns},
                            index=pd.Index([], name=by))
    parts = pd.DataFrame({by: rows[by].to_numpy(), "part id": rows["hit part id"].to_numpy(dtype=np.int64)})
    counts = parts.value_counts().rename("n").reset_index()
    counts["background"] = counts["part id"] == 0
    counts = counts.sort_values([by, "n", "background", "part id"], ascending=[True, False, True, True])
    best = counts.drop_duplicates(by).set_index(by)[["part id", "n"]]
    on_best = rows[rows["hit part id"].to_numpy(dtype=np.int64) == best["part id"].reindex(rows[by]).to_numpy()]
    on_best = on_best[on_best["hit part id"] > 0]
    who = pd.DataFrame({
        by: on_best[by].to_numpy(),
        "person id": on_best["hit person id"].fillna(-1).to_numpy(dtype=np.int64),
        "person": on_best["hit person"].fillna(-1).to_numpy(dtype=np.int64),
    })
    who_counts = who.value_counts().rename("n").reset_index()
    who_counts["unknown"] = who_counts["person id"] < 0
    who_counts = who_counts.sort_values([by, "n", "unknown", "person id", "person"],
                                        ascending=[True, False, True, True, True])
    top = who_counts.drop_duplicates(by).set_index(by)
    best["person id"] = top["person id"].reindex(best.index)
    best["person"] = top["person"].reindex(best.index)
    best["distance [px]"] = on_best.groupby(by)["distance [px]"].mean().reindex(best.index)
    for c in ("person id", "person"):
        best[c] = best[c].where(best[c] >= 0).astype("Int64")
    best["part id"] = best["part id"].astype("Int64")
    best["n"] = best["n"].astype("Int64")
    return best[columns]


def _share(table: pd.DataFrame) -> np.ndarray:
    assessed = table["assessed samples"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(assessed > 0, _float(table["n"]) / assessed, np.nan)


def _frame_table(samples: pd.DataFrame, frame_timestamps: np.ndarray) -> pd.DataFrame:
    on = samples[samples["frame"] >= 0]
    g = on.groupby("frame", sort=True)
    table = pd.DataFrame({"samples": g.size().astype(np.int64)})
    table["valid samples"] = g["valid"].sum().astype(np.int64)
    table["processed"] = g["frame processed"].first().astype(bool)
    table["assessed samples"] = g["assessed"].sum().astype(np.int64)
    hit = on["assessed"] & (on["hit part id"].fillna(0) > 0)
    table["hit samples"] = hit.groupby(on["frame"]).sum().reindex(table.index, fill_value=0).astype(np.int64)
    mean_xy = on[on["valid"]].groupby("frame")[["gaze x [px]", "gaze y [px]"]].mean()
    table = table.join(mean_xy, how="left")
    best = _majority(on[on["assessed"]], "frame")
    table = table.join(best, how="left")
    table.index.name = "frame"
    table = table.reset_index()
    table["frame"] = table["frame"].astype(np.int64)
    table["timestamp [ns]"] = np.asarray(frame_timestamps, dtype=np.int64)[table["frame"].to_numpy()]
    table["share"] = _share(table)
    table["part id"] = table["part id"].astype("Int64")
    table["part"] = _names(table["part id"], PART_NAMES)
    table["group"] = _names(table["part id"], PART_GROUPS)
    for c in ("person", "person id"):
        table[c] = table[c].astype("Int64")
    for c in ("gaze x [px]", "gaze y [px]", "distance [px]"):
        table[c] = _float(table[c])
    return table[["frame", "timestamp [ns]", "gaze x [px]", "gaze y [px]", "samples", "valid samples", "processed",
                  "assessed samples", "hit samples", "part id", "part", "group", "share", "person", "person id",
                  "distance [px]"]]


def _sample_fixation_ids(samples: pd.DataFrame, fixations: pd.DataFrame) -> pd.Series:
    """Each sample's fixation: gaze.csv's ``fixation id``, else by the fixations' time intervals."""
    if "fixation id" in samples and samples["fixation id"].notna().any():
        return samples["fixation id"].astype("Int64")
    ids = pd.Series(pd.NA, index=samples.index, dtype="Int64")
    if fixations.empty:
        return ids
    fx = fixations.sort_values("start timestamp [ns]", kind="stable")
    starts = fx["start timestamp [ns]"].to_numpy(dtype=np.int64)
    ends = fx["end timestamp [ns]"].to_numpy(dtype=np.int64)
    ts = samples["timestamp [ns]"].to_numpy(dtype=np.int64)
    pos = np.searchsorted(starts, ts, side="right") - 1
    inside = pos >= 0
    inside[inside] = ts[inside] <= ends[pos[inside]]
    ids[inside] = fx["fixation id"].to_numpy()[pos[inside]]
    return ids


def _fixation_table(samples: pd.DataFrame, context: dict[str, Any]) -> pd.DataFrame:
    fixations = context["fixations"]
    base_columns = ["fixation id", "start timestamp [ns]", "end timestamp [ns]", "duration [ms]",
                    "fixation x [px]", "fixation y [px]"]
    base = fixations[[c for c in base_columns if c in fixations]].copy()
    if len(base):
        framed = fixation_frames(base, context["frame_timestamps"], frame_in_order=context["frame_in_order"])
        base["start frame"] = framed["start frame"].astype(np.int64)
        base["end frame"] = framed["end frame"].astype(np.int64)
    else:
        base["start frame"] = pd.Series([], dtype=np.int64)
        base["end frame"] = pd.Series([], dtype=np.int64)
    base["fixation id"] = base["fixation id"].astype("Int64")
    ids = _sample_fixation_ids(samples, fixations)
    with_id = samples.assign(**{"fixation id": ids})[ids.notna()]
    with_id = with_id.assign(**{"fixation id": with_id["fixation id"].astype(np.int64)})
    g = with_id.groupby("fixation id")
    stats = pd.DataFrame({"samples": g.size(), "assessed samples": g["assessed"].sum()})
    best = _majority(with_id[with_id["assessed"]], "fixation id").drop(columns=["person"])
    stats = stats.join(best, how="left")
    stats.index = stats.index.astype("Int64")
    table = base.merge(stats, left_on="fixation id", right_index=True, how="outer", sort=True)
    table["samples"] = table["samples"].fillna(0).astype(np.int64)
    table["assessed samples"] = table["assessed samples"].fillna(0).astype(np.int64)
    table["share"] = _share(table)
    table["part id"] = table["part id"].astype("Int64")
    table["part"] = _names(table["part id"], PART_NAMES)
    table["group"] = _names(table["part id"], PART_GROUPS)
    table["person id"] = table["person id"].astype("Int64")
    table["distance [px]"] = _float(table["distance [px]"])
    for c in ("start frame", "end frame"):
        table[c] = table[c].astype("Int64")
    columns = [c for c in base_columns if c in table] + ["start frame", "end frame", "samples", "assessed samples",
                                                        "part id", "part", "group", "share", "person id",
                                                        "distance [px]"]
    return table[columns].reset_index(drop=True)


def _float(values: pd.Series) -> np.ndarray:
    """float64 values with NaN for missing (nullable columns refuse a plain astype(float))."""
    return pd.to_numeric(values, errors="coerce").astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _summary(samples: pd.DataFrame, sample_key: pd.Series, fixation_key: pd.Series, keys: list,
             start_ns: int, name: str) -> pd.DataFrame:
    """Samples, dwell, fixations, first hit and share of worn time per key (one row per value in ``keys``).

    ``sample_key`` gives each sample's key (used only for tolerant hits),
    ``fixation_key`` each fixation's key (of its majority part).
    """
    durations = samples["sample duration [ns]"].to_numpy(dtype=np.int64)
    worn = ~samples["not worn"].to_numpy(dtype=bool) & samples["frame processed"].to_numpy(dtype=bool)
    worn_ns = int(durations[worn].sum())
    is_hit = (samples["assessed"].to_numpy(dtype=bool)
              & (samples["hit part id"].fillna(0).to_numpy(dtype=np.int64) > 0))
    hits = pd.DataFrame({
        "key": sample_key.to_numpy()[is_hit],
        "duration": durations[is_hit],
        "ts": samples["timestamp [ns]"].to_numpy(dtype=np.int64)[is_hit],
    })
    g = hits.groupby("key")
    index = pd.Index(keys, dtype=object)
    n = g.size().reindex(index).fillna(0).to_numpy(dtype=np.int64)
    dwell = g["duration"].sum().reindex(index).fillna(0).to_numpy(dtype=np.int64)
    # Int64 before reindexing: the NaN of keys without hits would turn ns times into float64.
    first = g["ts"].min().astype("Int64").reindex(index)
    fixations = fixation_key.dropna().value_counts().reindex(index).fillna(0).to_numpy(dtype=np.int64)
    first_ns = first.array
    return pd.DataFrame({
        name: keys,
        "samples": n,
        "dwell time [s]": dwell / 1e9,
        "fixations": fixations,
        "first hit timestamp [ns]": first_ns,
        "first hit [s]": (_float(pd.Series(first_ns)) - start_ns) / 1e9,
        "share of worn time": dwell / worn_ns if worn_ns > 0 else np.full(len(keys), np.nan),
    })


def summarize(samples: pd.DataFrame, context: dict[str, Any], settings: HitSettings) -> HitTables:
    """All tables from a per-sample hit table (:func:`sample_hits` plus ``sample duration [ns]``)."""
    frames = _frame_table(samples, context["frame_timestamps"])
    fixations = _fixation_table(samples, context)
    start_ns = int(context["start_ns"])
    fixation_part = fixations["part id"].where(fixations["part id"].fillna(0) > 0)
    parts = _summary(samples, samples["hit part id"], fixation_part, list(PART_NAMES), start_ns, "part id")
    parts["part id"] = parts["part id"].astype(np.int64)
    parts.insert(1, "part", [PART_NAMES[p] for p in parts["part id"]])
    parts.insert(2, "group", [PART_GROUPS[p] for p in parts["part id"]])
    group_names = list(dict.fromkeys(PART_GROUPS[p] for p in sorted(PART_GROUPS)))
    fixation_group = fixations["group"].where(fixation_part.notna())
    groups = _summary(samples, samples["hit group"], fixation_group, group_names, start_ns, "group")
    # a hit without a stable id (a person painted by hand) is counted as person id -1, shown as missing
    person_key = samples["hit person id"].fillna(-1)
    fixation_person = fixations["person id"].fillna(-1).where(fixation_part.notna())
    is_hit = samples["assessed"] & (samples["hit part id"].fillna(0) > 0)
    keys = sorted(int(v) for v in person_key[is_hit].unique())
    keys = [k for k in keys if k >= 0] + [k for k in keys if k < 0]
    persons = _summary(samples, person_key, fixation_person, keys, start_ns, "person id")
    persons["person id"] = pd.array([k if k >= 0 else pd.NA for k in keys], dtype="Int64")
    return HitTables(samples=samples, frames=frames, fixations=fixations, parts=parts, groups=groups,
                     persons=persons, settings=settings, context=context)


# ---------------------------------------------------------------- entry points
def _person_ids(store: ResultsStore) -> pd.DataFrame:
    """Stored person ids if they cover every current detection, else linked afresh (not written)."""
    detections = store.detections()
    stored = store.person_ids()
    if stored is not None and len(stored) == len(detections):
        return stored
    return link_detections(detections, store.processed_frames())


def compute_hits(
    recording: Recording,
    store: ResultsStore,
    settings: HitSettings | None = None,
    *,
    person_ids: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> HitTables:
    """Every hit table of a recording and its results store.

    ``settings`` defaults to :func:`default_radius`. Person ids are those
    stored with the results when they match the current detections, else
    linked afresh (:func:`~napari_densepose_gaze.tracking.link_detections`).
    ``progress(done, total)`` is called per frame read (for a progress bar;
    raising in it cancels the computation).
    """
    if store.shape[0] != recording.n_frames or store.shape[1:] != (recording.frame_size[1], recording.frame_size[0]):
        raise DensePoseGazeError(
            f"The results store {store.folder} holds {store.shape[0]} frames of {store.shape[2]}x{store.shape[1]} px "
            f"but the recording {recording.folder} has {recording.n_frames} frames of "
            f"{recording.frame_size[0]}x{recording.frame_size[1]} px: open the store made for this recording."
        )
    if settings is None:
        settings = default_radius(recording.scene_camera, recording.frame_size)
    samples = flag_gaze(recording.gaze, recording.frame_timestamps, recording.frame_size, recording.blinks,
                        frame_in_order=recording.frame_in_order)
    return hits_from_samples(
        samples,
        store.labels,
        store.persons,
        store.processed_frames(),
        settings=settings,
        scene_camera=recording.scene_camera,
        fixations=recording.fixations,
        frame_timestamps=recording.frame_timestamps,
        frame_in_order=recording.frame_in_order,
        person_ids=person_ids if person_ids is not None else _person_ids(store),
        progress=progress,
    )


def hits_from_samples(
    samples: pd.DataFrame,
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    settings: HitSettings,
    frame_timestamps: np.ndarray,
    fixations: pd.DataFrame | None = None,
    scene_camera: dict | None = None,
    frame_in_order: np.ndarray | None = None,
    person_ids: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> HitTables:
    """:func:`compute_hits` on arrays: flagged samples, label and person volumes, processed frames."""
    frame_timestamps = np.asarray(frame_timestamps, dtype=np.int64)
    samples = samples.sort_values("timestamp [ns]", kind="stable", ignore_index=True)
    radius = radius_px(samples["gaze x [px]"], samples["gaze y [px]"], settings, scene_camera)
    table = sample_hits(samples, labels, persons, processed, radius_px=radius, person_ids=person_ids,
                        progress=progress)
    durations = sample_durations(table["timestamp [ns]"].to_numpy(dtype=np.int64), settings.max_gap_ms)
    table.insert(table.columns.get_loc("frame") + 1, "sample duration [ns]", durations)
    if fixations is None:
        from .tables import FIXATIONS

        fixations = FIXATIONS.empty()
    context = {
        "fixations": fixations,
        "frame_timestamps": frame_timestamps,
        "frame_in_order": frame_in_order,
        "start_ns": int(frame_timestamps[0]) if frame_timestamps.size else 0,
        "person_ids": person_ids,
    }
    return summarize(table, context, settings)


def update_frames(
    tables: HitTables,
    frames: Any,
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    person_ids: pd.DataFrame | None = None,
) -> HitTables:
    """New tables after ``frames`` changed (painted, re-run, reset): only their samples are looked up again.

    The summaries are rebuilt from the per-sample table, which is cheap.
    ``person_ids`` defaults to the ids the tables were computed with.
    """
    if person_ids is None:
        person_ids = tables.context.get("person_ids")
    samples = tables.samples
    wanted = np.isin(samples["frame"].to_numpy(dtype=np.int64), np.asarray(list(frames), dtype=np.int64))
    if wanted.any():
        part = samples[wanted]
        base = part[[c for c in part.columns if c not in _HIT_COLUMNS]]
        redone = sample_hits(base, labels, persons, processed, radius_px=part["radius [px]"].to_numpy(),
                             person_ids=person_ids)
        samples = pd.concat([samples[~wanted], redone[samples.columns]]).sort_index()
        samples = samples.astype(tables.samples.dtypes.to_dict())
    context = {**tables.context, "person_ids": person_ids}
    return summarize(samples, context, tables.settings)


_HIT_COLUMNS = ("frame processed", "assessed", "status", "radius [px]", "part id", "part", "group", "person",
                "person id", "hit part id", "hit part", "hit group", "hit person", "hit person id",
                "distance [px]", "hit x [px]", "hit y [px]", "parts in radius")
