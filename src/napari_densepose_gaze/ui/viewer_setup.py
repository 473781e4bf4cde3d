"""What every viewer that shows a recording gets, whichever of the reader or the widgets comes first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .head_regions import show_head_region_status
from .session import watch_viewer
from .study_keys import bind_study_keys
from .time_display import show_recording_time

if TYPE_CHECKING:
    import napari

__all__ = ["prepare_viewer"]


def prepare_viewer(viewer: napari.Viewer) -> None:
    """Sessions for its layers, the recording time, study shortcuts, the head region under the cursor (each once)."""
    watch_viewer(viewer)
    show_head_region_status(viewer)
    show_recording_time(viewer)
    bind_study_keys(viewer)
