"""The "Gaze hits" dock widget: which body part each frame's gaze hit, as a sortable table.

The tables come from :func:`~napari_densepose_gaze.hits.compute_hits`, run in
a thread worker. Afterwards the widget listens to the "body parts" and
"persons" layers of the recording: a committed paint stroke re-looks-up only
the samples of the painted frames (:meth:`HitTables.refresh`), so the table and
the colours of the gaze ring follow a correction at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from napari.qt.threading import thread_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..errors import DensePoseGazeError
from ..hit_export import COLUMNS, FILE_NAMES, export_recording_hits
from ..figures import write_report
from ..render import render_overlay
from ..hits import HitSettings, HitTables, compute_hits, default_radius
from ..parts import part_color
from ..recording import Recording
from ..store import ResultsStore
from .recording_layers import (
    RECORDING_FOLDER_KEY,
    ROLE_KEY,
    opened_recording,
    recording_layer,
)
from .progress_relay import ProgressRelay
from .result_layers import BODY_PARTS, PERSONS, STORE_FOLDER_KEY, find_result_layer
from .store_layer import edited_frames_of

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

__all__ = [
    "NO_PART_COLOR",
    "UNPROCESSED_COLOR",
    "VIEWS",
    "DataFrameModel",
    "GazeHitsWidget",
    "documented_order",
    "gaze_colors",
]

#: view name in the selector -> table of :class:`HitTables`
VIEWS = {
    "per frame": "frames",
    "per fixation": "fixations",
    "per part": "parts",
    "per group": "groups",
    "per person": "persons",
    "per sample": "samples",
}
#: gaze ring on a processed frame whose gaze hit no part, and on a frame without results
NO_PART_COLOR = (1.0, 1.0, 1.0, 1.0)
UNPROCESSED_COLOR = (0.55, 0.55, 0.55, 1.0)
RING_OUTLINE = "black"
# name columns whose cells get a swatch of the part colour, with the id column holding the part
_SWATCHES = {"part": "part id", "hit part": "hit part id"}


def _display(value: Any) -> str:
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

    @property
    def frame(self) -> pd.DataFrame:
        """The table in the order shown."""
        return self._frame

    def set_frame(self, frame: pd.DataFrame) -> None:
        """Show ``frame``, keeping the current sort; a same-shaped table keeps the view's scroll position."""
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

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt API)
        return 0 if parent.isValid() else len(self._frame)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt API)
        return 0 if parent.isValid() else len(self._frame.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(self._columns[index.column()][index.row()])
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
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self._frame.columns[section])
        return str(section + 1)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self._frame.columns):
            return
        self.layoutAboutToBeChanged.emit()
        self._sort = (self._frame.columns[column], order == Qt.SortOrder.AscendingOrder)
        self._set(self._frame)
        self.layoutChanged.emit()


