"""The ``densepose-gaze`` command line: the core library, headless, for whole studies.

``densepose-gaze models`` lists, downloads and checks the zoo weights;
``densepose-gaze run PATH`` runs DensePose over one recording or every
recording of an export, resumably; ``hits PATH`` writes the gaze hit tables,
``render PATH`` an overlay video and ``report PATH`` the dwell-time figures
from those results. Each subcommand is one ``_add_<name>``
function in :data:`_COMMANDS` that builds its parser and names its handler.

Exit codes: 0 all went well; 1 some recordings failed (the others were
processed) or a cached file is corrupt; 2 a usage error or a problem that
stopped everything (its message on stderr, no traceback); 130 stopped by Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from . import __version__
from .errors import DensePoseGazeError

if TYPE_CHECKING:  # the heavy modules load only when a command needs them
    from .pipeline import LoadedModel, RunSettings

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

_DEFAULT_MIN_SIZE, _DEFAULT_MAX_SIZE = 800, 1333  # Detectron2's test-time resize


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args, parser))
    except DensePoseGazeError as exc:
        print(f"densepose-gaze: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("densepose-gaze: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="densepose-gaze",
        description="Which body parts of other people a Pupil Labs glasses wearer looked at.",
        epilog="Exit codes: 0 ok, 1 some recordings failed, 2 error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser


# ---------------------------------------------------------------------- models
def _add_models(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="list the DensePose models, download or check their weights",
        description="List the DensePose model-zoo models (* marks the default), whether their weights "
        "are in the cache, and where. Downloads go to --cache-dir, else $NAPARI_DENSEPOSE_GAZE_CACHE, "
        "else the user cache folder.",
    )
    parser.add_argument("--download", metavar="NAME", help="download a model's weights (a zoo name, or 'all')")
    parser.add_argument("--verify", action="store_true",
                        help="check the SHA-256 prefix of every cached weights file (exit 1 if one is wrong)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="weights cache folder")
    parser.set_defaults(handler=_models)


def _models(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .engine.weights import cache_dir_for, resolve_weights
    from .engine.zoo import ZOO, get_config

    if args.download:
        names = list(ZOO) if args.download == "all" else [get_config(args.download).name]
        for name in names:
            print(f"Fetching {name} ...", file=sys.stderr)
            path = resolve_weights(name, cache_dir=args.cache_dir, progress=True)
            print(f"{name}: {path}", file=sys.stderr)
    status = _verify_cached(args.cache_dir) if args.verify else {}
    print(f"Weights cache: {cache_dir_for(args.cache_dir)}")
    _print_table(_model_rows(args.cache_dir, status), sys.stdout)
    bad = [name for name, ok in status.items() if not ok]
    if bad:
        print(f"densepose-gaze: {len(bad)} cached weights file(s) failed the check: {', '.join(bad)}. "
              "Delete them and download again (densepose-gaze models --download NAME).", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _verify_cached(cache_dir: Path | None) -> dict[str, bool]:
    """Zoo name -> whether its cached file matches the published SHA-256 prefix (cached files only)."""
    from .engine.weights import resolve_weights, weights_state
    from .engine.zoo import ZOO

    result: dict[str, bool] = {}
    for name in ZOO:
        if weights_state(name, cache_dir) != "downloaded":
            continue
        try:
            resolve_weights(name, cache_dir=cache_dir, download=False, progress=False)
            result[name] = True
        except DensePoseGazeError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            result[name] = False
    return result


def _model_rows(cache_dir: Path | None, verified: dict[str, bool]) -> list[dict[str, str]]:
    from .engine.weights import cached_path, weights_state
    from .engine.zoo import DEFAULT_MODEL, ZOO

    rows = []
    for name, cfg in ZOO.items():
        state = weights_state(name, cache_dir)
        if name in verified:
            state = "verified" if verified[name] else "CORRUPT"
        rows.append({
            "": "*" if name == DEFAULT_MODEL else "",
            "model": name,
            "weights": state,
            "path": str(cached_path(cfg, cache_dir)),
        })
    return rows


# ------------------------------------------------------------------------- run
def _add_run(commands: argparse._SubParsersAction) -> None:
    from .engine.zoo import DEFAULT_MODEL

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
    model.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    model.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                       help="compute precision (auto: bfloat16 on CUDA, else float32)")
    model.add_argument("--score-threshold", type=float, default=0.7, metavar="S",
                       help="keep person detections scoring at least S (default 0.7)")
    model.add_argument("--batch-size", type=_positive_int, metavar="N",
                       help="frames per batch (default 8 on CUDA, else 1)")
    model.add_argument("--input-size", type=_positive_int, default=_DEFAULT_MIN_SIZE, metavar="PX",
                       help=f"shortest edge of the network input in pixels (default {_DEFAULT_MIN_SIZE}); "
                       "smaller is faster and finds fewer small people")
    model.add_argument("--max-input-size", type=_positive_int, metavar="PX",
                       help=f"longest edge cap (default {_DEFAULT_MAX_SIZE} scaled like --input-size)")
    frames = parser.add_argument_group("frames")
    frames.add_argument("--frames", default="all", choices=("all", "gaze", "fixations"),
                        help="all frames, frames with valid gaze, or one key frame per fixation (default all)")
    frames.add_argument("--every", type=_positive_int, default=1, metavar="N",
                        help="every Nth frame (with --frames all)")
    frames.add_argument("--first", type=_non_negative_int, metavar="N", help="start at frame N (0-based)")
    frames.add_argument("--last", type=_non_negative_int, metavar="N", help="end with frame N (included)")
    frames.add_argument("--start", metavar="EVENT", help="start at the first event of this name (events.csv)")
    frames.add_argument("--end", metavar="EVENT", help="end at the first event of this name after the start")
    output = parser.add_argument_group("output")
    output.add_argument("--output", type=Path, metavar="DIR",
                        help="for a recording folder: its results store; for an export: the folder that "
                        "holds one store per recording (<recording>.densepose). Default: beside each recording")
    output.add_argument("--overwrite-edited", action="store_true",
                        help="redo frames that were corrected by hand (their corrections are lost)")
    parser.set_defaults(handler=_run)


@dataclasses.dataclass
class _Outcome:
    """One line of the summary table."""

    recording: str
    selected: int = 0
    processed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    status: str = "not started"
    problem: str = ""  # why it failed

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "error")


class _CtrlC:
    """Turns the first Ctrl-C into a polite stop request; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Callable | int | None = None

    def __enter__(self) -> _CtrlC:
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


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .frame_selection import FrameSelection
    from .pipeline import RunSettings, default_max_input_size
    from .recording import find_recordings, is_recording_folder

    if args.every > 1 and args.frames != "all":
        parser.error("--every applies to --frames all only")
    if args.first is not None and args.last is not None and args.last < args.first:
        parser.error(f"--last {args.last} comes before --first {args.first}")
    if args.weights is not None and not args.weights.is_file():
        raise DensePoseGazeError(f"--weights {args.weights} is not a file: pass an existing checkpoint.")
    path = args.path.expanduser()
    recordings = find_recordings(path)
    if not recordings:
        raise DensePoseGazeError(
            f"{path} holds no Pupil Cloud recording (no folder with world_timestamps.csv, gaze.csv or an .mp4). "
            "Pass the unzipped 'Timeseries Data + Scene Video' export or one recording folder in it."
        )
    single = is_recording_folder(path) or path.is_file()
    selection = FrameSelection(
        mode=args.frames,
        step=args.every,
        start=args.first,
        stop=None if args.last is None else args.last + 1,
        start_event=args.start,
        end_event=args.end,
    )
    max_size = args.max_input_size or default_max_input_size(args.input_size)
    settings = RunSettings(
        model=args.model,
        weights=args.weights,
        device=args.device,
        precision=args.precision,
        score_threshold=args.score_threshold,
        batch_size=args.batch_size,
        selection=selection,
        overwrite_edited=args.overwrite_edited,
        cache_dir=args.cache_dir,
        input_size=args.input_size,
        max_input_size=max_size,
    )
    outcomes = [_Outcome(folder.name) for folder in recordings]
    model = _LazyModel(settings)  # loaded once, at the first recording that gets that far
    with _CtrlC() as stop:
        for folder, outcome in zip(recordings, outcomes):
            if stop():
                break
            store_folder = _store_folder(folder, args.output, single)
            try:
                _run_one(folder, dataclasses.replace(settings, output=store_folder), model, outcome, stop)
            except _ModelFailed as failed:
                raise failed.error from None  # nothing can run without the model
            except DensePoseGazeError as exc:
                outcome.status, outcome.problem = "failed", str(exc)
                print(f"densepose-gaze: {folder.name}: {exc}", file=sys.stderr)
            except Exception as exc:  # a bug, not the user's doing: show it, then carry on with the others
                outcome.status, outcome.problem = "error", f"unexpected {type(exc).__name__} (traceback above)"
                print(f"densepose-gaze: unexpected error on {folder}:", file=sys.stderr)
                traceback.print_exc()
    print()
    _print_table([_summary_row(o) for o in outcomes], sys.stdout)
    failed = [o for o in outcomes if o.failed]
    if failed:
        reasons = "".join(f"\n  {o.recording}: {o.problem}" for o in failed)
        print(f"densepose-gaze: {len(failed)} of {len(outcomes)} recording(s) failed:{reasons}", file=sys.stderr)
    if stop():
        print("densepose-gaze: stopped by Ctrl-C; run the same command again to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


class _ModelFailed(Exception):
    """The model could not be loaded: every recording would fail the same way."""

    def __init__(self, error: DensePoseGazeError) -> None:
        super().__init__(str(error))
        self.error = error


class _LazyModel:
    """The model of a run, loaded on first use and shared by all recordings."""

    def __init__(self, settings: RunSettings) -> None:
        self._settings = settings
        self._model: LoadedModel | None = None

    def get(self) -> LoadedModel:
        if self._model is None:
            from .pipeline import load_model

            what = self._settings.weights or "the zoo weights"
            print(f"Loading {self._settings.model} ({what}) ...", file=sys.stderr)
            try:
                self._model = load_model(self._settings, download_progress=True)
            except DensePoseGazeError as exc:
                raise _ModelFailed(exc) from exc
            print(f"Model: {self._model.predictor!r}", file=sys.stderr)
        return self._model


def _store_folder(recording: Path, output: Path | None, single: bool) -> Path | None:
    if output is None:
        return None
    if single:
        return output.expanduser()
    from .store import ResultsStore

    # one store per recording, named as it would be beside the recording
    return ResultsStore.default_folder(output.expanduser() / recording.name)


def _run_one(folder: Path, settings: RunSettings, model: _LazyModel, outcome: _Outcome, stop: _CtrlC) -> None:
    from .frame_selection import select_frames
    from .pipeline import prepare_run, run_densepose
    from .recording import ExportWarning, Recording

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)  # printed below, one line each
        recording = Recording.open(folder)
    for note in recording.warnings:
        print(f"note: {note}", file=sys.stderr)
    select_frames(recording, settings.selection)  # a bad selection fails before the model loads
    prepared = prepare_run(recording, settings, model=model.get())
    if stop():  # Ctrl-C while the model loaded
        return
    store = prepared.store
    pending = len(store.pending(prepared.frames.tolist(), overwrite_edited=settings.overwrite_edited))
    bar = _progress_bar(recording.name, pending)
    try:
        summary = run_densepose(
            recording, prepared.predictor, store, prepared.frames,
            progress=lambda p: bar.update(p.done - bar.n),
            cancel=stop,
            overwrite_edited=settings.overwrite_edited,
        )
    finally:
        bar.close()
    outcome.selected = summary.selected
    outcome.processed = summary.processed
    outcome.skipped = summary.skipped_done + summary.skipped_edited
    outcome.seconds = summary.seconds
    outcome.status = "stopped" if summary.cancelled else "done"
    print(f"{recording.name}: results in {store.folder}", file=sys.stderr)


