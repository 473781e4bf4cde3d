"""Head regions in napari: the status bar names the region under the cursor, a layer shows them, a view lists them.

The results are made by hand: on one frame, a head square under the gaze whose
U, V put a right eye in its top-left corner, the back of the head in its bottom
rows and a nose everywhere else, with the torso below it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_densepose_gaze.face_regions import REGION_NAMES, decode_uv, encode_uv, region_ids
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.ui.head_regions import head_regions_layer
from napari_densepose_gaze.ui.hits_widget import GazeHitsWidget
from napari_densepose_gaze.ui.layer_roles import BODY_PARTS
from napari_densepose_gaze.ui.part_legend import PartLegendWidget
from napari_densepose_gaze.ui.session import find_layer, open_session

PLUGIN = "napari-densepose-gaze"
HALF = 12  # half side of the head square, px
TORSO = 2


def head_frame(width: int, height: int, x: int, y: int):
    """labels, persons, u23, v of a frame with the head square centred on (x, y) and the torso below it."""
    labels = np.zeros((height, width), np.uint8)
    u23 = np.full((height, width), np.nan, np.float32)
    v = np.full((height, width), np.nan, np.float32)
    top, left = y - HALF, x - HALF
    labels[top : y + HALF, left:x] = 23
    labels[top : y + HALF, x : x + HALF] = 24
    u23[top : y + HALF, left : x + HALF], v[top : y + HALF, left : x + HALF] = 0.95, 0.5  # nose
    u23[top : top + 6, left : left + 6], v[top : top + 6, left : left + 6] = 0.795, 0.6  # right eye (on 23)
    u23[y + HALF - 4 : y + HALF, left : x + HALF] = 0.2  # back of the head
    labels[y + HALF : y + 2 * HALF, left : x + HALF] = TORSO
    return labels, (labels > 0).astype(np.uint8), u23, v


@pytest.fixture
def scene(make_napari_viewer, synthetic_recording, tmp_path):
    """A viewer with the recording, its hand-made results (one frame with a head) and the Body parts widget."""
    folder = tmp_path / "recording"
    shutil.copytree(synthetic_recording(), folder)
    recording = Recording.open(folder)
    width, height = recording.frame_size
    per = recording.per_frame_gaze()
    inside = (per["valid samples"] > 0) & per["gaze x [px]"].between(3 * HALF, width - 3 * HALF) \
        & per["gaze y [px]"].between(3 * HALF, height - 3 * HALF)
    row = per[inside].iloc[len(per[inside]) // 2]
    frame, x, y = int(row["frame"]), round(float(row["gaze x [px]"])), round(float(row["gaze y [px]"]))
    store = ResultsStore.create(ResultsStore.default_folder(folder), n_frames=recording.n_frames, height=height,
                                width=width, metadata={"model": "by hand", "recording_folder": str(folder)})
    labels, persons, u23, v = head_frame(width, height, x, y)
    box = [{"x1 [px]": x - HALF, "y1 [px]": y - HALF, "x2 [px]": x + HALF, "y2 [px]": y + 2 * HALF, "score": 0.99}]
    store.write_frame(frame, labels, persons, box, head_uv=(u23, v))
    store.write_frame(frame - 1, np.zeros_like(labels), np.zeros_like(labels), [])
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    legend = PartLegendWidget(viewer)
    viewer.window.add_dock_widget(legend, name="Body parts", area="left")
    parts = find_layer(viewer, BODY_PARTS, open_session(folder))
    viewer.layers.selection.select_only(parts)
    viewer.dims.set_current_step(0, frame)
    # what the regions should be: from U, V as the store keeps them (uint8 codes)
    expected = region_ids(labels, decode_uv(encode_uv(u23)), decode_uv(encode_uv(v)))
    return viewer, legend, folder, frame, (x, y), expected


def status_at(viewer, frame: int, y: float, x: float) -> str:
    """What napari's status bar says with the cursor at a pixel, as its status thread computes it."""
    viewer.mouse_over_canvas = True
    viewer.cursor.position = (frame, y, x)
    status, _ = viewer._calc_status_from_cursor()
    return status["coordinates"]


def test_the_status_bar_names_the_head_region_under_the_cursor_only_on_the_head(scene):
    viewer, _, _, frame, (x, y), _ = scene
    top, left = y - HALF, x - HALF
    assert status_at(viewer, frame, top + 2, left + 2).endswith("; head region: right eye")
    assert status_at(viewer, frame, y, x).endswith("; head region: nose")
    assert status_at(viewer, frame, y + HALF - 1, x).endswith("; head region: back or side of head")
    torso = status_at(viewer, frame, y + HALF + 3, x)
    assert "torso" in torso and "head region" not in torso
    assert "head region" not in status_at(viewer, frame - 1, y, x)  # a frame without a head there


def test_the_check_box_shows_the_regions_of_the_frame_shown_over_the_body_parts(scene):
    viewer, legend, folder, frame, _, expected = scene
    session = open_session(folder)
    parts = find_layer(viewer, BODY_PARTS, session)
    legend.head_regions.setChecked(True)
    layer = head_regions_layer(viewer, session)
    assert viewer.layers.index(layer) == viewer.layers.index(parts) + 1
    assert viewer.layers.selection.active is parts  # brush strokes still go to the body parts
    np.testing.assert_array_equal(layer.data, expected)
    assert {REGION_NAMES[r] for r in np.unique(layer.data) if r} == {"right eye", "nose", "back or side of head"}
    viewer.dims.set_current_step(0, frame - 1)
    assert not layer.data.any()
    viewer.dims.set_current_step(0, frame)
    np.testing.assert_array_equal(layer.data, expected)
    legend.head_regions.setChecked(False)
    assert head_regions_layer(viewer, session) is None and layer not in viewer.layers
    legend.head_regions.setChecked(True)
    viewer.layers.remove(head_regions_layer(viewer, session))  # deleted like any layer: the box follows
    assert not legend.head_regions.isChecked()


def test_painting_the_head_away_updates_the_regions_layer_and_the_status(scene, qtbot):
    viewer, legend, folder, frame, (x, y), _ = scene
    legend.head_regions.setChecked(True)
    layer = head_regions_layer(viewer, open_session(folder))
    assert layer.data[y, x] == 3  # nose
    parts = find_layer(viewer, BODY_PARTS, open_session(folder))
    parts.brush_size = 5
    parts.paint((frame, y, x), TORSO)
    qtbot.waitUntil(lambda: layer.data[y, x] == 0, timeout=5_000)
    assert "head region" not in status_at(viewer, frame, y, x)
    assert status_at(viewer, frame, y - HALF + 2, x - HALF + 2).endswith("; head region: right eye")


def test_the_per_head_region_view_lists_the_regions_looked_at(scene, qtbot):
    viewer, *_ = scene
    widget = GazeHitsWidget(viewer)
    widget.unit.setCurrentText("px")
    widget.radius.setValue(0.0)
    widget.compute()
    qtbot.waitUntil(lambda: not widget.tasks.busy and widget.tables is not None, timeout=60_000)
    widget.view.setCurrentText("per head region")
    shown = widget.model.frame
    assert widget.current_view() == "regions" and len(shown) == len(widget.tables.regions) > 0
    assert "nose" in set(shown["region"]) and shown.loc[shown["region"] == "nose", "on face"].all()
    header = widget.table.horizontalHeader()
    assert [shown.columns[header.logicalIndex(i)] for i in range(2)] == ["person id", "region"]
