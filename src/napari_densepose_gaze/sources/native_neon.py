"""Native Neon recordings: the folder the Neon Companion app writes, before any upload to Pupil Cloud.

The layout is the one Pupil Labs' ``pupil-labs-neon-recording`` package reads
(its source is the reference): binary streams as ``<stream> ps<N>.raw`` with
``<stream> ps<N>.time`` (little-endian int64 ns, one per record), parts numbered
from 1; Companion's 200 Hz reprocessed gaze, when present, as ``gaze_200hz.raw`` /
``.time`` (and ``worn_200hz.raw``), preferred over the real-time ``gaze ps<N>``;
``worn`` shares the gaze timestamps; ``fixations ps<N>.raw`` holds fixations
(event type 1) and saccades (0); the scene video as ``Neon Scene Camera v1
ps<N>.mp4`` with its ``.time``; events as lines of ``event.txt`` with
``event.time``; the intrinsics in ``calibration.bin``; metadata in ``info.json``.
Reading them is a few ``numpy.fromfile`` calls, so the package is not needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..consistency import checked_scene_camera, read_json_object
from ..errors import DensePoseGazeError
from ..tables import BLINKS, EVENTS, FIXATIONS, GAZE, SACCADES
from .neon_player import scene_camera as _scene_camera
from .parts import NATIVE_NEON, ReadOptions, RecordingParts, conform, ids_by_interval

__all__ = [
    "NAME",
    "SCENE_VIDEO",
    "TIME_DTYPE",
    "GAZE_DTYPE",
    "WORN_DTYPE",
    "EYE_EVENT_DTYPE",
    "BLINK_DTYPE",
    "CALIBRATION_DTYPE",
    "FIXATION_EVENT",
    "SACCADE_EVENT",
    "matches",
    "read",
]

NAME = NATIVE_NEON
SCENE_VIDEO = "Neon Scene Camera v1"  # the scene camera's stream name; the eye cameras are "Neon Sensor Module v1"
_INVISIBLE_VIDEO = "PI world v1"  # a Pupil Invisible phone's scene video: same stream layout, other glasses
TIME_DTYPE = np.dtype("<i8")
GAZE_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4")])
WORN_DTYPE = np.dtype("u1")
EYE_EVENT_DTYPE = np.dtype([
    ("event_type", "<i4"),
    ("start_timestamp_ns", "<i8"),
    ("end_timestamp_ns", "<i8"),
    ("start_gaze_x", "<f4"), ("start_gaze_y", "<f4"),
    ("end_gaze_x", "<f4"), ("end_gaze_y", "<f4"),
    ("mean_gaze_x", "<f4"), ("mean_gaze_y", "<f4"),
    ("amplitude_pixels", "<f4"), ("amplitude_angle_deg", "<f4"),
    ("mean_velocity", "<f4"), ("max_velocity", "<f4"),
])
FIXATION_EVENT, SACCADE_EVENT = 1, 0
BLINK_DTYPE = np.dtype([("start_timestamp_ns", "<i8"), ("end_timestamp_ns", "<i8")])
_MATRIX = "(3,3)<f8"
CALIBRATION_DTYPE = np.dtype([
    ("version", "u1"),
    ("serial", "S6"),
    ("scene_camera_matrix", _MATRIX), ("scene_distortion_coefficients", "8<f8"),
    ("scene_extrinsics_affine_matrix", "(4,4)<f8"),
    ("right_camera_matrix", _MATRIX), ("right_distortion_coefficients", "8<f8"),
    ("right_extrinsics_affine_matrix", "(4,4)<f8"),
    ("left_camera_matrix", _MATRIX), ("left_distortion_coefficients", "8<f8"),
    ("left_extrinsics_affine_matrix", "(4,4)<f8"),
    ("crc", "<u4"),
])
# Companion apps before this version wrote fixation means without the wearer's gaze offset
_FIXATION_OFFSET_FIXED = (2, 9, 31)


def matches(folder: Path) -> bool:
    """True for a native Neon recording folder (its scene video or gaze stream, and info.json)."""
    if not (folder / "info.json").is_file():
        return False
    return bool(_parts(folder, SCENE_VIDEO, ".mp4")) or bool(_parts(folder, "gaze")) \
        or (folder / "gaze_200hz.raw").is_file()


def read(folder: Path, picked_video: Path | None, notes: list[str], options: ReadOptions) -> RecordingParts:
    """The parts of the native Neon recording in ``folder``."""
    video, video_time = _scene_video(folder, picked_video)
    info = read_json_object(folder / "info.json", notes)
    gaze_ts, gaze_xy, worn, gaze_file = _gaze(folder, notes)
    fixations, saccades = _eye_events(folder, info, notes)
    blinks = _blinks(folder, notes)
    n = len(gaze_ts)
    gaze = conform(GAZE, {
        "recording id": info.get("recording_id"),
        "timestamp [ns]": gaze_ts,
        "gaze x [px]": gaze_xy["x"],
        "gaze y [px]": gaze_xy["y"],
        "worn": worn,
        "fixation id": ids_by_interval(gaze_ts, fixations["start timestamp [ns]"], fixations["end timestamp [ns]"],
                                       fixations["fixation id"]),
        "blink id": ids_by_interval(gaze_ts, blinks["start timestamp [ns]"], blinks["end timestamp [ns]"],
                                    blinks["blink id"]),
    }, n)
    return RecordingParts(
        source=NAME,
        video_path=video,
        frame_timestamps=_read_times(video_time),
        timestamps_file=video_time,
        gaze=gaze,
        fixations=fixations,
        saccades=saccades,
        blinks=blinks,
        events=_events(folder, info, notes),
        info=info,
        scene_camera=_calibration(folder, notes),
        files={GAZE.filename: gaze_file, FIXATIONS.filename: folder / "fixations ps1.raw",
               SACCADES.filename: folder / "fixations ps1.raw", BLINKS.filename: folder / "blinks ps1.raw",
               EVENTS.filename: folder / "event.txt"},
    )


def _parts(folder: Path, stream: str, suffix: str = ".raw") -> list[tuple[Path, Path]]:
    """The ``(data, time)`` file pairs of ``stream`` in part order (ps1, ps2, ...); parts without .time left out."""
    found = []
    pattern = re.compile(rf"{re.escape(stream)} ps(\d+){re.escape(suffix)}")
    for path in folder.glob(f"{stream} ps*{suffix}"):
        number = pattern.fullmatch(path.name)
        # worn has no times of its own: one worn byte per gaze sample, timed by the gaze stream
        time_stem = path.stem if stream != "worn" else path.stem.replace("worn ", "gaze ", 1)
        time_file = path.with_name(f"{time_stem}.time")
        if number and time_file.is_file():
            found.append((int(number[1]), path, time_file))
    return [(data, time) for _, data, time in sorted(found)]


def _scene_video(folder: Path, picked: Path | None) -> tuple[Path, Path]:
    videos = _parts(folder, SCENE_VIDEO, ".mp4")
    if not videos and _parts(folder, _INVISIBLE_VIDEO, ".mp4"):
        raise DensePoseGazeError(
            f"{folder} is a native Pupil Invisible recording, which this plugin does not read: upload it to "
            "Pupil Cloud and download 'Timeseries Data + Scene Video'."
        )
    if picked is not None and all(picked != video for video, _ in videos):
        raise DensePoseGazeError(
            f"{picked.name} is not the scene video of the Neon recording {folder} (that is "
            f"'{SCENE_VIDEO} ps1.mp4'): pick the recording folder or its scene video."
        )
    if not videos:
        raise DensePoseGazeError(
            f"The scene video '{SCENE_VIDEO} ps1.mp4' with its .time file is missing from {folder}. "
            "Copy the whole recording folder from the Companion device again."
        )
    if len(videos) > 1:
        raise DensePoseGazeError(
            f"The scene video of {folder} is in {len(videos)} parts (the scene camera stopped and started "
            "again); this plugin reads one video. Export the recording with Neon Player, or upload it to "
            "Pupil Cloud and download 'Timeseries Data + Scene Video', which join the parts."
        )
    return videos[0]


def _read_times(path: Path) -> np.ndarray:
    return _read_array(path, TIME_DTYPE)


def _read_array(path: Path, dtype: np.dtype) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DensePoseGazeError(f"Cannot read {path} ({exc.strerror or exc}); check that it is readable.") from exc
    whole = len(data) // dtype.itemsize * dtype.itemsize
    if whole != len(data):
        raise DensePoseGazeError(
            f"{path.name} in {path.parent} has {len(data)} bytes, not a whole number of {dtype.itemsize}-byte "
            "records: the file is cut or damaged. Copy the recording from the Companion device again."
        )
    return np.frombuffer(data, dtype=dtype).copy()


def _paired(pairs: list[tuple[Path, Path]], dtype: np.dtype, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The records and times of a multi-part stream, each part cut to the shorter of its two files."""
    times, records = [], []
    for data_file, time_file in pairs:
        ts, values = _read_times(time_file), _read_array(data_file, dtype)
        if len(ts) != len(values):
            notes.append(f"{data_file.name} in {data_file.parent} has {len(values)} records but {time_file.name} "
                         f"{len(ts)} times; using the first {min(len(ts), len(values))}.")
        k = min(len(ts), len(values))
        times.append(ts[:k])
        records.append(values[:k])
    if not pairs:
        return np.zeros(0, TIME_DTYPE), np.zeros(0, dtype)
    return np.concatenate(times), np.concatenate(records)


