"""What runs on a Dask worker: one loaded model per process, and the tasks of a recording.

Each task is a plain function of picklable arguments, so any Dask worker with
this package installed can run it. A worker process computes one chunk at a
time (one model, one device), keeps its model for every later task, and keeps
a few recordings and stores open, so a recording's next chunk starts at once.

The tasks of a recording: :func:`prepare` (once: creates or reopens the store,
with the metadata of an in-process run, and finds the pending frames),
:func:`compute` (per chunk: claims its frames, computes and stores them),
:func:`finish` (once, after its chunks: computes what is left, waits for other
runs' claims, links the people over all frames).
A gaze-guided run (``options.densepose`` "gazed", :mod:`..gaze_guided`) asks the
same of each frame on every worker as in-process: each worker derives the guide
from the recording's gaze once and keeps it with the recording.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import pipeline
from ..gaze_guided import GazeGuide, gaze_guide
from ..sources import DEFAULT_MIN_CONFIDENCE
from ..store import ResultsStore
from ..store_log import share_between_hosts

if TYPE_CHECKING:
    from ..recording import Recording

__all__ = ["ChunkDone", "Job", "Prepared", "compute", "finish", "prepare"]

# Kept open per worker process; a study's recordings come chunk by chunk, mostly in order.
_KEEP_OPEN = 4
# How often finish() looks again at frames another live run has claimed.
_WAIT_FOR_OTHERS_S = 0.5


@dataclass(frozen=True)
class Job:
    """What every task of one recording needs; paths absolute and the same on every worker."""

    source: str  # the recording folder (or its scene video)
    model: pipeline.ModelSettings
    options: pipeline.RunOptions  # output: this recording's store folder, or None for beside it
    stop_event: str  # name of the Dask event that asks the run to stop
    min_confidence: float = DEFAULT_MIN_CONFIDENCE  # Pupil Core gaze below it is not worn (frame selections)


@dataclass(frozen=True)
class Prepared:
    store: str  # the store folder
    selected: int  # frames the selection picked
    pending: list[int]  # of those, still to compute
    skipped_edited: int
    damaged: int  # processed frames found damaged: pending again
    notes: list[str] = field(default_factory=list)  # the recording's warnings


@dataclass(frozen=True)
class ChunkDone:
    processed: int  # frames this task stored
    kept_edits: int  # frames left alone because someone edited them meanwhile
    elsewhere: int  # frames another live run had claimed: left to it
    cancelled: bool
    seconds: float


class _Worker:
    """This process's model, open recordings and stores."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one chunk at a time
        self._models: dict[tuple[pipeline.ModelSettings, str, int | None, str | None], pipeline.LoadedModel] = {}
        self._recordings: OrderedDict[tuple[str, float], Recording] = OrderedDict()
        self._guides: dict[tuple[str, float], tuple[pipeline.RunOptions, GazeGuide | None]] = {}
        self._stores: OrderedDict[str, ResultsStore] = OrderedDict()

    def model(self, job: Job) -> pipeline.LoadedModel:
        options = job.options
        key = (job.model, options.device, options.batch_size, None if options.cache_dir is None
               else str(options.cache_dir))
        if key not in self._models:
            _use_the_workers_threads()
            self._models.clear()  # one model per process: a new run's settings replace the old
            self._models[key] = pipeline.load_model(job.model, options, download_progress=False)
        return self._models[key]

    def recording(self, job: Job) -> Recording:
        from ..recording import Recording

        key = (job.source, job.min_confidence)
        if key not in self._recordings:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the notes travel back with prepare()
                self._recordings[key] = Recording.open(job.source, min_confidence=job.min_confidence)
            self._guides.pop(key, None)  # of the recording as read before
            while len(self._recordings) > _KEEP_OPEN:
                self._guides.pop(self._recordings.popitem(last=False)[0], None)
        self._recordings.move_to_end(key)
        return self._recordings[key]

    def guide(self, job: Job) -> GazeGuide | None:
        """The guide of the job's recording when its run is gaze-guided, as :func:`.pipeline.prepare_run` makes it."""
        recording = self.recording(job)
        key = (job.source, job.min_confidence)
        kept = self._guides.get(key)
        if kept is None or kept[0] != job.options:
            options = job.options
            guide = gaze_guide(recording, options.hit_settings) if options.densepose_mode == "gazed" else None
            self._guides[key] = kept = (options, guide)
        return kept[1]

    def store(self, folder: str) -> ResultsStore:
        if folder not in self._stores:
            self._stores[folder] = ResultsStore.open(folder, mode="r+")
            while len(self._stores) > _KEEP_OPEN:
                self._stores.popitem(last=False)[1].close()
        self._stores.move_to_end(folder)
        return self._stores[folder]


