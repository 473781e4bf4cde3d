"""The frame log alone: replay, incremental sync between handles, torn and damaged lines, the lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from napari_densepose_gaze.store_log import FrameLog, format_line, parse_line

SRC = Path(__file__).resolve().parents[1] / "src"


def new_log(tmp_path: Path) -> FrameLog:
    path = tmp_path / "frames.log"
    path.touch()
    return FrameLog(path)


def test_events_replay_to_done_edited_and_reset_state(tmp_path):
    log = new_log(tmp_path)
    log.append(FrameLog.done_record(0, [[1, 0, 0, 4, 4, 0.9]], {"labels": (10, 123), "persons": None}))
    log.append(FrameLog.done_record(1, [], {"labels": None, "persons": None}), FrameLog.frame_record(1, "edited"))
    log.append(FrameLog.frame_record(3, "edited"), FrameLog.frame_record(3, "reset"))
    replayed = FrameLog(log.path)
    for state in (log, replayed):
        assert sorted(state.done) == [0, 1]
        assert state.done[0].detections == [[1, 0, 0, 4, 4, 0.9]]
        assert state.done[0].chunks == {"labels": (10, 123), "persons": None}
        assert state.edited == {1}


def test_a_done_line_never_clears_an_edit_mark(tmp_path):
    # An edit logged between a writer's check and its done line must survive the done line.
    log = new_log(tmp_path)
    log.append(FrameLog.frame_record(2, "edited"))
    log.append(FrameLog.done_record(2, [], {"labels": None, "persons": None}))
    assert 2 in FrameLog(log.path).edited and 2 in log.done


def test_lines_from_before_chunk_checksums_are_read_without_them(tmp_path):
    path = tmp_path / "frames.log"
    path.write_bytes(format_line({"frame": 4, "event": "done", "detections": [[1, 1, 2, 3, 4, 0.8]]}))
    log = FrameLog(path)
    assert log.done[4].chunks is None and log.done[4].detections == [[1, 1, 2, 3, 4, 0.8]]


def test_a_second_handle_picks_up_new_lines_incrementally(tmp_path):
    writer = new_log(tmp_path)
    reader = FrameLog(writer.path)
    writer.append(FrameLog.frame_record(5, "edited"))
    assert reader.edited == set()  # only after a sync
    reader.sync()
    assert reader.edited == {5}
    writer.append(FrameLog.frame_record(5, "reset"), FrameLog.frame_record(6, "edited"))
    reader.sync()
    assert reader.edited == {6}


def test_a_torn_tail_is_not_read_and_the_next_line_starts_fresh(tmp_path):
    log = new_log(tmp_path)
    log.append(FrameLog.frame_record(0, "edited"))
    torn = format_line(FrameLog.frame_record(1, "edited"))[:-5]  # a kill mid-write
    with log.path.open("ab") as f:
        f.write(torn)
    reader = FrameLog(log.path)
    assert reader.edited == {0}
    log.append(FrameLog.frame_record(2, "edited"))
    reader.sync()
    assert reader.edited == {0, 2} == FrameLog(log.path).edited
    assert log.path.read_bytes().count(b"\n") == 3  # the torn line got its own (invalid) line


def test_damaged_or_unknown_lines_are_ignored(tmp_path):
    good = format_line(FrameLog.frame_record(0, "edited"))
    flipped = good.replace(b'"frame":0', b'"frame":7')
    unknown = format_line({"frame": 1, "event": "painted"})
    no_frame = format_line({"event": "edited"})
    claim_without_writer = format_line({"frames": [1], "event": "claimed"})
    for line in (flipped, unknown, no_frame, claim_without_writer, b"garbage\n", b"\n"):
        assert parse_line(line.rstrip(b"\n")) is None
    path = tmp_path / "frames.log"
    path.write_bytes(flipped + unknown + good + b"zz\n")
    assert FrameLog(path).edited == {0}


def test_claims_are_dropped_by_release_of_their_writer_or_by_done(tmp_path):
    log = new_log(tmp_path)
    log.append(FrameLog.claim_record([1, 2, 3], "run-a"))
    log.append(FrameLog.claim_record([3, 4], "run-b"))  # b takes over 3
    assert log.claims == {1: "run-a", 2: "run-a", 3: "run-b", 4: "run-b"}
    log.append(FrameLog.claim_record([1, 3], "run-a", release=True))  # a cannot release b's frame
    log.append(FrameLog.done_record(2, [], {"labels": None, "persons": None}))
    assert log.claims == {3: "run-b", 4: "run-b"} == FrameLog(log.path).claims


def test_the_lock_is_reentrant_in_a_thread_and_excludes_other_threads(tmp_path):
    log = new_log(tmp_path)
    order = []

    def other_thread() -> None:
        with log.locked():
            order.append("other")

    with log.locked():
        with log.locked():
            other = threading.Thread(target=other_thread)
            other.start()
            time.sleep(0.2)
            order.append("mine")
    other.join(timeout=5)
    assert order == ["mine", "other"]


HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from napari_densepose_gaze.store_log import FrameLog
    log = FrameLog(sys.argv[2])
    with log.locked():
        print("locked", flush=True)
        time.sleep(float(sys.argv[3]))
        log.append(FrameLog.frame_record(9, "edited"))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_the_lock_excludes_another_process_and_syncs_on_entry(tmp_path):
    log = new_log(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(SRC), str(log.path), "0.5"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with log.locked():
            assert 9 in log.edited  # the holder's line, appended just before it let go: we waited for it
    finally:
        proc.wait(timeout=30)
