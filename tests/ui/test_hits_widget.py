"""The Gaze hits widget in a real viewer, on a synthetic recording with hand-made results."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from napari.utils.colormaps.standardize_color import transform_color
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_densepose_gaze import cli
from napari_densepose_gaze.hit_export import FILE_NAMES
from napari_densepose_gaze.hits import default_radius
from napari_densepose_gaze.hits.colors import NO_PART_COLOR, UNPROCESSED_COLOR
from napari_densepose_gaze.hits.schema import COLUMNS, RECORDING_COLUMNS
from napari_densepose_gaze.parts import PART_NAMES, part_color
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.ui import hits_widget
from napari_densepose_gaze.ui.hits_widget import GazeHitsWidget
from napari_densepose_gaze.ui.layer_roles import BODY_PARTS, GAZE, PERSONS
from napari_densepose_gaze.ui.reader import GAZE_COLOR
from napari_densepose_gaze.ui.session import find_layer, open_session

PLUGIN = "napari-densepose-gaze"
HEAD = 23
HALF = 12  # half side of the hand-made head square around a frame's gaze, px


def gaze_by_frame(folder: Path) -> pd.DataFrame:
    """Frames whose valid gaze lies well inside the image, with its mean position."""
    recording = Recording.open(folder)
    width, height = recording.frame_size
    per = recording.per_frame_gaze()
    x, y = per["gaze x [px]"], per["gaze y [px]"]
    inside = (per["valid samples"] > 0) & x.between(2 * HALF, width - 2 * HALF) & y.between(2 * HALF, height - 2 * HALF)
    return per[inside].set_index("frame")[["gaze x [px]", "gaze y [px]"]]


def copy_recording(source: Path, tmp_path: Path) -> Path:
    folder = tmp_path / source.name
    shutil.copytree(source, folder)  # the results go beside it
    return folder


def write_results(folder: Path) -> tuple[pd.DataFrame, list[int]]:
    """Results with a head square under the gaze of some frames; the last 5 frames stay unprocessed."""
    recording = Recording.open(folder)
    width, height = recording.frame_size
    gaze = gaze_by_frame(folder)
    on_head = list(gaze.index[::4][:6])
    store = ResultsStore.create(ResultsStore.default_folder(folder), n_frames=recording.n_frames, height=height,
                                width=width, metadata={"model": "by hand", "recording_folder": str(folder)})
    for frame in range(recording.n_frames - 5):
        labels = np.zeros((height, width), np.uint8)
        detections = []
        if frame in on_head:
            x, y = (round(float(v)) for v in gaze.loc[frame])
            labels[y - HALF : y + HALF, x - HALF : x + HALF] = HEAD
            detections = [{"x1 [px]": x - HALF, "y1 [px]": y - HALF, "x2 [px]": x + HALF, "y2 [px]": y + HALF,
                           "score": 0.99}]
        store.write_frame(frame, labels, (labels > 0).astype(np.uint8), detections)
    return gaze, on_head


def open_with_widget(make_napari_viewer, folder: Path):
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Gaze hits")  # as the Plugins menu does
    assert isinstance(widget, GazeHitsWidget)
    assert widget.results.currentData() is find_layer(viewer, BODY_PARTS, open_session(folder))
    return viewer, widget


def wait_idle(qtbot, widget, timeout_ms) -> None:
    """Until the widget's worker has finished and the widget has handled it.

    Polling the widget, not connecting to ``worker.finished``: a worker that fails at
    once can finish before a signal spy would be connected.
    """
    qtbot.waitUntil(lambda: not widget.tasks.busy, timeout=timeout_ms)


@pytest.fixture
def scene(make_napari_viewer, synthetic_recording, tmp_path, qtbot):
    """A viewer with the recording, its results and the widget, hits computed with radius 0."""
    folder = copy_recording(synthetic_recording(), tmp_path)
    gaze, on_head = write_results(folder)
    viewer, widget = open_with_widget(make_napari_viewer, folder)
    widget.unit.setCurrentText("px")
    widget.radius.setValue(0.0)  # exact hits: the tests reason about single pixels
    widget.compute()
    wait_idle(qtbot, widget, 60_000)
    assert widget.tables is not None, widget.status.text()
    return viewer, widget, gaze, on_head, folder


@pytest.mark.filterwarnings("ignore:scene_camera.json is missing")
@pytest.mark.parametrize("deviations", [(), ("no_scene_camera",)])
def test_radius_defaults_to_the_device_accuracy_and_degrees_need_intrinsics(
    make_napari_viewer, synthetic_recording, tmp_path, deviations
):
    folder = copy_recording(synthetic_recording(deviations=deviations), tmp_path)
    write_results(folder)
    _, widget = open_with_widget(make_napari_viewer, folder)
    recording = Recording.open(folder)
    expected = default_radius(recording.scene_camera, recording.frame_size)
    assert widget.settings() == expected
    degrees_allowed = widget.unit.model().item(1).isEnabled()
    assert degrees_allowed == (not deviations)
    assert expected.unit == ("deg" if degrees_allowed else "px")


def frame_row(widget: GazeHitsWidget, frame: int) -> pd.Series:
    table = widget.tables.frames
    return table[table["frame"] == frame].iloc[0]


def layer_of(viewer, folder: Path, role: str):
    """The recording's layer with ``role`` (found by role: its name also names the recording)."""
    return find_layer(viewer, role, open_session(folder))


