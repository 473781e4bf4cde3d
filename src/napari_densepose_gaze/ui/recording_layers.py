"""How layers remember which recording they show, so widgets can find it again."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..recording import Recording

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

#: layer.metadata key holding the recording folder (a str) on every layer the reader makes
RECORDING_FOLDER_KEY = "recording folder"
#: layer.metadata key naming the layer's role: "scene video", "gaze" or "fixations"
ROLE_KEY = "recording layer"

# Recordings the reader opened, so widgets reuse them (and their video index and
# decoder) instead of parsing the CSVs and demuxing the video again. A handful
# is enough: one per recording a person works on at once.
_OPENED: OrderedDict[Path, Recording] = OrderedDict()
_KEEP_OPENED = 4


def recording_metadata(folder: Path, role: str) -> dict[str, Any]:
    """The metadata the reader puts on a layer of the recording in ``folder``."""
    return {RECORDING_FOLDER_KEY: str(folder), ROLE_KEY: role}


def recording_folder(layer: Layer | None) -> Path | None:
    """The recording folder a layer was read from, or None for other layers."""
    if layer is None:
        return None
    folder = layer.metadata.get(RECORDING_FOLDER_KEY)
    return Path(folder) if folder else None


def current_recording_folder(viewer: napari.Viewer) -> Path | None:
    """The recording of the selected layer, else of the topmost layer that has one."""
    folder = recording_folder(viewer.layers.selection.active)
    if folder is not None:
        return folder
    for layer in reversed(viewer.layers):
        folder = recording_folder(layer)
        if folder is not None:
            return folder
    return None


def recording_layer(viewer: napari.Viewer, folder: Path, role: str) -> Layer | None:
    """The layer with ``role`` ("scene video", "gaze", "fixations") of the recording in ``folder``."""
    for layer in viewer.layers:
        if recording_folder(layer) == Path(folder) and layer.metadata.get(ROLE_KEY) == role:
            return layer
    return None


def remember_recording(recording: Recording) -> None:
    """Keep ``recording`` for :func:`opened_recording` (the reader calls this)."""
    folder = Path(recording.folder)
    _OPENED[folder] = recording
    _OPENED.move_to_end(folder)
    while len(_OPENED) > _KEEP_OPENED:
        _OPENED.popitem(last=False)


def opened_recording(folder: Path) -> Recording:
    """The recording in ``folder`` as the reader opened it, else opened now.

    Raises DensePoseGazeError when it cannot be opened any more (moved, deleted).
    """
    folder = Path(folder)
    recording = _OPENED.get(folder)
    if recording is None:
        recording = Recording.open(folder)
        remember_recording(recording)
    else:
        _OPENED.move_to_end(folder)
    return recording
