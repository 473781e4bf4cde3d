"""A run on a Dask cluster stores what a run in-process stores: with two local workers, with a worker killed
mid-run, with two clusters on one export, on a cluster started with Dask's own commands and after its
scheduler went away, and gaze-guided on fixation frames; and an unreachable scheduler is a clear error.

The synthetic export has three tiny recordings, of which every 10th frame is run (three each) with the
synthetic parity checkpoint on CPU. Workers run torch with one thread, so the in-process reference does too:
CPU kernels may round differently with another number of threads.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze import cli
from napari_densepose_gaze.cli.batch import recordings_at
from napari_densepose_gaze.cli.cluster_run import run_on_cluster
from napari_densepose_gaze.cli.codes import EXIT_FAILED, EXIT_OK
from napari_densepose_gaze.cluster import ClusterSettings, connect
from napari_densepose_gaze.cluster.chunks import MAX_CHUNK_FRAMES, MIN_CHUNK_FRAMES, chunk_size, split
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.frame_selection import FrameSelection
from napari_densepose_gaze.pipeline import ModelSettings, RunOptions
from napari_densepose_gaze.recording import find_recordings
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.synthetic.export import write_export

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the store's claims between processes use flock")

RUN_MODEL = "R_50_FPN_s1x"
SMALL = ["--device", "cpu", "--input-size", "64", "--score-threshold", "0.995"]
FAST = [*SMALL, "--every", "10"]
# one frame per fixation: two per recording, DensePose near the gaze (the default for this selection)
FIXATIONS = [*SMALL, "--frames", "fixations"]
TEST_TIMEOUT_S = 900  # a hung cluster must not hang CI: the test process ends with every thread's traceback
DASK = str(Path(sys.executable).parent / "dask")  # the command of the environment the tests run in


@pytest.fixture(autouse=True)
def hard_timeout():
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def checkpoint(parity_checkpoint) -> Path:
    return parity_checkpoint(RUN_MODEL)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> tuple[Path, Path]:
    """An export of three recordings, unprocessed, and a copy with the stores of an in-process run (one thread)."""
    root = write_export(tmp_path_factory.mktemp("cluster") / "export", [{}, {}, {}], seconds=1.0, size=(160, 120))
    done = tmp_path_factory.mktemp("reference") / "export"
    shutil.copytree(root, done)
    assert in_process_run(done, checkpoint) == EXIT_OK
    return root, done


@pytest.fixture(scope="module")
def fixations_reference(reference: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory,
                        checkpoint: Path) -> Path:
    """The export with the stores of an in-process gaze-guided run on fixation frames (one thread)."""
    done = tmp_path_factory.mktemp("fixations") / "export"
    shutil.copytree(reference[0], done)
    assert in_process_run(done, checkpoint, FIXATIONS) == EXIT_OK
    return done


def in_process_run(export: Path, checkpoint: Path, settings: list[str] = FAST) -> int:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return cli.main(["run", str(export), "--model", RUN_MODEL, "--weights", str(checkpoint), *settings])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def export(reference: tuple[Path, Path], tmp_path: Path) -> Path:
    """A fresh copy of the unprocessed export."""
    copy = tmp_path / "export"
    shutil.copytree(reference[0], copy)
    return copy


def settings_of_the_reference(checkpoint: Path) -> tuple[ModelSettings, RunOptions]:
    model = ModelSettings(model=RUN_MODEL, weights=checkpoint, score_threshold=0.995, input_size=64)
    return model, RunOptions(device="cpu", selection=FrameSelection(step=10))


def cluster_run(export: Path, checkpoint: Path, **settings) -> int:
    model, options = settings_of_the_reference(checkpoint)
    return run_on_cluster(recordings_at(export), model, options, ClusterSettings(**settings))


def assert_same_stores(export: Path, expected_export: Path, frames: tuple[int, ...] | None = (0, 10, 20)) -> None:
    """Labels, persons and detections of every frame, the person ids and the gaze-guided frames, as in the reference.

    ``frames``: the frames each store holds (None: whatever the reference holds, some).
    """
    for folder in find_recordings(expected_export):
        expected = ResultsStore.open(ResultsStore.default_folder(folder))
        got = ResultsStore.open(ResultsStore.default_folder(export / folder.name))
        assert got.processed_frames().tolist() == expected.processed_frames().tolist() == (
            list(frames or expected.processed_frames().tolist())) != []
        assert got.gazed_frames() == expected.gazed_frames()
        for i in expected.processed_frames().tolist():
            for name, mine, theirs in zip(("labels", "persons"), got.read_frame(i), expected.read_frame(i)):
                np.testing.assert_array_equal(mine, theirs, err_msg=f"{folder.name} frame {i} {name}")
        pd.testing.assert_frame_equal(got.detections(), expected.detections())
        pd.testing.assert_frame_equal(got.person_ids(), expected.person_ids())
        assert got.verify() == []


def processed_anywhere(export: Path) -> int:
    total = 0
    for folder in find_recordings(export):
        store = ResultsStore.default_folder(folder)
        if (store / "zarr.json").is_file():
            with ResultsStore.open(store) as handle:
                total += handle.processed_frames().size
    return total


def wait_for(condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ chunks
def test_chunks_give_every_worker_several_within_bounds():
    assert chunk_size(100_000, 8) == MAX_CHUNK_FRAMES
    assert chunk_size(10, 8) == MIN_CHUNK_FRAMES
    assert MIN_CHUNK_FRAMES < chunk_size(2_000, 8) < MAX_CHUNK_FRAMES
    assert split([9, 3, 4, 3, 1], 2) == [[1, 3], [4, 9]]
    with pytest.raises(ValueError):
        split([1], 0)


def test_cluster_settings_want_a_local_or_an_existing_cluster_not_both():
    with pytest.raises(ValueError):
        ClusterSettings(workers=2, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError):
        ClusterSettings()


# ------------------------------------------------------------------ runs
def test_two_local_workers_store_what_an_in_process_run_stores(export, reference, checkpoint, capsys):
    assert cluster_run(export, checkpoint, workers=2, chunk_size=1) == EXIT_OK
    out = capsys.readouterr().out
    assert all(f"{f.name}  3/3" in out for f in find_recordings(export))
    assert_same_stores(export, reference[1])


def test_a_worker_killed_mid_run_is_replaced_and_the_stores_end_the_same(export, reference, checkpoint):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local, \
            distributed.Client(local) as client:
        killed: list[int] = []

        def kill_one_worker_mid_run() -> None:
            wait_for(lambda: processed_anywhere(export) >= 1)
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        killer = threading.Thread(target=kill_one_worker_mid_run, daemon=True)
        killer.start()
        code = cluster_run(export, checkpoint, scheduler=local.scheduler_address, chunk_size=2)
        killer.join(timeout=60)
    assert code == EXIT_OK and killed
    assert processed_anywhere(export) == 9
    assert_same_stores(export, reference[1])


TWO_RUNS = """
import sys
from pathlib import Path
from distributed import LocalCluster
sys.path.insert(0, {tests!r})
from test_cluster import cluster_run
if __name__ == "__main__":  # a cluster of one worker with one thread, as the reference ran
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        code = cluster_run(Path(sys.argv[1]), Path(sys.argv[2]), scheduler=cluster.scheduler_address, chunk_size=1)
    raise SystemExit(code)
