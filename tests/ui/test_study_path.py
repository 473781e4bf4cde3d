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
THRESHOLD = 0.9995  # synthetic weights score almost everything near 1
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
    run.input_size.value = 96
    return viewer, run, hits, legend, folder


def test_the_whole_study_path(study, qtbot, tmp_path, monkeypatch, layer_of):
    viewer, run, hits, legend, folder = study

    # run DensePose on frames 0..4: the layer appears, the bar moves, the body parts take the brush
    run.last.value = 4
    click(qtbot, run.run_button)
    qtbot.waitUntil(lambda: run.tasks.bar is not None and run.tasks.bar.n > 0, timeout=240_000)
    wait_idle(qtbot, run, 240_000)
    assert run.status.value.startswith("Done: 5 frames"), run.status.value
    parts = layer_of(viewer, BODY_PARTS)
    assert viewer.layers.selection.active is parts
    store = ResultsStore.open(ResultsStore.default_folder(folder))
    assert store.processed_frames().tolist() == list(range(5))

    # compute the hits: a row per frame, the first five processed
    assert hits.results.currentData() is parts
    click(qtbot, hits.compute_button)
    wait_idle(qtbot, hits, 60_000)
    assert hits.tables is not None, hits.status.text()
    assert hits.tables.frames["processed"].sum() == 5

    # more frames: the table follows the run without Recompute
    run.last.value = 9
    click(qtbot, run.run_button)
    wait_idle(qtbot, run, 240_000)
    qtbot.waitUntil(lambda: hits.tables.frames["processed"].sum() == 10, timeout=10_000)
    assert store.edited_frames().tolist() == []  # frames a run wrote are no hand edits

    # pick a part in the legend and paint it under the gaze of a processed frame
    with_gaze = hits.tables.frames.query("processed and `assessed samples` > 0")
    frame = int(with_gaze["frame"].iloc[0])
    x, y = (float(with_gaze[c].iloc[0]) for c in ("gaze x [px]", "gaze y [px]"))
    before = frame_row(hits, frame)["part id"]
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
    if len(assessed):
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
