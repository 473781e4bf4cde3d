"""A read-only Qt table model over a pandas DataFrame, and its view: the hit tables of the Gaze hits widget."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QTableView

from ..parts import part_color

__all__ = ["DataFrameModel", "cell_text", "sortable_row_view"]

# name columns whose cells get a swatch of the part colour, with the id column holding the part
_SWATCHES = {"part": "part id", "hit part": "hit part id"}


def cell_text(value: Any) -> str:
    """Cell text: empty for missing values, floats short but exact enough to read."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return str(value)


class DataFrameModel(QAbstractTableModel):
    """A read-only Qt table over a pandas DataFrame, sorted with pandas (fast for 100k rows)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._frame = pd.DataFrame()
        self._columns: list[np.ndarray] = []
        self._numeric: list[bool] = []
        self._sort: tuple[str, bool] | None = None  # (column, ascending)
        self._tips: dict[str, str] = {}

    @property
    def frame(self) -> pd.DataFrame:
        """The table in the order shown."""
        return self._frame

    def set_frame(self, frame: pd.DataFrame, tips: dict[str, str] | None = None) -> None:
        """Show ``frame``, keeping the current sort; a same-shaped table keeps the view's scroll position.

        ``tips``: column -> what it means, shown as the header's tooltip.
        """
        if tips is not None:
            self._tips = dict(tips)
        if self._sort is not None and self._sort[0] not in frame.columns:
            self._sort = None
        same_layout = list(frame.columns) == list(self._frame.columns) and len(frame) == len(self._frame)
        if same_layout:
            self.layoutAboutToBeChanged.emit()
            self._set(frame)
            self.layoutChanged.emit()
            self.dataChanged.emit(self.index(0, 0), self.index(max(len(frame) - 1, 0), max(len(frame.columns) - 1, 0)))
        else:
            self.beginResetModel()
            self._set(frame)
            self.endResetModel()

    def _set(self, frame: pd.DataFrame) -> None:
        if self._sort is not None:
            column, ascending = self._sort
            frame = frame.sort_values(column, ascending=ascending, kind="stable", na_position="last")
        self._frame = frame.reset_index(drop=True)
        # extension arrays (Int64, string) index slowly one cell at a time: turn them into object arrays once
        self._numeric = [pd.api.types.is_numeric_dtype(self._frame[c].dtype)
                         and not pd.api.types.is_bool_dtype(self._frame[c].dtype) for c in self._frame.columns]
        self._columns = [
            self._frame[c].to_numpy(dtype=object, na_value=None)
            if isinstance(self._frame[c].dtype, pd.api.extensions.ExtensionDtype)
            else self._frame[c].to_numpy()
            for c in self._frame.columns
        ]

    def row(self, row: int) -> pd.Series:
        return self._frame.iloc[row]

    def rows_where(self, column: str, value: Any) -> np.ndarray:
        """Row numbers (in the order shown) whose ``column`` equals ``value``; none if there is no such column."""
        if column not in self._frame.columns:
            return np.zeros(0, np.int64)
        equal = (self._frame[column] == value).astype("boolean").fillna(False)
        return np.flatnonzero(equal.to_numpy(dtype=bool))

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt API)
        return 0 if parent.isValid() else len(self._frame)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt API)
        return 0 if parent.isValid() else len(self._frame.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(self._columns[index.column()][index.row()])
        if role == Qt.ItemDataRole.DecorationRole:
            id_column = _SWATCHES.get(self._frame.columns[index.column()])
            if id_column in self._frame.columns:
                part = self._columns[self._frame.columns.get_loc(id_column)][index.row()]
                if part is not None and not pd.isna(part) and int(part) > 0:
                    return QColor.fromRgbF(*part_color(int(part)))
        if role == Qt.ItemDataRole.TextAlignmentRole and self._numeric[index.column()]:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if role == Qt.ItemDataRole.ToolTipRole and horizontal and 0 <= section < len(self._frame.columns):
            name = str(self._frame.columns[section])
            return f"{name}: {self._tips[name]}" if name in self._tips else name
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if horizontal:
            return str(self._frame.columns[section])
        return str(section + 1)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self._frame.columns):
            return
        self.layoutAboutToBeChanged.emit()
        self._sort = (self._frame.columns[column], order == Qt.SortOrder.AscendingOrder)
        self._set(self._frame)
        self.layoutChanged.emit()


def sortable_row_view(model: DataFrameModel) -> QTableView:
    """A read-only table view of ``model``: sorted by a header click (none at first), one row selected at a time."""
    table = QTableView()
    table.setModel(model)
    table.setSortingEnabled(True)
    table.horizontalHeader().setSortIndicatorShown(True)
    table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setDefaultSectionSize(22)
    return table
