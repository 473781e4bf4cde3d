"""The columns of the hit tables: which each table has, what each means, and their documented order.

The exported CSVs (:mod:`napari_densepose_gaze.hit_export`), docs/hits.md and the
widget's table views all show the columns in this order. Columns that came later
stay at the end of each table, so files read by column position keep working:
the head region and pose, then the seconds from the recording's start. Every
exported file ends with the recording's columns (:data:`RECORDING_COLUMNS`, see
:func:`with_recording`), so the tables of many recordings can be pooled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from .provenance import Provenance

__all__ = ["COLUMNS", "RECORDING_COLUMNS", "TIME_COLUMN", "documented_order", "with_recording"]

#: seconds from the recording's start (its first video frame, as ``first hit [s]`` and the viewer count)
TIME_COLUMN = "time [s]"
#: the columns that say which recording a row is from, spelled as Pupil Cloud's tables spell them
RECORDING_COLUMNS = {
    "recording id": "the recording's id (info.json's recording_id; Pupil Cloud's recording id)",
    "recording name": "the recording's name (its folder's name without the id suffix Pupil Cloud adds)",
}
_SUMMARY = {
    "samples": "tolerant hits (assessed samples) on it",
    "dwell time [s]": "summed duration of those samples, seconds",
    "fixations": "fixations whose majority part is on it",
    "first hit timestamp [ns]": "time of its first hit sample (UTC ns; empty if never hit)",
    "first hit [s]": "seconds from the first video frame to its first hit",
    "share of worn time": "dwell time / worn time on processed frames",
}
#: the head columns a frame and a fixation end with
_HEAD = {
    "region": "majority head region of the samples on the majority part (empty unless the head)",
    "head yaw [deg]": "head yaw of the majority person (0 faces the camera, +90 its left ear, +-180 away)",
    "facing wearer": "that head faces the scene camera (|yaw| <= 30 deg); head orientation, not eye contact",
    "facing confidence": "0..1: head size, consistency of its U, V, distance of the yaw from 30 deg",
}
_MAJORITY = {
    "part id": "majority tolerant-hit part of the assessed samples (0 background; empty if none assessed)",
    "part": "its name",
    "group": "its coarse group",
    "share": "its count / assessed samples",
    "person id": "stable id of the majority person on that part",
    "distance [px]": "mean distance of the samples on that part (0 on the part)",
}
#: table name -> {column: meaning}; the columns each CSV has first (gaze.csv's own columns follow in gaze_hits.csv)
COLUMNS: dict[str, dict[str, str]] = {
    "samples": {
        "timestamp [ns]": "gaze sample time (UTC ns)",
        "gaze x [px]": "gaze point, scene video pixels from the left edge",
        "gaze y [px]": "gaze point, pixels from the top edge",
        "frame": "scene video frame shown at the sample (-1: none)",
        "sample duration [ns]": "time to the next sample, capped (dwell-time weight)",
        "not worn": "flag", "in blink": "flag", "outside frame": "flag", "nan": "flag",
        "before first frame": "flag", "after last frame": "flag",
        "valid": "none of the flags",
        "frame processed": "the frame has DensePose results",
        "assessed": "valid and on a processed frame: looked up",
        "status": "first reason not to look up, or on part / near part / no part",
        "radius [px]": "hit radius around this gaze point, pixels",
        "part id": "part under the gaze point (0 background; empty if not assessed)",
        "part": "its name", "group": "its coarse group",
        "person": "detection index of that pixel on its frame",
        "person id": "stable person id of that pixel",
        "hit part id": "tolerant hit: part on or nearest within the radius (0: none)",
        "hit part": "its name", "hit group": "its coarse group",
        "hit person": "detection index of the hit pixel", "hit person id": "its stable person id",
        "distance [px]": "gaze point to the hit pixel's centre (0 on a part; empty: no hit)",
        "hit x [px]": "centre of the hit pixel (col + 0.5)", "hit y [px]": "centre of the hit pixel (row + 0.5)",
        "parts in radius": "ids of all labels within the radius, ';'-separated",
        "region": "head region under the gaze point (empty off the head)",
        "hit region": "head region of the hit pixel (eye, nose, mouth, rest of face, back or side of head)",
        "head yaw [deg]": "head yaw of the hit person on this frame (empty: no head U, V)",
        "facing wearer": "the hit person's head faces the scene camera",
        "facing confidence": _HEAD["facing confidence"],
        TIME_COLUMN: "seconds from the recording's start (its first video frame) to the sample",
    },
    "frames": {
        "frame": "video frame index",
        "timestamp [ns]": "frame time (UTC ns)",
        "gaze x [px]": "mean of the frame's valid samples", "gaze y [px]": "mean of the frame's valid samples",
        "samples": "gaze samples on the frame", "valid samples": "of those, valid",
        "processed": "the frame has DensePose results",
        "assessed samples": "valid samples on a processed frame",
        "hit samples": "assessed samples with a tolerant hit",
        **{k: v for k, v in _MAJORITY.items() if k != "person id"},
        "person": "detection index of the majority person",
        "person id": _MAJORITY["person id"],
        **_HEAD,
        TIME_COLUMN: "seconds from the recording's start (its first video frame) to the frame",
    },
    "fixations": {
        "fixation id": "as in fixations.csv",
        "start timestamp [ns]": "as in fixations.csv", "end timestamp [ns]": "as in fixations.csv",
        "duration [ms]": "as in fixations.csv",
        "fixation x [px]": "as in fixations.csv", "fixation y [px]": "as in fixations.csv",
        "start frame": "frame at the start", "end frame": "frame at the end",
        "samples": "gaze samples of the fixation", "assessed samples": "of those, assessed",
        **_MAJORITY,
        **_HEAD,
        "start time [s]": "seconds from the recording's start (its first video frame) to the fixation's start",
        "end time [s]": "seconds from the recording's start to the fixation's end",
    },
    "parts": {"part id": "DensePose part id 1..24", "part": "name", "group": "coarse group", **_SUMMARY},
    "groups": {"group": "coarse group (head, torso, hands, arms, legs, feet with sides)", **_SUMMARY},
    "persons": {"person id": "stable person id (empty: a hit pixel without detection)", **_SUMMARY},
    "regions": {
        "person id": "stable person id (empty: a hit pixel without detection)",
        "region": "head region (docs/hits.md, Head regions)",
        "on face": "the region is part of the face (eyes, nose, mouth, rest of face)",
        **{k: v.replace("majority part", "majority region") for k, v in _SUMMARY.items()},
    },
}


def documented_order(view: str, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one of :data:`COLUMNS`) with the documented columns first, in order, then any others."""
    documented = [c for c in COLUMNS[view] if c in table]
    return table[documented + [c for c in table.columns if c not in COLUMNS[view]]]


def with_recording(table: pd.DataFrame, provenance: Provenance) -> pd.DataFrame:
    """``table`` as exported: every row names its recording in :data:`RECORDING_COLUMNS`.

    A table that has ``recording id`` already (gaze.csv's own column in the
    samples, Face Mapper's layout, the peer's ``densepose.csv``) keeps it in
    place, set to the provenance's id, and ends with ``recording name``; any
    other table ends with both.
    """
    id_column, name_column = RECORDING_COLUMNS
    out = table.copy()  # an existing column keeps its place, a new one goes to the end
    out[id_column] = pd.Series(provenance.recording_id, index=out.index, dtype=object)
    out[name_column] = pd.Series(provenance.recording_name, index=out.index, dtype=object)
    return out
