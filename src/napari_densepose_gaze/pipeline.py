"""DensePose over a recording's scene video, into its results store.

Three stages overlap: a decode thread reads the selected frames from the video
in one sequential pass, the calling thread runs the engine on batches of them,
and a writer thread compresses and stores each frame's maps. The queues between
them are bounded (a few batches), so memory stays flat however long the video.
Frames already processed are skipped, and frames a person corrected are left
alone unless asked, so a killed or cancelled run resumes where it stopped.
A run that wrote frames links the people from frame to frame once and stores
their stable ids with the results, so that every later hit computation reuses them.

A run is set up from two things: :class:`ModelSettings`, what defines the
results (kept in the store's metadata, so a resumed run must match them), and
:class:`RunOptions`, what only steers this run.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from . import __version__
from .engine.defaults import DEFAULT_MODEL, DEFAULT_SCORE_THRESHOLD, MIN_SIZE_TEST, default_max_input_size
from .errors import DensePoseGazeError
from .face_regions import head_uv_map
from .frame_selection import FrameSelection, select_frames
from .store import ResultsStore
from .tracking import link_store

if TYPE_CHECKING:
    from .engine.predictor import FrameResult
    from .recording import Recording


class FramePredictor(Protocol):
    """What the pipeline needs of an engine (our :class:`~.engine.predictor.Predictor` or Detectron2's)."""

    batch_size: int

    def predict(self, frames: Sequence[np.ndarray]) -> list[FrameResult]: ...


@dataclass(frozen=True)
class Progress:
    """Where a run stands; handed to the progress callback after every batch."""

    done: int  # frames processed in this run
    total: int  # frames this run has to process
    frames_per_s: float  # over this run so far
    seconds_left: float | None  # at the current rate; None before the first batch
    last_frame: int | None  # index of the last frame written

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True)
class RunSummary:
    selected: int  # frames the selection picked
    skipped_done: int  # of those, already processed before this run
    skipped_edited: int  # of those, corrected by hand and left alone (also when the edit came during the run)
    processed: int  # frames processed by this run
    cancelled: bool
    seconds: float
    skipped_claimed: int = 0  # of those, being computed by another live run on the same store

    @property
    def frames_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


