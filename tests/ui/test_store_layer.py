"""A napari Labels layer backed by the results store: display, painting to disk, edit marks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import (
    mouse_move_callbacks,
    mouse_press_callbacks,
    mouse_release_callbacks,
)

from napari_densepose_gaze.parts import MAX_PART
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.ui.stable_persons import StablePersons
from napari_densepose_gaze.ui.store_layer import connect_edits

N_FRAMES, HEIGHT, WIDTH = 5, 40, 60


def part_map(frame: int) -> np.ndarray:
    """Frame-specific labels: a block of part ``frame + 1``, so frames differ."""
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    labels[10:30, 10 + 5 * frame : 30 + 5 * frame] = frame + 1
    return labels


@pytest.fixture
def store(tmp_path):
    store = ResultsStore.create(tmp_path / "rec.densepose", n_frames=N_FRAMES, height=HEIGHT,
                                width=WIDTH, metadata={"model": "test"})
    for i in range(N_FRAMES):
        labels = part_map(i)
        store.write_frame(i, labels, (labels > 0).astype(np.uint8), [
            {"x1 [px]": 10 + 5 * i, "y1 [px]": 10, "x2 [px]": 30 + 5 * i, "y2 [px]": 30,
             "score": 0.9}])
    return store


def on_disk(store: ResultsStore) -> np.ndarray:
    """The labels as a fresh handle reads them from disk."""
    return ResultsStore.open(store.folder).labels[:]


def labels_layer(viewer, store, frame, told=None):
    """A body parts layer on ``store`` showing ``frame``; ``told`` collects each on_edit call's frames."""
    layer = viewer.add_labels(store.labels, name="body parts")
    viewer.dims.set_current_step(0, frame)
    on_edit = None if told is None else (lambda frames: told.append(sorted(frames)))
    connect_edits(layer, store, on_edit=on_edit, max_label=MAX_PART)
    return layer


def test_layer_shows_the_stored_frame_of_the_current_step(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(store.labels, name="body parts")
    assert layer.data is store.labels  # no copy: edits go to the store
    for frame in (3, 1):
        viewer.dims.set_current_step(0, frame)
        np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), part_map(frame))
        assert layer.get_value((frame, 20, 20 + 5 * frame)) == frame + 1
    persons = viewer.add_labels(store.persons, name="persons")
    assert persons.get_value((1, 20, 25)) == 1


def test_paint_writes_the_frame_on_disk_and_marks_it_edited(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = labels_layer(viewer, store, frame=2)
    before = on_disk(store)
    layer.brush_size = 3
    layer.paint((2, 5, 5), 17)
    after = on_disk(store)
    changed = np.argwhere(after != before)
    assert len(changed) > 0 and set(changed[:, 0]) == {2}
    assert after[2, 5, 5] == 17
    assert store.edited_frames().tolist() == [2]
    assert store.pending(range(N_FRAMES), overwrite_edited=False) == []
    assert store.pending(range(N_FRAMES), overwrite_edited=True) == [2]


def test_fill_erase_and_data_setitem_reach_the_store(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = labels_layer(viewer, store, frame=1)
    layer.fill((1, 20, 20), 9)  # the block of part 2 becomes part 9
    disk = on_disk(store)
    assert (disk[1][part_map(1) == 2] == 9).all() and not (disk[1] == 2).any()
    viewer.dims.set_current_step(0, 3)
    layer.brush_size = 1
    layer.paint((3, 20, 30), 0)  # erasing paints the background label
    assert on_disk(store)[3, 20, 30] == 0
    # data_setitem is napari's fancy-index path (zarr vindex underneath).
    layer.data_setitem((np.array([4, 4]), np.array([0, 1]), np.array([0, 1])), 21)
    disk = on_disk(store)
    assert disk[4, 0, 0] == 21 and disk[4, 1, 1] == 21 and disk[4, 0, 1] == 0
    assert store.edited_frames().tolist() == [1, 3, 4]
    np.testing.assert_array_equal(disk[0], part_map(0))  # untouched frames stay as written


def test_undo_restores_the_stored_pixels_and_tells_the_change(make_napari_viewer, store):
    viewer = make_napari_viewer()
    told = []
    layer = labels_layer(viewer, store, frame=0, told=told)
    layer.brush_size = 5
    layer.paint((0, 20, 20), 11)
    assert on_disk(store)[0, 20, 20] == 11 and told == [[0]]
    layer.undo()  # napari emits no paint event here
    np.testing.assert_array_equal(on_disk(store)[0], part_map(0))
    assert told == [[0], [0]]
    assert store.edited_frames().tolist() == [0]  # the frame stays marked, the safe side


def test_redo_writes_again_and_tells_the_change(make_napari_viewer, store):
    viewer = make_napari_viewer()
    told = []
    layer = labels_layer(viewer, store, frame=3, told=told)
    layer.fill((3, 20, 30), 9)
    layer.undo()
    layer.redo()
    assert on_disk(store)[3, 20, 30] == 9
    assert told == [[3], [3], [3]]


def test_undo_of_a_data_setitem_on_a_frame_not_shown_tells_that_frame(make_napari_viewer, store):
    viewer = make_napari_viewer()
    told = []
    layer = labels_layer(viewer, store, frame=0, told=told)
    layer.data_setitem((np.array([4]), np.array([0]), np.array([0])), 21)
    layer.undo()
    assert on_disk(store)[4, 0, 0] == 0
    assert told == [[4], [4]] and store.edited_frames().tolist() == [4]


def test_a_polygon_is_told_and_undone(make_napari_viewer, store):
    viewer = make_napari_viewer()
    told = []
    layer = labels_layer(viewer, store, frame=2, told=told)
    layer.paint_polygon(np.array([[2, 1, 1], [2, 1, 8], [2, 8, 8]]), 7)
    assert on_disk(store)[2, 2, 6] == 7 and told == [[2]]
    layer.undo()
    np.testing.assert_array_equal(on_disk(store)[2], part_map(2))
    assert told == [[2], [2]]


def test_a_script_writing_the_shown_frame_and_refreshing_is_an_edit(make_napari_viewer, store):
    viewer = make_napari_viewer()
    told = []
    layer = labels_layer(viewer, store, frame=1, told=told)
    layer.data[1, 0:3, 0:3] = 7
    layer.refresh()
    assert told == [[1]] and store.edited_frames().tolist() == [1]
    viewer.dims.set_current_step(0, 2)  # moving to another frame changes what is shown: no edit
    layer.refresh()
    assert told == [[1]] and store.edited_frames().tolist() == [1]


def test_a_quiet_refresh_is_no_edit(make_napari_viewer, store):
    """A DensePose run writes frames and redraws the layer: that must not protect them as hand edits."""
    viewer = make_napari_viewer()
    layer = viewer.add_labels(store.labels)
    viewer.dims.set_current_step(0, 1)
    hook = connect_edits(layer, store)
    store.write_frame(1, part_map(3), np.zeros((HEIGHT, WIDTH), np.uint8), [])
    with hook.quietly():
        layer.refresh()
    assert store.edited_frames().tolist() == []
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), part_map(3))


