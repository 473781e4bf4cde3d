"""``densepose-gaze hits / render / report``: what the results of ``run`` give, per recording.

Each reads a recording's results store, computes its gaze hit tables and
writes them: as CSV tables (hits), an overlay video (render) or figures (report).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DensePoseGazeError
from .arguments import (
    VIDEO_SUFFIXES,
    add_hit_radius,
    add_min_confidence,
    folder_path,
    hit_settings,
    video_or_folder_path,
)
from .batch import Finished, Recordings, Stopped, StopRequest, for_each_recording, recordings_at
from .printing import progress_bar

if TYPE_CHECKING:
    from ..hits import HitSettings, HitTables
    from ..recording import Recording
    from ..store import ResultsStore

__all__ = ["add_hits", "add_render", "add_report", "add_path_options", "open_store"]

_HIT_COLUMNS = ("hit samples", "dwell [s]", "most looked-at part", "output")


@dataclass(frozen=True)
class _Results:
    """A recording with its results store, ready for the hit commands."""

    recording: Recording
    store: ResultsStore
    recordings: Recordings  # all that PATH names, this one among them

    @property
    def label(self) -> str:
        """The name of this recording's outputs among those of PATH."""
        return self.recordings.labels[self.recording.folder]

    def output_folder(self, output: Path | None, default_name: str) -> Path:
        """``output`` itself for one recording, ``<output>/<label>`` for an export, else ``<store>/<name>``."""
        if output is None:
            return self.store.folder / default_name
        return self.recordings.output_folder(self.recording.folder, output)


#: What a hit command does with one recording's results: its summary cells.
_ResultsWork = Callable[[_Results, StopRequest], dict[str, str]]


def add_path_options(parser: argparse.ArgumentParser) -> None:
    """PATH and ``--results``: the recordings, and where their results stores are."""
    parser.add_argument("path", type=Path, metavar="PATH",
                        help="a recording folder (or its scene video) or an export folder")
    parser.add_argument("--results", type=folder_path, metavar="DIR",
                        help="where 'run --output' wrote the results: for a recording folder its results store, "
                        "for an export the folder holding <recording>.densepose stores. Default: beside each recording")
    add_min_confidence(parser)


