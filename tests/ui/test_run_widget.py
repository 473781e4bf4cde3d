"""The Run DensePose widget, driven in a real viewer with the real engine on CPU.

The engine loads the synthetic checkpoint of the parity fixtures; frames are
small, the input size lowest and each run a few frames, so a run takes seconds.
The widgets of a napari keep one model loaded for the next run with the same
settings, so the tests after the first one start with it; a test that needs a
load of its own starts from no kept model (``no_kept_model``).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_densepose_gaze import pipeline
from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
from napari_densepose_gaze.parts import part_color
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.ui import run_model
from napari_densepose_gaze.ui.layer_roles import BODY_PARTS, PERSONS, SCENE_VIDEO, role_of
from napari_densepose_gaze.ui.run_widget import RunDensePoseWidget
from napari_densepose_gaze.ui.session import session_of

CONFIG = "R_50_FPN_s1x"
# Synthetic weights score almost everything near 1; at input size 64 this keeps a few detections from frame 2 on
# (frames 0 and 1 have none, so they compute fastest).
THRESHOLD = 0.995
INPUT_SIZE = 64


def wait_idle(qtbot, widget, timeout_ms) -> None:
    """Until the widget's worker has finished and the widget has handled it.

    Polling the widget, not connecting to ``worker.finished``: a worker that fails at
    once can finish before a signal spy would be connected.
    """
    qtbot.waitUntil(lambda: not widget.tasks.busy, timeout=timeout_ms)


@pytest.fixture
def recording_folder(synthetic_recording, tmp_path):
    import shutil

    source = synthetic_recording(seconds=0.5, size=(160, 120))
    folder = tmp_path / source.name
    shutil.copytree(source, folder)  # results are written beside it
    return folder


def set_up(widget: RunDensePoseWidget, checkpoint) -> RunDensePoseWidget:
    """The test model's settings, as a user enters them."""
    widget.model.value = CONFIG
    widget.weights.value = str(checkpoint(CONFIG))
    widget.device.value = "cpu"
    widget.threshold.value = THRESHOLD
    widget.input_size.value = INPUT_SIZE
    return widget


@pytest.fixture
def widget(make_napari_viewer, recording_folder, parity_checkpoint):
    viewer = make_napari_viewer()
    viewer.open(str(recording_folder), plugin="napari-densepose-gaze")
    widget = RunDensePoseWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Run DensePose")
    return set_up(widget, parity_checkpoint)


@pytest.fixture
def no_kept_model(monkeypatch):
    """No model kept from earlier tests; the one kept now is back after the test."""
    monkeypatch.setattr(run_model, "KEPT", run_model.KeptModel())


