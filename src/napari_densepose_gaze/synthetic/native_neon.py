"""Write a synthetic native Neon recording: the folder layout of the Neon Companion app.

The binary streams follow the layout ``pupil-labs-neon-recording`` reads (see
sources/native_neon.py for the files and record types); the content is a
synthetic Pupil Cloud recording (:func:`.export.write_recording`) written again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..sources.native_neon import (
    BLINK_DTYPE,
    CALIBRATION_DTYPE,
    EYE_EVENT_DTYPE,
    FIXATION_EVENT,
    GAZE_DTYPE,
    SACCADE_EVENT,
    SCENE_VIDEO,
    TIME_DTYPE,
    WORN_DTYPE,
)
from .cloud_tables import CloudTables, read_cloud_tables, write_cloud_recording
from .export import distortion_of

__all__ = ["write_native_neon_recording", "native_neon_recording_from"]

_EYE_VIDEO = "Neon Sensor Module v1"
_WORN = 255  # the Companion app writes worn as 0 or 255


def write_native_neon_recording(folder: str | Path, *, gaze_200hz: bool = False, **write_recording_kwargs) -> Path:
    """Write a native Neon recording folder into ``folder``; return its path.

    ``gaze_200hz`` adds Companion's reprocessed ``gaze_200hz`` stream (the
    real-time ``gaze ps1`` then keeps every other sample, as a slower phone
    would); ``write_recording_kwargs`` go to :func:`.export.write_recording`.
    """
    with tempfile.TemporaryDirectory() as scratch:
        cloud = write_cloud_recording(Path(scratch), **write_recording_kwargs)
        return native_neon_recording_from(cloud, folder, gaze_200hz=gaze_200hz)


def native_neon_recording_from(cloud: CloudTables | str | Path, folder: str | Path, *,
                               gaze_200hz: bool = False) -> Path:
    """The Pupil Cloud recording ``cloud`` written as a native Neon recording into ``folder``; return its path."""
    if not isinstance(cloud, CloudTables):
        cloud = read_cloud_tables(cloud)
    out = Path(folder) / cloud.folder.name
    out.mkdir(parents=True, exist_ok=True)

    shutil.copyfile(cloud.video, out / f"{SCENE_VIDEO} ps1.mp4")
    _times(out / f"{SCENE_VIDEO} ps1.time", cloud.world["timestamp [ns]"])
    # an eye video beside the scene video: the reader must pick the scene camera's
    shutil.copyfile(cloud.video, out / f"{_EYE_VIDEO} ps1.mp4")
    _times(out / f"{_EYE_VIDEO} ps1.time", cloud.world["timestamp [ns]"])

    gaze = cloud.gaze
    streams = {"": slice(None)} if not gaze_200hz else {"_200hz": slice(None), "": slice(None, None, 2)}
    for suffix, rows in streams.items():
        part = gaze.iloc[rows]
        points = np.zeros(len(part), dtype=GAZE_DTYPE)
        points["x"], points["y"] = part["gaze x [px]"], part["gaze y [px]"]
        worn = np.where(part["worn"].to_numpy() > 0.5, _WORN, 0).astype(WORN_DTYPE)
        stem = "gaze_200hz" if suffix else "gaze ps1"
        (out / f"{stem}.raw").write_bytes(points.tobytes())
        _times(out / f"{stem}.time", part["timestamp [ns]"])
        (out / ("worn_200hz.raw" if suffix else "worn ps1.raw")).write_bytes(worn.tobytes())

    _eye_events(out, cloud)
    blinks = np.zeros(len(cloud.blinks), dtype=BLINK_DTYPE)
    blinks["start_timestamp_ns"] = cloud.blinks["start timestamp [ns]"]
    blinks["end_timestamp_ns"] = cloud.blinks["end timestamp [ns]"]
    (out / "blinks ps1.raw").write_bytes(blinks.tobytes())
    _times(out / "blinks ps1.time", cloud.blinks["end timestamp [ns]"])

    (out / "event.txt").write_text("".join(f"{name}\n" for name in cloud.events["name"]), encoding="utf-8")
    _times(out / "event.time", cloud.events["timestamp [ns]"])

    (out / "info.json").write_text(json.dumps(cloud.info, indent=4), encoding="utf-8")
    (out / "wearer.json").write_text(json.dumps({"uuid": cloud.info.get("wearer_id", ""),
                                                 "name": cloud.wearer_name}), encoding="utf-8")
    (out / "calibration.bin").write_bytes(_calibration(cloud.scene_camera).tobytes())
    return out


def _times(path: Path, values) -> None:
    path.write_bytes(np.asarray(values, dtype=np.int64).astype(TIME_DTYPE).tobytes())


def _eye_events(out: Path, cloud: CloudTables) -> None:
    """Fixations and saccades in one stream, by start time, each record timed at its end."""
    fix, sac = cloud.fixations, cloud.saccades
    events = np.zeros(len(fix) + len(sac), dtype=EYE_EVENT_DTYPE)
    events["event_type"] = [FIXATION_EVENT] * len(fix) + [SACCADE_EVENT] * len(sac)
    for field, column in (("start_timestamp_ns", "start timestamp [ns]"), ("end_timestamp_ns", "end timestamp [ns]")):
        events[field] = np.concatenate([fix[column].to_numpy(np.int64), sac[column].to_numpy(np.int64)])
    for axis in ("x", "y"):
        mean = fix[f"fixation {axis} [px]"].to_numpy(np.float32)
        for kind in ("start", "end", "mean"):
            events[f"{kind}_gaze_{axis}"][: len(fix)] = mean
    events["amplitude_pixels"][len(fix):] = sac["amplitude [px]"]
    events["amplitude_angle_deg"][len(fix):] = sac["amplitude [deg]"]
    events["mean_velocity"][len(fix):] = sac["mean velocity [px/s]"]
    events["max_velocity"][len(fix):] = sac["peak velocity [px/s]"]
    events = events[np.argsort(events["start_timestamp_ns"], kind="stable")]
    (out / "fixations ps1.raw").write_bytes(events.tobytes())
    _times(out / "fixations ps1.time", events["end_timestamp_ns"])


def _calibration(camera: dict) -> np.ndarray:
    record = np.zeros(1, dtype=CALIBRATION_DTYPE)
    record["version"] = 1
    record["serial"] = str(camera.get("serial_number", ""))[:6].encode("ascii")
    record["scene_camera_matrix"] = np.asarray(camera["camera_matrix"], dtype=np.float64)
    record["scene_distortion_coefficients"] = np.ravel(distortion_of(camera))
    for eye in ("scene", "right", "left"):
        record[f"{eye}_extrinsics_affine_matrix"] = np.eye(4)
    return record
