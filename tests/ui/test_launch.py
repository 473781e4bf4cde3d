"""``python -m napari_densepose_gaze.ui``: a viewer ready to look at a recording."""

from __future__ import annotations

import numpy as np

from napari_densepose_gaze.ui.info_widget import RecordingInfoWidget
from napari_densepose_gaze.ui.launch import show_recording
from napari_densepose_gaze.ui.layer_roles import FIXATIONS, GAZE


def test_show_recording_docks_info_and_starts_inside_a_fixation(
    make_napari_viewer, synthetic_recording, layer_of
) -> None:
    recording = synthetic_recording()
    viewer = make_napari_viewer()
    show_recording(viewer, recording)

    assert viewer.layers.selection.active is layer_of(viewer, GAZE)
    docked = [w for w in viewer.window.dock_widgets.values() if isinstance(w, RecordingInfoWidget)]
    assert len(docked) == 1 and docked[0].fields["recording"].text() == recording.name
    fixations = layer_of(viewer, FIXATIONS)
    step = viewer.dims.current_step[0]
    assert step in set(fixations.data[:, 0].astype(int))
    assert step in set(np.asarray(layer_of(viewer, GAZE).data[:, 0], int))
