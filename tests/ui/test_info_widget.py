"""The "Recording info" dock widget follows the selected recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from napari._app_model import get_app_model

from napari_densepose_gaze.recording import ExportWarning
from napari_densepose_gaze.ui.info_widget import NO_RECORDING, RecordingInfoWidget
from napari_densepose_gaze.ui.layer_roles import GAZE, SCENE_VIDEO, layer_metadata

PLUGIN = "napari-densepose-gaze"


def plugin_menu_commands(menu_id: str) -> list[str]:
    """Command ids in a menu and its submenus (a plugin with several widgets gets a submenu)."""
    ids: list[str] = []
    for item in get_app_model().menus.get_menu(menu_id):
        if hasattr(item, "command"):
            ids.append(item.command.id)
        elif hasattr(item, "submenu"):
            ids.extend(plugin_menu_commands(item.submenu))
    return ids


def test_widget_docks_from_the_plugins_menu_and_shows_the_opened_recording(
    make_napari_viewer, synthetic_recording
) -> None:
    recording = synthetic_recording()
    viewer = make_napari_viewer()
    assert "napari-densepose-gaze.recording_info" in plugin_menu_commands("napari/plugins")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Recording info")
    assert isinstance(widget, RecordingInfoWidget)
    assert widget.status == NO_RECORDING

    viewer.open(recording, plugin=PLUGIN)

    fields = {name: label.text() for name, label in widget.fields.items()}
    n_samples = len(pd.read_csv(recording / "gaze.csv"))
    assert fields["recording"] == recording.name
    assert fields["source"] == "pupil cloud"
    assert fields["frames"].startswith("60,")
    assert fields["frame size"] == "320 x 240 px"
    assert fields["gaze samples"].startswith(f"{n_samples} (")
    assert fields["fixations"] == str(len(pd.read_csv(recording / "fixations.csv")))
    assert fields["warnings"] == "none"

    viewer.layers.clear()
    assert widget.status == NO_RECORDING
    assert widget.fields["recording"].text() == ""


def test_widget_follows_the_selected_layer_and_lists_warnings(
    make_napari_viewer, synthetic_recording, layer_of
) -> None:
    plain = synthetic_recording()
    odd = synthetic_recording(seed=1, deviations={"no_blinks"})
    viewer = make_napari_viewer()
    widget = RecordingInfoWidget(viewer)
    viewer.open(plain, plugin=PLUGIN)
    with pytest.warns(ExportWarning, match="blinks.csv"):  # napari shows warnings as notifications
        viewer.open(odd, plugin=PLUGIN)

    assert widget.fields["recording"].text() == Path(odd).name
    assert "blinks.csv" in widget.fields["warnings"].text()

    viewer.layers.selection.active = layer_of(viewer, GAZE, plain)
    assert widget.fields["recording"].text() == Path(plain).name
    assert widget.fields["warnings"].text() == "none"


def test_widget_says_why_a_layers_recording_cannot_be_read(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    widget = RecordingInfoWidget(viewer)
    gone = tmp_path / "moved-away-1a2b3c4d"
    viewer.add_image(np.zeros((2, 8, 8)), metadata=layer_metadata(gone, SCENE_VIDEO))

    assert widget.status.startswith(f"Cannot read {gone}: ")
    assert "does not exist" in widget.status
    assert widget.fields["recording"].text() == ""
