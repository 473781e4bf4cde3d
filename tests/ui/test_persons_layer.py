"""Who is who: the persons layer speaks the stable person ids of the tables, and corrected parts keep a person."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.tracking import link_store, person_id_lookup
from napari_densepose_gaze.ui import store_layer
from napari_densepose_gaze.ui.layer_roles import BODY_PARTS, PERSONS
from napari_densepose_gaze.ui.session import session_of

PLUGIN = "napari-densepose-gaze"
LEFT = (slice(40, 80), slice(10, 50))  # rows, columns of the person on the left
RIGHT = (slice(40, 80), slice(100, 140))
SWAPPED_FROM = 8  # from this frame on DensePose finds the right person first: detection indices swap
TORSO = 2


def box(region) -> dict:
    rows, cols = region
    return {"x1": cols.start, "y1": rows.start, "x2": cols.stop, "y2": rows.stop, "score": 0.99}


@pytest.fixture(scope="module")
def two_people(tmp_path_factory) -> tuple[Recording, ResultsStore]:
    """A 15-frame recording with two people standing still, linked; the detection order swaps on frame 8."""
    from napari_densepose_gaze.synthetic.export import write_recording

    folder = write_recording(tmp_path_factory.mktemp("persons"), seconds=0.5, size=(160, 120))
    recording = Recording.open(folder)
    width, height = recording.frame_size
    store = ResultsStore.create(ResultsStore.default_folder(folder), n_frames=recording.n_frames, height=height,
                                width=width, metadata={"model": "by hand", "recording_folder": str(folder)})
    for frame in range(recording.n_frames):
        order = [LEFT, RIGHT] if frame < SWAPPED_FROM else [RIGHT, LEFT]
        labels = np.zeros((height, width), np.uint8)
        persons = np.zeros((height, width), np.uint8)
        for index, region in enumerate(order, start=1):
            labels[region] = TORSO
            persons[region] = index
        store.write_frame(frame, labels, persons, [box(region) for region in order])
    link_store(store)
    return recording, store


@pytest.fixture
def opened(two_people, tmp_path, make_napari_viewer):
    recording, store = two_people
    folder = tmp_path / recording.folder.name
    shutil.copytree(recording.folder, folder)
    shutil.copytree(store.folder, ResultsStore.default_folder(folder))
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    return viewer, session_of(viewer.layers[-1])


def shown(layer, frame: int, viewer) -> np.ndarray:
    """What the layer draws on ``frame``: the labels of the slice napari made for the canvas (shown, as by a user)."""
    layer.visible = True
    viewer.dims.set_current_step(0, frame)
    view = np.asarray(layer._slice.image.raw)
    assert view.shape == layer.data.shape[1:]
    return view


def stable_id(store: ResultsStore, frame: int, region) -> int:
    ids = store.person_ids()
    index = int(np.asarray(store.persons[frame])[region].max())
    return int(ids[(ids["frame"] == frame) & (ids["person"] == index)]["person id"].iloc[0])


def test_the_persons_layer_shows_the_stable_ids_of_the_tables(opened, layer_of):
    viewer, session = opened
    store, persons = session.store, layer_of(viewer, PERSONS)
    left, right = stable_id(store, 0, LEFT), stable_id(store, 0, RIGHT)
    assert left != right
    for frame in (0, SWAPPED_FROM + 2):
        view = shown(persons, frame, viewer)
        assert (view[LEFT] == left).all() and (view[RIGHT] == right).all(), f"frame {frame}"
    # the store keeps the detection index, which swapped: the layer does not
    assert np.asarray(store.persons[SWAPPED_FROM + 2])[RIGHT].max() == 1
    # the hit tables map (frame, detection) to ids with this look-up: the same person on the same pixel
    lookup = person_id_lookup(store.person_ids())
    assert lookup[(SWAPPED_FROM + 2, int(store.persons[SWAPPED_FROM + 2, 60, 120]))] == right


def test_painting_a_person_stores_that_persons_detection_on_the_frame(opened, layer_of, qtbot):
    viewer, session = opened
    store, persons = session.store, layer_of(viewer, PERSONS)
    frame = SWAPPED_FROM + 2
    left, right = stable_id(store, frame, LEFT), stable_id(store, frame, RIGHT)
    viewer.layers.selection.active = persons
    persons.brush_size = 5
    persons.selected_label = left
    persons.paint((frame, 60, 120), left)  # a patch of the right person is in fact the left one
    qtbot.waitUntil(lambda: store.edited_frames().tolist() == [frame], timeout=5_000)
    assert np.asarray(store.persons[frame])[60, 120] == 2  # the left person's detection index on this frame
    view = shown(persons, frame, viewer)
    assert view[60, 120] == left and view[45, 135] == right


def test_painting_a_person_not_on_the_frame_is_undone_with_a_message(opened, layer_of, qtbot, monkeypatch):
    viewer, session = opened
    warnings: list[str] = []
    monkeypatch.setattr(store_layer, "show_warning", warnings.append)
    store, persons = session.store, layer_of(viewer, PERSONS)
    before = np.asarray(store.persons[3]).copy()
    viewer.layers.selection.active = persons
    persons.brush_size = 5
    persons.selected_label = 9
    persons.paint((3, 60, 30), 9)
    qtbot.waitUntil(lambda: bool(warnings), timeout=5_000)
    assert "Person 9 is not detected on frame 3" in warnings[0]
    np.testing.assert_array_equal(np.asarray(store.persons[3]), before)
    assert 9 not in shown(persons, 3, viewer)


def test_a_part_painted_onto_background_joins_the_person_it_touches(opened, layer_of, qtbot):
    viewer, session = opened
    store, parts = session.store, layer_of(viewer, BODY_PARTS)
    frame = SWAPPED_FROM + 3
    viewer.layers.selection.active = parts
    parts.brush_size = 6
    parts.paint((frame, 60, 142), 4)  # the right person's arm, a little past their torso
    parts.paint((frame, 15, 80), 4)  # in the air between them: nobody's
    qtbot.waitUntil(lambda: np.asarray(store.labels[frame])[60, 142] == 4, timeout=5_000)
    detections = np.asarray(store.persons[frame])
    assert detections[60, 142] == detections[60, 120] == 1  # the right person's index on this frame
    assert detections[15, 80] == 0
    right = stable_id(store, frame, RIGHT)
    assert shown(layer_of(viewer, PERSONS), frame, viewer)[60, 142] == right


def test_a_part_painted_over_a_person_keeps_their_id(opened, layer_of, qtbot):
    viewer, session = opened
    store, parts = session.store, layer_of(viewer, BODY_PARTS)
    before = np.asarray(store.persons[5]).copy()
    viewer.layers.selection.active = parts
    parts.brush_size = 6
    parts.paint((5, 60, 30), 14)  # the left person's torso is an arm after all
    qtbot.waitUntil(lambda: np.asarray(store.labels[5])[60, 30] == 14, timeout=5_000)
    np.testing.assert_array_equal(np.asarray(store.persons[5]), before)
