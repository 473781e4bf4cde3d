"""The pipeline's mechanics: resume, cancel, edits, errors (which frames a selection picks: test_frame_selection.py).

A stand-in engine whose maps are a pure function of the frame's pixels makes
every result checkable against the decoded frame itself; the real engine runs
through the same pipeline in tests/test_run_engine.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze import pipeline
from napari_densepose_gaze.engine.predictor import FrameResult
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
from napari_densepose_gaze.pipeline import (
    LoadedModel,
    ModelSettings,
    Progress,
    RunOptions,
    iter_densepose,
    open_store_for_run,
    prepare_run,
    run_densepose,
    run_metadata,
)
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.tracking import link_detections


def pixel_engine_result(frame: np.ndarray) -> FrameResult:
    """Parts and persons derived from the pixels, one box per frame."""
    part_map = (frame[..., 0] // 11 % 25).astype(np.uint8)
    person_map = (part_map > 0).astype(np.uint8)
    h, w = part_map.shape
    return FrameResult(
        boxes=np.array([[1.0, 2.0, w - 1.0, h - 2.0]], np.float32),
        scores=np.array([float(frame.mean()) / 255.0], np.float32),
        labels=[part_map[2 : h - 2, 1 : w - 1]],
        uv=[np.zeros((2, h - 4, w - 2), np.float32)],
        part_map=part_map,
        person_map=person_map,
    )


class PixelEngine:
    def __init__(self, batch_size: int = 3, fail_at: int | None = None) -> None:
        self.batch_size = batch_size
        self.calls = 0
        self.frames_seen = 0
        self.fail_at = fail_at

    def predict(self, frames):
        self.calls += 1
        if self.fail_at is not None and self.frames_seen + len(frames) > self.fail_at:
            raise RuntimeError("engine broke")
        self.frames_seen += len(frames)
        return [pixel_engine_result(f) for f in frames]


@pytest.fixture
def recording(synthetic_recording):
    return Recording.open(synthetic_recording())


def new_store(recording: Recording, tmp_path, **meta) -> ResultsStore:
    metadata = run_metadata(recording, model="pixels", checkpoint_sha256="0" * 64, score_threshold=0.5,
                            device="cpu", **meta)
    return open_store_for_run(recording, tmp_path / "results", metadata)


def test_every_selected_frame_is_stored_with_its_own_result(recording, tmp_path):
    store = new_store(recording, tmp_path)
    frames = select_frames(recording, FrameSelection(step=4))
    summary = run_densepose(recording, PixelEngine(), store, frames)
    assert summary.processed == len(frames) and not summary.cancelled
    assert store.processed_frames().tolist() == frames.tolist()
    reader = recording.video_reader()
    for i in frames[:5]:
        expected = pixel_engine_result(reader.frame(int(i)))
        np.testing.assert_array_equal(store.labels[int(i)], expected.part_map)
        np.testing.assert_array_equal(store.persons[int(i)], expected.person_map)
    table = store.detections()
    assert table["frame"].tolist() == frames.tolist()
    assert (table["person"] == 1).all()


def test_progress_reports_every_batch_and_reaches_the_total(recording, tmp_path):
    store = new_store(recording, tmp_path)
    seen: list[Progress] = []
    run_densepose(recording, PixelEngine(batch_size=4), store, range(10), progress=seen.append)
    assert [p.done for p in seen] == [4, 8, 10]
    assert seen[-1].total == 10 and seen[-1].fraction == 1.0
    assert all(p.frames_per_s > 0 for p in seen)


def test_a_rerun_skips_processed_frames(recording, tmp_path):
    store = new_store(recording, tmp_path)
    run_densepose(recording, PixelEngine(), store, range(6))
    engine = PixelEngine()
    summary = run_densepose(recording, engine, store, range(9))
    assert summary.skipped_done == 6 and summary.processed == 3
    assert engine.frames_seen == 3


def test_cancel_stops_within_one_batch_and_keeps_what_was_computed(recording, tmp_path):
    store = new_store(recording, tmp_path)
    engine = PixelEngine(batch_size=2)
    summary = run_densepose(recording, engine, store, range(40), cancel=lambda: engine.calls >= 3)
    assert summary.cancelled
    assert engine.calls == 3 and summary.processed == 6
    assert store.processed_frames().tolist() == list(range(6))
    resumed = run_densepose(recording, PixelEngine(batch_size=2), store, range(40))
    assert resumed.processed == 34 and not resumed.cancelled
    assert store.processed_frames().tolist() == list(range(40))


def test_a_second_run_on_one_store_skips_the_frames_a_live_run_is_computing(recording, tmp_path):
    store = new_store(recording, tmp_path)
    other = ResultsStore.open(store.folder, mode="r+")  # another run, e.g. a second command line
    assert other.claim([0, 1, 2]) == [0, 1, 2]
    engine = PixelEngine()
    summary = run_densepose(recording, engine, store, range(6))
    assert summary.processed == 3 and summary.skipped_claimed == 3 and engine.frames_seen == 3
    assert store.processed_frames().tolist() == [3, 4, 5]
    other.release()  # the other run stopped without finishing: its frames are free again
    assert run_densepose(recording, PixelEngine(), store, range(6)).processed == 3
    assert store.processed_frames().tolist() == list(range(6))


def test_a_run_releases_the_frames_it_did_not_write(recording, tmp_path):
    store = new_store(recording, tmp_path)
    engine = PixelEngine(batch_size=2)
    run_densepose(recording, engine, store, range(10), cancel=lambda: engine.calls >= 1)
    other = ResultsStore.open(store.folder, mode="r+")
    assert other.claim(range(10)) == list(range(2, 10))


def test_frames_edited_by_hand_are_left_alone_unless_asked(recording, tmp_path):
    store = new_store(recording, tmp_path)
    run_densepose(recording, PixelEngine(), store, range(4))
    store.labels[2, :5, :5] = 7
    store.mark_edited(2)
    summary = run_densepose(recording, PixelEngine(), store, range(4), overwrite_edited=False)
    assert summary.skipped_edited == 1 and summary.processed == 0
    assert (store.labels[2, :5, :5] == 7).all()
    summary = run_densepose(recording, PixelEngine(), store, [2], overwrite_edited=True)
    assert summary.processed == 1
    assert not (store.labels[2, :5, :5] == 7).all()


def test_an_engine_failure_raises_and_keeps_the_frames_already_stored(recording, tmp_path):
    store = new_store(recording, tmp_path)
    with pytest.raises(RuntimeError, match="engine broke"):
        run_densepose(recording, PixelEngine(batch_size=2, fail_at=5), store, range(20))
    assert store.processed_frames().tolist() == [0, 1, 2, 3]


def test_a_store_of_another_model_is_refused_and_kept(recording, tmp_path):
    store = new_store(recording, tmp_path)
    run_densepose(recording, PixelEngine(), store, range(2))
    other = run_metadata(recording, model="other", checkpoint_sha256="1" * 64, score_threshold=0.5, device="cpu")
    with pytest.raises(DensePoseGazeError):
        open_store_for_run(recording, tmp_path / "results", other)
    assert ResultsStore.open(tmp_path / "results").processed_frames().tolist() == [0, 1]


# ------------------------------------------------------------------ person ids
def test_a_run_stores_the_person_ids_linked_over_every_processed_frame(recording, tmp_path):
    store = new_store(recording, tmp_path)
    run_densepose(recording, PixelEngine(), store, range(4))
    run_densepose(recording, PixelEngine(), store, range(8))  # resumed: the ids cover the old frames too
    stored = store.person_ids()
    assert len(stored) == len(store.detections()) == 8
    pd.testing.assert_frame_equal(stored, link_detections(store.detections(), store.processed_frames()))


def test_a_cancelled_or_closed_run_still_stores_the_ids_of_its_frames(recording, tmp_path):
    store = new_store(recording, tmp_path / "cancelled")
    engine = PixelEngine(batch_size=2)
    run_densepose(recording, engine, store, range(40), cancel=lambda: engine.calls >= 2)
    assert len(store.person_ids()) == len(store.detections()) == 4
    closed = new_store(recording, tmp_path / "closed")
    run = iter_densepose(recording, PixelEngine(batch_size=2), closed, range(40))
    next(run)
    run.close()
    assert len(closed.person_ids()) == len(closed.detections()) > 0


def test_a_run_that_writes_nothing_does_not_link_again(recording, tmp_path, monkeypatch):
    store = new_store(recording, tmp_path)
    run_densepose(recording, PixelEngine(), store, range(3))

    def refuse(*args, **kwargs):
        raise AssertionError("linked again")

    monkeypatch.setattr(pipeline, "link_store", refuse)
    assert run_densepose(recording, PixelEngine(), store, range(3)).processed == 0


# ---------------------------------------------------------------- run set-up
class LoadedPixelEngine(PixelEngine):
    """The stand-in engine with what a loaded predictor tells the store's metadata."""

    device, dtype, min_size, max_size = "cpu", "torch.float32", 64, 107


