"""Benchmark the whole pipeline: video file -> decode -> engine -> results store.

    python benchmarks/bench_pipeline.py [--device cpu] [--frames 12] [--seconds 2] [--batch-size N]
                                        [--input-size 800] [--detections 3] [--workdir DIR]
                                        [--selection first|fixations] [--densepose gazed|all]
                                        [--freed-memory reused|returned|both] [--repeats N]

A synthetic Neon-sized recording (1600x1200, 30 fps, H.264) is written once into
the work folder; the engine loads the synthetic checkpoint of the shared parity
fixtures (real zoo weights cost the same per detection). The score threshold is
chosen on the first frame so that it gives about ``--detections`` people, because
the DensePose head's cost grows with them. Each configuration runs into a fresh
store; the table gives seconds per frame end to end, for the first frame (which
carries the one-time costs) and for the frames after it, the CPU seconds per frame
(user and system, all threads), the peak resident memory and the store's size on
disk per frame, then what a 10-minute recording costs: the first frame once, then
every further frame at the rate after it, for every frame and for one key frame per
fixation.

``--freed-memory both`` runs the same configuration with the memory a run frees
kept for reuse (as every run does, :mod:`napari_densepose_gaze.host_memory`) and
returned to the system (glibc's default), alternating, each run in a new process.

``--selection fixations`` times what a researcher runs: one key frame per fixation
(decoded by seeking through the video), gaze-guided by default as a run of that
selection is (``--densepose all`` computes every detection's body parts).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import find_fixtures, thresholds_for

from napari_densepose_gaze import host_memory, pipeline
from napari_densepose_gaze.engine.defaults import DEFAULT_MODEL, MIN_SIZE_TEST, default_max_input_size
from napari_densepose_gaze.engine.predictor import Predictor
from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
from napari_densepose_gaze.gaze_guided import DENSEPOSE_MODES
from napari_densepose_gaze.pipeline import (
    ModelSettings,
    RunOptions,
    load_model,
    open_store_for_run,
    prepare_run,
    run_densepose,
    run_metadata,
)
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.synthetic.export import write_recording

TEN_MINUTES_FRAMES = 10 * 60 * 30
# Fixation rate assumed for the key-frame figure: about 3 fixations per second
# while a person looks around (typical of free viewing; Neon's fixation detector
# reports 2-4/s); the synthetic recording's own rate is printed beside it.
FIXATIONS_PER_S = 3.0


def neon_recording(workdir: Path, seconds: float) -> Path:
    marker = workdir / f"neon-{seconds:g}s.done"
    folder = workdir / f"neon-{seconds:g}s"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_recording(folder, device="neon", seconds=seconds, seed=3)
        marker.touch()
    return next(p for p in folder.iterdir() if p.is_dir() and not p.name.endswith(".densepose"))


def checkpoint(workdir: Path, config: str) -> Path:
    path = workdir / f"{config}.pkl"
    if not path.exists():
        fixtures = find_fixtures()
        subprocess.run(
            [sys.executable, str(fixtures / "make_checkpoint.py"), str(fixtures / f"manifest_{config}.json"),
             str(path)],
            check=True,
        )
    return path


def threshold_for(recording: Recording, weights: Path, config: str, device: str, input_size: int, n: int) -> float:
    probe = Predictor(config, weights=weights, device=device, precision="float32", score_threshold=0.0,
                      min_size=input_size, max_size=default_max_input_size(input_size))
    scores = probe.predict(recording.video_reader().frame(0).copy())[0].scores
    return thresholds_for(np.sort(scores)[::-1], (n,))[0]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class ReplayEngine:
    """Hands back one real engine result for every frame: the pipeline's own cost, engine excluded."""

    def __init__(self, result, batch_size: int) -> None:
        self.result, self.batch_size = result, batch_size

    def predict(self, frames):
        return [self.result] * len(frames)


