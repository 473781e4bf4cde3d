"""Benchmark runs on a local Dask cluster: frames/s with 1, 2, ... workers, and the cost of one chunk.

    python benchmarks/bench_cluster.py [--workers 1 2] [--recordings 3] [--seconds 2] [--size 320 240]
                                       [--input-size 128] [--device cpu] [--gpus] [--workdir DIR]

A synthetic export is written once into the work folder; the engine loads the
synthetic checkpoint of the shared parity fixtures. For each number of workers
a local cluster is started and warmed up (each worker loads its model on one
frame), then the whole export runs into fresh stores; frames/s is over that run's
wall time, from the first task submitted to the summary. ``--gpus`` adds a run
with one worker per GPU (needs dask-cuda and several GPUs).

The overhead per chunk is measured on one warm worker: the same frames as chunks
of 1 frame and as one chunk per recording; the difference in time divided by the
difference in the number of chunks is what a chunk costs beyond its frames
(opening the video and the store, seeking, claiming, linking the people).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import find_fixtures

from napari_densepose_gaze.cli.batch import recordings_at
from napari_densepose_gaze.cli.cluster_run import run_on_cluster
from napari_densepose_gaze.cluster import ClusterSettings
from napari_densepose_gaze.frame_selection import FrameSelection
from napari_densepose_gaze.pipeline import ModelSettings, RunOptions
from napari_densepose_gaze.recording import find_recordings
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.synthetic.export import write_export

MODEL = "R_50_FPN_s1x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--recordings", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpus", action="store_true", help="also one worker per GPU (dask-cuda)")
    parser.add_argument("--workdir", type=Path, default=Path("bench_cluster_work"))
    args = parser.parse_args()

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    export = work / "export"
    if not export.is_dir():
        write_export(export, [{} for _ in range(args.recordings)], seconds=args.seconds, size=tuple(args.size))
    weights = work / "model_final.pkl"
    if not weights.is_file():
        fixtures = find_fixtures()
        subprocess.run([sys.executable, str(fixtures / "make_checkpoint.py"),
                        str(fixtures / f"manifest_{MODEL}.json"), str(weights)], check=True)
    model = ModelSettings(model=MODEL, weights=weights, score_threshold=0.995, input_size=args.input_size)
    options = RunOptions(device=args.device)
    frames = sum(_frames(folder) for folder in find_recordings(export))
    print(f"{args.recordings} recordings, {frames} frames of {args.size[0]}x{args.size[1]} px, "
          f"input size {args.input_size}, device {args.device}, {os.cpu_count()} cores\n")

    rows = []
    for n in args.workers:
        rows.append((f"{n} worker(s)", *_timed(export, model, options, n, None)))
    if args.gpus:
        rows.append(("1 worker per GPU", *_timed(export, model, options, None, "cuda")))
    print(f"{'cluster':<18}{'frames/s':>10}{'wall [s]':>10}")
    for name, rate, wall in rows:
        print(f"{name:<18}{rate:>10.2f}{wall:>10.1f}")

    with _local_cluster(1) as address:
        _warm_up(export, model, options, address)
        per_frame = _run(export, model, options, address, chunk_size=1)
        per_recording = _run(export, model, options, address, chunk_size=10**6)
    chunks = frames - args.recordings
    print(f"\noverhead per chunk on one warm worker: {(per_frame - per_recording) / max(1, chunks):.3f} s "
          f"({frames} chunks of 1 frame: {per_frame:.1f} s; {args.recordings} chunks of a recording: "
          f"{per_recording:.1f} s)")


def _frames(folder: Path) -> int:
    from napari_densepose_gaze.recording import Recording

    return Recording.open(folder).n_frames


def _timed(export: Path, model: ModelSettings, options: RunOptions, workers: int | None,
           device: str | None) -> tuple[float, float]:
    if device is not None:
        options = RunOptions(device=device)
    with _local_cluster(workers, cuda=device == "cuda") as address:
        _warm_up(export, model, options, address)
        wall = _run(export, model, options, address)
    frames = sum(_frames(f) for f in find_recordings(export))
    return frames / wall, wall


@contextlib.contextmanager
def _local_cluster(workers: int | None, *, cuda: bool = False):
    if cuda:
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR)
    else:
        from distributed import LocalCluster

        threads = max(1, (os.cpu_count() or 1) // int(workers or 1))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _warm_up(export: Path, model: ModelSettings, options: RunOptions, address: str) -> None:
    """Every worker loads its model (one frame each), then the stores are removed again."""
    one = RunOptions(device=options.device, selection=FrameSelection(start=0, stop=1))
    _run(export, model, one, address)


def _run(export: Path, model: ModelSettings, options: RunOptions, address: str,
         chunk_size: int | None = None) -> float:
    for folder in find_recordings(export):
        shutil.rmtree(ResultsStore.default_folder(folder), ignore_errors=True)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_on_cluster(recordings_at(export), model, options,
                              ClusterSettings(scheduler=address, chunk_size=chunk_size))
    if code != 0:
        sys.exit(f"the cluster run failed (exit {code})")
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
