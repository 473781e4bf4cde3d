"""A researcher's whole path through the plugin, in a real viewer, through the widgets they can see.

Open a recording, run DensePose on a few frames, compute the hits, run a few
more frames (the table follows the run), pick a part in the legend and paint it
under the gaze, undo, redo, paint a label that is no part, click a fixation row,
export everything, write the report, start the overlay video and cancel it,
then render it. After each step the table, the files and the layer are checked.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QPushButton

from napari_densepose_gaze.hit_export import FILE_NAMES
from napari_densepose_gaze.parts import PART_NAMES
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.ui import hits_widget
from napari_densepose_gaze.ui.hits_widget import GazeHitsWidget
from napari_densepose_gaze.ui.layer_roles import BODY_PARTS
from napari_densepose_gaze.ui.part_legend import PartLegendWidget
from napari_densepose_gaze.ui.run_widget import RunDensePoseWidget

PLUGIN = "napari-densepose-gaze"
CONFIG = "R_50_FPN_s1x"
# Synthetic weights score almost everything near 1; at input size 64 this keeps a few detections from frame 2 on
# (frames 0 and 1 have none, so they compute fastest). The settings of test_run_widget, so in one pytest session
# the model its runs kept loaded serves here too.
THRESHOLD = 0.995
INPUT_SIZE = 64
WITH_PARTS = 2  # the first frame with body parts
PAINTED = 5  # left foot


def click(qtbot, button) -> None:
    """Click a button as a user can: it is shown and enabled."""
    native = button if isinstance(button, QPushButton) else button.native
    assert native.isVisible() and native.isEnabled(), native.text()
    qtbot.mouseClick(native, Qt.MouseButton.LeftButton)


def wait_idle(qtbot, widget, timeout_ms: int) -> None:
    qtbot.waitUntil(lambda: not widget.tasks.busy, timeout=timeout_ms)


def frame_row(widget: GazeHitsWidget, frame: int) -> pd.Series:
    table = widget.tables.frames
    return table[table["frame"] == frame].iloc[0]


@pytest.fixture
def study(make_napari_viewer, synthetic_recording, tmp_path, parity_checkpoint):
    source = synthetic_recording(seconds=0.5, size=(160, 120))
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(folder), plugin=PLUGIN)
    _, run = viewer.window.add_plugin_dock_widget(PLUGIN, "Run DensePose")
    _, hits = viewer.window.add_plugin_dock_widget(PLUGIN, "Gaze hits")
    legend = PartLegendWidget(viewer)
    viewer.window.add_dock_widget(legend, name="Body parts", area="left")
    assert isinstance(run, RunDensePoseWidget) and isinstance(hits, GazeHitsWidget)
    run.model.value = CONFIG
    run.weights.value = str(parity_checkpoint(CONFIG))
    run.device.value = "cpu"
    run.threshold.value = THRESHOLD
    run.input_size.value = INPUT_SIZE
    return viewer, run, hits, legend, folder


def test_the_whole_study_path(study, qtbot, tmp_path, monkeypatch, layer_of):
    viewer, run, hits, legend, folder = study

    # run DensePose on frames 1..2: the layer appears, the bar moves (after frame 1), the body parts take the brush
    run.first.value, run.last.value = 1, WITH_PARTS
    click(qtbot, run.run_button)
    qtbot.waitUntil(lambda: run.tasks.bar is not None and run.tasks.bar.n > 0, timeout=240_000)
    wait_idle(qtbot, run, 240_000)
    assert run.status.value.startswith("Done: 2 frames"), run.status.value
    parts = layer_of(viewer, BODY_PARTS)
    assert viewer.layers.selection.active is parts
    store = ResultsStore.open(ResultsStore.default_folder(folder))
    assert store.processed_frames().tolist() == [1, 2]
    assert store.labels[WITH_PARTS].max() > 0, "no detections: the test threshold no longer fits the synthetic weights"

    # compute the hits: a row per frame, the two processed
    assert hits.results.currentData() is parts
    click(qtbot, hits.compute_button)
    wait_idle(qtbot, hits, 60_000)
    assert hits.tables is not None, hits.status.text()
    assert hits.tables.frames["processed"].sum() == 2

    # more frames (frame 0; the others are done): the table follows the run without Recompute
    run.first.value = 0
    click(qtbot, run.run_button)
    wait_idle(qtbot, run, 240_000)
    assert run.status.value.startswith("Done: 1 frames"), run.status.value
    qtbot.waitUntil(lambda: hits.tables.frames["processed"].sum() == 3, timeout=10_000)
    assert store.edited_frames().tolist() == []  # frames a run wrote are no hand edits

    # pick a part in the legend and paint it under the gaze of a frame with body parts
    frame = WITH_PARTS
    row = frame_row(hits, frame)
    assert row["processed"] and row["assessed samples"] > 0
    x, y = float(row["gaze x [px]"]), float(row["gaze y [px]"])
    before = row["part id"]
    item = legend.parts.item(PAINTED)  # row 0 is the background
    qtbot.mouseClick(legend.parts.viewport(), Qt.MouseButton.LeftButton,
                     pos=legend.parts.visualItemRect(item).center())
    assert parts.selected_label == PAINTED and parts.mode == "paint"
    viewer.dims.set_current_step(0, frame)
    parts.brush_size = 15
    parts.paint((frame, y, x), parts.selected_label)
    qtbot.waitUntil(lambda: frame_row(hits, frame)["part id"] == PAINTED, timeout=5_000)
    assert store.edited_frames().tolist() == [frame]
    assert hits.model.row(hits.table.currentIndex().row())["frame"] == frame  # the table follows the view

    # undo and redo: table, store and layer follow
    parts.undo()
    qtbot.waitUntil(lambda: frame_row(hits, frame)["part id"] == before, timeout=5_000)
    parts.redo()
    qtbot.waitUntil(lambda: frame_row(hits, frame)["part id"] == PAINTED, timeout=5_000)
    assert ResultsStore.open(store.folder).labels[frame, round(y), round(x)] == PAINTED

    # a label that is no part is refused at the layer
    parts.paint((frame, y, x), 30)
    qtbot.waitUntil(lambda: int(store.labels[frame, round(y), round(x)]) == PAINTED, timeout=5_000)
    qtbot.wait(100)
    assert int(np.asarray(store.labels[frame]).max()) <= 24 and frame_row(hits, frame)["part id"] == PAINTED

    # a fixation row shows a frame with results
    hits.view.setCurrentText("per fixation")
    assessed = hits.model.frame.index[hits.model.frame["assessed samples"] > 0]
    assert len(assessed), "no fixation over the processed frames: the test no longer clicks one"
    viewer.dims.set_current_step(0, 14)
    rect = hits.table.visualRect(hits.model.index(int(assessed[0]), 0))
    qtbot.mouseClick(hits.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert viewer.dims.current_step[0] in store.processed_frames().tolist()
    hits.view.setCurrentText("per frame")

    # export all, as the command line writes it
    monkeypatch.setattr(hits_widget.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "all"))
    click(qtbot, hits.export_all_button)
    wait_idle(qtbot, hits, 60_000)
    exported = pd.read_csv(tmp_path / "all" / FILE_NAMES["frames"])
    assert exported.loc[exported["frame"] == frame, "part"].item() == PART_NAMES[PAINTED]

    # the report
    monkeypatch.setattr(hits_widget.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "report"))
    click(qtbot, hits.report_button)
    wait_idle(qtbot, hits, 60_000)
    assert any(p.suffix == ".png" for p in (tmp_path / "report").iterdir())

    # the overlay video: cancelled, nothing is left; then rendered
    video = tmp_path / "overlay.mp4"
    monkeypatch.setattr(hits_widget.QFileDialog, "getSaveFileName", lambda *a, **k: (str(video), "MP4 video"))
    click(qtbot, hits.render_button)
    click(qtbot, hits.cancel_button)
    wait_idle(qtbot, hits, 60_000)
    assert hits.status.text() == "Cancelled." and not video.exists()
    click(qtbot, hits.render_button)
    wait_idle(qtbot, hits, 120_000)
    assert video.stat().st_size > 0
