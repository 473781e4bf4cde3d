"""npe2 reader: a Pupil Cloud recording as a scene video, gaze points and fixations.

napari hands this reader every folder and every ``.mp4``. It answers None
("not mine") only for paths that are plainly no recording, so napari's own
readers still get them; for a recording with a problem it raises
:class:`~napari_densepose_gaze.errors.DensePoseGazeError`, whose message napari
shows to the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import napari
from napari.utils.notifications import show_warning

from ..errors import DensePoseGazeError
from ..gaze import fixations_to_frames, per_frame_gaze
from ..recording import Recording
from ..store import ResultsStore
from .recording_layers import recording_metadata, remember_recording
from .result_layers import result_layer_data, track_result_layers

LayerData = tuple[Any, dict[str, Any], str]
PathOrPaths = str | Sequence[str]

# Files that only a Pupil Cloud recording folder or export root holds. A folder
# with none of them is not ours, even if it holds an .mp4.
RECORDING_MARKERS = (
    "world_timestamps.csv",
    "gaze.csv",
    "fixations.csv",
    "info.json",
    "events.csv",
    "scene_camera.json",
)
EXPORT_MARKERS = ("enrichment_info.txt", "sections.csv")

GAZE_COLOR = "#ff2d55"  # a saturated red-pink that stays visible on skin, cloth and walls
FIXATION_COLOR = "#00e5ff"


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """The reader function for a recording folder, its .mp4 or an export root; else None."""
    if not isinstance(path, str | Path):
        if len(path) != 1:
            return None  # a stack of several paths is never one recording
        path = path[0]
    if not _looks_like_recording_or_export(Path(path)):
        return None
    return read_recording


def read_recording(path: PathOrPaths) -> list[LayerData]:
    """Layers of the recording at ``path``: scene video, fixations and gaze (top)."""
    if not isinstance(path, str | Path):
        path = path[0]
    # Recording.open resolves a video to its folder and an export root to its one
    # recording, and raises DensePoseGazeError naming the recordings when there are several
    recording = Recording.open(path)
    remember_recording(recording)
    return recording_layer_data(recording) + _result_layers(recording)


def _result_layers(recording: Recording) -> list[LayerData]:
    """The "body parts" and "persons" layers when the recording already has results beside it."""
    folder = ResultsStore.default_folder(recording.folder)
    if not folder.is_dir():
        return []
    try:
        store = ResultsStore.open(folder, mode="r")
    except DensePoseGazeError as exc:  # the recording still opens; say why its results do not
        show_warning(f"Results beside {recording.name} were not opened: {exc}")
        return []
    viewer = napari.current_viewer()
    if viewer is not None:
        # Once the layers exist, their edits must reach the store (a reader can only return data).
        track_result_layers(viewer)
    return result_layer_data(store, recording.folder)


def recording_layer_data(recording: Recording) -> list[LayerData]:
    """napari layer data tuples for an opened recording."""
    width, height = recording.frame_size
    n_frames = len(recording.frame_timestamps)
    return [
        _scene_video(recording),
        _fixation_points(recording, n_frames, width, height),
        _gaze_points(recording, width, height),
    ]


def _looks_like_recording_or_export(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".mp4" and _has_any(path.parent, RECORDING_MARKERS)
    if path.is_dir():
        if _has_any(path, RECORDING_MARKERS + EXPORT_MARKERS):
            return True
        # an export root holds recording folders; an unzipped download may wrap it in one more folder
        for child in _subfolders(path):
            if _has_any(child, RECORDING_MARKERS + EXPORT_MARKERS):
                return True
            if any(_has_any(grandchild, RECORDING_MARKERS) for grandchild in _subfolders(child)):
                return True
    return False


def _has_any(folder: Path, names: Sequence[str]) -> bool:
    return any((folder / name).is_file() for name in names)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:  # unreadable: not ours to judge
        return []


def _marker_size(width: int, height: int, fraction: float) -> float:
    return max(6.0, fraction * max(width, height))


def _scene_video(recording: Recording) -> LayerData:
    kwargs = {
        "name": "scene video",
        "rgb": True,
        "metadata": recording_metadata(recording.folder, "scene video"),
    }
    return recording.video(), kwargs, "image"


def _gaze_points(recording: Recording, width: int, height: int) -> LayerData:
    per_frame = per_frame_gaze(recording)
    valid = per_frame[(per_frame["valid samples"] > 0) & per_frame["gaze x [px]"].notna()]
    data = np.column_stack(
        [valid["frame"].to_numpy(np.float64), valid["gaze y [px]"].to_numpy(), valid["gaze x [px]"].to_numpy()]
    ).reshape(-1, 3)
    features = pd.DataFrame(
        {
            "timestamp [ns]": valid["timestamp [ns]"].to_numpy(np.int64),
            # nullable integers: a frame outside any fixation has <NA>, as the export's empty cell
            "fixation id": pd.array(valid["fixation id"], dtype="Int64"),
            "samples": valid["valid samples"].to_numpy(np.int64),
        }
    )
    kwargs = {
        "name": "gaze",
        "features": features,
        "size": _marker_size(width, height, 0.05),
        "symbol": "ring",
        "face_color": GAZE_COLOR,
        "border_width": 0,
        "out_of_slice_display": False,
        "metadata": recording_metadata(recording.folder, "gaze"),
    }
    return data, kwargs, "points"


def _fixation_points(recording: Recording, n_frames: int, width: int, height: int) -> LayerData:
    """One point per frame that a fixation spans.

    A fixation lasts a few hundred ms (many frames); marking only its start frame
    would make the marker flash for one frame while scrubbing. Shown on every
    frame it spans, the disk says "attention rests here now", beside the
    frame's own gaze ring.
    """
    columns = ["frame", "y", "x", "fixation id", "start timestamp [ns]", "duration [ms]"]
    fixations = fixations_to_frames(recording)
    x = fixations["fixation x [px]"].to_numpy(np.float64)
    y = fixations["fixation y [px]"].to_numpy(np.float64)
    first = fixations["start frame"].to_numpy(np.int64)
    last = fixations["end frame"].to_numpy(np.int64)
    # drop fixations without a position or wholly outside the video; clip those that straddle its ends
    keep = ~np.isnan(x) & ~np.isnan(y) & ((first >= 0) | (last >= 0))
    first = np.where(first < 0, 0, first)
    last = np.where(last < 0, n_frames - 1, last)
    keep &= last >= first
    spans = (last - first + 1)[keep]
    starts = first[keep]
    frames = np.repeat(starts, spans) + (np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans))
    kept = fixations[keep]
    table = pd.DataFrame(
        {
            "frame": frames,
            "y": np.repeat(y[keep], spans),
            "x": np.repeat(x[keep], spans),
            "fixation id": np.repeat(kept["fixation id"].to_numpy(np.int64), spans),
            "start timestamp [ns]": np.repeat(kept["start timestamp [ns]"].to_numpy(np.int64), spans),
            "duration [ms]": np.repeat(kept["duration [ms]"].to_numpy(np.float64), spans),
        },
        columns=columns,
    )
    data = table[["frame", "y", "x"]].to_numpy(np.float64).reshape(-1, 3)
    kwargs = {
        "name": "fixations",
        "features": table[["fixation id", "start timestamp [ns]", "duration [ms]"]],
        "size": _marker_size(width, height, 0.035),
        "symbol": "disc",
        "face_color": FIXATION_COLOR + "80",  # half transparent: the body part under it stays visible
        "border_color": FIXATION_COLOR,
        "border_width": 0.1,
        "opacity": 0.9,
        "out_of_slice_display": False,
        "metadata": recording_metadata(recording.folder, "fixations"),
    }
    return data, kwargs, "points"
