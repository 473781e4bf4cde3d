"""DensePose over a recording's scene video, into its results store.

Three stages overlap: a decode thread reads the selected frames from the video
in one sequential pass, the calling thread runs the engine on batches of them,
and a writer thread compresses and stores each frame's maps. The queues between
them are bounded (a few batches), so memory stays flat however long the video.
Frames already processed are skipped, and frames a person corrected are left
alone unless asked, so a killed or cancelled run resumes where it stopped.
A run that wrote frames links the people from frame to frame once and stores
their stable ids with the results, so that every later hit computation reuses them.
A gaze-guided run (:mod:`.gaze_guided`) computes body parts only for the people a
gaze hit can reach; a later full run completes those frames. The model is loaded
only when some frame needs it.

A run is set up from two things (:mod:`.run_settings`, re-exported here):
:class:`ModelSettings`, what defines the results (kept in the store's metadata,
so a resumed run must match them), and :class:`RunOptions`, what only steers this run.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .engine.defaults import default_max_input_size
from .errors import DensePoseGazeError
from .face_regions import head_uv_map
from .frame_selection import select_frames
from .gaze_guided import GazeGuide, gaze_guide
from .host_memory import reuse_freed_memory
from .run_settings import LoadedModel, ModelSettings, PreparedRun, Progress, RunOptions, RunSummary, run_metadata
from .store import ResultsStore
from .store_create import is_store
from .store_metadata import check_same_results
from .tracking import link_store

if TYPE_CHECKING:
    from .engine.predictor import FrameResult
    from .recording import Recording

__all__ = [
    "EngineSource", "FramePredictor", "LoadedModel", "ModelLoader", "ModelSettings", "ModelSource", "PreparedRun",
    "Progress", "RunOptions", "RunSummary", "detection_records", "iter_densepose", "load_model",
    "open_store_for_run", "prepare_run", "run_densepose", "run_metadata",
]


class FramePredictor(Protocol):
    """What the pipeline needs of an engine (our :class:`~.engine.predictor.Predictor` or Detectron2's).

    An engine whose ``takes_box_filters`` is true also takes ``predict(frames, box_filters=...)``
    (:meth:`.Predictor.predict`) and so can run gaze-guided; any other computes every detection.
    """

    batch_size: int

    def predict(self, frames: Sequence[np.ndarray]) -> list[FrameResult]: ...


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


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


_DEFAULT_OPTIONS = RunOptions()  # frozen, so one instance serves every default

#: An engine, or what loads it: called only when a run has frames to compute.
EngineSource = FramePredictor | Callable[[], FramePredictor]


def run_densepose(
    recording: Recording,
    predictor: EngineSource,
    store: ResultsStore,
    frames: Iterable[int],
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    overwrite_edited: bool = False,
    queue_batches: int = 2,
    guide: GazeGuide | None = None,
) -> RunSummary:
    """Run ``predictor`` on ``frames`` of ``recording`` and write each into ``store``.

    Frames already processed are skipped; frames edited by hand too unless
    ``overwrite_edited``. ``progress`` is called after every batch. ``cancel``
    is polled between batches: a cancelled run stops decoding, stores every
    frame already computed, and returns. ``guide`` (:func:`.gaze_guided.gaze_guide`)
    limits the body parts to the people a gaze hit can reach; without it every
    detection gets them, and frames a guided run made are completed.
    ``predictor`` may be a function that loads the engine: it is not called
    when no frame needs computing. While frames are computed, the memory each
    frees stays in the process for the next (:func:`.host_memory.reuse_freed_memory`).
    """
    run = iter_densepose(recording, predictor, store, frames, overwrite_edited=overwrite_edited,
                         queue_batches=queue_batches, guide=guide)
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
    predictor: EngineSource,
    store: ResultsStore,
    frames: Iterable[int],
    *,
    overwrite_edited: bool = False,
    queue_batches: int = 2,
    n_writers: int | None = None,
    guide: GazeGuide | None = None,
    link: bool = True,
) -> Generator[Progress, bool | None, RunSummary]:
    """:func:`run_densepose` as a generator: yields a :class:`Progress` after every batch.

    Sending True (or closing the generator) cancels the run: decoding stops,
    the frames already computed are stored, and the generator returns its
    :class:`RunSummary`. Meant for napari's generator thread workers.
    ``link=False`` leaves linking the people to the caller (a cluster links once
    per recording, after its chunks, not after each).
    """
    started = time.perf_counter()
    selected = list(dict.fromkeys(int(i) for i in frames))
    coverage = None if guide is None else guide.coverage
    pending = store.pending(selected, overwrite_edited=overwrite_edited, gazed=coverage)
    # claimed, so that a second run on the store computes other frames, not these
    todo = store.claim(pending, overwrite_edited=overwrite_edited, gazed=coverage)
    skipped_claimed = len(pending) - len(todo)
    edited = set(store.edited_frames().tolist())
    skipped_edited = 0 if overwrite_edited else sum(1 for i in selected if i in edited)
    skipped_done = len(selected) - len(pending) - skipped_edited
    try:
        engine = _engine(predictor) if todo else None  # nothing to compute: no model to load
    except BaseException:
        store.release(todo)
        raise
    started = time.perf_counter()  # rates and times of the computation, as when the model loaded beforehand
    guided = guide is not None and bool(getattr(engine, "takes_box_filters", False))
    batch_size = max(1, int(getattr(engine, "batch_size", 1)))
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
            # A frame where the guide picked every detection is as complete as a full run's.
            limited = guided and getattr(result, "with_parts", None) is not None
            stored = store.write_frame(
                index,
                result.part_map,
                result.person_map,
                detection_records(result),
                overwrite_edited=overwrite_edited,
                head_uv=head_uv_map(result.part_map, result.person_map, result.boxes, result.uv),
                gazed=coverage if limited else None,
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
    # Every frame allocates the same large maps again: they reuse the last frame's memory.
    with reuse_freed_memory():
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
                    images = [frame for _, frame in batch]
                    if guided:
                        results = engine.predict(images, box_filters=[guide.box_filter(i) for i, _ in batch])
                    else:
                        results = engine.predict(images)
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
            if closed and written and link:  # a closed generator returns nothing, but its frames still get their ids
                link_store(store)
    for stage in (decoder, *writers):
        if stage.error is not None:
            raise stage.error
    if written and link:
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


def _engine(source: EngineSource) -> FramePredictor:
    """The engine itself: ``source``, or what calling it loads."""
    return source if hasattr(source, "predict") else source()


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


def load_model(
    model: ModelSettings,
    options: RunOptions = _DEFAULT_OPTIONS,
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


class ModelSource(Protocol):
    """A model loaded when first needed (:class:`ModelLoader`, or the command line's own)."""

    settings: ModelSettings
    loaded: LoadedModel | None  # None until :meth:`get` loaded it

    def get(self) -> LoadedModel: ...


class ModelLoader:
    """The model of a run, loaded at its first use and then kept (also for many recordings).

    A run whose frames are all done, edited or claimed never uses it, and so
    never waits for it to load.
    """

    def __init__(
        self,
        model: ModelSettings,
        options: RunOptions = _DEFAULT_OPTIONS,
        *,
        download_progress: Callable[[int, int], None] | bool = True,
        loaded: LoadedModel | None = None,
        on_load: Callable[[], None] | None = None,
    ) -> None:
        if loaded is not None and loaded.settings != model:
            raise ValueError(f"the loaded model was loaded from {loaded.settings}, not from {model}")
        self.settings = model
        self._options = options
        self._download_progress = download_progress
        self._on_load = on_load  # told just before the model loads (e.g. to say so on the terminal)
        self.loaded: LoadedModel | None = loaded  # None while nothing needed it

    def get(self) -> LoadedModel:
        if self.loaded is None:
            if self._on_load is not None:
                self._on_load()
            self.loaded = load_model(self.settings, self._options, download_progress=self._download_progress)
        return self.loaded


def prepare_run(
    recording: Recording,
    model: ModelSettings,
    options: RunOptions = _DEFAULT_OPTIONS,
    *,
    download_progress: Callable[[int, int], None] | bool = True,
    loaded: LoadedModel | ModelSource | None = None,
    frames: np.ndarray | None = None,
    store: ResultsStore | None = None,
) -> PreparedRun:
    """Select the frames, open the store, and load the engine when it is first needed (unless ``loaded``).

    A new store needs the model's identity, so the model loads at once; an
    existing store is checked against the settings known without the model
    now, and against the model's checkpoint when :attr:`PreparedRun.load_predictor`
    first loads it, which :func:`iter_densepose` does only when some frame needs
    computing. ``loaded`` is a loaded model, or a :class:`ModelSource` shared by a
    batch of recordings.
    ``frames``, if given, are what ``select_frames(recording, options.selection)``
    returned to a caller that had to check the selection before loading a model
    itself; otherwise the frames are selected here, also before the model loads,
    so that a bad selection fails fast.
    ``store``, if given, is the recording's results store already open for
    writing (the napari session's one handle): it is checked like a store
    reopened to resume (same frames, size and result-defining settings) and
    used instead of opening another; ``options.output`` is then not used.
    """
    if loaded is None or isinstance(loaded, LoadedModel):
        loader: ModelSource = ModelLoader(model, options, download_progress=download_progress, loaded=loaded)
    elif loaded.settings != model:
        raise ValueError(f"the model source loads {loaded.settings}, not {model}")
    else:
        loader = loaded
    if store is not None and store.mode != "r+":
        raise DensePoseGazeError(
            f"The results store {store.folder} is open read-only, so a run cannot write into it: "
            "make the folder writable, or choose another folder for the results."
        )
    if frames is None:
        frames = select_frames(recording, options.selection)
    guide = gaze_guide(recording, options.hit_settings) if options.densepose_mode == "gazed" else None
    folder = ResultsStore.default_folder(recording.folder) if options.output is None else Path(options.output)
    if store is None and (loader.loaded is not None or not is_store(folder)):
        # a store is made with the whole metadata, the model's included
        store = open_store_for_run(recording, folder, _metadata(recording, options, loader.get()))
        return PreparedRun(store, frames, lambda: loader.get().predictor, guide)
    if store is None:
        store = ResultsStore.open(folder, "r+")
    load_predictor = _CheckedOnLoad(loader, store, recording, options)
    if loader.loaded is not None:
        load_predictor()
    else:
        # what can be checked without the model: a store of another recording or threshold fails now
        _check_known_settings(store, recording, model)
    return PreparedRun(store, frames, load_predictor, guide)


class _CheckedOnLoad:
    """The engine of a run on an existing store: loaded at the first call, then the store checked against it."""

    def __init__(self, loader: ModelSource, store: ResultsStore, recording: Recording, options: RunOptions) -> None:
        self._loader, self._store, self._recording, self._options = loader, store, recording, options
        self._lock = threading.Lock()
        self._checked = False

    def __call__(self) -> FramePredictor:
        with self._lock:
            loaded = self._loader.get()
            if not self._checked:
                # refuses a store of another checkpoint, and records this run's device and date
                _check_resumable(self._store, self._recording, _metadata(self._recording, self._options, loaded))
                self._checked = True
        return loaded.predictor


def _metadata(recording: Recording, options: RunOptions, loaded: LoadedModel) -> dict[str, Any]:
    predictor = loaded.predictor
    return run_metadata(
        recording,
        model=loaded.name,
        checkpoint_sha256=loaded.checkpoint_sha256,
        score_threshold=loaded.settings.score_threshold,
        device=str(predictor.device),
        selection=options.selection,
        precision=str(predictor.dtype).removeprefix("torch."),
        input_size=[predictor.min_size, predictor.max_size],
        weights_file=loaded.weights.name,
    )


def _check_known_settings(store: ResultsStore, recording: Recording, model: ModelSettings) -> None:
    """The store check of :func:`_check_resumable` on what is known before the model loads."""
    width, height = recording.frame_size
    stored = store.metadata
    known = {"recording_id": recording.recording_id or recording.name, "score_threshold": float(model.score_threshold)}
    check_same_results(store.folder, store.shape, stored, (recording.n_frames, height, width), {**stored, **known})


def _check_resumable(store: ResultsStore, recording: Recording, metadata: dict[str, Any]) -> None:
    """Refuse a store that a run of ``recording`` with ``metadata`` may not resume, as reopening it would."""
    width, height = recording.frame_size
    # the store's own check, the one ResultsStore.create applies when it reopens a store
    store.check_compatible((recording.n_frames, height, width), metadata)
