"""``python -m napari_densepose_gaze.ui [RECORDING] [--screenshot PNG]``: napari on a recording."""

from .launch import main

raise SystemExit(main())
