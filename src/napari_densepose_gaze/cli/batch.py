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
    "file_problem", "for_each_recording", "recordings_at",
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

    status: str  # "done", "stopped", "not started", or a word of the command's (e.g. "damaged")
    cells: dict[str, str]  # summary column -> cell; a column left out shows "-"
    problem: str = ""  # set when the work was done but found something wrong: the recording counts as failed


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
        return self.status in ("failed", "error") or bool(self.problem)


@dataclass(frozen=True)
class Recordings:
    """The recording folders that PATH names, and the name each one's outputs go under."""

    folders: list[Path]
    labels: dict[Path, str]  # folder -> its name in the summary and under an --output folder; no two alike
    single: bool  # PATH is one recording: an --output names its own store or file, not a folder of them
    video: Path | None = None  # the scene video, when PATH named it rather than its folder

    def store_folder(self, recording: Path, output: Path | None) -> Path | None:
        """Where ``--output``/``--results`` puts the store of ``recording``; None for beside the recording."""
        if output is None:
            return None
        if self.single:
            return output.expanduser()
        from ..store import ResultsStore

        # one store per recording, named as it would be beside the recording
        return ResultsStore.default_folder(output.expanduser() / self.labels[recording])

    def output_folder(self, recording: Path, output: Path) -> Path:
        """``output`` itself for one recording, else its subfolder for ``recording``."""
        output = output.expanduser()
        return output if self.single else output / self.labels[recording]


# The files a recording's scene video can be named by, as recording.py picks them.
_VIDEO_SUFFIX = ".mp4"


def recordings_at(path: Path) -> Recordings:
    """The recordings at ``path`` (a recording folder, its scene video, or an export); an error if there is none."""
    from .. import recording

    path = path.expanduser()
    try:
        if path.is_file():
            return _recording_of_video(path)
        folders = recording.find_recordings(path)
        single = recording.is_recording_folder(path)
    except OSError as exc:
        raise DensePoseGazeError(f"Cannot look for recordings in {path}: {file_problem(exc)}.") from exc
    if not folders:
        raise DensePoseGazeError(recording.no_recording_message(path, "Pass"))
    return Recordings(folders, _unique_labels(path, folders), single)


def _recording_of_video(path: Path) -> Recordings:
    from .. import recording

    if path.suffix.lower() != _VIDEO_SUFFIX:
        unzip = " Unzip it first." if path.suffix.lower() == ".zip" else ""
        raise DensePoseGazeError(
            f"{path} is a file but not a recording's scene video ({_VIDEO_SUFFIX}).{unzip} Pass a recording "
            "folder, its scene video, or the export folder that holds the recordings."
        )
    folder = path.parent
    if not recording.is_recording_folder(folder):
        raise DensePoseGazeError(
            f"{path} is not in a recording folder (no world_timestamps.csv or gaze.csv beside it). Pass a "
            "recording folder, its scene video, or the export folder that holds the recordings."
        )
    return Recordings([folder], {folder: _name(folder)}, single=True, video=path)


def _unique_labels(root: Path, folders: list[Path]) -> dict[Path, str]:
    """Each folder's name, lengthened by its parents' names below ``root`` where two would be alike.

    Alike ignores case, as macOS and Windows file systems do. A name that stays
    the same as long as no other recording takes it keeps a resumed run's outputs where they were.
    """
    parts = {f: f.relative_to(root).parts if f != root and f.is_relative_to(root) else (_name(f),) for f in folders}
    depth = dict.fromkeys(folders, 1)
    while True:
        labels = {f: "_".join(parts[f][-depth[f]:]) for f in folders}
        alike: dict[str, list[Path]] = {}
        for folder, label in labels.items():
            alike.setdefault(label.casefold(), []).append(folder)
        clashes = [group for group in alike.values() if len(group) > 1]
        longer = [f for group in clashes for f in group if depth[f] < len(parts[f])]
        if not longer:
            break
        for folder in longer:
            depth[folder] += 1
    if clashes:
        listed = ", ".join(str(f) for f in clashes[0])
        raise DensePoseGazeError(
            f"The recordings {listed} would write their outputs to the same place: pass each of them on its own."
        )
    return labels


