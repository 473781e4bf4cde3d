"""``densepose-gaze run EXPORT --workers N / --scheduler ADDRESS``: submit, follow, sum up.

The command's process only plans and watches: each recording is prepared on a
worker (its store made as an in-process run makes it), its pending frames are
cut into chunks (:mod:`.chunks`), and the chunks go to whichever worker is
free; when a recording's last chunk is in, one more task finishes it (what is
left, then the people linked over all frames). Dask reschedules the chunk of a
worker that died; the store's claims make sure no frame is stored twice and
none is lost, and a re-run resumes. One progress bar counts the frames of the
whole study; the summary has a line per recording, as for a run in-process.
"""

from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cluster import worker
from ..cluster.chunks import chunk_size, split
from ..cluster.connect import connect
from ..cluster.settings import ClusterSettings
from ..errors import DensePoseGazeError
from ..sources import DEFAULT_MIN_CONFIDENCE
from .batch import Outcome, Recordings, StopRequest, print_outcomes
from .codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .printing import progress_bar

if TYPE_CHECKING:
    from ..pipeline import ModelSettings, RunOptions

__all__ = ["COLUMNS", "run_on_cluster"]

#: The summary columns, as for a run in-process.
COLUMNS = ("frames done", "skipped", "time [s]", "frames/s")
# How often the watch loop looks at Ctrl-C and the scheduler while no task ends.
_POLL_S = 0.5


class ClusterLost(Exception):
    """The scheduler went away mid-run."""


@dataclass
class _Recording:
    """What the run knows of one recording while its tasks are out."""

    label: str
    job: worker.Job
    outcome: Outcome
    prepared: worker.Prepared | None = None
    chunks_out: int = 0
    processed: int = 0
    kept_edits: int = 0
    elsewhere: int = 0
    cancelled: bool = False
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0


