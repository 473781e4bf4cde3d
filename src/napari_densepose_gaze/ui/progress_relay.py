"""Progress from a worker thread to the GUI thread."""

from __future__ import annotations

from qtpy.QtCore import QObject, Signal


class ProgressRelay(QObject):
    """Carries ``progress(done, total)`` calls made in a worker thread to the GUI thread (a queued signal).

    Core functions report progress through plain callbacks; connecting ``changed``
    to a widget's slot makes those calls safe to show in Qt.
    """

    changed = Signal(int, int)

    def __call__(self, done: int, total: int) -> None:
        self.changed.emit(int(done), int(total))
