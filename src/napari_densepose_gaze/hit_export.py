"""CSV export of the hit tables, and the files of Pupil Labs' DensePose module.

:func:`export_hit_tables` writes one CSV per table of a
:class:`~napari_densepose_gaze.hits.HitTables` (names in :data:`FILE_NAMES`,
columns in :data:`~napari_densepose_gaze.hits.schema.COLUMNS`) and ``hit_settings.json``.
:func:`export_recording_hits` adds the face files (:mod:`.face_export`) and the peer's files.

:func:`write_peer_files` writes what the peer tool, pupil-labs/densepose-module
(``pl-densepose``), writes into its output folder, under its names, so its
users can switch and compare (docs/switching_from_densepose_module.md):

- ``densepose.csv``: one row per video frame of the processed section (from
  the first to the last frame with results, as the peer writes only the frames
  between its ``--start`` and ``--end`` events): ``frames``, ``pts``,
  ``timestamp [ns]``, then the columns of ``gaze.csv`` of the gaze sample
  nearest in time to the frame (:func:`pandas.merge_asof`, like the peer), then
  ``densepose``: the parts within the hit radius of that gaze point on that
  frame, upper-case names joined by ", " in id order, ``BACKGROUND`` first when
  background lies within the radius too; then ``closest_annotation``: the
  name of the event nearest in time to the frame (the first such event on a tie).
- ``parts_count.csv``: ``part``, ``count``: on how many frames each part was
  listed, most first, ties in the order the parts first appear, background left out.
- ``gazemap.png``: the body map (our dwell-time heatmap,
  :func:`~napari_densepose_gaze.figures.body_heatmap`), and with
  ``peer_video=True`` ``densepose.mp4``: the overlay video
  (:func:`~napari_densepose_gaze.render.render_overlay`).

Differences from the peer, on purpose: the peer tests 360 points on a circle
of 50 px around the gaze point, never the point itself; we take every pixel
within the hit radius (the disc, centre included). A sample that is not worn,
in a blink, outside the image or NaN lists ``BACKGROUND`` only (nothing was
looked at); a frame of the section the results store has not processed has an
empty ``densepose``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .durable import atomic_path, atomic_write, export_folder
from .errors import DensePoseGazeError
from .face_export import FACE_FILE_NAMES, write_face_files
from .hits import HitTables, look_up
from .hits.lookup import processed_mask
from .hits.schema import COLUMNS, documented_order

if TYPE_CHECKING:
    from .recording import Recording
    from .store import ResultsStore

__all__ = ["FILE_NAMES", "PEER_PART_NAMES", "PEER_FILES", "export_hit_tables", "write_peer_files",
           "export_recording_hits", "peer_frames", "peer_counts"]

#: table name -> CSV file name
FILE_NAMES = {
    "samples": "gaze_hits.csv",
    "frames": "frame_hits.csv",
    "fixations": "fixation_hits.csv",
    "parts": "part_hits.csv",
    "groups": "group_hits.csv",
    "persons": "person_hits.csv",
    "regions": FACE_FILE_NAMES["regions"],  # one of the face files too
}
SETTINGS_FILE = "hit_settings.json"
PEER_FRAMES_FILE = "densepose.csv"
PEER_COUNTS_FILE = "parts_count.csv"
PEER_BODY_MAP_FILE = "gazemap.png"
_EVENT_CHUNK = 4096  # frames per step of the nearest-event search
PEER_VIDEO_FILE = "densepose.mp4"
#: what each peer file is -> its name, as the peer writes it
PEER_FILES = {"densepose": PEER_FRAMES_FILE, "parts_count": PEER_COUNTS_FILE, "gazemap": PEER_BODY_MAP_FILE,
              "video": PEER_VIDEO_FILE}

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



def _write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write durably (temporary file, then rename), so a reader never sees half a table."""
    with atomic_path(path, what="the table") as tmp:
        table.to_csv(tmp, index=False)


