"""npe2 sample data: a small synthetic recording, generated offline and cached."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pooch

from .. import __version__
from ..synthetic.export import SAMPLE_SETTINGS, write_recording
from .reader import LayerData, read_recording

#: environment variable that moves the cache (tests point it at a temporary folder)
CACHE_ENV = "NAPARI_DENSEPOSE_GAZE_CACHE"


def cache_dir() -> Path:
    """Where generated samples are kept: $NAPARI_DENSEPOSE_GAZE_CACHE, else the user cache."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path(pooch.os_cache("napari-densepose-gaze"))


def sample_recording_folder(**settings: Any) -> Path:
    """The folder of a synthetic recording, generated on first use.

    ``settings`` (device, size, seconds, fps, seed) override those of the sample,
    :data:`~napari_densepose_gaze.synthetic.export.SAMPLE_SETTINGS`.
    """
    unknown = set(settings) - set(SAMPLE_SETTINGS)
    if unknown:
        raise TypeError(f"unknown sample settings: {sorted(unknown)}")
    settings = {**SAMPLE_SETTINGS, **settings}
    width, height = settings["size"]
    # the package version is part of the key: a newer generator never serves an old sample
    key = (f"synthetic-{settings['device']}-{settings['seconds']:g}s-{width}x{height}-{settings['fps']}fps"
           f"-seed{settings['seed']}-v{__version__}")
    entry = cache_dir() / "samples" / key
    if not entry.is_dir():
        entry.parent.mkdir(parents=True, exist_ok=True)
        # generate beside the entry and rename into place, so an interrupted or a
        # concurrent generation never leaves a half-written sample behind
        partial = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=entry.parent))
        try:
            write_recording(partial, **settings)
            try:
                partial.rename(entry)
            except OSError:
                if not entry.is_dir():  # not another process winning the race: a real failure
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return entry


def synthetic_recording() -> list[LayerData]:
    """npe2 sample: a few seconds of figures moving, the wearer's gaze following them."""
    return read_recording(str(sample_recording_folder()))
