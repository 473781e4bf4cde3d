"""Stable person ids: linking detections across frames, and storing them with the results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.store import PERSON_ID_COLUMNS, ResultsStore
from napari_densepose_gaze.tracking import box_iou, link_detections, link_store

META = {"recording_id": "rec-1", "model": "m", "checkpoint_sha256": "ab" * 32, "score_threshold": 0.8}


def detections(rows):
    """rows: (frame, person, x1, y1, x2, y2)."""
    table = pd.DataFrame(rows, columns=["frame", "person", "x1 [px]", "y1 [px]", "x2 [px]", "y2 [px]"])
    return table.assign(score=0.9).astype({"frame": "int64", "person": "int64"})


def ids(table):
    return [(int(f), int(p), int(i)) for f, p, i in table[["frame", "person", "person id"]].to_numpy()]


def test_box_iou_exact_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0, 1], [0, 0, 0]])


def test_ids_follow_people_when_the_detection_order_swaps():
    left, right = (0, 0, 10, 20), (50, 0, 60, 20)
    table = link_detections(detections([
        (0, 1, *left), (0, 2, *right),
        (1, 1, *right), (1, 2, *left),          # the engine numbered them the other way round
        (2, 1, 51, 0, 61, 20), (2, 2, 1, 0, 11, 20),
    ]))
    assert ids(table) == [(0, 1, 1), (0, 2, 2), (1, 1, 2), (1, 2, 1), (2, 1, 2), (2, 2, 1)]
    assert list(table.columns) == list(PERSON_ID_COLUMNS)


def test_a_person_missed_on_a_few_frames_keeps_the_id_beyond_that_gets_a_new_one():
    box = (0, 0, 10, 20)
    rows = [(0, 1, *box), (3, 1, *box), (10, 1, *box)]
    table = link_detections(detections(rows), frames=range(11), max_missed=2)
    # frames 1, 2 missed (2 <= max_missed): same id; frames 4..9 missed (6): a new id
    assert ids(table) == [(0, 1, 1), (3, 1, 1), (10, 1, 2)]
    # without the processed frames only frames with detections count: nothing is missed
    assert [i for *_, i in ids(link_detections(detections(rows), max_missed=2))] == [1, 1, 1]


def test_too_little_overlap_starts_a_new_person():
    table = link_detections(detections([(0, 1, 0, 0, 10, 10), (1, 1, 8, 0, 18, 10)]), min_iou=0.3)
    assert [i for *_, i in ids(table)] == [1, 2]  # IoU 2/18 < 0.3
    table = link_detections(detections([(0, 1, 0, 0, 10, 10), (1, 1, 3, 0, 13, 10)]), min_iou=0.3)
    assert [i for *_, i in ids(table)] == [1, 1]  # IoU 7/13


def test_the_assignment_is_optimal_not_greedy():
    # track A = (0,0,10,10), track B = (6,0,16,10). On frame 1, detection 1 = (2,0,12,10) overlaps A most,
    # but giving it to B and detection 2 = (-3,0,7,10) to A gives the larger total overlap.
    rows = [(0, 1, 0, 0, 10, 10), (0, 2, 6, 0, 16, 10), (1, 1, 2, 0, 12, 10), (1, 2, -3, 0, 7, 10)]
    iou = box_iou(np.array([r[2:] for r in rows[:2]]), np.array([r[2:] for r in rows[2:]]))
    greedy = iou[0, 0] + iou[1, 1]  # A takes its best (detection 1), B is left with detection 2
    optimal = iou[0, 1] + iou[1, 0]
    assert iou[0, 0] == iou.max() and optimal > greedy
    table = link_detections(detections(rows), min_iou=0.05)
    assert ids(table)[2:] == [(1, 1, 2), (1, 2, 1)]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        link_detections(detections([]), min_iou=0)
    with pytest.raises(ValueError):
        link_detections(detections([]), max_missed=-1)
    assert link_detections(detections([])).empty


def make_store(tmp_path, n_frames=4):
    return ResultsStore.create(tmp_path / "rec.densepose", n_frames=n_frames, height=12, width=16, metadata=META)


def write(store, frame, boxes):
    labels = np.zeros((12, 16), np.uint8)
    persons = np.zeros((12, 16), np.uint8)
    rows = [{"x1 [px]": b[0], "y1 [px]": b[1], "x2 [px]": b[2], "y2 [px]": b[3], "score": 0.9} for b in boxes]
    store.write_frame(frame, labels, persons, rows)


def test_person_ids_round_trip_through_the_store_atomically(tmp_path):
    store = make_store(tmp_path)
    assert store.person_ids() is None
    write(store, 0, [(0, 0, 5, 5), (8, 0, 14, 6)])
    write(store, 1, [(8, 0, 14, 6), (0, 0, 5, 5)])
    table = link_store(store)
    assert ids(table) == [(0, 1, 1), (0, 2, 2), (1, 1, 2), (1, 2, 1)]
    assert [p.name for p in store.folder.iterdir() if "person_ids" in p.name] == ["person_ids.csv"]  # no temp file
    reopened = ResultsStore.open(store.folder)
    pd.testing.assert_frame_equal(reopened.person_ids(), table)


def test_link_store_counts_a_processed_frame_without_people_as_a_miss(tmp_path):
    store = make_store(tmp_path)
    write(store, 0, [(0, 0, 5, 5)])
    write(store, 1, [])  # processed, nobody found
    write(store, 3, [(0, 0, 5, 5)])  # frame 2 was never processed: not a step
    assert ids(link_store(store, max_missed=0, write=False)) == [(0, 1, 1), (3, 1, 2)]
    assert ids(link_store(store, max_missed=1, write=False)) == [(0, 1, 1), (3, 1, 1)]
    assert store.person_ids() is None  # write=False writes nothing


def test_stored_ids_of_a_rerun_frame_are_dropped(tmp_path):
    store = make_store(tmp_path)
    write(store, 0, [(0, 0, 5, 5)])
    write(store, 1, [(0, 0, 5, 5)])
    link_store(store)
    write(store, 1, [(6, 6, 12, 12)])  # re-run with another box
    kept = store.person_ids()
    assert ids(kept) == [(0, 1, 1)]
    assert len(kept) < len(store.detections())
    store.clear_frame(0)
    assert store.person_ids().empty


def test_person_ids_need_a_writable_store_and_the_columns(tmp_path):
    store = make_store(tmp_path)
    write(store, 0, [(0, 0, 5, 5)])
    table = link_store(store, write=False)
    with pytest.raises(ValueError, match="person id"):
        store.write_person_ids(table.drop(columns=["person id"]))
    with pytest.raises(DensePoseGazeError, match="read-only"):
        ResultsStore.open(store.folder, mode="r").write_person_ids(table)


def test_overwriting_a_store_removes_its_person_ids(tmp_path):
    store = make_store(tmp_path)
    write(store, 0, [(0, 0, 5, 5)])
    link_store(store)
    fresh = ResultsStore.create(store.folder, n_frames=4, height=12, width=16, metadata=META, overwrite=True)
    assert fresh.person_ids() is None


def test_a_damaged_person_ids_file_is_a_clear_error(tmp_path):
    store = make_store(tmp_path)
    (store.folder / "person_ids.csv").write_text("frame,person\n0,1\n")
    with pytest.raises(DensePoseGazeError, match="person_ids.csv"):
        store.person_ids()
    (store.folder / "person_ids.csv").write_text(",".join(PERSON_ID_COLUMNS) + "\nx,1,0,0,1,1,0.9,1\n")
    with pytest.raises(DensePoseGazeError, match="person_ids.csv"):
        store.person_ids()
