"""``densepose-gaze run``: DensePose over one recording or every recording of an export, resumably."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.defaults import (
    DEFAULT_MODEL,
    DEFAULT_SCORE_THRESHOLD,
    DEVICES,
    MAX_INPUT_SIZE,
    MAX_SIZE_TEST,
    MIN_SIZE_TEST,
    PRECISIONS,
    default_max_input_size,
)
from ..errors import DensePoseGazeError
from .arguments import (
    add_hit_radius,
    add_min_confidence,
    event_name,
    folder_path,
    hit_settings,
    input_size,
    non_negative_int,
    positive_int,
    score_threshold,
)
from .batch import Abort, Finished, StopRequest, file_problem, for_each_recording, recordings_at
from .cluster_options import add_cluster_options, cluster_settings
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
    parser.add_argument("path", type=Path, metavar="PATH",
                        help="a recording folder (or its scene video) or an export folder")
    add_min_confidence(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo model name (default {DEFAULT_MODEL}; "
                       "see 'densepose-gaze models')")
    model.add_argument("--weights", type=Path, metavar="FILE",
                       help="a local checkpoint (.pkl/.pth) for --model instead of the zoo download")
    model.add_argument("--cache-dir", type=folder_path, metavar="DIR", help="weights cache folder")
    model.add_argument("--device", default="auto", choices=DEVICES)
    model.add_argument("--precision", default="auto", choices=PRECISIONS,
                       help="compute precision (auto: bfloat16 on CUDA, else float32)")
    model.add_argument("--score-threshold", type=score_threshold, default=DEFAULT_SCORE_THRESHOLD, metavar="S",
                       help=f"keep person detections scoring at least S (default {DEFAULT_SCORE_THRESHOLD})")
    model.add_argument("--batch-size", type=positive_int, metavar="N",
                       help="frames per batch (default 8 on CUDA, else 1)")
    model.add_argument("--input-size", type=input_size, default=MIN_SIZE_TEST, metavar="PX",
                       help=f"shortest edge of the network input in pixels (default {MIN_SIZE_TEST}); "
                       "smaller is faster and finds fewer small people")
    model.add_argument("--max-input-size", type=input_size, metavar="PX",
                       help=f"longest edge cap (default {MAX_SIZE_TEST} scaled like --input-size; "
                       f"at most {MAX_INPUT_SIZE})")
    frames = parser.add_argument_group("frames")
    frames.add_argument("--frames", default="all", choices=("all", "gaze", "fixations"),
                        help="all frames, frames with valid gaze, or one key frame per fixation (default all)")
    frames.add_argument("--every", type=positive_int, default=1, metavar="N",
                        help="every Nth frame (with --frames all)")
    frames.add_argument("--first", type=non_negative_int, metavar="N", help="start at frame N (0-based)")
    frames.add_argument("--last", type=non_negative_int, metavar="N", help="end with frame N (included)")
    frames.add_argument("--start", type=event_name, metavar="EVENT",
                        help="start at the first event of this name (events.csv)")
    frames.add_argument("--end", type=event_name, metavar="EVENT",
                        help="end at the first event of this name after the start")
    guided = parser.add_argument_group("gaze-guided DensePose")
    guided.add_argument("--densepose", choices=("gazed", "all"),
                        help="body parts only for the people a gaze hit can reach (gazed: the same hit tables, "
                        "less work), or for every person found (all). Default: gazed with --frames gaze or "
                        "fixations, all with --frames all; a later run with 'all' completes gazed frames")
    add_hit_radius(guided, what="the hit radius gazed DensePose must serve: hits computed with a wider one can miss "
                   "people")
    output = parser.add_argument_group("output")
    output.add_argument("--output", type=folder_path, metavar="DIR",
                        help="for a recording folder: its results store; for an export: the folder that "
                        "holds one store per recording (<recording>.densepose). Default: beside each recording")
    output.add_argument("--overwrite-edited", action="store_true",
                        help="redo frames that were corrected by hand (their corrections are lost)")
    add_cluster_options(parser.add_argument_group("cluster", "compute on a Dask cluster (docs/cluster.md)"))
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..frame_selection import FrameSelection
    from ..pipeline import ModelSettings, RunOptions

    if args.every > 1 and args.frames != "all":
        parser.error("--every applies to --frames all only")
    if args.first is not None and args.last is not None and args.last < args.first:
        parser.error(f"--last {args.last} comes before --first {args.first}")
    _check_input_size(args, parser)
    _check_model(args)
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
        densepose=args.densepose,
        hit_settings=hit_settings(args, parser),
    )
    cluster = cluster_settings(args)
    if cluster is not None:
        from .cluster_run import run_on_cluster  # imports Dask: only when a cluster run is asked for

        return run_on_cluster(recordings, model, options, cluster, output=args.output,
                              min_confidence=args.min_confidence)
    loaded = _LazyModel(model, options)  # loaded once, at the first recording that gets that far

    def work(recording: Recording, stop: StopRequest) -> Finished:
        output = recordings.store_folder(recording.folder, args.output)
        return _run_one(recording, model, dataclasses.replace(options, output=output), loaded, stop)

    return for_each_recording(recordings, work, COLUMNS,
                              stop_note="stopped by Ctrl-C; run the same command again to continue.",
                              min_confidence=args.min_confidence)


def _check_input_size(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The network input's edges within the engine's limits, before a recording is read."""
    if args.max_input_size is not None:
        if args.max_input_size < args.input_size:
            parser.error(f"--max-input-size {args.max_input_size} is below --input-size {args.input_size}: "
                         "the longest edge cannot be shorter than the shortest")
        return
    longest = default_max_input_size(args.input_size)
    if longest > MAX_INPUT_SIZE:
        parser.error(f"--input-size {args.input_size} makes the longest edge {longest} px, more than the "
                     f"{MAX_INPUT_SIZE} px the engine takes: add --max-input-size {MAX_INPUT_SIZE} (or less)")


