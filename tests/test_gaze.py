"""Gaze samples to frames: assignment, flags, per-frame means and fixation frames."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.gaze import (
    FLAG_COLUMNS,
    aggregate_per_frame,
    assign_frames,
    fixation_frames,
    flag_gaze,
    frames_in_order,
    in_intervals,
)
from napari_densepose_gaze.recording import ExportWarning, Recording
from napari_densepose_gaze.synthetic.export import write_recording
from napari_densepose_gaze.synthetic.scene import figure_heads

T0 = 1_700_000_000_123_456_789
FRAMES = T0 + np.array([0, 100, 200, 300], dtype=np.int64)  # four frames, 100 ns apart


def test_sample_at_a_frame_timestamp_belongs_to_that_frame():
    frames, before, after = assign_frames(FRAMES, FRAMES)
    assert frames.tolist() == [0, 1, 2, 3]
    assert not before.any() and not after.any()


def test_sample_between_frames_belongs_to_the_earlier_one():
    frames, _, _ = assign_frames(T0 + np.array([1, 99, 101, 299, 301, 399]), FRAMES)
    assert frames.tolist() == [0, 0, 1, 2, 3, 3]


def test_samples_before_the_first_and_after_the_last_frame_are_flagged():
    frames, before, after = assign_frames(T0 + np.array([-1, 0, 399, 400, 10_000]), FRAMES)
    assert frames.tolist() == [-1, 0, 3, -1, -1]
    assert before.tolist() == [True, False, False, False, False]
    # the last frame lasts one (median) frame interval
    assert after.tolist() == [False, False, False, True, True]


def test_explicit_frame_duration_bounds_the_last_frame():
    frames, _, after = assign_frames(T0 + np.array([349, 350]), FRAMES, frame_duration=50)
    assert frames.tolist() == [3, -1] and after.tolist() == [False, True]


def test_timestamps_keep_full_int64_precision():
    # one nanosecond either side of a frame boundary at 1.7e18, where float64 cannot tell them apart
    frames, _, _ = assign_frames(np.array([T0 + 99, T0 + 100]), FRAMES)
    assert frames.tolist() == [0, 1]


def test_frames_with_repeated_or_backward_timestamps_get_no_samples():
    ts = T0 + np.array([0, 100, 100, 300, 250, 400], dtype=np.int64)
    in_order = frames_in_order(ts)
    assert in_order.tolist() == [True, True, False, True, False, True]
    frames, _, _ = assign_frames(T0 + np.array([50, 100, 150, 260, 320, 410]), ts, frame_in_order=in_order)
    assert frames.tolist() == [0, 1, 1, 1, 3, 5]


def test_in_intervals_is_closed_and_handles_overlaps():
    starts, ends = np.array([10, 12, 40]), np.array([20, 14, 50])
    inside = in_intervals(np.array([9, 10, 15, 20, 21, 40, 50, 51]), starts, ends)
    assert inside.tolist() == [False, True, True, True, False, True, True, False]
    assert not in_intervals(np.array([1, 2]), np.array([], dtype=np.int64), np.array([], dtype=np.int64)).any()


def hand_built_gaze() -> pd.DataFrame:
    """Ten samples over four frames (0..3) of a 100 x 50 image; see the comments for each one's fate."""
    rows = [
        # t,   x,     y,   worn, fixation, blink
        (-5, 10.0, 10.0, 1.0, pd.NA, pd.NA),  # before the first frame
        (0, 10.0, 20.0, 1.0, 1, pd.NA),  # frame 0, valid
        (40, 30.0, 40.0, 1.0, 1, pd.NA),  # frame 0, valid
        (80, 99.5, 49.0, 0.0, pd.NA, pd.NA),  # frame 0, not worn
        (100, 100.0, 10.0, 1.0, 2, pd.NA),  # frame 1, outside (x == width)
        (150, 50.0, np.nan, 1.0, 2, pd.NA),  # frame 1, NaN
        (210, 20.0, 20.0, 1.0, pd.NA, 7),  # frame 2, blink id set
        (260, 20.0, 30.0, 1.0, pd.NA, pd.NA),  # frame 2, inside a blink interval of blinks.csv
        (320, 0.0, 0.0, 1.0, 3, pd.NA),  # frame 3, valid (the corner pixel is inside)
        (450, 5.0, 5.0, 1.0, 3, pd.NA),  # after the last frame
    ]
    t, x, y, worn, fixation, blink = zip(*rows)
    return pd.DataFrame(
        {
            "timestamp [ns]": T0 + np.array(t, dtype=np.int64),
            "gaze x [px]": np.array(x),
            "gaze y [px]": np.array(y),
            "worn": np.array(worn),
            "fixation id": pd.array(fixation, dtype="Int64"),
            "blink id": pd.array(blink, dtype="Int64"),
        }
    )


BLINKS = pd.DataFrame({"blink id": [8], "start timestamp [ns]": [T0 + 250], "end timestamp [ns]": [T0 + 270]})


def test_flag_gaze_marks_each_reason_and_valid_is_none_of_them():
    samples = flag_gaze(hand_built_gaze(), FRAMES, (100, 50), BLINKS)
    assert samples["frame"].tolist() == [-1, 0, 0, 0, 1, 1, 2, 2, 3, -1]
    expected = {
        "before first frame": [0],
        "not worn": [3],
        "outside frame": [4],
        "nan": [5],
        "in blink": [6, 7],
        "after last frame": [9],
    }
    for flag, rows in expected.items():
        assert np.flatnonzero(samples[flag]).tolist() == rows, flag
    assert np.flatnonzero(samples["valid"]).tolist() == [1, 2, 8]
    assert set(FLAG_COLUMNS) <= set(samples.columns)