def _progress_bar(name: str, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=True)


def _summary_row(o: _Outcome) -> dict[str, str]:
    ran = o.status in ("done", "stopped")
    rate = o.processed / o.seconds if o.seconds > 0 else 0.0
    return {
        "recording": o.recording,
        "frames done": f"{o.processed}/{o.selected}" if ran else "-",
        "skipped": str(o.skipped) if ran else "-",
        "time [s]": f"{o.seconds:.1f}" if ran else "-",
        "frames/s": f"{rate:.2f}" if ran else "-",
        "status": o.status,
    }


# --------------------------------------------------------- hits, render, report
_VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")


def _add_results_options(parser: argparse.ArgumentParser, hit_settings: bool = True) -> None:
    """Options shared by the commands that read results: where the stores are, the hit radius."""
    parser.add_argument("path", type=Path, metavar="PATH", help="a recording folder or an export folder")
    parser.add_argument("--results", type=Path, metavar="DIR",
                        help="where 'run --output' wrote the results: for a recording folder its results store, "
                        "for an export the folder holding <recording>.densepose stores. Default: beside each recording")
    if hit_settings:
        hit = parser.add_argument_group("hit definition (docs/hits.md)")
        hit.add_argument("--radius", type=_non_negative_float, metavar="R",
                         help="tolerance around the gaze point (default: the device's gaze accuracy, "
                         "1.8 deg for Neon, 4.6 deg for Invisible); 0 counts exact hits only")
        hit.add_argument("--unit", choices=("px", "deg"),
                         help="unit of --radius: scene video pixels or degrees of visual angle (default px)")


