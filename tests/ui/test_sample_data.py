"""File > Open Sample > Synthetic recording: generated offline once, then reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_densepose_gaze.recording import find_recordings
from napari_densepose_gaze.synthetic.export import SAMPLE_SETTINGS
from napari_densepose_gaze.ui import sample_data
from napari_densepose_gaze.ui.layer_roles import FIXATIONS, GAZE, RECORDING_FOLDER_KEY, SCENE_VIDEO, role_of

TINY = {"seconds": 1.0, "size": (160, 120), "seed": 3}


def test_open_sample_shows_a_recording_with_gaze(make_napari_viewer, sample_cache: Path, layer_of) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-densepose-gaze", "synthetic_recording")

    assert [role_of(layer) for layer in viewer.layers] == [SCENE_VIDEO, FIXATIONS, GAZE]
    width, height = SAMPLE_SETTINGS["size"]
    n_frames = round(SAMPLE_SETTINGS["seconds"] * SAMPLE_SETTINGS["fps"])
    assert layer_of(viewer, SCENE_VIDEO).data.shape == (n_frames, height, width, 3)
    assert len(layer_of(viewer, GAZE).data) > n_frames // 2
    assert len(layer_of(viewer, FIXATIONS).data) > 0
    folder = Path(layer_of(viewer, GAZE).metadata[RECORDING_FOLDER_KEY])
    assert sample_cache in folder.parents


def test_sample_is_generated_once_and_then_reused(sample_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = sample_data.sample_recording_folder(**TINY)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached sample should have been reused")

    monkeypatch.setattr(sample_data, "write_recording", must_not_run)
    assert sample_data.sample_recording_folder(**TINY) == first
    assert len(find_recordings(first)) == 1


def test_other_parameters_make_another_sample(sample_cache: Path) -> None:
    one = sample_data.sample_recording_folder(**TINY)
    other = sample_data.sample_recording_folder(**{**TINY, "seed": 4})
    assert one != other and one.parent == other.parent == sample_cache / "samples"


def test_interrupted_generation_leaves_nothing_half_written(
    sample_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = sample_data.write_recording

    def interrupted(folder, **kwargs):
        (Path(folder) / "gaze.csv").write_text("section id,recording id\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(sample_data, "write_recording", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sample_data.sample_recording_folder(**TINY)
    assert list((sample_cache / "samples").iterdir()) == []

    monkeypatch.setattr(sample_data, "write_recording", real_write)
    folder = sample_data.sample_recording_folder(**TINY)
    assert (find_recordings(folder)[0] / "gaze.csv").stat().st_size > 100
