"""The built-in engine against Detectron2 itself, on the same weights, frame and threads.

    python benchmarks/bench_vs_detectron2.py [--configs R_50_FPN_DL_s1x,R_50_FPN_s1x] [--runs 5] [--threads 2]
    python benchmarks/bench_vs_detectron2.py --quick    # 5 pairs per row, checkpoints kept for the next run

Needs ``detectron2`` and its DensePose project (``densepose``) importable in the same
environment (see shared/docs/detectron2_build.md); without them it says so and stops.

Both engines live in one process and load the same synthetic checkpoint of the
parity fixtures (written once by their make_checkpoint.py). The frame is the
fixtures' Neon image (1600x1200). The score threshold is set, for both engines, so
that the frame gives about 1, 3 and 10 detections (the DensePose head's cost grows
with them); each engine's own detection count is printed beside its time.

Per configuration and threshold: one warm-up frame each, then ``--runs`` frames
interleaved (ours, Detectron2, ours, ...), so both see the same machine load. The
table gives median seconds per frame of each, the median of the per-pair ratios
ours/Detectron2, and each engine's median time per stage. Detectron2's time includes
its chart-result conversion and the full-frame maps, as ours does. The machine's
load average is printed before every block: these machines are shared. The last
column says whether ours/Detectron2 is below the target of issue 13 (``TARGET_RATIO``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import TARGET_DETECTIONS, detection_scores, find_fixtures, neon_frame, thresholds_for

from napari_densepose_gaze.engine.checkpoint import read_checkpoint
from napari_densepose_gaze.engine.detectron2_engine import Detectron2Predictor, detectron2_available
from napari_densepose_gaze.engine.predictor import Predictor
from napari_densepose_gaze.engine.zoo import get_config

Stages = dict[str, list[float]]
TARGET_RATIO = 0.67  # ours/Detectron2 wanted at every detection count (1.5 times as fast)
MIN_RUNS = 5


def _timed(stages: Stages, name: str, fn: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stages[name].append(time.perf_counter() - started)

    return wrapper


def instrument_ours(predictor: Predictor, stages: Stages) -> None:
    """Time each stage of the built-in engine's own predict path (instance attributes only)."""
    import napari_densepose_gaze.engine.predictor as module

    model = predictor.model
    for name, stage in (("backbone", "features"), ("rpn", "proposals"), ("box head", "detect"),
                        ("densepose", "densepose")):
        setattr(model, stage, _timed(stages, name, getattr(model, stage)))
    # preprocess and frame_result are module functions the predictor looks up at call time.
    module.preprocess = _timed(stages, "resize", module.preprocess)
    module.frame_result = _timed(stages, "charts", module.frame_result)


def instrument_detectron2(predictor: Detectron2Predictor, stages: Stages) -> None:
    model = predictor.model
    model.backbone.forward = _timed(stages, "backbone", model.backbone.forward)
    model.proposal_generator.forward = _timed(stages, "rpn", model.proposal_generator.forward)
    heads = model.roi_heads
    heads._forward_box = _timed(stages, "box head", heads._forward_box)
    heads._forward_densepose = _timed(stages, "densepose", heads._forward_densepose)
    predictor._input = _timed(stages, "resize", predictor._input)
    predictor._frame_result = _timed(stages, "charts", predictor._frame_result)


def run_once(predictor, frame: np.ndarray, stages: Stages) -> tuple[float, int]:
    started = time.perf_counter()
    [result] = predictor.predict(frame)
    elapsed = time.perf_counter() - started
    stages["total"].append(elapsed)
    return elapsed, len(result)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}")


def load() -> str:
    try:
        return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


