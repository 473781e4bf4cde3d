"""One recording of a Pupil Cloud "Timeseries Data + Scene Video" export.

:meth:`Recording.open` accepts the recording folder, the .mp4 inside it, or an
export root holding exactly one recording; :func:`find_recordings` lists the
recordings under a path. Everything the reader had to work around is described
in ``Recording.warnings`` (and issued with :func:`warnings.warn`), so nothing
changes silently.
"""

from __future__ import annotations

import json
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DensePoseGazeError
from .gaze import frames_in_order
from .tables import BLINKS, EVENTS, FIXATIONS, GAZE, SACCADES, WORLD_TIMESTAMPS, TableSpec, read_table

__all__ = ["Recording", "ExportWarning", "find_recordings", "is_recording_folder"]

_MARKERS = ("world_timestamps.csv", "gaze.csv")  # with an .mp4, what makes a folder a recording
_EXPORT_ROOT_MARKERS = ("enrichment_info.txt", "sections.csv")  # never in a recording folder
_MAX_LISTED = 8  # frame indices quoted in a warning


class ExportWarning(UserWarning):
    """Something in an export differs from the format and was worked around."""


def is_recording_folder(path: Path) -> bool:
    """True if ``path`` is a folder holding a recording's files (any of them)."""
    path = Path(path)
    if not path.is_dir() or any((path / m).is_file() for m in _EXPORT_ROOT_MARKERS):
        return False
    if (path / "zarr.json").is_file():  # a results store (it may hold an overlay video) is never a recording
        return False
    return any((path / m).is_file() for m in _MARKERS) or any(_videos(path))