def run_on_cluster(
    recordings: Recordings,
    model: ModelSettings,
    options: RunOptions,
    settings: ClusterSettings,
    *,
    output: Path | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> int:
    """Run DensePose over ``recordings`` on the cluster ``settings`` names; print the summary, return the exit code.

    ``output`` is the run's ``--output`` (each recording's store goes where
    :meth:`Recordings.store_folder` puts it); ``min_confidence`` is the run's
    ``--min-confidence``, for the workers' frame selections. Paths are made absolute here: the
    workers must see the export and the results at the same paths.
    """
    client, cluster = connect(settings, options.device)  # before anything loads: a bad address fails fast
    stop_name = f"densepose-gaze-stop-{uuid.uuid4().hex}"
    states = [_state(recordings, folder, model, options, output, stop_name, min_confidence)
              for folder in recordings.folders]
    bar = progress_bar("frames", 0)
    lost: ClusterLost | None = None
    try:
        with StopRequest() as stop:
            try:
                _watch(client, states, settings, bar, stop, stop_name)
            except ClusterLost as exc:
                lost = exc
    finally:
        bar.close()
        _close(client, cluster)
    return _summary(states, stop.requested, lost, settings)


def _state(recordings: Recordings, folder: Path, model: ModelSettings, options: RunOptions,
           output: Path | None, stop_name: str, min_confidence: float) -> _Recording:
    store = recordings.store_folder(folder, output)
    job = worker.Job(
        source=str((recordings.video or folder).resolve()),
        model=replace(model, weights=None if model.weights is None else Path(model.weights).resolve()),
        options=replace(options, output=None if store is None else store.resolve(),
                        cache_dir=None if options.cache_dir is None else Path(options.cache_dir).resolve()),
        stop_event=stop_name,
        min_confidence=min_confidence,
    )
    label = recordings.labels[folder]
    return _Recording(label, job, Outcome(label))


def _watch(client: Any, states: list[_Recording], settings: ClusterSettings, bar: Any, stop: StopRequest,
           stop_name: str) -> None:
    """Submit the tasks of every recording and follow them until all are in."""
    from distributed import Event, wait

    event = Event(stop_name, client=client)
    out: dict[Any, tuple[_Recording, str]] = {}  # future -> (its recording, "prepare" / "compute" / "finish")
    for state in states:
        out[client.submit(worker.prepare, state.job, pure=False)] = (state, "prepare")
    stopping = False
    while out:
        if stop() and not stopping:
            stopping = True
            event.set()  # tasks stop at their next batch; those not started return at once
        try:
            done, _ = wait(list(out), timeout=_POLL_S, return_when="FIRST_COMPLETED")
        except TimeoutError:
            _check_scheduler(client)
            continue
        except CancelledError as exc:  # Dask cancels every future when the scheduler is lost
            raise ClusterLost(str(exc).splitlines()[0]) from exc
        for future in done:
            state, kind = out.pop(future)
            try:
                result = future.result()
            except CancelledError as exc:
                raise ClusterLost(str(exc).splitlines()[0]) from exc
            except Exception as exc:  # the task's own error, or the cluster's
                _check_scheduler(client)
                _failed(state, exc)
                continue
            for new in _next_tasks(client, state, kind, result, settings, bar, stopping):
                out[new] = (state, "compute" if new.key.startswith("compute") else "finish")


def _next_tasks(client: Any, state: _Recording, kind: str, result: Any, settings: ClusterSettings, bar: Any,
                stopping: bool) -> list[Any]:
    """Take in one task's result; the tasks of the recording that follow from it."""
    if kind == "prepare":
        state.prepared = result
        for note in result.notes:
            print(f"note: {state.label}: {note}", file=sys.stderr)
        if result.damaged:
            print(f"note: {state.label}: {result.damaged} damaged frame(s) of {result.store} are computed again.",
                  file=sys.stderr)
        bar.total += len(result.pending)
        bar.refresh()
        if stopping:
            state.cancelled = True
            return []
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = settings.chunk_size or chunk_size(len(result.pending), workers)
        chunks = split(result.pending, size)
        state.chunks_out = len(chunks)
        futures = [client.submit(worker.compute, state.job, result.store, frames, pure=False,
                                 key=f"compute-{state.label}-{k}-{uuid.uuid4().hex[:8]}")
                   for k, frames in enumerate(chunks)]
        return futures or [_submit_finish(client, state, stopping)]
    state.processed += result.processed
    state.kept_edits += result.kept_edits
    state.elsewhere += result.elsewhere
    state.cancelled = state.cancelled or result.cancelled
    bar.update(result.processed + result.kept_edits + result.elsewhere)
    if kind == "finish":
        _finished(state)
        return []
    state.chunks_out -= 1
    if state.chunks_out == 0 and state.outcome.status != "failed":
        return [_submit_finish(client, state, stopping or state.cancelled)]
    return []


def _submit_finish(client: Any, state: _Recording, stopping: bool) -> Any:
    assert state.prepared is not None
    return client.submit(worker.finish, state.job, state.prepared.store, state.prepared.pending,
                         compute_left=not stopping, pure=False,
                         key=f"finish-{state.label}-{uuid.uuid4().hex[:8]}")


def _finished(state: _Recording) -> None:
    prepared = state.prepared
    assert prepared is not None
    state.seconds = time.perf_counter() - state.started
    skipped = prepared.selected - len(prepared.pending) + state.kept_edits
    state.outcome.status = "stopped" if state.cancelled else "done"
    state.outcome.cells = {
        "frames done": f"{state.processed}/{prepared.selected}",
        "skipped": str(skipped),
        "time [s]": f"{state.seconds:.1f}",
        "frames/s": f"{state.processed / state.seconds if state.seconds > 0 else 0.0:.2f}",
    }


def _failed(state: _Recording, exc: BaseException) -> None:
    from distributed import KilledWorker

    from .messages import for_the_command_line

    if isinstance(exc, DensePoseGazeError):
        problem = for_the_command_line(exc)
    elif isinstance(exc, KilledWorker):
        problem = ("its workers died again and again on the same frames (out of memory?); the frames finished "
                   "are kept: run again to resume")
    elif isinstance(exc, OSError):
        from .batch import file_problem

        problem = file_problem(exc)
    else:
        problem = f"unexpected {type(exc).__name__} on a worker: {exc}"
    if state.outcome.status != "failed":
        print(f"densepose-gaze: {state.label}: {problem}", file=sys.stderr)
    state.outcome.status, state.outcome.problem = "failed", problem


def _check_scheduler(client: Any) -> None:
    if client.status not in ("running", "newly-created"):
        raise ClusterLost(client.scheduler.address if client.scheduler is not None else "the scheduler")


def _close(client: Any, cluster: Any) -> None:
    import contextlib

    with contextlib.suppress(Exception):  # a scheduler that went away cannot be told goodbye
        client.close(timeout=5)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


def _summary(states: list[_Recording], stopped: bool, lost: ClusterLost | None, settings: ClusterSettings) -> int:
    failed = print_outcomes([state.outcome for state in states], COLUMNS)
    if lost is not None:
        print(f"densepose-gaze: the Dask scheduler {settings.scheduler or lost} went away: every frame finished is "
              "kept in the stores; start the cluster again and run the same command to continue.", file=sys.stderr)
        return EXIT_FAILED
    if stopped:
        print("densepose-gaze: stopped by Ctrl-C; run the same command again to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK
