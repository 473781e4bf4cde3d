"""``densepose-gaze verify``: list the damaged frames of each recording's results store.

A frame is damaged when its stored files no longer match what was written
(:meth:`~napari_densepose_gaze.store.ResultsStore.verify`: a file deleted,
cut short or changed on disk). ``run`` computes damaged frames again.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .batch import Finished, StopRequest, for_each_recording, recordings_at
from .results import add_path_options, open_store

if TYPE_CHECKING:
    from ..recording import Recording

__all__ = ["add_verify"]

COLUMNS = ("processed", "damaged", "store")
_LISTED = 10  # damaged frame numbers quoted in the summary; every one is on its own line above it


def add_verify(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "verify",
        help="list the damaged frames of the results of a recording or of every recording of an export",
        description="Read every stored frame of each recording's results store and check it against the "
        "checksums written with it. Prints one line per damaged frame (recording, frame, what is wrong) and "
        "exits 1 if any frame is damaged; 'densepose-gaze run' with the same options computes them again.",
    )
    add_path_options(parser)
    parser.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    recordings = recordings_at(args.path)

    def work(recording: Recording, stop: StopRequest) -> Finished:
        label = recordings.labels[recording.folder]
        store = open_store(recording, recordings, args.results, args.command)
        damaged = store.verify()
        for frame, problem in damaged:
            print(f"{label}: frame {frame}: {problem}")
        cells = {"processed": str(len(store.processed_frames())), "damaged": str(len(damaged)),
                 "store": str(store.folder)}
        if not damaged:
            return Finished("ok", cells)
        frames = ", ".join(str(frame) for frame, _ in damaged[:_LISTED]) + (", ..." if len(damaged) > _LISTED else "")
        return Finished("damaged", cells, problem=f"{len(damaged)} damaged frame(s) ({frames}) in {store.folder}; "
                        "run 'densepose-gaze run' on it again with the options that made it to compute them again")

    return for_each_recording(recordings, work, COLUMNS, min_confidence=args.min_confidence)
