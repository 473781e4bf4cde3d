"""The Run DensePose widget, driven in a real viewer with the real engine on CPU.

The engine loads the synthetic checkpoint of the parity fixtures; frames are
small and the input size low so a run takes seconds, not minutes.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_densepose_gaze.parts import part_color
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.ui.layer_roles import BODY_PARTS, PERSONS
from napari_densepose_gaze.ui.run_widget import RunDensePoseWidget

CONFIG = "R_50_FPN_s1x"
# Synthetic weights score almost everything near 1; this keeps a few detections per frame.
THRESHOLD = 0.9995


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


@pytest.fixture
def widget(make_napari_viewer, recording_folder, parity_checkpoint):
    viewer = make_napari_viewer()
    viewer.open(str(recording_folder), plugin="napari-densepose-gaze")
    widget = RunDensePoseWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Run DensePose")
    widget.model.value = CONFIG
    widget.weights.value = str(parity_checkpoint(CONFIG))
    widget.device.value = "cpu"
    widget.threshold.value = THRESHOLD
    widget.input_size.value = 96
    return widget


def run_and_wait(qtbot, widget, timeout_ms=240_000):
    widget.run_button.clicked.emit()
    assert widget.tasks.busy, widget.status.value
    wait_idle(qtbot, widget, timeout_ms)


def test_run_fills_a_body_parts_layer_backed_by_the_store(qtbot, widget, recording_folder):
    viewer = widget._viewer
    assert widget.video.value is not None and widget.video.value.name == "scene video"
    run_and_wait(qtbot, widget)
    assert widget.status.value.startswith("Done: 15 frames"), widget.status.value

    parts = viewer.layers[BODY_PARTS]
    persons = viewer.layers[PERSONS]
    store = ResultsStore.open(ResultsStore.default_folder(recording_folder))
    assert parts.data.shape == (15, 120, 160) and persons.visible is False
    assert store.processed_frames().tolist() == list(range(15))
    np.testing.assert_array_equal(np.asarray(parts.data[7]), store.labels[7])
    assert store.labels[:].max() > 0, "no detections: the test threshold no longer fits the synthetic weights"
    meta = store.metadata
    assert meta["model"] == CONFIG and meta["score_threshold"] == pytest.approx(THRESHOLD)
    assert meta["device"] == "cpu" and len(meta["checkpoint_sha256"]) == 64
    assert meta["input_size"] == [96, 160]
    # one fixed colour per part, the project's own
    assert np.allclose(parts.colormap.map(np.array([23]))[0], part_color(23))
    assert list(parts.features["part"][:3]) == ["background", "torso back", "torso front"]


def test_cancel_keeps_a_consistent_store_and_a_rerun_resumes(qtbot, widget, recording_folder):
    widget.run_button.clicked.emit()
    qtbot.waitUntil(lambda: "frames/s" in widget.status.value, timeout=120_000)
    widget.cancel_button.clicked.emit()
    wait_idle(qtbot, widget, 120_000)
    assert widget.status.value.startswith("Cancelled after"), widget.status.value
    store = ResultsStore.open(ResultsStore.default_folder(recording_folder))
    done = store.processed_frames().tolist()
    assert 0 < len(done) < 15 and done == list(range(len(done)))

    run_and_wait(qtbot, widget)
    assert widget.status.value.startswith(f"Done: {15 - len(done)} frames"), widget.status.value
    assert f"{len(done)} already done" in widget.status.value
    assert store.processed_frames().tolist() == list(range(15))


def test_painting_marks_the_frame_edited_and_a_rerun_keeps_it(qtbot, widget, recording_folder):
    viewer = widget._viewer
    widget.last.value = 3  # frames 0..3
    run_and_wait(qtbot, widget)
    parts = viewer.layers[BODY_PARTS]
    viewer.dims.set_current_step(0, 2)
    parts.selected_label = 24
    parts.paint((2, 60, 80), 24, refresh=True)
    store = ResultsStore.open(ResultsStore.default_folder(recording_folder))
    assert store.edited_frames().tolist() == [2]
    assert store.labels[2, 60, 80] == 24

    widget.last.value = -1
    widget.overwrite.value = False
    run_and_wait(qtbot, widget)
    assert store.labels[2, 60, 80] == 24
    assert "1 edited by hand kept" in widget.status.value


def test_reopening_the_recording_shows_its_results_and_records_edits(qtbot, widget, recording_folder,
                                                                    make_napari_viewer):
    widget.last.value = 1
    run_and_wait(qtbot, widget)
    viewer = make_napari_viewer()
    viewer.open(str(recording_folder), plugin="napari-densepose-gaze")
    parts = viewer.layers[BODY_PARTS]
    assert viewer.layers[PERSONS].visible is False
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


def test_a_second_run_with_the_same_settings_keeps_the_loaded_model(qtbot, widget):
    widget.last.value = 1
    run_and_wait(qtbot, widget)
    loaded = widget._loaded[2]
    widget.last.value = 3
    widget.run_button.clicked.emit()
    assert widget.status.value.startswith("Starting with the loaded model"), widget.status.value
    wait_idle(qtbot, widget, 240_000)
    assert widget._loaded[2] is loaded and widget.status.value.startswith("Done: 2 frames"), widget.status.value


def test_a_recording_with_results_brings_its_stored_settings(qtbot, widget, recording_folder, make_napari_viewer,
                                                             parity_checkpoint):
    widget.last.value = 1
    run_and_wait(qtbot, widget)
    viewer = make_napari_viewer()
    viewer.open(str(recording_folder), plugin="napari-densepose-gaze")
    fresh = RunDensePoseWidget(viewer)
    assert fresh.model.value == CONFIG
    assert fresh.threshold.value == pytest.approx(THRESHOLD) and fresh.input_size.value == 96
    assert "Settings of the stored results" in fresh.status.value
    # the same checkpoint and device: the re-run resumes instead of being refused as "different settings"
    fresh.weights.value = str(parity_checkpoint(CONFIG))
    fresh.device.value = "cpu"
    fresh.last.value = 2
    run_and_wait(qtbot, fresh)
    assert fresh.status.value.startswith("Done: 1 frames"), fresh.status.value


def test_cancel_while_the_model_loads_writes_nothing(qtbot, widget, recording_folder):
    widget.run_button.clicked.emit()
    assert widget.status.value.startswith("Loading the model")
    assert widget.cancel_button.enabled
    widget.cancel_button.clicked.emit()
    wait_idle(qtbot, widget, 120_000)
    assert widget.status.value.startswith("Cancelled after 0 frames"), widget.status.value
    assert not ResultsStore.default_folder(recording_folder).exists()


def test_the_progress_bar_moves_during_a_run(qtbot, widget):
    seen: list[int] = []
    widget.run_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.tasks.bar is not None and widget.tasks.bar.total == 15, timeout=120_000)
    bar = widget.tasks.bar
    qtbot.waitUntil(lambda: (seen.append(bar.n) or True) and bar.n > 0, timeout=120_000)
    wait_idle(qtbot, widget, 240_000)
    assert max(seen) > 0
