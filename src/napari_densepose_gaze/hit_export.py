"""CSV export of the hit tables, and the files of Pupil Labs' DensePose module.

:func:`export_hit_tables` writes one CSV per table of a
:class:`~napari_densepose_gaze.hits.HitTables` (names in :data:`FILE_NAMES`,
columns in :data:`COLUMNS`) and ``hit_settings.json``.

:func:`write_peer_files` writes what the peer tool, pupil-labs/densepose-module
(``pl-densepose``), writes, so its users can switch:

- ``densepose.csv``: one row per video frame: ``frames``, ``pts``,
  ``timestamp [ns]``, then the columns of ``gaze.csv`` of the gaze sample
  nearest in time to the frame (:func:`pandas.merge_asof`, like the peer), then
  ``densepose``: the parts within the hit radius of that gaze point on that
  frame, upper-case names joined by ", " in id order, ``BACKGROUND`` first when
  background lies within the radius too.
- ``parts_count.csv``: ``part``, ``count``: on how many frames each part was
  listed, most first, background left out.

Differences from the peer, on purpose: the peer tests 360 points on a circle
of 50 px around the gaze point; we take every pixel within the hit radius (the
disc, centre included). A sample that is not worn, in a blink, outside the
image or NaN lists ``BACKGROUND`` only (nothing was looked at); a frame the
results store has not processed has an empty ``densepose``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import DensePoseGazeError
from .hits import HitTables, look_up

if TYPE_CHECKING:
    from .recording import Recording
    from .store import ResultsStore

__all__ = ["FILE_NAMES", "COLUMNS", "PEER_PART_NAMES", "export_hit_tables", "write_peer_files", "export_recording_hits"]

#: table name -> CSV file name
FILE_NAMES = {
    "samples": "gaze_hits.csv",
    "frames": "frame_hits.csv",
    "fixations": "fixation_hits.csv",
    "parts": "part_hits.csv",
    "groups": "group_hits.csv",
    "persons": "person_hits.csv",
}
SETTINGS_FILE = "hit_settings.json"
PEER_FRAMES_FILE = "densepose.csv"
PEER_COUNTS_FILE = "parts_count.csv"

_SUMMARY = {
    "samples": "tolerant hits (assessed samples) on it",
    "dwell time [s]": "summed duration of those samples, seconds",
    "fixations": "fixations whose majority part is on it",
    "first hit timestamp [ns]": "time of its first hit sample (UTC ns; empty if never hit)",
    "first hit [s]": "seconds from the first video frame to its first hit",
    "share of worn time": "dwell time / worn time on processed frames",
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
    },
    "fixations": {
        "fixation id": "as in fixations.csv",
        "start timestamp [ns]": "as in fixations.csv", "end timestamp [ns]": "as in fixations.csv",
        "duration [ms]": "as in fixations.csv",
        "fixation x [px]": "as in fixations.csv", "fixation y [px]": "as in fixations.csv",
        "start frame": "frame at the start", "end frame": "frame at the end",
        "samples": "gaze samples of the fixation", "assessed samples": "of those, assessed",
        **_MAJORITY,
    },
    "parts": {"part id": "DensePose part id 1..24", "part": "name", "group": "coarse group", **_SUMMARY},
    "groups": {"group": "coarse group (head, torso, hands, arms, legs, feet with sides)", **_SUMMARY},
    "persons": {"person id": "stable person id (empty: a hit pixel without detection)", **_SUMMARY},
}

#: DensePose part id -> the peer tool's name (its PartsDefinition enum)
PEER_PART_NAMES = {
    0: "BACKGROUND", 1: "TORSO_BACK", 2: "TORSO_FRONT", 3: "RIGHT_HAND", 4: "LEFT_HAND", 5: "LEFT_FOOT",
    6: "RIGHT_FOOT", 7: "UPPER_LEG_RIGHT_BACK", 8: "UPPER_LEG_LEFT_BACK", 9: "UPPER_LEG_RIGHT_FRONT",
    10: "UPPER_LEG_LEFT_FRONT", 11: "LOWER_LEG_RIGHT_BACK", 12: "LOWER_LEG_LEFT_BACK", 13: "LOWER_LEG_RIGHT_FRONT",
    14: "LOWER_LEG_LEFT_FRONT", 15: "UPPER_ARM_LEFT_INSIDE", 16: "UPPER_ARM_RIGHT_INSIDE",
    17: "UPPER_ARM_LEFT_OUTSIDE", 18: "UPPER_ARM_RIGHT_OUTSIDE", 19: "LOWER_ARM_LEFT_INSIDE",
    20: "LOWER_ARM_RIGHT_INSIDE", 21: "LOWER_ARM_LEFT_OUTSIDE", 22: "LOWER_ARM_RIGHT_OUTSIDE", 23: "HEAD_RIGHT",
    24: "HEAD_LEFT",
}
# gaze.csv's columns in Pupil Cloud's order, as the peer copies them
_GAZE_COLUMNS = ("section id", "recording id", "gaze x [px]", "gaze y [px]", "worn", "fixation id", "blink id",
                 "azimuth [deg]", "elevation [deg]")
# columns the hit computation added to the gaze samples (not copied into densepose.csv)
_DERIVED = set(COLUMNS["samples"]) - set(_GAZE_COLUMNS) - {"timestamp [ns]"}


def _folder(folder: str | os.PathLike[str]) -> Path:
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DensePoseGazeError(
            f"Cannot create the export folder {path}: {exc}. Choose a folder you can write to."
        ) from exc
    return path


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write via a temporary file and rename, so a reader never sees half a table."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        table.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        raise DensePoseGazeError(
            f"Cannot write {path}: {exc}. Close it in other programs or choose another folder."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _ordered(name: str, table: pd.DataFrame) -> pd.DataFrame:
    documented = [c for c in COLUMNS[name] if c in table]
    return table[documented + [c for c in table.columns if c not in COLUMNS[name]]]


def export_hit_tables(tables: HitTables, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write every hit table as CSV into ``folder`` (created if needed); return the paths by table name."""
    path = _folder(folder)
    written: dict[str, Path] = {}
    for name, table in tables.tables().items():
        target = path / FILE_NAMES[name]
        _write_csv(_ordered(name, table), target)
        written[name] = target
    settings = {
        "radius": tables.settings.radius,
        "unit": tables.settings.unit,
        "max_gap_ms": tables.settings.max_gap_ms,
        "start timestamp [ns]": int(tables.context.get("start_ns", 0)),
    }
    settings_path = path / SETTINGS_FILE
    settings_path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    written["settings"] = settings_path
    return written