"""


def test_two_clusters_on_one_export_share_the_frames_and_the_stores_end_the_same(export, reference, checkpoint,
                                                                                 tmp_path):
    script = tmp_path / "one_run.py"
    script.write_text(TWO_RUNS.format(tests=str(Path(__file__).parent)))
    runs = [subprocess.Popen([sys.executable, str(script), str(export), str(checkpoint)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=TEST_TIMEOUT_S - 60)[0] for run in runs]
    assert [run.returncode for run in runs] == [EXIT_OK, EXIT_OK], outputs
    assert_same_stores(export, reference[1])


def test_a_cluster_of_dask_commands_whose_scheduler_goes_away_keeps_its_frames_and_a_rerun_finishes(
        export, reference, checkpoint, capsys):
    def start_cluster(port: int) -> list[subprocess.Popen]:
        address = f"tcp://127.0.0.1:{port}"
        scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                      "--no-dashboard"], stderr=subprocess.DEVNULL)
        worker = subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                   "--no-dashboard"], stderr=subprocess.DEVNULL)
        return [worker, scheduler]

    port = free_port()
    first = start_cluster(port)
    try:
        def stop_the_scheduler() -> None:
            wait_for(lambda: processed_anywhere(export) >= 1)
            first[1].kill()

        threading.Thread(target=stop_the_scheduler, daemon=True).start()
        assert cluster_run(export, checkpoint, scheduler=f"tcp://127.0.0.1:{port}", chunk_size=1) == EXIT_FAILED
        assert f"scheduler tcp://127.0.0.1:{port} went away: every frame finished is kept" in capsys.readouterr().err
    finally:
        stop(first)
    kept = processed_anywhere(export)
    assert 1 <= kept < 9
    second = start_cluster(port)
    try:  # the re-run as a user types it
        assert cli.main(["run", str(export), "--model", RUN_MODEL, "--weights", str(checkpoint), *FAST,
                         "--scheduler", f"tcp://127.0.0.1:{port}", "--chunk-size", "1"]) == EXIT_OK
    finally:
        stop(second)
    assert_same_stores(export, reference[1])


def stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_an_unreachable_scheduler_is_a_clear_error_before_any_model_loads(monkeypatch):
    monkeypatch.setattr(connect, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(DensePoseGazeError, match=f"Cannot reach the Dask scheduler at {address}.*dask scheduler"):
        connect.connect(ClusterSettings(scheduler=address), "cpu")
    with pytest.raises(DensePoseGazeError, match="no scheduler file there"):
        connect.connect(ClusterSettings(scheduler="missing-scheduler.json"), "cpu")


def test_the_run_command_computes_gaze_guided_fixation_frames_on_a_local_cluster_with_workers(
        export, fixations_reference, checkpoint, capsys):
    # the --workers option of cli/run.py (cli/cluster_options.py, cli/cluster_run.py); every worker limits
    # DensePose to the people near the gaze and records it, as the in-process run does
    code = cli.main(["run", str(export), "--model", RUN_MODEL, "--weights", str(checkpoint), *FIXATIONS,
                     "--workers", "2", "--chunk-size", "1"])
    assert code == EXIT_OK, capsys.readouterr().err
    assert_same_stores(export, fixations_reference, frames=None)
    assert any(ResultsStore.open(ResultsStore.default_folder(folder)).gazed_frames()
               for folder in find_recordings(export)), "no frame made near the gaze: the test no longer tests that"


def test_the_run_commands_min_confidence_reaches_the_workers_reading_of_pupil_core_gaze(
    synthetic_recording, tmp_path, monkeypatch
):
    from dataclasses import replace

    from napari_densepose_gaze.cli import cluster_run
    from napari_densepose_gaze.cluster import worker
    from napari_densepose_gaze.synthetic.pupil_core import pupil_core_recording_from

    export = pupil_core_recording_from(synthetic_recording(), tmp_path)
    asked: dict = {}
    monkeypatch.setattr(cluster_run, "run_on_cluster", lambda *args, **kwargs: asked.update(kwargs) or EXIT_OK)
    assert cli.main(["run", str(export), "--workers", "1", "--min-confidence", "0.99", "--device", "cpu"]) == EXIT_OK
    assert asked["min_confidence"] == 0.99

    job = worker.Job(source=str(export), model=ModelSettings(), options=RunOptions(), stop_event="unused",
                     min_confidence=0.99)
    strict = worker._WORKER.recording(job).gaze_samples
    lenient = worker._WORKER.recording(replace(job, min_confidence=0.0)).gaze_samples
    assert strict["not worn"].all() and not lenient["not worn"].any()
