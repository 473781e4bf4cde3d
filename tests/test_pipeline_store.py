"""``prepare_run(..., store=...)``: a run into a results store the caller holds open (napari's one handle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_densepose_gaze import pipeline
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.pipeline import LoadedModel, ModelSettings, RunOptions, prepare_run, run_densepose
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore


class LoadedEngine:
    """What a loaded predictor tells the store's metadata; it computes nothing."""

    batch_size, device, dtype, min_size, max_size = 2, "cpu", "torch.float32", 64, 107

    def predict(self, frames):
        from napari_densepose_gaze.engine.predictor import FrameResult

        return [FrameResult(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32), labels=[], uv=[],
                            part_map=np.full(f.shape[:2], 3, np.uint8), person_map=np.zeros(f.shape[:2], np.uint8))
                for f in frames]


def loaded(model: ModelSettings) -> LoadedModel:
    return LoadedModel(LoadedEngine(), model, "pixels", Path("pixels.pkl"), "0" * 64)


@pytest.fixture
def recording(synthetic_recording) -> Recording:
    return Recording.open(synthetic_recording(seconds=0.5, size=(64, 48)))


@pytest.fixture
def first_run(recording, tmp_path) -> ResultsStore:
    """A store that one run of the default settings made (frame 0), reopened for writing as napari does."""
    model = ModelSettings()
    prepared = prepare_run(recording, model, RunOptions(output=tmp_path / "store"), loaded=loaded(model))
    run_densepose(recording, prepared.predictor, prepared.store, [0])
    prepared.store.close()
    return ResultsStore.open(tmp_path / "store", "r+")


def test_a_given_store_is_used_instead_of_opening_another(recording, first_run, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a second handle was opened")

    monkeypatch.setattr(pipeline, "open_store_for_run", refuse)
    model = ModelSettings()
    prepared = prepare_run(recording, model, RunOptions(), loaded=loaded(model), store=first_run)
    assert prepared.store is first_run
    run_densepose(recording, prepared.predictor, prepared.store, [0, 1])
    assert first_run.processed_frames().tolist() == [0, 1]


def test_a_given_store_of_other_settings_is_refused_like_a_reopened_one(recording, first_run, tmp_path):
    model = ModelSettings(score_threshold=0.5)
    with pytest.raises(DensePoseGazeError, match="made with different settings.*score_threshold"):
        prepare_run(recording, model, RunOptions(), loaded=loaded(model), store=first_run)
    with pytest.raises(DensePoseGazeError, match="made with different settings.*score_threshold"):
        prepare_run(recording, model, RunOptions(output=tmp_path / "store"), loaded=loaded(model))


def test_a_given_store_of_another_recording_is_refused(recording, synthetic_recording, first_run):
    other = Recording.open(synthetic_recording(seconds=0.5, size=(80, 60)))
    model = ModelSettings()
    with pytest.raises(DensePoseGazeError, match="holds .* frames of 48x64 px, but the recording has"):
        prepare_run(other, model, RunOptions(), loaded=loaded(model), store=first_run)


def test_a_given_read_only_store_is_refused_before_the_model_loads(recording, first_run, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(pipeline, "load_model", refuse)
    with pytest.raises(DensePoseGazeError, match="open read-only"):
        prepare_run(recording, ModelSettings(), RunOptions(), store=ResultsStore.open(first_run.folder))