def gaze_layer(viewer, folder: Path):
    return layer_of(viewer, folder, GAZE)


def gaze_color_of(viewer, folder: Path, frame: int) -> np.ndarray:
    layer = gaze_layer(viewer, folder)
    (index,) = np.flatnonzero(np.round(layer.data[:, 0]) == frame)
    return np.asarray(layer.face_color[index])


def test_per_frame_view_shows_the_part_under_each_frames_gaze(scene):
    _, widget, _, on_head, _ = scene
    shown = widget.model.frame
    assert widget.current_view() == "frames" and widget.model.rowCount() == len(widget.tables.frames)
    head_rows = shown[shown["frame"].isin(on_head)]
    assert (head_rows["part"] == PART_NAMES[HEAD]).all()
    other = shown[~shown["frame"].isin(on_head) & shown["processed"] & (shown["assessed samples"] > 0)]
    assert len(other) > 0 and (other["part id"] == 0).all()
    # the name cell carries the part's colour as a swatch
    row = int(np.flatnonzero(shown["frame"].to_numpy() == on_head[0])[0])
    swatch = widget.model.data(widget.model.index(row, shown.columns.get_loc("part")), Qt.ItemDataRole.DecorationRole)
    assert swatch.getRgbF()[:3] == pytest.approx(part_color(HEAD)[:3], abs=1e-3)


def test_views_switch_between_the_tables(scene):
    _, widget, *_ = scene
    for view, table in (("per part", "parts"), ("per fixation", "fixations"), ("per sample", "samples"),
                        ("per head region", "regions")):
        widget.view.setCurrentText(view)
        assert set(widget.model.frame.columns) == set(getattr(widget.tables, table).columns)
        assert list(widget.model.frame.columns[: len(COLUMNS[table])]) == list(COLUMNS[table])
        assert widget.model.rowCount() == len(getattr(widget.tables, table))
    parts = widget.tables.parts.set_index("part id")
    assert parts.loc[HEAD, "samples"] > 0 and parts.drop(HEAD)["samples"].sum() == 0
    # the hand-made head squares have no U, V: their region is unknown, with all the head's hits
    regions = widget.tables.regions
    assert set(regions["region"]) == {"head, region unknown"}
    assert regions["samples"].sum() == parts.loc[HEAD, "samples"]


def test_clicking_a_row_shows_its_frame_with_the_gaze_centred(scene):
    viewer, widget, _, on_head, _ = scene
    target = on_head[-1]
    row = int(np.flatnonzero(widget.model.frame["frame"].to_numpy() == target)[0])
    assert viewer.dims.current_step[0] != target
    widget.table.selectRow(row)
    assert viewer.dims.current_step[0] == target
    expected = frame_row(widget, target)[["gaze y [px]", "gaze x [px]"]].to_numpy(dtype=float)
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], expected)


