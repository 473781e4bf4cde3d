"""The "Gaze hits" dock widget: which body part each frame's gaze hit, as a sortable table.

The tables come from :func:`~napari_densepose_gaze.hits.compute_hits`, run in
a thread worker. Afterwards the widget listens to the recording's session: a
change of the "body parts" or "persons" labels re-looks-up only the samples of
the changed frames (:meth:`HitTables.refresh`), so the table and the colours of
the gaze ring follow a correction at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
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
from ..figures import write_report
from ..hit_export import FILE_NAMES, export_recording_hits
from ..hits import HitSettings, HitTables, compute_hits, default_radius
from ..hits.schema import COLUMNS, documented_order
from ..render import render_overlay
from ..store import ResultsStore
from .hit_views import VIEWS, GazeRings, row_target, rows_of_frame
from .layer_roles import BODY_PARTS, GAZE, role_of
from .session import RecordingSession, find_layer, session_of
from .status_text import make_wrapping, set_status
from .table_model import DataFrameModel
from .viewer_setup import prepare_viewer
from .worker_runner import WorkerRunner

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

    from ..recording import Recording

__all__ = ["GazeHitsWidget"]

NO_RESULTS = 'Open a recording with results (a "body parts" layer) first.'
#: per view, the columns that answer "what was looked at" first on screen (exports keep the documented order)
LEADING_COLUMNS = {
    "frames": ["frame", "part", "share", "person id", "distance [px]"],
    "fixations": ["fixation id", "part", "share", "person id", "distance [px]", "start frame"],
    "samples": ["frame", "hit part", "hit person id", "distance [px]"],
    "parts": ["part", "dwell time [s]", "share of worn time"],
    "groups": ["group", "dwell time [s]", "share of worn time"],
    "persons": ["person id", "dwell time [s]", "share of worn time"],
}


class GazeHitsWidget(QWidget):
    """Pick a recording's results, Compute: the gaze hits per frame, fixation, part, group, person or sample."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self._viewer = napari_viewer
        self.tables: HitTables | None = None
        self._session: RecordingSession | None = None
        self._parts_layer: Labels | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._pending: set[int] = set()  # frames changed while a computation ran
        self._rings = GazeRings()
        self.tasks = WorkerRunner(show_status=self.status_text, busy_changed=self._busy_changed,
                                  failure="Gaze hits failed")

        self.results = QComboBox()
        self.results.setToolTip('The "body parts" layer (results) of an opened recording.')
        self.view = QComboBox()
        self.view.addItems(list(VIEWS))
        self.view.setToolTip("Which table: one row per frame, fixation, part, group, person or gaze sample.")
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.0, 10_000.0)
        self.radius.setDecimals(2)
        self.radius.setToolTip("Gaze within this distance of a body part hits it (docs/hits.md).")
        self.unit = QComboBox()
        self.unit.addItems(["px", "deg"])
        self.unit.setToolTip("deg needs the scene camera intrinsics (scene_camera.json).")
        self.compute_button = QPushButton("Compute")
        self.compute_button.setToolTip("Look up the body part under every gaze sample (edits update it live).")
        self.export_view_button = QPushButton("Export CSV…")
        self.export_view_button.setToolTip("The table shown, as CSV (documented column order).")
        self.export_all_button = QPushButton("Export all…")
        self.export_all_button.setToolTip("Every table and the settings, as 'densepose-gaze hits' writes them.")
        self.report_button = QPushButton("Report…")
        self.report_button.setToolTip(
            "Body heatmap and dwell-time bar chart (PNG and SVG), as 'densepose-gaze report'.")
        self.render_button = QPushButton("Render video…")
        self.render_button.setToolTip(
            "Overlay video: parts, gaze circle and the part looked at, as 'densepose-gaze render'.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the computation or the video being rendered (nothing half written).")
        self.status = make_wrapping(QLabel(""))
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
        self.table.setMinimumHeight(220)  # docked under two other widgets, the table still shows ~8 rows
        self._following = False  # selecting the row of the frame shown must not move the view again
        self._lay_out()

        self.results.currentIndexChanged.connect(self._results_changed)
        self.view.currentIndexChanged.connect(self._show_table)
        self.unit.currentIndexChanged.connect(self._settings_changed)
        self.radius.valueChanged.connect(self._settings_changed)
        self.compute_button.clicked.connect(self.compute)
        self.export_view_button.clicked.connect(self._ask_export_view)
        self.export_all_button.clicked.connect(self._ask_export_all)
        self.report_button.clicked.connect(self._ask_report)
        self.render_button.clicked.connect(self._ask_render)
        self.cancel_button.clicked.connect(lambda _checked=False: self.tasks.cancel())
        self.table.selectionModel().currentRowChanged.connect(lambda current, _previous: self.go_to_row(current.row()))
        self.table.clicked.connect(lambda index: self.go_to_row(index.row()))  # again on the current row, too
        prepare_viewer(napari_viewer)
        napari_viewer.layers.events.inserted.connect(self._layers_changed)
        napari_viewer.layers.events.removed.connect(self._layers_changed)
        napari_viewer.dims.events.current_step.connect(self._follow_viewer)
        self._layers_changed()
        self._enable()

    def _lay_out(self) -> None:
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
        for button in (self.report_button, self.render_button, self.cancel_button):
            outputs.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(outputs)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)

    def status_text(self, text: str) -> None:
        set_status(self.status, text)

    @property
    def _store(self) -> ResultsStore | None:
        """The picked recording's results store: its session's one handle (a DensePose run may replace it)."""
        return None if self._session is None else self._session.store

    @property
    def recording(self) -> Recording | None:
        """The recording whose results are picked, or None."""
        return None if self._session is None else self._session.recording

    # ------------------------------------------------------------ picking the results
    def _layers_changed(self, _event: Any = None) -> None:
        layers = [layer for layer in self._viewer.layers if role_of(layer) == BODY_PARTS]
        current = self.results.currentData()
        self.results.blockSignals(True)
        self.results.clear()
        for layer in layers:
            session = _session_or_none(layer)
            name = session.recording.name if session is not None else "?"
            self.results.addItem(f"{name} ({layer.name})", layer)
        index = next((i for i, layer in enumerate(layers) if layer is current), len(layers) - 1)
        self.results.setCurrentIndex(index)
        self.results.blockSignals(False)
        if self.results.currentData() is not self._parts_layer:
            self._results_changed()

    def _results_changed(self, _index: int = -1) -> None:
        self._unbind()
        layer = self.results.currentData()
        if layer is None:
            self.status_text(NO_RESULTS)
            self._enable()
            return
        try:
            self._bind(layer)
        except DensePoseGazeError as exc:
            self._unbind()
            self.status_text(str(exc))
            show_error(str(exc))
        self._enable()

    def _bind(self, layer: Labels) -> None:
        session = session_of(layer)
        if session is None:
            raise DensePoseGazeError(f'The layer "{layer.name}" does not say which recording it belongs to: '
                                     "open the recording folder with napari-densepose-gaze.")
        if session.store is None:
            raise DensePoseGazeError(f"{session.recording.name} has no results at {session.store_folder}: "
                                     "run DensePose on it first.")
        self._session, self._parts_layer = session, layer
        self._unsubscribe = session.on_labels_changed(self._labels_changed)
        recording = session.recording
        has_intrinsics = bool(recording.scene_camera) and "camera_matrix" in recording.scene_camera
        self.unit.model().item(1).setEnabled(has_intrinsics)
        self._set_settings(default_radius(recording.scene_camera, recording.frame_size))
        self.status_text(f"{recording.name}: press Compute.")

    def _unbind(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._rings.restore(self._viewer.layers)
        self.tables = None
        self._pending.clear()
        self._session = self._parts_layer = None
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
            self.status_text("The hit radius changed: press Compute to apply it.")

    def _settings_or_none(self) -> HitSettings | None:
        try:
            return self.settings()
        except DensePoseGazeError:
            return None

    # ------------------------------------------------------------ computing
    def compute(self, _checked: bool = False) -> Any:
        """Compute every table in a thread worker; returns the worker (None if nothing can be computed)."""
        if self.tasks.busy:
            return None
        if self._session is None or self._store is None:
            show_error(NO_RESULTS)
            return None
        try:
            settings = self.settings()
        except DensePoseGazeError as exc:
            show_error(str(exc))
            return None
        recording, store, relay = self._session.recording, self._store, self.tasks.cancellable()
        self._pending.clear()  # the computation reads every frame as it is now; later changes are applied after it

        @thread_worker(ignore_errors=True)  # errors go to the runner, not to the event loop
        def work() -> HitTables:
            return compute_hits(recording, store, settings, progress=relay)

        worker = work()
        session = self._session
        worker.returned.connect(lambda tables: self._on_computed(tables, session))
        return self.tasks.start(worker, "Computing gaze hits ...", progress="Gaze hits",
                                total=max(recording.n_frames, 1))

    def _on_computed(self, tables: HitTables, session: RecordingSession) -> None:
        if self._session is not session:  # other results were picked (or these closed) meanwhile
            return
        self.tables = tables
        self._show_table()
        self._color_gaze()
        n_frames = int(tables.frames["processed"].sum())
        self.status_text(f"{len(tables.samples)} gaze samples, {n_frames} frames with results; "
                            f"radius {tables.settings.radius:g} {tables.settings.unit}.")

    # ------------------------------------------------------------ label changes
    def _labels_changed(self, frames: list[int]) -> None:
        """The session's report of changed frames (after the change is in the store)."""
        self._pending.update(frames)
        self._apply_pending()

    def _apply_pending(self) -> None:
        if self.tables is None or self._store is None or self.tasks.busy or not self._pending:
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
        self.status_text(f"Updated frame{'s' if len(frames) > 1 else ''} {shown} (edited, or written by a run).")

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
            self.model.set_frame(documented_order(view, getattr(self.tables, view)), tips=COLUMNS[view])
            if list(self.model.frame.columns) != columns:  # a new view, not an edit: fit the columns once
                self._put_leading_columns_first(view)
                self.table.resizeColumnsToContents()
            self._follow_viewer()
        self._enable()

    def _put_leading_columns_first(self, view: str) -> None:
        header = self.table.horizontalHeader()
        columns = list(self.model.frame.columns)
        order = [c for c in LEADING_COLUMNS.get(view, []) if c in columns]
        order += [c for c in columns if c not in order]
        for visual, name in enumerate(order):
            header.moveSection(header.visualIndex(columns.index(name)), visual)

    def _follow_viewer(self, _event: Any = None) -> None:
        """Select the row of the frame (or fixation) shown, without moving the view."""
        if self.tables is None or self.model.rowCount() == 0:
            return
        frame = int(self._viewer.dims.current_step[0])
        rows = rows_of_frame(self.current_view(), frame, self.model.frame)
        current = self.table.currentIndex().row()
        if len(rows) == 0 or current in rows:
            return
        self._following = True
        try:
            self.table.selectRow(int(rows[0]))
            self.table.scrollTo(self.model.index(int(rows[0]), 0))
        finally:
            self._following = False

    def go_to_row(self, row: int) -> None:
        """Show the frame of a table row with its gaze point centred.

        A fixation row shows the frame whose labels decided its part, a summary
        row (part, group, person) its first hit.
        """
        if self._following or self.tables is None or not 0 <= row < self.model.rowCount():
            return
        target = row_target(self.current_view(), self.model.row(row), self.tables)
        if target is None:
            return
        frame, y, x = target
        self._viewer.dims.set_current_step(0, frame)
        if math.isfinite(y) and math.isfinite(x):
            # napari 0.9 moved the camera to viewer.scene; a 2-tuple sets the displayed (y, x)
            scene = getattr(self._viewer, "scene", None)
            camera = scene.camera if scene is not None else self._viewer.camera
            camera.center = (y, x)

    def _color_gaze(self) -> None:
        if self.tables is not None and self._session is not None:
            self._rings.color(find_layer(self._viewer, GAZE, self._session), self.tables.frames)

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
        tables, session, store = self._ready()
        folder = Path(folder).expanduser()

        @thread_worker(ignore_errors=True)
        def work() -> dict[str, Path]:
            return export_recording_hits(tables, folder, session.recording, store)

        worker = work()
        worker.returned.connect(lambda written: self._exported(written, folder))
        return self.tasks.start(worker, f"Exporting to {folder} ...")

    def write_report(self, folder: str | Path) -> Any:
        """The report figures (same as ``densepose-gaze report``) into ``folder`` in a thread worker."""
        tables, session, _ = self._ready()
        folder = Path(folder).expanduser()

        @thread_worker(ignore_errors=True)
        def work() -> dict[str, Path]:
            return write_report(tables, folder, name=session.recording.name)

        worker = work()
        worker.returned.connect(lambda written: self._exported(written, folder))
        return self.tasks.start(worker, f"Writing the report to {folder} ...")

    def render_video(self, path: str | Path) -> Any:
        """The overlay video (same as ``densepose-gaze render``) to ``path`` in a thread worker."""
        tables, session, store = self._ready()
        recording, relay, path = session.recording, self.tasks.cancellable(), Path(path).expanduser()

        @thread_worker(ignore_errors=True)
        def work() -> Path | None:
            return render_overlay(recording, store, tables, path, progress=relay)

        worker = work()
        worker.returned.connect(lambda out: self._exported({"video": out}, path.parent))
        return self.tasks.start(worker, f"Rendering {path.name} ...", progress="Overlay video",
                                total=max(recording.n_frames, 1))

    def _ready(self) -> tuple[HitTables, RecordingSession, ResultsStore]:
        if self.tables is None or self._session is None or self._store is None:
            raise DensePoseGazeError("Compute the gaze hits first.")
        if self.tasks.busy:
            raise DensePoseGazeError("Wait until the current task has finished.")
        return self.tables, self._session, self._store

    def _exported(self, written: dict[str, Path], folder: Path) -> None:
        message = f"Wrote {len(written)} files to {folder}."
        self.status_text(message)
        show_info(message)

    def _default_export_folder(self) -> Path:
        return Path(self._store.folder).parent if self._store is not None else Path.home()

    def _ask_export_view(self, _checked: bool = False) -> None:
        name = FILE_NAMES[self.current_view()]
        path, _ = QFileDialog.getSaveFileName(self, "Export the table shown",
                                              str(self._default_export_folder() / name), "CSV files (*.csv)")
        if path:
            _report_errors(lambda: self.status_text(f"Wrote {self.export_view(path)}."))

    def _ask_export_all(self, _checked: bool = False) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export every gaze hit table into",
                                                  str(self._default_export_folder()))
        if folder:
            _report_errors(lambda: self.export_all(folder))

    def _ask_report(self, _checked: bool = False) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Write the report figures into",
                                                  str(self._default_export_folder()))
        if folder:
            _report_errors(lambda: self.write_report(folder))

    def _ask_render(self, _checked: bool = False) -> None:
        recording = self.recording
        name = f"{recording.name}_overlay.mp4" if recording is not None else "overlay.mp4"
        path, _ = QFileDialog.getSaveFileName(self, "Write the overlay video",
                                              str(self._default_export_folder() / name), "MP4 video (*.mp4)")
        if path:
            _report_errors(lambda: self.render_video(path))

    def _busy_changed(self) -> None:
        self._enable()
        self._apply_pending()  # changes made while a task ran

    def _enable(self) -> None:
        idle = not self.tasks.busy
        have_tables = idle and self.tables is not None
        self.compute_button.setEnabled(idle and self._store is not None)
        self.compute_button.setText("Compute" if self.tables is None else "Recompute")
        for button in (self.export_view_button, self.export_all_button, self.report_button, self.render_button):
            button.setEnabled(have_tables)
        self.cancel_button.setEnabled(not idle)


def _session_or_none(layer: Any) -> RecordingSession | None:
    try:
        return session_of(layer)
    except DensePoseGazeError:
        return None


def _report_errors(action: Callable[[], Any]) -> None:
    """Run a button's action; a user's error goes to a notification."""
    try:
        action()
    except DensePoseGazeError as exc:
        show_error(str(exc))
