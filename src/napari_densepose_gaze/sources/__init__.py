"""The recordings this plugin reads, and which of them a folder is.

A Pupil Cloud "Timeseries Data + Scene Video" recording folder is read by
:mod:`napari_densepose_gaze.recording` itself; the other sources each have a
module here with ``NAME``, ``matches(folder)`` and ``read(...)`` returning
:class:`~.parts.RecordingParts`:

- :mod:`.neon_player`: a Neon Player export (``export_info.csv`` with ``gaze.csv``)
- :mod:`.pupil_core`: a Pupil Player export of a Pupil Core recording
  (``export_info.csv`` with ``gaze_positions.csv``)
- :mod:`.native_neon`: the folder the Neon Companion app records (``info.json``
  with ``Neon Scene Camera v1 ps1.mp4`` or ``gaze ps1.raw``)
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from . import native_neon, neon_player, pupil_core
from .parts import (
    DEFAULT_MIN_CONFIDENCE,
    NATIVE_NEON,
    NEON_PLAYER,
    PUPIL_CLOUD,
    PUPIL_CORE,
    SOURCE_NAMES,
    ReadOptions,
    RecordingParts,
)

__all__ = [
    "SOURCES",
    "MARKER_FILES",
    "SOURCE_NAMES",
    "PUPIL_CLOUD",
    "NEON_PLAYER",
    "NATIVE_NEON",
    "PUPIL_CORE",
    "DEFAULT_MIN_CONFIDENCE",
    "ReadOptions",
    "RecordingParts",
    "source_of",
    "is_raw_recording",
    "no_recording_hint",
]

#: The sources besides Pupil Cloud, most specific first: a Neon Player export also holds an info.json.
SOURCES: tuple[ModuleType, ...] = (neon_player, pupil_core, native_neon)

#: Files that mark a folder as one of these sources' (or as a Pupil Core recording to look into).
MARKER_FILES = (
    neon_player.EXPORT_INFO,
    pupil_core.GAZE_POSITIONS.filename,
    pupil_core.RECORDING_INFO,
    "calibration.bin",
    "gaze_200hz.raw",
    "gaze ps1.raw",
    f"{native_neon.SCENE_VIDEO} ps1.mp4",
)


def source_of(folder: Path) -> ModuleType | None:
    """The source module that reads ``folder``, or None (a Pupil Cloud recording, or no recording)."""
    return next((source for source in SOURCES if source.matches(folder)), None)


def is_raw_recording(folder: Path) -> bool:
    """True for a folder that is no recording itself but holds them in exports/ (a Pupil Core recording)."""
    return pupil_core.is_raw_recording(folder)


def no_recording_hint(folder: Path) -> str | None:
    """What to do with a folder that holds no recording but is a known source's (None if nothing specific)."""
    return pupil_core.raw_recording_hint(folder)