def _add_results_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that read results: where the stores are, the hit radius."""
    add_path_options(parser)
    add_hit_radius(parser.add_argument_group("hit definition (docs/hits.md)"))


def _for_each_result(
    args: argparse.Namespace, work: _ResultsWork, columns: Sequence[str], recordings: Recordings | None = None
) -> int:
    """Run ``work`` on the results of every recording of ``args.path`` (see :func:`for_each_recording`)."""
    if recordings is None:
        recordings = recordings_at(args.path)

    def open_and_work(recording: Recording, stop: StopRequest) -> Finished:
        cells = work(_open_results(recording, recordings, args.results, args.command), stop)
        return Finished("stopped" if stop() else "done", cells)

    return for_each_recording(recordings, open_and_work, columns, min_confidence=args.min_confidence)


def open_store(recording: Recording, recordings: Recordings, results: Path | None, command: str) -> ResultsStore:
    """The results store of ``recording``, read-only; an error that says to run first if there is none."""
    from ..store import ResultsStore

    folder = recording.folder
    store_folder = recordings.store_folder(folder, results) or ResultsStore.default_folder(folder)
    if not store_folder.is_dir():
        raise DensePoseGazeError(
            f"no DensePose results at {store_folder}: run 'densepose-gaze run {folder}' first"
            f"{' (with the same --output as --results here)' if results else ''}, then '{command}' again."
        )
    return ResultsStore.open(store_folder)


def _open_results(recording: Recording, recordings: Recordings, results: Path | None, command: str) -> _Results:
    folder = recording.folder
    store = open_store(recording, recordings, results, command)
    store_folder = store.folder
    if len(store.processed_frames()) == 0:
        raise DensePoseGazeError(
            f"the results store {store_folder} has no processed frame yet: run 'densepose-gaze run {folder}' "
            f"first, then '{command}' again."
        )
    return _Results(recording, store, recordings)


def _compute_tables(results: _Results, settings: HitSettings | None, stop: StopRequest) -> HitTables:
    from ..hits import compute_hits

    recording = results.recording
    bar = progress_bar(f"{recording.name} hits", recording.n_frames)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if stop():
            raise Stopped  # compute_hits stops when its progress callback raises

    try:
        tables = compute_hits(recording, results.store, settings, progress=progress)
    finally:
        bar.close()
    for note in tables.notes:
        print(f"{results.label}: note: {note}", file=sys.stderr)
    return tables


def _hit_cells(tables: HitTables) -> dict[str, str]:
    parts = tables.parts
    total = float(parts["dwell time [s]"].sum())
    top = parts.loc[parts["dwell time [s]"].idxmax()] if total > 0 else None
    return {
        "hit samples": str(int(parts["samples"].sum())),
        "dwell [s]": f"{total:.2f}",
        "most looked-at part": "-" if top is None else str(top["part"]),
    }


# -------------------------------------------------------------------- hits
def add_hits(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "hits",
        help="write the gaze hit tables (CSV) of a recording or every recording of an export",
        description="Compute which body part of whom each gaze sample hit (docs/hits.md) from the results of "
        "'run', and write every table as CSV: gaze_hits, frame_hits, fixation_hits, part_hits, group_hits, "
        "person_hits, hit_settings.json, and the files of pupil-labs/densepose-module (densepose.csv, "
        "parts_count.csv, gazemap.png; densepose.mp4 with --peer-video; docs/switching_from_densepose_module.md), "
        "and the face files (gaze_on_face.csv, fixations_on_face.csv, gaze_on_face_landmarks.csv, region_hits.csv: "
        "docs/hits.md).",
    )
    _add_results_options(parser)
    parser.add_argument("--output", type=folder_path, metavar="DIR",
                        help="for a recording folder: the folder for its tables; for an export: one subfolder per "
                        "recording in DIR. A folder that holds another recording's tables is refused (every table "
                        "names its recording, for pooling). Default: <results store>/hits")
    parser.add_argument("--no-peer", action="store_true",
                        help="leave out densepose.csv, parts_count.csv and gazemap.png (the densepose-module files)")
    parser.add_argument("--peer-video", action="store_true",
                        help="also write densepose.mp4, the overlay video under the densepose-module's name")
    parser.set_defaults(handler=_hits)


def _hits(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..hit_export import export_recording_hits

    settings = hit_settings(args, parser)

    def work(results: _Results, stop: StopRequest) -> dict[str, str]:
        tables = _compute_tables(results, settings, stop)
        folder = results.output_folder(args.output, "hits")
        export_recording_hits(tables, folder, results.recording, results.store, peer=not args.no_peer,
                              peer_video=args.peer_video and not args.no_peer)
        print(f"{results.label}: hit tables in {folder}", file=sys.stderr)
        return _hit_cells(tables) | {"output": str(folder)}

    return _for_each_result(args, work, _HIT_COLUMNS)


# ------------------------------------------------------------------ render
def add_render(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "render",
        help="write an overlay video: body parts, gaze circle and the part looked at over the scene video",
        description="Write the scene video with the DensePose parts blended in (processed frames), the gaze "
        "circle (the hit radius) and the name of the part looked at, as H.264 at the original frame rate "
        "with the original audio.",
    )
    _add_results_options(parser)
    parser.add_argument("--output", type=video_or_folder_path, metavar="FILE_OR_DIR",
                        help=f"a video file ({', '.join(VIDEO_SUFFIXES)}; one recording only) or a folder for "
                        "<recording>_overlay.mp4 files. Default: <results store>/overlay.mp4")
    parser.add_argument("--opacity", type=float, default=0.5, metavar="A",
                        help="opacity of the part colours, 0..1 (default 0.5)")
    parser.set_defaults(handler=_render)


def _render(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..render import render_overlay

    settings = hit_settings(args, parser)
    output = args.output
    to_file = output is not None and output.suffix.lower() in VIDEO_SUFFIXES
    if not 0.0 <= args.opacity <= 1.0:
        parser.error(f"--opacity must lie between 0 and 1, not {args.opacity}")
    recordings = recordings_at(args.path)
    if to_file and not recordings.single:  # every recording's video would be written over the last one's
        raise DensePoseGazeError(f"--output {output} is a file but {args.path} is an export of several "
                                 "recordings: give a folder for their videos instead.")

    def work(results: _Results, stop: StopRequest) -> dict[str, str]:
        recording = results.recording
        if output is None:
            target = results.store.folder / "overlay.mp4"
        elif to_file:
            target = output
        else:
            target = output / f"{results.label}_overlay.mp4"
        tables = _compute_tables(results, settings, stop)
        bar = progress_bar(f"{recording.name} video", recording.n_frames)
        try:
            written = render_overlay(recording, results.store, tables, target, alpha=args.opacity,
                                     progress=lambda done, total: bar.update(done - bar.n), cancel=stop)
        finally:
            bar.close()
        if written is None:
            return {"output": "-"}
        print(f"{results.label}: overlay video {written}", file=sys.stderr)
        return {"frames": str(recording.n_frames), "output": str(written)}

    return _for_each_result(args, work, ("frames", "output"), recordings)


# ------------------------------------------------------------------ report
def add_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="write figures: a body heatmap of dwell time per part and a bar chart of dwell per part and person",
        description="Write, per recording, body_heatmap.png/.svg (front and back body diagram, each of the 24 "
        "parts coloured by dwell time) and dwell_per_person.png/.svg (dwell time per part, per person).",
    )
    _add_results_options(parser)
    parser.add_argument("--output", type=folder_path, metavar="DIR",
                        help="for a recording folder: the folder for its figures; for an export: one subfolder per "
                        "recording in DIR. Default: <results store>/report")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..figures import write_report

    settings = hit_settings(args, parser)

    def work(results: _Results, stop: StopRequest) -> dict[str, str]:
        tables = _compute_tables(results, settings, stop)
        folder = results.output_folder(args.output, "report")
        write_report(tables, folder, name=results.recording.name)  # the figures' title
        print(f"{results.label}: figures in {folder}", file=sys.stderr)
        return _hit_cells(tables) | {"output": str(folder)}

    return _for_each_result(args, work, _HIT_COLUMNS)
