"""The per-sample look-up: which part and person lie under, or near, each gaze point.

:func:`sample_hits` adds the hit columns to flagged gaze samples, reading the
label and person volumes one frame at a time; :func:`redo_frames` looks the
samples of some frames up again after those frames changed.

On the head patches the hit pixel also names a head region (eye, nose, mouth,
rest of face, back or side of the head: :mod:`..face_regions`), from the head
U, V volumes when there are any; the tolerant hit's region is the region of
the same nearest pixel that gives its part. The hit person's head yaw on that
frame comes with it (:func:`~napari_densepose_gaze.face_regions.head_poses`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DensePoseGazeError
from ..face_regions import decode_uv, head_poses, region_ids, region_names
from ..parts import MAX_PART, PART_GROUPS, PART_NAMES
from ..tracking import person_id_lookup
from .radius import DEFAULT_MAX_GAP_MS

__all__ = ["STATUSES", "HIT_COLUMNS", "Progress", "sample_durations", "look_up", "sample_hits", "redo_frames",
           "id_names", "processed_mask"]

#: ``progress(done, total)``: frames read so far and frames to read
Progress = Callable[[int, int], None]

#: Values of the per-sample ``status`` column: reasons not to look a sample up
#: (in priority order), then the three outcomes of a look-up.
_STATUS_FLAGS = ("not worn", "in blink", "nan", "outside frame", "before first frame", "after last frame")
STATUSES = (*_STATUS_FLAGS, "frame not processed", "on part", "near part", "no part")
#: the columns :func:`sample_hits` adds to the flagged samples
HIT_COLUMNS = ("frame processed", "assessed", "status", "radius [px]", "part id", "part", "group", "person",
               "person id", "hit part id", "hit part", "hit group", "hit person", "hit person id",
               "distance [px]", "hit x [px]", "hit y [px]", "parts in radius",
               "region", "hit region", "head yaw [deg]", "facing wearer", "facing confidence")
_BACKGROUND_NAME = "background"


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


def processed_mask(processed: Any, n_frames: int) -> np.ndarray:
    """A boolean mask per frame from processed frame indices (out-of-range ones ignored) or a mask."""
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
    head_uv: tuple[Any, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Exact and tolerant hits of gaze points inside the image, reading one frame at a time.

    ``progress(done, total)`` gets the frames done so far, before each frame and once at the end.

    Returns arrays ``part``, ``person`` (0: none), ``hit_part``, ``hit_person``,
    ``distance`` (NaN: no part within the radius), ``hit_x``, ``hit_y`` (the hit
    pixel's centre) and ``in_radius`` (the ids,
    0 for background, of the pixels whose centre lies within the radius plus the
    pixel under the point, as ``"0;2;23"``), ``region`` and ``hit_region``
    (head region ids of the pixel under the point and of the hit pixel, 0 off
    the head; 7 on the head without U, V, as where ``head_uv`` is None) and
    ``yaw``, ``facing`` (1 yes, 0 no, -1 unknown), ``confidence``: the hit
    person's head pose on the frame (NaN / -1 without U, V).
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
    region = np.zeros(n, dtype=np.int64)
    hit_region = np.zeros(n, dtype=np.int64)
    yaw = np.full(n, np.nan)
    facing = np.full(n, -1, dtype=np.int64)
    confidence = np.full(n, np.nan)
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
        if lab.size and int(lab.max()) > MAX_PART:
            # an id no part has (written around the napari layer, e.g. by a script): no table may name it
            raise DensePoseGazeError(
                f"Frame {f} of the results holds the label {int(lab.max())}, which is no DensePose part "
                f"(1..{MAX_PART}, 0 background): paint those pixels with a part or with background in napari, "
                "then compute the hits again."
            )
        # persons matter only where there are parts: skip decoding them otherwise
        per = np.asarray(persons[f, top:bottom, left:right]) if lab.any() else np.zeros_like(lab)
        reg = _regions(lab, head_uv, f, (slice(top, bottom), slice(left, right)))
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
            regions = reg[rows[0] - top : rows[-1] + 1 - top, cols[0] - left : cols[-1] + 1 - left]
            part[j] = window[under]
            person[j] = owners[under] if part[j] else 0
            region[j] = regions[under]
            if part[j]:
                hit_part[j], hit_person[j], distance[j] = part[j], person[j], 0.0
                hit_x[j], hit_y[j] = col[j] + 0.5, row[j] + 0.5
                hit_region[j] = region[j]
                continue
            candidates = np.where(disc & (window > 0), d2, np.inf)
            k = int(np.argmin(candidates))  # first minimum in row-major order
            if np.isfinite(candidates.flat[k]):
                hit_part[j] = window.flat[k]
                hit_person[j] = owners.flat[k]
                hit_region[j] = regions.flat[k]
                distance[j] = math.sqrt(candidates.flat[k])
                hit_y[j] = rows[k // len(cols)] + 0.5
                hit_x[j] = cols[k % len(cols)] + 0.5
        people = sorted({int(p) for p in hit_person[group] if p})
        if head_uv is not None and people:
            # a head's orientation needs all of it, not the window: read the whole frame
            poses = head_poses(np.asarray(labels[f]), np.asarray(persons[f]), decode_uv(np.asarray(head_uv[0][f])),
                               people).set_index("person")
            for j in group:
                if hit_person[j] and poses.at[int(hit_person[j]), "head pixels"] > 0:
                    pose = poses.loc[int(hit_person[j])]
                    yaw[j], confidence[j] = pose["head yaw [deg]"], pose["facing confidence"]
                    facing[j] = int(bool(pose["facing wearer"]))
    if progress is not None:
        progress(len(groups), len(groups))
    return {"part": part, "person": person, "hit_part": hit_part, "hit_person": hit_person,
            "distance": distance, "hit_x": hit_x, "hit_y": hit_y, "in_radius": in_radius,
            "region": region, "hit_region": hit_region, "yaw": yaw, "facing": facing, "confidence": confidence}


def _regions(lab: np.ndarray, head_uv: tuple[Any, Any] | None, frame: int, window: tuple[slice, slice]) -> np.ndarray:
    """Head region ids of a window of labels (U, V read only where it shows a head)."""
    if head_uv is None or not np.isin(lab, (23, 24)).any():
        return region_ids(lab, np.full(lab.shape, np.nan), np.full(lab.shape, np.nan))
    u, v = (decode_uv(np.asarray(codes[(frame, *window)])) for codes in head_uv)
    return region_ids(lab, u, v)


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


def id_names(ids: pd.Series, table: dict[int, str]) -> pd.Series:
    """The name of each part id in ``table`` (0: background; missing ids stay missing)."""
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
    head_uv: tuple[Any, Any] | None = None,
) -> pd.DataFrame:
    """``samples`` (from :func:`~napari_densepose_gaze.gaze.flag_gaze`) with hit columns.

    ``labels`` and ``persons`` are ``(frames, height, width)`` array-likes (a
    zarr array or numpy volume); only the frames with assessed samples are
    read, one at a time, and of each only the window the radius reaches.
    ``processed`` holds the processed frame indices (or a boolean mask per
    frame). ``person_ids`` maps ``(frame, person)`` to a stable ``person id``.
    ``progress(done, total)`` is called per frame read; raising in it cancels.
    ``head_uv`` are the store's head U, V code volumes (:attr:`.ResultsStore.head_uv`);
    without them hits on the head have the region "head, region unknown".
    """
    out = samples.copy()
    n_frames = labels.shape[0]
    is_processed = processed_mask(processed, n_frames)
    frames = out["frame"].to_numpy(dtype=np.int64)
    on_video = (frames >= 0) & (frames < n_frames)
    processed_frame = np.zeros(len(out), dtype=bool)
    processed_frame[on_video] = is_processed[frames[on_video]]
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
        head_uv,
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
    out["part"] = id_names(out["part id"], PART_NAMES)
    out["group"] = id_names(out["part id"], PART_GROUPS)
    out["person"] = column(found["person"], zero_is_missing=True)
    out["person id"] = stable(found["person"])
    out["hit part id"] = column(found["hit_part"])
    out["hit part"] = id_names(out["hit part id"], PART_NAMES)
    out["hit group"] = id_names(out["hit part id"], PART_GROUPS)
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
    for name, key in (("region", "region"), ("hit region", "hit_region")):
        out[name] = region_names(column(found[key], zero_is_missing=True))
    values = np.full(len(out), np.nan)
    values[idx] = found["yaw"]
    out["head yaw [deg]"] = values
    facing = pd.Series(pd.NA, index=out.index, dtype="boolean")
    known = found["facing"] >= 0
    facing.iloc[idx[known]] = found["facing"][known].astype(bool)
    out["facing wearer"] = facing
    values = np.full(len(out), np.nan)
    values[idx] = found["confidence"]
    out["facing confidence"] = values
    return out


def redo_frames(
    samples: pd.DataFrame,
    frames: Iterable[int],
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    person_ids: pd.DataFrame | None = None,
    head_uv: tuple[Any, Any] | None = None,
) -> pd.DataFrame:
    """``samples`` (a :func:`sample_hits` table) with the samples on ``frames`` looked up again, at their radius."""
    wanted = np.isin(samples["frame"].to_numpy(dtype=np.int64), np.asarray(list(frames), dtype=np.int64))
    if not wanted.any():
        return samples
    part = samples[wanted]
    base = part[[c for c in part.columns if c not in HIT_COLUMNS]]
    redone = sample_hits(base, labels, persons, processed, radius_px=part["radius [px]"].to_numpy(),
                         person_ids=person_ids, head_uv=head_uv)
    merged = pd.concat([samples[~wanted], redone[samples.columns]]).sort_index()
    return merged.astype(samples.dtypes.to_dict())
