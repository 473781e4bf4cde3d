"""Benchmark the built-in DensePose engine on Neon-sized frames (1600x1200).

    python benchmarks/bench_engine.py [--config R_50_FPN_DL_s1x] [--cpu-frames 2] [--gpu-frames 48]

Weights: the synthetic checkpoint of the shared parity fixtures, written with their
make_checkpoint.py into a temporary folder (real zoo weights time the same; only
the number of detections differs). The frame is the fixtures' Neon image.

Work after the box head grows with the number of detections, so every figure is
measured at three score thresholds, chosen from a float32 run so that the frame
gives about 1, 3 and 10 detections; the mean number per frame is printed beside
each figure. CPU: float32, batch 1, a few frames. CUDA (when present): batch
1/4/8/16 in float32 and bfloat16 autocast. Frames/s counts the whole
``Predictor.predict`` call: upload, resize, network, chart conversion, full-frame
maps and the copy back to numpy. The memory freed between frames is kept for
reuse, as in a run (:mod:`napari_densepose_gaze.host_memory`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from napari_densepose_gaze.engine.checkpoint import read_checkpoint
from napari_densepose_gaze.engine.model import DensePoseRCNN
from napari_densepose_gaze.engine.predictor import Predictor
from napari_densepose_gaze.engine.preprocess import preprocess
from napari_densepose_gaze.engine.zoo import get_config
from napari_densepose_gaze.host_memory import reuse_freed_memory

TARGET_DETECTIONS = (1, 3, 10)


def find_fixtures() -> Path:
    if os.environ.get("DENSEPOSE_PARITY_FIXTURES"):
        return Path(os.environ["DENSEPOSE_PARITY_FIXTURES"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "fixtures" / "densepose_parity"
        if candidate.is_dir():
            return candidate
    sys.exit("Parity fixtures not found: set DENSEPOSE_PARITY_FIXTURES")


def synthetic_weights(fixtures: Path, config: str) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model_final.pkl"
        manifest = fixtures / f"manifest_{config}.json"
        subprocess.run([sys.executable, str(fixtures / "make_checkpoint.py"), str(manifest), str(path)], check=True)
        return read_checkpoint(path)


def neon_frame(fixtures: Path) -> np.ndarray:
    """The fixtures' Neon scene frame (1600x1200), RGB uint8."""
    return np.asarray(Image.open(fixtures / "neon_1600x1200.png").convert("RGB"))


def neon_case(config: str):
    """(config, Neon frame, synthetic weights, score thresholds for ~TARGET_DETECTIONS people) of one zoo config."""
    fixtures = find_fixtures()
    cfg = get_config(config)
    frame = neon_frame(fixtures)
    weights = synthetic_weights(fixtures, config)
    return cfg, frame, weights, thresholds_for(detection_scores(cfg, weights, frame))


def thresholds_for(scores: np.ndarray, targets=TARGET_DETECTIONS) -> list[float]:
    """Score thresholds halfway between the k-th and (k+1)-th best score, per target k."""
    ranked = np.sort(scores)[::-1]
    out = []
    for k in targets:
        k = min(k, len(ranked))
        below = ranked[k] if k < len(ranked) else 0.0
        out.append(float((ranked[k - 1] + below) / 2) if k else 0.99)
    return out


def detection_scores(cfg, weights, frame: np.ndarray) -> np.ndarray:
    """Scores of the detector's boxes at a low threshold (float32, detector only: no DensePose)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    detector = DensePoseRCNN(cfg, with_densepose=False)
    detector.load_weights(weights)
    detector.to(device)
    batch = preprocess([frame], device=device)
    with torch.inference_mode():
        features = detector.features(batch.tensor)
        proposals = detector.proposals(features, batch.image_sizes)
        [detections] = detector.detect(features, proposals, batch.image_sizes, score_thresh=0.05)
    return detections.scores.float().cpu().numpy()


def measure(predictor: Predictor, frame: np.ndarray, n_frames: int, warmup_batches: int) -> tuple[float, float]:
    """Frames per second and mean detections per frame over ``n_frames`` frames."""
    batch = [frame] * predictor.batch_size
    for _ in range(warmup_batches):
        predictor.predict(batch)
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    n_batches = max(1, -(-n_frames // predictor.batch_size))
    detections = 0
    started = time.perf_counter()
    for _ in range(n_batches):
        detections += sum(len(r) for r in predictor.predict(batch))
    elapsed = time.perf_counter() - started  # predict() returns numpy: the device has finished
    frames = n_batches * predictor.batch_size
    return frames / elapsed, detections / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="R_50_FPN_DL_s1x")
    parser.add_argument("--cpu-frames", type=int, default=2)
    parser.add_argument("--gpu-frames", type=int, default=48)
    parser.add_argument("--batches", default="1,4,8,16")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()

    cfg, frame, weights, thresholds = neon_case(args.config)
    print(f"{cfg.name}, frame 1600x1200, thresholds {', '.join(f'{t:.5f}' for t in thresholds)} "
          f"for ~{', '.join(map(str, TARGET_DETECTIONS))} detections; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    rows: list[tuple[str, str, int, float, float, float]] = []

    if not args.skip_cpu:
        for threshold in thresholds:
            predictor = Predictor(cfg, weights, device="cpu", precision="float32",
                                  score_threshold=threshold, batch_size=1)
            fps, dets = measure(predictor, frame, args.cpu_frames, warmup_batches=0)
            rows.append(("cpu", "float32", 1, threshold, dets, fps))
            print(f"  cpu float32 batch 1 thr {threshold:.5f}: {fps:.3f} frames/s, {dets:.1f} det/frame", flush=True)

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        bf16 = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        for precision in ("float32", bf16):
            for batch_size in (int(b) for b in args.batches.split(",")):
                predictor = Predictor(cfg, weights, device="cuda", precision=precision, batch_size=batch_size)
                for threshold in thresholds:
                    predictor.score_threshold = threshold
                    torch.cuda.reset_peak_memory_stats()
                    fps, dets = measure(predictor, frame, args.gpu_frames, warmup_batches=2)
                    peak = torch.cuda.max_memory_allocated() / 2**30
                    rows.append((name, precision, batch_size, threshold, dets, fps))
                    print(f"  cuda {precision} batch {batch_size} thr {threshold:.5f}: {fps:.1f} frames/s, "
                          f"{dets:.1f} det/frame, peak {peak:.1f} GiB", flush=True)
                del predictor
                torch.cuda.empty_cache()

    print()
    print("| device | precision | batch | score threshold | detections/frame | frames/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for device_name, precision, batch_size, threshold, dets, fps in rows:
        print(f"| {device_name} | {precision} | {batch_size} | {threshold:.5f} | {dets:.1f} | {fps:.2f} |")


if __name__ == "__main__":
    with reuse_freed_memory():  # as every run does
        main()
