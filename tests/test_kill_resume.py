"""A ``densepose-gaze run`` killed mid-run (SIGKILL) or stopped with Ctrl-C resumes to the same results.

The run happens in a subprocess on a tiny recording with the synthetic parity
checkpoint on CPU; the test polls the results store and kills the process once
some frames are written. Re-running the same command must then give, frame by
frame, exactly what one uninterrupted run gives. Every run is a fresh process, as a user's
are: round-off in the convolutions depends on the thread count, which a test
process may have changed (in the cluster tests), so an in-process run could differ in
the last digits for reasons that have nothing to do with resuming.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze import cli
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.synthetic.export import write_recording

MODEL = "R_50_FPN_s1x"
LAST_FRAME = 9  # frames 0..9 of the 30 in the recording: a run of 5-20 s on two busy cores
ENOUGH_TO_KILL = 4  # frames written before the kill
POLL_S = 0.05
GIVE_UP_S = 300.0


@pytest.fixture(scope="module")
def checkpoint(parity_checkpoint) -> Path:
    """The synthetic model-zoo checkpoint of MODEL (shared by the whole test session)."""
    return parity_checkpoint(MODEL)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_recording(tmp_path_factory.mktemp("recording"), seconds=1.0, size=(160, 120), seed=3)


def command(recording: Path, checkpoint: Path, output: Path) -> list[str]:
    return ["run", str(recording), "--model", MODEL, "--weights", str(checkpoint), "--device", "cpu",
            "--input-size", "64", "--score-threshold", "0.995", "--last", str(LAST_FRAME),
            "--output", str(output)]


@pytest.fixture(scope="module")
def reference(recording: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> ResultsStore:
    """One uninterrupted run."""
    output = tmp_path_factory.mktemp("reference") / "store"
    run_to_the_end(recording, checkpoint, output)
    store = ResultsStore.open(output)
    assert store.processed_frames().tolist() == list(range(LAST_FRAME + 1))
    assert len(store.detections()) > 0  # something to compare beyond empty maps
    return store


def start_run(recording: Path, checkpoint: Path, output: Path, logs: Path) -> subprocess.Popen:
    with open(logs / "stdout.txt", "w") as out, open(logs / "stderr.txt", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "napari_densepose_gaze", *command(recording, checkpoint, output)],
            stdout=out, stderr=err,
        )


def run_to_the_end(recording: Path, checkpoint: Path, output: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "napari_densepose_gaze", *command(recording, checkpoint, output)],
                          capture_output=True, text=True, timeout=GIVE_UP_S)
    assert done.returncode == 0, done.stderr


def wait_for_frames(process: subprocess.Popen, output: Path, count: int, logs: Path) -> None:
    """Return once the store under ``output`` has ``count`` processed frames."""
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before {count} frames were written:\n"
                        + (logs / "stderr.txt").read_text())
        try:
            if len(ResultsStore.open(output).processed_frames()) >= count:
                return
        except DensePoseGazeError:
            pass  # not created yet (the model is still loading)
        time.sleep(POLL_S)
    process.kill()
    process.wait()
    pytest.fail(f"no {count} frames written within {GIVE_UP_S} s")


def assert_same_results(store: ResultsStore, reference: ResultsStore) -> None:
    assert store.processed_frames().tolist() == reference.processed_frames().tolist()
    for frame in range(reference.n_frames):
        labels, persons = store.read_frame(frame)
        expected_labels, expected_persons = reference.read_frame(frame)
        np.testing.assert_array_equal(labels, expected_labels, err_msg=f"labels of frame {frame}")
        np.testing.assert_array_equal(persons, expected_persons, err_msg=f"persons of frame {frame}")
    pd.testing.assert_frame_equal(store.detections(), reference.detections())


def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_results(
    recording, checkpoint, reference, tmp_path
) -> None:
    output = tmp_path / "store"
    process = start_run(recording, checkpoint, output, tmp_path)
    wait_for_frames(process, output, ENOUGH_TO_KILL, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    done_before = len(ResultsStore.open(output).processed_frames())
    assert ENOUGH_TO_KILL <= done_before <= LAST_FRAME  # killed in the middle, not after the end

    run_to_the_end(recording, checkpoint, output)

    assert_same_results(ResultsStore.open(output), reference)


def test_ctrl_c_stops_after_the_batch_keeps_the_frames_and_resumes(
    recording, checkpoint, reference, tmp_path
) -> None:
    output = tmp_path / "store"
    process = start_run(recording, checkpoint, output, tmp_path)
    wait_for_frames(process, output, 2, tmp_path)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)  # one batch of one frame, then the summary
    stderr = (tmp_path / "stderr.txt").read_text()
    stdout = (tmp_path / "stdout.txt").read_text()
    assert process.returncode == cli.EXIT_INTERRUPTED, stderr
    assert "run the same command again to continue" in stderr and "Traceback" not in stderr
    store = ResultsStore.open(output)
    done = store.processed_frames().tolist()
    assert 2 <= len(done) <= LAST_FRAME
    assert done == list(range(len(done)))  # stopped cleanly: every frame up to the stop is there
    row = next(line for line in stdout.splitlines() if line.startswith(recording.name)).split()
    assert row[1] == f"{len(done)}/{LAST_FRAME + 1}" and row[-1] == "stopped"

    run_to_the_end(recording, checkpoint, output)

    assert_same_results(ResultsStore.open(output), reference)


def test_frames_edited_by_hand_while_a_run_goes_stay_edited_with_the_edits_pixels(
    recording, checkpoint, reference, tmp_path
) -> None:
    output = tmp_path / "store"
    process = start_run(recording, checkpoint, output, tmp_path)
    wait_for_frames(process, output, 1, tmp_path)
    store = ResultsStore.open(output, "r+")
    height, width = store.shape[1:]
    edits: dict[int, np.ndarray] = {}
    seen = 0
    # Each time the run stores a frame, paint the one it is most likely computing or storing right now
    # (runs go in frame order), and now and then one it stored already.
    while process.poll() is None:
        done = set(store.processed_frames().tolist())
        if len(done) > seen:
            seen = len(done)
            ahead = [i for i in range(LAST_FRAME + 1) if i not in done and i not in edits]
            behind = sorted(done - set(edits))
            for frame in ahead[:1] + (behind[-1:] if seen % 3 == 0 else []):
                edits[frame] = np.full((height, width), 1 + frame % 24, np.uint8)
                with store.editing(frame):
                    store.labels[frame] = edits[frame]
        time.sleep(POLL_S / 5)
    stdout = (tmp_path / "stdout.txt").read_text()
    assert process.returncode == 0, (tmp_path / "stderr.txt").read_text()
    assert len(edits) >= 3  # edits landed while the run went

    after = ResultsStore.open(output)
    assert sorted(after.edited_frames().tolist()) == sorted(edits)
    for frame, pixels in edits.items():
        np.testing.assert_array_equal(after.read_frame(frame)[0], pixels, err_msg=f"labels of edited frame {frame}")
    assert set(after.processed_frames().tolist()) | set(edits) == set(range(LAST_FRAME + 1))
    for frame in sorted(set(range(LAST_FRAME + 1)) - set(edits)):  # the others as an undisturbed run has them
        np.testing.assert_array_equal(after.read_frame(frame)[0], reference.read_frame(frame)[0])
    row = next(line for line in stdout.splitlines() if line.startswith(recording.name)).split()
    done_now, selected = (int(n) for n in row[1].split("/"))
    assert selected == LAST_FRAME + 1 and done_now + int(row[2]) == selected  # each frame stored or kept once