def _check_model(args: argparse.Namespace) -> None:
    """A model name the zoo knows and weights this user can read, before a recording is read."""
    from ..engine import zoo

    zoo.get_config(args.model)  # an unknown name: an error listing the names
    weights = args.weights
    if weights is None:
        return
    if not weights.is_file():
        raise DensePoseGazeError(f"--weights {weights} is not a file: pass an existing checkpoint.")
    if not os.access(weights, os.R_OK):
        raise DensePoseGazeError(f"--weights {weights} cannot be read by this user: make it readable "
                                 "(chmod a+r) or copy it to a folder of yours.")


class _LazyModel:
    """The model of a run, loaded at the first recording that needs it and shared by all (a pipeline model source)."""

    def __init__(self, model: ModelSettings, options: RunOptions) -> None:
        self.settings = model
        self._options = options
        self.loaded: LoadedModel | None = None  # None while every recording so far had nothing to compute

    def get(self) -> LoadedModel:
        if self.loaded is None:
            from .. import pipeline

            model = self.settings
            print(f"Loading {model.model} ({model.weights or 'the zoo weights'}) ...", file=sys.stderr)
            try:
                self.loaded = pipeline.load_model(model, self._options, download_progress=True)
            except DensePoseGazeError as exc:
                raise Abort(exc) from exc  # nothing can run without the model
            except OSError as exc:  # the weights or their cache folder: unreadable, or a full disk
                raise Abort(DensePoseGazeError(f"Cannot load the weights of {model.model}: "
                                               f"{file_problem(exc)}.")) from exc
            print(f"Model: {self.loaded.predictor!r}", file=sys.stderr)
        return self.loaded


def _run_one(
    recording: Recording, model: ModelSettings, options: RunOptions, loaded: _LazyModel, stop: StopRequest
) -> Finished:
    from .. import pipeline
    from ..frame_selection import select_frames

    frames = select_frames(recording, options.selection)  # before the model loads: a bad selection fails fast
    # the model loads here for a new store, else when the run finds a frame to compute
    prepared = pipeline.prepare_run(recording, model, options, loaded=loaded, frames=frames)
    if stop():  # Ctrl-C while the model loaded
        return Finished("not started", {})
    store = prepared.store
    pending = set(store.pending(prepared.frames.tolist(), overwrite_edited=options.overwrite_edited,
                                gazed=prepared.coverage))
    kept = set(store.edited_frames().tolist())
    completed = pending & set(store.gazed_frames()) - kept
    damaged = len(pending & set(store.processed_frames().tolist()) - kept - completed)
    if damaged:
        print(f"note: {recording.name}: {damaged} damaged frame(s) of {store.folder} are computed again.",
              file=sys.stderr)
    if completed:
        print(f"note: {recording.name}: {len(completed)} frame(s) that had body parts only near the gaze get "
              "them for everyone now.", file=sys.stderr)
    bar = progress_bar(recording.name, len(pending))
    try:
        summary = pipeline.run_densepose(
            recording, prepared.load_predictor, store, prepared.frames,
            progress=lambda p: bar.update(p.done - bar.n),
            cancel=stop,
            overwrite_edited=options.overwrite_edited,
            guide=prepared.guide,
        )
    finally:
        bar.close()
    print(f"{recording.name}: results in {store.folder}", file=sys.stderr)
    rate = summary.frames_per_s
    return Finished("stopped" if summary.cancelled else "done", {
        "frames done": f"{summary.processed}/{summary.selected}",
        "skipped": str(summary.skipped_done + summary.skipped_edited + summary.skipped_claimed),
        "time [s]": f"{summary.seconds:.1f}",
        "frames/s": f"{rate:.2f}",
    })
