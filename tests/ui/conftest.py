"""Fixtures of the viewer tests: finding a recording's layer the way the plugin does, by role."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from napari_densepose_gaze.ui.layer_roles import recording_folder_of, role_of


@pytest.fixture
def layer_of() -> Callable[..., object]:
    """``layer_of(viewer, role, recording_folder=None)``: the one layer with that role (of that recording).

    Layer names carry the recording (``gaze [<recording>]``), so tests never look layers up by name.
    """

    def find(viewer, role: str, recording_folder: Path | None = None):
        found = [layer for layer in viewer.layers if role_of(layer) == role
                 and (recording_folder is None or recording_folder_of(layer) == Path(recording_folder))]
        assert len(found) == 1, f"{len(found)} layers with role {role!r}: {[layer.name for layer in viewer.layers]}"
        return found[0]

    return find
