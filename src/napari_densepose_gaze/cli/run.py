"""``densepose-gaze run``: DensePose over one recording or every recording of an export, resumably."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.defaults import (
    DEFAULT_MODEL,
    DEFAULT_SCORE_THRESHOLD,
    DEVICES,
    MAX_SIZE_TEST,
    MIN_SIZE_TEST,
    PRECISIONS,
)
from ..errors import DensePoseGazeError
from .arguments import non_negative_int, positive_int
from .batch import Abort, Finished, StopRequest, for_each_recording, recordings_at
from .printing import progress_bar

if TYPE_CHECKING:
    from ..pipeline import LoadedModel, ModelSettings, RunOptions
    from ..recording import Recording

__all__ = ["add_run"]

#: The summary columns of a run, between the recording and its status.
COLUMNS = ("frames done", "skipped", "time [s]", "frames/s")


def add_run(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="run DensePose over a recording or every recording of an export",
        description="Run DensePose over the scene video of a recording folder, or of every recording "
        "in a Pupil Cloud export, into results stores. Re-running continues where a run stopped; "
        "Ctrl-C stops after the current batch and keeps every frame already written.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="a recording folder or an export folder")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo model name (default {DEFAULT_MODEL}; "
                       "see 'densepose-gaze models')")
    model.add_argument("--weights", type=Path, metavar="FILE",
                       help="a local checkpoint (.pkl/.pth) for --model instead of the zoo download")
    model.add_argument("--cache-dir", type=Path, metavar="DIR", help="weights cache folder")
    model.add_argument("--device", default="auto", choices=DEVICES)
    model.add_argument("--precision", default="auto", choices=PRECISIONS,
                       help="compute precision (auto: bfloat16 on CUDA, else float32)")
    model.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD, metavar="S",
                       help=f"keep person detections scoring at least S (default {DEFAULT_SCORE_THRESHOLD})")
    model.add_argument("--batch-size", type=positive_int, metavar="N",
                       help="frames per batch (default 8 on CUDA, else 1)")
    model.add_argument("--input-size", type=positive_int, default=MIN_SIZE_TEST, metavar="PX",
                       help=f"shortest edge of the network input in pixels (default {MIN_SIZE_TEST}); "
                       "smaller is faster and finds fewer small people")
    model.add_argument("--max-input-size", type=positive_int, metavar="PX",
                       help=f"longest edge cap (default {MAX_SIZE_TEST} scaled like --input-size)")
    frames = parser.add_argument_group("frames")
    frames.add_argument("--frames", default="all", choices=("all", "gaze", "fixations"),
                        help="all frames, frames with valid gaze, or one key frame per fixation (default all)")
    frames.add_argument("--every", type=positive_int, default=1, metavar="N",
                        help="every Nth frame (with --frames all)")
    frames.add_argument("--first", type=non_negative_int, metavar="N", help="start at frame N (0-based)")
    frames.add_argument("--last", type=non_negative_int, metavar="N", help="end with frame N (included)")
    frames.add_argument("--start", metavar="EVENT", help="start at the first event of this name (events.csv)")
    frames.add_argument("--end", metavar="EVENT", help="end at the first event of this name after the start")
    output = parser.add_argument_group("output")
    output.add_argument("--output", type=Path, metavar="DIR",
                        help="for a recording folder: its results store; for an export: the folder that "
                        "holds one store per recording (<recording>.densepose). Default: beside each recording")
    output.add_argument("--overwrite-edited", action="store_true",
                        help="redo frames that were corrected by hand (their corrections are lost)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..frame_selection import FrameSelection
    from ..pipeline import ModelSettings, RunOptions

    if args.every > 1 and args.frames != "all":
        parser.error("--every applies to --frames all only")
    if args.first is not None and args.last is not None and args.last < args.first:
        parser.error(f"--last {args.last} comes before --first {args.first}")
    if args.weights is not None and not args.weights.is_file():
        raise DensePoseGazeError(f"--weights {args.weights} is not a file: pass an existing checkpoint.")
    recordings = recordings_at(args.path)
    model = ModelSettings(
        model=args.model,
        weights=args.weights,
        score_threshold=args.score_threshold,
        input_size=args.input_size,
        max_input_size=args.max_input_size,
        precision=args.precision,
    )
    options = RunOptions(
        device=args.device,
        batch_size=args.batch_size,
        selection=FrameSelection(
            mode=args.frames,
            step=args.every,
            start=args.first,
            stop=None if args.last is None else args.last + 1,
            start_event=args.start,
            end_event=args.end,
        ),
        overwrite_edited=args.overwrite_edited,
        cache_dir=args.cache_dir,
    )
    loaded = _LazyModel(model, options)  # loaded once, at the first recording that gets that far

    def work(recording: Recording, stop: StopRequest) -> Finished:
        output = recordings.store_folder(recording.folder, args.output)
        return _run_one(recording, model, dataclasses.replace(options, output=output), loaded, stop)

    return for_each_recording(recordings, work, COLUMNS,
                              stop_note="stopped by Ctrl-C; run the same command again to continue.")


class _LazyModel:
    """The model of a run, loaded on first use and shared by all recordings."""

    def __init__(self, model: ModelSettings, options: RunOptions) -> None:
        self._model = model
        self._options = options
        self._loaded: LoadedModel | None = None

    def get(self) -> LoadedModel:
        if self._loaded is None:
            from ..pipeline import load_model

            what = self._model.weights or "the zoo weights"
            print(f"Loading {self._model.model} ({what}) ...", file=sys.stderr)
            try:
                self._loaded = load_model(self._model, self._options, download_progress=True)
            except DensePoseGazeError as exc:
                raise Abort(exc) from exc  # nothing can run without the model
            print(f"Model: {self._loaded.predictor!r}", file=sys.stderr)
        return self._loaded


def _run_one(
    recording: Recording, model: ModelSettings, options: RunOptions, loaded: _LazyModel, stop: StopRequest
) -> Finished:
    from .. import pipeline
    from ..frame_selection import select_frames

    frames = select_frames(recording, options.selection)  # before the model loads: a bad selection fails fast
    prepared = pipeline.prepare_run(recording, model, options, loaded=loaded.get(), frames=frames)
    if stop():  # Ctrl-C while the model loaded
        return Finished("not started", {})
    store = prepared.store
    pending = len(store.pending(prepared.frames.tolist(), overwrite_edited=options.overwrite_edited))
    bar = progress_bar(recording.name, pending)
    try:
        summary = pipeline.run_densepose(
            recording, prepared.predictor, store, prepared.frames,
            progress=lambda p: bar.update(p.done - bar.n),
            cancel=stop,
            overwrite_edited=options.overwrite_edited,
        )
    finally:
        bar.close()
    print(f"{recording.name}: results in {store.folder}", file=sys.stderr)
    rate = summary.frames_per_s
    return Finished("stopped" if summary.cancelled else "done", {
        "frames done": f"{summary.processed}/{summary.selected}",
        "skipped": str(summary.skipped_done + summary.skipped_edited),
        "time [s]": f"{summary.seconds:.1f}",
        "frames/s": f"{rate:.2f}",
    })
