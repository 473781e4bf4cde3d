"""The one loop over the recordings of PATH that every per-recording command runs.

A command hands :func:`for_each_recording` a work function for one opened
recording and the summary columns it fills in. The loop owns what is the same
for all of them: a recording that fails with a :class:`DensePoseGazeError` or
a file system error (a file it may not read, a full disk) is reported and the
others go on; an unexpected exception shows its traceback and the others go
on; the first Ctrl-C asks for a polite stop (the work function sees it and
stops at its next chance), a second one interrupts at once; then the summary
table and the exit code.

:func:`recordings_at` decides once which recordings PATH names and the name
each one's outputs go under (:attr:`Recordings.labels`), so that two
recordings never write to the same place, whatever the options.
"""

from __future__ import annotations

import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import DensePoseGazeError
from .codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .printing import print_table

if TYPE_CHECKING:
    from ..recording import Recording

__all__ = [
    "Abort", "Finished", "Outcome", "Recordings", "StopRequest", "Stopped", "Work",
    "for_each_recording", "recordings_at",
]


class StopRequest:
    """Turns the first Ctrl-C into a polite stop request; a second one interrupts at once.

    Call it to ask whether a stop was requested.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Callable | int | None = None

    def __enter__(self) -> StopRequest:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (e.g. called from a worker): no handler
            self._previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nStopping after the current batch (Ctrl-C again to stop at once) ...", file=sys.stderr)

    def __call__(self) -> bool:
        return self.requested


class Stopped(Exception):
    """Raised by a work function that honours a stop request mid-way (e.g. from a progress callback)."""


class Abort(Exception):
    """Raised by a work function when every recording would fail the same way (e.g. the model does not load)."""

    def __init__(self, error: DensePoseGazeError) -> None:
        super().__init__(str(error))
        self.error = error


class Finished(NamedTuple):
    """What a work function did with one recording: its status and its summary cells."""

    status: str  # "done", "stopped" or "not started"
    cells: dict[str, str]  # summary column -> cell; a column left out shows "-"


#: The work of a command on one recording.
Work = Callable[["Recording", StopRequest], Finished]


@dataclass
class Outcome:
    """One line of the summary table."""

    recording: str
    status: str = "not started"
    problem: str = ""  # why it failed
    cells: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "error")


@dataclass(frozen=True)
class Recordings:
    """The recording folders that PATH names."""

    folders: list[Path]
    single: bool  # PATH is one recording: an --output names its own store or file, not a folder of them

    def store_folder(self, recording: Path, output: Path | None) -> Path | None:
        """Where ``--output``/``--results`` puts the store of ``recording``; None for beside the recording."""
        if output is None:
            return None
        if self.single:
            return output.expanduser()
        from ..store import ResultsStore

        # one store per recording, named as it would be beside the recording
        return ResultsStore.default_folder(output.expanduser() / recording.name)


def recordings_at(path: Path) -> Recordings:
    """The recordings at ``path`` (a recording folder or an export); an error if there is none."""
    from .. import recording

    path = path.expanduser()
    folders = recording.find_recordings(path)
    if not folders:
        raise DensePoseGazeError(
            f"{path} holds no Pupil Cloud recording (no folder with world_timestamps.csv, gaze.csv or an .mp4). "
            "Pass the unzipped 'Timeseries Data + Scene Video' export or one recording folder in it."
        )
    return Recordings(folders, recording.is_recording_folder(path) or path.is_file())


def for_each_recording(
    recordings: Recordings,
    work: Work,
    columns: Sequence[str],
    *,
    stop_note: str = "stopped by Ctrl-C.",
) -> int:
    """Open each recording, call ``work`` on it, print the summary table; return the exit code.

    The summary has a row per recording: its name, ``columns`` (as ``work``
    filled them in, "-" otherwise) and its status. ``stop_note`` is what stderr
    says after a polite stop. Exit 0 if all went well, 1 if any recording
    failed, 130 after Ctrl-C; an :class:`Abort` leaves the loop with its error.
    """
    outcomes = [Outcome(folder.name) for folder in recordings.folders]
    with StopRequest() as stop:
        for folder, outcome in zip(recordings.folders, outcomes):
            if stop():
                break
            try:
                outcome.status, outcome.cells = work(_open_recording(folder), stop)
            except Abort as abort:
                raise abort.error from None
            except Stopped:
                outcome.status = "stopped"
            except DensePoseGazeError as exc:
                outcome.status, outcome.problem = "failed", str(exc)
                print(f"densepose-gaze: {folder.name}: {exc}", file=sys.stderr)
            except Exception as exc:  # a bug, not the user's doing: show it, then carry on with the others
                outcome.status, outcome.problem = "error", f"unexpected {type(exc).__name__} (traceback above)"
                print(f"densepose-gaze: unexpected error on {folder}:", file=sys.stderr)
                traceback.print_exc()
    print()
    print_table([{"recording": o.recording, **{c: o.cells.get(c, "-") for c in columns}, "status": o.status}
                 for o in outcomes], sys.stdout)
    failed = [o for o in outcomes if o.failed]
    if failed:
        reasons = "".join(f"\n  {o.recording}: {o.problem}" for o in failed)
        print(f"densepose-gaze: {len(failed)} of {len(outcomes)} recording(s) failed:{reasons}", file=sys.stderr)
    if stop():
        print(f"densepose-gaze: {stop_note}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


def _open_recording(folder: Path) -> Recording:
    from ..recording import ExportWarning, Recording

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)  # printed below, one line each
        recording = Recording.open(folder)
    for note in recording.warnings:
        print(f"note: {note}", file=sys.stderr)
    return recording
