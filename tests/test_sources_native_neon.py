"""Native Neon recordings (the Companion app's folder): its streams, 200 Hz gaze, calibration.bin, damage."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.sources.native_neon import EYE_EVENT_DTYPE, GAZE_DTYPE, TIME_DTYPE
from napari_densepose_gaze.synthetic.native_neon import native_neon_recording_from

SCENE = "Neon Scene Camera v1"


@pytest.fixture(scope="module")
def native(synthetic_recording, tmp_path_factory) -> Path:
    """A native recording with Companion's 200 Hz gaze beside the real-time stream; read-only."""
    return native_neon_recording_from(synthetic_recording(), tmp_path_factory.mktemp("native"), gaze_200hz=True)


@pytest.fixture
def native_copy(native, tmp_path) -> Path:
    return Path(shutil.copytree(native, tmp_path / native.name))


def quietly(path: Path) -> Recording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Recording.open(path)


def test_the_200hz_gaze_is_preferred_over_the_real_time_stream(native) -> None:
    recording = quietly(native)
    times_200hz = np.fromfile(native / "gaze_200hz.time", dtype=TIME_DTYPE)
    assert len(np.fromfile(native / "gaze ps1.time", dtype=TIME_DTYPE)) < len(times_200hz)
    np.testing.assert_array_equal(recording.gaze["timestamp [ns]"], times_200hz)


def test_without_the_200hz_stream_the_real_time_gaze_and_worn_are_read(native_copy) -> None:
    for name in ("gaze_200hz.raw", "gaze_200hz.time", "worn_200hz.raw"):
        (native_copy / name).unlink()
    recording = quietly(native_copy)
    points = np.fromfile(native_copy / "gaze ps1.raw", dtype=GAZE_DTYPE)
    np.testing.assert_array_equal(recording.gaze["gaze x [px]"], points["x"].astype(np.float64))
    worn = np.fromfile(native_copy / "worn ps1.raw", dtype=np.uint8)
    np.testing.assert_array_equal(recording.gaze["worn"], (worn > 0).astype(np.float64))


def test_gaze_names_its_fixation_and_blink_from_their_intervals(native) -> None:
    recording = quietly(native)
    gaze, fixations = recording.gaze, recording.fixations
    first = fixations.iloc[0]
    inside = gaze["timestamp [ns]"].between(first["start timestamp [ns]"], first["end timestamp [ns]"])
    assert (gaze.loc[inside, "fixation id"] == first["fixation id"]).all() and inside.any()
    assert gaze["blink id"].notna().any()


def test_fixations_and_saccades_are_split_from_one_stream_by_event_type(native) -> None:
    events = np.fromfile(native / "fixations ps1.raw", dtype=EYE_EVENT_DTYPE)
    recording = quietly(native)
    assert len(recording.fixations) == int((events["event_type"] == 1).sum())
    assert len(recording.saccades) == int((events["event_type"] == 0).sum())
    assert recording.fixations["fixation id"].tolist() == list(range(1, len(recording.fixations) + 1))


def test_companion_apps_before_2_9_31_get_the_gaze_offset_added_to_fixation_means(native_copy) -> None:
    before = quietly(native_copy).fixations
    info = json.loads((native_copy / "info.json").read_text())
    info |= {"app_version": "2.9.30-prod", "gaze_offset": [3.0, 2.0]}
    (native_copy / "info.json").write_text(json.dumps(info))
    after = quietly(native_copy).fixations
    np.testing.assert_allclose(after["fixation x [px]"], before["fixation x [px]"] + 3.0)
    np.testing.assert_allclose(after["fixation y [px]"], before["fixation y [px]"] - 2.0)
    info["app_version"] = "2.9.31-prod"
    (native_copy / "info.json").write_text(json.dumps(info))
    np.testing.assert_allclose(quietly(native_copy).fixations["fixation x [px]"], before["fixation x [px]"])


def test_events_come_from_event_txt_and_its_times(native) -> None:
    events = quietly(native).events
    assert events["name"].iloc[0] == "recording.begin" and events["name"].iloc[-1] == "recording.end"
    np.testing.assert_array_equal(events["timestamp [ns]"], np.fromfile(native / "event.time", dtype=TIME_DTYPE))


def test_a_cut_binary_stream_is_an_error_naming_the_file(native_copy) -> None:
    path = native_copy / "gaze_200hz.raw"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DensePoseGazeError, match="gaze_200hz.raw.*not a whole number"):
        Recording.open(native_copy)


def test_a_scene_video_in_two_parts_is_refused_with_what_to_do(native_copy) -> None:
    for suffix in (".mp4", ".time"):
        shutil.copyfile(native_copy / f"{SCENE} ps1{suffix}", native_copy / f"{SCENE} ps2{suffix}")
    with pytest.raises(DensePoseGazeError, match="in 2 parts.*Neon Player.*Pupil Cloud"):
        Recording.open(native_copy)


def test_missing_gaze_is_an_error_and_missing_calibration_a_note(native_copy) -> None:
    (native_copy / "calibration.bin").unlink()
    recording = quietly(native_copy)
    assert recording.scene_camera is None and any("calibration.bin is missing" in w for w in recording.warnings)
    for name in native_copy.glob("gaze*"):
        name.unlink()
    with pytest.raises(DensePoseGazeError, match="gaze stream.*missing"):
        Recording.open(native_copy)


def test_a_native_pupil_invisible_recording_is_refused_with_the_way_through_pupil_cloud(native_copy) -> None:
    for suffix in (".mp4", ".time"):
        (native_copy / f"{SCENE} ps1{suffix}").rename(native_copy / f"PI world v1 ps1{suffix}")
    with pytest.raises(DensePoseGazeError, match="native Pupil Invisible.*Pupil Cloud"):
        Recording.open(native_copy)
