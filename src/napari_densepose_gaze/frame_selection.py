"""Which frames of a recording to run DensePose on.

A :class:`FrameSelection` first narrows the recording to a span (a frame range,
or the section between two named events, like the peer tool's ``--start`` /
``--end``), then picks frames inside it: all of them, every Nth, only frames
with valid gaze, or one key frame per fixation (the frame shown at the
fixation's temporal midpoint).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .errors import DensePoseGazeError
from .gaze import assign_frames

if TYPE_CHECKING:
    from .recording import Recording

Mode = Literal["all", "gaze", "fixations"]
MODES: tuple[str, ...] = ("all", "gaze", "fixations")


@dataclass(frozen=True)
class FrameSelection:
    """A frame selection; the default is every frame of the recording."""

    mode: Mode = "all"  # "all" frames, frames with valid "gaze", or one key frame per fixation
    step: int = 1  # every Nth frame of the span (applies to mode "all")
    start: int | None = None  # first frame of the span (inclusive)
    stop: int | None = None  # end of the span (exclusive)
    start_event: str | None = None  # the span starts at the first event of this name
    end_event: str | None = None  # ... and ends at the first event of this name after the start

    def to_dict(self) -> dict:
        """Plain values, for the results store's metadata."""
        return asdict(self)


def select_frames(recording: Recording, selection: FrameSelection = FrameSelection()) -> np.ndarray:
    """Frame indices (sorted, unique, int64) the selection picks in ``recording``."""
    if selection.mode not in MODES:
        raise DensePoseGazeError(f"Unknown frame selection mode {selection.mode!r}: use one of {', '.join(MODES)}.")
    if selection.step < 1:
        raise DensePoseGazeError(f"Frame step must be 1 or more, not {selection.step}.")
    first, stop = _span(recording, selection)
    if selection.mode == "all":
        return np.arange(first, stop, selection.step, dtype=np.int64)
    if selection.mode == "gaze":
        samples = recording.gaze_samples
        frames = samples.loc[samples["valid"], "frame"].to_numpy(dtype=np.int64)
    else:
        frames = recording.fixation_frames()["midpoint frame"].to_numpy(dtype=np.int64)
    frames = np.unique(frames)
    return frames[(frames >= first) & (frames < stop)]


def _span(recording: Recording, selection: FrameSelection) -> tuple[int, int]:
    n = recording.n_frames
    first = 0 if selection.start is None else selection.start
    stop = n if selection.stop is None else selection.stop
    if not (0 <= first < n) or not (first < stop):
        raise DensePoseGazeError(
            f"Frame range {first}..{stop} does not fit {recording.name}, which has frames 0..{n - 1}."
        )
    stop = min(stop, n)
    if selection.start_event or selection.end_event:
        t_start = _event_time(recording, selection.start_event, after=None) if selection.start_event else None
        t_end = _event_time(recording, selection.end_event, after=t_start) if selection.end_event else None
        # The section runs from the frame on screen at the start event to the
        # frame on screen at the end event, both included.
        if t_start is not None:
            first = max(first, _frame_at(recording, t_start))
        if t_end is not None:
            stop = min(stop, _frame_at(recording, t_end) + 1)
        if first >= stop:
            raise DensePoseGazeError(
                f"No frames of {recording.name} lie between events {selection.start_event!r} and "
                f"{selection.end_event!r}: check the event names and their order in events.csv."
            )
    return first, stop


def _frame_at(recording: Recording, t: int) -> int:
    frame = int(assign_frames(np.array([t]), recording.frame_timestamps, frame_in_order=recording.frame_in_order)[0][0])
    if frame >= 0:
        return frame
    return 0 if t < recording.frame_timestamps[0] else recording.n_frames - 1


def _event_time(recording: Recording, name: str, after: int | None) -> int:
    events = recording.events
    names = events["name"].astype(str) if "name" in events else []
    matches = events[names == name] if len(events) else events
    if after is not None:
        matches = matches[matches["timestamp [ns]"] >= after]
    if not len(matches):
        known = ", ".join(sorted(set(map(str, names)))) or "none"
        where = "" if after is None else " after the start event"
        raise DensePoseGazeError(
            f"No event named {name!r}{where} in events.csv of {recording.name} (events there: {known})."
        )
    return int(matches["timestamp [ns]"].iloc[0])
