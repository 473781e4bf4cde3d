"""What every source reads from its folder, in one shape: the parts a Recording is built from.

Each source (Pupil Cloud, Neon Player, native Neon, Pupil Player) reads its
own layout into :class:`RecordingParts`: tables with Pupil Cloud's column names
(:mod:`napari_densepose_gaze.tables`), times as int64 nanoseconds, gaze in
pixels of the scene video. :meth:`~napari_densepose_gaze.recording.Recording.open`
then does what is the same for all of them (sorting, duplicates, frame order,
video length), so everything downstream sees one recording model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DensePoseGazeError
from ..tables import FLOAT, INT, NULLABLE_INT, TableSpec

__all__ = [
    "PUPIL_CLOUD",
    "NEON_PLAYER",
    "NATIVE_NEON",
    "PUPIL_CORE",
    "SOURCE_NAMES",
    "DEFAULT_MIN_CONFIDENCE",
    "ReadOptions",
    "RecordingParts",
    "conform",
    "ids_by_interval",
    "seconds_to_ns",
]

# The names a recording's source goes by (Recording.source), as the info widget and command line show them.
PUPIL_CLOUD = "pupil cloud"
NEON_PLAYER = "neon player"
NATIVE_NEON = "native neon"
PUPIL_CORE = "pupil core"
SOURCE_NAMES = (PUPIL_CLOUD, NEON_PLAYER, NATIVE_NEON, PUPIL_CORE)

#: Pupil Player's default minimum data confidence: gaze below it is not shown or exported as valid there.
DEFAULT_MIN_CONFIDENCE = 0.6

@dataclass(frozen=True)
class ReadOptions:
    """Choices a user can make about how a recording is read."""

    # gaze with a lower confidence (Pupil Core) counts as not worn
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def __post_init__(self) -> None:
        if not (isinstance(self.min_confidence, int | float) and 0.0 <= self.min_confidence <= 1.0):
            raise DensePoseGazeError(
                f"The minimum gaze confidence must be a number from 0 to 1, not {self.min_confidence!r} "
                f"(Pupil Player's default is {DEFAULT_MIN_CONFIDENCE})."
            )


@dataclass(eq=False)
class RecordingParts:
    """A recording as one source read it, before the steps every source shares.

    ``files`` names the file each table came from (table name -> path), so
    that notes about a table name the file the user has.
    """

    source: str
    video_path: Path
    frame_timestamps: np.ndarray  # int64 ns, one per row of the timestamps file
    timestamps_file: Path
    gaze: pd.DataFrame
    fixations: pd.DataFrame
    saccades: pd.DataFrame
    blinks: pd.DataFrame
    events: pd.DataFrame
    info: dict
    scene_camera: dict | None
    files: dict[str, Path] = field(default_factory=dict)
    name: str | None = None  # None: the folder's name
    reader: object = None  # the VideoReader, when the source had to open the video already


def conform(spec: TableSpec, columns: Mapping[str, object], n: int) -> pd.DataFrame:
    """A table with ``spec``'s columns in its order and kinds, from ``columns`` (name -> n values).

    Columns the source does not have get ``spec``'s default (like an older
    export's missing optional columns); extra columns follow, as given.
    """
    out: dict[str, pd.Series] = {}
    for col in spec.columns:
        values = columns.get(col.name)
        if values is None:
            out[col.name] = _filled(col.kind, col.default, n)
        elif col.kind == INT:
            out[col.name] = pd.Series(np.asarray(values, dtype=np.int64))
        elif col.kind == NULLABLE_INT:
            out[col.name] = pd.Series(pd.array(values, dtype="Int64"))
        elif col.kind == FLOAT:
            out[col.name] = pd.Series(np.asarray(values, dtype=np.float64))
        else:
            out[col.name] = pd.Series(list(values) if not isinstance(values, str) else [values] * n, dtype=object)
    for name, values in columns.items():
        if name not in out:
            out[name] = pd.Series(values)
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def _filled(kind: str, default: object, n: int) -> pd.Series:
    if kind == FLOAT:
        return pd.Series(np.full(n, np.nan if default is None else float(default), dtype=np.float64))
    if kind in (INT, NULLABLE_INT):
        return pd.Series(pd.array([pd.NA] * n, dtype="Int64"))
    return pd.Series([default] * n, dtype=object)


def ids_by_interval(ts: np.ndarray, starts: np.ndarray, ends: np.ndarray, ids: np.ndarray) -> pd.arrays.IntegerArray:
    """For each time in ``ts``, the id of the interval ``[starts[k], ends[k]]`` holding it (missing if none).

    For sources whose gaze does not name its fixation or blink, as Pupil
    Cloud's gaze.csv does. Intervals of one kind do not overlap; where they
    would, the latest-starting one wins.
    """
    ts = np.asarray(ts, dtype=np.int64)
    result = pd.array([pd.NA] * len(ts), dtype="Int64")
    if len(starts) == 0:
        return result
    order = np.argsort(starts, kind="stable")
    starts = np.asarray(starts, dtype=np.int64)[order]
    ends = np.asarray(ends, dtype=np.int64)[order]
    ids = np.asarray(ids, dtype=np.int64)[order]
    pos = np.searchsorted(starts, ts, side="right") - 1
    inside = pos >= 0
    inside[inside] = ts[inside] <= ends[pos[inside]]
    result[inside] = ids[pos[inside]]
    return result


def seconds_to_ns(seconds: np.ndarray, offset_ns: int = 0) -> np.ndarray:
    """Times in (float) seconds as int64 ns, plus ``offset_ns`` added exactly (after rounding)."""
    seconds = np.asarray(seconds, dtype=np.float64)
    return np.round(seconds * 1e9).astype(np.int64) + np.int64(offset_ns)
