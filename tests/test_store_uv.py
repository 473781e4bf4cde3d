"""Head U, V in the results store: round trip, hand corrections, old stores, damage, replacement."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.store import HEAD_UV_NAMES, ResultsStore
from napari_densepose_gaze.store_create import make_store_folder

META = {"recording_id": "rec-uv", "model": "m", "checkpoint_sha256": "cd" * 32, "score_threshold": 0.8}
H, W = 20, 30
STEP = 1 / 254  # the codes' resolution


def head_frame(seed: int):
    """A person with a head (23 left half of the box, 24 right half) on a torso, and U, V everywhere."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((H, W), np.uint8)
    persons = np.zeros((H, W), np.uint8)
    labels[2:8, 10:15], labels[2:8, 15:20] = 23, 24
    labels[8:18, 8:22] = 2
    persons[2:18, 8:22] = 1
    u = rng.uniform(0, 1, (H, W)).astype(np.float32)
    v = rng.uniform(0, 1, (H, W)).astype(np.float32)
    rows = [{"person": 1, "x1 [px]": 8, "y1 [px]": 2, "x2 [px]": 22, "y2 [px]": 18, "score": 0.9}]
    return labels, persons, rows, (u, v)


def make(tmp_path: Path, **kwargs) -> ResultsStore:
    return ResultsStore.create(tmp_path / "rec.densepose", n_frames=4, height=H, width=W, metadata=META, **kwargs)


def test_head_uv_round_trips_on_head_pixels_only(tmp_path):
    store = make(tmp_path)
    labels, persons, rows, (u, v) = head_frame(1)
    assert store.write_frame(1, labels, persons, rows, head_uv=(u, v))
    got_u, got_v = ResultsStore.open(store.folder).read_head_uv(1)
    head = np.isin(labels, (23, 24))
    assert np.abs(got_u[head] - u[head]).max() <= STEP / 2 + 1e-6
    assert np.abs(got_v[head] - v[head]).max() <= STEP / 2 + 1e-6
    assert np.isnan(got_u[~head]).all() and np.isnan(got_v[~head]).all()
    assert store.verify() == []


def test_a_frame_written_without_uv_has_head_pixels_without_uv(tmp_path):
    store = make(tmp_path)
    labels, persons, rows, _ = head_frame(2)
    store.write_frame(0, labels, persons, rows)
    u, v = store.read_head_uv(0)
    assert np.isnan(u).all() and np.isnan(v).all()


def test_painting_decides_which_pixels_keep_uv(tmp_path):
    store = make(tmp_path)
    labels, persons, rows, (u, v) = head_frame(3)
    store.write_frame(2, labels, persons, rows, head_uv=(u, v))
    before_u, _ = store.read_head_uv(2)
    with store.editing(2):
        store.labels[2, 3, 11] = 2  # head painted as torso: loses its U, V
        store.labels[2, 10, 10] = 23  # torso painted as head: never had U, V
        store.labels[2, 4, 12] = 24  # right half relabelled left: keeps its place on the head
    after_u, after_v = store.read_head_uv(2)
    assert np.isnan(after_u[3, 11]) and np.isnan(after_v[3, 11])
    assert np.isnan(after_u[10, 10])
    assert after_u[4, 12] == before_u[4, 12]
    untouched = np.isin(store.labels[2], (23, 24))
    untouched[4, 12] = untouched[10, 10] = False
    np.testing.assert_array_equal(after_u[untouched], before_u[untouched])
    with store.editing(2):
        store.labels[2, 3, 11] = 23  # painted back (or undone): the model's U, V are valid again
    assert store.read_head_uv(2)[0][3, 11] == before_u[3, 11]


def test_a_rerun_and_a_reset_replace_uv(tmp_path):
    store = make(tmp_path)
    labels, persons, rows, (u, v) = head_frame(4)
    store.write_frame(1, labels, persons, rows, head_uv=(u, v))
    store.write_frame(1, labels, persons, rows, head_uv=(1 - u, v))
    head = np.isin(labels, (23, 24))
    assert np.abs(store.read_head_uv(1)[0][head] - (1 - u)[head]).max() <= STEP / 2 + 1e-6
    store.clear_frame(1)
    assert np.isnan(store.read_head_uv(1)[0]).all()
    assert not [p for p in (store.folder / "head_u").rglob("*") if p.is_file() and p.name != "zarr.json"]


def test_a_store_without_uv_opens_read_only_and_gains_them_for_writing(tmp_path):
    store = make(tmp_path)
    labels, persons, rows, (u, v) = head_frame(5)
    store.write_frame(0, labels, persons, rows)
    store.close()
    for name in HEAD_UV_NAMES:  # what a store of an older version looks like
        shutil.rmtree(store.folder / name)
    old = ResultsStore.open(store.folder)
    assert old.head_uv is None
    assert np.isnan(old.read_head_uv(0)[0]).all()
    np.testing.assert_array_equal(old.read_frame(0)[0], labels)
    writer = ResultsStore.open(store.folder, "r+")
    assert writer.head_uv is not None and writer.verify() == []
    writer.write_frame(3, labels, persons, rows, head_uv=(u, v))
    assert np.isfinite(ResultsStore.open(store.folder).read_head_uv(3)[0][labels == 23]).all()
    assert not list(store.folder.glob(".head_*"))  # no temporary folders left


def test_a_damaged_uv_chunk_is_found_and_named(tmp_path):
    store = make(tmp_path)
    labels, persons, rows, (u, v) = head_frame(6)
    store.write_frame(2, labels, persons, rows, head_uv=(u, v))
    chunk = next(p for p in (store.folder / "head_v").rglob("*") if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    reader = ResultsStore.open(store.folder)
    damaged = reader.verify()
    assert [frame for frame, _ in damaged] == [2] and "head_v" in damaged[0][1]
    with pytest.raises(DensePoseGazeError, match="Frame 2"):
        reader.read_head_uv(2)
    assert reader.pending([2]) == [2]


def test_overwriting_a_store_drops_its_uv(tmp_path):
    store = make(tmp_path)
    labels, persons, rows, (u, v) = head_frame(7)
    store.write_frame(1, labels, persons, rows, head_uv=(u, v))
    store.close()
    fresh = make(tmp_path, overwrite=True)
    fresh.write_frame(1, labels, persons, rows)
    assert np.isnan(fresh.read_head_uv(1)[0]).all()
    assert fresh.verify() == []


def test_a_store_has_fresh_uv_arrays_the_moment_it_is_in_place(tmp_path):
    """Another process may open a store as soon as its folder is in place: there is nothing to add or remove then."""
    store = make(tmp_path)
    labels, persons, rows, (u, v) = head_frame(8)
    store.write_frame(1, labels, persons, rows, head_uv=(u, v))
    store.close()
    attrs = {"format_version": 1, "metadata": META}
    for folder, overwrite in ((store.folder, True), (tmp_path / "new.densepose", False)):
        assert make_store_folder(folder, (4, H, W), attrs, exist_ok=False, overwrite=overwrite)
        for name in HEAD_UV_NAMES:  # the replaced store's chunks are gone, the array is there
            assert [p.name for p in (folder / name).rglob("*") if p.is_file()] == ["zarr.json"]
        reader = ResultsStore.open(folder)  # read-only: adds nothing
        assert reader.head_uv is not None and reader.processed_frames().tolist() == []
        assert np.isnan(reader.read_head_uv(1)[0]).all()
