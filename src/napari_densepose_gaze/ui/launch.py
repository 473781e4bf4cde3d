"""Start napari on a recording (or the synthetic sample), ready to look at: ``python -m napari_densepose_gaze.ui``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DensePoseGazeError

PLUGIN = "napari-densepose-gaze"


def show_recording(viewer, path: str | Path | None = None) -> None:
    """Open ``path`` (default: the synthetic sample) with Recording info, Run DensePose and the part legend docked.

    The view starts in the middle of the longest fixation, where the gaze ring
    rests on something.
    """
    # imported here like napari in main(): --help stays quick
    from .layer_roles import FIXATIONS, GAZE
    from .part_legend import PartLegendWidget
    from .session import find_layer, session_of

    if path is None:
        layers = viewer.open_sample(PLUGIN, "synthetic_recording")
    else:
        layers = viewer.open(path, plugin=PLUGIN)
    viewer.window.add_plugin_dock_widget(PLUGIN, "Recording info")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Run DensePose")
    viewer.window.add_dock_widget(PartLegendWidget(viewer), name="Body parts", area="left")
    session = session_of(layers[0])
    gaze, fixations = find_layer(viewer, GAZE, session), find_layer(viewer, FIXATIONS, session)
    viewer.layers.selection.active = gaze
    if len(fixations.data):
        ids = fixations.features["fixation id"].to_numpy()
        values, counts = np.unique(ids, return_counts=True)
        longest = values[np.argmax(counts)]
        viewer.dims.set_current_step(0, int(np.median(fixations.data[ids == longest, 0])))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_densepose_gaze.ui",
        description="Open a Pupil Cloud recording (default: a synthetic sample) in napari.",
    )
    parser.add_argument("recording", nargs="?", help="recording folder, its .mp4, or an export root with one recording")
    parser.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window there and exit")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-densepose-gaze")
    viewer.window.resize(1400, 860)
    try:
        show_recording(viewer, args.recording)
    except DensePoseGazeError as err:
        print(f"error: {err}", file=sys.stderr)
        viewer.close()
        return 1
    if args.screenshot:
        for _ in range(10):  # let Qt lay out the dock widget before fitting the view to the canvas
            QApplication.processEvents()
        viewer.reset_view()
        QApplication.processEvents()
        out = Path(args.screenshot)
        out.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(out), canvas_only=False, flash=False)
        viewer.close()
        print(out)
        return 0
    napari.run()
    return 0