def _hit_settings(args: argparse.Namespace, parser: argparse.ArgumentParser):
    from .hits import HitSettings

    if args.radius is None:
        if args.unit is not None:
            parser.error("--unit needs --radius")
        return None  # each recording's default (hits.default_radius)
    return HitSettings(args.radius, args.unit or "px")


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text}")
    return value


@dataclasses.dataclass
class _Loaded:
    """A recording with its results store, ready for the hit commands."""

    recording: object
    store: object
    single: bool


def _for_each_recording(
    args: argparse.Namespace,
    work: Callable[[_Loaded, _Outcome, _CtrlC], dict[str, str]],
    columns: Sequence[str],
) -> int:
    """Open every recording of ``args.path`` with its results store and call ``work`` on each.

    Like ``run``: a recording that fails is reported and the others go on; the
    summary table lists each one; exit 1 if any failed, 130 after Ctrl-C.
    ``work`` returns the summary cells of ``columns`` for its recording.
    """
    from .recording import find_recordings, is_recording_folder

    path = args.path.expanduser()
    # a results store holding an overlay video looks like a recording (an .mp4): never one
    recordings = [f for f in find_recordings(path) if not (f / "zarr.json").is_file()]
    if not recordings:
        raise DensePoseGazeError(
            f"{path} holds no Pupil Cloud recording (no folder with world_timestamps.csv, gaze.csv or an .mp4). "
            "Pass the unzipped 'Timeseries Data + Scene Video' export or one recording folder in it."
        )
    single = is_recording_folder(path) or path.is_file()
    outcomes = [_Outcome(folder.name) for folder in recordings]
    cells: dict[str, dict[str, str]] = {}
    with _CtrlC() as stop:
        for folder, outcome in zip(recordings, outcomes):
            if stop():
                break
            try:
                loaded = _open_results(folder, args.results, single, args.command)
                cells[folder.name] = work(loaded, outcome, stop)
                outcome.status = "stopped" if stop() else "done"
            except DensePoseGazeError as exc:
                outcome.status, outcome.problem = "failed", str(exc)
                print(f"densepose-gaze: {folder.name}: {exc}", file=sys.stderr)
            except Exception:  # a bug, not the user's doing: show it, then carry on with the others
                outcome.status, outcome.problem = "error", "unexpected error (traceback above)"
                print(f"densepose-gaze: unexpected error on {folder}:", file=sys.stderr)
                traceback.print_exc()
    print()
    rows = [{"recording": o.recording, **{c: cells.get(o.recording, {}).get(c, "-") for c in columns},
             "status": o.status} for o in outcomes]
    _print_table(rows, sys.stdout)
    failed = [o for o in outcomes if o.failed]
    if failed:
        reasons = "".join(f"\n  {o.recording}: {o.problem}" for o in failed)
        print(f"densepose-gaze: {len(failed)} of {len(outcomes)} recording(s) failed:{reasons}", file=sys.stderr)
    if stop():
        print("densepose-gaze: stopped by Ctrl-C.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


def _open_results(folder: Path, results: Path | None, single: bool, command: str) -> _Loaded:
    from .recording import ExportWarning, Recording
    from .store import ResultsStore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)  # printed below, one line each
        recording = Recording.open(folder)
    for note in recording.warnings:
        print(f"note: {note}", file=sys.stderr)
    store_folder = _store_folder(folder, results, single) or ResultsStore.default_folder(folder)
    if not store_folder.is_dir():
        raise DensePoseGazeError(
            f"no DensePose results at {store_folder}: run 'densepose-gaze run {folder}' first"
            f"{' (with the same --output as --results here)' if results else ''}, then '{command}' again."
        )
    store = ResultsStore.open(store_folder)
    if len(store.processed_frames()) == 0:
        raise DensePoseGazeError(
            f"the results store {store_folder} has no processed frame yet: run 'densepose-gaze run {folder}' "
            f"first, then '{command}' again."
        )
    return _Loaded(recording, store, single)


