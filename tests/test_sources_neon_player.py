"""Neon Player exports: float frame times, its column orders, calibration.json, a missing timestamps file."""

from __future__ import annotations

import json
import shutil
import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.synthetic.neon_player import neon_player_export_from


@pytest.fixture(scope="module")
def export(synthetic_recording, tmp_path_factory) -> Path:
    """A Neon Player export with world.mp4 only (what "Export All" writes); read-only."""
    return neon_player_export_from(synthetic_recording(), tmp_path_factory.mktemp("neon_player"))


@pytest.fixture
def export_copy(export, tmp_path) -> Path:
    return Path(shutil.copytree(export, tmp_path / export.name))


def quietly(path: Path) -> Recording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Recording.open(path)


def test_float_frame_times_are_read_as_exactly_as_written_and_said_to_be_floats(export) -> None:
    recording = quietly(export)
    written = pd.read_csv(export / "world_timestamps.csv", dtype={"timestamp [ns]": str})["timestamp [ns]"]
    assert "e+18" in written[0]  # the file really holds float text
    assert recording.frame_timestamps.tolist() == [int(Decimal(v)) for v in written]  # the text, exactly
    assert any("floating point" in w and "Neon Player" in w for w in recording.warnings)


def test_the_gaze_table_has_cloud_columns_in_cloud_order_and_no_section_id_values(export) -> None:
    gaze = quietly(export).gaze
    assert list(gaze.columns[:3]) == ["section id", "recording id", "timestamp [ns]"]
    assert gaze["section id"].isna().all() and gaze["recording id"].notna().all()
    assert set(gaze["worn"].unique()) == {0.0, 1.0}


def test_intrinsics_come_from_calibration_json(export) -> None:
    calibration = json.loads((export / "calibration.json").read_text())
    camera = quietly(export).scene_camera
    np.testing.assert_array_equal(camera["camera_matrix"], calibration["scene_camera_matrix"])
    np.testing.assert_array_equal(np.ravel(camera["dist_coefs"]), calibration["scene_distortion_coefficients"])


def test_without_calibration_json_the_recording_opens_without_intrinsics_and_says_so(export_copy) -> None:
    (export_copy / "calibration.json").unlink()
    recording = quietly(export_copy)
    assert recording.scene_camera is None
    assert any("calibration.json is missing" in w for w in recording.warnings)


def test_a_video_without_its_timestamps_file_is_an_error_naming_it(export_copy) -> None:
    (export_copy / "world_timestamps.csv").unlink()
    with pytest.raises(DensePoseGazeError, match="world_timestamps.csv is missing.*Neon Player"):
        Recording.open(export_copy)


def test_a_scene_mp4_beside_world_mp4_is_used_and_does_not_make_the_folder_unreadable(export_copy) -> None:
    shutil.copyfile(export_copy / "world.mp4", export_copy / "scene.mp4")
    shutil.copyfile(export_copy / "world_timestamps.csv", export_copy / "scene_timestamps.csv")
    recording = quietly(export_copy)
    assert recording.video_path.name == "scene.mp4"
    world = quietly(export_copy / "world.mp4")
    assert world.video_path.name == "world.mp4"
    np.testing.assert_array_equal(recording.frame_timestamps, world.frame_timestamps)


def test_missing_optional_tables_are_empty_with_a_note_naming_the_plugin(export_copy) -> None:
    (export_copy / "blinks.csv").unlink()
    recording = quietly(export_copy)
    assert recording.blinks.empty
    assert any("blinks.csv is missing" in w and "Neon Player" in w for w in recording.warnings)
