"""Gaze-guided DensePose: body parts only for the people a gaze hit can reach, and the same hit tables.

A stand-in engine draws boxes, scores and raw chart outputs from the frame's
pixels alone (so a person's output never depends on which others are computed)
and turns them into maps with the engine's own :func:`frame_result`, the seam
the real predictor uses for its box filters.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from napari_densepose_gaze import cli, pipeline
from napari_densepose_gaze.engine.densepose_head import DensePoseOutput
from napari_densepose_gaze.engine.predictor import frame_result
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
from napari_densepose_gaze.gaze_guided import (
    boxes_within_reach,
    default_densepose_mode,
    detections_needed,
    frames_lacking_people,
    gaze_guide,
)
from napari_densepose_gaze.hits import HitSettings, compute_hits
from napari_densepose_gaze.pipeline import LoadedModel, ModelSettings, RunOptions, prepare_run, run_densepose
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.store_log import FrameLog, format_line, parse_line

PERSONS = 6  # per frame: some near the gaze, most not
CHART = 8  # side of the stand-in's raw chart outputs (the real ones are 112)


class ChartEngine:
    """Detections and chart outputs as a pure function of the frame's pixels; honours box filters."""

    batch_size = 2
    takes_box_filters = True
    device, dtype, min_size, max_size = "cpu", "torch.float32", 64, 107  # what a store's metadata records

    def __init__(self) -> None:
        self.detections = 0  # detections found
        self.with_parts = 0  # of those, the ones whose body parts were computed

    def predict(self, frames, box_filters=None):
        filters = box_filters or [None] * len(frames)
        return [self._one(frame, f) for frame, f in zip(frames, filters)]

    def _one(self, frame: np.ndarray, box_filter):
        rng = np.random.default_rng(zlib.crc32(np.ascontiguousarray(frame).tobytes()))
        h, w = frame.shape[:2]
        x1 = rng.uniform(0, w * 0.8, PERSONS)
        y1 = rng.uniform(0, h * 0.7, PERSONS)
        boxes = np.column_stack([x1, y1, np.minimum(x1 + rng.uniform(8, w / 3, PERSONS), w),
                                 np.minimum(y1 + rng.uniform(10, h / 2, PERSONS), h)]).astype(np.float32)
        scores = np.sort(rng.uniform(0.7, 1.0, PERSONS)).astype(np.float32)[::-1].copy()
        output = DensePoseOutput(*(torch.from_numpy(rng.normal(size=(PERSONS, c, CHART, CHART)).astype(np.float32))
                                   for c in (2, 25, 25, 25)))
        chosen = None if box_filter is None else torch.from_numpy(np.asarray(box_filter(boxes, scores), dtype=bool))
        self.detections += PERSONS
        self.with_parts += PERSONS if chosen is None else int(chosen.sum())
        return frame_result(torch.from_numpy(boxes), torch.from_numpy(scores),
                            output if chosen is None else output[chosen], (h, w), chosen)


def loaded_charts(model: ModelSettings) -> LoadedModel:
    return LoadedModel(ChartEngine(), model, "charts", Path("charts.pkl"), "0" * 64)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    from napari_densepose_gaze.synthetic.export import write_recording

    return Recording.open(write_recording(tmp_path_factory.mktemp("guided"), seconds=1.0, size=(160, 120)))


@pytest.fixture(scope="module")
def frames(recording) -> np.ndarray:
    return select_frames(recording, FrameSelection(mode="gaze"))


def make_store(recording, folder: Path, frames, settings: HitSettings | None, densepose: str) -> ResultsStore:
    """A store of the stand-in engine over ``frames``, gaze-guided for ``settings`` or with everyone's parts."""
    model = ModelSettings()
    options = RunOptions(selection=FrameSelection(mode="gaze"), output=folder, densepose=densepose,
                         hit_settings=settings)
    prepared = prepare_run(recording, model, options, loaded=loaded_charts(model), frames=frames)
    run_densepose(recording, prepared.load_predictor, prepared.store, frames, guide=prepared.guide)
    return prepared.store


