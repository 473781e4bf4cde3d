"""The dialog that asks which recordings of an export root to open."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout

__all__ = ["RecordingChooser", "choose_recordings"]


class RecordingChooser(QDialog):
    """Lists the recordings of an export root, all ticked; Open opens the ticked ones, Open all every one."""

    def __init__(self, root: Path, recordings: Sequence[Path], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open recordings")
        self._recordings = list(recordings)
        self.list = QListWidget()
        for folder in self._recordings:
            item = QListWidgetItem(folder.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            item.setToolTip(str(folder))
            self.list.addItem(item)
        self.buttons = QDialogButtonBox()
        self.open_button = self.buttons.addButton("Open", QDialogButtonBox.ButtonRole.AcceptRole)
        self.open_all_button = self.buttons.addButton("Open all", QDialogButtonBox.ButtonRole.YesRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.open_button.setToolTip("Open the ticked recordings, each with its own layers.")
        self.open_all_button.setToolTip(f"Open all {len(self._recordings)} recordings.")
        self.open_button.clicked.connect(self.accept)
        self.open_all_button.clicked.connect(self._open_all)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        text = QLabel(f"{root} holds {len(self._recordings)} recordings: tick those to open.")
        text.setWordWrap(True)
        layout.addWidget(text)
        layout.addWidget(self.list)
        layout.addWidget(self.buttons)

    def _open_all(self) -> None:
        for row in range(self.list.count()):
            self.list.item(row).setCheckState(Qt.CheckState.Checked)
        self.accept()

    def chosen(self) -> list[Path]:
        """The ticked recordings, in the order listed."""
        return [folder for row, folder in enumerate(self._recordings)
                if self.list.item(row).checkState() == Qt.CheckState.Checked]


def choose_recordings(root: Path, recordings: Sequence[Path]) -> list[Path]:
    """The recordings of ``root`` the user picks (none when cancelled); all of them without a GUI to ask in."""
    app = QApplication.instance()
    if app is None:
        return list(recordings)
    dialog = RecordingChooser(root, recordings, parent=app.activeWindow())
    return dialog.chosen() if dialog.exec() == QDialog.DialogCode.Accepted else []
