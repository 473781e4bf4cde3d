"""The "Gaze hits" dock widget: which body part each frame's gaze hit, as a sortable table.

The tables come from :func:`~napari_densepose_gaze.hits.compute_hits`, run in
a thread worker. Afterwards the widget listens to the recording's session: a
change of the "body parts" or "persons" labels re-looks-up only the samples of
the changed frames (:meth:`HitTables.refresh`), so the table and the colours of
the gaze ring follow a correction at once. What it writes (CSV, report,
overlay video) is :mod:`.hit_actions`; how the views show is :mod:`.hit_views`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QSignalBlocker
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..errors import DensePoseGazeError
from ..hit_export import FILE_NAMES
from ..hits import HitSettings, HitTables, compute_hits, default_radius
from ..hits.schema import COLUMNS, documented_order
from ..store import ResultsStore
from .head_regions import show_head_region_status
from .hit_actions import HitOutputs
from .hit_views import VIEWS, GazeRings, leading_order, row_target, rows_of_frame, show_target
from .layer_roles import BODY_PARTS, GAZE, role_of
from .session import RecordingSession, find_layer, session_of
from .status_text import make_wrapping, set_status
from .table_model import DataFrameModel, sortable_row_view
from .viewer_setup import prepare_viewer
from .worker_runner import WorkerRunner

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

    from ..recording import Recording

__all__ = ["GazeHitsWidget"]

NO_RESULTS = 'Open a recording with results (a "body parts" layer) first.'


class GazeHitsWidget(QWidget):
    """Pick a recording's results, Compute: the gaze hits, shown in the views of :data:`.hit_views.VIEWS`."""

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
        self.outputs = HitOutputs(self.tasks, lambda: (self.tables, self._session), lambda: self.model.frame,
                                  self.status_text)

        self.results = QComboBox()
        self.results.setToolTip('The "body parts" layer (results) of an opened recording.')
        # layer names carry the recording's name: the choice must not widen the dock to fit them
        self.results.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.results.setMinimumContentsLength(16)
        self.view = QComboBox()
        self.view.addItems(list(VIEWS))
        self.view.setToolTip("Which table: one row per frame, fixation, part, group, person, head region "
                             "or gaze sample.")
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.0, 10_000.0)
        self.radius.setDecimals(2)
        self.radius.setToolTip("Gaze within this distance of a body part hits it (docs/hits.md).")
        self.unit = QComboBox()
        self.unit.addItems(["px", "deg"])
        self.unit.setToolTip("deg needs the scene camera intrinsics (scene_camera.json).")
        self.compute_button = _button("Compute", self.compute,
                                      "Look up the body part under every gaze sample (edits update it live).")
        self.export_view_button = _button("Export CSV…", self._ask_export_view,
                                          "The table shown, as CSV (documented column order).")
        self.export_all_button = _button("Export all…", lambda _checked=False: self._ask_folder(
            "Export every gaze hit table into", self.outputs.export_all),
                                         "Every table and the settings, as 'densepose-gaze hits' writes them.")
        self.report_button = _button("Report…", lambda _checked=False: self._ask_folder(
            "Write the report figures into", self.outputs.write_report),
                                     "Body heatmap and dwell-time bar chart (PNG and SVG), as 'densepose-gaze report'.")
        self.render_button = _button("Render video…", self._ask_render,
                                     "Overlay video: parts, gaze circle and the part looked at, as "
                                     "'densepose-gaze render'.")
        self.cancel_button = _button("Cancel", lambda _checked=False: self.tasks.cancel(),
                                     "Stop the computation or the video being rendered (nothing half written).")
        self.status = make_wrapping(QLabel(""))
        self.model = DataFrameModel(self)
        self.table = sortable_row_view(self.model)
        self.table.setMinimumHeight(220)  # docked under two other widgets, the table still shows ~8 rows
        self._following = False  # selecting the row of the frame shown must not move the view again
        self._lay_out()

        self.results.currentIndexChanged.connect(self._results_changed)
        self.view.currentIndexChanged.connect(self._show_table)
        self.unit.currentIndexChanged.connect(self._settings_changed)
        self.radius.valueChanged.connect(self._settings_changed)
        self.table.selectionModel().currentRowChanged.connect(lambda current, _previous: self.go_to_row(current.row()))
        self.table.clicked.connect(lambda index: self.go_to_row(index.row()))  # again on the current row, too
        prepare_viewer(napari_viewer)
        show_head_region_status(napari_viewer)
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
        with QSignalBlocker(self.results):
            self.results.clear()
            for layer in layers:
                session = _session_or_none(layer)
                # the recording's name: the layer's own name repeats it (layer_roles.layer_name)
                self.results.addItem(session.recording.name if session is not None else layer.name, layer)
            self.results.setCurrentIndex(next((i for i, layer in enumerate(layers) if layer is current),
                                              len(layers) - 1))
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
        with QSignalBlocker(self.unit), QSignalBlocker(self.radius):
            self.unit.setCurrentText(settings.unit)
            self.radius.setValue(settings.radius)

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
        notes = "".join(f" {note}" for note in tables.notes)
        self.status_text(f"{len(tables.samples)} gaze samples, {n_frames} frames with results; "
                         f"radius {tables.settings.radius:g} {tables.settings.unit}.{notes}")
        for note in tables.notes:
            show_warning(note)

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
        for visual, name in enumerate(leading_order(view, columns)):
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
        show_target(self._viewer, target)

    def _color_gaze(self) -> None:
        if self.tables is not None and self._session is not None:
            self._rings.color(find_layer(self._viewer, GAZE, self._session), self.tables.frames)

    # ------------------------------------------------------------ outputs (written by .hit_actions)
    def _ask_export_view(self, _checked: bool = False) -> None:
        self._ask_file("Export the table shown", FILE_NAMES[self.current_view()], "CSV files (*.csv)",
                       lambda path: self.status_text(f"Wrote {self.outputs.export_view(path)}."))

    def _ask_render(self, _checked: bool = False) -> None:
        name = f"{self.recording.name}_overlay.mp4" if self.recording is not None else "overlay.mp4"
        self._ask_file("Write the overlay video", name, "MP4 video (*.mp4)", self.outputs.render_video)

    def _ask_file(self, title: str, name: str, kinds: str, write: Callable[[str], Any]) -> None:
        path, _ = QFileDialog.getSaveFileName(self, title, str(self.outputs.default_folder() / name), kinds)
        if path:
            _report_errors(lambda: write(path))

    def _ask_folder(self, title: str, write: Callable[[str], Any]) -> None:
        folder = QFileDialog.getExistingDirectory(self, title, str(self.outputs.default_folder()))
        if folder:
            _report_errors(lambda: write(folder))

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


def _button(text: str, clicked: Callable[..., Any], tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(clicked)
    return button


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
