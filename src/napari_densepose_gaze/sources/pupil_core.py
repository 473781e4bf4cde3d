"""Pupil Core recordings, as Pupil Player exports them (``<recording>/exports/<NNN>/``).

Pupil Player's export (pupil-labs/pupil) holds ``world.mp4`` with
``world_timestamps.npy`` (float64 seconds; also ``world_timestamps.csv``,
``# timestamps [seconds]``, to the microsecond), ``gaze_positions.csv``
(``gaze_timestamp`` in seconds, ``confidence``, ``norm_pos_x`` and
``norm_pos_y`` with the origin at the bottom left, as fractions of the frame),
and, when their plugins ran, ``fixations.csv`` (``id``, ``start_timestamp``,
``duration`` in ms, ``norm_pos_*``), ``blinks.csv`` (``id``, ``start_timestamp``,
``end_timestamp``) and ``annotations.csv`` (``timestamp``, ``label``);
``export_info.csv`` marks the folder. Times are Pupil time, seconds on the
recording computer's clock; the recording's ``info.player.json`` (two folders
up) ties that clock to UTC, so times become UTC nanoseconds when it is there.
The intrinsics are ``world.intrinsics`` of the recording (msgpack); reading it
needs the ``msgpack`` package.

Pupil Core has no ``worn`` signal: gaze below ``ReadOptions.min_confidence``
(Pupil Player's default, 0.6) counts as not worn, as Pupil Player leaves it out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..consistency import checked_scene_camera, read_json_object
from ..errors import DensePoseGazeError
from ..tables import BLINKS, EVENTS, FIXATIONS, FLOAT, GAZE, INT, SACCADES, TEXT, ColumnSpec, TableSpec, read_table
from . import neon_player
from .neon_player import EXPORT_INFO
from .parts import PUPIL_CORE, ReadOptions, RecordingParts, conform, ids_by_interval, seconds_to_ns

__all__ = ["NAME", "GAZE_POSITIONS", "RECORDING_INFO", "matches", "is_raw_recording", "raw_recording_hint", "read"]

NAME = PUPIL_CORE
RECORDING_INFO = "info.player.json"  # in a Pupil Core recording folder, which holds exports/ once exported
_VIDEO = "world.mp4"
_TIMES_NPY = "world_timestamps.npy"


def _col(name: str, kind: str, required: bool = True) -> ColumnSpec:
    return ColumnSpec(name, kind, required=required)


GAZE_POSITIONS = TableSpec("gaze_positions.csv", (
    _col("gaze_timestamp", FLOAT), _col("world_index", TEXT, False), _col("confidence", FLOAT),
    _col("norm_pos_x", FLOAT), _col("norm_pos_y", FLOAT),
))
_FIXATIONS = TableSpec("fixations.csv", (
    _col("id", INT), _col("start_timestamp", FLOAT), _col("duration", FLOAT),
    _col("norm_pos_x", FLOAT), _col("norm_pos_y", FLOAT),
))
_BLINKS = TableSpec("blinks.csv", (_col("id", INT), _col("start_timestamp", FLOAT), _col("end_timestamp", FLOAT)))
_ANNOTATIONS = TableSpec("annotations.csv", (_col("timestamp", FLOAT), _col("label", TEXT)))
_TIMES_CSV = TableSpec("world_timestamps.csv", (_col("# timestamps [seconds]", FLOAT),))


def matches(folder: Path) -> bool:
    """True for a Pupil Player export folder: its export_info.csv, and not a Neon Player export."""
    return (folder / EXPORT_INFO).is_file() and not neon_player.matches(folder)


def is_raw_recording(folder: Path) -> bool:
    """True for the folder Pupil Capture recorded (not an export): its exports, if any, are what to open."""
    return (folder / RECORDING_INFO).is_file() and not matches(folder)


def raw_recording_hint(folder: Path) -> str | None:
    """Advice for a Pupil Core recording without a Pupil Player export (None for other folders)."""
    if not is_raw_recording(folder):
        return None
    return (f"{folder} is a Pupil Core recording without a Pupil Player export. Open it in Pupil Player, "
            "enable the Raw Data Exporter and World Video Exporter, press Export, then pick the "
            "exports/000 folder it writes (or the recording folder again).")


def read(folder: Path, picked_video: Path | None, notes: list[str], options: ReadOptions) -> RecordingParts:
    """The parts of the Pupil Player export in ``folder``."""
    from ..video import VideoReader  # the frame size turns normalised gaze into pixels

    video = picked_video or folder / _VIDEO
    if not video.is_file():
        raise DensePoseGazeError(f"{_VIDEO} is missing from {folder}. Export again in Pupil Player with the "
                                 "World Video Exporter enabled.")
    reader = VideoReader(video)
    _, height, width, _ = reader.shape
    root = folder.parent.parent if folder.parent.name == "exports" else None
    info, offset_ns = _clock(root, notes)
    frame_seconds, timestamps_file = _frame_seconds(folder)
    ids = {"recording id": info.get("recording_id")}

    gaze_table = _read(folder, GAZE_POSITIONS, notes, required=True)
    gaze_ts = _ns(gaze_table["gaze_timestamp"], offset_ns, folder / GAZE_POSITIONS.filename)
    confidence = gaze_table["confidence"].to_numpy(dtype=np.float64)
    fixations = _fixations(folder, offset_ns, (width, height), ids, notes)
    blinks = _blinks(folder, offset_ns, ids, notes)
    gaze = conform(GAZE, {
        **ids,
        "timestamp [ns]": gaze_ts,
        "gaze x [px]": gaze_table["norm_pos_x"].to_numpy(dtype=np.float64) * width,
        "gaze y [px]": (1.0 - gaze_table["norm_pos_y"].to_numpy(dtype=np.float64)) * height,
        # NaN confidence is unknown, which counts as worn (as a missing worn does)
        "worn": np.where(confidence < options.min_confidence, 0.0, 1.0),
        "fixation id": ids_by_interval(gaze_ts, fixations["start timestamp [ns]"], fixations["end timestamp [ns]"],
                                       fixations["fixation id"]),
        "blink id": ids_by_interval(gaze_ts, blinks["start timestamp [ns]"], blinks["end timestamp [ns]"],
                                    blinks["blink id"]),
        "confidence": confidence,
    }, len(gaze_table))
    return RecordingParts(
        source=NAME,
        video_path=video,
        frame_timestamps=_ns(frame_seconds, offset_ns, timestamps_file),
        timestamps_file=timestamps_file,
        gaze=gaze,
        fixations=fixations,
        saccades=SACCADES.empty(),
        blinks=blinks,
        events=_annotations(folder, offset_ns, ids, notes),
        info=info,
        scene_camera=_scene_camera(root, (width, height), notes),
        files={GAZE.filename: folder / GAZE_POSITIONS.filename, FIXATIONS.filename: folder / _FIXATIONS.filename,
               BLINKS.filename: folder / _BLINKS.filename, EVENTS.filename: folder / _ANNOTATIONS.filename},
        name=f"{root.name}_export_{folder.name}" if root is not None else None,
        reader=reader,
    )


def _read(folder: Path, spec: TableSpec, notes: list[str], required: bool = False):
    path = folder / spec.filename
    if not path.is_file():
        if required:
            raise DensePoseGazeError(f"{spec.filename} is missing from {folder}. Export again in Pupil Player "
                                     "with the Raw Data Exporter enabled.")
        notes.append(f"{spec.filename} is missing from {folder}; continuing without it (its plugin did not run "
                     "in Pupil Player).")
        return None
    result = read_table(path, spec)
    notes.extend(result.warnings)
    return result.table


def _clock(root: Path | None, notes: list[str]) -> tuple[dict, int]:
    """The recording's info.player.json and the offset from Pupil time to UTC in ns (0 without it)."""
    keys = ("start_time_system_s", "start_time_synced_s")
    info = read_json_object(root / RECORDING_INFO, notes, keys) if root is not None else {}
    try:
        offset_s = float(info["start_time_system_s"]) - float(info["start_time_synced_s"])
    except (KeyError, TypeError, ValueError):
        where = f"the recording {root}" if root is not None else "no Pupil Core recording folder (exports/ above it)"
        notes.append(f"This export lies in {where} without a usable {RECORDING_INFO}: times stay in Pupil time "
                     "(seconds on the recording computer's clock), not UTC.")
        return {}, 0
    info = dict(info)
    info.setdefault("recording_id", info.get("recording_uuid"))
    return info, int(round(offset_s * 1e9))


