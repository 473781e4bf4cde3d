"""Regenerate the study screenshots in docs/images/: a run in progress, a correction with the legend, two recordings.

The recordings are synthetic and the DensePose weights the parity fixtures'
synthetic checkpoint (shared/fixtures/densepose_parity), so the body parts are
blobs, not people: the pictures show the plugin, not the model. Run headless:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_study_screenshots.py [NAME ...]

With names (e.g. ``study_run_progress``), only those images are made: the
run is cancelled once its picture is taken when no later one needs it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
NAMES = ("study_run_progress", "study_correction", "study_legend", "study_two_recordings")
# shared/ lies beside the checkout (the developers' guide)
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "densepose_parity"
CONFIG = "R_50_FPN_s1x"
PLUGIN = "napari-densepose-gaze"


def wait(condition, timeout_s: float = 600.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the viewer did not get there in time")
        QApplication.processEvents()
        time.sleep(0.02)


def settle(viewer, rounds: int = 20) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    import napari

    from napari_densepose_gaze.synthetic.export import write_recording
    from napari_densepose_gaze.ui.layer_roles import BODY_PARTS
    from napari_densepose_gaze.ui.part_legend import PartLegendWidget
    from napari_densepose_gaze.ui.session import find_layer, open_session

    wanted = list(argv if argv else NAMES)
    unknown = sorted(set(wanted) - set(NAMES))
    if unknown:
        print(f"unknown image(s) {unknown}: pick from {list(NAMES)}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="study_screens_"))
    checkpoint = work / "model_final.pkl"
    fixtures = FIXTURES
    subprocess.run([sys.executable, str(fixtures / "make_checkpoint.py"), str(fixtures / f"manifest_{CONFIG}.json"),
                    str(checkpoint)], check=True)
    first = write_recording(work / "a", seconds=3.0, size=(640, 480), seed=0)
    second = write_recording(work / "b", seconds=3.0, size=(640, 480), seed=1)

    viewer = napari.Viewer(title="napari-densepose-gaze")
    viewer.window.resize(1500, 940)
    viewer.open(str(first), plugin=PLUGIN)
    _, hits = viewer.window.add_plugin_dock_widget(PLUGIN, "Gaze hits")
    # added last into the same tabs: the Run DensePose tab is the one in front while it runs
    _, run = viewer.window.add_plugin_dock_widget(PLUGIN, "Run DensePose", tabify=True)
    legend = PartLegendWidget(viewer)
    viewer.window.add_dock_widget(legend, name="Body parts", area="left")
    run.model.value = CONFIG
    run.weights.value = str(checkpoint)
    run.device.value = "cpu"
    run.threshold.value = 0.9995
    run.input_size.value = 128
    window = viewer.window._qt_window
    run_dock = next(dock for name, dock in viewer.window._dock_widgets.items() if name.startswith("Run DensePose"))
    run_dock.raise_()
    settle(viewer)
    viewer.reset_view()

    run.run_button.clicked.emit()
    window._activity_dialog.show()  # napari's progress bars live in the activity panel
    wait(lambda: run.tasks.bar is not None and run.tasks.bar.total and 0.3 < run.tasks.bar.n / run.tasks.bar.total)
    viewer.dims.set_current_step(0, 5)
    settle(viewer)
    viewer.screenshot(str(IMAGES / "study_run_progress.png"), canvas_only=False, flash=False)
    if wanted == ["study_run_progress"]:
        run.cancel_button.clicked.emit()
        wait(lambda: not run.tasks.busy)
        viewer.close()
        print(IMAGES / "study_run_progress.png")
        return 0
    wait(lambda: not run.tasks.busy)

    window._activity_dialog.hide()
    next(dock for name, dock in viewer.window._dock_widgets.items() if name.startswith("Gaze hits")).raise_()
    hits.compute()
    wait(lambda: not hits.tasks.busy)
    frames = hits.tables.frames.query("processed and `assessed samples` > 0")
    row = frames.iloc[len(frames) // 2]
    frame, x, y = int(row["frame"]), float(row["gaze x [px]"]), float(row["gaze y [px]"])
    viewer.dims.set_current_step(0, frame)
    legend.pick(23)
    parts = find_layer(viewer, BODY_PARTS, open_session(first))
    parts.brush_size = 60
    parts.paint((frame, y, x), 23)
    wait(lambda: int(hits.tables.frames.set_index("frame").loc[frame, "part id"]) == 23, 30)
    settle(viewer)
    viewer.screenshot(str(IMAGES / "study_correction.png"), canvas_only=False, flash=False)
    legend.grab().save(str(IMAGES / "study_legend.png"))

    viewer.open(str(second), plugin=PLUGIN)
    settle(viewer)
    viewer.screenshot(str(IMAGES / "study_two_recordings.png"), canvas_only=False, flash=False)
    viewer.close()
    for name in ("study_run_progress", "study_correction", "study_legend", "study_two_recordings"):
        print(IMAGES / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