class GazeHitsWidget(QWidget):
    """Pick a recording's results, Compute: the gaze hits per frame, fixation, part, group, person or sample."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self._viewer = napari_viewer
        self.tables: HitTables | None = None
        self._recording: Recording | None = None
        self._store: ResultsStore | None = None
        self._parts_layer: Labels | None = None
        self._hooks: list[tuple[Any, Any]] = []  # (layer, paint callback)
        self._pending: set[int] = set()
        self._worker: Any = None
        self._bar: Any = None
        self._gaze_colors: tuple | None = None  # (gaze layer, its face, border colours and widths before ours)

        self.results = QComboBox()
        self.results.setToolTip('The "body parts" layer (results) of an opened recording.')
        self.view = QComboBox()
        self.view.addItems(list(VIEWS))
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.0, 10_000.0)
        self.radius.setDecimals(2)
        self.radius.setToolTip("Gaze within this distance of a body part hits it (docs/hits.md).")
        self.unit = QComboBox()
        self.unit.addItems(["px", "deg"])
        self.unit.setToolTip("deg needs the scene camera intrinsics (scene_camera.json).")
        self.compute_button = QPushButton("Compute")
        self.export_view_button = QPushButton("Export CSV…")
        self.export_all_button = QPushButton("Export all…")
        self.report_button = QPushButton("Report…")
        self.report_button.setToolTip("Body heatmap and dwell-time bar chart (PNG and SVG), as 'densepose-gaze report'.")
        self.render_button = QPushButton("Render video…")
        self.render_button.setToolTip("Overlay video: parts, gaze circle and the part looked at, as 'densepose-gaze render'.")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.model = DataFrameModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicatorShown(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(22)

        radius_row = QHBoxLayout()
        radius_row.addWidget(self.radius, 1)
        radius_row.addWidget(self.unit)
        form = QFormLayout()
        form.addRow("results", self.results)
        form.addRow("hit radius", radius_row)
        form.addRow("view", self.view)
        buttons = QHBoxLayout()
        for button in (self.compute_button, self.export_view_button, self.export_all_button):
            buttons.addWidget(button)
        outputs = QHBoxLayout()
        for button in (self.report_button, self.render_button):
            outputs.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)

        self._relay = ProgressRelay(self)
        self._relay.changed.connect(self._on_progress)
        # paint events fire before napari writes a zarr-backed stroke: apply edits on the next event-loop turn
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self._apply_pending)

        self.results.currentIndexChanged.connect(self._results_changed)
        self.view.currentIndexChanged.connect(self._show_table)
        self.unit.currentIndexChanged.connect(self._settings_changed)
        self.radius.valueChanged.connect(self._settings_changed)
        self.compute_button.clicked.connect(self.compute)
        self.export_view_button.clicked.connect(self._ask_export_view)
        self.export_all_button.clicked.connect(self._ask_export_all)
        self.report_button.clicked.connect(self._ask_report)
        self.render_button.clicked.connect(self._ask_render)
        self.table.selectionModel().currentRowChanged.connect(lambda current, _previous: self.go_to_row(current.row()))
        self.table.clicked.connect(lambda index: self.go_to_row(index.row()))  # again on the current row, too
        napari_viewer.layers.events.inserted.connect(self._layers_changed)
        napari_viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        self._enable()

    # ------------------------------------------------------------ picking the results
    def _result_layers(self) -> list[Any]:
        return [layer for layer in self._viewer.layers
                if layer.metadata.get(ROLE_KEY) == BODY_PARTS and layer.metadata.get(STORE_FOLDER_KEY)]

    def _layers_changed(self, _event: Any = None) -> None:
        layers = self._result_layers()
        current = self.results.currentData()
        self.results.blockSignals(True)
        self.results.clear()
        for layer in layers:
            folder = Path(layer.metadata.get(RECORDING_FOLDER_KEY, ""))
            self.results.addItem(f"{folder.name} ({layer.name})", layer)
        index = next((i for i, layer in enumerate(layers) if layer is current), len(layers) - 1)
        self.results.setCurrentIndex(index)
        self.results.blockSignals(False)
        if self.results.currentData() is not self._parts_layer:
            self._results_changed()
        else:  # e.g. the "persons" layer arrived after "body parts"
            self._watch_edits()

    def _results_changed(self, _index: int = -1) -> None:
        self._unbind()
        layer = self.results.currentData()
        if layer is None:
            self.status.setText('Open a recording with results (a "body parts" layer) first.')
            self._enable()
            return
        try:
            self._bind(layer)
        except DensePoseGazeError as exc:
            self._unbind()
            self.status.setText(str(exc))
            show_error(str(exc))
        self._enable()

    def _bind(self, layer: Labels) -> None:
        folder = layer.metadata.get(RECORDING_FOLDER_KEY)
        if not folder:
            raise DensePoseGazeError(f'The layer "{layer.name}" does not say which recording it belongs to: '
                                     "open the recording folder with napari-densepose-gaze.")
        self._recording = opened_recording(Path(folder))
        self._store = ResultsStore.open(layer.metadata[STORE_FOLDER_KEY], mode="r")
        self._parts_layer = layer
        self._watch_edits()
        has_intrinsics = bool(self._recording.scene_camera) and "camera_matrix" in self._recording.scene_camera
        self.unit.model().item(1).setEnabled(has_intrinsics)
        default = default_radius(self._recording.scene_camera, self._recording.frame_size)
        self._set_settings(default)
        self.status.setText(f"{self._recording.name}: press Compute.")

    def _watch_edits(self) -> None:
        """Listen to paint strokes on the results' "body parts" and "persons" layers (each hooked once)."""
        if self._parts_layer is None or self._recording is None:
            return
        persons = find_result_layer(self._viewer, self._recording.folder, PERSONS)
        hooked = [layer for layer, _ in self._hooks]
        for layer in (self._parts_layer, persons):
            if layer is not None and not any(layer is h for h in hooked):
                layer.events.paint.connect(self._on_paint)
                self._hooks.append((layer, self._on_paint))

    def _unbind(self) -> None:
        for layer, callback in self._hooks:
            layer.events.paint.disconnect(callback)
        self._hooks = []
        self._restore_gaze_colors()
        self.tables = None
        self._pending.clear()
        self._recording = None
        self._store = None
        self._parts_layer = None
        self.model.set_frame(pd.DataFrame())

    # ------------------------------------------------------------ settings
    def settings(self) -> HitSettings:
        """The hit settings as the widget shows them (raises DensePoseGazeError for impossible values)."""
        return HitSettings(float(self.radius.value()), self.unit.currentText())

    def _set_settings(self, settings: HitSettings) -> None:
        self.unit.blockSignals(True)
        self.radius.blockSignals(True)
        self.unit.setCurrentText(settings.unit)
        self.radius.setValue(settings.radius)
        self.unit.blockSignals(False)
        self.radius.blockSignals(False)

    def _settings_changed(self, _value: Any = None) -> None:
        if self.tables is not None and self._settings_or_none() != self.tables.settings:
            self.status.setText("The hit radius changed: press Compute to apply it.")

    def _settings_or_none(self) -> HitSettings | None:
        try:
            return self.settings()
        except DensePoseGazeError:
            return None

    # ------------------------------------------------------------ computing
    def compute(self, _checked: bool = False) -> Any:
        """Compute every table in a thread worker; returns the worker (None if nothing can be computed)."""
        if self._worker is not None:
            return self._worker
        if self._recording is None or self._store is None:
            show_error('Open a recording with results (a "body parts" layer) first.')
            return None
        try:
            settings = self.settings()
        except DensePoseGazeError as exc:
            show_error(str(exc))
            return None
        recording, store, relay = self._recording, self._store, self._relay
        self._pending.clear()  # the computation reads every frame as it is now; later strokes are applied after it

        @thread_worker(ignore_errors=True)  # errors go to _on_error, not to the event loop
        def work() -> HitTables:
            return compute_hits(recording, store, settings, progress=relay)

        worker = work()
        worker.returned.connect(lambda tables: self._on_computed(tables, store))
        self._bar = napari_progress(total=max(recording.n_frames, 1), desc="Gaze hits")
        self._start(worker, "Computing gaze hits ...")
        return worker

    def _on_progress(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.total = max(total, 1)
            self._bar.n = done
            self._bar.refresh()

    def _on_computed(self, tables: HitTables, store: ResultsStore) -> None:
        if self._store is not store:  # other results were picked (or these closed) meanwhile
            return
        self.tables = tables
        self._show_table()
        self._color_gaze()
        n_frames = int(tables.frames["processed"].sum())
        self.status.setText(f"{len(tables.samples)} gaze samples, {n_frames} frames with results; "
                            f"radius {tables.settings.radius:g} {tables.settings.unit}.")
        if self._pending:  # painted while computing
            self._flush_timer.start()

    # ------------------------------------------------------------ live edits
    def _on_paint(self, event: Any) -> None:
        self._pending.update(edited_frames_of(event.value))
        self._flush_timer.start()

    def _apply_pending(self) -> None:
        if self.tables is None or self._store is None or self._worker is not None or not self._pending:
            return  # before the first computation there is nothing to update; a running one picks them up
        frames = sorted(self._pending)
        self._pending.clear()
        try:
            self.tables = self.tables.refresh(self._store, frames)
        except DensePoseGazeError as exc:
            show_error(str(exc))
            return
        self._show_table()
        self._color_gaze()
        shown = ", ".join(map(str, frames[:5])) + (" ..." if len(frames) > 5 else "")
        self.status.setText(f"Updated after an edit of frame{'s' if len(frames) > 1 else ''} {shown}.")

    # ------------------------------------------------------------ showing
    def current_view(self) -> str:
        """The table shown: a key of :data:`VIEWS`' values (``frames``, ``fixations``, ...)."""
        return VIEWS[self.view.currentText()]

    def _show_table(self, _index: int = -1) -> None:
        if self.tables is None:
            self.model.set_frame(pd.DataFrame())
        else:
            view = self.current_view()
            columns = list(self.model.frame.columns)
            self.model.set_frame(documented_order(view, getattr(self.tables, view)))
            if list(self.model.frame.columns) != columns:  # a new view, not an edit: fit the columns once
                self.table.resizeColumnsToContents()
        self._enable()

    def go_to_row(self, row: int) -> None:
        """Show the frame of a table row (a summary row: its first hit) with its gaze point centred."""
        if not 0 <= row < self.model.rowCount():
            return
        target = self._target(self.model.row(row))
        if target is None:
            return
        frame, y, x = target
        self._viewer.dims.set_current_step(0, frame)
        if math.isfinite(y) and math.isfinite(x):
            # napari 0.9 moved the camera to viewer.scene; a 2-tuple sets the displayed (y, x)
            scene = getattr(self._viewer, "scene", None)
            camera = scene.camera if scene is not None else self._viewer.camera
            camera.center = (y, x)

    def _target(self, row: pd.Series) -> tuple[int, float, float] | None:
        """(frame, y, x) a row points at, or None (no frame)."""
        view = self.current_view()
        if view in ("frames", "samples"):
            frame, x, y = row["frame"], row["gaze x [px]"], row["gaze y [px]"]
        elif view == "fixations":
            frame, x, y = row["start frame"], row.get("fixation x [px]", np.nan), row.get("fixation y [px]", np.nan)
        else:
            first = row["first hit timestamp [ns]"]
            if self.tables is None or pd.isna(first):
                return None
            samples = self.tables.samples
            hits = samples[samples["assessed"].to_numpy(dtype=bool) & (samples["hit part id"].fillna(0) > 0)]
            if hits.empty:
                return None
            # nearest rather than equal: the summary's timestamp may have passed through float64
            ts = hits["timestamp [ns]"].to_numpy(dtype=np.int64)
            hit = hits.iloc[int(np.argmin(np.abs(ts - int(first))))]
            frame, x, y = hit["frame"], hit["gaze x [px]"], hit["gaze y [px]"]
        if pd.isna(frame) or int(frame) < 0:
            return None
        return int(frame), _as_float(y), _as_float(x)

    def _color_gaze(self) -> None:
        """Colour the gaze ring of each frame by the part its gaze hit (per-frame majority)."""
        if self.tables is None or self._recording is None:
            return
        layer = recording_layer(self._viewer, self._recording.folder, "gaze")
        if layer is None or len(layer.data) == 0:
            return
        if self._gaze_colors is None or self._gaze_colors[0] is not layer:
            self._gaze_colors = (layer, np.array(layer.face_color, copy=True), np.array(layer.border_color, copy=True),
                                 np.array(layer.border_width, copy=True))
            # a ring in the colour of the part it lies on would vanish: outline it
            layer.border_color = RING_OUTLINE
            layer.border_width = 0.12
        layer.face_color = gaze_colors(self.tables.frames, layer.data[:, 0])

    def _restore_gaze_colors(self) -> None:
        if self._gaze_colors is None:
            return
        layer, faces, borders, widths = self._gaze_colors
        self._gaze_colors = None
        if layer in self._viewer.layers and len(layer.data) == len(faces):
            layer.face_color = faces
            layer.border_color = borders
            layer.border_width = widths

    # ------------------------------------------------------------ export
    def export_view(self, path: str | Path) -> Path:
        """Write the table shown, in the order shown, as CSV to ``path``."""
        if self.tables is None:
            raise DensePoseGazeError("Compute the gaze hits first, then export them.")
        path = Path(path).expanduser()
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        try:
            self.model.frame.to_csv(path, index=False)
        except OSError as exc:
            raise DensePoseGazeError(f"Cannot write {path}: {exc}. Choose a folder you can write to.") from exc
        return path

    def export_all(self, folder: str | Path) -> Any:
        """Write every table (and the peer tool's files) into ``folder`` in a thread worker; returns the worker."""
        tables, recording = self._ready_tables()
        store = self._store

        @thread_worker(ignore_errors=True)
        def work() -> dict[str, Path]:
            return export_recording_hits(tables, folder, recording, store)

        worker = work()
        worker.returned.connect(lambda written: self._exported(written, Path(folder)))
        self._start(worker, f"Exporting to {folder} ...")
        return worker

    def write_report(self, folder: str | Path) -> Any:
        """The report figures (same as ``densepose-gaze report``) into ``folder`` in a thread worker."""
        tables, recording = self._ready_tables()
        folder = Path(folder).expanduser()

        @thread_worker(ignore_errors=True)
        def work() -> dict[str, Path]:
            return write_report(tables, folder, name=recording.name)

        worker = work()
        worker.returned.connect(lambda written: self._exported(written, folder))
        self._start(worker, f"Writing the report to {folder} ...")
        return worker

    def render_video(self, path: str | Path) -> Any:
        """The overlay video (same as ``densepose-gaze render``) to ``path`` in a thread worker."""
        tables, recording = self._ready_tables()
        store, relay, path = self._store, self._relay, Path(path).expanduser()

        @thread_worker(ignore_errors=True)
        def work() -> Path | None:
            return render_overlay(recording, store, tables, path,
                                  progress=relay)

        worker = work()
        worker.returned.connect(lambda out: self._exported({"video": out}, path.parent))
        self._bar = napari_progress(total=max(recording.n_frames, 1), desc="Overlay video")
        self._start(worker, f"Rendering {path.name} ...")
        return worker

    def _ready_tables(self) -> tuple[HitTables, Recording]:
        if self.tables is None or self._recording is None or self._store is None:
            raise DensePoseGazeError("Compute the gaze hits first.")
        if self._worker is not None:
            raise DensePoseGazeError("Wait until the current task has finished.")
        return self.tables, self._recording

    def _ask_report(self, _checked: bool = False) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Write the report figures into", str(self._default_export_folder()))
        if folder:
            self._call(self.write_report, folder)

    def _ask_render(self, _checked: bool = False) -> None:
        name = f"{self._recording.name}_overlay.mp4" if self._recording is not None else "overlay.mp4"
        path, _ = QFileDialog.getSaveFileName(self, "Write the overlay video", str(self._default_export_folder() / name),
                                              "MP4 video (*.mp4)")
        if path:
            self._call(self.render_video, path)

    def _call(self, action, *args: Any) -> None:
        try:
            action(*args)
        except DensePoseGazeError as exc:
            show_error(str(exc))

    def _exported(self, written: dict[str, Path], folder: Path) -> None:
        message = f"Wrote {len(written)} files to {folder}."
        self.status.setText(message)
        show_info(message)

    def _default_export_folder(self) -> Path:
        return Path(self._store.folder).parent if self._store is not None else Path.home()

    def _ask_export_view(self, _checked: bool = False) -> None:
        name = FILE_NAMES[self.current_view()]
        path, _ = QFileDialog.getSaveFileName(self, "Export the table shown", str(self._default_export_folder() / name),
                                              "CSV files (*.csv)")
        if not path:
            return
        try:
            written = self.export_view(path)
        except DensePoseGazeError as exc:
            show_error(str(exc))
            return
        self.status.setText(f"Wrote {written}.")

    def _ask_export_all(self, _checked: bool = False) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export every gaze hit table into", str(self._default_export_folder()))
        if not folder:
            return
        try:
            self.export_all(folder)
        except DensePoseGazeError as exc:
            show_error(str(exc))

    # ------------------------------------------------------------ workers
    def _start(self, worker: Any, status: str) -> None:
        self._worker = worker
        self.status.setText(status)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._enable()
        worker.start()

    def _on_error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, DensePoseGazeError) else f"Gaze hits failed: {exc!r}"
        self.status.setText(message)
        show_error(message)

    def _on_finished(self) -> None:
        self._worker = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._enable()
        if self._pending:
            self._flush_timer.start()

    def _enable(self) -> None:
        idle = self._worker is None
        self.compute_button.setEnabled(idle and self._store is not None)
        self.compute_button.setText("Compute" if self.tables is None else "Recompute")
        self.export_view_button.setEnabled(idle and self.tables is not None)
        self.export_all_button.setEnabled(idle and self.tables is not None)
        self.report_button.setEnabled(idle and self.tables is not None)
        self.render_button.setEnabled(idle and self.tables is not None)