def test_painting_a_label_that_is_no_part_is_undone(make_napari_viewer, store, qtbot):
    viewer = make_napari_viewer()
    layer = labels_layer(viewer, store, frame=2)
    layer.brush_size = 3
    layer.paint((2, 5, 5), MAX_PART + 6)
    qtbot.waitUntil(lambda: on_disk(store)[2, 5, 5] == 0, timeout=5_000)
    np.testing.assert_array_equal(on_disk(store)[2], part_map(2))
    layer.redo()  # the refused edit is not in the redo history
    assert on_disk(store)[2, 5, 5] == 0
    layer.data_setitem((np.array([3]), np.array([0]), np.array([0])), 200)
    qtbot.waitUntil(lambda: on_disk(store)[3, 0, 0] == 0, timeout=5_000)


def test_a_label_that_is_no_part_cannot_be_picked(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = labels_layer(viewer, store, frame=0)
    layer.selected_label = 12
    layer.selected_label = 30
    assert layer.selected_label == 12


def test_a_script_writing_labels_that_are_no_part_gets_background(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = labels_layer(viewer, store, frame=1)
    layer.data[1, 0:2, 0:2] = 99
    layer.refresh()
    assert on_disk(store)[1, 0:2, 0:2].max() == 0
    assert store.edited_frames().tolist() == [1]


def test_the_persons_layer_is_not_held_to_the_part_ids(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(StablePersons(store))
    connect_edits(layer, store)
    layer.selected_label = 60  # stable person ids count every person of a recording: past 24
    assert layer.selected_label == 60


def test_a_layer_of_the_raw_detection_indices_is_refused(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(store.persons)  # the tables speak stable ids: painting indices would mislead
    with pytest.raises(ValueError, match="StablePersons"):
        connect_edits(layer, store)


@dataclass
class MouseEvent:
    type: str
    position: tuple
    is_dragging: bool = False
    dims_point: tuple = (0, 0, 0)
    dims_displayed: tuple = (1, 2)
    view_direction: tuple | None = None
    button: int = 1
    modifiers: tuple = field(default_factory=tuple)
    handled: bool = False


def test_a_mouse_stroke_is_one_paint_event_and_marks_its_frame(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = labels_layer(viewer, store, frame=4)
    events = []
    layer.events.paint.connect(events.append)
    layer.mode = "paint"
    layer.selected_label = 5
    layer.brush_size = 2
    point = (4, 0, 0)
    for kind, pos, dragging, callbacks in (
        ("mouse_press", (4, 2, 2), False, mouse_press_callbacks),
        ("mouse_move", (4, 2, 12), True, mouse_move_callbacks),
        ("mouse_move", (4, 2, 22), True, mouse_move_callbacks),
        ("mouse_release", (4, 2, 22), False, mouse_release_callbacks),
    ):
        callbacks(layer, ReadOnlyWrapper(MouseEvent(kind, pos, dragging, point)))
    assert len(events) == 1
    assert (on_disk(store)[4, 2, 2:23] == 5).all()
    assert store.edited_frames().tolist() == [4]


def test_a_read_only_store_gives_a_layer_that_cannot_be_edited(make_napari_viewer, store):
    read_only = ResultsStore.open(store.folder, mode="r")
    viewer = make_napari_viewer()
    layer = viewer.add_labels(read_only.labels)
    connect_edits(layer, read_only)
    assert layer.editable is False


def test_connect_edits_refuses_a_layer_not_backed_by_the_store(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((N_FRAMES, HEIGHT, WIDTH), np.uint8))
    with pytest.raises(ValueError, match="store.labels"):
        connect_edits(layer, store)


def test_disconnecting_stops_the_edit_marks(make_napari_viewer, store):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(store.labels)
    disconnect = connect_edits(layer, store)
    layer.paint((1, 3, 3), 2)
    disconnect()
    layer.paint((2, 3, 3), 2)
    assert store.edited_frames().tolist() == [1]
