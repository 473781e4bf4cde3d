"""Write synthetic Pupil Cloud exports ("Timeseries Data + Scene Video") for tests and sample data.

A recording folder holds a scene video of walking figures (:mod:`.scene`), and
gaze that follows the figures' heads (:mod:`.gaze_streams`): fixations where it
dwells, saccades between them, blinks, a stretch with the glasses off, a glance
outside the scene camera's view and one NaN sample. Everything is a function of
``seed``.

``deviations`` names the ways real exports differ from the format page (one
name per deviation, see :data:`DEVIATIONS`), so a test of the reader is one line.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..glasses import GLASSES
from .gaze_streams import gaze_streams
from .scene import render_frame

__all__ = ["DEVIATIONS", "DEVICE_SIZES", "DISTORTION_KEYS", "SAMPLE_SETTINGS", "distortion_of", "write_recording",
           "write_export", "write_sample_recording"]

#: device name -> full scene video size (width, height), from :mod:`napari_densepose_gaze.glasses`
DEVICE_SIZES = {name: glasses.frame_size for name, glasses in GLASSES.items()}

DEVIATIONS = frozenset(
    {
        "bom",  # UTF-8 byte-order mark on every CSV
        "crlf",  # Windows line endings
        "reordered_columns",  # every CSV's columns in reverse order
        "extra_columns",  # an unknown column in every CSV
        "no_fixations",
        "no_saccades",
        "no_blinks",
        "no_events",
        "no_scene_camera",
        "no_info",
        "no_world_timestamps",
        "no_gaze",
        "no_video",
        "two_videos",  # a second .mp4 beside the scene video
        "old_invisible_columns",  # gaze.csv without worn, azimuth, elevation
        "scientific_notation",  # timestamps and gaze as float64 text, e.g. 1.7000000001234568e+18
        "non_monotonic",  # gaze rows out of order; two frame timestamps swapped
        "duplicate_rows",  # repeated gaze, fixation and world_timestamps rows
        "more_frames_than_timestamps",  # world_timestamps.csv lacks the last frames
        "fewer_frames_than_timestamps",  # the video lacks the last frames (truncated upload)
    }
)

#: The sample recording (napari's sample data and :func:`write_sample_recording`), defined here only:
#: small enough to write in seconds, big enough to look at.
SAMPLE_SETTINGS = {"device": "neon", "size": (640, 480), "seconds": 4.0, "fps": 30, "seed": 0}

_START_NS = 1_700_000_000_123_456_789  # 2023-11-14 22:13:20 UTC, with every ns digit set
_MISSING_ROWS = 3  # frames lost by the *_than_timestamps deviations


@dataclass(frozen=True)
class _Written:
    folder: Path
    name: str
    recording_id: str
    section_id: str
    wearer_id: str
    wearer_name: str
    start_ns: int
    end_ns: int


def write_recording(
    folder: str | Path,
    *,
    device: str = "neon",
    seconds: float = 3.0,
    fps: int = 30,
    size: tuple[int, int] | None = None,
    gaze_hz: float = 200,
    seed: int = 0,
    deviations: Iterable[str] = (),
    name: str | None = None,
    n_figures: int = 2,
    audio: bool = False,
) -> Path:
    """Write one recording folder ``<name>-<8 hex>`` into ``folder``; return its path.

    ``size`` is (width, height), by default the device's (Neon 1600x1200,
    Invisible 1088x1080); both must be even. ``name`` defaults to the start time
    in Pupil's style (``2023-11-14_22-13-20``).
    """
    return _write_recording(
        Path(folder), device=device, seconds=seconds, fps=fps, size=size, gaze_hz=gaze_hz, seed=seed,
        deviations=deviations, name=name, n_figures=n_figures, audio=audio,
    ).folder


def write_sample_recording(folder: str | Path) -> Path:
    """Write the sample recording (:data:`SAMPLE_SETTINGS`) into ``folder``, or reuse it; return its path.

    Reuse needs the video to be there: it is written last, so a half-written
    sample is written again.
    """
    folder = Path(folder)
    for candidate in sorted(folder.glob("*-*")):
        if candidate.is_dir() and any(candidate.glob("*.mp4")) and (candidate / "gaze.csv").is_file():
            return candidate
    return write_recording(folder, **SAMPLE_SETTINGS)


def write_export(root: str | Path, recordings: int | Sequence[Mapping] = 2, **common) -> Path:
    """Write an export root: ``enrichment_info.txt``, ``sections.csv`` and several recordings.

    ``recordings`` is a count, or one mapping of :func:`write_recording` keyword
    arguments per recording (``seed`` defaults to the position); ``common``
    keyword arguments apply to all. Returns ``root``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    specs = [{} for _ in range(recordings)] if isinstance(recordings, int) else [dict(r) for r in recordings]
    written = []
    for i, spec in enumerate(specs):
        kwargs = {"seed": i, **common, **spec}
        written.append(_write_recording(root, **kwargs))
    (root / "enrichment_info.txt").write_text(
        "Timeseries Data + Scene Video\n"
        "Synthetic export written by napari-densepose-gaze for tests; layout as Pupil Cloud's.\n"
        f"Recordings: {len(written)}\n",
        encoding="utf-8",
    )
    sections = pd.DataFrame(
        {
            "section id": [w.section_id for w in written],
            "recording id": [w.recording_id for w in written],
            "recording name": [w.name for w in written],
            "wearer id": [w.wearer_id for w in written],
            "wearer name": [w.wearer_name for w in written],
            "section start time [ns]": [w.start_ns for w in written],
            "section end time [ns]": [w.end_ns for w in written],
            "start event name": "recording.begin",
            "end event name": "recording.end",
        }
    )
    _write_csv(root / "sections.csv", sections, set(), np.random.default_rng(0))
    return root


