"""Stable person ids: detections linked from frame to frame.

DensePose numbers the people of each frame 1..n by detection order, so
"person 1" on one frame need not be "person 1" on the next. :func:`link_detections`
follows each person through the processed frames:

- Frames are visited in ascending order; a frame counts as a step whether or
  not it has detections (pass ``frames``, the processed frames, so that an
  empty frame counts as a miss).
- On each frame, the detections are matched to the live tracks by box overlap
  (intersection over union, IoU) with an optimal one-to-one assignment
  (:func:`scipy.optimize.linear_sum_assignment`, maximising the summed IoU);
  a pair counts only if its IoU is at least ``min_iou``.
- A matched track takes the detection's box; an unmatched detection starts a
  new track with the next id (1, 2, ... in order of first appearance, then of
  detection index).
- A track stays live while it has been missed on at most ``max_missed``
  consecutive processed frames; after that its person gets a new id if seen again.

Ids are stored with the results by :meth:`ResultsStore.write_person_ids`:
:func:`link_store` does both, and the pipeline calls it after every run that
wrote frames, so that hit computations read the ids instead of linking again.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from .store import DETECTION_COLUMNS, PERSON_ID_COLUMNS, ResultsStore

__all__ = ["DEFAULT_MIN_IOU", "DEFAULT_MAX_MISSED", "box_iou", "current_person_ids", "link_detections", "link_store",
           "person_id_lookup"]

#: Least box overlap for a detection to continue a track. People walking at
#: 30 Hz move a few percent of their box width per frame, so true matches
#: overlap far more; 0.3 still bridges a missed frame or two of fast motion.
DEFAULT_MIN_IOU = 0.3
#: Processed frames a person may go undetected (occlusion, a missed detection)
#: and keep their id: about a sixth of a second at 30 Hz.
DEFAULT_MAX_MISSED = 5

_BOX = list(DETECTION_COLUMNS[2:6])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), boxes as x1, y1, x2, y2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def link_detections(
    detections: pd.DataFrame,
    frames: Iterable[int] | None = None,
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    max_missed: int = DEFAULT_MAX_MISSED,
) -> pd.DataFrame:
    """``detections`` (:data:`DETECTION_COLUMNS`) with a stable ``person id`` column.

    ``frames`` are the frames to step through (the processed frames); by
    default the frames that have detections, so that a frame without any does
    not count as a miss. Rows come back sorted by frame and person.
    """
    if not 0.0 < min_iou <= 1.0:
        raise ValueError(f"min_iou must lie in (0, 1], got {min_iou}")
    if max_missed < 0:
        raise ValueError(f"max_missed must be >= 0, got {max_missed}")
    table = detections[list(DETECTION_COLUMNS)].sort_values(["frame", "person"], kind="stable")
    table = table.reset_index(drop=True)
    steps = np.unique(table["frame"].to_numpy(dtype=np.int64))
    if frames is not None:
        steps = np.union1d(steps, np.asarray(list(frames), dtype=np.int64))
    ids = np.zeros(len(table), dtype=np.int64)
    rows_of = table.groupby("frame").indices  # frame -> row positions
    boxes_all = table[_BOX].to_numpy(dtype=np.float64)

    track_box = np.zeros((0, 4))
    track_id = np.zeros(0, dtype=np.int64)
    track_last = np.zeros(0, dtype=np.int64)  # step index of the last match
    next_id = 1
    for step, frame in enumerate(steps):
        rows = rows_of.get(frame)
        if rows is None:
            continue
        boxes = boxes_all[rows]
        live = np.flatnonzero(step - track_last - 1 <= max_missed)
        matched = np.full(len(rows), -1, dtype=np.int64)  # track index per detection
        if live.size:
            iou = box_iou(track_box[live], boxes)
            t_idx, d_idx = linear_sum_assignment(iou, maximize=True)
            keep = iou[t_idx, d_idx] >= min_iou
            matched[d_idx[keep]] = live[t_idx[keep]]
        for k, track in enumerate(matched):
            if track < 0:  # a new person
                track_box = np.vstack([track_box, boxes[k]])
                track_id = np.append(track_id, next_id)
                track_last = np.append(track_last, step)
                ids[rows[k]] = next_id
                next_id += 1
            else:
                track_box[track] = boxes[k]
                track_last[track] = step
                ids[rows[k]] = track_id[track]
    table["person id"] = ids
    return table[list(PERSON_ID_COLUMNS)]


def link_store(
    store: ResultsStore,
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    max_missed: int = DEFAULT_MAX_MISSED,
    write: bool = True,
) -> pd.DataFrame:
    """Link the detections of a results store's processed frames; store the ids if ``write``."""
    table = link_detections(store.detections(), store.processed_frames(), min_iou=min_iou, max_missed=max_missed)
    if write:
        store.write_person_ids(table)
    return table


def current_person_ids(store: ResultsStore) -> pd.DataFrame:
    """Stored person ids if they cover every current detection, else linked afresh (not written).

    The one rule the hit tables and the persons layer share, so they never disagree about who is who.
    """
    detections = store.detections()
    stored = store.person_ids()
    if stored is not None and len(stored) == len(detections):
        return stored
    return link_detections(detections, store.processed_frames())


def person_id_lookup(person_ids: pd.DataFrame | None) -> dict[tuple[int, int], int]:
    """``(frame, person) -> person id`` from a table with those columns (empty for None)."""
    if person_ids is None or person_ids.empty:
        return {}
    frames = person_ids["frame"].to_numpy(dtype=np.int64)
    persons = person_ids["person"].to_numpy(dtype=np.int64)
    values = person_ids["person id"].to_numpy(dtype=np.int64)
    return {(int(f), int(p)): int(v) for f, p, v in zip(frames, persons, values)}