def median_stages(stages: Stages, skip: int) -> dict[str, float]:
    """Median per stage over the timed frames (the first ``skip`` entries are the warm-up)."""
    return {name: statistics.median(values[skip:]) for name, values in stages.items() if values[skip:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="R_50_FPN_DL_s1x,R_50_FPN_s1x")
    parser.add_argument("--runs", type=int, default=MIN_RUNS,
                        help=f"timed frames per engine and threshold (at least {MIN_RUNS})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detections", default=",".join(map(str, TARGET_DETECTIONS)),
                        help="detection counts to aim at, e.g. 1,3,10")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the synthetic checkpoints here")
    parser.add_argument("--quick", action="store_true",
                        help=f"{MIN_RUNS} pairs per row; checkpoints kept in the temporary folder for later runs")
    args = parser.parse_args()
    if args.quick:
        args.runs = MIN_RUNS
        args.workdir = args.workdir or Path(tempfile.gettempdir()) / "bench-vs-d2-checkpoints"

    if not detectron2_available():
        print("detectron2 and densepose cannot be imported here: nothing to compare. Build them as "
              "shared/docs/detectron2_build.md says and run this script in that environment.")
        return
    torch.set_num_threads(args.threads)
    fixtures = find_fixtures()
    frame = neon_frame(fixtures)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-vs-d2-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(machine())
    rows = []
    for config in args.configs.split(","):
        cfg = get_config(config)
        weights = workdir / f"{config}.pkl"
        if not weights.exists():
            import subprocess

            subprocess.run([sys.executable, str(fixtures / "make_checkpoint.py"),
                            str(fixtures / f"manifest_{config}.json"), str(weights)], check=True)
        targets = tuple(int(n) for n in args.detections.split(","))
        thresholds = thresholds_for(detection_scores(cfg, read_checkpoint(weights), frame), targets)
        ours = Predictor(cfg, weights, device="cpu", precision="float32", batch_size=1)
        theirs = Detectron2Predictor(cfg, weights, device="cpu", precision="float32", batch_size=1)
        for target, threshold in zip(targets, thresholds):
            ours.score_threshold = threshold
            theirs.score_threshold = threshold
            our_stages: Stages = defaultdict(list)
            their_stages: Stages = defaultdict(list)
            print(f"{config} ~{target} detections (threshold {threshold:.5f}): {load()}", flush=True)
            with _instrumented(ours, theirs, our_stages, their_stages):
                run_once(ours, frame, our_stages)  # warm-up
                run_once(theirs, frame, their_stages)
                pairs = []
                for _ in range(max(args.runs, MIN_RUNS)):
                    mine, n_mine = run_once(ours, frame, our_stages)
                    other, n_other = run_once(theirs, frame, their_stages)
                    pairs.append((mine, other, n_mine, n_other))
            ratio = statistics.median(m / o for m, o, _, _ in pairs)
            row = (config, target, pairs[0][3], pairs[0][2], statistics.median(o for _, o, _, _ in pairs),
                   statistics.median(m for m, _, _, _ in pairs), ratio,
                   median_stages(their_stages, 1), median_stages(our_stages, 1))
            rows.append(row)
            print(f"  Detectron2 {row[4]:.3f} s ({row[2]} det), ours {row[5]:.3f} s ({row[3]} det), "
                  f"ratio {ratio:.3f}; {load()}", flush=True)
            for engine, stages in (("Detectron2", row[7]), ("ours", row[8])):
                print(f"    {engine}: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()), flush=True)
    print_table(rows)


class _instrumented:
    """Stage timers on both engines for one block, removed afterwards (they patch module functions)."""

    def __init__(self, ours, theirs, our_stages: Stages, their_stages: Stages) -> None:
        self.args = ours, theirs, our_stages, their_stages

    def __enter__(self) -> None:
        import napari_densepose_gaze.engine.predictor as module

        ours, theirs, our_stages, their_stages = self.args
        self.saved = (module.preprocess, module.frame_result)
        instrument_ours(ours, our_stages)
        instrument_detectron2(theirs, their_stages)

    def __exit__(self, *exc) -> None:
        import napari_densepose_gaze.engine.predictor as module

        ours, theirs, _, _ = self.args
        module.preprocess, module.frame_result = self.saved
        for name in ("features", "proposals", "detect", "densepose"):
            ours.model.__dict__.pop(name, None)
        model = theirs.model
        for owner, name in ((model.backbone, "forward"), (model.proposal_generator, "forward"),
                            (model.roi_heads, "_forward_box"), (model.roi_heads, "_forward_densepose"),
                            (theirs, "_input"), (theirs, "_frame_result")):
            owner.__dict__.pop(name, None)


def print_table(rows) -> None:
    names = ("resize", "backbone", "rpn", "box head", "densepose", "charts")
    print()
    print("| config | target | det (D2 / ours) | Detectron2 s/frame | ours s/frame | ours/D2 | "
          f"below {TARGET_RATIO} | D2 stages (" + ", ".join(names) + ") | our stages |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for config, target, n_d2, n_ours, d2, mine, ratio, d2_stages, our_stages in rows:
        d2_text = " / ".join(f"{d2_stages.get(n, 0.0):.3f}" for n in names)
        our_text = " / ".join(f"{our_stages.get(n, 0.0):.3f}" for n in names)
        met = "yes" if ratio < TARGET_RATIO else "no"
        print(f"| {config} | {target} | {n_d2} / {n_ours} | {d2:.3f} | {mine:.3f} | {ratio:.3f} | {met} | "
              f"{d2_text} | {our_text} |")


if __name__ == "__main__":
    main()
