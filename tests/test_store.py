"""The results store: round trips, bookkeeping, resume after SIGKILL, size and memory."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.store import DETECTION_COLUMNS, ResultsStore

SRC = Path(__file__).resolve().parents[1] / "src"
META = {
    "recording_id": "rec-1",
    "model": "densepose_rcnn_R_50_FPN_s1x",
    "checkpoint_sha256": "ab" * 32,
    "score_threshold": 0.8,
    "device": "cpu",
}


def frame_data(i: int, height: int, width: int, version: int = 1):
    """Deterministic labels, persons and detections of frame ``i``."""
    rng = np.random.default_rng(1000 * version + i)
    labels = np.zeros((height, width), np.uint8)
    persons = np.zeros((height, width), np.uint8)
    n = int(rng.integers(0, 4))
    rows = []
    for k in range(1, n + 1):
        y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
        y1, x1 = y0 + height // 3, x0 + width // 4
        labels[y0:y1, x0:x1] = rng.integers(1, 25, size=(y1 - y0, x1 - x0))
        persons[y0:y1, x0:x1] = k
        rows.append({"person": k, "x1 [px]": x0, "y1 [px]": y0, "x2 [px]": x1, "y2 [px]": y1,
                     "score": float(version)})
    return labels, persons, rows


def make_store(tmp_path: Path, n_frames=6, height=24, width=32, **kwargs) -> ResultsStore:
    return ResultsStore.create(tmp_path / "rec.densepose", n_frames=n_frames, height=height,
                               width=width, metadata=META, **kwargs)


def test_frames_round_trip_with_detections(tmp_path):
    store = make_store(tmp_path)
    written = {}
    for i in (0, 2, 3):
        written[i] = frame_data(i, 24, 32)
        store.write_frame(i, *written[i])
    reopened = ResultsStore.open(store.folder)
    for i, (labels, persons, _rows) in written.items():
        got_labels, got_persons = reopened.read_frame(i)
        np.testing.assert_array_equal(got_labels, labels)
        np.testing.assert_array_equal(got_persons, persons)
        np.testing.assert_array_equal(reopened.labels[i], labels)
    table = reopened.detections()
    assert list(table.columns) == list(DETECTION_COLUMNS)
    expected = pd.DataFrame(
        [{"frame": i, **r} for i, (_, _, rows) in written.items() for r in rows],
        columns=list(DETECTION_COLUMNS),
    )
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert table["frame"].dtype == np.int64 and table["x1 [px]"].dtype == np.float64
    assert len(table) > 0
    pd.testing.assert_frame_equal(
        reopened.detections(frames=[3, 1]),
        expected[expected["frame"] == 3].reset_index(drop=True),
        check_dtype=False,
    )
    np.testing.assert_array_equal(reopened.labels[1], 0)  # never written: background


def test_detections_accept_a_dataframe_and_unitless_keys_and_number_persons(tmp_path):
    store = make_store(tmp_path)
    labels = np.zeros((24, 32), np.uint8)
    table = pd.DataFrame({"x1 [px]": [1.0, 5.0], "y1 [px]": [2.0, 6.0], "x2 [px]": [3.0, 7.0],
                          "y2 [px]": [4.0, 8.0], "score": [0.9, 0.95]})
    store.write_frame(0, labels, labels, table)
    store.write_frame(1, labels, labels, [{"x1": 1, "y1": 2, "x2": 3, "y2": 4, "score": 0.5}])
    store.write_frame(2, labels, labels, None)
    got = store.detections()
    assert got["frame"].tolist() == [0, 0, 1]
    assert got["person"].tolist() == [1, 2, 1]
    assert got.loc[2, ["x1 [px]", "y1 [px]", "x2 [px]", "y2 [px]"]].tolist() == [1, 2, 3, 4]
    assert store.processed_frames().tolist() == [0, 1, 2]
    empty = make_store(tmp_path / "other").detections()
    assert list(empty.columns) == list(DETECTION_COLUMNS) and len(empty) == 0


def test_bookkeeping_of_processed_edited_and_cleared_frames(tmp_path):
    store = make_store(tmp_path)
    for i in (0, 1, 2):
        store.write_frame(i, *frame_data(i, 24, 32))
    store.mark_edited(1)
    store.mark_edited(1)  # marking twice is harmless
    store.mark_edited(4)  # hand labels on a frame the engine never ran
    assert store.processed_frames().tolist() == [0, 1, 2]
    assert store.edited_frames().tolist() == [1, 4]
    assert store.is_processed(2) and not store.is_processed(3)
    assert store.is_edited(4) and not store.is_edited(0)
    store.clear_frame(2)
    assert not store.is_processed(2)
    np.testing.assert_array_equal(store.labels[2], 0)
    np.testing.assert_array_equal(store.persons[2], 0)
    assert 2 not in store.detections()["frame"].tolist()
    store.clear_frame(1)
    assert store.edited_frames().tolist() == [4]


def test_pending_leaves_edited_frames_alone_unless_asked(tmp_path):
    store = make_store(tmp_path)
    for i in (0, 1):
        store.write_frame(i, *frame_data(i, 24, 32))
    store.mark_edited(1)
    store.mark_edited(3)
    assert store.pending(range(6)) == [2, 4, 5]
    assert store.pending(range(6), overwrite_edited=True) == [1, 2, 3, 4, 5]
    assert store.pending([5, 2, 5, 0]) == [5, 2]  # order kept, repeats dropped
    with pytest.raises(DensePoseGazeError, match="outside"):
        store.pending([6])


def test_writing_an_edited_frame_keeps_the_edit_unless_asked(tmp_path):
    store = make_store(tmp_path)
    assert store.write_frame(0, *frame_data(0, 24, 32)) is True
    store.labels[0, 0:2, 0:2] = 7  # a hand correction, as napari paints it
    store.mark_edited(0)
    assert store.write_frame(0, *frame_data(0, 24, 32, version=2)) is False  # kept, the run goes on
    assert (store.labels[0, 0:2, 0:2] == 7).all() and store.is_edited(0)
    assert store.read_frame(0)[0][0, 0] == 7  # an edited frame is trusted despite its old checksum
    assert store.verify() == []
    assert store.write_frame(0, *frame_data(0, 24, 32, version=2), overwrite_edited=True) is True
    np.testing.assert_array_equal(store.labels[0], frame_data(0, 24, 32, version=2)[0])
    assert not store.is_edited(0) and store.is_processed(0)


def test_reopen_keeps_everything_and_resumes(tmp_path):
    store = make_store(tmp_path)
    store.write_frame(0, *frame_data(0, 24, 32))
    store.mark_edited(0)
    store.write_frame(3, *frame_data(3, 24, 32))
    resumed = make_store(tmp_path, exist_ok=True)
    assert resumed.processed_frames().tolist() == [0, 3]
    assert resumed.edited_frames().tolist() == [0]
    assert resumed.metadata == META
    np.testing.assert_array_equal(resumed.labels[3], frame_data(3, 24, 32)[0])
    resumed.write_frame(1, *frame_data(1, 24, 32))
    assert ResultsStore.open(store.folder).processed_frames().tolist() == [0, 1, 3]


def test_a_second_handle_sees_frames_written_through_the_first(tmp_path):
    writer = make_store(tmp_path)
    reader = ResultsStore.open(writer.folder, mode="r")
    writer.write_frame(2, *frame_data(2, 24, 32))
    assert reader.processed_frames().tolist() == [2]


def test_new_run_metadata_updates_but_different_model_or_threshold_is_refused(tmp_path):
    store = make_store(tmp_path)
    store.write_frame(0, *frame_data(0, 24, 32))
    again = ResultsStore.create(store.folder, n_frames=6, height=24, width=32,
                                metadata={**META, "device": "cuda", "date": "2026-11-21"},
                                exist_ok=True)
    assert again.metadata["device"] == "cuda" and again.metadata["date"] == "2026-11-21"
    for change in ({"score_threshold": 0.5}, {"model": "other"}, {"checkpoint_sha256": "cd" * 32}):
        with pytest.raises(DensePoseGazeError, match="another folder.*overwrite=True") as info:
            ResultsStore.create(store.folder, n_frames=6, height=24, width=32,
                                metadata={**META, **change}, exist_ok=True)
        assert str(store.folder) in str(info.value)
        assert next(iter(change)) in str(info.value)
    # Refusal loses nothing.
    assert ResultsStore.open(store.folder).processed_frames().tolist() == [0]
    fresh = ResultsStore.create(store.folder, n_frames=6, height=24, width=32,
                                metadata={**META, "score_threshold": 0.5}, overwrite=True)
    assert fresh.processed_frames().tolist() == []
    assert fresh.metadata["score_threshold"] == 0.5


def test_user_errors_name_the_folder_and_what_to_do(tmp_path):
    store = make_store(tmp_path)
    with pytest.raises(DensePoseGazeError, match="already holds a results store.*exist_ok"):
        make_store(tmp_path)
    with pytest.raises(DensePoseGazeError, match="holds 6 frames of 24x32.*recording has 7"):
        make_store(tmp_path, n_frames=7, exist_ok=True)
    with pytest.raises(DensePoseGazeError, match="does not exist"):
        ResultsStore.open(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    with pytest.raises(DensePoseGazeError, match="not a results store"):
        ResultsStore.open(plain)
    with pytest.raises(DensePoseGazeError, match="not a results store.*new or empty"):
        ResultsStore.create(plain, n_frames=2, height=4, width=4, metadata={})
    assert (plain / "notes.txt").read_text() == "mine"
    read_only = ResultsStore.open(store.folder, mode="r")
    for action in (lambda: read_only.write_frame(0, *frame_data(0, 24, 32)),
                   lambda: read_only.mark_edited(0), lambda: read_only.clear_frame(0)):
        with pytest.raises(DensePoseGazeError, match="read-only.*mode='r\\+'"):
            action()
    with pytest.raises(DensePoseGazeError, match=str(store.folder)):
        store.is_processed(6)
    with pytest.raises(DensePoseGazeError, match="JSON"):
        ResultsStore.create(tmp_path / "bad", n_frames=2, height=4, width=4,
                            metadata={"when": object()})


def test_check_compatible_records_a_resuming_runs_device_and_refuses_other_results(tmp_path):
    store = make_store(tmp_path)
    store.check_compatible((6, 24, 32), {**META, "device": "cuda", "date": "2026-12-01"})
    assert ResultsStore.open(store.folder).metadata == {**META, "device": "cuda", "date": "2026-12-01"}
    with pytest.raises(DensePoseGazeError, match="score_threshold: stored 0.8, now 0.5"):
        store.check_compatible((6, 24, 32), {**META, "score_threshold": 0.5, "device": "mps"})
    with pytest.raises(DensePoseGazeError, match="recording has 7 frames"):
        store.check_compatible((7, 24, 32), META)
    assert ResultsStore.open(store.folder).metadata["device"] == "cuda"  # a refused run records nothing
    with pytest.raises(DensePoseGazeError, match="read-only"):
        ResultsStore.open(store.folder).check_compatible((6, 24, 32), META)


def test_a_store_name_at_the_file_name_limit_is_created_and_a_longer_one_is_refused_clearly(tmp_path):
    longest = tmp_path / ("r" * 245 + ".densepose")  # 255 bytes: with ".<name>.creating-..." it would not fit
    store = ResultsStore.create(longest, n_frames=2, height=4, width=4, metadata=META)
    store.write_frame(1, *frame_data(1, 4, 4))
    store.close()
    again = ResultsStore.create(longest, n_frames=2, height=4, width=4, metadata=META, overwrite=True)
    assert again.processed_frames().tolist() == []
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]  # no temporary folder left
    with pytest.raises(DensePoseGazeError, match="256 bytes.*shorter name"):
        ResultsStore.create(tmp_path / ("r" * 246 + ".densepose"), n_frames=2, height=4, width=4, metadata=META)


def test_an_unreadable_or_damaged_store_says_what_to_do(tmp_path, monkeypatch):
    store = make_store(tmp_path)
    store.close()
    log = store.folder / "frames.log"

    def unreadable(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    with monkeypatch.context() as patch:  # root reads anything, so the refusal is simulated
        patch.setattr("napari_densepose_gaze.store.FrameLog", unreadable)
        with pytest.raises(DensePoseGazeError, match="Permission denied.*frames.log'. This user may not read it: "
                                                     "fix the file permissions"):
            ResultsStore.open(store.folder)
    assert log.is_file()
    (store.folder / "labels" / "zarr.json").write_text("{not json")
    with pytest.raises(DensePoseGazeError, match="zarr.json files are damaged: restore them"):
        ResultsStore.open(store.folder)


def test_default_folder_is_a_sibling_of_the_export(tmp_path):
    export = tmp_path / "exports" / "2026-01-01_wearer"
    expected = tmp_path / "exports" / "2026-01-01_wearer.densepose"
    assert ResultsStore.default_folder(export) == expected


def test_cut_and_damaged_log_lines_are_ignored_and_later_lines_survive(tmp_path):
    store = make_store(tmp_path)
    store.write_frame(0, *frame_data(0, 24, 32))
    store.write_frame(1, *frame_data(1, 24, 32))
    log = store.folder / "frames.log"
    lines = log.read_bytes().splitlines(keepends=True)
    # Damage frame 1's line (checksum no longer matches), then a line cut short by a kill.
    damaged = lines[1].replace(b'"frame":1', b'"frame":4')
    log.write_bytes(lines[0] + damaged + b'0badc0de {"frame":2,"ev')
    store = ResultsStore.open(store.folder, mode="r+")
    assert store.processed_frames().tolist() == [0]
    store.write_frame(3, *frame_data(3, 24, 32))
    assert ResultsStore.open(store.folder).processed_frames().tolist() == [0, 3]


def test_chunks_hold_one_frame_compressed_and_an_empty_store_is_small(tmp_path):
    height, width = 1200, 1600
    store = make_store(tmp_path, n_frames=100, height=height, width=width)
    assert store.labels.chunks == (1, height, width) == store.persons.chunks
    assert "zstd" in repr(store.labels.compressors)
    zeros = np.zeros((height, width), np.uint8)
    for i in range(100):
        store.write_frame(i, zeros, zeros, [])
    size = sum(p.stat().st_size for p in store.folder.rglob("*") if p.is_file())
    print(f"\nall-zero store, 100 frames of {height}x{width}: {size / 1e3:.1f} kB on disk "
          f"(raw {2 * 100 * height * width / 1e6:.0f} MB)")
    assert size < 100_000
    labels = body_like_parts(height, width)
    store.write_frame(0, labels, (labels > 0).astype(np.uint8), [])
    chunk = store.folder / "labels" / "c" / "0" / "0" / "0"
    print(f"one frame with {(labels > 0).mean():.0%} of its pixels on body parts: "
          f"{chunk.stat().st_size / 1e3:.1f} kB (raw {labels.nbytes / 1e6:.1f} MB)")
    assert chunk.stat().st_size < labels.nbytes / 50


def body_like_parts(height: int, width: int) -> np.ndarray:
    """Three upright ellipses banded into parts 1..24: compresses like real DensePose output."""
    yy, xx = np.mgrid[:height, :width]
    labels = np.zeros((height, width), np.uint8)
    centres = ((height // 2, width // 4), (height // 2, width // 2), (height // 3, 3 * width // 4))
    for cy, cx in centres:
        body = ((yy - cy) / (height / 3.5)) ** 2 + ((xx - cx) / (width / 14)) ** 2 < 1
        bands = 1 + ((yy - cy + height) // 35 + (xx - cx + width) // 60) % 24
        labels[body] = bands[body]
    return labels


def test_leftover_temporary_chunks_of_a_killed_writer_are_removed(tmp_path):
    store = make_store(tmp_path)
    chunk_folder = store.folder / "labels" / "c" / "0" / "0"
    chunk_folder.mkdir(parents=True)
    old, young = chunk_folder / "0.aaaa.partial", chunk_folder / "0.bbbb.partial"
    old.write_bytes(b"cut")
    young.write_bytes(b"being written")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    ResultsStore.open(store.folder, mode="r")
    assert old.exists()  # a reader never deletes
    ResultsStore.open(store.folder, mode="r+")
    assert not old.exists() and young.exists()  # the young one may belong to a live writer


def test_memory_stays_flat_while_writing_many_large_frames(tmp_path):
    psutil = pytest.importorskip("psutil")
    height, width = 1200, 1600
    store = make_store(tmp_path, n_frames=80, height=height, width=width)
    labels, persons, rows = frame_data(0, height, width, version=3)
    process = psutil.Process()
    rss = []
    start = time.perf_counter()
    for i in range(80):
        store.write_frame(i, labels, persons, rows)
        if i in (19, 79):
            rss.append(process.memory_info().rss)
    per_frame = (time.perf_counter() - start) / 80
    print(f"\nwrite_frame {height}x{width}: {per_frame * 1e3:.0f} ms/frame, "
          f"RSS after 20 frames {rss[0] / 1e6:.0f} MB, after 80 {rss[1] / 1e6:.0f} MB")
    assert rss[1] - rss[0] < 30e6  # 60 more frames are 230 MB raw


# ---------------------------------------------------------------- SIGKILL resume
WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    from test_store import frame_data
    from napari_densepose_gaze.store import ResultsStore

    folder, version = sys.argv[3], int(sys.argv[4])
    store = ResultsStore.open(folder, mode="r+")
    n, h, w = store.shape
    # version 1 fills pending frames; a later version rewrites every frame,
    # so a kill can also land while a processed frame is being replaced.
    frames = store.pending(range(n)) if version == 1 else range(n)
    print("ready", flush=True)
    for i in frames:
        store.write_frame(i, *frame_data(i, h, w, version))
    print("finished", flush=True)
    """
)