def find_recordings(path: str | Path) -> list[Path]:
    """Recording folders at ``path``: ``[path]`` for a recording folder, else those in it, sorted.

    An export root holds its recordings as subfolders; an unzipped download may
    wrap that root in one more folder, so two levels are searched.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DensePoseGazeError(f"{path} does not exist: pick a Pupil Cloud export or recording folder.")
    if path.is_file():
        path = path.parent
    if is_recording_folder(path):
        return [path]
    found: list[Path] = []
    for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if is_recording_folder(child):
            found.append(child)
        else:
            found.extend(sorted(g for g in child.iterdir() if is_recording_folder(g)))
    return found


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".mp4" and p.is_file()
                  and not p.name.startswith("."))


@dataclass(eq=False)  # DataFrames and arrays have no single truth value to compare
class Recording:
    """A recording's tables, frame timestamps and video, as read from its folder.

    ``frame_timestamps[i]`` is the time of video frame ``i`` (int64 ns), over the
    frames that both the video and ``world_timestamps.csv`` have.
    ``frame_in_order[i]`` is False where a frame's timestamp is not later than
    every earlier frame's: such frames keep their place but receive no gaze.
    """

    folder: Path
    name: str
    video_path: Path
    frame_timestamps: np.ndarray
    frame_in_order: np.ndarray
    gaze: pd.DataFrame
    fixations: pd.DataFrame
    saccades: pd.DataFrame
    blinks: pd.DataFrame
    events: pd.DataFrame
    info: dict
    scene_camera: dict | None
    frame_size: tuple[int, int]  # (width, height) of the scene video
    n_frames: int
    warnings: list[str] = field(default_factory=list)
    _reader: object = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path) -> Recording:
        """Read a recording from its folder, its .mp4, or an export root holding exactly one recording."""
        folder, video_path = _resolve(Path(path).expanduser())
        notes: list[str] = []
        if video_path is None:
            video_path = _pick_video(folder)
        world = _read_required(folder, WORLD_TIMESTAMPS, notes)
        gaze = _read_required(folder, GAZE, notes)
        fixations = _read_optional(folder, FIXATIONS, notes)
        saccades = _read_optional(folder, SACCADES, notes)
        blinks = _read_optional(folder, BLINKS, notes)
        events = _read_optional(folder, EVENTS, notes)
        info = _read_json(folder / "info.json", notes, required_keys=())
        scene_camera = _read_json(folder / "scene_camera.json", notes, required_keys=("camera_matrix",)) or None

        gaze = _clean_samples(gaze, "timestamp [ns]", folder / GAZE.filename, notes)
        fixations = _clean_samples(fixations, "start timestamp [ns]", folder / FIXATIONS.filename, notes)
        saccades = _clean_samples(saccades, "start timestamp [ns]", folder / SACCADES.filename, notes)
        blinks = _clean_samples(blinks, "start timestamp [ns]", folder / BLINKS.filename, notes)
        events = _clean_samples(events, "timestamp [ns]", folder / EVENTS.filename, notes)

        from .video import VideoReader  # PyAV loads only when a recording is opened

        reader = VideoReader(video_path)
        n_video, height, width, _ = reader.shape
        frame_ts = world["timestamp [ns]"].to_numpy(dtype=np.int64)
        n_frames = min(n_video, len(frame_ts))
        if n_video != len(frame_ts):
            notes.append(_count_mismatch(folder, video_path, n_video, len(frame_ts)))
        if n_frames == 0:
            raise DensePoseGazeError(
                f"{WORLD_TIMESTAMPS.filename} in {folder} has no rows: the recording has no frames to use. "
                "Download the export again."
            )
        frame_ts = frame_ts[:n_frames].copy()
        in_order = frames_in_order(frame_ts)
        if not in_order.all():
            notes.append(_out_of_order_note(folder, frame_ts, in_order))

        recording = cls(
            folder=folder,
            name=folder.name,
            video_path=video_path,
            frame_timestamps=frame_ts,
            frame_in_order=in_order,
            gaze=gaze,
            fixations=fixations,
            saccades=saccades,
            blinks=blinks,
            events=events,
            info=info,
            scene_camera=scene_camera,
            frame_size=(int(width), int(height)),
            n_frames=int(n_frames),
            warnings=notes,
            _reader=reader,
        )
        for note in notes:
            _warnings.warn(note, ExportWarning, stacklevel=2)
        return recording

    @property
    def recording_id(self) -> str | None:
        """The recording's id from info.json (None if it has none)."""
        value = self.info.get("recording_id")
        return str(value) if value else None

    def video(self):
        """The scene video as a lazy ``(n_frames, height, width, 3)`` uint8 array (frames decoded on access)."""
        if self._reader is None:
            from .video import VideoReader

            self._reader = VideoReader(self.video_path)
        return self._reader.lazy_array(self.n_frames)

    def video_reader(self):
        """The :class:`~napari_densepose_gaze.video.VideoReader` of the scene video (all its frames)."""
        self.video()
        return self._reader

    def __repr__(self) -> str:
        width, height = self.frame_size
        return (f"Recording({str(self.folder)!r}, frames={self.n_frames}, {width}x{height}, "
                f"gaze samples={len(self.gaze)}, warnings={len(self.warnings)})")


def _resolve(path: Path) -> tuple[Path, Path | None]:
    """The recording folder for ``path``, and the video if the user picked one."""
    if not path.exists():
        raise DensePoseGazeError(f"{path} does not exist: pick a Pupil Cloud recording folder or its .mp4 file.")
    if path.is_file() and path.suffix.lower() == ".zip":
        raise DensePoseGazeError(f"{path} is a zip archive: unzip it first, then pick the folder it gives.")
    if path.is_file():
        return path.parent, (path if path.suffix.lower() == ".mp4" else None)
    if is_recording_folder(path):
        return path, None
    recordings = find_recordings(path)
    if len(recordings) == 1:
        return recordings[0], None
    if not recordings:
        raise DensePoseGazeError(
            f"{path} holds no Pupil Cloud recording (no folder with world_timestamps.csv, gaze.csv "
            "or an .mp4). Pick the unzipped 'Timeseries Data + Scene Video' export or one recording folder in it."
        )
    listed = "\n  ".join(str(r) for r in recordings)
    raise DensePoseGazeError(
        f"{path} holds {len(recordings)} recordings; pick one of them:\n  {listed}\n"
        "(the command line can process them all)."
    )


