"""Benchmark scene-video access on a 5-minute Neon-sized video (1600x1200, 30 fps, 9000 frames).

    python benchmarks/bench_video.py CACHE_DIR [--frames 9000] [--gop 30]

The video is encoded once into CACHE_DIR (a few minutes on 2 cores) and reused.
The measurements run in a fresh subprocess so that peak memory excludes the encode.
GOP: Pupil Labs does not document Neon's keyframe interval; phone hardware
encoders usually put one keyframe per 1-2 s, so the default is 30 frames (1 s at
30 fps); try --gop 60 for the 2 s case, and --bframes 0 for an encoder without B-frames.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS = 1600, 1200, 30


def _moving_frames(n: int, seed: int = 0):
    """Camera-like content: a smooth textured scene panning, a moving block, mild sensor noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(HEIGHT // 8 + 2, WIDTH // 8 + 2, 3), dtype=np.uint8)
    scene = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)[:HEIGHT, :WIDTH]  # blocky texture
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    scene = (scene.astype(np.int16) // 2 + ((xx + yy) % 256)[..., None] // 2).astype(np.uint8)
    scene = np.concatenate([scene, scene[:, :WIDTH]], axis=1)  # room to pan horizontally
    noise = [rng.integers(-6, 7, size=(HEIGHT, WIDTH, 1), dtype=np.int16) for _ in range(8)]
    started = time.perf_counter()
    for i in range(n):
        x0 = (3 * i) % WIDTH  # a slow pan, like a turning head
        frame = scene[:HEIGHT, x0 : x0 + WIDTH].astype(np.int16) + noise[i % 8]
        bx, by = (10 * i) % (WIDTH - 200), (6 * i) % (HEIGHT - 200)
        frame[by : by + 200, bx : bx + 200] = (i * 7) % 256
        yield np.clip(frame, 0, 255).astype(np.uint8)
        if i and i % 500 == 0:
            rate = i / (time.perf_counter() - started)
            print(f"  encoded {i}/{n} frames ({rate:.0f} frames/s, ~{(n - i) / rate:.0f} s left)", flush=True)


def ensure_video(cache_dir: Path, n_frames: int, gop: int, bframes: int = 2) -> Path:
    from napari_densepose_gaze.synthetic.video_writer import write_h264

    path = cache_dir / f"neon_{WIDTH}x{HEIGHT}_{n_frames}f_gop{gop}{'' if bframes == 2 else f'_bf{bframes}'}.mp4"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"Encoding {path} ({n_frames} frames, GOP {gop}, with audio) ...", flush=True)
    tmp = path.with_suffix(".partial.mp4")
    started = time.perf_counter()
    seconds = n_frames / FPS
    write_h264(tmp, _moving_frames(n_frames), fps=FPS, audio_seconds=seconds, gop=gop, bframes=bframes)
    tmp.rename(path)
    print(f"  done in {time.perf_counter() - started:.0f} s, {path.stat().st_size / 2**20:.0f} MiB", flush=True)
    return path


def measure(path: Path, n_random: int, n_sequential: int, seed: int = 1) -> dict:
    from napari_densepose_gaze.video import VideoReader, count_frames

    results: dict = {}
    _evict_from_page_cache(path)
    started = time.perf_counter()
    n_counted = count_frames(path)
    results["count_frames, file not cached [s]"] = time.perf_counter() - started

    started = time.perf_counter()
    reader = VideoReader(path)
    results["open (index build), file cached [s]"] = time.perf_counter() - started
    assert len(reader) == n_counted
    n = len(reader)
    kf = reader.keyframes
    results["frames"] = n
    results["keyframe interval [frames]"] = float(np.median(np.diff(kf))) if len(kf) > 1 else float(n)

    rng = np.random.default_rng(seed)
    for thread_type in ("SLICE", "AUTO"):
        with VideoReader(path, thread_type=thread_type) as r:
            times = []
            cpu0 = time.process_time()
            for i in rng.choice(n, size=n_random, replace=False):
                t0 = time.perf_counter()
                r.frame(int(i))
                times.append(time.perf_counter() - t0)
            cpu = time.process_time() - cpu0
        ms = 1000 * np.asarray(times)
        results[f"random access p50 [ms] ({thread_type})"] = float(np.percentile(ms, 50))
        results[f"random access p95 [ms] ({thread_type})"] = float(np.percentile(ms, 95))
        results[f"random access CPU per frame [ms] ({thread_type})"] = 1000 * cpu / n_random

    start = int(rng.integers(0, max(1, n - n_sequential)))
    t0 = time.perf_counter()
    count = sum(1 for _ in reader.iter_frames(start=start, stop=start + n_sequential))
    results["iter_frames RGB [frames/s]"] = count / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for i in range(start, min(n, start + n_sequential // 2)):
        reader.frame(i)
    results["frame(i) in order, playback [frames/s]"] = (min(n, start + n_sequential // 2) - start) / (
        time.perf_counter() - t0
    )
    reader.close()
    results["peak RSS [MB]"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def _evict_from_page_cache(path: Path) -> None:
    """Drop this file's pages from the OS cache (Linux) so opening it reads from disk."""
    import os

    if hasattr(os, "posix_fadvise"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache_dir", type=Path, help="folder for the generated video (kept for later runs)")
    parser.add_argument("--frames", type=int, default=FPS * 300)
    parser.add_argument("--gop", type=int, default=30)
    parser.add_argument("--bframes", type=int, default=2, help="0: no B-frames, as phone hardware encoders often do")
    parser.add_argument("--random", type=int, default=50, help="random frames to time")
    parser.add_argument("--sequential", type=int, default=600, help="frames to decode in order")
    parser.add_argument("--measure-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.measure_only is not None:
        print(json.dumps(measure(args.measure_only, args.random, args.sequential)))
        return

    path = ensure_video(args.cache_dir, args.frames, args.gop, args.bframes)
    out = subprocess.run(
        [sys.executable, __file__, str(args.cache_dir), "--measure-only", str(path),
         "--random", str(args.random), "--sequential", str(args.sequential)],
        check=True, capture_output=True, text=True,
    )
    results = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{path.name} ({path.stat().st_size / 2**20:.0f} MiB)")
    width = max(len(k) for k in results)
    for key, value in results.items():
        text = f"{value:.3f}" if isinstance(value, float) and value < 10 else f"{value:.0f}"
        print(f"{key:<{width}}  {text}")


if __name__ == "__main__":
    main()
