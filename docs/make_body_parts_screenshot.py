"""Regenerate docs/images/body_parts.png: the "body parts" layer over the sample video.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_body_parts_screenshot.py

Real DensePose weights cannot be downloaded where the docs are built, so the
engine loads the synthetic checkpoint of the parity fixtures: the layer, its
colours, the Run DensePose widget and the store are the real ones, but the parts
the synthetic model paints are not anatomy. The score threshold is set so the
synthetic model keeps a few "people" per frame.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "images" / "body_parts.png"
BUILD = HERE.parent / "build" / "docs"
CONFIG = "R_50_FPN_DL_s1x"
INPUT_SIZE = 320


def synthetic_checkpoint() -> Path:
    path = BUILD / f"{CONFIG}.pkl"
    if not path.exists():
        sys.path.insert(0, str(HERE.parent / "benchmarks"))
        from bench_engine import find_fixtures

        fixtures = find_fixtures()
        BUILD.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(fixtures / "make_checkpoint.py"),
                        str(fixtures / f"manifest_{CONFIG}.json"), str(path)], check=True)
    return path


def threshold_for_people(frame: np.ndarray, weights: Path, people: int) -> float:
    """A score threshold that keeps about ``people`` detections of the synthetic model on ``frame``."""
    from napari_densepose_gaze.engine.defaults import default_max_input_size
    from napari_densepose_gaze.engine.predictor import Predictor

    probe = Predictor(CONFIG, weights=weights, device="cpu", score_threshold=0.0, min_size=INPUT_SIZE,
                      max_size=default_max_input_size(INPUT_SIZE))
    scores = np.sort(probe.predict(frame.copy())[0].scores)[::-1]
    return float(np.floor(scores[people - 1] * 1e4) / 1e4)


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_densepose_gaze.ui.launch import show_recording
    from napari_densepose_gaze.ui.layer_roles import BODY_PARTS, role_of
    from napari_densepose_gaze.ui.run_widget import RunDensePoseWidget

    viewer = napari.Viewer(title="napari-densepose-gaze")
    viewer.window.resize(1500, 900)
    show_recording(viewer)
    frame = int(viewer.dims.current_step[0])
    _, widget = viewer.window.add_plugin_dock_widget("napari-densepose-gaze", "Run DensePose")  # the docked one
    assert isinstance(widget, RunDensePoseWidget)
    weights = synthetic_checkpoint()
    widget.model.value = CONFIG
    widget.weights.value = str(weights)
    widget.device.value = "cpu"
    widget.threshold.value = threshold_for_people(widget.recording().video_reader().frame(frame), weights, 3)
    widget.input_size.value = INPUT_SIZE
    output = BUILD / "body_parts.densepose"
    shutil.rmtree(output, ignore_errors=True)
    widget.output.value = str(output)
    widget.first.value = max(frame - 2, 0)
    widget.last.value = frame + 2
    widget.run_button.clicked.emit()
    while widget.tasks.busy:
        QApplication.processEvents()
    parts = next(layer for layer in viewer.layers if role_of(layer) == BODY_PARTS)
    viewer.layers.selection.active = parts
    viewer.dims.set_current_step(0, frame)
    for _ in range(10):
        QApplication.processEvents()
    viewer.reset_view()
    image = viewer.screenshot(canvas_only=False, flash=False)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(np.asarray(image)).save(OUT)
    print(f"saved {OUT}; status: {widget.status.value}")
    viewer.close()


if __name__ == "__main__":
    main()
