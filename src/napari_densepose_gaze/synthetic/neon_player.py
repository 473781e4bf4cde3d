"""Write a synthetic Neon Player export: the layout of Neon Player's "Export All" (see sources/neon_player.py).

The recording is a synthetic Pupil Cloud recording (:func:`.export.write_recording`)
written again as Neon Player writes it: Cloud's column names without ``section
id`` and in Neon Player's orders, frame times as float64 text, ``world.mp4``
(and with ``raw_scene`` the scene renderer's ``scene.mp4``), ``calibration.json``
and ``export_info.csv``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .cloud_tables import CloudTables, read_cloud_tables, write_cloud_recording
from .export import distortion_of

__all__ = ["write_neon_player_export", "neon_player_export_from"]

_GAZE_COLUMNS = ["recording id", "timestamp [ns]", "gaze x [px]", "gaze y [px]", "azimuth [deg]",
                 "elevation [deg]", "worn", "fixation id", "blink id"]
_FIXATION_COLUMNS = ["recording id", "fixation id", "start timestamp [ns]", "end timestamp [ns]", "duration [ms]",
                     "fixation x [px]", "fixation y [px]", "azimuth [deg]", "elevation [deg]"]
_SACCADE_COLUMNS = ["recording id", "saccade id", "start timestamp [ns]", "end timestamp [ns]", "duration [ms]",
                    "amplitude [deg]", "mean velocity [px/s]", "peak velocity [px/s]"]
_BLINK_COLUMNS = ["recording id", "blink id", "start timestamp [ns]", "end timestamp [ns]", "duration [ms]"]


def write_neon_player_export(folder: str | Path, *, raw_scene: bool = False, **write_recording_kwargs) -> Path:
    """Write a Neon Player export folder ``<start time>_export`` into ``folder``; return its path.

    ``write_recording_kwargs`` go to :func:`.export.write_recording` (size,
    seconds, seed, ...); ``raw_scene`` adds ``scene.mp4`` and its timestamps.
    """
    with tempfile.TemporaryDirectory() as scratch:
        cloud = write_cloud_recording(Path(scratch), **write_recording_kwargs)
        return neon_player_export_from(cloud, folder, raw_scene=raw_scene)


def neon_player_export_from(cloud: CloudTables | str | Path, folder: str | Path, *, raw_scene: bool = False) -> Path:
    """The Pupil Cloud recording ``cloud`` written as a Neon Player export into ``folder``; return its path."""
    if not isinstance(cloud, CloudTables):
        cloud = read_cloud_tables(cloud)
    start = pd.Timestamp(int(cloud.info["start_time"]), unit="ns", tz="UTC")
    out = Path(folder) / f"{start.strftime('%Y-%m-%d_%H-%M-%S')}_export"
    out.mkdir(parents=True, exist_ok=True)

    world_ts = cloud.world["timestamp [ns]"].to_numpy(dtype=np.int64)
    recording_id = cloud.info["recording_id"]
    videos = ["world"] + (["scene"] if raw_scene else [])
    for stem in videos:
        shutil.copyfile(cloud.video, out / f"{stem}.mp4")
        # Neon Player's frame times are float64 (it pads them with numpy float ranges): ~17 digits of text
        times = pd.DataFrame({"recording id": recording_id, "timestamp [ns]": [repr(float(t)) for t in world_ts]})
        times.to_csv(out / f"{stem}_timestamps.csv", index=False)

    gaze = cloud.gaze.copy()
    gaze["worn"] = gaze["worn"].astype(np.float64)
    gaze[_GAZE_COLUMNS].to_csv(out / "gaze.csv", index=False)
    cloud.fixations[_FIXATION_COLUMNS].to_csv(out / "fixations.csv", index=False)
    cloud.saccades[_SACCADE_COLUMNS].to_csv(out / "saccades.csv", index=False)
    cloud.blinks[_BLINK_COLUMNS].to_csv(out / "blinks.csv", index=False)
    events = cloud.events[["recording id", "timestamp [ns]", "name"]].copy()
    events["type"] = np.where(events["name"].str.startswith("recording."), "recording", "player")
    events.to_csv(out / "events.csv", index=False)

    (out / "info.json").write_text(json.dumps(cloud.info, indent=4, sort_keys=True), encoding="utf-8")
    camera = cloud.scene_camera
    calibration = {
        "version": 1,
        "serial": str(camera.get("serial_number", ""))[:6],
        "scene_camera_matrix": camera["camera_matrix"],
        "scene_distortion_coefficients": np.ravel(distortion_of(camera)).tolist(),
        "scene_extrinsics_affine_matrix": np.eye(4).tolist(),
        "crc": 0,
    }
    (out / "calibration.json").write_text(json.dumps(calibration), encoding="utf-8")
    first, last = int(world_ts[0]), int(world_ts[-1])
    (out / "export_info.csv").write_text(
        "key,value\nPlayer Software Version,5.0.0\nExport Date,14.11.2023\nExport Time,22:30:00\n"
        f"Frame Index Range,0 - {len(world_ts) - 1}\nRelative Time Range,00:00.000 - 00:03.000\n"
        f"Absolute Time Range,{first} - {last}\n",
        encoding="utf-8",
    )
    return out