def _output_folder(output: Path | None, loaded: _Loaded, default_name: str) -> Path:
    """``--output`` itself for one recording, ``<output>/<recording>`` for an export, else ``<store>/<name>``."""
    if output is None:
        return loaded.store.folder / default_name
    output = output.expanduser()
    return output if loaded.single else output / loaded.recording.name


def _compute_tables(loaded: _Loaded, settings, stop: _CtrlC):
    from .hits import compute_hits

    recording = loaded.recording
    bar = _progress_bar(f"{recording.name} hits", recording.n_frames)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if stop():
            raise KeyboardInterrupt  # compute_hits stops when its progress callback raises

    try:
        return compute_hits(recording, loaded.store, settings, progress=progress)
    finally:
        bar.close()


def _add_hits(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "hits",
        help="write the gaze hit tables (CSV) of a recording or every recording of an export",
        description="Compute which body part of whom each gaze sample hit (docs/hits.md) from the results of "
        "'run', and write every table as CSV: gaze_hits, frame_hits, fixation_hits, part_hits, group_hits, "
        "person_hits, hit_settings.json, and the files of pupil-labs/densepose-module (densepose.csv, "
        "parts_count.csv).",
    )
    _add_results_options(parser)
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="for a recording folder: the folder for its tables; for an export: one subfolder per "
                        "recording in DIR. Default: <results store>/hits")
    parser.add_argument("--no-peer", action="store_true",
                        help="leave out densepose.csv and parts_count.csv (the densepose-module files)")
    parser.set_defaults(handler=_hits)


