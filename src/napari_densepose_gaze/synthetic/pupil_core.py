"""Write a synthetic Pupil Core recording with a Pupil Player export (see sources/pupil_core.py).

The content is a synthetic Pupil Cloud recording (:func:`.export.write_recording`)
written again as Pupil Capture and Pupil Player write theirs: a recording folder
with ``info.player.json`` and ``world.mp4``, and ``exports/000/`` with the
video, its timestamps in Pupil time (seconds), ``gaze_positions.csv`` with
normalised positions and a confidence instead of ``worn``, ``fixations.csv``,
``blinks.csv`` and ``annotations.csv``.
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

__all__ = ["PUPIL_TIME_START_S", "HIGH_CONFIDENCE", "LOW_CONFIDENCE", "write_pupil_core_recording",
           "pupil_core_recording_from"]

PUPIL_TIME_START_S = 4321.0  # Pupil time at the recording's start: seconds on the recording computer's clock
HIGH_CONFIDENCE = 0.97  # worn samples
LOW_CONFIDENCE = 0.3  # the glasses-off stretch: below Pupil Player's default minimum of 0.6


def write_pupil_core_recording(folder: str | Path, *, intrinsics: bool = False, **write_recording_kwargs) -> Path:
    """Write a Pupil Core recording with one export into ``folder``; return the export folder (exports/000).

    ``intrinsics`` writes the recording's ``world.intrinsics`` (needs the
    msgpack package); ``write_recording_kwargs`` go to :func:`.export.write_recording`.
    """
    with tempfile.TemporaryDirectory() as scratch:
        cloud = write_cloud_recording(Path(scratch), **write_recording_kwargs)
        return pupil_core_recording_from(cloud, folder, intrinsics=intrinsics)


def pupil_core_recording_from(cloud: CloudTables | str | Path, folder: str | Path, *,
                              intrinsics: bool = False) -> Path:
    """The Pupil Cloud recording ``cloud`` written as a Pupil Core recording into ``folder``; return its export."""
    if not isinstance(cloud, CloudTables):
        cloud = read_cloud_tables(cloud)
    start_ns = int(cloud.info["start_time"])
    root = Path(folder) / cloud.folder.name
    export = root / "exports" / "000"
    export.mkdir(parents=True, exist_ok=True)

    def pupil_time(ns) -> np.ndarray:
        return PUPIL_TIME_START_S + (np.asarray(ns, dtype=np.int64) - start_ns) / 1e9

    (root / "info.player.json").write_text(json.dumps({
        "duration_s": int(cloud.info["duration"]) / 1e9,
        "meta_version": "2.3",
        "min_player_version": "2.0",
        "recording_name": cloud.folder.name,
        "recording_software_name": "Pupil Capture",
        "recording_software_version": "3.5.1",
        "recording_uuid": cloud.info["recording_id"],
        "start_time_synced_s": PUPIL_TIME_START_S,
        "start_time_system_s": start_ns / 1e9,
        "system_info": "synthetic",
    }, indent=4), encoding="utf-8")
    frame_s = pupil_time(cloud.world["timestamp [ns]"])
    for place in (root, export):
        shutil.copyfile(cloud.video, place / "world.mp4")
        np.save(place / "world_timestamps.npy", frame_s)
    np.savetxt(export / "world_timestamps.csv", np.column_stack([frame_s, np.arange(len(frame_s))]),
               fmt=["%f", "%i"], delimiter=",", header="timestamps [seconds],pts")
    width, height = _video_size(cloud.video)

    gaze = cloud.gaze
    gaze_s = pupil_time(gaze["timestamp [ns]"])
    pd.DataFrame({
        "gaze_timestamp": gaze_s,
        "world_index": np.clip(np.searchsorted(frame_s, gaze_s, side="right") - 1, 0, None),
        "confidence": np.where(gaze["worn"] > 0.5, HIGH_CONFIDENCE, LOW_CONFIDENCE),
        "norm_pos_x": gaze["gaze x [px]"] / width,
        "norm_pos_y": 1.0 - gaze["gaze y [px]"] / height,
        "base_data": "",
        "gaze_point_3d_x": "", "gaze_point_3d_y": "", "gaze_point_3d_z": "",
    }).to_csv(export / "gaze_positions.csv", index=False)

    fix = cloud.fixations
    pd.DataFrame({
        "id": fix["fixation id"],
        "start_timestamp": pupil_time(fix["start timestamp [ns]"]),
        "duration": (fix["end timestamp [ns]"] - fix["start timestamp [ns]"]) / 1e6,
        "start_frame_index": 0, "end_frame_index": 0,
        "norm_pos_x": fix["fixation x [px]"] / width,
        "norm_pos_y": 1.0 - fix["fixation y [px]"] / height,
        "dispersion": 1.0, "confidence": HIGH_CONFIDENCE, "method": "2d gaze",
        "gaze_point_3d_x": "", "gaze_point_3d_y": "", "gaze_point_3d_z": "", "base_data": "",
    }).to_csv(export / "fixations.csv", index=False)

    blinks = cloud.blinks
    pd.DataFrame({
        "id": blinks["blink id"],
        "start_timestamp": pupil_time(blinks["start timestamp [ns]"]),
        "duration": (blinks["end timestamp [ns]"] - blinks["start timestamp [ns]"]) / 1e9,
        "end_timestamp": pupil_time(blinks["end timestamp [ns]"]),
        "start_frame_index": 0, "index": 0, "end_frame_index": 0,
        "confidence": HIGH_CONFIDENCE, "filter_response": "", "base_data": "",
    }).to_csv(export / "blinks.csv", index=False)

    events = cloud.events
    pd.DataFrame({"index": 0, "timestamp": pupil_time(events["timestamp [ns]"]), "label": events["name"],
                  "duration": 0.0}).to_csv(export / "annotations.csv", index=False)
    (export / "export_info.csv").write_text(
        "key,value\nPlayer Software Version,3.5.1\nData Format Version,2.0\nExport Date,14.11.2023\n"
        f"Export Time,22:30:00\nFrame Index Range:,0 - {len(frame_s) - 1}\n", encoding="utf-8")
    if intrinsics:
        _write_intrinsics(root / "world.intrinsics", cloud.scene_camera, (width, height))
    return export


def _video_size(video: Path) -> tuple[int, int]:
    from ..video import VideoReader

    with VideoReader(video) as reader:
        _, height, width, _ = reader.shape
    return int(width), int(height)


def _write_intrinsics(path: Path, camera: dict, size: tuple[int, int]) -> None:
    import msgpack  # Pupil writes its intrinsics with msgpack

    path.write_bytes(msgpack.packb({
        "version": 1,
        str(tuple(size)): {"camera_matrix": camera["camera_matrix"], "dist_coefs": distortion_of(camera),
                           "resolution": list(size), "cam_type": "radial"},
    }))
