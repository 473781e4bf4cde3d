"""One recording: a Pupil Cloud "Timeseries Data + Scene Video" export, or another source's folder.

Every source (:mod:`napari_densepose_gaze.sources`: Pupil Cloud, Neon Player,
native Neon, Pupil Player) becomes the same :class:`Recording`: int64 ns times,
gaze in pixels of the scene video, the same flags; ``Recording.source`` says
which it was. :meth:`Recording.open` accepts the recording folder, the .mp4
inside it, or an export root holding exactly one recording; :func:`find_recordings`
lists the recordings under a path. Everything the reader had to work around is described
in ``Recording.warnings`` (and issued with :func:`warnings.warn`), so nothing
changes silently.

What counts as a recording folder is decided here once, for the command line,
the napari reader and :meth:`Recording.open`: :func:`is_recording_folder` (a
folder to open or to report as broken) and :func:`looks_like_recording_or_export`
(a path napari should hand to this plugin rather than to its own readers).
"""

from __future__ import annotations

import os
import warnings as _warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .consistency import checked_scene_camera, checked_tables, read_json_object
from .enrichment import enrichment_tables, recognise
from .errors import DensePoseGazeError
from .gaze import aggregate_per_frame, fixation_frames, flag_gaze, frames_in_order
from .sources import (
    DEFAULT_MIN_CONFIDENCE,
    MARKER_FILES,
    PUPIL_CLOUD,
    ReadOptions,
    RecordingParts,
    is_raw_recording,
    no_recording_hint,
    source_of,
)
from .tables import BLINKS, EVENTS, FIXATIONS, GAZE, SACCADES, WORLD_TIMESTAMPS, TableSpec, read_table

__all__ = [
    "EXPECTED_FILES",
    "RECORDING_FILES",
    "EXPORT_ROOT_FILES",
    "Recording",
    "ExportWarning",
    "find_recordings",
    "is_recording_folder",
    "looks_like_recording_or_export",
    "no_recording_message",
]

#: Files that only a Pupil Cloud recording folder holds (any one of them marks one).
RECORDING_FILES = (
    WORLD_TIMESTAMPS.filename,
    GAZE.filename,
    FIXATIONS.filename,
    "info.json",
    EVENTS.filename,
    "scene_camera.json",
)
#: Files any one of which marks a folder as a recording of some source (Pupil Cloud, Neon Player, native Neon,
#: Pupil Core): what an error says a recording folder should hold.
EXPECTED_FILES = RECORDING_FILES + MARKER_FILES
#: Files at the root of an export (and of enrichment exports), never in a recording folder.
EXPORT_ROOT_FILES = ("enrichment_info.txt", "sections.csv")
_STORE_FILE = "zarr.json"  # a results store's metadata: a store (it may hold an overlay video) is never a recording
_MAX_LISTED = 8  # frame indices quoted in a warning


class ExportWarning(UserWarning):
    """Something in an export differs from the format and was worked around."""


def no_recording_message(path: str | Path, pick: str = "Pick") -> str:
    """What to say when nothing at ``path`` is a recording: the files a recording folder holds, and what to pick."""
    return (f"{path} holds no recording (no folder with an .mp4 or one of {', '.join(EXPECTED_FILES)}). {pick} the "
            "unzipped 'Timeseries Data + Scene Video' export, one recording folder in it, or a Neon Player, native "
            "Neon or Pupil Core recording folder.")


def is_recording_folder(path: str | Path) -> bool:
    """True if ``path`` is a folder holding a recording's files (any of :data:`RECORDING_FILES`, or an .mp4).

    An .mp4 alone is enough: such a folder is a recording with its tables
    missing, which opening it reports; so is a folder that cannot be read. Export roots, results stores and a
    Pupil Core recording folder (its exports are the recordings) are never recordings.
    """
    path = Path(path)
    try:
        if not path.is_dir() or _has_any(path, EXPORT_ROOT_FILES) or (path / _STORE_FILE).is_file():
            return False
        if is_raw_recording(path):
            return False
        return _has_any(path, RECORDING_FILES) or source_of(path) is not None or any(_videos(path))
    except PermissionError:
        # A folder we may not look into is counted as a recording, so that opening it says why it cannot be
        # read (by its name) and the other recordings of an export still run.
        return True


