"""A run keeps the memory it frees for its next frames (glibc), and gives it back when it ends."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from test_pipeline import new_store, pixel_engine_result

from napari_densepose_gaze import host_memory
from napari_densepose_gaze.host_memory import reuse_freed_memory, reusing_freed_memory
from napari_densepose_gaze.pipeline import iter_densepose, run_densepose
from napari_densepose_gaze.recording import Recording

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's"
)

# A frame's worth of large tensors, allocated and dropped as a network's layers do,
# counted in minor page faults (each a fresh page the kernel had to map and zero).
_FAULTS_PER_FRAME = textwrap.dedent("""
    import resource, sys
    from contextlib import nullcontext
    import torch
    from napari_densepose_gaze.host_memory import reuse_freed_memory

    MB = 1 << 20

    def frame():
        x = torch.empty(40 * MB // 4).fill_(0)
        for k in range(6):  # above glibc's largest mmap threshold (32 MiB): mapped afresh by default
            x = torch.empty((40 + 8 * (k % 3)) * MB // 4).fill_(k)

    def faults(frames):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(frames):
            frame()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / frames

    with (reuse_freed_memory() if sys.argv[1] == "held" else nullcontext()):
        for _ in range(5):  # the heap grows to its working size over the first frames (at most 4 seen)
            frame()
        print(faults(3))
    print(faults(3))  # after the holder left
""")


def faults_per_frame(mode: str, **env: str) -> tuple[float, float]:
    # A clean environment: a Dask cluster earlier in the session leaves malloc variables in os.environ.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", _FAULTS_PER_FRAME, mode], capture_output=True, text=True,
                         check=True, env={**clean, **env}).stdout.split()
    return float(out[0]), float(out[1])


@pytest.fixture(scope="module")
def default_during() -> float:
    """Faults per frame with glibc's own behaviour."""
    during, after = faults_per_frame("free")
    assert after == pytest.approx(during, rel=0.1)
    return during


@glibc
def test_frames_reuse_the_memory_freed_before_them_while_held_and_not_after(default_during):
    held_during, held_after = faults_per_frame("held")
    assert default_during > 40_000  # ~300 MB of fresh pages per frame
    assert held_during < default_during / 10
    assert held_after > default_during / 3  # glibc's behaviour is back, the memory handed back


@glibc
@pytest.mark.parametrize(
    "env", [{"MALLOC_MMAP_MAX_": "65536"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}]
)
def test_a_user_who_set_how_glibc_maps_memory_is_left_alone(env, default_during):
    tuned_during, _ = faults_per_frame("held", **env)
    assert tuned_during > default_during / 2


@glibc
def test_a_dask_workers_trim_threshold_does_not_stop_it(default_during):
    # Dask's nanny puts MALLOC_TRIM_THRESHOLD_=65536 into its workers' (and its own) environment.
    held_during, held_after = faults_per_frame("held", MALLOC_TRIM_THRESHOLD_="65536")
    assert held_during < default_during / 10
    assert held_after > default_during / 3


@glibc
def test_holders_nest_across_threads_and_the_last_one_restores():
    assert not reusing_freed_memory()
    inner_entered, release = threading.Event(), threading.Event()

    def other_run():
        with reuse_freed_memory():
            inner_entered.set()
            release.wait(10)

    with reuse_freed_memory() as applies:
        assert applies
        worker = threading.Thread(target=other_run)
        worker.start()
        assert inner_entered.wait(10)
    assert reusing_freed_memory()  # the other thread still holds it
    release.set()
    worker.join()
    assert not reusing_freed_memory()


def test_without_glibc_nothing_is_held(monkeypatch):
    monkeypatch.setattr(host_memory, "_glibc", lambda: None)
    with reuse_freed_memory() as applies:
        assert not applies and not reusing_freed_memory()


class HoldRecordingEngine:
    """Records, at every batch, whether freed memory is being kept."""

    batch_size = 2

    def __init__(self, fail: bool = False) -> None:
        self.held: list[bool] = []
        self.fail = fail

    def predict(self, frames):
        self.held.append(reusing_freed_memory())
        if self.fail:
            raise RuntimeError("engine broke")
        return [pixel_engine_result(f) for f in frames]


@glibc
def test_a_run_holds_it_for_every_batch_and_lets_go_however_it_ends(synthetic_recording, tmp_path):
    recording = Recording.open(synthetic_recording())
    engine = HoldRecordingEngine()
    run_densepose(recording, engine, new_store(recording, tmp_path / "done"), range(6))
    assert engine.held == [True] * 3 and not reusing_freed_memory()

    broken = HoldRecordingEngine(fail=True)
    with pytest.raises(RuntimeError, match="engine broke"):
        run_densepose(recording, broken, new_store(recording, tmp_path / "failed"), range(6))
    assert broken.held == [True] and not reusing_freed_memory()

    closed = HoldRecordingEngine()
    run = iter_densepose(recording, closed, new_store(recording, tmp_path / "closed"), range(6))
    next(run)
    assert reusing_freed_memory()  # between batches too: napari's worker resumes the generator
    run.close()
    assert not reusing_freed_memory()
    assert np.array(closed.held).all()
