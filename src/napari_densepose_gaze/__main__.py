"""``python -m napari_densepose_gaze``: the ``densepose-gaze`` command line."""

from .cli import main

raise SystemExit(main())