def test_per_frame_means_counts_and_fixation_by_hand():
    samples = flag_gaze(hand_built_gaze(), FRAMES, (100, 50), BLINKS)
    per_frame = aggregate_per_frame(samples, FRAMES)
    assert per_frame["frame"].tolist() == [0, 1, 2, 3]
    assert per_frame["timestamp [ns]"].tolist() == FRAMES.tolist()
    assert per_frame["samples"].tolist() == [3, 2, 2, 1]
    assert per_frame["valid samples"].tolist() == [2, 0, 0, 1]
    np.testing.assert_allclose(per_frame["gaze x [px]"], [20.0, np.nan, np.nan, 0.0])
    np.testing.assert_allclose(per_frame["gaze y [px]"], [30.0, np.nan, np.nan, 0.0])
    # frame 0: fixation 1 twice, none once; frame 2: no fixation at all
    assert per_frame["fixation id"].tolist() == [1, 2, pd.NA, 3]
    assert per_frame["fixation id"].dtype == "Int64"


def test_majority_fixation_counts_no_fixation_and_ties_go_to_the_smallest_id():
    gaze = pd.DataFrame(
        {
            "timestamp [ns]": T0 + np.array([0, 10, 20, 30, 100, 110, 120, 130, 140]),
            "gaze x [px]": 1.0,
            "gaze y [px]": 1.0,
            "fixation id": pd.array([5, 5, pd.NA, pd.NA, 9, 4, 4, 9, pd.NA], dtype="Int64"),
        }
    )
    per_frame = aggregate_per_frame(flag_gaze(gaze, FRAMES[:2], (10, 10)), FRAMES[:2])
    assert per_frame["fixation id"].tolist() == [5, 4]


def test_majority_fixation_is_missing_when_most_samples_have_none():
    gaze = pd.DataFrame(
        {
            "timestamp [ns]": T0 + np.array([0, 10, 20]),
            "gaze x [px]": 1.0,
            "gaze y [px]": 1.0,
            "fixation id": pd.array([5, pd.NA, pd.NA], dtype="Int64"),
        }
    )
    per_frame = aggregate_per_frame(flag_gaze(gaze, FRAMES, (10, 10)), FRAMES)
    assert per_frame["fixation id"].isna().all()


def test_no_samples_on_frames_gives_an_empty_typed_table():
    gaze = hand_built_gaze().iloc[[0]]  # only the sample before the first frame
    per_frame = aggregate_per_frame(flag_gaze(gaze, FRAMES, (100, 50)), FRAMES)
    assert len(per_frame) == 0
    assert per_frame.dtypes["frame"] == np.int64 and per_frame.dtypes["fixation id"] == "Int64"


def test_fixation_frames_at_start_end_and_midpoint():
    fixations = pd.DataFrame(
        {
            "fixation id": [1, 2, 3],
            "start timestamp [ns]": T0 + np.array([-20, 120, 250]),
            "end timestamp [ns]": T0 + np.array([90, 330, 1000]),
        }
    )
    out = fixation_frames(fixations, FRAMES)
    assert out["start frame"].tolist() == [-1, 1, 2]
    assert out["end frame"].tolist() == [0, 3, -1]
    assert out["midpoint frame"].tolist() == [0, 2, -1]  # (250 + 1000) / 2 = 625: after the video


# -- on a synthetic recording ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    folder = write_recording(tmp_path_factory.mktemp("gaze"), size=(320, 240), seconds=2.0, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)
        return Recording.open(folder)


def test_every_sample_on_a_frame_is_counted_once(recording):
    samples = recording.gaze_samples
    per_frame = recording.per_frame_gaze()
    assert per_frame["samples"].sum() == (samples["frame"] >= 0).sum()
    assert per_frame["valid samples"].sum() == samples["valid"].sum()
    assert samples["before first frame"].sum() > 0  # gaze starts before the scene camera
    for flag in ("not worn", "in blink", "outside frame", "nan"):
        assert samples[flag].any(), flag
    assert len(per_frame) == recording.n_frames  # 200 Hz gaze reaches every 30 Hz frame


def test_valid_gaze_in_fixations_lies_on_a_figure_head(recording):
    per_frame = recording.per_frame_gaze().set_index("frame")
    fixations = recording.fixation_frames()
    start_ns = recording.info["start_time"]
    width, height = recording.frame_size
    checked = 0
    for _, fixation in fixations.iterrows():
        # frames wholly inside the fixation: no saccade samples pull their mean away
        for frame in range(fixation["start frame"] + 1, fixation["end frame"]):
            row = per_frame.loc[frame]
            if row["valid samples"] == 0:
                continue  # the glance outside the scene camera's view
            heads = figure_heads((row["timestamp [ns]"] - start_ns) / 1e9, width, height, 2, 4)
            distance = np.hypot(heads[:, 0] - row["gaze x [px]"], heads[:, 1] - row["gaze y [px]"]).min()
            assert distance < 0.02 * width, frame
            assert row["fixation id"] == fixation["fixation id"]
            checked += 1
    assert checked > recording.n_frames // 3


def test_fixation_frames_of_a_recording_bracket_each_fixation(recording):
    frames = recording.fixation_frames()
    assert len(frames) == len(recording.fixations)
    inside = frames[(frames["start frame"] >= 0) & (frames["end frame"] >= 0)]
    assert len(inside) >= len(frames) - 1  # only the first may start before the first frame
    assert (inside["start frame"] <= inside["midpoint frame"]).all()
    assert (inside["midpoint frame"] <= inside["end frame"]).all()
    per_frame = recording.per_frame_gaze().set_index("frame")
    for _, fixation in inside.iterrows():
        mid = per_frame.loc[fixation["midpoint frame"], "fixation id"]
        assert mid == fixation["fixation id"]
