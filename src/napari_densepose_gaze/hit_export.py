"""CSV export of the hit tables, and the files of Pupil Labs' DensePose module.

:func:`export_hit_tables` writes one CSV per table of a
:class:`~napari_densepose_gaze.hits.HitTables` (names in :data:`FILE_NAMES`,
columns in :data:`~napari_densepose_gaze.hits.schema.COLUMNS`) and ``hit_settings.json``.
:func:`export_recording_hits` adds the face files (:mod:`.face_export`) and the peer's files.

Exports are made to be pooled: every CSV ends with the recording's id and name
(:func:`~napari_densepose_gaze.hits.schema.with_recording`), and
``hit_settings.json`` says what made them: the recording, the hit definition
and the results store's DensePose metadata (:class:`~napari_densepose_gaze.hits.provenance.Provenance`).
It is written first, so a folder with an export always says whose it is: an
export into a folder that holds another recording's is refused
(:func:`check_export_folder`); the same recording's export is overwritten, file by
file, atomically.

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
  name of the event nearest in time to the frame (the first such event on a tie);
  then ours: ``time [s]`` and ``recording name``.
- ``parts_count.csv``: ``part``, ``count``: on how many frames each part was
  listed, most first, ties in the order the parts first appear, background left
  out; then ``recording id``, ``recording name``.
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

from . import __version__
from .durable import atomic_path, atomic_write, export_folder
from .errors import DensePoseGazeError
from .face_export import FACE_FILE_NAMES, write_face_files
from .hits import HitTables, look_up
from .hits.lookup import processed_mask
from .hits.provenance import Provenance
from .hits.schema import COLUMNS, RECORDING_COLUMNS, TIME_COLUMN, documented_order, with_recording

if TYPE_CHECKING:
    from .recording import Recording
    from .store import ResultsStore

__all__ = ["FILE_NAMES", "PEER_PART_NAMES", "PEER_FILES", "SETTINGS_FILE", "check_export_folder",
           "export_hit_tables", "export_owner", "hit_settings", "write_peer_files", "export_recording_hits",
           "peer_frames", "peer_counts"]

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


def hit_settings(tables: HitTables, provenance: Provenance) -> dict[str, Any]:
    """What ``hit_settings.json`` says: the recording, the hit definition, and the DensePose run (from its store)."""
    id_column, name_column = RECORDING_COLUMNS
    return {
        id_column: provenance.recording_id,
        name_column: provenance.recording_name,
        "radius": tables.settings.radius,
        "unit": tables.settings.unit,
        "max_gap_ms": tables.settings.max_gap_ms,
        "start timestamp [ns]": int(tables.context.start_ns),
        "package version": __version__,  # that computed the hits; the DensePose run's is under "densepose"
        "results store": provenance.results_store,
        "densepose": provenance.densepose,
    }


def _named(recording_id: Any, recording_name: Any) -> Provenance | None:
    """The recording an export names, if it names one."""
    recording_id, recording_name = str(recording_id or ""), str(recording_name or "")
    if not (recording_id or recording_name):
        return None
    return Provenance(recording_id=recording_id, recording_name=recording_name)


def _named_in_first_row(path: Path) -> Provenance | None:
    try:
        head = pd.read_csv(path, nrows=1, dtype=str, keep_default_na=False,
                           usecols=lambda column: column in RECORDING_COLUMNS)
    except (OSError, ValueError):  # not a table of ours after all: it says nothing
        return None
    first = head.iloc[0] if len(head) else pd.Series(dtype=object)
    return _named(*(first.get(column) for column in RECORDING_COLUMNS))


def export_owner(folder: str | os.PathLike[str]) -> tuple[Provenance, Path] | None:
    """The recording whose hit export ``folder`` holds (its id and name), and the file that says so; or None.

    ``hit_settings.json`` says it; an export from before it did is known by the
    ``recording id`` in the first row of its tables (gaze.csv's, which they copied).
    """
    path = Path(folder).expanduser()
    settings_path = path / SETTINGS_FILE
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, or unreadable: the tables may still say
        settings = None
    if isinstance(settings, dict) and (owner := _named(*(settings.get(c) for c in RECORDING_COLUMNS))):
        return owner, settings_path
    for name in dict.fromkeys([*FILE_NAMES.values(), *FACE_FILE_NAMES.values(), PEER_FRAMES_FILE, PEER_COUNTS_FILE]):
        if (path / name).is_file() and (owner := _named_in_first_row(path / name)):
            return owner, path / name
    return None


def check_export_folder(folder: str | os.PathLike[str], provenance: Provenance) -> None:
    """Refuse to export ``provenance``'s recording into a folder that holds another recording's hit export.

    The same recording's export is written over (a re-export), and so are files
    that do not say their recording.
    """
    found = export_owner(folder)
    if found is None or provenance.same_recording(found[0]):
        return
    owner, says = found
    raise DensePoseGazeError(
        f"The folder {Path(folder).expanduser()} holds the hit export of another recording, {owner.label}, "
        f"as its {says.name} says; exporting {provenance.label} there would mix the two recordings' files. "
        "Choose another folder (one per recording), or remove the other recording's files from it first."
    )


def export_hit_tables(tables: HitTables, folder: str | os.PathLike[str], provenance: Provenance) -> dict[str, Path]:
    """Write every hit table as CSV into ``folder`` (created if needed); return the paths by table name.

    Refused (:class:`DensePoseGazeError`) when ``folder`` holds another recording's export.
    """
    check_export_folder(folder, provenance)
    path = export_folder(folder)
    settings_path = path / SETTINGS_FILE
    with atomic_write(settings_path, what="the hit settings") as f:  # first: it says whose files follow
        f.write(json.dumps(hit_settings(tables, provenance), indent=2) + "\n")
    written: dict[str, Path] = {}
    for name, table in tables.tables().items():
        target = path / FILE_NAMES[name]
        _write_csv(with_recording(documented_order(name, table), provenance), target)
        written[name] = target
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
    merged[TIME_COLUMN] = tables.context.seconds(merged["timestamp [ns]"])
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
    provenance: Provenance,
    pts: np.ndarray | None = None,
    events: pd.DataFrame | None = None,
    body_map: bool = False,
) -> dict[str, Path]:
    """Write ``densepose.csv`` and ``parts_count.csv`` like pupil-labs/densepose-module (and ``gazemap.png``).

    Both end with the recording's columns (``densepose.csv`` keeps gaze.csv's ``recording id`` in place).
    """
    path = export_folder(folder)
    frames = peer_frames(tables, labels, persons, processed, pts=pts, events=events)
    _write_csv(with_recording(frames, provenance), path / PEER_FRAMES_FILE)
    _write_csv(with_recording(peer_counts(frames), provenance), path / PEER_COUNTS_FILE)
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
    Every CSV names the recording, ``hit_settings.json`` the store's DensePose run
    (:class:`~napari_densepose_gaze.hits.provenance.Provenance`). A folder holding
    another recording's export is refused before anything is written (:func:`check_export_folder`).
    """
    provenance = Provenance.of(recording, store)
    written = export_hit_tables(tables, folder, provenance)
    written.update(write_face_files(tables, folder, provenance))
    if peer:
        pts = recording.video_reader().pts[: recording.n_frames]
        written.update(write_peer_files(tables, folder, store.labels, store.persons, store.processed_frames(),
                                        provenance=provenance, pts=pts, events=recording.events, body_map=True))
        if peer_video:
            from .render import render_overlay

            video = render_overlay(recording, store, tables, Path(folder).expanduser() / PEER_VIDEO_FILE,
                                   progress=progress, cancel=cancel)
            if video is not None:
                written["video"] = video
    return written
