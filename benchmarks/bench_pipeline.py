"""Benchmark the whole pipeline: video file -> decode -> engine -> results store.

    python benchmarks/bench_pipeline.py [--device cpu] [--frames 12] [--seconds 2] [--batch-size N]
                                        [--input-size 800] [--detections 3] [--workdir DIR]
                                        [--selection first|fixations] [--densepose gazed|all]

A synthetic Neon-sized recording (1600x1200, 30 fps, H.264) is written once into
the work folder; the engine loads the synthetic checkpoint of the shared parity
fixtures (real zoo weights cost the same per detection). The score threshold is
chosen on the first frame so that it gives about ``--detections`` people, because
the DensePose head's cost grows with them. Each configuration runs into a fresh
store; the table gives end-to-end frames/s, seconds per frame, the store's size on
disk per frame and the peak resident memory, then what a 10-minute recording costs
at that rate for every frame and for one key frame per fixation.

``--selection fixations`` times what a researcher runs: one key frame per fixation
(decoded by seeking through the video), gaze-guided by default as a run of that
selection is (``--densepose all`` computes every detection's body parts).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import find_fixtures, thresholds_for

from napari_densepose_gaze.engine.defaults import DEFAULT_MODEL, MIN_SIZE_TEST, default_max_input_size
from napari_densepose_gaze.engine.predictor import Predictor
from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
from napari_densepose_gaze.gaze_guided import DENSEPOSE_MODES
from napari_densepose_gaze.pipeline import (
    ModelSettings,
    RunOptions,
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
        "frames of": "all, replayed", "device": "no engine", "precision": "-", "batch": 16, "frames": summary.processed,
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
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    folder = neon_recording(args.workdir, args.seconds)
    recording = Recording.open(folder)
    weights = checkpoint(args.workdir, args.config)
    rows = []
    for batch_size in args.batch_size:
        threshold = threshold_for(recording, weights, args.config, "cpu" if args.device == "cpu" else args.device,
                                  args.input_size, args.detections)
        model = ModelSettings(model=args.config, weights=weights, score_threshold=threshold,
                              input_size=args.input_size, precision=args.precision)
        out = args.workdir / "store"
        shutil.rmtree(out, ignore_errors=True)
        if args.selection == "fixations":
            selection = FrameSelection(mode="fixations")
        else:
            selection = FrameSelection(stop=min(args.frames, recording.n_frames))
        options = RunOptions(device=args.device, batch_size=batch_size, output=out, selection=selection,
                             densepose=args.densepose)
        prepared = prepare_run(recording, model, options, download_progress=False)
        predictor = prepared.predictor  # loaded before the clock starts
        frames = prepared.frames[: args.frames]
        started = time.perf_counter()
        summary = run_densepose(recording, predictor, prepared.store, frames, guide=prepared.guide)
        seconds = time.perf_counter() - started
        detections = prepared.store.detections()
        rows.append({
            "frames of": f"{args.selection}, {options.densepose_mode}",
            "device": str(prepared.predictor.device),
            "precision": str(prepared.predictor.dtype).removeprefix("torch."),
            "batch": prepared.predictor.batch_size,
            "frames": summary.processed,
            "det/frame": len(detections) / max(summary.processed, 1),
            "frames/s": summary.processed / seconds,
            "s/frame": seconds / max(summary.processed, 1),
            "store kB/frame": folder_bytes(out) / 1024 / max(summary.processed, 1),
        })
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fixation_rate = len(recording.fixations) / (recording.n_frames / 30.0)

    if args.without_engine:
        rows.append(without_engine(recording, prepared, args.workdir))
    header = ["frames of", "device", "precision", "batch", "frames", "det/frame", "frames/s", "s/frame",
              "store kB/frame"]
    print(f"\nPipeline, {args.config}, Neon 1600x1200, input size {args.input_size}, {recording.n_frames}-frame video")
    print(" | ".join(f"{h:>14}" for h in header))
    for row in rows:
        print(" | ".join(f"{row[h]:>14.2f}" if isinstance(row[h], float) else f"{row[h]:>14}" for h in header))
    print(f"peak resident memory: {peak_mb:.0f} MB; load average {', '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")
    best = max((r for r in rows if r["device"] != "no engine"), key=lambda r: r["frames/s"])
    key_frames = int(FIXATIONS_PER_S * 600)
    print(f"\n10-minute recording at {best['s/frame']:.2f} s/frame ({best['device']}):")
    print(f"  all {TEN_MINUTES_FRAMES} frames: {TEN_MINUTES_FRAMES * best['s/frame'] / 3600:.1f} h")
    print(f"  one key frame per fixation (~{key_frames} at {FIXATIONS_PER_S:g}/s; this synthetic recording has "
          f"{fixation_rate:.1f}/s): {key_frames * best['s/frame'] / 3600:.2f} h")


if __name__ == "__main__":
    main()