def without_engine(recording: Recording, prepared, workdir: Path) -> dict:
    """Decode + store throughput over the whole video, with a real result's maps written for each frame."""
    result = prepared.predictor.predict(recording.video_reader().frame(0).copy())[0]
    out = workdir / "store-without-engine"
    shutil.rmtree(out, ignore_errors=True)
    metadata = run_metadata(recording, model="replay", checkpoint_sha256="0" * 64, score_threshold=0.0, device="none")
    store = open_store_for_run(recording, out, metadata)
    frames = select_frames(recording)
    rss: list[tuple[int, float]] = []  # (frames done, resident MB): flat if memory does not grow with length

    def sample(state) -> None:
        rss.append((state.done, psutil.Process().memory_info().rss / 2**20))

    started = time.perf_counter()
    summary = run_densepose(recording, ReplayEngine(result, 16), store, frames, progress=sample)
    seconds = time.perf_counter() - started
    marks = [rss[min(len(rss) - 1, int(f * len(rss)))] for f in (0.1, 0.5, 1.0)]
    print("resident memory while storing (no engine): "
          + ", ".join(f"{mb:.0f} MB after {done} frames" for done, mb in marks))
    return {
        "frames of": "all, replayed", "freed memory": "reused", "device": "no engine", "precision": "-", "batch": 16,
        "frames": summary.processed,
        "det/frame": float(len(result)), "frames/s": summary.processed / seconds,
        "s/frame": seconds / summary.processed, "store kB/frame": folder_bytes(out) / 1024 / summary.processed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=DEFAULT_MODEL)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the synthetic recording")
    parser.add_argument("--frames", type=int, default=12, help="frames to run (from the start)")
    parser.add_argument("--batch-size", type=int, nargs="*", default=[None])
    parser.add_argument("--input-size", type=int, default=MIN_SIZE_TEST)
    parser.add_argument("--detections", type=int, default=3)
    parser.add_argument("--without-engine", action="store_true",
                        help="also time decode + store alone over the whole video (one real result replayed)")
    parser.add_argument("--workdir", type=Path, default=Path("build/bench_pipeline"))
    parser.add_argument("--selection", choices=("first", "fixations"), default="first",
                        help="the first --frames frames, or the key frames of the first --frames fixations")
    parser.add_argument("--densepose", choices=DENSEPOSE_MODES, default=None,
                        help="gaze-guided or every detection (default: as a run of the selection)")
    parser.add_argument("--freed-memory", choices=("reused", "returned", "both"), default="reused",
                        help="as a run does (reused), with glibc's default malloc (returned), or both: alternating "
                             "runs, each in a fresh process")
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration (fresh store each)")
    parser.add_argument("--rows-json", type=Path, help=argparse.SUPPRESS)  # a child process's rows, for "both"
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    recording = Recording.open(neon_recording(args.workdir, args.seconds))  # written once, before any child runs
    if args.freed_memory == "both":
        print_table(args, recording, rows_in_fresh_processes(args))
        return

    weights = checkpoint(args.workdir, args.config)
    rows = []
    for batch_size in args.batch_size:
        threshold = threshold_for(recording, weights, args.config, "cpu" if args.device == "cpu" else args.device,
                                  args.input_size, args.detections)
        model = ModelSettings(model=args.config, weights=weights, score_threshold=threshold,
                              input_size=args.input_size, precision=args.precision)
        out = args.workdir / "store"
        if args.selection == "fixations":
            selection = FrameSelection(mode="fixations")
        else:
            selection = FrameSelection(stop=min(args.frames, recording.n_frames))
        options = RunOptions(device=args.device, batch_size=batch_size, output=out, selection=selection,
                             densepose=args.densepose)
        loaded = load_model(model, options, download_progress=False)  # once, before the clock starts
        for _ in range(args.repeats):
            shutil.rmtree(out, ignore_errors=True)
            prepared = prepare_run(recording, model, options, download_progress=False, loaded=loaded)
            rows.append(timed_run(recording, prepared, f"{args.selection}, {options.densepose_mode}", args.frames,
                                  args.freed_memory))
    if args.without_engine:
        rows.append(without_engine(recording, prepared, args.workdir))
    if args.rows_json:
        args.rows_json.write_text(json.dumps(rows))
        return
    print_table(args, recording, rows)