_WORKER = _Worker()


def prepare(job: Job) -> Prepared:
    """Open the recording, create or reopen its store as an in-process run would, find the pending frames."""
    with _WORKER.lock:
        recording = _WORKER.recording(job)
        prepared = pipeline.prepare_run(recording, job.model, job.options, loaded=_WORKER.model(job))
        store = prepared.store
        share_between_hosts(store.folder)
        selected = prepared.frames.tolist()
        overwrite = job.options.overwrite_edited
        pending = store.pending(selected, overwrite_edited=overwrite, gazed=prepared.coverage)
        # frames a gaze-guided run made, pending again for a run that asks more of them: not damaged
        completed = set(pending) & set(store.gazed_frames())
        edited = set(store.edited_frames().tolist())
        processed = set(store.processed_frames().tolist())
        store.close()
        return Prepared(
            store=str(store.folder),
            selected=len(selected),
            pending=pending,
            skipped_edited=0 if overwrite else sum(1 for i in selected if i in edited),
            damaged=len(set(pending) & processed - edited - completed),
            notes=list(recording.warnings),
        )


def compute(job: Job, store_folder: str, frames: list[int]) -> ChunkDone:
    """Claim the frames of a chunk that no other live run claimed, compute and store them."""
    started = time.perf_counter()
    with _WORKER.lock:
        if _stop_requested(job):
            return ChunkDone(0, 0, 0, True, 0.0)
        store = _WORKER.store(store_folder)
        overwrite, gazed = job.options.overwrite_edited, _coverage(_WORKER.guide(job))
        mine = store.claim(frames, overwrite_edited=overwrite, gazed=gazed)
        elsewhere = len(store.pending(frames, overwrite_edited=overwrite, gazed=gazed)) - len(mine)
        try:
            summary = _densepose(job, store, mine)
        finally:
            store.release(mine)
    return ChunkDone(summary.processed, summary.skipped_edited, max(0, elsewhere), summary.cancelled,
                     time.perf_counter() - started)


def finish(job: Job, store_folder: str, frames: list[int], *, compute_left: bool = True) -> ChunkDone:
    """After a recording's chunks: compute frames still pending, wait for other runs' claims, link the people.

    Frames stay pending when a chunk's worker died more often than Dask retries
    it, or another run that had claimed them died; ``compute_left=False`` (a
    stopped run) only links. The link covers every processed frame of the store,
    so whichever run links last leaves the ids of the whole recording.
    """
    started = time.perf_counter()
    processed = kept = 0
    cancelled = False
    with _WORKER.lock:
        store = _WORKER.store(store_folder)
        overwrite, gazed = job.options.overwrite_edited, _coverage(_WORKER.guide(job))
        while compute_left and store.pending(frames, overwrite_edited=overwrite, gazed=gazed):
            if _stop_requested(job):
                cancelled = True
                break
            mine = store.claim(frames, overwrite_edited=overwrite, gazed=gazed)
            if not mine:
                time.sleep(_WAIT_FOR_OTHERS_S)  # another live run computes them
                continue
            try:
                summary = _densepose(job, store, mine)
            finally:
                store.release(mine)
            processed += summary.processed
            kept += summary.skipped_edited
            cancelled = summary.cancelled
        if store.processed_frames().size:
            from ..tracking import link_store

            link_store(store)
    return ChunkDone(processed, kept, 0, cancelled, time.perf_counter() - started)


def _densepose(job: Job, store: ResultsStore, frames: list[int]) -> pipeline.RunSummary:
    """The pipeline's one loop over ``frames``, stopping between batches when the run is asked to stop."""
    loaded = _WORKER.model(job)
    run = pipeline.iter_densepose(_WORKER.recording(job), loaded.predictor, store, frames,
                                  overwrite_edited=job.options.overwrite_edited, guide=_WORKER.guide(job),
                                  link=False)  # finish() links the whole recording once
    stop = False
    while True:
        try:
            run.send(stop) if stop else next(run)
        except StopIteration as done:
            return done.value
        stop = _stop_requested(job)


def _coverage(guide: GazeGuide | None) -> tuple[float, str] | None:
    """What a run with ``guide`` asks of each frame's body parts (the ``gazed`` of the store's pending and claim)."""
    return None if guide is None else guide.coverage


def _stop_requested(job: Job) -> bool:
    from distributed import Event

    return Event(job.stop_event).is_set()


def _use_the_workers_threads() -> None:
    """Let torch use as many threads as the Dask worker has (Dask's nanny starts workers with one)."""
    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):  # not on a Dask worker
        return
    import torch

    torch.set_num_threads(max(1, int(threads)))