def test_a_summary_row_goes_to_the_first_hit(scene):
    viewer, widget, _, on_head, _ = scene
    widget.view.setCurrentText("per part")
    row = int(np.flatnonzero(widget.model.frame["part id"].to_numpy() == HEAD)[0])
    widget.table.selectRow(row)
    assert viewer.dims.current_step[0] == on_head[0]


def test_sorting_a_column_reorders_the_rows(scene):
    _, widget, _, on_head, _ = scene
    column = list(widget.model.frame.columns).index("hit samples")
    widget.table.sortByColumn(column, Qt.SortOrder.DescendingOrder)
    values = widget.model.frame["hit samples"].to_numpy()
    assert (np.diff(values) <= 0).all() and values[0] > 0
    assert set(widget.model.frame["frame"].iloc[: len(on_head)]) == set(on_head)


def test_painting_under_the_gaze_updates_the_row_and_ring_without_refresh(scene, qtbot):
    viewer, widget, gaze, on_head, folder = scene
    frame = next(f for f in gaze.index if f not in on_head and frame_row(widget, f)["processed"]
                 and frame_row(widget, f)["assessed samples"] > 0)
    assert frame_row(widget, frame)["part id"] == 0
    np.testing.assert_allclose(gaze_color_of(viewer, folder, frame), NO_PART_COLOR)
    layer = layer_of(viewer, folder, BODY_PARTS)
    viewer.dims.set_current_step(0, frame)
    layer.brush_size = 2 * HALF + 1
    x, y = gaze.loc[frame]
    layer.paint((frame, y, x), 5)  # the left foot, painted over the gaze point
    qtbot.waitUntil(lambda: frame_row(widget, frame)["part id"] == 5, timeout=5_000)
    shown = widget.model.frame
    assert shown.loc[shown["frame"] == frame, "part"].item() == PART_NAMES[5]
    np.testing.assert_allclose(gaze_color_of(viewer, folder, frame), part_color(5))
    # and away again: erasing puts the row back to background
    layer.paint((frame, y, x), 0)
    qtbot.waitUntil(lambda: frame_row(widget, frame)["part id"] == 0, timeout=5_000)


def test_gaze_rings_are_coloured_by_the_hit_part(scene):
    viewer, widget, _, on_head, folder = scene
    np.testing.assert_allclose(gaze_color_of(viewer, folder, on_head[0]), part_color(HEAD))
    unprocessed = widget.tables.frames.query("not processed")["frame"]
    with_ring = [f for f in unprocessed if f in set(np.round(gaze_layer(viewer, folder).data[:, 0]))]
    assert with_ring, "the fixture leaves frames with gaze but without results"
    np.testing.assert_allclose(gaze_color_of(viewer, folder, with_ring[0]), UNPROCESSED_COLOR)


def test_export_view_writes_the_table_shown_with_the_documented_columns(scene, qtbot, tmp_path):
    _, widget, _, on_head, _ = scene
    widget.view.setCurrentText("per frame")
    path = widget.outputs.export_view(tmp_path / "view")
    assert path.name == "view.csv"
    shown = pd.read_csv(path)
    assert list(shown.columns) == [*COLUMNS["frames"], *RECORDING_COLUMNS]  # pools with other recordings'
    assert set(shown["recording id"]) == {widget.recording.recording_id}
    assert len(shown) == len(widget.tables.frames)
    assert set(shown.loc[shown["part id"] == HEAD, "frame"]) == set(on_head)


def press(qtbot, widget: GazeHitsWidget, button, monkeypatch, dialog: str, answer: str) -> None:
    """Click a button the user can see and use, answering its file dialog with ``answer``."""
    assert widget.isAncestorOf(button) and button.isVisibleTo(widget) and button.isEnabled(), button.text()
    monkeypatch.setattr(hits_widget.QFileDialog, dialog, lambda *args, **kwargs: answer)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert widget.tasks.busy, widget.status.text()


def same_files(ours: Path, theirs: Path) -> list[str]:
    names = sorted(p.name for p in ours.iterdir())
    assert names == sorted(p.name for p in theirs.iterdir())
    for name in names:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    return names


