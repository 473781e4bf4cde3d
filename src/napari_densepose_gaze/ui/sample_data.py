"""npe2 sample data: a small synthetic recording, generated offline and cached."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pooch

from .. import __version__
from ..synthetic.export import write_recording
from .reader import LayerData, read_recording

#: environment variable that moves the cache (tests point it at a temporary folder)
CACHE_ENV = "NAPARI_DENSEPOSE_GAZE_CACHE"

SAMPLE_DEVICE = "neon"
SAMPLE_SECONDS = 4.0
SAMPLE_SIZE = (640, 480)  # width, height: small enough to generate in seconds, big enough to see
SAMPLE_SEED = 0


def cache_dir() -> Path:
    """Where generated samples are kept: $NAPARI_DENSEPOSE_GAZE_CACHE, else the user cache."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path(pooch.os_cache("napari-densepose-gaze"))


def sample_recording_folder(
    device: str = SAMPLE_DEVICE,
    seconds: float = SAMPLE_SECONDS,
    size: tuple[int, int] = SAMPLE_SIZE,
    seed: int = SAMPLE_SEED,
) -> Path:
    """The folder of a synthetic recording with these parameters, generated on first use."""
    width, height = size
    # the package version is part of the key: a newer generator never serves an old sample
    key = f"synthetic-{device}-{seconds:g}s-{width}x{height}-seed{seed}-v{__version__}"
    entry = cache_dir() / "samples" / key
    if not entry.is_dir():
        entry.parent.mkdir(parents=True, exist_ok=True)
        # generate beside the entry and rename into place, so an interrupted or a
        # concurrent generation never leaves a half-written sample behind
        partial = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=entry.parent))
        try:
            write_recording(partial, device=device, seconds=seconds, size=size, seed=seed)
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