def run_metadata(
    recording: Recording,
    *,
    model: str,
    checkpoint_sha256: str,
    score_threshold: float,
    device: str,
    selection: FrameSelection | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The metadata a results store keeps about the run that made it."""
    return {
        "recording_id": recording.recording_id or recording.name,
        "recording_folder": str(recording.folder),
        "recording_source": recording.source,
        "model": model,
        "checkpoint_sha256": checkpoint_sha256,
        "score_threshold": float(score_threshold),
        "device": device,
        "package_version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "frame_selection": selection.to_dict() if selection is not None else None,
        **extra,
    }


def open_store_for_run(
    recording: Recording, folder: str | Path | None, metadata: dict[str, Any], *, overwrite: bool = False
) -> ResultsStore:
    """Create the recording's results store, or reopen a matching one to resume it."""
    folder = ResultsStore.default_folder(recording.folder) if folder is None else Path(folder)
    width, height = recording.frame_size
    return ResultsStore.create(
        folder,
        n_frames=recording.n_frames,
        height=height,
        width=width,
        metadata=metadata,
        exist_ok=True,
        overwrite=overwrite,
    )


def detection_records(result: FrameResult) -> list[dict[str, float]]:
    """One record per detection of a frame; ``person`` k is the value k in the person map."""
    return [
        {"person": k + 1, "x1 [px]": x1, "y1 [px]": y1, "x2 [px]": x2, "y2 [px]": y2, "score": score}
        for k, ((x1, y1, x2, y2), score) in enumerate(zip(result.boxes.tolist(), result.scores.tolist()))
    ]


_END = object()  # closes a queue


class _Stage(threading.Thread):
    """A daemon thread whose exception is handed to the thread that joins it."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc


def run_densepose(
    recording: Recording,
    predictor: FramePredictor,
    store: ResultsStore,
    frames: Iterable[int],
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    overwrite_edited: bool = False,
    queue_batches: int = 2,
) -> RunSummary:
    """Run ``predictor`` on ``frames`` of ``recording`` and write each into ``store``.

    Frames already processed are skipped; frames edited by hand too unless
    ``overwrite_edited``. ``progress`` is called after every batch. ``cancel``
    is polled between batches: a cancelled run stops decoding, stores every
    frame already computed, and returns.
    """
    run = iter_densepose(recording, predictor, store, frames, overwrite_edited=overwrite_edited,
                         queue_batches=queue_batches)
    while True:
        try:
            state = next(run)
        except StopIteration as done:
            return done.value
        if progress is not None:
            progress(state)
        if cancel is not None and cancel():
            try:
                run.send(True)
            except StopIteration as done:
                return done.value


def iter_densepose(
    recording: Recording,
    predictor: FramePredictor,
    store: ResultsStore,
    frames: Iterable[int],
    *,
    overwrite_edited: bool = False,
    queue_batches: int = 2,
    n_writers: int | None = None,
) -> Generator[Progress, bool | None, RunSummary]:
    """:func:`run_densepose` as a generator: yields a :class:`Progress` after every batch.

    Sending True (or closing the generator) cancels the run: decoding stops,
    the frames already computed are stored, and the generator returns its
    :class:`RunSummary`. Meant for napari's generator thread workers.
    """
    started = time.perf_counter()
    selected = list(dict.fromkeys(int(i) for i in frames))
    pending = store.pending(selected, overwrite_edited=overwrite_edited)
    # claimed, so that a second run on the store computes other frames, not these
    todo = store.claim(pending, overwrite_edited=overwrite_edited)
    skipped_claimed = len(pending) - len(todo)
    edited = set(store.edited_frames().tolist())
    skipped_edited = 0 if overwrite_edited else sum(1 for i in selected if i in edited)
    skipped_done = len(selected) - len(pending) - skipped_edited
    batch_size = max(1, int(getattr(predictor, "batch_size", 1)))
    if n_writers is None:
        n_writers = min(4, max(1, (os.cpu_count() or 2) // 4))

    decoded: queue.Queue = queue.Queue(maxsize=max(1, queue_batches) * batch_size)
    computed: queue.Queue = queue.Queue(maxsize=max(1, queue_batches) * batch_size)
    stop_decoding = threading.Event()
    written = 0
    kept_edits = 0  # frames edited by hand while this run computed them: the edit stays
    last_written: int | None = None

    def decode() -> None:
        reader = recording.video_reader()
        try:
            for item in reader.iter_frames(indices=todo):
                while not stop_decoding.is_set():
                    try:
                        decoded.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop_decoding.is_set():
                    return
        finally:
            if not stop_decoding.is_set():  # after a stop nobody reads the queue any more
                decoded.put(_END)

    counts = threading.Lock()

    no_more_results = threading.Event()

    def write() -> None:
        nonlocal written, kept_edits, last_written
        while True:
            try:
                index, result = computed.get(timeout=0.1)
            except queue.Empty:
                if no_more_results.is_set():
                    return
                continue
            stored = store.write_frame(
                index,
                result.part_map,
                result.person_map,
                detection_records(result),
                overwrite_edited=overwrite_edited,
                head_uv=head_uv_map(result.part_map, result.person_map, result.boxes, result.uv),
            )
            with counts:
                if stored:
                    written += 1
                    last_written = index
                else:
                    kept_edits += 1

    decoder = _Stage("densepose-decode", decode)
    # Compressing a Neon-sized frame's two maps takes tens of ms; a few writer
    # threads keep the store from becoming the bottleneck behind a GPU.
    writers = [_Stage(f"densepose-write-{k}", write) for k in range(max(1, n_writers))]
    decoder.start()
    for writer in writers:
        writer.start()
    cancelled = closed = False
    predicted = 0
    try:
        finished = False
        while not finished and decoder.error is None and not any(w.error for w in writers):
            batch: list[tuple[int, np.ndarray]] = []
            while len(batch) < batch_size:
                item = decoded.get()
                if item is _END:
                    finished = True
                    break
                batch.append(item)
            if batch:
                results = predictor.predict([frame for _, frame in batch])
                for (index, _), result in zip(batch, results):
                    _put_checked(computed, (index, result), writers)
                predicted += len(batch)
            elapsed = time.perf_counter() - started
            rate = predicted / elapsed if elapsed > 0 else 0.0
            left = (len(todo) - predicted) / rate if rate > 0 else None
            last = batch[-1][0] if batch else last_written
            try:
                if (yield Progress(predicted, len(todo), rate, left, last)):
                    cancelled = True
                    break
            except GeneratorExit:
                cancelled = closed = True
                raise
    finally:
        stop_decoding.set()
        _drain(decoded)
        decoder.join()
        no_more_results.set()  # writers drain what is queued, then stop
        for writer in writers:
            writer.join()
        store.release(todo)  # frames not written (cancelled, failed) are free for the next run at once
        if closed and written:  # a closed generator returns nothing, but its frames still get their ids
            link_store(store)
    for stage in (decoder, *writers):
        if stage.error is not None:
            raise stage.error
    if written:
        # Linked over every processed frame, not just this run's: a resumed run
        # can join tracks across the frames it added.
        link_store(store)
    return RunSummary(
        selected=len(selected),
        skipped_done=skipped_done,
        skipped_edited=skipped_edited + kept_edits,
        skipped_claimed=skipped_claimed,
        processed=written,
        cancelled=cancelled,
        seconds=time.perf_counter() - started,
    )


def _put_checked(q: queue.Queue, item: object, consumers: Sequence[_Stage]) -> None:
    """Put into a bounded queue without hanging once a consumer died."""
    while True:
        try:
            q.put(item, timeout=0.2)
            return
        except queue.Full:
            dead = next((c for c in consumers if not c.is_alive()), None)
            if dead is not None:
                raise DensePoseGazeError(
                    f"Writing results stopped: {dead.error}" if dead.error else "Writing results stopped."
                ) from dead.error


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


@dataclass(frozen=True)
class ModelSettings:
    """What defines the results: the model, its weights and how it is run. Kept in each store's metadata."""

    model: str = DEFAULT_MODEL  # zoo config name
    weights: str | Path | None = None  # a local checkpoint instead of the zoo file of ``model``
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    input_size: int = MIN_SIZE_TEST  # shortest edge the engine resizes frames to
    max_input_size: int | None = None  # longest edge at most; None: default_max_input_size(input_size)
    precision: str = "auto"


@dataclass(frozen=True)
class RunOptions:
    """What only steers a run: where it computes, which frames, where it writes."""

    device: str = "auto"
    batch_size: int | None = None  # None: the engine's default for the device
    selection: FrameSelection = FrameSelection()
    output: str | Path | None = None  # results folder; None: beside the recording
    overwrite_edited: bool = False  # redo frames corrected by hand (the corrections are lost)
    cache_dir: str | Path | None = None  # weights cache folder


@dataclass
class PreparedRun:
    predictor: FramePredictor
    store: ResultsStore
    frames: np.ndarray


@dataclass
class LoadedModel:
    """An engine loaded from :class:`ModelSettings`, reusable for many recordings (see :func:`load_model`)."""

    predictor: FramePredictor
    settings: ModelSettings  # what it was loaded from; each store's metadata records it
    name: str  # zoo config name
    weights: Path  # the checkpoint file
    checkpoint_sha256: str


def load_model(
    model: ModelSettings,
    options: RunOptions = RunOptions(),
    *,
    download_progress: Callable[[int, int], None] | bool = True,
) -> LoadedModel:
    """Resolve the weights (downloading them if needed) and load the engine once."""
    from .engine.predictor import Predictor
    from .engine.weights import file_sha256, resolve_weights
    from .engine.zoo import get_config

    cfg = get_config(model.model)
    path = resolve_weights(model.weights or cfg, cache_dir=options.cache_dir, progress=download_progress)
    predictor = Predictor(
        cfg,
        weights=path,
        device=options.device,
        precision=model.precision,
        score_threshold=model.score_threshold,
        batch_size=options.batch_size,
        min_size=model.input_size,
        max_size=model.max_input_size or default_max_input_size(model.input_size),
    )
    return LoadedModel(predictor, model, cfg.name, Path(path), file_sha256(path))


def prepare_run(
    recording: Recording,
    model: ModelSettings,
    options: RunOptions = RunOptions(),
    *,
    download_progress: Callable[[int, int], None] | bool = True,
    loaded: LoadedModel | None = None,
    frames: np.ndarray | None = None,
    store: ResultsStore | None = None,
) -> PreparedRun:
    """Select the frames, load the engine (unless ``loaded``: one for a batch of recordings), open the store.

    ``frames``, if given, are what ``select_frames(recording, options.selection)``
    returned to a caller that had to check the selection before loading a model
    itself; otherwise the frames are selected here, also before the model loads,
    so that a bad selection fails fast.
    ``store``, if given, is the recording's results store already open for
    writing (the napari session's one handle): it is checked like a store
    reopened to resume (same frames, size and result-defining settings) and
    used instead of opening another; ``options.output`` is then not used.
    """
    if loaded is not None and loaded.settings != model:
        raise ValueError(f"the loaded model was loaded from {loaded.settings}, not from {model}")
    if store is not None and store.mode != "r+":
        raise DensePoseGazeError(
            f"The results store {store.folder} is open read-only, so a run cannot write into it: "
            "make the folder writable, or choose another folder for the results."
        )
    if frames is None:
        frames = select_frames(recording, options.selection)
    if loaded is None:
        loaded = load_model(model, options, download_progress=download_progress)
    predictor = loaded.predictor
    metadata = run_metadata(
        recording,
        model=loaded.name,
        checkpoint_sha256=loaded.checkpoint_sha256,
        score_threshold=model.score_threshold,
        device=str(predictor.device),
        selection=options.selection,
        precision=str(predictor.dtype).removeprefix("torch."),
        input_size=[predictor.min_size, predictor.max_size],
        weights_file=loaded.weights.name,
    )
    if store is None:
        store = open_store_for_run(recording, options.output, metadata)
    else:
        _check_resumable(store, recording, metadata)
    return PreparedRun(predictor, store, frames)


def _check_resumable(store: ResultsStore, recording: Recording, metadata: dict[str, Any]) -> None:
    """Refuse a store that a run of ``recording`` with ``metadata`` may not resume, as reopening it would."""
    width, height = recording.frame_size
    # the store's own check, the one ResultsStore.create applies when it reopens a store
    store.check_compatible((recording.n_frames, height, width), metadata)
