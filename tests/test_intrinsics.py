"""Scene camera intrinsics: both spellings of the distortion, nested or flat, and refusal of implausible values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.intrinsics import (
    DISTORTION_KEYS,
    IntrinsicsError,
    cone_radius,
    intrinsics_from,
    project,
    undistort,
    valid_pixels,
)

MATRIX = [[886.09, 0.0, 831.45], [0.0, 885.29, 589.92], [0.0, 0.0, 1.0]]
COEFFICIENTS = [-0.1311, 0.1097, 0.0002, -0.0006, -0.0014, 0.1690, 0.0548, 0.0225]


def neon(**changes) -> dict:
    return {"camera_matrix": MATRIX, "distortion_coefficients": [COEFFICIENTS], "serial_number": "1", **changes}


@pytest.mark.parametrize("key", DISTORTION_KEYS)
@pytest.mark.parametrize("shape", ["nested", "flat", "column"])
def test_both_distortion_keys_nested_or_flat_read_the_same_coefficients(key, shape):
    value = {"nested": [COEFFICIENTS], "flat": COEFFICIENTS, "column": [[c] for c in COEFFICIENTS]}[shape]
    intrinsics = intrinsics_from({"camera_matrix": MATRIX, key: value})
    assert intrinsics.distortion_key == key
    np.testing.assert_array_equal(intrinsics.distortion, COEFFICIENTS)
    np.testing.assert_array_equal(intrinsics.camera_matrix, MATRIX)


def test_a_flat_camera_matrix_and_a_block_keyed_by_resolution_are_read():
    flat = intrinsics_from({"camera_matrix": sum(MATRIX, []), "dist_coefs": COEFFICIENTS})
    np.testing.assert_array_equal(flat.camera_matrix, MATRIX)
    keyed = {"(800, 600)": {"camera_matrix": [[450.0, 0, 400], [0, 450.0, 300], [0, 0, 1]], "dist_coefs": [0.0] * 5},
             "(1600, 1200)": neon()}
    assert intrinsics_from(keyed, frame_size=(1600, 1200)).focal == (886.09, 885.29)
    assert intrinsics_from({"(1600, 1200)": neon()}).distortion_key == "distortion_coefficients"


def test_no_distortion_key_means_no_distortion_and_says_so():
    intrinsics = intrinsics_from({"camera_matrix": MATRIX})
    assert intrinsics.distortion_key is None and intrinsics.distortion.size == 0


@pytest.mark.parametrize(
    ("camera", "named"),
    [
        (neon(camera_matrix=[[0.0, 0, 831.45], [0, 0.0, 589.92], [0, 0, 1]]), "fx=0"),
        (neon(camera_matrix=[[float("nan"), 0, 831.45], [0, 885.29, 589.92], [0, 0, 1]]), "nan"),
        (neon(camera_matrix=[[-886.0, 0, 831.45], [0, 885.29, 589.92], [0, 0, 1]]), "fx=-886"),
        (neon(camera_matrix=[[886.0, 0, 831.45], [0, 885.29, 589.92], [0, 0, 2]]), "pinhole"),
        (neon(camera_matrix=[[886.0, 0, 831.45], [0, 885.29, 589.92]]), "6 numbers"),
        (neon(camera_matrix=[[886.0, 0, 831.45], [0, 885.29], [0, 0, 1]]), "camera_matrix"),
        (neon(camera_matrix=[["886", 0, 831.45], [0, 885.29, 589.92], [0, 0, 1]]), "'886'"),
        (neon(camera_matrix=[[True, 0, 831.45], [0, 885.29, 589.92], [0, 0, 1]]), "True"),
        (neon(camera_matrix=[[10**400, 0, 831.45], [0, 885.29, 589.92], [0, 0, 1]]), "camera_matrix"),
        (neon(camera_matrix=[[1e9, 0, 831.45], [0, 1e9, 589.92], [0, 0, 1]]), "do not fit"),
        (neon(distortion_coefficients=[[1e10] * 8]), "1e+10"),
        (neon(distortion_coefficients=[[0.1] * 6]), "6 coefficients"),
        (neon(distortion_coefficients=[[0.1] * 4, [0.1] * 4]), "shape"),
        (neon(distortion_coefficients=[[float("inf")] + COEFFICIENTS[1:]]), "inf"),
        ({"dist_coefs": COEFFICIENTS}, "no camera_matrix"),
        ({"a": neon(), "b": neon()}, "objects a, b"),
    ],
)
def test_implausible_intrinsics_are_refused_with_a_message_naming_the_value(camera, named):
    with pytest.raises(IntrinsicsError) as error:
        intrinsics_from(camera, where="scene_camera.json in rec")
    assert isinstance(error.value, DensePoseGazeError)
    message = str(error.value)
    assert message.startswith("scene_camera.json in rec") and named in message
    assert "give the hit radius in pixels" in message


def test_every_length_opencv_accepts_is_read():
    for n in (4, 5, 8, 12, 14):
        assert intrinsics_from({"camera_matrix": MATRIX, "dist_coefs": [0.0] * n}).distortion.size == n


def test_undistort_and_project_are_inverse_where_the_model_is_valid():
    intrinsics = intrinsics_from(neon())
    rng = np.random.default_rng(1)
    pixels = np.column_stack([rng.uniform(200, 1400, 500), rng.uniform(150, 1050, 500)])
    normalized = undistort(pixels, intrinsics)
    assert valid_pixels(pixels, normalized, intrinsics).all()
    back = project(np.column_stack([normalized, np.ones(len(normalized))]), intrinsics)
    np.testing.assert_allclose(back, pixels, atol=1e-6)


def test_the_cone_radius_of_a_pinhole_camera_at_its_centre_is_focal_times_tan():
    intrinsics = intrinsics_from({"camera_matrix": [[500.0, 0, 160], [0, 500.0, 120], [0, 0, 1]]})
    r = cone_radius(np.zeros((1, 2)), intrinsics, math.radians(2.0))
    assert r[0] == pytest.approx(500 * math.tan(math.radians(2.0)), rel=1e-12)
