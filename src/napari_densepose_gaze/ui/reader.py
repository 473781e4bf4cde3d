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

import napari
import numpy as np
import pandas as pd
from napari.utils.notifications import show_warning

from ..errors import DensePoseGazeError
from ..recording import Recording, looks_like_recording_or_export
from .layer_roles import FIXATIONS, GAZE, SCENE_VIDEO, layer_metadata
from .result_layers import LayerData, result_layer_data
from .session import RecordingSession, open_session
from .viewer_setup import prepare_viewer

PathOrPaths = str | Sequence[str]

GAZE_COLOR = "#ff2d55"  # a saturated red-pink that stays visible on skin, cloth and walls
FIXATION_COLOR = "#00e5ff"


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """The reader function for a recording folder, its .mp4 or an export root; else None."""
    if not isinstance(path, str | Path):
        if len(path) != 1:
            return None  # a stack of several paths is never one recording
        path = path[0]
    if not looks_like_recording_or_export(Path(path)):
        return None
    return read_recording


def read_recording(path: PathOrPaths) -> list[LayerData]:
    """Layers of the recording at ``path``: scene video, fixations and gaze (top)."""
    if not isinstance(path, str | Path):
        path = path[0]
    # a video resolves to its folder and an export root to its one recording; several raise
    # DensePoseGazeError naming them
    session = open_session(path)
    viewer = napari.current_viewer()
    if viewer is not None:
        # a reader can only return data: the viewer is watched so the layers join the session when made
        prepare_viewer(viewer)
    return recording_layer_data(session.recording) + _result_layers(session)


def _result_layers(session: RecordingSession) -> list[LayerData]:
    """The "body parts" and "persons" layers when the recording already has results beside it."""
    try:
        return result_layer_data(session)
    except DensePoseGazeError as exc:  # the recording still opens; say why its results do not
        show_warning(f"Results beside {session.recording.name} were not opened: {exc}")
        return []


def recording_layer_data(recording: Recording) -> list[LayerData]:
    """napari layer data tuples for an opened recording."""
    width, height = recording.frame_size
    n_frames = len(recording.frame_timestamps)
    return [
        _scene_video(recording),
        _fixation_points(recording, n_frames, width, height),
        _gaze_points(recording, width, height),
    ]


def _marker_size(width: int, height: int, fraction: float) -> float:
    return max(6.0, fraction * max(width, height))


def _scene_video(recording: Recording) -> LayerData:
    kwargs = {
        "name": SCENE_VIDEO,
        "rgb": True,
        "metadata": layer_metadata(recording.folder, SCENE_VIDEO),
    }
    return recording.video(), kwargs, "image"


def _gaze_points(recording: Recording, width: int, height: int) -> LayerData:
    per_frame = recording.per_frame_gaze()
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
        "name": GAZE,
        "features": features,
        "size": _marker_size(width, height, 0.05),
        "symbol": "ring",
        "face_color": GAZE_COLOR,
        "border_width": 0,
        "out_of_slice_display": False,
        "metadata": layer_metadata(recording.folder, GAZE),
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
    fixations = recording.fixation_frames()
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
        "name": FIXATIONS,
        "features": table[["fixation id", "start timestamp [ns]", "duration [ms]"]],
        "size": _marker_size(width, height, 0.035),
        "symbol": "disc",
        "face_color": FIXATION_COLOR + "80",  # half transparent: the body part under it stays visible
        "border_color": FIXATION_COLOR,
        "border_width": 0.1,
        "opacity": 0.9,
        "out_of_slice_display": False,
        "metadata": layer_metadata(recording.folder, FIXATIONS),
    }
    return data, kwargs, "points"
