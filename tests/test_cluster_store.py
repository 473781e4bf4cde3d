"""A store shared between hosts: one log segment per writer, merged on read in one order for every reader."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_store import META, frame_data

from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.store_log import (
    LOG_NAME,
    SEGMENT_SUFFIX,
    WRITERS_FOLDER,
    FrameLog,
    format_line,
    share_between_hosts,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="inter-process locks use flock")

SRC = Path(__file__).resolve().parents[1] / "src"
N = 12


def shared_store(tmp_path: Path) -> ResultsStore:
    store = ResultsStore.create(tmp_path / "store", n_frames=N, height=8, width=8, metadata=META)
    share_between_hosts(store.folder)
    return store


def segments(folder: Path) -> list[Path]:
    return sorted((folder / WRITERS_FOLDER).glob(f"*{SEGMENT_SUFFIX}"))


def test_writers_of_a_shared_store_append_to_segments_of_their_own_and_readers_merge_them(tmp_path):
    first = shared_store(tmp_path)
    second = ResultsStore.open(first.folder, mode="r+")
    first.write_frame(0, *frame_data(0, 8, 8))
    second.write_frame(1, *frame_data(1, 8, 8))
    second.mark_edited(2)
    assert (first.folder / LOG_NAME).read_bytes() == b""  # no file has two writers
    assert len(segments(first.folder)) == 2
    for handle in (first, second, ResultsStore.open(first.folder)):
        assert handle.processed_frames().tolist() == [0, 1] and handle.edited_frames().tolist() == [2]
        np.testing.assert_array_equal(handle.read_frame(1)[0], frame_data(1, 8, 8)[0])
    assert first.verify() == []


def test_resets_and_edits_across_segments_apply_in_the_order_the_writers_held_the_lock(tmp_path):
    first = shared_store(tmp_path)
    second = ResultsStore.open(first.folder, mode="r+")
    first.write_frame(3, *frame_data(3, 8, 8))
    second.clear_frame(3)  # after the done line: the frame is forgotten
    second.write_frame(4, *frame_data(4, 8, 8))
    first.mark_edited(4)
    assert not second.write_frame(4, *frame_data(4, 8, 8, version=2))  # the edit in the other segment holds
    for handle in (first, second, ResultsStore.open(first.folder)):
        assert handle.processed_frames().tolist() == [4] and handle.edited_frames().tolist() == [4]


def test_lines_that_arrive_out_of_order_are_replayed_in_the_one_order(tmp_path):
    # Writers whose lock did not reach each other: a line numbered before one already applied.
    (tmp_path / LOG_NAME).touch()
    (tmp_path / WRITERS_FOLDER).mkdir()
    a, b = (tmp_path / WRITERS_FOLDER / f"{name}{SEGMENT_SUFFIX}" for name in ("a", "b"))
    done = {**FrameLog.done_record(1, [], {"labels": None, "persons": None}), "seq": 3}
    a.write_bytes(format_line(done))
    reader = FrameLog(tmp_path / LOG_NAME)
    assert 1 in reader.done
    b.write_bytes(format_line({**FrameLog.frame_record(1, "reset"), "seq": 2}))
    reader.sync()
    assert 1 in reader.done  # the reset came first
    b.write_bytes(format_line({**FrameLog.frame_record(1, "reset"), "seq": 2})
                  + format_line({**FrameLog.frame_record(1, "reset"), "seq": 3}))  # a tie: file names decide
    reader.sync()
    assert 1 not in reader.done and 1 not in FrameLog(tmp_path / LOG_NAME).done


def test_a_segment_cut_short_by_a_kill_loses_only_its_last_line(tmp_path):
    store = shared_store(tmp_path)
    store.write_frame(0, *frame_data(0, 8, 8))
    segment = segments(store.folder)[0]
    with segment.open("ab") as f:
        f.write(format_line(FrameLog.frame_record(5, "edited"))[:-4])
    reopened = ResultsStore.open(store.folder, mode="r+")
    assert reopened.processed_frames().tolist() == [0] and reopened.edited_frames().tolist() == []
    reopened.write_frame(5, *frame_data(5, 8, 8))
    assert ResultsStore.open(store.folder).processed_frames().tolist() == [0, 5]


WRITER = textwrap.dedent(
    f"""
    import sys
    sys.path.insert(0, {str(SRC)!r})
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from test_store import frame_data
    from napari_densepose_gaze.store import ResultsStore
    store = ResultsStore.open(sys.argv[1], mode="r+")
    while True:
        claimed = store.claim(range({N}))
        if not claimed:
            break
        mine = claimed[:2]  # a few at a time, like a chunk
        store.release(claimed[2:])
        for i in mine:
            store.write_frame(i, *frame_data(i, 8, 8))
    store.close()
    """
)


def test_writers_in_several_processes_share_the_frames_without_losing_or_doubling_one(tmp_path):
    store = shared_store(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store.folder)]) for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=240) == 0
    assert store.processed_frames().tolist() == list(range(N)) and store.verify() == []
    done_lines = [line for seg in segments(store.folder) for line in seg.read_bytes().splitlines()
                  if b'"event":"done"' in line]
    assert len(done_lines) == N  # every frame computed once
    for i in range(N):
        np.testing.assert_array_equal(store.read_frame(i)[1], frame_data(i, 8, 8)[1])
