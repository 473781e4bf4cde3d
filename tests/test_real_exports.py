"""Real Pupil Cloud files (shared/fixtures/real_exports, each with its SOURCE.txt) read as they are.

No whole real recording is public, so the real files are combined with a
synthetic video, frame timestamps and gaze written under the real recording id.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.enrichment import recognise
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.glasses import NEON, device_of
from napari_densepose_gaze.hits import HitSettings, default_radius, radius_px
from napari_densepose_gaze.intrinsics import intrinsics_from, undistort, valid_pixels
from napari_densepose_gaze.recording import ExportWarning, Recording, find_recordings
from napari_densepose_gaze.synthetic.export import write_recording


def _real_exports() -> Path:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "fixtures" / "real_exports"
        if candidate.is_dir():
            return candidate
    pytest.fail("real export fixtures not found: check out shared/ beside the repo")


REAL = _real_exports()
NEON_CAMERA = REAL / "neon_scene_camera_930013" / "scene_camera.json"
MARKER_MAPPER = REAL / "neon_marker_mapper_2025"
TIMESERIES = REAL / "neon_timeseries_2026"
WITH_FIXATIONS = TIMESERIES / "test_wearer1_lb_eyetracking-9355240b"
OTHER_RECORDING = TIMESERIES / "lb_pilot_3170_eyetracking-a2c3d3dd"


def _real_neon_recording(tmp_path: Path, *, blinks_from_other: bool = False) -> Path:
    """A synthetic Neon recording carrying the real info.json, fixations.csv and scene_camera.json."""
    folder = write_recording(tmp_path, seconds=1.0, size=(1600, 1200), seed=3)
    info = json.loads((WITH_FIXATIONS / "info.json").read_text(encoding="utf-8"))
    real_id = info["recording_id"]
    for name in ("world_timestamps.csv", "gaze.csv", "saccades.csv", "events.csv", "blinks.csv"):
        table = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        table["recording id"] = real_id
        table.to_csv(folder / name, index=False)
    for name in ("info.json", "fixations.csv"):
        shutil.copyfile(WITH_FIXATIONS / name, folder / name)
    shutil.copyfile(NEON_CAMERA, folder / "scene_camera.json")
    if blinks_from_other:
        shutil.copyfile(OTHER_RECORDING / "blinks.csv", folder / "blinks.csv")
    return folder


def _open(folder: Path) -> Recording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)
        return Recording.open(folder)


def test_the_marker_mapper_export_is_refused_with_a_message_that_names_it():
    for call in (Recording.open, find_recordings):
        with pytest.raises(DensePoseGazeError) as error:
            call(MARKER_MAPPER)
        message = str(error.value)
        assert "Marker Mapper enrichment export" in message
        assert "'marker-mapper export'" in message  # quotes what it found
        assert "3 recording(s)" in message  # sections.csv covers three recordings
        assert "Timeseries Data + Scene Video" in message  # the download that is needed


def test_the_marker_mapper_export_wrapped_in_a_download_folder_is_refused_too(tmp_path):
    shutil.copytree(MARKER_MAPPER, tmp_path / "download" / "marker_mapper")
    with pytest.raises(DensePoseGazeError, match="Marker Mapper"):
        find_recordings(tmp_path / "download")


def test_the_timeseries_fragments_are_no_enrichment_and_their_info_names_neon():
    info = json.loads((WITH_FIXATIONS / "info.json").read_text(encoding="utf-8"))
    # info.json decides even when the frame size says otherwise
    assert device_of(None, (1088, 1080), info) is NEON
    assert recognise(TIMESERIES) is None and recognise(WITH_FIXATIONS) is None
    assert find_recordings(TIMESERIES) == [WITH_FIXATIONS]  # the other folder holds only blinks.csv and template.csv


def test_a_neon_recording_with_the_real_files_reads_them_all(tmp_path):
    folder = _real_neon_recording(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)  # the real files need no workaround
        recording = Recording.open(folder)
    assert recording.recording_id == "9355240b-5adc-4d8a-a2e0-e3cca65bfda2"
    assert len(recording.fixations) == 20
    assert recording.fixations["start timestamp [ns]"].iloc[0] == 1787086969531281629  # exact int64
    assert recording.scene_camera is not None and "distortion_coefficients" in recording.scene_camera
    assert default_radius(recording.scene_camera, recording.frame_size, recording.info) == HitSettings(1.8, "deg")


def test_a_blinks_csv_of_another_recording_is_left_out_with_a_note(tmp_path):
    folder = _real_neon_recording(tmp_path, blinks_from_other=True)
    recording = _open(folder)
    assert recording.blinks.empty
    note = next(w for w in recording.warnings if "blinks.csv" in w and "another recording" in w)
    assert "a2c3d3dd-30f7-4511-8288-d5c7edc7422d" in note and "9355240b-5adc-4d8a-a2e0-e3cca65bfda2" in note


def test_a_gaze_csv_of_another_recording_is_refused(tmp_path):
    folder = _real_neon_recording(tmp_path)
    gaze = pd.read_csv(folder / "gaze.csv", dtype=str, keep_default_na=False)
    gaze["recording id"] = "a2c3d3dd-30f7-4511-8288-d5c7edc7422d"
    gaze.to_csv(folder / "gaze.csv", index=False)
    with pytest.raises(DensePoseGazeError, match="gaze.csv .* a2c3d3dd.*9355240b"):
        _open(folder)


def test_a_marker_mapper_fixations_csv_in_a_recording_folder_is_left_out_and_its_gaze_csv_refused(tmp_path):
    folder = _real_neon_recording(tmp_path)
    shutil.copyfile(MARKER_MAPPER / "fixations.csv", folder / "fixations.csv")
    recording = _open(folder)
    assert recording.fixations.empty
    assert any("Marker Mapper" in w and "fixations.csv" in w for w in recording.warnings)
    shutil.copyfile(MARKER_MAPPER / "gaze.csv", folder / "gaze.csv")
    with pytest.raises(DensePoseGazeError, match="gaze.csv of a Marker Mapper enrichment export"):
        _open(folder)


# -- the hit radius with the real Neon intrinsics -----------------------------------------------------------------

CAMERA = json.loads(NEON_CAMERA.read_text(encoding="utf-8"))
K = np.asarray(CAMERA["camera_matrix"], dtype=np.float64)
D = np.asarray(CAMERA["distortion_coefficients"], dtype=np.float64).ravel()


def _distort(q: np.ndarray) -> np.ndarray:
    """OpenCV's rational + tangential model, written out: normalized points (N, 2) -> pixels (N, 2)."""
    x, y = q[:, 0], q[:, 1]
    k1, k2, p1, p2, k3, k4, k5, k6 = D
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.column_stack([K[0, 0] * xd + K[0, 2], K[1, 1] * yd + K[1, 2]])


