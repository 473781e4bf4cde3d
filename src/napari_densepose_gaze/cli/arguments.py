"""Argument types that check what argparse cannot check by itself: ranges, names, folders.

Each raises :class:`argparse.ArgumentTypeError`, so a bad value is a usage
error (exit 2, naming the option) before any recording is read or a model loads.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.defaults import MAX_INPUT_SIZE, MIN_INPUT_SIZE

if TYPE_CHECKING:
    from ..hits import HitSettings

__all__ = [
    "FILE_SUFFIXES", "VIDEO_SUFFIXES", "add_hit_radius", "event_name", "folder_path", "hit_settings", "input_size",
    "non_negative_float",
    "non_negative_int", "positive_int", "score_threshold", "video_or_folder_path",
]

#: Videos that ``render --output`` can write (the muxer picks the container from the suffix).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")
#: Suffixes of files people name by habit: an --output that ends in one is a file name, not a folder.
FILE_SUFFIXES = (
    ".csv", ".tsv", ".txt", ".json", ".xlsx", ".xls", ".parquet", ".h5", ".npy", ".npz", ".pkl", ".pth", ".pt",
    ".png", ".jpg", ".jpeg", ".svg", ".pdf", ".zip", ".gz", ".tar", ".avi", ".webm", *VIDEO_SUFFIXES,
)


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text}")
    return value


def input_size(text: str) -> int:
    """An edge length of the network input in pixels, within what the engine can take."""
    value = _int(text)
    if not MIN_INPUT_SIZE <= value <= MAX_INPUT_SIZE:
        raise argparse.ArgumentTypeError(
            f"must lie between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE} pixels, not {value}"
        )
    return value


def score_threshold(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value < 1.0:  # a score of 1 is never reached: nothing would be kept
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, not {text}")
    return value


def event_name(text: str) -> str:
    """An event name as events.csv spells it; an empty one matches no event."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name an event of events.csv, not be empty")
    return text


def folder_path(text: str) -> Path:
    """A folder to write into (it may not exist yet): not an existing file, not a name like ``tables.csv``."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, but this names a folder: pass a folder")
    if path.suffix.lower() in FILE_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text} looks like a file name, but this names a folder: pass a folder, e.g. {path.with_suffix('')}"
        )
    return path


def video_or_folder_path(text: str) -> Path:
    """A video file to write (:data:`VIDEO_SUFFIXES`), or a folder for several."""
    path = Path(text).expanduser()
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder: name a video file, or pass the folder without "
                                             "a video suffix")
        return path
    if path.suffix.lower() in FILE_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text} is no video the overlay can be written as: name a {', '.join(VIDEO_SUFFIXES)} file or a folder"
        )
    return folder_path(text)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None


def add_min_confidence(parser: argparse.ArgumentParser) -> None:
    """``--min-confidence``: Pupil Core gaze below it counts as not worn (other recordings have no confidence)."""
    from ..sources.parts import DEFAULT_MIN_CONFIDENCE

    parser.add_argument("--min-confidence", type=probability, default=DEFAULT_MIN_CONFIDENCE, metavar="C",
                        help="Pupil Core recordings: gaze with a lower confidence counts as not worn "
                        f"(default {DEFAULT_MIN_CONFIDENCE:g}, as Pupil Player)")


def probability(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text}")
    return value


def add_hit_radius(group: argparse._ActionsContainer, what: str = "tolerance around the gaze point") -> None:
    """``--radius`` and ``--unit``: the hit radius (read back with :func:`hit_settings`)."""
    from ..glasses import INVISIBLE, NEON

    group.add_argument("--radius", type=non_negative_float, metavar="R",
                       help=f"{what} (default: the device's gaze accuracy, {NEON.default_radius_deg:g} deg for "
                       f"Neon, {INVISIBLE.default_radius_deg:g} deg for Invisible); 0 counts exact hits only")
    group.add_argument("--unit", choices=("px", "deg"),
                       help="unit of --radius: scene video pixels or degrees of visual angle (default px)")


def hit_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> HitSettings | None:
    """The hit radius of ``--radius``/``--unit``; None: each recording's default (:func:`.hits.default_radius`)."""
    from ..hits import HitSettings

    if args.radius is None:
        if args.unit is not None:
            parser.error("--unit needs --radius")
        return None
    return HitSettings(args.radius, args.unit or "px")
