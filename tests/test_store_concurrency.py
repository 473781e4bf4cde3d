"""Several processes on one store: creating it at once, killed while creating, hand edits during a run, two runs."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_store import META, frame_data

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.store import ResultsStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="inter-process locks use flock")

SRC = Path(__file__).resolve().parents[1] / "src"
PREAMBLE = f"""
import sys, time
from pathlib import Path
sys.path.insert(0, {str(SRC)!r})
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_store import META, frame_data
from napari_densepose_gaze.store import ResultsStore
"""


def start(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PREAMBLE + textwrap.dedent(script), *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def create(folder: Path, n_frames: int = 4, **kwargs) -> ResultsStore:
    return ResultsStore.create(folder, n_frames=n_frames, height=8, width=8, metadata=META, **kwargs)


# ------------------------------------------------------------ atomic creation
CREATOR = """
    base, mode = Path(sys.argv[1]), sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()
    for k in range(10**6):
        if mode == "new":  # a fresh store each time: kills land while one is being made
            ResultsStore.create(base / f"s{k}", n_frames=4, height=8, width=8, metadata=META)
        else:  # one store replaced over and over: kills land while one is being replaced
            store = ResultsStore.create(base / "s0", n_frames=4, height=8, width=8, metadata=META, overwrite=True)
            store.write_frame(k % 4, *frame_data(k % 4, 8, 8))
"""


@pytest.mark.parametrize("mode", ["new", "overwrite"])
def test_a_kill_at_any_moment_of_creating_a_store_leaves_a_folder_the_next_run_uses(tmp_path, mode):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for trial in range(6):
        base = tmp_path / f"trial{trial}"
        base.mkdir()
        if mode == "overwrite":
            create(base / "s0")
            (base / "s0" / "overlay.mp4").write_text("an export kept in the store folder")
        proc = start(CREATOR, base, mode)
        assert proc.stdout.readline().strip() == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # Every store it made or was making, also one whose temporary folder is all there is.
        names = {p.name[1:].split(".creating-")[0] if ".creating-" in p.name else p.name for p in base.iterdir()}
        folders = [base / name for name in sorted(names)]
        assert folders, f"seed {seed}: the creator never started"
        for folder in folders:
            store = create(folder, exist_ok=True)  # never refused, never a traceback
            store.write_frame(1, *frame_data(1, 8, 8))
            assert ResultsStore.open(folder).pending(range(4)) == [i for i in range(4) if not store.is_processed(i)]
        assert [p.name for p in base.iterdir() if ".creating-" in p.name] == [], f"seed {seed}"
        if mode == "overwrite":
            assert (base / "s0" / "overlay.mp4").is_file(), f"seed {seed}"


def test_folders_left_half_made_by_the_first_version_are_made_anew(tmp_path):
    import zarr

    bare = tmp_path / "bare"  # killed right after the zarr group was written
    zarr.open_group(store=bare, mode="w-", zarr_format=3)
    one_array = tmp_path / "one_array"  # ... or after the first array
    group = zarr.open_group(store=one_array, mode="w-", zarr_format=3)
    group.create_array("labels", shape=(4, 8, 8), dtype="uint8", chunks=(1, 8, 8))
    for folder in (bare, one_array):
        assert create(folder, exist_ok=True).pending(range(4)) == [0, 1, 2, 3]

    # Someone else's folders are refused and left untouched, even with a zarr "labels" group or a frames.log.
    ome = tmp_path / "ome"
    group = zarr.open_group(store=ome, mode="w-", zarr_format=3)
    group.create_group("labels")
    group.create_array("0", shape=(4, 8, 8), dtype="uint8")
    video_tool = tmp_path / "video_tool"
    video_tool.mkdir()
    (video_tool / "frames.log").write_text("frame 1 decoded\n")
    (video_tool / "labels").mkdir()
    for folder in (ome, video_tool):
        before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
        with pytest.raises(DensePoseGazeError, match="not a results store"):
            create(folder, exist_ok=True)
        assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert (video_tool / "frames.log").read_text() == "frame 1 decoded\n"


SIMULTANEOUS = """
    base, me, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for r in range(rounds):
        while not (base / f"go{r}").exists():
            time.sleep(0.001)
        store = ResultsStore.create(base / f"r{r}", n_frames=4, height=8, width=8, metadata=META, exist_ok=True)
        store.write_frame(me, *frame_data(me, 8, 8))
    print("ok", flush=True)
"""


def test_processes_creating_the_same_store_at_once_all_end_up_using_it(tmp_path):
    rounds = 15
    procs = [start(SIMULTANEOUS, tmp_path, me, rounds) for me in range(4)]
    for r in range(rounds):
        time.sleep(0.2 if r == 0 else 0.05)
        (tmp_path / f"go{r}").touch()
    for proc in procs:
        assert finish(proc).strip() == "ok"
    for r in range(rounds):
        store = ResultsStore.open(tmp_path / f"r{r}")
        assert store.processed_frames().tolist() == [0, 1, 2, 3], f"round {r}"
        assert store.verify() == []


# --------------------------------------------------------- hand edits vs runs
RUN = """
    folder, passes = sys.argv[1], int(sys.argv[2])
    store = ResultsStore.open(folder, mode="r+")
    n, h, w = store.shape
    kept = 0
    print("ready", flush=True)
    for version in range(1, passes + 1):  # a run, then re-runs of every frame
        for i in range(n):
            kept += not store.write_frame(i, *frame_data(i, h, w, version))
    print(kept, flush=True)