def _frame_seconds(folder: Path) -> tuple[np.ndarray, Path]:
    """Frame times in Pupil seconds: the exact .npy when there, else the .csv (microseconds)."""
    npy = folder / _TIMES_NPY
    if npy.is_file():
        try:
            times = np.load(npy, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DensePoseGazeError(f"{npy} cannot be read as a numpy array ({exc}). Export again in "
                                     "Pupil Player.") from exc
        return np.asarray(times, dtype=np.float64).ravel(), npy
    csv = folder / _TIMES_CSV.filename
    if csv.is_file():
        return read_table(csv, _TIMES_CSV).table["# timestamps [seconds]"].to_numpy(dtype=np.float64), csv
    raise DensePoseGazeError(f"{_TIMES_NPY} (or world_timestamps.csv) is missing from {folder}; it is needed to "
                             "match gaze to video frames. Export again in Pupil Player with the World Video Exporter.")


def _ns(seconds, offset_ns: int, path: Path) -> np.ndarray:
    seconds = np.asarray(seconds, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(seconds))
    if bad.size:
        raise DensePoseGazeError(f"{path.name} in {path.parent} has no valid time in data row {bad[0] + 1}. "
                                 "Export again in Pupil Player.")
    return seconds_to_ns(seconds, offset_ns)


def _fixations(folder: Path, offset_ns: int, size: tuple[int, int], ids: dict, notes: list[str]):
    table = _read(folder, _FIXATIONS, notes)
    if table is None:
        return FIXATIONS.empty()
    start = _ns(table["start_timestamp"], offset_ns, folder / _FIXATIONS.filename)
    duration_ms = table["duration"].to_numpy(dtype=np.float64)
    width, height = size
    return conform(FIXATIONS, {
        **ids,
        "fixation id": table["id"],
        "start timestamp [ns]": start,
        "end timestamp [ns]": start + np.round(duration_ms * 1e6).astype(np.int64),
        "duration [ms]": duration_ms,
        "fixation x [px]": table["norm_pos_x"].to_numpy(dtype=np.float64) * width,
        "fixation y [px]": (1.0 - table["norm_pos_y"].to_numpy(dtype=np.float64)) * height,
    }, len(table))


def _blinks(folder: Path, offset_ns: int, ids: dict, notes: list[str]):
    table = _read(folder, _BLINKS, notes)
    if table is None:
        return BLINKS.empty()
    path = folder / _BLINKS.filename
    start, end = _ns(table["start_timestamp"], offset_ns, path), _ns(table["end_timestamp"], offset_ns, path)
    return conform(BLINKS, {**ids, "blink id": table["id"], "start timestamp [ns]": start,
                            "end timestamp [ns]": end, "duration [ms]": (end - start) / 1e6}, len(table))


def _annotations(folder: Path, offset_ns: int, ids: dict, notes: list[str]):
    table = _read(folder, _ANNOTATIONS, notes)
    if table is None:
        return EVENTS.empty()
    ts = _ns(table["timestamp"], offset_ns, folder / _ANNOTATIONS.filename)
    return conform(EVENTS, {**ids, "timestamp [ns]": ts, "name": table["label"].astype(str).tolist(),
                            "type": "annotation"}, len(table))


def _scene_camera(root: Path | None, size: tuple[int, int], notes: list[str]) -> dict | None:
    """The recording's world camera intrinsics, checked as every source's are (None without them)."""
    if root is None:
        return None
    return checked_scene_camera(_intrinsics(root, size, notes), root / "world.intrinsics", notes)


def _intrinsics(root: Path, size: tuple[int, int], notes: list[str]) -> dict | None:
    """The world camera's intrinsics at the video's resolution, from the recording's world.intrinsics."""
    path = root / "world.intrinsics"
    if not path.is_file():
        notes.append(f"world.intrinsics is missing from {root}; continuing without the scene camera intrinsics.")
        return None
    try:
        import msgpack
    except ImportError:
        notes.append(f"Reading {path} needs the msgpack package (pip install msgpack); continuing without the "
                     "scene camera intrinsics.")
        return None
    try:
        data = msgpack.unpackb(path.read_bytes(), strict_map_key=False)
        entry = data[str(tuple(size))]
        camera = {"camera_matrix": np.asarray(entry["camera_matrix"], np.float64).reshape(3, 3).tolist()}
        dist = np.asarray(entry.get("dist_coefs", []), np.float64).ravel().tolist()
    except (OSError, ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
        notes.append(f"{path} holds no intrinsics for the {size[0]}x{size[1]} video ({exc!r}); continuing "
                     "without them.")
        return None
    if entry.get("cam_type", "radial") == "radial":
        camera["dist_coefs"] = [dist]
    else:
        # a fisheye model's coefficients are not OpenCV's radial ones: kept under their own name, so
        # that degree radii use the pinhole part alone (checked_scene_camera says so in a note)
        camera["fisheye_dist_coefs"] = [dist]
    return camera