def find_recordings(path: str | Path) -> list[Path]:
    """Recording folders at ``path``: ``[path]`` for a recording folder, else those in it, sorted.

    An export root holds its recordings as subfolders; an unzipped download may
    wrap that root in one more folder, so two levels are searched (which also
    finds a Pupil Core recording's exports/NNN). Results stores beside the
    recordings are left out. An enrichment export (at ``path``, or the only
    thing in it) is a :class:`DensePoseGazeError` saying what it is
    (:func:`~napari_densepose_gaze.enrichment.recognise`).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DensePoseGazeError(f"{path} does not exist: pick a Pupil Cloud export or recording folder.")
    if path.is_file():
        path = path.parent
    if not os.access(path, os.R_OK | os.X_OK):
        raise DensePoseGazeError(
            f"{path} cannot be read (permission denied): give yourself read access to it "
            "(or run as the user who owns it), then try again."
        )
    if is_recording_folder(path):
        return [path]
    if is_raw_recording(path):
        return _exports_of(path)
    enrichment = recognise(path)
    if enrichment is not None:  # its subfolders (a Gaze Overlay's videos) are no recordings either
        raise DensePoseGazeError(enrichment.message())
    found: list[Path] = []
    enrichments = []
    for child in _subfolders(path):
        if is_recording_folder(child):
            found.append(child)
        elif is_raw_recording(child):
            found.extend(_exports_of(child))
        elif (inner := recognise(child)) is not None:
            enrichments.append(inner)
        else:
            for grandchild in _subfolders(child):
                found.extend([grandchild] if is_recording_folder(grandchild) else _exports_of(grandchild))
    if not found and enrichments:
        raise DensePoseGazeError("\n".join(e.message() for e in enrichments))
    return found


def _exports_of(folder: Path) -> list[Path]:
    """The exports of a Pupil Core recording folder (none for any other folder)."""
    if not is_raw_recording(folder):
        return []
    return [e for e in _subfolders(folder / "exports") if is_recording_folder(e)]


def looks_like_recording_or_export(path: str | Path) -> bool:
    """True for a recording folder, its .mp4, or an export root (also wrapped in one more folder).

    Unlike :func:`is_recording_folder` an .mp4 alone is not enough: napari
    offers every folder and video to this plugin, and a folder of videos is
    not ours. A recording with a problem still looks like one, so its user
    hears what is wrong.
    """
    path = Path(path)
    marks = EXPECTED_FILES
    if path.is_file():
        return path.suffix.lower() == ".mp4" and _has_any(path.parent, marks)
    if not path.is_dir():
        return False
    if _has_any(path, marks + EXPORT_ROOT_FILES):
        return True
    for child in _subfolders(path):
        if _has_any(child, marks + EXPORT_ROOT_FILES):
            return True
        if any(_has_any(grandchild, marks) for grandchild in _subfolders(child)):
            return True
    return False


def _has_any(folder: Path, names: tuple[str, ...]) -> bool:
    return any((folder / name).is_file() for name in names)


def _subfolders(folder: Path) -> list[Path]:
    """Visible subfolders, sorted (none if ``folder`` cannot be read)."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".mp4" and p.is_file()
                  and not p.name.startswith("."))