def _write_recording(
    parent: Path,
    *,
    device: str = "neon",
    seconds: float = 3.0,
    fps: int = 30,
    size: tuple[int, int] | None = None,
    gaze_hz: float = 200,
    seed: int = 0,
    deviations: Iterable[str] = (),
    name: str | None = None,
    n_figures: int = 2,
    audio: bool = False,
) -> _Written:
    deviations = set(deviations)
    unknown = deviations - DEVIATIONS
    if unknown:
        raise ValueError(f"unknown deviation(s) {sorted(unknown)}; known: {sorted(DEVIATIONS)}")
    if device not in DEVICE_SIZES:
        raise ValueError(f"device must be one of {sorted(DEVICE_SIZES)}, not {device!r}")
    width, height = size if size is not None else DEVICE_SIZES[device]
    rng = np.random.default_rng([seed, 2024])
    recording_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    section_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    wearer_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    start_ns = _START_NS + seed * 86_400_000_000_007  # one day (and 7 ns) apart per seed
    if name is None:
        name = pd.Timestamp(start_ns, unit="ns", tz="UTC").strftime("%Y-%m-%d_%H-%M-%S")
    folder = parent / f"{name}-{recording_id[:8]}"
    folder.mkdir(parents=True, exist_ok=True)

    frame_ts = _frame_timestamps(rng, start_ns, seconds, fps)
    duration_ns = int(frame_ts[-1] - start_ns + 1_000_000_000 // fps)
    camera = _scene_camera(device, width, height, rng)
    streams = gaze_streams(rng, start_ns, frame_ts, fps, gaze_hz, width, height, n_figures, seed, camera)
    ids = {"section id": section_id, "recording id": recording_id}

    world = pd.DataFrame({**ids, "timestamp [ns]": frame_ts})
    n_video = len(frame_ts)
    if "more_frames_than_timestamps" in deviations:
        world = world.iloc[:-_MISSING_ROWS]
    if "fewer_frames_than_timestamps" in deviations:
        n_video -= _MISSING_ROWS
    gaze = pd.DataFrame({**ids, **streams["gaze"]})
    fixations = pd.DataFrame({**ids, **streams["fixations"]})
    saccades = pd.DataFrame({**ids, **streams["saccades"]})
    blinks = pd.DataFrame({**ids, **streams["blinks"]})
    events = _events(recording_id, start_ns, duration_ns, seconds)

    if "old_invisible_columns" in deviations:
        gaze = gaze.drop(columns=["worn", "azimuth [deg]", "elevation [deg]"])
    if "non_monotonic" in deviations:
        gaze = _move_block(gaze, 10, 20, 40)
        k = len(world) // 2
        ts = world["timestamp [ns]"].to_numpy().copy()
        ts[[k, k + 1]] = ts[[k + 1, k]]
        world = world.assign(**{"timestamp [ns]": ts})
    if "duplicate_rows" in deviations:
        gaze = _duplicate_rows(gaze, [5, 6, 7])
        fixations = _duplicate_rows(fixations, [1])
        world = _duplicate_rows(world, [len(world) // 3])

    tables = {
        "world_timestamps.csv": (world, "no_world_timestamps"),
        "gaze.csv": (gaze, "no_gaze"),
        "fixations.csv": (fixations, "no_fixations"),
        "saccades.csv": (saccades, "no_saccades"),
        "blinks.csv": (blinks, "no_blinks"),
        "events.csv": (events, "no_events"),
    }
    for filename, (table, skip) in tables.items():
        if skip not in deviations:
            _write_csv(folder / filename, table, deviations, rng)

    info = _info(device, recording_id, start_ns, duration_ns, wearer_id, gaze_hz, seed)
    if "no_info" not in deviations:
        (folder / "info.json").write_text(json.dumps(info, indent=4), encoding="utf-8")
    if "no_scene_camera" not in deviations:
        (folder / "scene_camera.json").write_text(json.dumps(camera, indent=4), encoding="utf-8")

    if "no_video" not in deviations:
        from .video_writer import write_h264

        video = folder / f"{section_id[:8]}_0-{seconds:g}.mp4"
        times = (frame_ts[:n_video] - start_ns) / 1e9
        write_h264(
            video,
            (render_frame(t, width, height, n_figures, seed) for t in times),
            fps=fps,
            audio_seconds=seconds if audio else None,
        )
        if "two_videos" in deviations:
            shutil.copyfile(video, folder / f"{section_id[:8]}_0-{seconds:g} (1).mp4")
    return _Written(folder, name, recording_id, section_id, wearer_id, info["wearer_name"], start_ns,
                    start_ns + duration_ns)


def _frame_timestamps(rng: np.random.Generator, start_ns: int, seconds: float, fps: int) -> np.ndarray:
    n = max(int(round(seconds * fps)), 1)
    period = 1_000_000_000 / fps
    # the scene camera starts a little after the recording; frames jitter by up to a millisecond
    first = start_ns + 80_000_000
    jitter = rng.integers(-1_000_000, 1_000_001, n)
    jitter[0] = 0
    return first + np.round(np.arange(n) * period).astype(np.int64) + jitter


#: how each device's scene_camera.json names the lens distortion
DISTORTION_KEYS = {"neon": "distortion_coefficients", "invisible": "dist_coefs"}


def distortion_of(camera: dict) -> list:
    """The distortion coefficients of a synthetic scene camera, whichever key its device uses."""
    return camera["distortion_coefficients"] if "distortion_coefficients" in camera else camera["dist_coefs"]


def _scene_camera(device: str, width: int, height: int, rng: np.random.Generator) -> dict:
    glasses = GLASSES[device]
    focal = glasses.focal_px * width / glasses.frame_size[0]
    camera = {
        "camera_matrix": [
            [round(focal + float(rng.normal(0, 1)), 4), 0.0, round(width / 2 + float(rng.normal(0, 2)), 4)],
            [0.0, round(focal + float(rng.normal(0, 1)), 4), round(height / 2 + float(rng.normal(0, 2)), 4)],
            [0.0, 0.0, 1.0],
        ],
        "serial_number": f"{int(rng.integers(100000, 999999))}",
    }
    # OpenCV order k1 k2 p1 p2 k3 k4 k5 k6; real Neon files name it distortion_coefficients (and carry no
    # version), Invisible files dist_coefs with version "v1" (docs: pupil_cloud_export.md)
    camera[DISTORTION_KEYS[device]] = [[-0.1297, 0.1056, 0.0002, -0.0004, -0.0027, 0.1702, 0.0480, 0.0151]]
    if device == "invisible":
        camera["version"] = "v1"
        angle = np.deg2rad(2.0)
        camera["rotation_matrix"] = [
            [1.0, 0.0, 0.0],
            [0.0, float(np.cos(angle)), float(-np.sin(angle))],
            [0.0, float(np.sin(angle)), float(np.cos(angle))],
        ]
    return camera


def _events(recording_id: str, start_ns: int, duration_ns: int, seconds: float) -> pd.DataFrame:
    times = [start_ns, start_ns + round(0.25 * seconds * 1e9), start_ns + round(0.7 * seconds * 1e9),
             start_ns + duration_ns]
    return pd.DataFrame(
        {
            "recording id": recording_id,
            "timestamp [ns]": np.array(times, dtype=np.int64),
            "name": ["recording.begin", "conversation.start", "conversation.end", "recording.end"],
            "type": ["recording", "cloud", "cloud", "recording"],
        }
    )


def _info(device: str, recording_id: str, start_ns: int, duration_ns: int, wearer_id: str, gaze_hz: float,
          seed: int) -> dict:
    info = {
        "recording_id": recording_id,
        "start_time": start_ns,
        "duration": duration_ns,
        "wearer_id": wearer_id,
        "wearer_name": f"Synthetic Wearer {seed}",
        "gaze_offset": [0.0, 0.0],
        "gaze_frequency": gaze_hz,
        "template_data": {"id": None, "version": None, "recording_name": "", "data": {}},
        "android_device_name": "Synthetic Companion",
        "data_format_version": "2.3",
    }
    if device == "neon":
        info |= {
            "module_serial_number": f"{700000 + seed}",
            "frame_name": "Just act natural",
            "app_version": "2.8.25-prod",
            "pipeline_version": "2.7.4",
        }
    else:
        info |= {
            "glasses_serial_number": f"pi{seed:05d}",
            "scene_camera_serial_number": f"sc{seed:05d}",
            "app_version": "1.4.30-prod",
        }
    return info


def _move_block(table: pd.DataFrame, start: int, stop: int, to: int) -> pd.DataFrame:
    """Rows ``start:stop`` moved to sit after row ``to``: timestamps no longer ascend."""
    order = list(range(len(table)))
    block = order[start:stop]
    rest = order[:start] + order[stop:]
    at = rest.index(to) + 1
    return table.iloc[rest[:at] + block + rest[at:]].reset_index(drop=True)


def _duplicate_rows(table: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    """Each of ``rows`` written twice in a row."""
    order = []
    for i in range(len(table)):
        order.append(i)
        if i in rows:
            order.append(i)
    return table.iloc[order].reset_index(drop=True)


def _format_column(values: pd.Series, name: str, scientific: bool) -> list[str]:
    if isinstance(values.dtype, pd.Int64Dtype):
        # pandas writes nullable ids in float columns as 12.0, which Pupil's own files also show
        fmt = (lambda v: f"{float(v)!r}") if scientific else str
        return ["" if pd.isna(v) else fmt(v) for v in values]
    if pd.api.types.is_integer_dtype(values.dtype):
        if scientific and "[ns]" in name:
            return [repr(float(v)) for v in values]  # float64 text: the last digits are lost
        return [str(int(v)) for v in values]
    if pd.api.types.is_float_dtype(values.dtype):
        if scientific and "[px]" in name:
            return ["" if np.isnan(v) else f"{v:.6e}" for v in values]
        return ["" if np.isnan(v) else repr(float(v)) for v in values]
    return [str(v) for v in values]


def _write_csv(path: Path, table: pd.DataFrame, deviations: set[str], rng: np.random.Generator) -> None:
    text = pd.DataFrame(
        {c: _format_column(table[c], c, "scientific_notation" in deviations) for c in table.columns},
        index=table.index,
    )
    if "extra_columns" in deviations:
        text.insert(1, "device note", "synthetic")
        text["extra [a.u.]"] = [f"{v:.3f}" for v in rng.uniform(0, 1, len(text))]
    if "reordered_columns" in deviations:
        text = text[text.columns[::-1]]
    text.to_csv(
        path,
        index=False,
        encoding="utf-8-sig" if "bom" in deviations else "utf-8",
        lineterminator="\r\n" if "crlf" in deviations else "\n",
    )
