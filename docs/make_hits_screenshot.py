"""Regenerate docs/images/hits_table.png: the Gaze hits table beside the viewer.

A synthetic recording gets hand-drawn "DensePose" results (each figure's
limbs drawn with their part ids, no model needed), then the widget computes
the hits and a row of the per-frame table is selected. Run headless with:

    xvfb-run -a -s "-screen 0 1800x1000x24" .venv/bin/python docs/make_hits_screenshot.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent / "images" / "hits_table.png"
PLUGIN = "napari-densepose-gaze"
SIZE = (800, 600)

# figure side 0 is its right (the viewer's left): (upper arm, forearm, hand, thigh, shin, foot) ids
_LIMB_PARTS = ((16, 20, 3, 9, 13, 6), (15, 19, 4, 10, 14, 5))
_TORSO_FRONT, _HEAD_RIGHT, _HEAD_LEFT = 2, 23, 24


def _pt(p) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def draw_parts(pose, labels: np.ndarray) -> None:
    """The figure's parts with their DensePose ids, in the drawing order of the synthetic scene."""
    h = pose.height
    arm_w, leg_w = max(int(0.045 * h), 2), max(int(0.065 * h), 2)
    for side, (_, _, _, thigh, shin, foot) in enumerate(_LIMB_PARTS):
        cv2.line(labels, _pt(pose.hips[side]), _pt(pose.knees[side]), thigh, leg_w)
        cv2.line(labels, _pt(pose.knees[side]), _pt(pose.feet[side]), shin, leg_w)
        foot_end = (pose.feet[side][0] + (2 * side - 1) * 0.04 * h, pose.feet[side][1])
        cv2.line(labels, _pt(pose.feet[side]), _pt(foot_end), foot, max(leg_w // 2, 2))
    (sx, sy), (hx, hy) = pose.shoulder, pose.hip
    torso = np.array([(sx - 0.11 * h, sy), (sx + 0.11 * h, sy), (hx + 0.085 * h, hy + 0.02 * h),
                      (hx - 0.085 * h, hy + 0.02 * h)])
    cv2.fillConvexPoly(labels, np.round(torso).astype(np.int32), _TORSO_FRONT)
    for side, (upper, fore, hand, *_) in enumerate(_LIMB_PARTS):
        cv2.line(labels, _pt(pose.shoulders[side]), _pt(pose.elbows[side]), upper, arm_w)
        cv2.line(labels, _pt(pose.elbows[side]), _pt(pose.hands[side]), fore, arm_w)
        cv2.circle(labels, _pt(pose.hands[side]), max(arm_w * 2 // 3, 1), hand, -1)
    r = max(round(float(pose.head_radius)), 2)
    head = np.zeros_like(labels)
    cv2.ellipse(head, _pt(pose.head), (int(r * 0.9), int(r * 1.05)), 0, 0, 360, 1, -1)
    columns = np.arange(labels.shape[1])[None, :]
    labels[(head > 0) & (columns < pose.head[0])] = _HEAD_RIGHT
    labels[(head > 0) & (columns >= pose.head[0])] = _HEAD_LEFT


def write_results(folder: Path) -> None:
    """A results store beside the recording, drawn from the synthetic figures' poses."""
    from napari_densepose_gaze.recording import Recording
    from napari_densepose_gaze.store import ResultsStore
    from napari_densepose_gaze.synthetic.scene import figure_poses

    recording = Recording.open(folder)
    width, height = recording.frame_size
    store = ResultsStore.create(ResultsStore.default_folder(folder), n_frames=recording.n_frames, height=height,
                                width=width, metadata={"model": "drawn by docs/make_hits_screenshot.py",
                                                       "recording_folder": str(folder)})
    start_ns = int(recording.info["start_time"])
    for frame, ts in enumerate(recording.frame_timestamps):
        poses = figure_poses((int(ts) - start_ns) / 1e9, width, height)
        labels = np.zeros((height, width), np.uint8)
        persons = np.zeros((height, width), np.uint8)
        detections = []
        # nearer figures (lower on the floor) are drawn last and cover the others, as in the video
        for person, pose in enumerate(sorted(poses, key=lambda pose: pose.hip[1]), start=1):
            mine = np.zeros_like(labels)
            draw_parts(pose, mine)
            labels[mine > 0] = mine[mine > 0]
            persons[mine > 0] = person
            ys, xs = np.nonzero(mine)
            detections.append({"x1 [px]": xs.min(), "y1 [px]": ys.min(), "x2 [px]": xs.max() + 1,
                               "y2 [px]": ys.max() + 1, "score": 0.99})
        store.write_frame(frame, labels, persons, detections)


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_densepose_gaze.synthetic.export import write_recording
    from napari_densepose_gaze.ui.layer_roles import GAZE, role_of

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_recording(tmp, seconds=4.0, size=SIZE, seed=0)
        write_results(folder)
        viewer = napari.Viewer(title="napari-densepose-gaze")
        viewer.window.resize(1700, 900)
        viewer.open(str(folder), plugin=PLUGIN)
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Gaze hits")
        widget.setMinimumWidth(760)  # room for the table's first columns
        worker = widget.compute()
        while worker is not None and widget.tasks.busy:
            QApplication.processEvents()
        assert widget.tables is not None, widget.status.text()
        viewer.layers.selection.active = next(layer for layer in viewer.layers if role_of(layer) == GAZE)
        for _ in range(10):  # let Qt lay out the dock widget before fitting the view to the canvas
            QApplication.processEvents()
        viewer.reset_view()
        # a frame whose gaze rests on a head: the row the screenshot shows selected
        frames = widget.model.frame
        on_head = np.flatnonzero(frames["part id"].isin([_HEAD_RIGHT, _HEAD_LEFT]).to_numpy(dtype=bool)
                                 & (frames["share"].to_numpy(dtype=float) == 1))
        row = int(on_head[len(on_head) // 2])
        # the screenshot is about the hit columns: hide the bookkeeping ones between them and the frame
        for column in ("timestamp [ns]", "valid samples", "processed", "assessed samples"):
            widget.table.setColumnHidden(list(frames.columns).index(column), True)
        widget.table.selectRow(row)
        widget.table.scrollTo(widget.model.index(row, 0), widget.table.ScrollHint.PositionAtCenter)
        for _ in range(10):
            QApplication.processEvents()
        OUT.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(OUT), canvas_only=False, flash=False)
        viewer.close()
    print(OUT)


if __name__ == "__main__":
    main()