"""


@pytest.mark.parametrize("order", ["mark, then paint", "paint, then mark"])
def test_hand_edits_during_a_run_never_stop_it_and_are_never_lost(tmp_path, order):
    n_frames = 40
    store = create(tmp_path / "store", n_frames=n_frames)
    run = start(RUN, store.folder, 6)
    assert run.stdout.readline().strip() == "ready"
    rng = random.Random(7)
    painted: dict[int, int] = {}
    edits = 0
    while run.poll() is None and edits < 2000:
        i, value = rng.randrange(n_frames), 200 + edits % 50
        if order == "mark, then paint":
            with store.editing(i):
                store.labels[i, 0, 0] = value  # as napari paints: straight into the zarr array
        else:  # what the napari layer does today
            store.labels[i, 0, 0] = value
            store.mark_edited(i)
        painted[i] = value
        edits += 1
    kept = int(finish(run).strip())
    assert edits >= 20 and kept > 0, "the run ended before the edits could race it"
    reread = ResultsStore.open(store.folder)
    assert sorted(painted) == reread.edited_frames().tolist()  # no mark is ever lost
    if order == "mark, then paint":  # ... nor a painted pixel
        assert {i: int(reread.labels[i, 0, 0]) for i in painted} == painted
    for i in set(range(n_frames)) - set(painted):  # the rest hold exactly what one write wrote
        labels, _, rows = frame_data(i, 8, 8, 6)
        np.testing.assert_array_equal(reread.read_frame(i)[0], labels)
    print(f"\n{order}: {edits} edits of {len(painted)} frames during the run; it kept {kept} writes")


# ------------------------------------------------------------------ two runs
SHARED_RUN = """
    folder, batch = sys.argv[1], int(sys.argv[2])
    store = ResultsStore.open(folder, mode="r+")
    n, h, w = store.shape
    print("ready", flush=True)
    sys.stdin.readline()
    computed = []
    for start in range(0, n, batch):
        for i in store.claim(range(start, start + batch)):
            time.sleep(0.01)  # the engine
            store.write_frame(i, *frame_data(i, h, w))
            computed.append(i)
    store.close()
    print(" ".join(map(str, computed)), flush=True)
"""


def test_two_runs_on_one_store_never_compute_a_frame_twice(tmp_path):
    n_frames = 60
    store = create(tmp_path / "store", n_frames=n_frames)
    runs = [start(SHARED_RUN, store.folder, 3) for _ in range(2)]
    for run in runs:
        assert run.stdout.readline().strip() == "ready"
    for run in runs:
        run.stdin.write("go\n")
        run.stdin.flush()
    computed = [[int(i) for i in finish(run).split()] for run in runs]
    assert sorted(computed[0] + computed[1]) == list(range(n_frames))  # each frame once
    assert store.pending(range(n_frames)) == []
    print(f"\nframes computed by each run: {len(computed[0])}, {len(computed[1])}")


CLAIM_AND_HANG = """
    store = ResultsStore.open(sys.argv[1], mode="r+")
    print(len(store.claim(range(store.n_frames))), flush=True)
    time.sleep(600)
"""


def test_a_killed_runs_claims_expire_at_once(tmp_path):
    store = create(tmp_path / "store", n_frames=8)
    store.write_frame(0, *frame_data(0, 8, 8))
    other = start(CLAIM_AND_HANG, store.folder)
    try:
        assert other.stdout.readline().strip() == "7"
        assert store.claim(range(8)) == []  # a live run has them
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=30)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    assert store.claim(range(8)) == list(range(1, 8))
    assert len(list((store.folder / "writers").iterdir())) == 1  # ours; the dead run's lease file is gone


def test_claims_of_handles_in_one_process_end_with_release_close_or_done(tmp_path):
    folder = create(tmp_path / "store", n_frames=6).folder
    first, second = ResultsStore.open(folder, "r+"), ResultsStore.open(folder, "r+")
    assert first.claim([4, 0, 2, 0]) == [4, 0, 2]
    assert second.claim(range(6)) == [1, 3, 5]
    first.write_frame(0, *frame_data(0, 8, 8))  # done: its claim ends, and it is no longer pending
    first.release([2])
    assert second.claim(range(6)) == [1, 2, 3, 5]  # its own claims count as its own
    first.close()
    assert second.claim(range(6)) == [1, 2, 3, 4, 5]
    with ResultsStore.open(folder, "r+") as third:
        assert third.claim(range(6)) == []
    second.close()
    assert ResultsStore.open(folder, "r+").claim(range(6), overwrite_edited=True) == [1, 2, 3, 4, 5]


def test_threads_of_one_run_writing_frames_at_once_store_each_exactly(tmp_path):
    store = create(tmp_path / "store", n_frames=32)
    errors = []

    def write(frames):
        try:
            for i in frames:
                store.write_frame(i, *frame_data(i, 8, 8))
        except Exception as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(range(k, 32, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.verify() == [] and store.processed_frames().tolist() == list(range(32))
