"""Which frames a selection picks: checked against the frames worked out here from the export's own CSVs."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
from napari_densepose_gaze.recording import Recording


@pytest.fixture
def recording(synthetic_recording) -> Recording:
    return Recording.open(synthetic_recording())


def frame_times(recording: Recording) -> list[int]:
    times = pd.read_csv(recording.folder / "world_timestamps.csv")["timestamp [ns]"].astype("int64").tolist()
    assert times == sorted(set(times))  # the synthetic default: every frame later than the one before
    return times[: recording.n_frames]


def frame_shown_at(times: list[int], t: int) -> int | None:
    """The frame on screen at ``t``: the last one that started at or before it (None outside the video)."""
    period = int(np.median(np.diff(times)))
    if t < times[0] or t >= times[-1] + period:
        return None
    return bisect.bisect_right(times, t) - 1


def test_the_all_mode_picks_every_frame_or_every_nth_of_a_range(recording):
    n = recording.n_frames
    assert select_frames(recording).tolist() == list(range(n))
    assert select_frames(recording, FrameSelection(step=5, start=3, stop=20)).tolist() == [3, 8, 13, 18]


def test_the_gaze_mode_picks_exactly_the_frames_with_a_valid_sample(recording):
    times = frame_times(recording)
    width, height = recording.frame_size
    gaze = pd.read_csv(recording.folder / "gaze.csv")
    blinks = pd.read_csv(recording.folder / "blinks.csv")
    expected = set()
    columns = ("timestamp [ns]", "gaze x [px]", "gaze y [px]", "worn", "blink id")
    for t, x, y, worn, blink in zip(*(gaze[c] for c in columns)):
        t = int(t)
        blinking = not pd.isna(blink) or any(
            s <= t <= e for s, e in zip(blinks["start timestamp [ns]"], blinks["end timestamp [ns]"]))
        on_image = not (math.isnan(x) or math.isnan(y)) and 0 <= x < width and 0 <= y < height
        frame = frame_shown_at(times, t)
        if worn == 1 and not blinking and on_image and frame is not None:
            expected.add(frame)
    picked = select_frames(recording, FrameSelection(mode="gaze")).tolist()
    assert picked == sorted(expected)
    assert 0 < len(picked) < recording.n_frames  # the glance away and the glasses off leave frames out


def test_the_fixation_mode_picks_the_frame_at_each_fixation_midpoint(recording):
    times = frame_times(recording)
    fixations = pd.read_csv(recording.folder / "fixations.csv")
    midpoints = [int(s) + (int(e) - int(s)) // 2
                 for s, e in zip(fixations["start timestamp [ns]"], fixations["end timestamp [ns]"])]
    expected = sorted({f for f in (frame_shown_at(times, t) for t in midpoints) if f is not None})
    picked = select_frames(recording, FrameSelection(mode="fixations")).tolist()
    assert picked == expected
    assert len(picked) > 3


def test_a_section_between_events_runs_from_the_start_event_frame_to_the_end_event_frame(recording):
    times = frame_times(recording)
    events = pd.read_csv(recording.folder / "events.csv").set_index("name")["timestamp [ns]"]
    first = frame_shown_at(times, int(events["conversation.start"]))
    last = frame_shown_at(times, int(events["conversation.end"]))
    assert 0 < first < last < recording.n_frames - 1  # strictly inside: a selection ignoring events fails

    section = FrameSelection(start_event="conversation.start", end_event="conversation.end")
    assert select_frames(recording, section).tolist() == list(range(first, last + 1))
    every_third = FrameSelection(step=3, start_event="conversation.start", end_event="conversation.end")
    assert select_frames(recording, every_third).tolist() == list(range(first, last + 1, 3))
    gaze_in_section = select_frames(recording, FrameSelection(mode="gaze", start_event="conversation.start",
                                                              end_event="conversation.end")).tolist()
    all_gaze = select_frames(recording, FrameSelection(mode="gaze")).tolist()
    assert gaze_in_section == [f for f in all_gaze if first <= f <= last]


def test_bad_selections_are_errors_that_say_what_to_fix(recording):
    n = recording.n_frames
    with pytest.raises(DensePoseGazeError, match="step"):
        select_frames(recording, FrameSelection(step=0))
    with pytest.raises(DensePoseGazeError, match="does not fit"):
        select_frames(recording, FrameSelection(start=n + 5))
    with pytest.raises(DensePoseGazeError, match="No event named 'nope'"):
        select_frames(recording, FrameSelection(start_event="nope"))
    with pytest.raises(DensePoseGazeError, match="No event named 'conversation.start' after the start event"):
        select_frames(recording, FrameSelection(start_event="conversation.end", end_event="conversation.start"))
