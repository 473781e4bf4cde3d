"""What every viewer that shows a recording gets, whichever of the reader or the widgets comes first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .session import watch_viewer
from .study_keys import bind_study_keys
from .time_display import show_recording_time

if TYPE_CHECKING:
    import napari

__all__ = ["prepare_viewer"]


def prepare_viewer(viewer: napari.Viewer) -> None:
    """Sessions for its layers, the recording time in its overlay, the study shortcuts (each once per viewer)."""
    watch_viewer(viewer)
    show_recording_time(viewer)
    bind_study_keys(viewer)