def _gaze(folder: Path, notes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, Path]:
    """Gaze times, points and worn (1.0 or 0.0): the 200 Hz stream when Companion made one."""
    if (folder / "gaze_200hz.raw").is_file() and (folder / "gaze_200hz.time").is_file():
        gaze_pairs = [(folder / "gaze_200hz.raw", folder / "gaze_200hz.time")]
        worn_pairs = [(folder / "worn_200hz.raw", folder / "gaze_200hz.time")]
        worn_pairs = worn_pairs if worn_pairs[0][0].is_file() else []
    else:
        gaze_pairs = _parts(folder, "gaze")
        worn_pairs = _parts(folder, "worn")
    if not gaze_pairs:
        raise DensePoseGazeError(
            f"The gaze stream ('gaze ps1.raw' with 'gaze ps1.time') is missing from {folder}; it is needed to "
            "know where the wearer looked. Copy the whole recording folder from the Companion device again."
        )
    ts, xy = _paired(gaze_pairs, GAZE_DTYPE, notes)
    worn = np.ones(len(ts))
    if worn_pairs:
        worn_ts, worn_raw = _paired(worn_pairs, WORN_DTYPE, notes)
        if len(worn_ts) == len(ts):
            worn = (worn_raw > 0).astype(np.float64)
        else:
            notes.append(f"The worn stream of {folder} does not match its gaze ({len(worn_ts)} against {len(ts)} "
                         "samples); every sample counts as worn.")
    else:
        notes.append(f"The worn stream ('worn ps1.raw') is missing from {folder}; every sample counts as worn.")
    return ts, xy, worn, gaze_pairs[0][0]


