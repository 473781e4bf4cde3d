"""The store finds its own damage: chunk files deleted, truncated, bit-flipped or swapped; a full disk."""

from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest
from test_store import META, frame_data, make_store

from napari_densepose_gaze import store_chunks, store_log
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.store_log import format_line

N = 6


def filled_store(tmp_path):
    """Frames 0..N-1, each with body parts (so each has both chunk files)."""
    store = make_store(tmp_path, n_frames=N)
    for i in range(N):
        labels, persons, rows = frame_data(i, 24, 32)
        labels[0, 0] = persons[0, 0] = i + 1  # never all background, never two alike
        store.write_frame(i, labels, persons, rows)
    return store


def chunk(store, frame, name="labels"):
    return store.folder / name / "c" / str(frame) / "0" / "0"


def delete(store, frame):
    chunk(store, frame).unlink()


def truncate(store, frame):
    path = chunk(store, frame)
    path.write_bytes(path.read_bytes()[:-7])


def flip(store, frame):
    path = chunk(store, frame, "persons")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def swap(store, frame):
    a, b = chunk(store, frame), chunk(store, frame + 1)
    tmp = a.with_name("swap")
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)


@pytest.mark.parametrize("damage", [delete, truncate, flip, swap], ids=lambda f: f.__name__)
def test_a_damaged_chunk_is_reported_with_its_frame_and_is_pending_again(tmp_path, damage):
    store = filled_store(tmp_path)
    assert store.pending(range(N)) == []  # intact: nothing to do (and the files are now known good)
    damage(store, 2)
    damaged = [2, 3] if damage is swap else [2]
    for handle in (store, ResultsStore.open(store.folder)):
        with pytest.raises(DensePoseGazeError, match=f"Frame 2 of the results store {store.folder} is damaged"):
            handle.read_frame(2)
        problems = handle.verify()
        assert [frame for frame, _ in problems] == damaged
        assert all(str(store.folder) in problem for _, problem in problems)
        assert handle.pending(range(N)) == damaged  # a run recomputes them instead of "0 to do"
        assert handle.pending([5, 3, 1, 2, 3]) == ([3, 2] if damage is swap else [2])  # in the order asked
        assert handle.processed_frames().tolist() == list(range(N))  # until then their detections stay
    # Recomputing repairs them.
    for i in damaged:
        store.write_frame(i, *frame_data(i, 24, 32, version=2))
    assert store.verify() == [] and store.pending(range(N)) == []
    np.testing.assert_array_equal(store.read_frame(2)[0], frame_data(2, 24, 32, version=2)[0])


def test_a_chunk_file_where_the_frame_was_stored_empty_is_damage(tmp_path):
    store = make_store(tmp_path, n_frames=3)
    zeros = np.zeros((24, 32), np.uint8)
    store.write_frame(0, zeros, zeros, [])
    labels, persons, rows = frame_data(1, 24, 32)
    labels[0, 0] = 1
    store.write_frame(1, labels, persons, rows)
    assert not chunk(store, 0).exists()
    chunk(store, 0).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(chunk(store, 1), chunk(store, 0))
    assert [f for f, _ in store.verify()] == [0]
    with pytest.raises(DensePoseGazeError, match="Frame 0 .* should not exist"):
        store.read_frame(0)


def test_a_frame_replaced_by_a_writer_while_a_reader_looks_is_not_damage(tmp_path):
    store = filled_store(tmp_path)
    reader = ResultsStore.open(store.folder)
    assert reader.pending(range(N)) == []
    store.write_frame(1, *frame_data(1, 24, 32, version=2))  # the reader's log is now stale
    np.testing.assert_array_equal(reader.read_frame(1)[0], frame_data(1, 24, 32, version=2)[0])
    assert reader.verify() == [] and reader.pending(range(N)) == []


def test_frames_stored_without_checksums_are_trusted_but_must_decode(tmp_path):
    # A store written before chunk checksums: its done lines carry none.
    store = filled_store(tmp_path)
    log = store.folder / "frames.log"
    lines = [store_log.parse_line(raw) for raw in log.read_bytes().splitlines()]
    log.write_bytes(b"".join(format_line({k: v for k, v in r.items() if k != "chunks"}) for r in lines))
    old = ResultsStore.open(store.folder, mode="r+")
    assert old.processed_frames().tolist() == list(range(N)) and old.verify() == []
    np.testing.assert_array_equal(old.read_frame(4)[1], store.read_frame(4)[1])
    truncate(old, 5)  # without a checksum, a chunk that does not decode is still found
    assert [f for f, _ in old.verify()] == [5]
    with pytest.raises(DensePoseGazeError, match="Frame 5 .*cannot be decoded"):
        old.read_frame(5)
    assert old.pending(range(N)) == []  # old frames are trusted: only verify() reads them all


def test_a_store_of_the_first_format_opens_reads_and_resumes(tmp_path):
    store = filled_store(tmp_path)
    (store.folder / "writers").mkdir(exist_ok=True)
    shutil.rmtree(store.folder / "writers")  # the first format had no writers folder either
    resumed = ResultsStore.create(store.folder, n_frames=N, height=24, width=32, metadata=META, exist_ok=True)
    assert resumed.claim(range(N)) == []
    resumed.clear_frame(0)
    assert resumed.claim(range(N)) == [0]


# -------------------------------------------------------------- a full disk
def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["chunk", "log"])
def test_a_full_disk_mid_run_gives_a_clear_message_keeps_finished_frames_and_resumes(tmp_path, monkeypatch, where):
    store = make_store(tmp_path, n_frames=N)
    for i in range(3):
        store.write_frame(i, *frame_data(i, 24, 32))
    if where == "chunk":
        monkeypatch.setattr(store_chunks.FrameChunks, "stage", no_space)
    else:
        monkeypatch.setattr(store_log.os, "write", no_space)
    with pytest.raises(DensePoseGazeError, match=f"disk holding the results store {store.folder} is full: frame 3 "
                                                 "was not stored.*kept; free disk space and run again"):
        store.write_frame(3, *frame_data(3, 24, 32))
    monkeypatch.undo()  # space freed
    assert list((store.folder / "labels").rglob("*.partial")) == []
    for handle in (store, ResultsStore.open(store.folder, mode="r+")):
        assert handle.processed_frames().tolist() == [0, 1, 2]
        assert handle.pending(range(N)) == [3, 4, 5]
    for i in range(3, N):
        store.write_frame(i, *frame_data(i, 24, 32))
    assert store.verify() == [] and store.pending(range(N)) == []


def test_a_full_disk_while_marking_an_edit_is_a_clear_error(tmp_path, monkeypatch):
    store = make_store(tmp_path, n_frames=N)
    monkeypatch.setattr(store_log.os, "write", no_space)
    with pytest.raises(DensePoseGazeError, match="is full: the edit mark of frame 1 was not stored"):
        store.mark_edited(1)
