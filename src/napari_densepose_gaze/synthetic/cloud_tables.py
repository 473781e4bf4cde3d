"""The tables of a synthetic Pupil Cloud recording, for writing the same recording in another layout.

The other layouts (:mod:`.neon_player`, :mod:`.native_neon`, :mod:`.pupil_core`)
are written from a recording that :func:`.export.write_recording` made, so a test
can check that every source reads into the same Recording. The files are read
here with plain pandas, not with the package's reader under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .export import write_recording

__all__ = ["CloudTables", "read_cloud_tables", "write_cloud_recording"]

_ID_COLUMNS = ("fixation id", "blink id")


@dataclass
class CloudTables:
    """What a synthetic Pupil Cloud recording folder holds."""

    folder: Path
    video: Path
    world: pd.DataFrame
    gaze: pd.DataFrame
    fixations: pd.DataFrame
    saccades: pd.DataFrame
    blinks: pd.DataFrame
    events: pd.DataFrame
    info: dict
    scene_camera: dict
    wearer_name: str


def read_cloud_tables(folder: str | Path) -> CloudTables:
    """The tables of a recording folder written by :func:`.export.write_recording` without deviations."""
    folder = Path(folder)

    def table(name: str) -> pd.DataFrame:
        frame = pd.read_csv(folder / name)
        for column in _ID_COLUMNS:
            if column in frame and name == "gaze.csv":
                frame[column] = frame[column].astype("Int64")
        return frame

    info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    return CloudTables(
        folder=folder,
        video=next(folder.glob("*.mp4")),
        world=table("world_timestamps.csv"),
        gaze=table("gaze.csv"),
        fixations=table("fixations.csv"),
        saccades=table("saccades.csv"),
        blinks=table("blinks.csv"),
        events=table("events.csv"),
        info=info,
        scene_camera=json.loads((folder / "scene_camera.json").read_text(encoding="utf-8")),
        wearer_name=info.get("wearer_name", ""),
    )


def write_cloud_recording(scratch: Path, **write_recording_kwargs) -> CloudTables:
    """Write a Pupil Cloud recording into ``scratch`` and read its tables back."""
    return read_cloud_tables(write_recording(scratch, **write_recording_kwargs))