def _eye_events(folder: Path, info: dict, notes: list[str]):
    pairs = _parts(folder, "fixations")
    if not pairs:
        notes.append(f"'fixations ps1.raw' is missing from {folder}; continuing without fixations and saccades.")
        return FIXATIONS.empty(), SACCADES.empty()
    _, events = _paired(pairs, EYE_EVENT_DTYPE, notes)
    fix = events[events["event_type"] == FIXATION_EVENT]
    sac = events[events["event_type"] == SACCADE_EVENT]
    mean_x = fix["mean_gaze_x"].astype(np.float64)
    mean_y = fix["mean_gaze_y"].astype(np.float64)
    if _version(info.get("app_version")) < _FIXATION_OFFSET_FIXED and info.get("gaze_offset"):
        dx, dy = info["gaze_offset"][:2]
        mean_x, mean_y = mean_x + dx, mean_y - dy
    ids = {"recording id": info.get("recording_id")}
    fixations = conform(FIXATIONS, {
        **ids,
        "fixation id": np.arange(1, len(fix) + 1),
        "start timestamp [ns]": fix["start_timestamp_ns"],
        "end timestamp [ns]": fix["end_timestamp_ns"],
        "duration [ms]": (fix["end_timestamp_ns"] - fix["start_timestamp_ns"]) / 1e6,
        "fixation x [px]": mean_x,
        "fixation y [px]": mean_y,
    }, len(fix))
    saccades = conform(SACCADES, {
        **ids,
        "saccade id": np.arange(1, len(sac) + 1),
        "start timestamp [ns]": sac["start_timestamp_ns"],
        "end timestamp [ns]": sac["end_timestamp_ns"],
        "duration [ms]": (sac["end_timestamp_ns"] - sac["start_timestamp_ns"]) / 1e6,
        "amplitude [px]": sac["amplitude_pixels"],
        "amplitude [deg]": sac["amplitude_angle_deg"],
        "mean velocity [px/s]": sac["mean_velocity"],
        "peak velocity [px/s]": sac["max_velocity"],
    }, len(sac))
    return fixations, saccades