def _undistort(pixels: np.ndarray) -> np.ndarray:
    """Damped Newton iteration on the written-out model (not OpenCV's fixed-point solver)."""
    q = np.column_stack([(pixels[:, 0] - K[0, 2]) / K[0, 0], (pixels[:, 1] - K[1, 2]) / K[1, 1]])
    h = 1e-7
    for _ in range(300):
        f = _distort(q) - pixels
        jx = (_distort(q + [h, 0]) - _distort(q - [h, 0])) / (2 * h)
        jy = (_distort(q + [0, h]) - _distort(q - [0, h])) / (2 * h)
        step = np.linalg.solve(np.stack([jx, jy], axis=-1), f[..., None])[..., 0]
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        q = q - step * np.minimum(1.0, 0.05 / np.maximum(norm, 1e-300))
    assert np.abs(_distort(q) - pixels).max() < 1e-6
    return q


def _independent_radius(pixels: np.ndarray, degrees: float) -> np.ndarray:
    """Mean distance of 8 rays at ``degrees`` around each pixel's ray, projected with the written-out model."""
    q = _undistort(pixels)
    rays = np.column_stack([q, np.ones(len(q))])
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    radii = []
    for ray, pixel in zip(rays, pixels):
        u = np.cross(ray, [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(ray, u)
        t = math.radians(degrees)
        ring = [math.cos(t) * ray + math.sin(t) * (math.cos(p) * u + math.sin(p) * v)
                for p in np.arange(8) * np.pi / 4]
        ring = np.array([r[:2] / r[2] for r in ring])
        radii.append(np.linalg.norm(_distort(ring) - pixel, axis=1).mean())
    return np.array(radii)


def test_the_real_neon_radius_at_the_centre_and_the_corners_matches_an_independent_computation():
    pixels = np.array([[831.45, 589.92], [100.0, 100.0], [1500.0, 100.0], [100.0, 1100.0], [1500.0, 1100.0]])
    ours = radius_px(pixels[:, 0], pixels[:, 1], HitSettings(2.0, "deg"), CAMERA)
    np.testing.assert_allclose(ours, _independent_radius(pixels, 2.0), atol=1e-3)
    # the numbers: about 31 px at the centre and 33 px near a corner, where ignoring the
    # distortion gave 53 px
    assert ours[0] == pytest.approx(30.9, abs=0.1) and ours[1] == pytest.approx(33.0, abs=0.1)


def test_the_real_neon_radius_beyond_the_calibrated_field_is_finite_and_continuous():
    # the real model's distorted radius peaks ~66 deg off axis, short of the very corners
    corners = np.array([[0.0, 0.0], [1600.0, 0.0], [0.0, 1200.0], [1600.0, 1200.0]])
    inside = corners + np.sign(np.array([831.0, 590.0]) - corners) * 60  # 60 px in along both axes
    r_corner = radius_px(corners[:, 0], corners[:, 1], HitSettings(2.0, "deg"), CAMERA)
    r_inside = radius_px(inside[:, 0], inside[:, 1], HitSettings(2.0, "deg"), CAMERA)
    assert np.isfinite(r_corner).all()
    np.testing.assert_allclose(r_corner, r_inside, rtol=0.35)


def test_the_image_corner_is_beyond_the_real_neon_models_field():
    intrinsics = intrinsics_from(CAMERA, frame_size=(1600, 1200))
    corner, inside = np.array([[0.0, 0.0]]), np.array([[100.0, 100.0]])
    assert not valid_pixels(corner, undistort(corner, intrinsics), intrinsics).any()
    assert valid_pixels(inside, undistort(inside, intrinsics), intrinsics).all()
