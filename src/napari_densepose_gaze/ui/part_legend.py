"""The "Body parts" dock: the 24 parts with their colours and names; a click makes one the brush label.

A check box shows the head regions (eyes, nose, mouth, ...) of the frame shown
over the body parts (:mod:`.head_regions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QSignalBlocker, Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QCheckBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ..errors import DensePoseGazeError
from ..parts import BACKGROUND, PART_GROUPS, PART_NAMES, part_color
from .head_regions import hide_head_regions, show_head_region_status, show_head_regions
from .layer_roles import BODY_PARTS, HEAD_REGIONS, role_of
from .session import current_session, find_layer
from .status_text import make_wrapping, set_status
from .viewer_setup import prepare_viewer

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

__all__ = ["PartLegendWidget"]

HINT = 'Click a part to paint it on the "body parts" layer (0 erases).'


def _swatch(part: int) -> QIcon:
    pixmap = QPixmap(14, 14)
    color = QColor.fromRgbF(*part_color(part)) if part != BACKGROUND else QColor(0, 0, 0, 0)
    pixmap.fill(color)
    return QIcon(pixmap)


class PartLegendWidget(QWidget):
    """Part colours and names, as in every layer, table and figure; clicking one picks it for the brush."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self._viewer = napari_viewer
        self.parts = QListWidget()
        self.parts.setToolTip(HINT)
        self.parts.setMinimumHeight(180)
        for part in [BACKGROUND, *sorted(PART_NAMES)]:
            name = "background (erase)" if part == BACKGROUND else PART_NAMES[part]
            item = QListWidgetItem(_swatch(part), f"{part:2d}  {name}")
            item.setData(Qt.ItemDataRole.UserRole, part)
            if part != BACKGROUND:
                item.setToolTip(f"{name} ({PART_GROUPS[part]})")
            self.parts.addItem(item)
        self.head_regions = QCheckBox("show head regions")
        self.head_regions.setToolTip("Eyes, nose, mouth, rest of face and back of the head of the frame shown, "
                                     "over the body parts (from the stored head U, V; docs/hits.md).")
        self.status = make_wrapping(QLabel(HINT))
        layout = QVBoxLayout(self)
        layout.addWidget(self.parts, 1)
        layout.addWidget(self.head_regions)
        layout.addWidget(self.status)
        self.parts.itemClicked.connect(lambda item: self.pick(int(item.data(Qt.ItemDataRole.UserRole))))
        self.head_regions.toggled.connect(self.show_head_regions)
        prepare_viewer(napari_viewer)
        show_head_region_status(napari_viewer)
        napari_viewer.layers.events.inserted.connect(self._layers_changed)
        napari_viewer.layers.events.removed.connect(self._layers_changed)

    def body_parts_layer(self) -> Labels | None:
        """The "body parts" layer of the selected recording, or None."""
        try:
            session = current_session(self._viewer)
        except DensePoseGazeError:
            return None
        return find_layer(self._viewer, BODY_PARTS, session) if session is not None else None

    def pick(self, part: int) -> Any:
        """Make ``part`` the brush label of the "body parts" layer, select that layer and its brush."""
        layer = self.body_parts_layer()
        if layer is None:
            set_status(self.status, 'Open a recording with results first: there is no "body parts" layer.')
            return None
        layer.selected_label = part
        self._viewer.layers.selection.select_only(layer)
        if layer.editable:
            layer.mode = "erase" if part == BACKGROUND else "paint"
        name = "background" if part == BACKGROUND else PART_NAMES[part]
        set_status(self.status, f"Painting {part} ({name}) on {layer.name}.")
        return layer

    def show_head_regions(self, shown: bool) -> None:
        """Add or remove the head-regions layer of the selected recording."""
        try:
            session = current_session(self._viewer)
            if session is None:
                raise DensePoseGazeError("Open a recording with results first: there are no head regions to show.")
            if shown:
                show_head_regions(self._viewer, session)
                set_status(self.status, "Head regions of the frame shown, over the body parts.")
            else:
                hide_head_regions(self._viewer, session)
        except DensePoseGazeError as exc:
            set_status(self.status, str(exc))
        self._layers_changed()

    def _layers_changed(self, _event: Any = None) -> None:
        """Tick the box while a head-regions layer is shown (a user may delete it like any layer)."""
        shown = any(role_of(layer) == HEAD_REGIONS for layer in self._viewer.layers)
        with QSignalBlocker(self.head_regions):
            self.head_regions.setChecked(shown)
