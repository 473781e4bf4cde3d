"""Malformed info.json / scene_camera.json warn clearly and never crash or give a wrong radius."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from napari_densepose_gaze.consistency import float_precision, float_precision_note, read_json_object
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.hits import HitSettings, default_radius, radius_px
from napari_densepose_gaze.hits.radius import IntrinsicsWarning
from napari_densepose_gaze.recording import ExportWarning, Recording
from napari_densepose_gaze.synthetic.export import DISTORTION_KEYS, write_recording


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
        ('{"a": ' * 40 + "1" + "}" * 40, "more than 32 levels"),
        ('{"start_time": ' + "1" * 5000 + "}", "not valid JSON"),
        ("{ not json", "not valid JSON"),
        ("[1, 2]", "lacks an object"),
    ],
)
def test_malformed_json_is_ignored_with_a_note(tmp_path, text, said):
    path = tmp_path / "info.json"
    path.write_text(text)
    notes: list[str] = []
    assert read_json_object(path, notes) == {}
    assert len(notes) == 1 and said in notes[0] and "info.json" in notes[0]


def test_a_huge_json_file_is_not_read(tmp_path):
    path = tmp_path / "scene_camera.json"
    path.write_bytes(b" " * (5 * 2**20) + b"{}")
    notes: list[str] = []
    assert read_json_object(path, notes) == {} and "MiB" in notes[0]


def test_info_fields_of_a_wrong_type_are_dropped_and_named(tmp_path):
    path = tmp_path / "info.json"
    info = {"recording_id": ["not", "text"], "start_time": "1700000000", "duration": 2**70, "gaze_frequency": -200,
            "wearer_name": "w", "module_serial_number": 123456, "frame_name": "Just act natural"}
    path.write_text(json.dumps(info))
    notes: list[str] = []
    read = read_json_object(path, notes)
    assert read == {"wearer_name": "w", "module_serial_number": 123456, "frame_name": "Just act natural"}
    for field in ("recording_id", "start_time", "duration", "gaze_frequency"):
        assert field in notes[0]


@pytest.fixture(scope="module")
def recording_folder(tmp_path_factory):
    return write_recording(tmp_path_factory.mktemp("rec"), seconds=0.5, size=(160, 120), seed=1)


@pytest.mark.parametrize(
    "change",
    [
        {"camera_matrix": [[0.0, 0, 80], [0, 0.0, 60], [0, 0, 1]]},
        {"camera_matrix": [[float("nan"), 0, 80], [0, 89.2, 60], [0, 0, 1]]},
        # the synthetic recording is a Neon one: its distortion is under Neon's key
        {DISTORTION_KEYS["neon"]: [[1e10] * 8]},
        {DISTORTION_KEYS["neon"]: [[0.1] * 7]},
        {"camera_matrix": "identity"},
    ],
)
def test_implausible_intrinsics_fall_back_to_pixel_radii_with_a_note(tmp_path, recording_folder, change):
    folder = tmp_path / recording_folder.name
    shutil.copytree(recording_folder, folder)
    camera = json.loads((folder / "scene_camera.json").read_text())
    (folder / "scene_camera.json").write_text(json.dumps({**camera, **change}))  # NaN written as NaN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)
        recording = Recording.open(folder)
    assert recording.scene_camera is None
    assert any("scene_camera.json" in w and "hit radii are in pixels" in w for w in recording.warnings)
    settings = default_radius(recording.scene_camera, recording.frame_size, recording.info)
    assert settings.unit == "px" and 0 < settings.radius < 20


def test_default_radius_warns_and_falls_back_for_refused_intrinsics_given_directly():
    camera = {"camera_matrix": [[892.0, 0, 800], [0, 892.0, 600], [0, 0, 1]], "dist_coefs": [[1e10] * 8]}
    with pytest.warns(IntrinsicsWarning, match="dist_coefs"):
        settings = default_radius(camera, (1600, 1200))
    assert settings == HitSettings(28.0, "px")
    with pytest.raises(DensePoseGazeError, match="give the hit radius in pixels"):
        radius_px(np.array([800.0]), np.array([600.0]), HitSettings(2.0, "deg"), camera)


TIMES = [1754690230082000000, 1787086969531281629, 1787086969836527629]


def test_timestamps_written_from_float64_are_exact_to_the_float_spacing_not_to_their_shortest_digits():
    cells = [repr(float(t)) for t in TIMES]
    assert cells[0] == "1.754690230082e+18"  # 13 digits, the last standing for 10^6 ns: yet only 256 ns are lost
    assert float_precision(cells) == (256.0, True)
    note = float_precision_note(cells, "timestamp [ns]", "gaze.csv in rec")
    assert "about 256 ns" in note and "64-bit floats" in note and "Neon Player" in note


def test_timestamps_cut_to_15_digits_by_a_spreadsheet_lose_a_unit_of_the_15th_digit():
    cells = [f"{t:.15g}" for t in TIMES]
    assert float_precision(cells) == (10_000.0, False)
    note = float_precision_note(cells, "timestamp [ns]", "gaze.csv in rec")
    assert "about 10 µs" in note and "spreadsheet" in note


def test_integers_written_as_whole_floats_lose_nothing_unless_they_are_float64_values():
    assert float_precision(["12.0", "13"]) is None and float_precision(["12", "13"]) is None
    assert float_precision_note(["1787086969531281664.0"], "timestamp [ns]", "gaze.csv") == (
        "gaze.csv: 'timestamp [ns]' was written as floating point (e.g. '1787086969531281664.0'); values are exact "
        "only to about 256 ns. That is far below a gaze sample's 5 ms, so matching gaze to frames is not affected. "
        "The file was written from 64-bit floats (Neon Player writes them, and so does a script that reads the "
        "timestamps without an int64 dtype); for exact values use Pupil Cloud's export, or read and write the "
        "column as int64.")
