"""The pipeline's mechanics: selection, resume, cancel, edits, errors.

A stand-in engine whose maps are a pure function of the frame's pixels makes
every result checkable against the decoded frame itself; the real engine runs
through the same pipeline in tests/test_run_engine.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_densepose_gaze.engine.predictor import FrameResult
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
from napari_densepose_gaze.pipeline import Progress, open_store_for_run, run_densepose, run_metadata
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore


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


def test_selection_modes_pick_the_documented_frames(recording):
    n = recording.n_frames
    assert select_frames(recording).tolist() == list(range(n))
    assert select_frames(recording, FrameSelection(step=5, start=3, stop=20)).tolist() == [3, 8, 13, 18]
    gaze_frames = select_frames(recording, FrameSelection(mode="gaze"))
    assert 0 < len(gaze_frames) <= n
    fixation_frames = select_frames(recording, FrameSelection(mode="fixations"))
    assert len(fixation_frames) <= len(recording.fixations)
    with pytest.raises(DensePoseGazeError, match="step"):
        select_frames(recording, FrameSelection(step=0))
    with pytest.raises(DensePoseGazeError, match="does not fit"):
        select_frames(recording, FrameSelection(start=n + 5))


def test_event_section_runs_from_the_start_event_frame_to_the_end_event_frame(recording):
    events = recording.events
    begin = int(events.loc[events["name"] == "recording.begin", "timestamp [ns]"].iloc[0])
    end = int(events.loc[events["name"] == "recording.end", "timestamp [ns]"].iloc[0])
    frames = select_frames(recording, FrameSelection(start_event="recording.begin", end_event="recording.end"))
    ts = recording.frame_timestamps
    assert ts[frames[0]] <= max(begin, ts[0]) and ts[frames[-1]] <= end
    with pytest.raises(DensePoseGazeError, match="No event named 'nope'"):
        select_frames(recording, FrameSelection(start_event="nope"))
