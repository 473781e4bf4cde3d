"""Which body parts of other people a wearer of Pupil Labs glasses looked at.

The core library (recording, video, engine, store, hits) imports neither Qt nor
napari; the napari face lives in :mod:`napari_densepose_gaze.ui`.
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import DensePoseGazeError

try:
    __version__ = version("napari-densepose-gaze")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["DensePoseGazeError", "__version__"]