def export_hit_tables(tables: HitTables, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write every hit table as CSV into ``folder`` (created if needed); return the paths by table name."""
    path = export_folder(folder)
    written: dict[str, Path] = {}
    for name, table in tables.tables().items():
        target = path / FILE_NAMES[name]
        _write_csv(documented_order(name, table), target)
        written[name] = target
    settings = {
        "radius": tables.settings.radius,
        "unit": tables.settings.unit,
        "max_gap_ms": tables.settings.max_gap_ms,
        "start timestamp [ns]": int(tables.context.start_ns),
    }
    settings_path = path / SETTINGS_FILE
    with atomic_write(settings_path, what="the hit settings") as f:
        f.write(json.dumps(settings, indent=2) + "\n")
    written["settings"] = settings_path
    return written


def peer_frames(
    tables: HitTables,
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    pts: np.ndarray | None = None,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The rows of the peer's ``densepose.csv`` (see the module docstring)."""
    frame_ts = np.asarray(tables.context.frame_timestamps, dtype=np.int64)
    n_frames = min(len(frame_ts), labels.shape[0])
    done = np.flatnonzero(processed_mask(processed, labels.shape[0])[:n_frames])
    section = np.arange(done[0], done[-1] + 1, dtype=np.int64) if done.size else np.zeros(0, dtype=np.int64)
    video = pd.DataFrame({
        "frames": section,
        "pts": pd.array(pts[section] if pts is not None else [pd.NA] * len(section), dtype="Int64"),
        "timestamp [ns]": frame_ts[section],
    })
    samples = tables.samples
    keep = ["timestamp [ns]", *[c for c in _GAZE_COLUMNS if c in samples],
            *[c for c in samples.columns if c not in _DERIVED and c not in _GAZE_COLUMNS and c != "timestamp [ns]"],
            "valid", "radius [px]"]
    gaze = samples[list(dict.fromkeys(keep))].rename(columns={"valid": "_valid", "radius [px]": "_radius"})
    # merge_asof needs both sides sorted by time; frames with a repeated or
    # backward timestamp are sorted in, then every row goes back to its place
    order = np.argsort(video["timestamp [ns]"].to_numpy(), kind="stable")
    if len(gaze) and len(video):
        merged = pd.merge_asof(video.iloc[order], gaze, on="timestamp [ns]", direction="nearest")
        merged.index = order
        merged = merged.sort_index()
    else:
        merged = video.assign(_valid=False, _radius=np.nan)
    on_processed = processed_mask(processed, labels.shape[0])[merged["frames"].to_numpy()]
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
    merged["closest_annotation"] = _closest_event(merged["timestamp [ns]"].to_numpy(dtype=np.int64), events)
    return merged.drop(columns=["_valid", "_radius"]).reset_index(drop=True)


def _closest_event(times: np.ndarray, events: pd.DataFrame | None) -> np.ndarray:
    """The name of the event nearest in time to each of ``times`` (the first in the table on a tie)."""
    out = np.full(len(times), None, dtype=object)
    if events is None or not len(events) or not len(times):
        return out
    event_ts = events["timestamp [ns]"].to_numpy(dtype=np.int64)
    names = events["name"].astype(object).to_numpy()
    for start in range(0, len(times), _EVENT_CHUNK):  # a frames x events matrix, a chunk of frames at a time
        chunk = times[start:start + _EVENT_CHUNK]
        distance = np.abs(event_ts[None, :] - chunk[:, None])
        out[start:start + len(chunk)] = names[np.argmin(distance, axis=1)]  # argmin: the first on a tie
    return out


def peer_counts(frames: pd.DataFrame) -> pd.DataFrame:
    """The peer's ``parts_count.csv``: frames per part name, most first, ties in order of first appearance.

    The peer counts into a dict (insertion order) and sorts it stably by count;
    background is left out.
    """
    counts: dict[str, int] = {}
    for text in frames["densepose"].dropna():
        for name in (n.strip() for n in str(text).split(",")):
            if name and name != PEER_PART_NAMES[0]:
                counts[name] = counts.get(name, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    return pd.DataFrame({"part": pd.Series([p for p, _ in ordered], dtype=object),
                         "count": pd.Series([c for _, c in ordered], dtype=np.int64)})


def write_peer_files(
    tables: HitTables,
    folder: str | os.PathLike[str],
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    pts: np.ndarray | None = None,
    events: pd.DataFrame | None = None,
    body_map: bool = False,
) -> dict[str, Path]:
    """Write ``densepose.csv`` and ``parts_count.csv`` like pupil-labs/densepose-module (and ``gazemap.png``)."""
    path = export_folder(folder)
    frames = peer_frames(tables, labels, persons, processed, pts=pts, events=events)
    _write_csv(frames, path / PEER_FRAMES_FILE)
    _write_csv(peer_counts(frames), path / PEER_COUNTS_FILE)
    written = {"densepose": path / PEER_FRAMES_FILE, "parts_count": path / PEER_COUNTS_FILE}
    if body_map:
        written["gazemap"] = _write_body_map(tables, path / PEER_BODY_MAP_FILE)
    return written


def _write_body_map(tables: HitTables, target: Path) -> Path:
    """Our body heatmap as one PNG under the peer's name (the figure module writes PNG and SVG side by side)."""
    import tempfile

    from .figures import body_heatmap

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gazemap-") as scratch:
        drawn = body_heatmap(tables.parts, Path(scratch) / target.stem)
        try:
            os.replace(drawn["png"], target)
        except OSError as exc:
            raise DensePoseGazeError(f"Cannot write {target}: {exc}. Choose a folder you can write to.") from exc
    return target


def export_recording_hits(
    tables: HitTables,
    folder: str | os.PathLike[str],
    recording: Recording,
    store: ResultsStore,
    *,
    peer: bool = True,
    peer_video: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Path]:
    """Every hit CSV of a recording into ``folder``: the tables, the face files, and the peer's unless ``peer=False``.

    The face files are those of :func:`~napari_densepose_gaze.face_export.write_face_files`
    (``region_hits.csv`` is among the tables as well). The peer's files are
    ``densepose.csv``, ``parts_count.csv`` and ``gazemap.png``;
    ``peer_video=True`` adds the overlay video as ``densepose.mp4``
    (``progress``/``cancel`` as for :func:`~napari_densepose_gaze.render.render_overlay`).
    """
    written = export_hit_tables(tables, folder)
    written.update(write_face_files(tables, folder, recording_id=recording.recording_id))
    if peer:
        pts = recording.video_reader().pts[: recording.n_frames]
        written.update(write_peer_files(tables, folder, store.labels, store.persons, store.processed_frames(),
                                        pts=pts, events=recording.events, body_map=True))
        if peer_video:
            from .render import render_overlay

            video = render_overlay(recording, store, tables, Path(folder).expanduser() / PEER_VIDEO_FILE,
                                   progress=progress, cancel=cancel)
            if video is not None:
                written["video"] = video
    return written