def peer_frames(
    tables: HitTables,
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    pts: np.ndarray | None = None,
) -> pd.DataFrame:
    """The rows of the peer's ``densepose.csv`` (see the module docstring)."""
    frame_ts = np.asarray(tables.context["frame_timestamps"], dtype=np.int64)
    n_frames = min(len(frame_ts), labels.shape[0])
    video = pd.DataFrame({
        "frames": np.arange(n_frames, dtype=np.int64),
        "pts": pd.array(pts[:n_frames] if pts is not None else [pd.NA] * n_frames, dtype="Int64"),
        "timestamp [ns]": frame_ts[:n_frames],
    })
    samples = tables.samples
    keep = ["timestamp [ns]", *[c for c in _GAZE_COLUMNS if c in samples],
            *[c for c in samples.columns if c not in _DERIVED and c not in _GAZE_COLUMNS and c != "timestamp [ns]"],
            "valid", "radius [px]"]
    gaze = samples[list(dict.fromkeys(keep))].rename(columns={"valid": "_valid", "radius [px]": "_radius"})
    # merge_asof needs both sides sorted by time; frames with a repeated or
    # backward timestamp are sorted in, then every row goes back to its place
    order = np.argsort(video["timestamp [ns]"].to_numpy(), kind="stable")
    if len(gaze):
        merged = pd.merge_asof(video.iloc[order], gaze, on="timestamp [ns]", direction="nearest")
        merged.index = order
        merged = merged.sort_index()
    else:
        merged = video.assign(_valid=False, _radius=np.nan)
    processed_mask = np.zeros(labels.shape[0], dtype=bool)
    processed_ids = np.asarray(processed if processed is not None else [], dtype=np.int64)
    processed_mask[processed_ids[(processed_ids >= 0) & (processed_ids < labels.shape[0])]] = True
    on_processed = processed_mask[merged["frames"].to_numpy()]
    valid = merged["_valid"].fillna(False).to_numpy(dtype=bool)
    text = np.full(len(merged), None, dtype=object)
    text[on_processed & ~valid] = PEER_PART_NAMES[0]
    todo = np.flatnonzero(on_processed & valid)
    if todo.size:
        found = look_up(
            merged["frames"].to_numpy(dtype=np.int64)[todo],
            merged["gaze x [px]"].to_numpy(dtype=np.float64)[todo],
            merged["gaze y [px]"].to_numpy(dtype=np.float64)[todo],
            merged["_radius"].to_numpy(dtype=np.float64)[todo],
            labels,
            persons,
        )
        for k, ids in zip(todo, found["in_radius"]):
            text[k] = ", ".join(PEER_PART_NAMES[int(i)] for i in ids.split(";"))
    merged["densepose"] = text
    return merged.drop(columns=["_valid", "_radius"]).reset_index(drop=True)


def peer_counts(frames: pd.DataFrame) -> pd.DataFrame:
    """The peer's ``parts_count.csv``: frames per part name, most first (ties in id order), no background."""
    order = {name: part for part, name in PEER_PART_NAMES.items()}
    names = [n.strip() for text in frames["densepose"].dropna() for n in str(text).split(",")]
    counts = pd.Series([n for n in names if n and n != PEER_PART_NAMES[0]], dtype=object).value_counts()
    table = pd.DataFrame({"part": counts.index.astype(object), "count": counts.to_numpy(dtype=np.int64)})
    table["_id"] = table["part"].map(order)
    table = table.sort_values(["count", "_id"], ascending=[False, True], kind="stable")
    return table[["part", "count"]].reset_index(drop=True)


def write_peer_files(
    tables: HitTables,
    folder: str | os.PathLike[str],
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    pts: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write ``densepose.csv`` and ``parts_count.csv`` like pupil-labs/densepose-module."""
    path = _folder(folder)
    frames = peer_frames(tables, labels, persons, processed, pts=pts)
    _write_csv(frames, path / PEER_FRAMES_FILE)
    _write_csv(peer_counts(frames), path / PEER_COUNTS_FILE)
    return {"densepose": path / PEER_FRAMES_FILE, "parts_count": path / PEER_COUNTS_FILE}


def export_recording_hits(
    tables: HitTables,
    folder: str | os.PathLike[str],
    recording: Recording,
    store: ResultsStore,
    *,
    peer: bool = True,
) -> dict[str, Path]:
    """Every hit CSV of a recording into ``folder``, with the peer's files unless ``peer=False``."""
    written = export_hit_tables(tables, folder)
    if peer:
        pts = recording.video_reader().pts[: recording.n_frames]
        written.update(write_peer_files(tables, folder, store.labels, store.persons, store.processed_frames(),
                                        pts=pts))
    return written