@pytest.fixture(scope="module")
def full_store(recording, frames, tmp_path_factory) -> ResultsStore:
    return make_store(recording, tmp_path_factory.mktemp("full") / "store", frames, None, "all")


SETTINGS = [HitSettings(0.0, "px"), HitSettings(8.0, "px"), HitSettings(2.0, "deg"), None]  # None: the default


@pytest.fixture(scope="module", params=SETTINGS, ids=lambda s: "default" if s is None else f"{s.radius:g}{s.unit}")
def guided(request, recording, frames, tmp_path_factory) -> tuple[HitSettings | None, ResultsStore]:
    folder = tmp_path_factory.mktemp("guided") / "store"
    return request.param, make_store(recording, folder, frames, request.param, "gazed")


# ------------------------------------------------------------------- the promise
def test_gazed_hit_tables_are_those_of_a_full_run(recording, full_store, guided):
    settings, store = guided
    gazed, full = compute_hits(recording, store, settings), compute_hits(recording, full_store, settings)
    for name, table in full.tables().items():
        pd.testing.assert_frame_equal(gazed.tables()[name], table, obj=name)
    assert (full.samples["hit part id"] > 0).any()  # the tables are not trivially empty


def test_hits_reaching_beyond_a_gazed_runs_radius_leave_its_frames_unassessed_and_say_so(
    recording, frames, full_store, tmp_path
):
    narrow, wide = HitSettings(0.0, "px"), HitSettings(12.0, "px")
    store = make_store(recording, tmp_path / "store", frames, narrow, "gazed")
    lacking = frames_lacking_people(store, wide)
    assert lacking  # the wider radius reaches people this run left without body parts
    tables, full = compute_hits(recording, store, wide), compute_hits(recording, full_store, wide)
    on_lacking = tables.samples["frame"].isin(lacking)
    # never a silently different answer: those frames are not assessed, and the tables say why
    assessed = ("on part", "near part", "no part")
    assert not tables.samples.loc[on_lacking, "status"].isin(assessed).any()
    assert (tables.samples.loc[on_lacking, "status"] == "frame not processed").any()
    assert not tables.frames.loc[tables.frames["frame"].isin(lacking), "processed"].any()
    [note] = tables.notes
    assert f"{len(lacking)} frame(s)" in note and "--densepose all" in note
    # the other frames answer as a full run does
    answer = ["status", "hit part id", "hit person id", "distance [px]", "hit region"]
    pd.testing.assert_frame_equal(tables.samples.loc[~on_lacking, answer], full.samples.loc[~on_lacking, answer])
    # after an edit (or a run writing a frame) the update keeps the rule and the note
    refreshed = tables.refresh(store, lacking[:1])
    assert not refreshed.samples.loc[on_lacking, "status"].isin(assessed).any()
    assert refreshed.notes == tables.notes
    # the narrower (or the same) radius is assessed everywhere, with nothing to say
    assert compute_hits(recording, store, narrow).notes == ()


def test_a_gazed_run_leaves_out_people_and_keeps_every_detection(full_store, guided, frames):
    _, store = guided
    assert len(store.gazed_frames()) > 0  # some frames had people out of reach
    pd.testing.assert_frame_equal(store.detections(), full_store.detections())
    assert store.processed_frames().tolist() == frames.tolist()


def test_the_labels_show_only_people_near_the_gaze_or_over_them(recording, guided, full_store):
    settings, store = guided
    guide = gaze_guide(recording, settings)
    detections = store.detections()
    left_out = 0
    for frame in store.gazed_frames():
        rows = detections[detections["frame"] == frame]
        boxes, scores = rows[["x1 [px]", "y1 [px]", "x2 [px]", "y2 [px]"]].to_numpy(), rows["score"].to_numpy()
        needed = np.flatnonzero(detections_needed(boxes, scores, guide.gaze_points(frame))) + 1
        shown = set(np.unique(store.persons[frame]).tolist()) - {0}
        assert shown <= set(needed.tolist())
        left_out += len(set(np.unique(full_store.persons[frame]).tolist()) - {0} - shown)
    assert left_out > 0