def _as_float(value: Any) -> float:
    return float("nan") if pd.isna(value) else float(value)


def documented_order(view: str, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the documented columns first, in the order of the exported CSVs (docs/hits.md)."""
    documented = [c for c in COLUMNS[view] if c in table]
    return table[documented + [c for c in table.columns if c not in COLUMNS[view]]]


def gaze_colors(frames: pd.DataFrame, point_frames: Iterable[float]) -> np.ndarray:
    """RGBA per gaze point: the colour of its frame's hit part; white without a part, grey without results."""
    point_frames = np.asarray(point_frames, dtype=np.float64).round().astype(np.int64)
    n = int(max(point_frames.max(initial=-1), frames["frame"].max() if len(frames) else -1)) + 1
    lut = np.tile(np.asarray(UNPROCESSED_COLOR), (max(n, 0), 1))
    processed = frames[frames["processed"].to_numpy(dtype=bool)]
    lut[processed["frame"].to_numpy(dtype=np.int64)] = NO_PART_COLOR
    parts = processed["part id"].fillna(0).to_numpy(dtype=np.int64)
    on_part = parts > 0
    if on_part.any():
        lut[processed["frame"].to_numpy(dtype=np.int64)[on_part]] = [part_color(int(p)) for p in parts[on_part]]
    return lut[point_frames] if len(point_frames) else np.zeros((0, 4))