@pytest.fixture
def loads_refused(monkeypatch):
    """A model load fails the run: what must start with the kept model, or load nothing."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(pipeline, "load_model", refuse)


def run_and_wait(qtbot, widget, timeout_ms=240_000):
    widget.run_button.clicked.emit()
    assert widget.tasks.busy, widget.status.value
    wait_idle(qtbot, widget, timeout_ms)


def test_run_fills_a_body_parts_layer_backed_by_the_store(qtbot, widget, recording_folder, layer_of):
    viewer = widget._viewer
    assert widget.video.value is not None and role_of(widget.video.value) == SCENE_VIDEO
    assert widget.video.native.currentText() == Recording.open(recording_folder).name  # the recording, by name
    widget.last.value = 2
    run_and_wait(qtbot, widget)
    assert widget.status.value.startswith("Done: 3 frames"), widget.status.value

    parts = layer_of(viewer, BODY_PARTS)
    persons = layer_of(viewer, PERSONS)
    store = ResultsStore.open(ResultsStore.default_folder(recording_folder))
    assert parts.data.shape == (15, 120, 160) and persons.visible is False
    assert store.processed_frames().tolist() == [0, 1, 2]
    assert store.labels[2].max() > 0, "no detections: the test threshold no longer fits the synthetic weights"
    shown = 2  # a frame with body parts
    np.testing.assert_array_equal(np.asarray(parts.data[shown]), store.labels[shown])
    meta = store.metadata
    assert meta["model"] == CONFIG and meta["score_threshold"] == pytest.approx(THRESHOLD)
    assert meta["device"] == "cpu" and len(meta["checkpoint_sha256"]) == 64
    assert meta["input_size"][0] == INPUT_SIZE
    # one fixed colour per part, the project's own
    assert np.allclose(parts.colormap.map(np.array([23]))[0], part_color(23))
    assert list(parts.features["part"][:3]) == ["background", "torso back", "torso front"]


def test_the_densepose_choice_follows_the_frames_and_a_run_near_the_gaze_is_completed_for_everyone(
        qtbot, widget, recording_folder):
    choice = widget.densepose
    assert choice in widget and choice.native.isVisibleTo(widget.native) and "gaze hit can reach" in choice.tooltip
    assert choice.native.currentText() == "everyone"  # all frames: as the command line
    widget.mode.value = "gaze"
    assert choice.native.currentText() == "near the gaze"
    widget.mode.value = "fixations"
    assert choice.native.currentText() == "near the gaze"
    recording = Recording.open(recording_folder)
    fixation_frames = select_frames(recording, FrameSelection(mode="fixations")).tolist()

    run_and_wait(qtbot, widget)
    assert widget.status.value.startswith(f"Done: {len(fixation_frames)} frames"), widget.status.value
    store = ResultsStore.open(ResultsStore.default_folder(recording_folder))
    assert store.processed_frames().tolist() == fixation_frames
    near_the_gaze = store.gazed_frames()
    assert near_the_gaze, "every detection was near the gaze: the test no longer tests a gaze-guided frame"
    assert all(made[1] == "deg" for made in near_the_gaze.values())  # the recording's default hit radius

    choice.value = "all"
    run_and_wait(qtbot, widget)
    assert widget.status.value.startswith(f"Done: {len(near_the_gaze)} frames"), widget.status.value
    store = ResultsStore.open(store.folder)
    assert store.gazed_frames() == {} and store.processed_frames().tolist() == fixation_frames


def test_cancel_keeps_a_consistent_store_and_a_rerun_resumes(qtbot, widget, recording_folder):
    widget.last.value = 2
    widget.run_button.clicked.emit()
    qtbot.waitUntil(lambda: "frames/s" in widget.status.value, timeout=120_000)
    widget.cancel_button.clicked.emit()
    wait_idle(qtbot, widget, 120_000)
    assert widget.status.value.startswith("Cancelled after"), widget.status.value
    store = ResultsStore.open(ResultsStore.default_folder(recording_folder))
    done = store.processed_frames().tolist()
    assert 0 < len(done) < 3 and done == list(range(len(done)))

    run_and_wait(qtbot, widget)
    assert widget.status.value.startswith(f"Done: {3 - len(done)} frames"), widget.status.value
    assert f"{len(done)} already done" in widget.status.value
    assert store.processed_frames().tolist() == [0, 1, 2]


def test_painting_marks_the_frame_edited_and_a_rerun_keeps_it(qtbot, widget, recording_folder, layer_of):
    viewer = widget._viewer
    widget.last.value = 0
    run_and_wait(qtbot, widget)
    parts = layer_of(viewer, BODY_PARTS)
    viewer.dims.set_current_step(0, 0)
    parts.selected_label = 24
    parts.paint((0, 60, 80), 24, refresh=True)
    store = ResultsStore.open(ResultsStore.default_folder(recording_folder))
    assert store.edited_frames().tolist() == [0]
    assert store.labels[0, 60, 80] == 24

    session = session_of(widget.video.value)
    shared = session.store
    widget.last.value = 1
    widget.overwrite.value = False
    run_and_wait(qtbot, widget)
    assert widget.status.value.startswith("Done: 1 frames"), widget.status.value
    assert session.store is shared  # the run wrote into the session's one writable store
    assert store.processed_frames().tolist() == [0, 1] and store.labels[0, 60, 80] == 24
    assert "1 edited by hand kept" in widget.status.value


def test_reopening_the_recording_shows_its_results_and_records_edits(qtbot, widget, recording_folder,
                                                                    make_napari_viewer, layer_of):
    widget.first.value = widget.last.value = 1
    run_and_wait(qtbot, widget)
    viewer = make_napari_viewer()
    viewer.open(str(recording_folder), plugin="napari-densepose-gaze")
    parts = layer_of(viewer, BODY_PARTS)
    assert layer_of(viewer, PERSONS).visible is False
    store = ResultsStore.open(ResultsStore.default_folder(recording_folder))
    np.testing.assert_array_equal(np.asarray(parts.data[1]), store.labels[1])
    parts.paint((1, 10, 10), 5, refresh=True)
    assert store.edited_frames().tolist() == [1]
    assert ResultsStore.open(store.folder).labels[1, 10, 10] == 5


def test_a_bad_setting_is_shown_and_nothing_runs(qtbot, widget, recording_folder):
    widget.start_event.reset_choices()
    widget.first.value = 10_000
    widget.run_button.clicked.emit()
    wait_idle(qtbot, widget, 60_000)  # at once if the setting was refused before any worker started
    assert "does not fit" in widget.status.value
    assert not ResultsStore.default_folder(recording_folder).exists()


def test_download_button_fetches_the_weights_with_progress(qtbot, make_napari_viewer, local_server, tmp_path,
                                                         monkeypatch):
    import dataclasses
    import hashlib

    from napari_densepose_gaze.engine import zoo
    from napari_densepose_gaze.engine.weights import CACHE_ENV

    url, httpd, served = local_server
    payload = bytes(range(256)) * 4096  # 1 MiB: pooch reports several chunks
    cfg = zoo.ZOO[zoo.DEFAULT_MODEL]
    folder, _ = cfg.checkpoint.rsplit("/", 1)
    fake = dataclasses.replace(cfg, checkpoint=f"{folder}/model_final_{hashlib.sha256(payload).hexdigest()[:6]}.pkl")
    (served / fake.checkpoint).parent.mkdir(parents=True)
    (served / fake.checkpoint).write_bytes(payload)
    monkeypatch.setattr(zoo, "DOWNLOAD_ROOT", url)
    monkeypatch.setitem(zoo.ZOO, zoo.DEFAULT_MODEL, fake)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))

    widget = RunDensePoseWidget(make_napari_viewer())
    assert widget.model.value == zoo.DEFAULT_MODEL
    assert widget.model_state.value.startswith("not downloaded") and widget.download.enabled
    seen: list[tuple[int, int]] = []
    widget.tasks.relay.changed.connect(lambda done, total: seen.append((done, total)))
    widget.download.clicked.emit()
    wait_idle(qtbot, widget, 60_000)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1][0] == len(payload), timeout=10_000)
    assert widget.model_state.value == "in cache" and not widget.download.enabled, widget.status.value
    assert (tmp_path / "cache" / cfg.name / fake.filename).read_bytes() == payload
    assert httpd.requests == ["/" + fake.checkpoint]


def test_a_second_run_with_the_same_settings_keeps_the_loaded_model(qtbot, widget, request):
    widget.last.value = 0
    run_and_wait(qtbot, widget)
    assert widget.status.value.startswith("Done: 1 frames"), widget.status.value
    request.getfixturevalue("loads_refused")
    widget.last.value = 1
    widget.run_button.clicked.emit()
    assert widget.status.value.startswith("Starting with the loaded model"), widget.status.value
    wait_idle(qtbot, widget, 240_000)
    assert widget.status.value.startswith("Done: 1 frames"), widget.status.value


def test_a_recording_with_results_brings_its_stored_settings_and_a_run_with_nothing_to_do_loads_nothing(
        qtbot, widget, recording_folder, make_napari_viewer, parity_checkpoint, request):
    widget.last.value = 0
    run_and_wait(qtbot, widget)
    viewer = make_napari_viewer()
    viewer.open(str(recording_folder), plugin="napari-densepose-gaze")
    fresh = RunDensePoseWidget(viewer)
    assert fresh.model.value == CONFIG
    assert fresh.threshold.value == pytest.approx(THRESHOLD) and fresh.input_size.value == INPUT_SIZE
    assert "Settings of the stored results" in fresh.status.value
    # the same checkpoint and device: the re-run resumes instead of being refused as "different settings";
    # with the other widget's precision (auto: float32 on the CPU, as stored) it starts with the model loaded there
    assert fresh.precision.value == "float32"
    fresh.weights.value = str(parity_checkpoint(CONFIG))
    fresh.device.value = "cpu"
    fresh.precision.value = "auto"
    fresh.last.value = 1
    fresh.run_button.clicked.emit()
    assert fresh.status.value.startswith("Starting with the loaded model"), fresh.status.value
    wait_idle(qtbot, fresh, 240_000)
    assert fresh.status.value.startswith("Done: 1 frames"), fresh.status.value

    request.getfixturevalue("no_kept_model")
    request.getfixturevalue("loads_refused")
    run_and_wait(qtbot, fresh)
    assert fresh.status.value == "Nothing to compute in the 2 selected frames: 2 already done, 0 edited by hand kept."


def test_cancel_while_the_model_loads_writes_nothing(qtbot, widget, recording_folder, no_kept_model, monkeypatch):
    loading, go_on = threading.Event(), threading.Event()

    def slow_load(model, options, **kwargs):  # a load that lasts until the test has pressed Cancel
        loading.set()
        go_on.wait(60)
        return pipeline.LoadedModel(None, model, CONFIG, widget.weights.value, "0" * 64)

    monkeypatch.setattr(pipeline, "load_model", slow_load)
    widget.run_button.clicked.emit()
    qtbot.waitUntil(loading.is_set, timeout=60_000)
    qtbot.waitUntil(lambda: widget.status.value.startswith("Loading the model"), timeout=10_000)
    assert widget.cancel_button.enabled
    widget.cancel_button.clicked.emit()
    go_on.set()
    wait_idle(qtbot, widget, 120_000)
    assert widget.status.value.startswith("Cancelled after 0 frames"), widget.status.value
    assert not ResultsStore.default_folder(recording_folder).exists()


def test_the_progress_bar_moves_during_a_run(qtbot, widget):
    seen: list[int] = []
    widget.last.value = 1
    widget.run_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.tasks.bar is not None and widget.tasks.bar.total == 2, timeout=120_000)
    bar = widget.tasks.bar
    qtbot.waitUntil(lambda: (seen.append(bar.n) or True) and bar.n > 0, timeout=120_000)
    wait_idle(qtbot, widget, 240_000)
    assert max(seen) > 0
