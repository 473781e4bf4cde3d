"""One session per opened recording: found from any of its layers, one store handle, one place that sees edits."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import numpy as np
import pytest
from napari.utils._proxies import PublicOnlyProxy

from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.ui.hits_widget import GazeHitsWidget
from napari_densepose_gaze.ui.layer_roles import BODY_PARTS, FIXATIONS, GAZE, PERSONS, SCENE_VIDEO
from napari_densepose_gaze.ui.result_layers import show_results
from napari_densepose_gaze.ui.run_widget import RunDensePoseWidget
from napari_densepose_gaze.ui.session import current_session, find_layer, open_session, session_of

PLUGIN = "napari-densepose-gaze"


def with_results(source: Path, tmp_path: Path) -> Path:
    """A copy of ``source`` with an empty results store beside it (every frame processed, no parts)."""
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    recording = Recording.open(folder)
    width, height = recording.frame_size
    store = ResultsStore.create(ResultsStore.default_folder(folder), n_frames=recording.n_frames, height=height,
                                width=width, metadata={"model": "by hand", "recording_folder": str(folder)})
    empty = np.zeros((height, width), np.uint8)
    for frame in range(recording.n_frames):
        store.write_frame(frame, empty, empty, [])
    return folder


@pytest.fixture
def opened(make_napari_viewer, synthetic_recording, tmp_path):
    folder = with_results(synthetic_recording(), tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    return viewer, folder


def test_every_layer_of_a_recording_leads_to_its_one_session(opened, layer_of):
    viewer, folder = opened
    session = session_of(layer_of(viewer, GAZE))
    assert session is not None and session.folder == folder
    assert [session_of(layer) for layer in viewer.layers] == [session] * 5
    assert open_session(folder) is session
    for role in (SCENE_VIDEO, FIXATIONS, GAZE, BODY_PARTS, PERSONS):
        assert find_layer(viewer, role, session) is layer_of(viewer, role)
    viewer.layers.selection.active = layer_of(viewer, FIXATIONS)
    assert current_session(viewer) is session


def test_the_reader_the_run_widget_and_the_hits_widget_share_one_writable_store(opened, layer_of):
    viewer, _ = opened
    session = session_of(layer_of(viewer, BODY_PARTS))
    store = session.store
    assert store.mode == "r+"
    assert layer_of(viewer, BODY_PARTS).data is store.labels and layer_of(viewer, PERSONS).data.store is store
    hits = GazeHitsWidget(viewer)
    run = RunDensePoseWidget(viewer)
    assert hits._store is store
    assert run.session() is session and run.recording() is session.recording


def test_painting_marks_the_frame_edited_and_tells_listeners_once_it_is_in_the_store(opened, qtbot, layer_of):
    viewer, _ = opened
    session = session_of(layer_of(viewer, BODY_PARTS))
    told: list[tuple[list[int], int]] = []
    session.on_labels_changed(lambda frames: told.append((frames, int(session.store.labels[frames[0], 5, 5]))))
    layer = layer_of(viewer, BODY_PARTS)
    layer.brush_size = 3
    layer.paint((4, 5, 5), 17)
    assert session.store.edited_frames().tolist() == [4]  # at once: a re-run must keep it
    assert told == []  # napari writes the stroke after announcing it
    qtbot.waitUntil(lambda: bool(told), timeout=5_000)
    assert told == [([4], 17)]


def test_strokes_until_the_next_event_loop_turn_are_told_together(opened, qtbot, layer_of):
    viewer, _ = opened
    session = session_of(layer_of(viewer, PERSONS))
    told: list[list[int]] = []
    session.on_labels_changed(told.append)
    parts = layer_of(viewer, BODY_PARTS)
    parts.paint((7, 3, 3), 2)
    parts.paint((2, 3, 3), 2)
    parts.data_setitem((np.array([9]), np.array([1]), np.array([1])), 5)
    qtbot.waitUntil(lambda: bool(told), timeout=5_000)
    qtbot.wait(50)
    assert told == [[2, 7, 9]]
    assert session.store.edited_frames().tolist() == [2, 7, 9]


def test_a_listener_that_unsubscribed_or_went_away_is_not_told(opened, qtbot, layer_of):
    viewer, _ = opened
    session = session_of(layer_of(viewer, BODY_PARTS))
    told: list[str] = []

    class Listener:
        def changed(self, frames):
            told.append("gone")

    listener = Listener()
    session.on_labels_changed(listener.changed)  # a bound method is held weakly
    del listener
    gc.collect()
    unsubscribe = session.on_labels_changed(lambda frames: told.append("unsubscribed"))
    unsubscribe()
    session.on_labels_changed(lambda frames: told.append("listening"))
    layer_of(viewer, BODY_PARTS).paint((1, 5, 5), 3)
    qtbot.waitUntil(lambda: bool(told), timeout=5_000)
    assert told == ["listening"]


def test_each_recording_has_its_own_session_and_layers(opened, synthetic_recording, tmp_path):
    viewer, folder = opened
    other_folder = synthetic_recording(seed=1)
    viewer.open(str(other_folder), plugin=PLUGIN)
    first, other = open_session(folder), open_session(other_folder)
    assert first is not other
    assert find_layer(viewer, GAZE, other) is not find_layer(viewer, GAZE, first)
    assert session_of(find_layer(viewer, GAZE, other)) is other
    assert find_layer(viewer, BODY_PARTS, other) is None and other.store is None
    viewer.layers.selection.active = find_layer(viewer, SCENE_VIDEO, first)
    assert current_session(viewer) is first


def test_a_new_store_for_the_session_repoints_its_layers_and_their_edit_hook(opened, layer_of):
    viewer, folder = opened
    session = session_of(layer_of(viewer, BODY_PARTS))
    old = session.store
    new = ResultsStore.create(old.folder, n_frames=old.n_frames, height=old.shape[1], width=old.shape[2],
                              metadata=old.metadata, exist_ok=True)  # what a DensePose run hands back
    session.use_store(new)
    assert session.store is new
    assert layer_of(viewer, BODY_PARTS).data is new.labels and layer_of(viewer, PERSONS).data.store is new
    layer_of(viewer, BODY_PARTS).paint((3, 5, 5), 8)
    assert new.edited_frames().tolist() == [3]


def test_layers_of_no_recording_have_no_session(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((2, 8, 8)))
    assert session_of(layer) is None and session_of(None) is None
    assert current_session(viewer) is None


def test_opening_a_recording_with_results_selects_the_body_parts_for_the_brush(opened, layer_of, qtbot):
    viewer, _ = opened
    parts = layer_of(viewer, BODY_PARTS)
    assert viewer.layers.selection.active is parts and set(viewer.layers.selection) == {parts}
    assert layer_of(viewer, PERSONS).visible is False
    qtbot.wait(10)  # the layer list catches up when the event loop turns
    # the layer list the user sees highlights body parts alone: its selected rows and its current row
    rows = viewer.window._qt_viewer.layers.selectionModel()
    assert [index.data() for index in rows.selectedIndexes()] == [parts.name]
    assert rows.currentIndex().data() == parts.name


def test_a_plugin_widgets_proxied_viewer_reaches_the_same_layers_and_hooks(opened, layer_of):
    viewer, _ = opened
    session = session_of(layer_of(viewer, BODY_PARTS))
    for role in (BODY_PARTS, PERSONS):  # as before a first run: the widget adds the layers
        viewer.layers.remove(layer_of(viewer, role))
    proxied = PublicOnlyProxy(viewer)  # what napari hands a dock widget it makes for the plugin
    parts, persons = show_results(proxied, session)  # napari hands back proxies of the layers it adds
    assert isinstance(persons, PublicOnlyProxy)
    assert session_of(parts) is session and session_of(persons) is session
    assert layer_of(viewer, PERSONS).data.store is session.store  # still the stable ids of the store
    layer_of(viewer, BODY_PARTS).paint((4, 5, 5), 3)
    assert session.store.edited_frames().tolist() == [4]  # the edit hook survived


def test_undo_and_redo_tell_listeners(opened, qtbot, layer_of):
    viewer, _ = opened
    session = session_of(layer_of(viewer, BODY_PARTS))
    told: list[list[int]] = []
    session.on_labels_changed(told.append)
    layer = layer_of(viewer, BODY_PARTS)
    layer.paint((6, 5, 5), 17)
    qtbot.waitUntil(lambda: len(told) == 1, timeout=5_000)
    layer.undo()
    qtbot.waitUntil(lambda: len(told) == 2, timeout=5_000)
    assert session.store.labels[6, 5, 5] == 0
    layer.redo()
    qtbot.waitUntil(lambda: len(told) == 3, timeout=5_000)
    assert told == [[6], [6], [6]] and session.store.labels[6, 5, 5] == 17


def test_frames_a_run_wrote_are_told_but_not_marked_edited(opened, qtbot, layer_of):
    viewer, _ = opened
    session = session_of(layer_of(viewer, BODY_PARTS))
    told: list[list[int]] = []
    session.on_labels_changed(told.append)
    viewer.dims.set_current_step(0, 3)
    labels = np.full(session.store.shape[1:], 5, np.uint8)
    session.store.write_frame(3, labels, (labels > 0).astype(np.uint8), [])  # as a run does, frame shown
    session.show_written([3])
    qtbot.waitUntil(lambda: bool(told), timeout=5_000)
    assert told == [[3]] and session.store.edited_frames().tolist() == []
    assert np.asarray(layer_of(viewer, BODY_PARTS)._slice.image.raw).max() == 5  # redrawn
