"""Every source becomes the same Recording: one synthetic recording written in each layout reads alike.

The Neon Player export, the native Neon folder and the Pupil Player export are
written from one synthetic Pupil Cloud recording; opened, each must give that
recording's frames, gaze pixels and flags, fixations, blinks and events, so
that everything downstream works unchanged whatever the source.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.sources import NATIVE_NEON, NEON_PLAYER, PUPIL_CLOUD, PUPIL_CORE
from napari_densepose_gaze.synthetic.export import distortion_of
from napari_densepose_gaze.synthetic.native_neon import native_neon_recording_from
from napari_densepose_gaze.synthetic.neon_player import neon_player_export_from
from napari_densepose_gaze.synthetic.pupil_core import pupil_core_recording_from

WRITERS = {
    NEON_PLAYER: neon_player_export_from,
    NATIVE_NEON: native_neon_recording_from,
    PUPIL_CORE: pupil_core_recording_from,
}
# how far times may move: Neon Player writes frame times as float64 text (~256 ns at today's
# times); Pupil time to UTC goes through the float start_time_system_s (~240 ns)
TIME_TOLERANCE_NS = {NEON_PLAYER: 256, NATIVE_NEON: 0, PUPIL_CORE: 256}
# gaze pixels: native Neon stores float32; the others round-trip float64 text
PIXEL_TOLERANCE = {NEON_PLAYER: 0.0, NATIVE_NEON: 1e-3, PUPIL_CORE: 1e-9}


def opened(path: Path) -> Recording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Recording.open(path)


@pytest.fixture(scope="module")
def cloud(synthetic_recording) -> Path:
    return synthetic_recording()


@pytest.fixture(scope="module", params=sorted(WRITERS))
def pair(request, cloud, tmp_path_factory) -> tuple[str, Recording, Recording]:
    source = request.param
    folder = WRITERS[source](cloud, tmp_path_factory.mktemp(source.replace(" ", "_")))
    return source, opened(cloud), opened(folder)


def test_each_source_says_where_it_came_from(pair) -> None:
    source, reference, recording = pair
    assert reference.source == PUPIL_CLOUD
    assert recording.source == source


def test_each_source_has_the_frames_of_the_cloud_recording(pair) -> None:
    source, reference, recording = pair
    assert recording.n_frames == reference.n_frames and recording.frame_size == reference.frame_size
    assert recording.frame_timestamps.dtype == np.int64
    shift = recording.frame_timestamps - reference.frame_timestamps
    assert np.abs(shift).max() <= TIME_TOLERANCE_NS[source]
    assert recording.frame_in_order.all()


def test_each_source_puts_every_gaze_sample_on_the_same_frame_with_the_same_flags(pair) -> None:
    source, reference, recording = pair
    ours, theirs = recording.gaze_samples, reference.gaze_samples
    assert len(ours) == len(theirs)
    assert ours["timestamp [ns]"].dtype == np.int64
    flags = ["frame", "not worn", "in blink", "outside frame", "nan", "before first frame", "after last frame",
             "valid"]
    pd.testing.assert_frame_equal(ours[flags], theirs[flags])
    for axis in ("x", "y"):
        column = f"gaze {axis} [px]"
        np.testing.assert_allclose(ours[column], theirs[column], atol=PIXEL_TOLERANCE[source], equal_nan=True)
    assert ours["not worn"].any() and ours["in blink"].any()  # the flags are exercised, not all False


def test_each_source_gives_the_same_per_frame_gaze_and_fixation(pair) -> None:
    source, reference, recording = pair
    ours, theirs = recording.per_frame_gaze(), reference.per_frame_gaze()
    pd.testing.assert_series_equal(ours["frame"], theirs["frame"])
    pd.testing.assert_series_equal(ours["fixation id"], theirs["fixation id"])
    pd.testing.assert_series_equal(ours["valid samples"], theirs["valid samples"])
    pd.testing.assert_frame_equal(recording.fixation_frames()[["start frame", "end frame", "midpoint frame"]],
                                  reference.fixation_frames()[["start frame", "end frame", "midpoint frame"]])


def test_each_source_keeps_the_cloud_columns_fixations_blinks_and_events(pair) -> None:
    source, reference, recording = pair
    for table in ("gaze", "fixations", "blinks", "events"):
        ours, theirs = getattr(recording, table), getattr(reference, table)
        assert list(ours.columns[: len(theirs.columns)]) == list(theirs.columns), table
        assert len(ours) == len(theirs), table
    np.testing.assert_allclose(recording.fixations["fixation x [px]"], reference.fixations["fixation x [px]"],
                               atol=1e-3)
    assert recording.events["name"].tolist() == reference.events["name"].tolist()
    starts = recording.blinks["start timestamp [ns]"] - reference.blinks["start timestamp [ns]"]
    assert starts.abs().max() <= TIME_TOLERANCE_NS[source]


def test_neon_sources_carry_the_scene_camera_intrinsics_and_pupil_core_only_with_world_intrinsics(pair) -> None:
    source, reference, recording = pair
    if source == PUPIL_CORE:  # written without world.intrinsics (tests/test_sources_pupil_core.py adds one)
        assert recording.scene_camera is None
        return
    np.testing.assert_allclose(recording.scene_camera["camera_matrix"], reference.scene_camera["camera_matrix"])
    np.testing.assert_allclose(np.ravel(distortion_of(recording.scene_camera)),
                               np.ravel(distortion_of(reference.scene_camera)))