def _name(folder: Path) -> str:
    return folder.name or folder.resolve().name  # "." names the folder it stands for


def file_problem(exc: OSError) -> str:
    """What a file system error means for the user: the file, and what to do about it."""
    import errno

    name = exc.filename if exc.filename is not None else "a file"
    if isinstance(exc, PermissionError):
        return (f"permission denied for {name}: make it readable (and the results folder writable) for this "
                "user, or copy the recording to a folder you own")
    if exc.errno == errno.ENOSPC:
        return f"the disk holding {name} is full: free some space, then run the same command again"
    if exc.errno == errno.ENAMETOOLONG:
        return (f"the name {name} is too long for the file system: rename the recording folder, or choose "
                "a shorter --output")
    return f"{exc.strerror or exc} ({name}): check the file and its disk, then run the same command again"


def for_each_recording(
    recordings: Recordings,
    work: Work,
    columns: Sequence[str],
    *,
    stop_note: str = "stopped by Ctrl-C.",
    min_confidence: float | None = None,
) -> int:
    """Open each recording, call ``work`` on it, print the summary table; return the exit code.

    The summary has a row per recording: its label, ``columns`` (as ``work``
    filled them in, "-" otherwise) and its status. ``stop_note`` is what stderr
    says after a polite stop. Exit 0 if all went well, 1 if any recording
    failed, 130 after Ctrl-C; an :class:`Abort` leaves the loop with its error.
    ``min_confidence`` is passed to :meth:`Recording.open` (Pupil Core gaze).
    """
    from .messages import for_the_command_line

    outcomes = [Outcome(recordings.labels[folder]) for folder in recordings.folders]
    with StopRequest() as stop:
        for folder, outcome in zip(recordings.folders, outcomes):
            if stop():
                break
            try:
                outcome.status, outcome.cells, outcome.problem = work(
                    _open_recording(recordings.video or folder, min_confidence), stop)
            except Abort as abort:
                raise abort.error from None
            except Stopped:
                outcome.status = "stopped"
            except DensePoseGazeError as exc:
                outcome.status, outcome.problem = "failed", for_the_command_line(exc)
                print(f"densepose-gaze: {outcome.recording}: {outcome.problem}", file=sys.stderr)
            except OSError as exc:  # the file system's doing (permissions, a full disk), not a bug
                outcome.status, outcome.problem = "failed", file_problem(exc)
                print(f"densepose-gaze: {outcome.recording}: {outcome.problem}", file=sys.stderr)
            except Exception as exc:  # a bug, not the user's doing: show it, then carry on with the others
                outcome.status, outcome.problem = "error", f"unexpected {type(exc).__name__} (traceback above)"
                print(f"densepose-gaze: unexpected error on {folder}:", file=sys.stderr)
                traceback.print_exc()
    failed = print_outcomes(outcomes, columns)
    if stop():
        print(f"densepose-gaze: {stop_note}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


def print_outcomes(outcomes: Sequence[Outcome], columns: Sequence[str]) -> list[Outcome]:
    """The summary table on stdout and the failures on stderr; returns the outcomes that failed."""
    print()
    print_table([{"recording": o.recording, **{c: o.cells.get(c, "-") for c in columns}, "status": o.status}
                 for o in outcomes], sys.stdout)
    failed = [o for o in outcomes if o.failed]
    if failed:
        reasons = "".join(f"\n  {o.recording}: {o.problem}" for o in failed)
        print(f"densepose-gaze: {len(failed)} of {len(outcomes)} recording(s) failed:{reasons}", file=sys.stderr)
    return failed


def _open_recording(path: Path, min_confidence: float | None) -> Recording:
    from ..recording import ExportWarning, Recording

    options = {} if min_confidence is None else {"min_confidence": min_confidence}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)  # printed below, one line each
        recording = Recording.open(path, **options)
    print(f"{recording.name}: a {recording.source} recording, {recording.n_frames} frames", file=sys.stderr)
    for note in recording.warnings:
        print(f"note: {note}", file=sys.stderr)
    return recording
