"""What helps a study in the viewer: the recording time, the part legend, the shortcuts between fixations."""

from __future__ import annotations

import shutil

import numpy as np
from napari.utils.key_bindings import KeyBinding

from napari_densepose_gaze.parts import PART_NAMES
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.ui.layer_roles import BODY_PARTS, GAZE
from napari_densepose_gaze.ui.part_legend import PartLegendWidget
from napari_densepose_gaze.ui.session import open_session
from napari_densepose_gaze.ui.study_keys import SHORTCUTS, fixation_frames, step_to
from napari_densepose_gaze.ui.time_display import recording_time_text

PLUGIN = "napari-densepose-gaze"


def with_results(source, tmp_path, frames):
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    recording = Recording.open(folder)
    width, height = recording.frame_size
    store = ResultsStore.create(ResultsStore.default_folder(folder), n_frames=recording.n_frames, height=height,
                                width=width, metadata={"model": "by hand", "recording_folder": str(folder)})
    empty = np.zeros((height, width), np.uint8)
    for frame in frames:
        store.write_frame(frame, empty, empty, [])
    return folder


def test_the_time_text_gives_seconds_from_the_first_frame_and_the_events_around(synthetic_recording):
    recording = Recording.open(synthetic_recording())
    ts = np.asarray(recording.frame_timestamps, dtype=np.int64)
    text = recording_time_text(recording, 30)
    assert text.startswith(f"{(ts[30] - ts[0]) / 1e9:.3f} s (frame 30)")
    events = recording.events.sort_values("timestamp [ns]")
    earlier = events[events["timestamp [ns]"] <= ts[30]]
    if len(earlier):
        assert f'after "{earlier["name"].iloc[-1]}"' in text


def test_the_viewer_shows_the_recording_time_and_calls_its_axis_frame(make_napari_viewer, synthetic_recording):
    viewer = make_napari_viewer()
    folder = synthetic_recording()
    viewer.open(str(folder), plugin=PLUGIN)
    viewer.dims.set_current_step(0, 12)
    overlay = viewer.canvas.overlays["text"]
    recording = open_session(folder).recording
    assert overlay.visible and overlay.text == recording_time_text(recording, 12)
    assert viewer.dims.axis_labels[0] == "frame"
    other = synthetic_recording(seed=1)
    viewer.open(str(other), plugin=PLUGIN)  # two recordings: the text says whose time it is
    second = open_session(other).recording
    assert overlay.text == f"{second.name}: {recording_time_text(second, 12)}"


def test_clicking_a_part_in_the_legend_makes_it_the_brush_label(
    make_napari_viewer, synthetic_recording, tmp_path, layer_of
):
    folder = with_results(synthetic_recording(), tmp_path, range(3))
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    viewer.layers.selection.active = layer_of(viewer, GAZE)
    legend = PartLegendWidget(viewer)
    assert legend.parts.count() == 25 and legend.parts.item(23).text().endswith(PART_NAMES[23])
    legend.parts.itemClicked.emit(legend.parts.item(23))
    parts = layer_of(viewer, BODY_PARTS)
    assert parts.selected_label == 23 and parts.mode == "paint"
    assert viewer.layers.selection.active is parts
    legend.pick(0)
    assert parts.selected_label == 0 and parts.mode == "erase"


def test_the_legend_says_what_to_do_without_results(make_napari_viewer, synthetic_recording):
    viewer = make_napari_viewer()
    viewer.open(str(synthetic_recording()), plugin=PLUGIN)
    legend = PartLegendWidget(viewer)
    assert legend.pick(4) is None and "Open a recording with results" in legend.status.text()


def test_step_to_finds_the_next_and_previous_frame():
    frames = np.array([2, 5, 9])
    assert step_to(frames, 5, True) == 9 and step_to(frames, 5, False) == 2
    assert step_to(frames, 9, True) is None and step_to(frames, 2, False) is None


def test_the_shortcuts_move_by_fixation_and_by_results(make_napari_viewer, synthetic_recording, tmp_path):
    folder = with_results(synthetic_recording(), tmp_path, [3, 14, 40])
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    session = open_session(folder)
    shown = fixation_frames(session)
    table = session.recording.fixation_frames()
    assert 14 in shown  # fixation 2 spans 11..18 and has results on frame 14: shown there
    assert set(shown) >= {int(f) for f in table["start frame"] if f >= 0 and not 11 <= f <= 18} - {14}
    def press(key: str) -> None:
        viewer.keymap[KeyBinding.from_str(key)](viewer)

    assert {KeyBinding.from_str(key) for key in SHORTCUTS} <= set(viewer.keymap)
    viewer.dims.set_current_step(0, 0)
    press("Alt-Right")
    assert viewer.dims.current_step[0] == 3
    press("Alt-Right")
    assert viewer.dims.current_step[0] == 14
    press("Alt-Left")
    assert viewer.dims.current_step[0] == 3
    press("Shift-Alt-Right")
    assert viewer.dims.current_step[0] == 4
    press("Shift-Right")
    assert viewer.dims.current_step[0] == int(shown[shown > 4][0])