def _pick_video(folder: Path) -> Path:
    videos = _videos(folder)
    if not videos:
        raise DensePoseGazeError(
            f"The scene video (.mp4) is missing from {folder}. Download the recording again "
            "with 'Timeseries Data + Scene Video'."
        )
    if len(videos) > 1:
        listed = ", ".join(v.name for v in videos)
        raise DensePoseGazeError(
            f"{folder} holds {len(videos)} .mp4 files ({listed}) where a recording has exactly one scene "
            "video: pick the scene video file itself, or remove the others."
        )
    return videos[0]


def _read_required(folder: Path, spec: TableSpec, notes: list[str]) -> pd.DataFrame:
    path = folder / spec.filename
    if not path.is_file():
        raise DensePoseGazeError(
            f"{spec.filename} is missing from {folder}; it is needed to match gaze to video frames. "
            "Download the recording again with 'Timeseries Data + Scene Video'."
        )
    result = read_table(path, spec)
    notes.extend(result.warnings)
    return result.table


def _read_optional(folder: Path, spec: TableSpec, notes: list[str]) -> pd.DataFrame:
    path = folder / spec.filename
    if not path.is_file():
        notes.append(f"{spec.filename} is missing from {folder}; continuing without it (the table is empty).")
        return spec.empty()
    result = read_table(path, spec)
    notes.extend(result.warnings)
    return result.table


def _read_json(path: Path, notes: list[str], required_keys: tuple[str, ...]) -> dict:
    if not path.is_file():
        notes.append(f"{path.name} is missing from {path.parent}; continuing without it.")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        notes.append(f"{path.name} in {path.parent} is not valid JSON ({exc}); continuing without it.")
        return {}
    if not isinstance(data, dict) or any(k not in data for k in required_keys):
        notes.append(f"{path.name} in {path.parent} lacks {', '.join(required_keys) or 'an object'}; ignored.")
        return {}
    return data


def _clean_samples(table: pd.DataFrame, time_column: str, path: Path, notes: list[str]) -> pd.DataFrame:
    """Drop exact duplicate rows and sort by time (stably), saying what was done."""
    n_before = len(table)
    table = table.drop_duplicates(ignore_index=True)
    if len(table) < n_before:
        notes.append(f"{path.name} in {path.parent}: dropped {n_before - len(table)} exact duplicate row(s).")
    ts = table[time_column].to_numpy(dtype=np.int64)
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        n_back = int(np.sum(np.diff(ts) < 0))
        table = table.sort_values(time_column, kind="stable", ignore_index=True)
        notes.append(
            f"{path.name} in {path.parent}: {time_column!r} goes backwards at {n_back} place(s); "
            "rows were sorted by time."
        )
    return table


def _count_mismatch(folder: Path, video: Path, n_video: int, n_rows: int) -> str:
    common = min(n_video, n_rows)
    if n_video > n_rows:
        what = f"the video {video.name} has {n_video} frames but {WORLD_TIMESTAMPS.filename} only {n_rows} rows"
    else:
        what = (f"{WORLD_TIMESTAMPS.filename} has {n_rows} rows but the video {video.name} only {n_video} frames "
                "(a truncated upload?)")
    return f"In {folder}, {what}; using the first {common} frames, which both have."


def _out_of_order_note(folder: Path, frame_ts: np.ndarray, in_order: np.ndarray) -> str:
    bad = np.flatnonzero(~in_order)
    listed = ", ".join(str(i) for i in bad[:_MAX_LISTED]) + (", ..." if len(bad) > _MAX_LISTED else "")
    repeated = int(np.sum(frame_ts[bad] == np.maximum.accumulate(frame_ts)[bad - 1]))
    return (
        f"{WORLD_TIMESTAMPS.filename} in {folder}: {len(bad)} frame(s) have a timestamp not later than an "
        f"earlier frame's ({repeated} repeated, {len(bad) - repeated} going back): frames {listed}. "
        "Frames keep their order (frame i is row i); these frames get no gaze samples."
    )
