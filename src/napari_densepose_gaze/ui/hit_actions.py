"""What the Gaze hits widget writes: the table shown, every table, the report figures, the overlay video.

Each output is the command line's own function (``densepose-gaze hits``,
``report``, ``render``) run in a thread worker of the widget's
:class:`.WorkerRunner`, so the files are the same byte for byte and napari stays
responsive. The widget asks where (its file dialogs); this module only writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_info

from ..errors import DensePoseGazeError
from ..figures import write_report
from ..hit_export import export_recording_hits
from ..hits import Provenance
from ..hits.schema import with_recording
from ..render import render_overlay

if TYPE_CHECKING:
    import pandas as pd

    from ..hits import HitTables
    from ..store import ResultsStore
    from .session import RecordingSession
    from .worker_runner import WorkerRunner

__all__ = ["HitOutputs"]


class HitOutputs:
    """The outputs of one Gaze hits widget: ``state()`` says what is computed, ``shown()`` the table on screen."""

    def __init__(
        self,
        tasks: WorkerRunner,
        state: Callable[[], tuple[HitTables | None, RecordingSession | None]],
        shown: Callable[[], pd.DataFrame],
        status: Callable[[str], None],
    ) -> None:
        self._tasks = tasks
        self._state = state
        self._shown = shown
        self._status = status

    def default_folder(self) -> Path:
        """Where the file dialogs start: beside the results store (else the home folder)."""
        _, session = self._state()
        store = None if session is None else session.store
        return Path(store.folder).parent if store is not None else Path.home()

    def export_view(self, path: str | Path) -> Path:
        """Write the table shown, in the order shown, as CSV to ``path`` (``.csv`` added when missing).

        Like every exported table it ends with the recording's id and name, so it pools with other recordings'.
        """
        tables, session = self._state()
        if tables is None or session is None or session.store is None:
            raise DensePoseGazeError("Compute the gaze hits first, then export them.")
        path = Path(path).expanduser()
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        table = with_recording(self._shown(), Provenance.of(session.recording, session.store))
        try:
            table.to_csv(path, index=False)
        except OSError as exc:
            raise DensePoseGazeError(f"Cannot write {path}: {exc}. Choose a folder you can write to.") from exc
        return path

    def export_all(self, folder: str | Path) -> Any:
        """Write every table (and the peer tool's files) into ``folder`` in a thread worker; returns the worker."""
        tables, session, store = self._ready()
        folder = Path(folder).expanduser()

        @thread_worker(ignore_errors=True)  # errors go to the runner, not to the event loop
        def work() -> dict[str, Path]:
            return export_recording_hits(tables, folder, session.recording, store)

        worker = work()
        worker.returned.connect(lambda written: self._written(written, folder))
        return self._tasks.start(worker, f"Exporting to {folder} ...")

    def write_report(self, folder: str | Path) -> Any:
        """The report figures (same as ``densepose-gaze report``) into ``folder`` in a thread worker."""
        tables, session, _ = self._ready()
        folder = Path(folder).expanduser()

        @thread_worker(ignore_errors=True)
        def work() -> dict[str, Path]:
            return write_report(tables, folder, name=session.recording.name)

        worker = work()
        worker.returned.connect(lambda written: self._written(written, folder))
        return self._tasks.start(worker, f"Writing the report to {folder} ...")

    def render_video(self, path: str | Path) -> Any:
        """The overlay video (same as ``densepose-gaze render``) to ``path`` in a thread worker."""
        tables, session, store = self._ready()
        recording, relay, path = session.recording, self._tasks.cancellable(), Path(path).expanduser()

        @thread_worker(ignore_errors=True)
        def work() -> Path | None:
            return render_overlay(recording, store, tables, path, progress=relay)

        worker = work()
        worker.returned.connect(lambda out: self._written({"video": out}, path.parent))
        return self._tasks.start(worker, f"Rendering {path.name} ...", progress="Overlay video",
                                 total=max(recording.n_frames, 1))

    def _ready(self) -> tuple[HitTables, RecordingSession, ResultsStore]:
        tables, session = self._state()
        if tables is None or session is None or session.store is None:
            raise DensePoseGazeError("Compute the gaze hits first.")
        if self._tasks.busy:
            raise DensePoseGazeError("Wait until the current task has finished.")
        return tables, session, session.store

    def _written(self, written: dict[str, Path], folder: Path) -> None:
        message = f"Wrote {len(written)} files to {folder}."
        self._status(message)
        show_info(message)