def loaded_pixels(model: ModelSettings) -> LoadedModel:
    return LoadedModel(LoadedPixelEngine(), model, "pixels", Path("pixels.pkl"), "0" * 64)


def refuse(*args, **kwargs):
    raise AssertionError("must not be called")


def test_prepare_run_checks_the_selection_before_it_loads_a_model(recording, monkeypatch):
    monkeypatch.setattr(pipeline, "load_model", refuse)
    with pytest.raises(DensePoseGazeError, match="No event named 'nope'"):
        prepare_run(recording, ModelSettings(), RunOptions(selection=FrameSelection(start_event="nope")))


def test_prepare_run_with_a_loaded_model_records_its_settings_in_the_store(recording, tmp_path):
    model = ModelSettings(score_threshold=0.5)
    options = RunOptions(selection=FrameSelection(step=10), output=tmp_path / "s")
    prepared = prepare_run(recording, model, options, loaded=loaded_pixels(model))
    assert prepared.frames.tolist() == list(range(0, recording.n_frames, 10))
    metadata = prepared.store.metadata
    assert metadata["score_threshold"] == 0.5 and metadata["frame_selection"]["step"] == 10
    assert metadata["input_size"] == [64, 107] and metadata["precision"] == "float32"
    with pytest.raises(ValueError, match="loaded from"):
        prepare_run(recording, ModelSettings(score_threshold=0.6), options, loaded=loaded_pixels(model))


def test_prepare_run_takes_frames_already_selected_without_selecting_again(recording, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "select_frames", refuse)
    model = ModelSettings()
    prepared = prepare_run(recording, model, RunOptions(output=tmp_path / "s"), loaded=loaded_pixels(model),
                           frames=np.array([1, 2]))
    assert prepared.frames.tolist() == [1, 2]