@dataclass(eq=False)  # DataFrames and arrays have no single truth value to compare
class Recording:
    """A recording's tables, frame timestamps and video, as read from its folder.

    ``frame_timestamps[i]`` is the time of video frame ``i`` (int64 ns), over the
    frames that both the video and its timestamps file have.
    ``frame_in_order[i]`` is False where a frame's timestamp is not later than
    every earlier frame's: such frames keep their place but receive no gaze.
    ``source`` names where the recording came from (one of
    :data:`~napari_densepose_gaze.sources.SOURCE_NAMES`); the tables have Pupil
    Cloud's columns whatever it was.
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
    source: str = PUPIL_CLOUD
    warnings: list[str] = field(default_factory=list)
    _reader: object = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Recording:
        """Read a recording from its folder, its .mp4, or an export root holding exactly one recording.

        ``min_confidence``: Pupil Core gaze with a lower confidence counts as not
        worn (the default is Pupil Player's); other sources have no confidence.
        """
        options = ReadOptions(min_confidence=min_confidence)
        folder, video_path = _resolve(Path(path).expanduser())
        notes: list[str] = []
        source = source_of(folder)
        if source is None:
            parts = _read_cloud(folder, video_path, notes)
        else:
            parts = source.read(folder, video_path, notes, options)
        recording = cls._from_parts(folder, parts, notes)
        for note in notes:
            _warnings.warn(note, ExportWarning, stacklevel=2)
        return recording

    @classmethod
    def _from_parts(cls, folder: Path, parts: RecordingParts, notes: list[str]) -> Recording:
        """The steps every source shares: duplicates and order of the tables, the video and its frame times."""

        def clean(table: pd.DataFrame, time_column: str, spec: TableSpec) -> pd.DataFrame:
            return _clean_samples(table, time_column, parts.files.get(spec.filename, folder / spec.filename), notes)

        gaze = clean(parts.gaze, "timestamp [ns]", GAZE)
        fixations = clean(parts.fixations, "start timestamp [ns]", FIXATIONS)
        saccades = clean(parts.saccades, "start timestamp [ns]", SACCADES)
        blinks = clean(parts.blinks, "start timestamp [ns]", BLINKS)
        events = clean(parts.events, "timestamp [ns]", EVENTS)

        reader = parts.reader
        if reader is None:
            from .video import VideoReader  # PyAV loads only when a recording is opened

            reader = VideoReader(parts.video_path)
        n_video, height, width, _ = reader.shape
        frame_ts = np.asarray(parts.frame_timestamps, dtype=np.int64)
        times_name = parts.timestamps_file.name
        n_frames = min(n_video, len(frame_ts))
        if n_video != len(frame_ts):
            notes.append(_count_mismatch(folder, parts.video_path, times_name, n_video, len(frame_ts),
                                         uploaded=parts.source == PUPIL_CLOUD))
        if n_frames == 0:
            raise DensePoseGazeError(
                f"{times_name} in {folder} has no rows: the recording has no frames to use. "
                + ("Download the export again." if parts.source == PUPIL_CLOUD else "Export the recording again.")
            )
        frame_ts = frame_ts[:n_frames].copy()
        in_order = frames_in_order(frame_ts)
        if not in_order.all():
            notes.append(_out_of_order_note(folder, times_name, frame_ts, in_order))

        return cls(
            folder=folder,
            name=parts.name or folder.name,
            video_path=parts.video_path,
            frame_timestamps=frame_ts,
            frame_in_order=in_order,
            gaze=gaze,
            fixations=fixations,
            saccades=saccades,
            blinks=blinks,
            events=events,
            info=parts.info,
            scene_camera=parts.scene_camera,
            frame_size=(int(width), int(height)),
            n_frames=int(n_frames),
            source=parts.source,
            warnings=notes,
            _reader=reader,
        )

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

    @cached_property
    def gaze_samples(self) -> pd.DataFrame:
        """The gaze samples with their frame and flags (:func:`~napari_densepose_gaze.gaze.flag_gaze`).

        Flagged once, on first use, and kept: treat the table as read-only.
        """
        return flag_gaze(self.gaze, self.frame_timestamps, self.frame_size, self.blinks,
                         frame_in_order=self.frame_in_order)

    def per_frame_gaze(self) -> pd.DataFrame:
        """One row per frame with samples: where the wearer looked on it (see ``aggregate_per_frame``)."""
        return aggregate_per_frame(self.gaze_samples, self.frame_timestamps)

    def fixation_frames(self) -> pd.DataFrame:
        """Each fixation with the frames at its start, end and midpoint (-1 outside the video)."""
        return fixation_frames(self.fixations, self.frame_timestamps, frame_in_order=self.frame_in_order)

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
    if path.is_file() and is_raw_recording(path.parent):
        return _resolve(path.parent)  # a Pupil Core recording's own world.mp4: its export is the recording
    if path.is_file():
        return path.parent, (path if path.suffix.lower() == ".mp4" else None)
    if is_recording_folder(path):
        return path, None
    recordings = find_recordings(path)
    if len(recordings) == 1:
        return recordings[0], None
    if not recordings:
        hint = no_recording_hint(path)
        if hint is not None:
            raise DensePoseGazeError(hint)
        raise DensePoseGazeError(no_recording_message(path))
    listed = "\n  ".join(str(r) for r in recordings)
    raise DensePoseGazeError(
        f"{path} holds {len(recordings)} recordings; pick one of them:\n  {listed}\n"
        "(the command line can process them all)."
    )


def _read_cloud(folder: Path, video_path: Path | None, notes: list[str]) -> RecordingParts:
    """The parts of a Pupil Cloud recording folder (``video_path``: the .mp4 the user picked, if any)."""
    if video_path is None:
        video_path = _pick_video(folder)
    # an enrichment's gaze.csv or fixations.csv copied in has other coordinates under the same names
    refused = enrichment_tables(folder, (GAZE.filename,), (FIXATIONS.filename,), notes)
    world = _read_required(folder, WORLD_TIMESTAMPS, notes)
    gaze = _read_required(folder, GAZE, notes)
    fixations = FIXATIONS.empty() if FIXATIONS.filename in refused else _read_optional(folder, FIXATIONS, notes)
    saccades = _read_optional(folder, SACCADES, notes)
    blinks = _read_optional(folder, BLINKS, notes)
    events = _read_optional(folder, EVENTS, notes)
    info = _read_json(folder / "info.json", notes, required_keys=())
    camera_path = folder / "scene_camera.json"
    scene_camera = checked_scene_camera(_read_json(camera_path, notes, required_keys=("camera_matrix",)),
                                        camera_path, notes)
    tables = checked_tables(folder, info, {WORLD_TIMESTAMPS: world, GAZE: gaze, FIXATIONS: fixations,
                                           SACCADES: saccades, BLINKS: blinks, EVENTS: events},
                            (WORLD_TIMESTAMPS, GAZE), notes)
    fixations, saccades, blinks, events = (tables[spec] for spec in (FIXATIONS, SACCADES, BLINKS, EVENTS))
    return RecordingParts(
        source=PUPIL_CLOUD,
        video_path=video_path,
        frame_timestamps=world["timestamp [ns]"].to_numpy(dtype=np.int64),
        timestamps_file=folder / WORLD_TIMESTAMPS.filename,
        gaze=gaze,
        fixations=fixations,
        saccades=saccades,
        blinks=blinks,
        events=events,
        info=info,
        scene_camera=scene_camera,
        files={spec.filename: folder / spec.filename for spec in (GAZE, FIXATIONS, SACCADES, BLINKS, EVENTS)},
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
    """The object in a JSON file, or {} with a note (:func:`~napari_densepose_gaze.consistency.read_json_object`)."""
    return read_json_object(path, notes, required_keys)


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


def _count_mismatch(folder: Path, video: Path, times_name: str, n_video: int, n_rows: int, uploaded: bool) -> str:
    common = min(n_video, n_rows)
    if n_video > n_rows:
        what = f"the video {video.name} has {n_video} frames but {times_name} only {n_rows} rows"
    else:
        what = (f"{times_name} has {n_rows} rows but the video {video.name} only {n_video} frames"
                + (" (a truncated upload?)" if uploaded else ""))
    return f"In {folder}, {what}; using the first {common} frames, which both have."


def _out_of_order_note(folder: Path, times_name: str, frame_ts: np.ndarray, in_order: np.ndarray) -> str:
    bad = np.flatnonzero(~in_order)
    listed = ", ".join(str(i) for i in bad[:_MAX_LISTED]) + (", ..." if len(bad) > _MAX_LISTED else "")
    repeated = int(np.sum(frame_ts[bad] == np.maximum.accumulate(frame_ts)[bad - 1]))
    return (
        f"{times_name} in {folder}: {len(bad)} frame(s) have a timestamp not later than an "
        f"earlier frame's ({repeated} repeated, {len(bad) - repeated} going back): frames {listed}. "
        "Frames keep their order (frame i is row i); these frames get no gaze samples."
    )
