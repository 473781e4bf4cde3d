"""What gaze-guided DensePose saves: engine time per frame with body parts for everyone vs near the gaze only.

    python benchmarks/bench_gazed.py [--config R_50_FPN_DL_s1x] [--repeats 3] [--radius-px 40]

Weights, frame and detection counts as in bench_engine.py (its helpers): the
synthetic checkpoint of the parity fixtures, their Neon frame (1600x1200), score
thresholds that give about 1, 3 and 10 detections. The gaze lands on the centre
of the best detection's box with a hit radius of ``--radius-px`` (Neon's default
1.3 degrees is about 40 px), so the gaze-guided run computes body parts for that
person and for whoever overlaps it with a higher score (gaze_guided.detections_needed).
Each figure is the median of ``--repeats`` whole ``Predictor.predict`` calls, full
and gazed interleaved, after one warm-up; beside them the DensePose stage alone
(pooling, decoder, head, predictor) for every box and for the gazed ones, on the
same features, which is where the saving comes from and less at the mercy of a
busy machine. The machine's load is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from bench_engine import TARGET_DETECTIONS, neon_case

from napari_densepose_gaze.engine.predictor import Predictor
from napari_densepose_gaze.engine.preprocess import preprocess
from napari_densepose_gaze.gaze_guided import detections_needed


def timed(predictor: Predictor, frame: np.ndarray, box_filters=None) -> tuple[float, list]:
    """Seconds of one whole ``predict`` call, and its results."""
    started = time.perf_counter()
    results = predictor.predict(frame, box_filters=box_filters)
    return time.perf_counter() - started, results


def densepose_seconds(predictor: Predictor, frame: np.ndarray, chosen: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median seconds of the DensePose stage for every detection and for the ``chosen`` ones, on shared features."""
    model = predictor.model
    batch = preprocess([frame], device=predictor.device, min_size=predictor.min_size, max_size=predictor.max_size)
    with torch.inference_mode():
        features = model.features(batch.tensor)
        [detections] = model.detect(features, model.proposals(features, batch.image_sizes), batch.image_sizes,
                                    predictor.score_threshold)
        boxes = detections.boxes
        some = boxes[torch.from_numpy(chosen)]
        every, gazed = [], []
        for _ in range(repeats):
            for sink, subset in ((every, boxes), (gazed, some)):
                started = time.perf_counter()
                model.densepose(features, [subset])
                sink.append(time.perf_counter() - started)
    return statistics.median(every), statistics.median(gazed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="R_50_FPN_DL_s1x")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--radius-px", type=float, default=40.0)
    args = parser.parse_args()

    cfg, frame, weights, thresholds = neon_case(args.config)
    print(f"{cfg.name}, frame 1600x1200, CPU float32 batch 1, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, load average before {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for target, threshold in zip(TARGET_DETECTIONS, thresholds):
        predictor = Predictor(cfg, weights, device="cpu", precision="float32", score_threshold=threshold,
                              batch_size=1)
        [first] = predictor.predict(frame)  # warm-up, and where the gaze lands
        x1, y1, x2, y2 = first.boxes[0]
        gaze = np.array([[(x1 + x2) / 2, (y1 + y2) / 2, args.radius_px]])
        near_gaze = [lambda boxes, scores, gaze=gaze: detections_needed(boxes, scores, gaze)]
        predictor.predict(frame, box_filters=near_gaze)
        full, gazed, with_parts = [], [], 0
        for _ in range(args.repeats):
            seconds, _ = timed(predictor, frame)
            full.append(seconds)
            seconds, [result] = timed(predictor, frame, near_gaze)
            gazed.append(seconds)
            with_parts = len(result) if result.with_parts is None else int(result.with_parts.sum())
        chosen = np.ones(len(first), bool) if result.with_parts is None else result.with_parts
        stage = densepose_seconds(predictor, frame, chosen, args.repeats)
        rows.append((target, len(first), with_parts, statistics.median(full), statistics.median(gazed), *stage))
        print(f"  ~{target} detections: {rows[-1]}", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    print("| target | detections | with body parts (gazed) | full [s/frame] | gazed [s/frame] | saving "
          "| DensePose stage, all [s] | DensePose stage, gazed [s] |")
    print("|---|---|---|---|---|---|---|---|")
    for target, n, parts, full_s, gazed_s, stage_all, stage_gazed in rows:
        print(f"| {target} | {n} | {parts} | {full_s:.2f} | {gazed_s:.2f} | {1 - gazed_s / full_s:.0%} "
              f"| {stage_all:.2f} | {stage_gazed:.2f} |")


if __name__ == "__main__":
    main()