# ------------------------------------------------------------------ the store
def test_the_store_records_each_frames_mode_and_a_full_run_completes_the_gazed_ones(
    recording, frames, full_store, tmp_path
):
    store = make_store(recording, tmp_path / "store", frames, HitSettings(6.0, "px"), "gazed")
    gazed = store.gazed_frames()
    assert set(gazed.values()) == {(6.0, "px")}
    assert ResultsStore.open(store.folder).gazed_frames() == gazed  # in the log, read back by any handle
    # a narrower radius is covered, a wider one or another unit is not, a full run needs all of them
    assert store.pending(frames, gazed=(3.0, "px")) == []
    assert store.pending(frames, gazed=(9.0, "px")) == sorted(gazed)
    assert store.pending(frames, gazed=(1.0, "deg")) == sorted(gazed)
    assert store.pending(frames) == sorted(gazed)
    assert frames_lacking_people(store, HitSettings(9.0, "px")) == sorted(gazed)  # for hits with a wider radius
    assert frames_lacking_people(store, HitSettings(6.0, "px")) == []

    completed = make_store(recording, store.folder, frames, None, "all")
    assert completed.gazed_frames() == {}
    for frame in frames:
        np.testing.assert_array_equal(completed.labels[frame], full_store.labels[frame])
        np.testing.assert_array_equal(completed.persons[frame], full_store.persons[frame])


def test_a_done_line_without_the_mode_reads_as_everyones_body_parts():
    line = format_line({"frame": 3, "event": "done", "detections": [], "chunks": None, "seq": 1})
    log = FrameLog.__new__(FrameLog)
    log._reset_state()
    record = parse_line(line.rstrip(b"\n"))
    record.pop("seq")
    log._apply(record)
    assert log.done[3].gazed is None and log.done[3].covers((1.0, "deg")) and log.done[3].covers(None)
    bad = format_line({"frame": 3, "event": "done", "detections": [], "gazed": [1.0, "furlong"]})
    assert parse_line(bad.rstrip(b"\n")) is None  # a mode it cannot read is a damaged line, ignored


# ------------------------------------------------------------------ the parts
def test_the_engine_gives_a_subset_of_people_the_body_parts_a_full_run_gives_them(parity_checkpoint):
    from napari_densepose_gaze.engine.predictor import Predictor
    from napari_densepose_gaze.synthetic.scene import render_frame

    # the run widget's test settings: synthetic weights, a few detections per small frame
    predictor = Predictor("R_50_FPN_s1x", weights=parity_checkpoint("R_50_FPN_s1x"), device="cpu",
                          score_threshold=0.9995, min_size=96, max_size=160)
    frame = render_frame(0.3, 160, 120)
    [full] = predictor.predict(frame)
    assert len(full) >= 2, "the test threshold no longer fits the synthetic weights"
    keep = np.arange(len(full)) % 2 == 1
    [part] = predictor.predict(frame, box_filters=[lambda boxes, scores: keep])
    np.testing.assert_array_equal(part.boxes, full.boxes)
    np.testing.assert_array_equal(part.with_parts, keep)
    for i in np.flatnonzero(keep):
        np.testing.assert_array_equal(part.labels[i], full.labels[i])
        # The head's convolutions round differently for 1 RoI than for 3 (as for 1 frame than for 8):
        # U, V agree to float round-off, not bit for bit.
        np.testing.assert_allclose(part.uv[i], full.uv[i], atol=1e-4)
    assert set(np.unique(part.person_map).tolist()) <= {0, *(np.flatnonzero(keep) + 1).tolist()}


def test_a_box_within_the_radius_plus_the_paste_margin_is_reached():
    boxes = np.array([[10.0, 10.0, 20.0, 20.0]])
    gaze = lambda x, y, r: np.array([[x, y, r]])  # noqa: E731
    assert boxes_within_reach(boxes, gaze(15, 15, 0))[0]  # inside
    assert boxes_within_reach(boxes, gaze(25, 15, 4.0))[0]  # 5 px right of x2, 1 px of it the paste margin
    assert not boxes_within_reach(boxes, gaze(25, 15, 3.9))[0]
    assert not boxes_within_reach(boxes, np.empty((0, 3)))[0]  # no valid gaze: nobody


