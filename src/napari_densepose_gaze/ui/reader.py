"""npe2 reader: a Pupil Cloud recording as a scene video, gaze points and fixations.

napari hands this reader every folder and every ``.mp4``. It answers None
("not mine") only for paths that are plainly no recording (a folder of
images, a zarr store, a lone video), so napari's own readers still get them;
for a recording with a problem it raises
:class:`~napari_densepose_gaze.errors.DensePoseGazeError`, whose message napari
shows to the user. A folder of tables that is no recording is told which
files a recording has (:data:`EXPECTED_FILES`). An export root with several
recordings asks which to open (:mod:`.recording_chooser`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import napari
import numpy as np
import pandas as pd
from napari.utils.notifications import show_warning

from ..errors import DensePoseGazeError
from ..recording import EXPECTED_FILES, Recording, find_recordings, is_recording_folder, looks_like_recording_or_export
from .layer_roles import FIXATIONS, GAZE, SCENE_VIDEO, layer_metadata, layer_name
from .recording_chooser import choose_recordings
from .result_layers import LayerData, result_layer_data
from .session import RecordingSession, open_session
from .viewer_setup import prepare_viewer

PathOrPaths = str | Sequence[str]

# files of data a user may take for a recording; folders of images and zarr stores are napari's own
_TABLE_SUFFIXES = (".csv", ".json", ".raw", ".time", ".txt")
_ZARR_FILES = ("zarr.json", ".zarray", ".zgroup")

GAZE_COLOR = "#ff2d55"  # a saturated red-pink that stays visible on skin, cloth and walls
FIXATION_COLOR = "#00e5ff"


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """The reader function for a recording folder, its .mp4 or an export root; else None."""
    if not isinstance(path, str | Path):
        if len(path) != 1:
            return None  # a stack of several paths is never one recording
        path = path[0]
    if looks_like_recording_or_export(Path(path)):
        return read_recording
    if _holds_tables(Path(path)):
        return refuse_no_recording
    return None


def not_a_recording_message(path: Path) -> str:
    """What a folder that is no recording lacks, and what to pick instead."""
    return (f"{path} is no recording: a recording folder holds one of {', '.join(EXPECTED_FILES)} (and its scene "
            "video), and an export root holds such folders. Pick the unzipped Pupil Cloud 'Timeseries Data + "
            "Scene Video' export, one recording folder in it, or a Neon Player, Pupil Player or Neon app folder.")


def refuse_no_recording(path: PathOrPaths) -> list[LayerData]:
    """The reader of a folder of tables that is no recording: says which files were expected."""
    raise DensePoseGazeError(not_a_recording_message(Path(path if isinstance(path, str | Path) else path[0])))


def _holds_tables(path: Path) -> bool:
    if not path.is_dir() or any((path / name).exists() for name in _ZARR_FILES):
        return False
    try:
        return any(p.suffix.lower() in _TABLE_SUFFIXES and p.is_file() for p in path.iterdir())
    except OSError:
        return False


def read_recording(path: PathOrPaths) -> list[LayerData]:
    """Layers of the recording at ``path``: scene video, fixations and gaze (top)."""
    if not isinstance(path, str | Path):
        path = path[0]
    viewer = napari.current_viewer()
    if viewer is not None:
        # a reader can only return data: the viewer is watched so the layers join the session when made
        prepare_viewer(viewer)
    layers: list[LayerData] = []
    for folder in _recordings_to_open(Path(path)):
        # a video resolves to its folder, an export root to its one recording
        session = open_session(folder)
        layers += recording_layer_data(session.recording) + _result_layers(session)
    return layers


def _recordings_to_open(path: Path) -> list[Path]:
    """``[path]``, or the recordings of an export root the user picks when it holds several."""
    if path.is_file() or is_recording_folder(path):
        return [path]
    recordings = find_recordings(path)
    return choose_recordings(path, recordings) if len(recordings) > 1 else [path]


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
        "name": layer_name(SCENE_VIDEO, recording.name),
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
        "name": layer_name(GAZE, recording.name),
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
        "name": layer_name(FIXATIONS, recording.name),
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