def _hits(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .hit_export import export_recording_hits

    settings = _hit_settings(args, parser)

    def work(loaded: _Loaded, outcome: _Outcome, stop: _CtrlC) -> dict[str, str]:
        tables = _compute_tables(loaded, settings, stop)
        folder = _output_folder(args.output, loaded, "hits")
        export_recording_hits(tables, folder, loaded.recording, loaded.store, peer=not args.no_peer)
        print(f"{loaded.recording.name}: hit tables in {folder}", file=sys.stderr)
        return _hit_cells(tables) | {"output": str(folder)}

    return _run_hit_command(args, work, ("hit samples", "dwell [s]", "most looked-at part", "output"))


def _hit_cells(tables) -> dict[str, str]:
    parts = tables.parts
    total = float(parts["dwell time [s]"].sum())
    top = parts.loc[parts["dwell time [s]"].idxmax()] if total > 0 else None
    return {
        "hit samples": str(int(parts["samples"].sum())),
        "dwell [s]": f"{total:.2f}",
        "most looked-at part": "-" if top is None else str(top["part"]),
    }


def _run_hit_command(args: argparse.Namespace, work, columns: Sequence[str]) -> int:
    try:
        return _for_each_recording(args, work, columns)
    except KeyboardInterrupt:  # raised through a progress bar by the first Ctrl-C
        print("densepose-gaze: stopped by Ctrl-C.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _add_render(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "render",
        help="write an overlay video: body parts, gaze circle and the part looked at over the scene video",
        description="Write the scene video with the DensePose parts blended in (processed frames), the gaze "
        "circle (the hit radius) and the name of the part looked at, as H.264 at the original frame rate "
        "with the original audio.",
    )
    _add_results_options(parser)
    parser.add_argument("--output", type=Path, metavar="FILE_OR_DIR",
                        help="a video file (.mp4, .mkv, .mov; one recording only) or a folder for "
                        "<recording>_overlay.mp4 files. Default: <results store>/overlay.mp4")
    parser.add_argument("--opacity", type=float, default=0.5, metavar="A",
                        help="opacity of the part colours, 0..1 (default 0.5)")
    parser.set_defaults(handler=_render)


def _render(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .render import render_overlay

    settings = _hit_settings(args, parser)
    output = args.output.expanduser() if args.output is not None else None
    to_file = output is not None and output.suffix.lower() in _VIDEO_SUFFIXES
    if not 0.0 <= args.opacity <= 1.0:
        parser.error(f"--opacity must lie between 0 and 1, not {args.opacity}")

    def work(loaded: _Loaded, outcome: _Outcome, stop: _CtrlC) -> dict[str, str]:
        recording = loaded.recording
        if to_file and not loaded.single:
            raise DensePoseGazeError(f"--output {output} is a file but PATH is an export of several recordings: "
                                     "give a folder instead.")
        if output is None:
            target = loaded.store.folder / "overlay.mp4"
        elif to_file:
            target = output
        else:
            target = output / f"{recording.name}_overlay.mp4"
        tables = _compute_tables(loaded, settings, stop)
        bar = _progress_bar(f"{recording.name} video", recording.n_frames)
        try:
            written = render_overlay(recording, loaded.store, tables, target, alpha=args.opacity,
                                     progress=lambda done, total: bar.update(done - bar.n), cancel=stop)
        finally:
            bar.close()
        if written is None:
            return {"output": "-"}
        print(f"{recording.name}: overlay video {written}", file=sys.stderr)
        return {"frames": str(recording.n_frames), "output": str(written)}

    return _run_hit_command(args, work, ("frames", "output"))


def _add_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="write figures: a body heatmap of dwell time per part and a bar chart of dwell per part and person",
        description="Write, per recording, body_heatmap.png/.svg (front and back body diagram, each of the 24 "
        "parts coloured by dwell time) and dwell_per_person.png/.svg (dwell time per part, per person).",
    )
    _add_results_options(parser)
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="for a recording folder: the folder for its figures; for an export: one subfolder per "
                        "recording in DIR. Default: <results store>/report")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .figures import write_report

    settings = _hit_settings(args, parser)

    def work(loaded: _Loaded, outcome: _Outcome, stop: _CtrlC) -> dict[str, str]:
        tables = _compute_tables(loaded, settings, stop)
        folder = _output_folder(args.output, loaded, "report")
        name = loaded.recording.name
        write_report(tables, folder, name=name)
        print(f"{name}: figures in {folder}", file=sys.stderr)
        return _hit_cells(tables) | {"output": str(folder)}

    return _run_hit_command(args, work, ("hit samples", "dwell [s]", "most looked-at part", "output"))


# -------------------------------------------------------------------- helpers
def _print_table(rows: list[dict[str, str]], file: TextIO) -> None:
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip(), file=file)
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip(), file=file)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_models, _add_run, _add_hits, _add_render, _add_report,
)
