"""Regenerate docs/images/head_regions.png: the head-regions layer over the body parts, the region under the cursor.

The results are drawn by hand on a synthetic recording (a person whose head is a
sphere with DensePose-style U, V, turned 20 deg to its right), so the picture shows
the plugin, not the model. Run headless:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_head_regions_screenshot.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "images" / "head_regions.png"
PLUGIN = "napari-densepose-gaze"
YAW, RADIUS = 20.0, 70.0


def settle(rounds: int = 30) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.01)


def person(width: int, height: int, cx: float, cy: float):
    """labels, persons, u23, v of a person: a sphere head (U, V of a head turned by YAW) over a torso."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    a, b = (x - cx) / RADIUS, (y - cy) / RADIUS
    inside = a**2 + b**2 <= 1
    a = a / np.sqrt(np.clip(1 - b**2, 1e-12, None))
    azimuth = (YAW + np.degrees(np.arcsin(np.clip(a, -1, 1))) + 180) % 360 - 180
    labels = np.where(inside, np.where(azimuth > 0, 24, 23), 0).astype(np.uint8)
    u23 = np.where(inside, 1 - np.abs(azimuth) / 180, np.nan).astype(np.float32)
    v = np.where(inside, 0.95 - (b + 1) / 2 * 0.9, np.nan).astype(np.float32)
    torso = (np.abs(x - cx) < 1.3 * RADIUS) & (y > cy + 0.95 * RADIUS) & (y < cy + 4 * RADIUS)
    labels[torso & (labels == 0)] = 2
    arms = (np.abs(np.abs(x - cx) - 1.55 * RADIUS) < 0.25 * RADIUS) & (y > cy + 1.1 * RADIUS) & (y < cy + 3.5 * RADIUS)
    labels[arms & (labels == 0)] = np.where(x[arms & (labels == 0)] < cx, 15, 16)
    return labels, (labels > 0).astype(np.uint8), u23, v


def main() -> int:
    import napari

    from napari_densepose_gaze.face_regions import LANDMARKS
    from napari_densepose_gaze.recording import Recording
    from napari_densepose_gaze.store import ResultsStore
    from napari_densepose_gaze.synthetic.export import write_recording
    from napari_densepose_gaze.ui.hits_widget import GazeHitsWidget
    from napari_densepose_gaze.ui.layer_roles import BODY_PARTS
    from napari_densepose_gaze.ui.part_legend import PartLegendWidget
    from napari_densepose_gaze.ui.session import find_layer, open_session

    work = Path(tempfile.mkdtemp(prefix="head_regions_shot_"))
    folder = write_recording(work / "rec", seconds=3.0, size=(640, 480), seed=0)
    recording = Recording.open(folder)
    width, height = recording.frame_size
    per = recording.per_frame_gaze()
    per = per[(per["valid samples"] > 0) & per["gaze x [px]"].between(200, width - 200)
              & per["gaze y [px]"].between(120, height - 200)]
    store = ResultsStore.create(ResultsStore.default_folder(folder), n_frames=recording.n_frames, height=height,
                                width=width, metadata={"model": "drawn by hand", "recording_folder": str(folder)})
    shown = int(per.iloc[len(per) // 2]["frame"])
    for _, row in per.iterrows():  # a person under every such frame's gaze, the eye nearest it on the shown one
        frame, gx, gy = int(row["frame"]), float(row["gaze x [px]"]), float(row["gaze y [px]"])
        cx, cy = gx + 0.25 * RADIUS, gy + 0.1 * RADIUS
        labels, persons, u23, v = person(width, height, cx, cy)
        box = [{"x1 [px]": cx - 2 * RADIUS, "y1 [px]": cy - RADIUS, "x2 [px]": cx + 2 * RADIUS,
                "y2 [px]": min(height, cy + 4 * RADIUS), "score": 0.99}]
        store.write_frame(frame, labels, persons, box, head_uv=(u23, v))

    viewer = napari.Viewer(title="napari-densepose-gaze")
    viewer.window.resize(1500, 940)
    viewer.open(str(folder), plugin=PLUGIN)
    legend = PartLegendWidget(viewer)
    viewer.window.add_dock_widget(legend, name="Body parts", area="left")
    hits = GazeHitsWidget(viewer)
    dock = viewer.window.add_dock_widget(hits, name="Gaze hits", area="right")
    session = open_session(folder)
    parts = find_layer(viewer, BODY_PARTS, session)
    viewer.dims.set_current_step(0, shown)
    legend.head_regions.setChecked(True)
    viewer.layers.selection.select_only(parts)
    hits.unit.setCurrentText("px")
    hits.radius.setValue(10.0)
    hits.compute()
    while hits.tasks.busy or hits.tables is None:
        settle(5)
    hits.view.setCurrentText("per head region")
    viewer.dims.set_current_step(0, shown)
    settle()
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([dock], [470], Qt.Orientation.Horizontal)
    settle()
    # the cursor on the person's right eye, and the status bar as napari's status thread fills it
    part, u, vv = LANDMARKS["right eye"]
    row = per[per["frame"] == shown].iloc[0]
    cx, cy = float(row["gaze x [px]"]) + 0.25 * RADIUS, float(row["gaze y [px]"]) + 0.1 * RADIUS
    azimuth = -(1 - u) * 180
    b = (0.95 - vv) / 0.9 * 2 - 1
    ex = cx + np.sin(np.radians(azimuth - YAW)) * np.sqrt(1 - b**2) * RADIUS
    ey = cy + b * RADIUS
    scene = viewer.scene if hasattr(viewer, "scene") else viewer
    scene.camera.center = (cy + 0.8 * RADIUS, cx)
    scene.camera.zoom = 2.6
    settle()
    viewer.mouse_over_canvas = True
    viewer.cursor.position = (shown, ey, ex)
    viewer.status, _ = viewer._calc_status_from_cursor()
    print(viewer.status)
    settle()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(OUT), canvas_only=False, flash=False)
    viewer.close()
    print(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