def rows_in_fresh_processes(args) -> list[dict]:
    """Runs with freed memory reused and returned, alternating, each in a new process of this script.

    One process cannot give both: once a run has set glibc's malloc options, the
    process no longer behaves as a fresh one does.
    """
    rows = []
    for _ in range(args.repeats):
        for memory in ("returned", "reused"):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "rows.json"
                command = [sys.executable, __file__, "--config", args.config, "--device", args.device,
                           "--precision", args.precision, "--seconds", str(args.seconds), "--frames", str(args.frames),
                           "--input-size", str(args.input_size), "--detections", str(args.detections),
                           "--workdir", str(args.workdir), "--selection", args.selection,
                           "--freed-memory", memory, "--rows-json", str(out)]
                if args.densepose:
                    command += ["--densepose", args.densepose]
                if args.batch_size != [None]:
                    command += ["--batch-size", *map(str, args.batch_size)]
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                rows += json.loads(out.read_text())
    return rows


def print_table(args, recording: Recording, rows: list[dict]) -> None:
    fixation_rate = len(recording.fixations) / (recording.n_frames / 30.0)
    header = ["frames of", "freed memory", "device", "precision", "batch", "frames", "det/frame", "first s",
              "s/frame", "then s/frame", "user s/frame", "sys s/frame", "peak MB", "store kB/frame"]
    print(f"\nPipeline, {args.config}, Neon 1600x1200, input size {args.input_size}, {recording.n_frames}-frame video")
    print("first s: the first frame (one-time costs: Winograd weights, first allocations); then s/frame: the "
          "frames after it; user/sys: CPU seconds per frame, all threads")
    print(" | ".join(f"{h:>14}" for h in header))
    for row in rows:
        cells = [row.get(h, "-") for h in header]
        print(" | ".join(f"{c:>14.2f}" if isinstance(c, float) else f"{c:>14}" for c in cells))
    print(f"peak MB: the process's peak resident memory so far; load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    engine_rows = [r for r in rows if r["device"] != "no engine"]
    best = min(engine_rows, key=lambda r: r["then s/frame"])
    key_frames = int(FIXATIONS_PER_S * 600)

    def hours(n: int) -> float:  # the first frame's one-time costs once, then the steady rate
        return (best["first s"] + (n - 1) * best["then s/frame"]) / 3600

    print(f"\n10-minute recording at {best['then s/frame']:.2f} s/frame after a first frame of {best['first s']:.2f} s "
          f"({best['device']}, freed memory {best['freed memory']}):")
    print(f"  all {TEN_MINUTES_FRAMES} frames: {hours(TEN_MINUTES_FRAMES):.1f} h")
    print(f"  one key frame per fixation (~{key_frames} at {FIXATIONS_PER_S:g}/s; this synthetic recording has "
          f"{fixation_rate:.1f}/s): {hours(key_frames):.2f} h")


def timed_run(recording: Recording, prepared, label: str, n_frames: int, memory: str) -> dict:
    """One run into a fresh store; ``memory`` "returned" runs it with glibc's default malloc behaviour."""
    predictor = prepared.predictor
    frames = prepared.frames[:n_frames]
    marks: list[float] = []
    holder = nullcontext if memory == "returned" else host_memory.reuse_freed_memory
    before = os.times()
    started = time.perf_counter()
    # The pipeline holds reuse_freed_memory during a run; "returned" swaps it for a no-op, for the side-by-side.
    with mock.patch.object(pipeline, "reuse_freed_memory", holder):
        summary = run_densepose(recording, predictor, prepared.store, frames, guide=prepared.guide,
                                progress=lambda state: marks.append(time.perf_counter()))
    seconds = time.perf_counter() - started
    after = os.times()
    n = max(summary.processed, 1)
    first = marks[0] - started if marks else seconds
    detections = prepared.store.detections()
    return {
        "frames of": label,
        "freed memory": memory,
        "device": str(predictor.device),
        "precision": str(predictor.dtype).removeprefix("torch."),
        "batch": predictor.batch_size,
        "frames": summary.processed,
        "det/frame": len(detections) / n,
        "first s": first,
        "s/frame": seconds / n,
        "then s/frame": (seconds - first) / (n - predictor.batch_size) if n > predictor.batch_size else first,
        "user s/frame": (after.user - before.user) / n,
        "sys s/frame": (after.system - before.system) / n,
        "peak MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "store kB/frame": folder_bytes(prepared.store.folder) / 1024 / n,
    }


if __name__ == "__main__":
    main()