def _version(text: object) -> tuple[int, ...]:
    """'2.9.30-prod' -> (2, 9, 30); an unknown version counts as current."""
    numbers = re.findall(r"\d+", str(text or "").split("-")[0])
    return tuple(int(n) for n in numbers) if numbers else (999,)


def _blinks(folder: Path, notes: list[str]):
    pairs = _parts(folder, "blinks")
    if not pairs:
        notes.append(f"'blinks ps1.raw' is missing from {folder}; continuing without blinks.")
        return BLINKS.empty()
    _, blinks = _paired(pairs, BLINK_DTYPE, notes)
    return conform(BLINKS, {
        "blink id": np.arange(1, len(blinks) + 1),
        "start timestamp [ns]": blinks["start_timestamp_ns"],
        "end timestamp [ns]": blinks["end_timestamp_ns"],
        "duration [ms]": (blinks["end_timestamp_ns"] - blinks["start_timestamp_ns"]) / 1e6,
    }, len(blinks))


def _events(folder: Path, info: dict, notes: list[str]):
    text_file, time_file = folder / "event.txt", folder / "event.time"
    if not (text_file.is_file() and time_file.is_file()):
        notes.append(f"event.txt with event.time is missing from {folder}; continuing without events.")
        return EVENTS.empty()
    try:
        names = text_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DensePoseGazeError(f"Cannot read {text_file} as text ({exc}). Copy the recording again.") from exc
    ts = _read_times(time_file)
    if len(names) != len(ts):
        notes.append(f"event.txt in {folder} has {len(names)} names but event.time {len(ts)} times; "
                     f"using the first {min(len(names), len(ts))}.")
    k = min(len(names), len(ts))
    return conform(EVENTS, {"recording id": info.get("recording_id"), "timestamp [ns]": ts[:k],
                            "name": names[:k], "type": "recording"}, k)


def _calibration(folder: Path, notes: list[str]) -> dict | None:
    path = folder / "calibration.bin"
    if not path.is_file():
        notes.append(f"calibration.bin is missing from {folder}; continuing without the scene camera intrinsics.")
        return None
    data = path.read_bytes()
    if len(data) != CALIBRATION_DTYPE.itemsize:
        notes.append(f"calibration.bin in {folder} has {len(data)} bytes, not the {CALIBRATION_DTYPE.itemsize} of "
                     "Neon's calibration; continuing without the scene camera intrinsics.")
        return None
    record = np.frombuffer(data, dtype=CALIBRATION_DTYPE)[0]
    return checked_scene_camera(_scene_camera({
        "scene_camera_matrix": record["scene_camera_matrix"],
        "scene_distortion_coefficients": record["scene_distortion_coefficients"],
        "serial": record["serial"].decode("ascii", "replace").strip("\0"),
    }), path, notes)
