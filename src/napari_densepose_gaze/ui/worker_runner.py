"""One background task at a time for a dock widget: its thread worker, progress bar, status and errors.

Both dock widgets run their slow work (inference, hit tables, exports, video)
in a napari thread worker and show it the same way; :class:`WorkerRunner` is
that shared part, held by each widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal

from ..errors import DensePoseGazeError

__all__ = ["ProgressRelay", "TaskCancelled", "WorkerRunner"]

_OPENING = object()  # a progress bar being made


class ProgressRelay(QObject):
    """Carries ``progress(done, total)`` calls made in a worker thread to the GUI thread (a queued signal).

    Core functions report progress through plain callbacks; connecting ``changed``
    to a widget's slot makes those calls safe to show in Qt.
    """

    changed = Signal(int, int)

    def __call__(self, done: int, total: int) -> None:
        self.changed.emit(int(done), int(total))


class TaskCancelled(Exception):
    """Raised in a worker by :meth:`WorkerRunner.cancellable` progress once the user cancelled the task."""


class WorkerRunner:
    """Starts a widget's workers one at a time, shows their progress in napari and their errors to the user.

    ``show_status(text)`` puts a line in the widget; ``busy_changed()`` lets it
    enable or disable its buttons (read :attr:`busy`); ``failure`` opens the
    message of an unexpected error ("DensePose run failed").
    """

    def __init__(self, *, show_status: Callable[[str], None], busy_changed: Callable[[], None], failure: str) -> None:
        self._show_status = show_status
        self._busy_changed = busy_changed
        self._failure = failure
        self._worker: Any = None
        self._bar: Any = None
        self._bar_description: str | None = None
        self._latest: tuple[int, int] | None = None  # the last progress call not shown yet
        self._moving = False
        self._cancel_requested = False
        #: pass this as the ``progress`` callback of core functions running in the worker
        self.relay = ProgressRelay()
        self.relay.changed.connect(self.progress)

    @property
    def busy(self) -> bool:
        """Whether a worker is running (or has not been handled as finished yet)."""
        return self._worker is not None

    @property
    def bar(self) -> Any:
        """The napari progress bar shown now, or None."""
        return None if self._bar is _OPENING else self._bar

    def start(self, worker: Any, status: str, *, progress: str | None = None, total: int | None = None) -> Any:
        """Run ``worker`` (connect its ``returned``/``yielded`` first); returns it.

        With ``progress``, a bar of that name shows the relay's calls: opened now
        when ``total`` is known, else at the first call.
        """
        if self.busy:
            raise DensePoseGazeError("Wait until the current task has finished.")
        self._worker = worker
        self._cancel_requested = False
        self._show_status(status)
        if progress is not None and total is not None:
            self.open_bar(progress, total)
        elif progress is not None:
            self._open_later(progress)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._busy_changed()
        worker.start()
        return worker

    def cancellable(self) -> Callable[[int, int], None]:
        """A ``progress`` callback for core functions that stops the task at its next call after :meth:`cancel`.

        Core functions write through temporary files, so a task stopped this way
        leaves nothing half written.
        """

        def report(done: int, total: int) -> None:
            if self._cancel_requested:
                raise TaskCancelled
            self.relay(done, total)

        return report

    def cancel(self) -> None:
        """Stop the running task at its next progress report (see :meth:`cancellable`)."""
        if self.busy:
            self._cancel_requested = True
            self._show_status("Cancelling ...")

    def open_bar(self, description: str, total: int | None) -> None:
        """Show a progress bar (replacing the one shown); ``total`` None: of unknown length."""
        self.close_bar()
        # Making a napari progress bar lets Qt deliver the next queued progress call
        # before it returns: mark the bar as on its way so that call only waits.
        self._bar = _OPENING
        self._bar = napari_progress(total=total or None, desc=description)

    def _open_later(self, description: str) -> None:
        self.close_bar()
        self._bar_description = description

    def progress(self, done: int, total: int = 0) -> None:
        """Move the bar to ``done`` of ``total`` (0: total unknown or unchanged)."""
        self._latest = (done, total)
        if self._moving:
            return  # called again from inside the bar's own event processing: the loop below shows it
        self._moving = True
        try:
            # napari's bar widget processes Qt events when it changes, which delivers the
            # next queued progress calls here before it returns: apply only the latest
            while self._latest is not None:
                (done, total), self._latest = self._latest, None
                self._move_bar(done, total)
        finally:
            self._moving = False

    def _move_bar(self, done: int, total: int) -> None:
        if self._bar is None and self._bar_description is not None:
            description, self._bar_description = self._bar_description, None
            self.open_bar(description, total)
        bar = self.bar
        if bar is None:
            return
        if total and bar.total != total:
            bar.total = total
        # napari's bar follows its "value" event, which only update() emits (setting n does not)
        bar.update(done - bar.n)

    def close_bar(self) -> None:
        self._bar_description = None
        bar, self._bar = self.bar, None
        if bar is not None:
            bar.close()

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, TaskCancelled) or self._cancel_requested:
            self._show_status("Cancelled.")
            return
        message = str(exc) if isinstance(exc, DensePoseGazeError) else f"{self._failure}: {exc!r}"
        self._show_status(message)
        show_error(message)

    def _on_finished(self) -> None:
        self._worker = None
        self.close_bar()
        self._busy_changed()
