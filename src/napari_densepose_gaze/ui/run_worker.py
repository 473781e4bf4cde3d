"""The thread side of a Run: open the store, then compute frame after frame, telling the GUI thread as it goes.

The worker yields ``("store", store, number of frames)`` once the store is
open, then ``("progress", Progress)`` after each batch, and returns the
:class:`~.pipeline.RunSummary` (one with ``cancelled`` set when the user
stopped the download or the model load, before anything was written).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker

from ..pipeline import RunOptions, RunSummary, iter_densepose, prepare_run
from .run_model import Cancelled, RunModel

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..recording import Recording
    from ..store import ResultsStore


def densepose_worker(recording: Recording, source: RunModel, options: RunOptions, store: ResultsStore | None,
                     *, cancel_requested: Callable[[], bool]) -> Any:
    """A napari thread worker (not started) running DensePose on the frames ``options`` select.

    ``store`` is the session's open store when the run writes there, else
    None (the run opens or makes its own). ``cancel_requested`` is asked after
    each batch: the run stops there, leaving a store a re-run resumes.
    """
    started = time.monotonic()

    def cancelled() -> RunSummary:
        return RunSummary(selected=0, skipped_done=0, skipped_edited=0, processed=0, cancelled=True,
                          seconds=time.monotonic() - started)

    @thread_worker(ignore_errors=True)  # errors go to the runner, not to the event loop
    def work():
        try:
            # a new store loads the model now (its metadata names it); an existing one when a frame needs it
            prepared = prepare_run(recording, source.settings, options, loaded=source, store=store)
        except Cancelled:
            return cancelled()
        yield ("store", prepared.store, len(prepared.frames))
        run = iter_densepose(recording, prepared.load_predictor, prepared.store, prepared.frames,
                             overwrite_edited=options.overwrite_edited, guide=prepared.guide)
        try:
            state = next(run)
            while True:
                yield ("progress", state)
                state = run.send(cancel_requested())
        except StopIteration as done:
            return done.value
        except Cancelled:
            return cancelled()

    return work()