def test_export_all_button_writes_what_the_command_line_writes(scene, qtbot, tmp_path, monkeypatch):
    _, widget, _, _, folder = scene
    press(qtbot, widget, widget.export_all_button, monkeypatch, "getExistingDirectory", str(tmp_path / "all"))
    wait_idle(qtbot, widget, 60_000)
    assert widget.status.text().startswith("Wrote "), widget.status.text()

    code = cli.main(["hits", str(folder), "--radius", "0", "--unit", "px", "--output", str(tmp_path / "cli")])
    assert code == 0
    names = same_files(tmp_path / "all", tmp_path / "cli")
    assert {*FILE_NAMES.values(), "densepose.csv"} <= set(names)
    for name, file_name in FILE_NAMES.items():
        table = pd.read_csv(tmp_path / "all" / file_name)
        documented = list(COLUMNS[name])
        assert list(table.columns[: len(documented)]) == documented, name


def test_painting_the_persons_layer_updates_the_person_of_the_row(scene, qtbot):
    viewer, widget, gaze, on_head, folder = scene
    frame = on_head[1]
    assert frame_row(widget, frame)["person"] == 1 and not pd.isna(frame_row(widget, frame)["person id"])
    layer = layer_of(viewer, folder, PERSONS)
    viewer.dims.set_current_step(0, frame)
    layer.brush_size = 4 * HALF
    x, y = gaze.loc[frame]
    layer.paint((frame, y, x), 0)  # the frame has one person: taking them away is the change it allows
    qtbot.waitUntil(lambda: pd.isna(frame_row(widget, frame)["person id"]), timeout=5_000)
    assert frame_row(widget, frame)["part id"] == HEAD  # the part stays


def test_closing_the_results_restores_the_gaze_rings_and_empties_the_table(scene):
    viewer, widget, _, _, folder = scene
    rings = gaze_layer(viewer, folder)
    viewer.layers.remove(layer_of(viewer, folder, BODY_PARTS))
    assert widget.tables is None and widget.model.rowCount() == 0
    assert not widget.compute_button.isEnabled()
    np.testing.assert_allclose(rings.face_color, np.tile(transform_color(GAZE_COLOR)[0], (len(rings.data), 1)))


def decoded(video: Path) -> np.ndarray:
    import av

    with av.open(str(video)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_report_and_overlay_buttons_write_what_the_command_line_writes(scene, qtbot, tmp_path, monkeypatch):
    from napari_densepose_gaze.figures import REPORT_FIGURES

    _, widget, _, _, folder = scene
    hit_options = ["--radius", "0", "--unit", "px"]
    press(qtbot, widget, widget.report_button, monkeypatch, "getExistingDirectory", str(tmp_path / "report"))
    wait_idle(qtbot, widget, 60_000)
    assert cli.main(["report", str(folder), *hit_options, "--output", str(tmp_path / "cli report")]) == 0
    names = same_files(tmp_path / "report", tmp_path / "cli report")
    assert names == sorted(f"{stem}.{ext}" for stem in REPORT_FIGURES.values() for ext in ("png", "svg"))

    overlay = tmp_path / "overlay.mp4"
    press(qtbot, widget, widget.render_button, monkeypatch, "getSaveFileName", (str(overlay), "MP4 video (*.mp4)"))
    wait_idle(qtbot, widget, 120_000)
    cli_overlay = tmp_path / "cli overlay.mp4"
    assert cli.main(["render", str(folder), *hit_options, "--output", str(cli_overlay)]) == 0
    ours = decoded(overlay)
    assert len(ours) == widget.recording.n_frames
    np.testing.assert_array_equal(ours, decoded(cli_overlay))


def test_undo_and_redo_of_a_stroke_update_the_row_and_the_export(scene, qtbot, tmp_path):
    viewer, widget, gaze, on_head, folder = scene
    frame = next(f for f in gaze.index if f not in on_head and frame_row(widget, f)["processed"]
                 and frame_row(widget, f)["assessed samples"] > 0)
    layer = layer_of(viewer, folder, BODY_PARTS)
    viewer.dims.set_current_step(0, frame)
    layer.brush_size = 2 * HALF + 1
    x, y = gaze.loc[frame]
    layer.paint((frame, y, x), 5)
    qtbot.waitUntil(lambda: frame_row(widget, frame)["part id"] == 5, timeout=5_000)
    layer.undo()  # napari sends no paint event on undo
    qtbot.waitUntil(lambda: frame_row(widget, frame)["part id"] == 0, timeout=5_000)
    np.testing.assert_allclose(gaze_color_of(viewer, folder, frame), NO_PART_COLOR)
    exported = pd.read_csv(widget.outputs.export_view(tmp_path / "after undo.csv"))
    assert exported.loc[exported["frame"] == frame, "part id"].item() == 0
    layer.redo()
    qtbot.waitUntil(lambda: frame_row(widget, frame)["part id"] == 5, timeout=5_000)
    np.testing.assert_allclose(gaze_color_of(viewer, folder, frame), part_color(5))


def test_a_label_above_24_is_refused_and_the_table_keeps_working(scene, qtbot):
    viewer, widget, gaze, on_head, folder = scene
    frame = on_head[2]
    layer = layer_of(viewer, folder, BODY_PARTS)
    viewer.dims.set_current_step(0, frame)
    x, y = gaze.loc[frame]
    layer.brush_size = 4 * HALF
    layer.paint((frame, y, x), 30)
    qtbot.waitUntil(lambda: int(widget._store.labels[frame, round(y), round(x)]) == HEAD, timeout=5_000)
    qtbot.wait(100)
    assert frame_row(widget, frame)["part id"] == HEAD and not widget.tasks.busy
    assert int(widget._store.labels[frame].max()) <= 24


def test_a_fixation_row_shows_the_frame_whose_labels_decided_it(make_napari_viewer, synthetic_recording, tmp_path,
                                                                 qtbot):
    """With one frame per fixation processed, the fixation's first frame has no results: show the key frame."""
    folder = copy_recording(synthetic_recording(), tmp_path)
    recording = Recording.open(folder)
    width, height = recording.frame_size
    fixations = recording.fixation_frames()
    fixation = fixations[fixations["start frame"] >= 0].iloc[1]
    key = int(fixation["start frame"] + fixation["end frame"]) // 2
    assert key != fixation["start frame"]
    store = ResultsStore.create(ResultsStore.default_folder(folder), n_frames=recording.n_frames, height=height,
                                width=width, metadata={"model": "by hand", "recording_folder": str(folder)})
    labels = np.full((height, width), HEAD, np.uint8)
    store.write_frame(key, labels, np.ones_like(labels), [])
    viewer, widget = open_with_widget(make_napari_viewer, folder)
    widget.compute()
    wait_idle(qtbot, widget, 60_000)
    widget.view.setCurrentText("per fixation")
    rows = widget.model.rows_where("fixation id", int(fixation["fixation id"]))
    assert widget.model.row(int(rows[0]))["part id"] == HEAD
    viewer.dims.set_current_step(0, 0)
    widget.table.selectRow(int(rows[0]))
    assert viewer.dims.current_step[0] == key


def test_the_table_follows_the_frame_shown_and_headers_explain_themselves(scene):
    viewer, widget, _, on_head, _ = scene
    viewer.dims.set_current_step(0, on_head[3])
    row = widget.table.currentIndex().row()
    assert widget.model.row(row)["frame"] == on_head[3]
    header = widget.table.horizontalHeader()
    shown_first = [widget.model.frame.columns[header.logicalIndex(i)] for i in range(4)]
    assert shown_first == ["frame", "part", "region", "share"]
    column = list(widget.model.frame.columns).index("share")
    tip = widget.model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert tip == f"share: {COLUMNS['frames']['share']}"
    widget.view.setCurrentText("per fixation")
    fixation_row = widget.model.row(widget.table.currentIndex().row())
    assert fixation_row["start frame"] <= on_head[3] <= fixation_row["end frame"] or widget.model.rowCount() == 0


def test_a_long_status_message_does_not_widen_the_window(scene):
    viewer, widget, *_ = scene
    window = viewer.window._qt_window
    window.resize(1200, 800)
    for _ in range(5):
        QApplication.processEvents()
    width = window.width()
    widget.status_text("Cannot download https://dl.fbaipublicfiles.com/" + "x" * 3000 + "/model_final.pkl: offline.")
    for _ in range(5):
        QApplication.processEvents()
    assert window.width() <= width
    assert widget.status.toolTip().startswith("Cannot download https://")