def test_people_painted_over_a_reached_one_are_needed_too():
    boxes = np.array([[10.0, 10.0, 20.0, 20.0], [18.0, 10.0, 40.0, 20.0], [18.0, 10.0, 40.0, 20.0],
                      [60.0, 10.0, 70.0, 20.0]])
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    # the gaze reaches only the first; the second overlaps it and paints over it, the third lies under it
    assert detections_needed(boxes, scores, np.array([[12.0, 15.0, 2.0]])).tolist() == [True, True, False, False]


def test_frame_result_with_a_filter_numbers_people_as_the_full_result_does():
    engine = ChartEngine()
    frame = np.full((40, 60, 3), 7, np.uint8)
    full = engine._one(frame, None)
    keep = np.array([False, True, False, True, False, False])
    part = engine._one(frame, lambda boxes, scores: keep)
    np.testing.assert_array_equal(part.boxes, full.boxes)
    np.testing.assert_array_equal(part.with_parts, keep)
    for i in np.flatnonzero(keep):
        np.testing.assert_array_equal(part.labels[i], full.labels[i])
    assert all(part.labels[i].size == 0 for i in np.flatnonzero(~keep))
    assert set(np.unique(part.person_map).tolist()) <= {0, 2, 4}
    everyone = engine._one(frame, lambda boxes, scores: np.ones(len(boxes), bool))
    assert everyone.with_parts is None  # a full result


def test_the_default_mode_follows_the_frame_selection():
    assert default_densepose_mode("all") == "all"
    assert default_densepose_mode("gaze") == default_densepose_mode("fixations") == "gazed"
    assert RunOptions(selection=FrameSelection(mode="fixations")).densepose_mode == "gazed"
    assert RunOptions(selection=FrameSelection(mode="fixations"), densepose="all").densepose_mode == "all"
    with pytest.raises(DensePoseGazeError, match="Unknown DensePose mode 'some'"):
        RunOptions(densepose="some").densepose_mode  # noqa: B018


# ------------------------------------------------------- no work without need
def refuse(*args, **kwargs):
    raise AssertionError("the model must not be loaded")


def test_a_run_with_every_frame_done_edited_or_claimed_does_not_load_the_model(
    recording, frames, tmp_path, monkeypatch
):
    folder = tmp_path / "store"
    first = make_store(recording, folder, frames[:4], None, "all")
    first.mark_edited(int(frames[4]))
    other = ResultsStore.open(folder, "r+")
    assert other.claim(frames[5:8].tolist()) == frames[5:8].tolist()  # a live run computes these
    monkeypatch.setattr(pipeline, "load_model", refuse)
    prepared = prepare_run(recording, ModelSettings(), RunOptions(output=folder, densepose="all"), frames=frames[:8])
    summary = run_densepose(recording, prepared.load_predictor, prepared.store, prepared.frames)
    assert (summary.processed, summary.skipped_done, summary.skipped_edited, summary.skipped_claimed) == (0, 4, 1, 3)
    other.close()


def test_the_command_line_loads_the_model_only_for_a_recording_with_frames_to_compute(
    recording, tmp_path, monkeypatch, capsys
):
    loads = []

    def load_charts(model, options=None, **kwargs):
        loads.append(model)
        return loaded_charts(model)

    folder = tmp_path / "rec"
    shutil.copytree(recording.folder, folder)
    out = tmp_path / "store"
    argv = ["run", str(folder), "--frames", "fixations", "--output", str(out), "--device", "cpu"]
    monkeypatch.setattr(pipeline, "load_model", load_charts)
    assert cli.main(argv) == 0 and len(loads) == 1
    gazed = ResultsStore.open(out).gazed_frames()
    assert gazed  # fixation key frames are gaze-guided by default
    monkeypatch.setattr(pipeline, "load_model", refuse)
    assert cli.main(argv) == 0  # every frame done: no model
    monkeypatch.setattr(pipeline, "load_model", load_charts)
    assert cli.main([*argv, "--densepose", "all"]) == 0 and len(loads) == 2
    assert ResultsStore.open(out).gazed_frames() == {}
    assert f"{len(gazed)} frame(s) that had body parts only near the gaze get them for everyone now" in \
        capsys.readouterr().err
