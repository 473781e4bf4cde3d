"""Regenerate the figures of docs/guide.md made by ``densepose-gaze report`` and ``render``.

The sample recording (4 s, 640x480, seed 0, as File > Open Sample) gets
hand-drawn stand-in "DensePose" results (each synthetic figure's limbs drawn
with their part ids by docs/make_hits_screenshot.py, no model needed); then the
command line computes the hits, the report figures and the overlay video, as
a user would run it. Writes into docs/images/:

- report_body_heatmap.png / .svg, report_dwell_per_person.png / .svg
- overlay_frames.png: four frames of the overlay video

    .venv/bin/python docs/make_report_figures.py
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
OVERLAY_FRAMES = (20, 38, 52, 100)


def _drawn_results():
    spec = importlib.util.spec_from_file_location("make_hits_screenshot", HERE / "make_hits_screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_results


def main() -> None:
    import av
    from PIL import Image

    from napari_densepose_gaze import cli
    from napari_densepose_gaze.synthetic.export import write_recording

    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_recording(tmp, seconds=4.0, size=(640, 480), seed=0, audio=True)
        _drawn_results()(folder)
        out = Path(tmp) / "out"
        assert cli.main(["report", str(folder), "--output", str(out / "report")]) == 0
        for stem in ("body_heatmap", "dwell_per_person"):
            for ext in ("png", "svg"):
                shutil.copyfile(out / "report" / f"{stem}.{ext}", IMAGES / f"report_{stem}.{ext}")
        assert cli.main(["render", str(folder), "--output", str(out / "overlay.mp4")]) == 0
        with av.open(str(out / "overlay.mp4")) as video:
            frames = [f.to_ndarray(format="rgb24") for i, f in enumerate(video.decode(video=0)) if i in OVERLAY_FRAMES]
        strip = np.concatenate([np.concatenate(frames[:2], axis=1), np.concatenate(frames[2:], axis=1)], axis=0)
        Image.fromarray(strip).save(IMAGES / "overlay_frames.png", optimize=True)
    for name in ("report_body_heatmap.png", "report_dwell_per_person.png", "overlay_frames.png"):
        print(IMAGES / name)


if __name__ == "__main__":
    main()
