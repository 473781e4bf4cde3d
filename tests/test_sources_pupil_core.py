"""Pupil Player exports of Pupil Core recordings: normalised gaze, confidence, Pupil time, intrinsics."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.sources import DEFAULT_MIN_CONFIDENCE
from napari_densepose_gaze.synthetic.export import distortion_of
from napari_densepose_gaze.synthetic.pupil_core import (
    HIGH_CONFIDENCE,
    LOW_CONFIDENCE,
    PUPIL_TIME_START_S,
    pupil_core_recording_from,
)


@pytest.fixture(scope="module")
def export(synthetic_recording, tmp_path_factory) -> Path:
    """exports/000 of a Pupil Core recording; read-only."""
    return pupil_core_recording_from(synthetic_recording(), tmp_path_factory.mktemp("pupil_core"))


@pytest.fixture
def root_copy(export, tmp_path) -> Path:
    """A private copy of the whole recording folder (with its export)."""
    return Path(shutil.copytree(export.parent.parent, tmp_path / export.parent.parent.name))


def quietly(path: Path, **kwargs) -> Recording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Recording.open(path, **kwargs)


def test_normalised_gaze_becomes_pixels_with_y_flipped(export) -> None:
    recording = quietly(export)
    written = pd.read_csv(export / "gaze_positions.csv")
    width, height = recording.frame_size
    np.testing.assert_allclose(recording.gaze["gaze x [px]"], written["norm_pos_x"] * width)
    np.testing.assert_allclose(recording.gaze["gaze y [px]"], (1 - written["norm_pos_y"]) * height)


def test_gaze_below_pupil_players_default_confidence_counts_as_not_worn(export) -> None:
    assert LOW_CONFIDENCE < DEFAULT_MIN_CONFIDENCE == 0.6 < HIGH_CONFIDENCE
    gaze = quietly(export).gaze
    np.testing.assert_array_equal(gaze["worn"], np.where(gaze["confidence"] < 0.6, 0.0, 1.0))
    assert (gaze["worn"] == 0).any()


def test_the_confidence_threshold_can_be_set(export) -> None:
    strict = quietly(export, min_confidence=0.99).gaze_samples
    assert strict["not worn"].all()
    lenient = quietly(export, min_confidence=0.0).gaze_samples
    assert not lenient["not worn"].any()
    with pytest.raises(DensePoseGazeError, match="from 0 to 1"):
        Recording.open(export, min_confidence=1.5)


def test_pupil_time_becomes_utc_nanoseconds_through_info_player_json(export) -> None:
    recording = quietly(export)
    info = json.loads((export.parent.parent / "info.player.json").read_text())
    seconds = np.load(export / "world_timestamps.npy")
    expected = np.round((seconds - PUPIL_TIME_START_S) * 1e9) + info["start_time_system_s"] * 1e9
    np.testing.assert_allclose(recording.frame_timestamps, expected, atol=1000, rtol=0)
    assert recording.recording_id == info["recording_uuid"]


def test_without_info_player_json_times_stay_in_pupil_time_with_a_note(root_copy) -> None:
    (root_copy / "info.player.json").unlink()
    export = root_copy / "exports" / "000"
    recording = quietly(export)
    seconds = np.load(export / "world_timestamps.npy")
    np.testing.assert_array_equal(recording.frame_timestamps, np.round(seconds * 1e9).astype(np.int64))
    assert any("Pupil time" in w for w in recording.warnings)


def test_the_csv_frame_times_serve_when_the_npy_is_missing(root_copy, export) -> None:
    copy = root_copy / "exports" / "000"
    (copy / "world_timestamps.npy").unlink()
    from_csv = quietly(copy).frame_timestamps
    np.testing.assert_allclose(from_csv, quietly(export).frame_timestamps, atol=1000, rtol=0)  # microseconds


def test_annotations_become_events_and_fixations_keep_their_ids(export) -> None:
    recording = quietly(export)
    annotations = pd.read_csv(export / "annotations.csv")
    assert recording.events["name"].tolist() == annotations["label"].tolist()
    assert set(recording.events["type"]) == {"annotation"}
    assert recording.fixations["fixation id"].tolist() == pd.read_csv(export / "fixations.csv")["id"].tolist()


def test_without_gaze_positions_the_error_says_to_export_raw_data(root_copy) -> None:
    export = root_copy / "exports" / "000"
    (export / "gaze_positions.csv").unlink()
    with pytest.raises(DensePoseGazeError, match="gaze_positions.csv is missing.*Raw Data Exporter"):
        Recording.open(export)


def test_world_intrinsics_give_the_scene_camera(synthetic_recording, tmp_path) -> None:
    pytest.importorskip("msgpack", reason="world.intrinsics is msgpack; reading it needs the optional msgpack")
    export = pupil_core_recording_from(synthetic_recording(), tmp_path, intrinsics=True)
    cloud = json.loads((synthetic_recording() / "scene_camera.json").read_text())
    camera = quietly(export).scene_camera
    np.testing.assert_allclose(camera["camera_matrix"], cloud["camera_matrix"])
    np.testing.assert_allclose(np.ravel(camera["dist_coefs"]), np.ravel(distortion_of(cloud)))
