"""Dock widget "Recording info": what the selected recording holds and what was odd about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from ..errors import DensePoseGazeError
from ..recording import Recording
from .session import RecordingSession, current_session
from .status_text import ZERO_WIDTH_SPACE, breakable, make_wrapping, set_status
from .viewer_setup import prepare_viewer

if TYPE_CHECKING:
    import napari

NO_RECORDING = "No recording open: drag a recording folder onto napari, or File > Open Sample."
INVALID = "not worn, in blinks, off-frame or NaN"
FIELDS = ("recording", "source", "folder", "frames", "duration", "frame size", "gaze samples", "fixations", "warnings")


def recording_summary(recording: Recording) -> dict[str, str]:
    """The text of each field of the widget for one recording."""
    frame_ts = np.asarray(recording.frame_timestamps, dtype=np.int64)
    n_frames = len(frame_ts)
    duration_s = (frame_ts[-1] - frame_ts[0]) / 1e9 if n_frames > 1 else 0.0
    rate = f", {(n_frames - 1) / duration_s:.1f} fps" if duration_s > 0 else ""
    samples = recording.gaze_samples
    n_valid = int(samples["valid"].sum())
    width, height = recording.frame_size
    warnings = recording.warnings
    return {
        "recording": recording.name,
        "source": recording.source,
        "folder": str(recording.folder),
        "frames": f"{n_frames}{rate}",
        "duration": f"{duration_s:.2f} s",
        "frame size": f"{width} x {height} px",
        "gaze samples": f"{len(samples)} ({n_valid} valid, {len(samples) - n_valid} {INVALID})",
        "fixations": str(len(recording.fixations)),
        "warnings": "\n".join(f"- {w}" for w in warnings) if warnings else "none",
    }


class RecordingInfoWidget(QWidget):
    """Shows name, frames, duration, gaze samples and warnings of the selected layer's recording."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self._viewer = napari_viewer
        self._shown: RecordingSession | None = None

        self._status = make_wrapping(QLabel(NO_RECORDING))
        form = QFormLayout()
        self.fields: dict[str, QLabel] = {}
        for name in FIELDS:
            label = make_wrapping(QLabel())
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[name] = label
            form.addRow(name.capitalize() + ":", label)
        layout = QVBoxLayout(self)
        layout.addWidget(self._status)
        layout.addLayout(form)
        layout.addStretch()

        prepare_viewer(napari_viewer)
        napari_viewer.layers.selection.events.active.connect(self._refresh)
        napari_viewer.layers.events.inserted.connect(self._refresh)
        napari_viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    @property
    def status(self) -> str:
        return self._status.text().replace(ZERO_WIDTH_SPACE, "")

    def _refresh(self, event: object = None) -> None:
        try:
            session = current_session(self._viewer)
        except DensePoseGazeError as err:  # the recording moved or was deleted since it was opened
            self._shown = None
            self._show(str(err), {})
            return
        if session is self._shown and session is not None:
            return
        self._shown = session
        if session is None:
            self._show(NO_RECORDING, {})
            return
        self._show("", recording_summary(session.recording))

    def _show(self, status: str, summary: dict[str, str]) -> None:
        set_status(self._status, status)
        self._status.setVisible(bool(status))
        for name, label in self.fields.items():
            text = summary.get(name, "")
            label.setText(breakable(text) if name == "folder" else text)  # a path is one long unbreakable word
