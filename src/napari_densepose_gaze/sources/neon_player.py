"""Neon Player exports: the folder Neon Player's "Export All" writes for a native Neon recording.

Neon Player (pupil-labs/neon-player) writes Pupil Cloud's column names, with
these differences: no ``section id``; other column orders (``worn`` after the
angles); ``world.mp4`` is the scene with every enabled overlay drawn in, and
the scene renderer's "export raw scene video" adds ``scene.mp4`` without them;
each video has its ``<video>_timestamps.csv`` (``recording id``, ``timestamp
[ns]``), whose times pass through float64 and so are exact only to about 256 ns;
gray frames fill the video from the recording's start and over gaps in the scene
camera; the intrinsics are in ``calibration.json`` (``scene_camera_matrix``,
``scene_distortion_coefficients``); ``export_info.csv`` marks the folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..consistency import checked_scene_camera, checked_tables, read_json_object
from ..errors import DensePoseGazeError
from ..tables import BLINKS, EVENTS, FIXATIONS, GAZE, SACCADES, TEXT, ColumnSpec, TableSpec, parse_int64, read_table
from .parts import NEON_PLAYER, ReadOptions, RecordingParts

__all__ = ["NAME", "EXPORT_INFO", "VIDEOS", "matches", "read"]

NAME = NEON_PLAYER
EXPORT_INFO = "export_info.csv"  # Neon Player and Pupil Player both write it; Neon Player's gaze is gaze.csv
#: the videos an export may hold, preferred first: the raw scene before the one with overlays drawn in
VIDEOS = ("scene.mp4", "world.mp4")
_CALIBRATION = "calibration.json"


def matches(folder: Path) -> bool:
    """True for a Neon Player export folder (Pupil Player's export has neither its gaze.csv nor info.json)."""
    return (folder / EXPORT_INFO).is_file() and any((folder / name).is_file()
                                                    for name in (GAZE.filename, "info.json", _CALIBRATION))


def read(folder: Path, picked_video: Path | None, notes: list[str], options: ReadOptions) -> RecordingParts:
    """The parts of the Neon Player export in ``folder`` (``picked_video``: the video the user chose, if any)."""
    video = picked_video or _pick_video(folder)
    timestamps_file = video.with_name(f"{video.stem}_timestamps.csv")
    if not timestamps_file.is_file():
        raise DensePoseGazeError(
            f"{timestamps_file.name} is missing from {folder}: Neon Player writes it beside {video.name}, "
            "and it is needed to match gaze to video frames. Export the video again in Neon Player."
        )
    tables = {}
    for spec in (GAZE, FIXATIONS, SACCADES, BLINKS, EVENTS):
        path = folder / spec.filename
        if path.is_file():
            result = read_table(path, spec)
            notes.extend(result.warnings)
            tables[spec] = result.table
        elif spec is GAZE:
            raise DensePoseGazeError(f"gaze.csv is missing from {folder}. Export again with Neon Player's Gaze "
                                     "plugin enabled.")
        else:
            notes.append(f"{spec.filename} is missing from {folder}; continuing without it (the table is empty). "
                         "Enable its plugin in Neon Player to export it.")
            tables[spec] = spec.empty()
    info = read_json_object(folder / "info.json", notes)
    tables = checked_tables(folder, info, tables, (GAZE,), notes)
    calibration = folder / _CALIBRATION
    camera = scene_camera(read_json_object(calibration, notes, ("scene_camera_matrix",)))
    return RecordingParts(
        source=NAME,
        video_path=video,
        frame_timestamps=_frame_timestamps(timestamps_file, notes),
        timestamps_file=timestamps_file,
        gaze=tables[GAZE],
        fixations=tables[FIXATIONS],
        saccades=tables[SACCADES],
        blinks=tables[BLINKS],
        events=tables[EVENTS],
        info=info,
        scene_camera=checked_scene_camera(camera, calibration, notes),
        files={spec.filename: folder / spec.filename for spec in tables},
    )


def scene_camera(calibration: dict) -> dict | None:
    """Neon's calibration (calibration.json or calibration.bin's fields) as scene camera intrinsics."""
    if not calibration:
        return None
    camera = {
        "camera_matrix": np.asarray(calibration["scene_camera_matrix"], dtype=np.float64).reshape(3, 3).tolist(),
        "dist_coefs": [np.asarray(calibration.get("scene_distortion_coefficients", []), np.float64).ravel().tolist()],
    }
    if calibration.get("serial"):
        camera["serial_number"] = str(calibration["serial"])
    return camera


def _pick_video(folder: Path) -> Path:
    for name in VIDEOS:
        if (folder / name).is_file():
            return folder / name
    raise DensePoseGazeError(
        f"{folder} holds no scene video (scene.mp4 or world.mp4). In Neon Player, export with the Video "
        "Exporter, or the scene renderer's 'Export raw scene video' for a video without overlays."
    )


_TIMESTAMPS = TableSpec("timestamps", (ColumnSpec("recording id", TEXT, required=False),
                                       ColumnSpec("timestamp [ns]", TEXT)))


def _frame_timestamps(path: Path, notes: list[str]) -> np.ndarray:
    """The frame times, read exactly as far as the file has them (Neon Player writes them as floats)."""
    text = read_table(path, _TIMESTAMPS)
    notes.extend(text.warnings)
    where = f"column 'timestamp [ns]' of {path.name} in {path.parent}"
    values, lost = parse_int64(text.table["timestamp [ns]"].to_numpy(dtype=object), where=where)
    if lost is not None:
        # float64 keeps ~16 digits: at today's ns times the last ~256 ns are gone, far less than one
        # gaze sample (5 ms), so frames and samples still pair up as the recording had them
        notes.append(
            f"{path.name} in {path.parent} holds frame times as floating point (e.g. {lost[1]!r}), as Neon "
            f"Player writes them: they are exact to about 10^{lost[0]} ns, far finer than a gaze sample."
        )
    return values.to_numpy(dtype=np.int64)