def check_consistent(folder: Path) -> tuple[list[int], dict[int, int]]:
    """Every processed frame holds exactly what one write wrote; the rest are pending."""
    store = ResultsStore.open(folder, mode="r+")
    n, h, w = store.shape
    detections = store.detections()
    versions = {}
    for i in store.processed_frames().tolist():
        mine = detections[detections["frame"] == i]
        # The score column carries the writer's version; a frame without
        # detections is all background, whichever version wrote it.
        if len(mine):
            version = int(mine["score"].iloc[0])
        else:
            version = next(v for v in (1, 2) if not frame_data(i, h, w, v)[2])
        labels, persons, rows = frame_data(i, h, w, version)
        np.testing.assert_array_equal(store.labels[i], labels, err_msg=f"labels of frame {i}")
        np.testing.assert_array_equal(store.persons[i], persons, err_msg=f"persons of frame {i}")
        assert len(mine) == len(rows)
        versions[i] = version
    assert store.pending(range(n)) == [i for i in range(n) if i not in versions]
    return store.pending(range(n)), versions


def run_writer(folder: Path, version: int, kill_after: float | None) -> bool:
    """Run the writer; SIGKILL it ``kill_after`` s after it starts writing. True if it finished."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(SRC), str(Path(__file__).parent), str(folder),
         str(version)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        if kill_after is None:
            assert proc.wait(timeout=300) == 0
            return True
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return proc.stdout.read().strip() == "finished"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_at_random_moments_loses_no_finished_frame(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    n_frames = 60
    store = make_store(tmp_path, n_frames=n_frames, height=240, width=320)
    folder = store.folder
    progress = []
    for _ in range(4):
        run_writer(folder, version=1, kill_after=rng.uniform(0.0, 0.4))
        pending, _ = check_consistent(folder)
        progress.append(n_frames - len(pending))
    assert run_writer(folder, version=1, kill_after=None)
    pending, versions = check_consistent(folder)
    assert pending == [] and set(versions.values()) == {1}, f"seed {seed}"
    # Kills while processed frames are being replaced by new results.
    for _ in range(3):
        run_writer(folder, version=2, kill_after=rng.uniform(0.0, 0.4))
        pending, versions = check_consistent(folder)
    print(f"\nseed {seed}: frames done after each kill {progress}; after rewrite kills "
          f"{len(pending)} pending, versions {sorted(set(versions.values()))}")
    assert progress == sorted(progress), f"seed {seed}"
