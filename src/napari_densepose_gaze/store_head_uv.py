"""The results store's head U, V arrays: how they are made, filled and read.

Why U, V are kept for head pixels only: they place the eyes, nose and mouth
on DensePose's head patches (:mod:`.face_regions`); elsewhere nothing reads
them, and two more full-frame float arrays would multiply the store's size. So
``head_u`` and ``head_v`` hold one uint8 code per pixel (:func:`.face_regions.encode_uv`,
0 = none) beside ``labels``, with the same chunks and codecs.

They count only where the label is still a head patch: a pixel painted off the
head loses them, one painted onto the head from another part has none (region
unknown), and one relabelled between 23 and 24 keeps its place on the head
(chart-23 U is the same on both halves). That holds however the labels were
painted (napari writes pixels straight into ``labels``; undo included), since
it is decided when the arrays are read (:func:`head_uv_values`), not when they
are written.

Stores made before U, V existed lack the arrays: they read as "no U, V" and
gain them (:func:`add_head_uv_arrays`) when opened for writing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import zarr

from .durable import fsync_dir
from .face_regions import HEAD_PARTS, decode_uv, encode_uv

__all__ = ["HEAD_UV_NAMES", "add_head_uv_arrays", "create_head_uv_array", "head_uv_codes", "head_uv_values"]

#: The arrays of head U, V codes (:func:`.face_regions.encode_uv`); optional, as older stores lack them.
HEAD_UV_NAMES = ("head_u", "head_v")


def create_head_uv_array(store: Path | zarr.Group, name: str | None, labels: zarr.Array) -> None:
    """An empty code array shaped, chunked and compressed like ``labels``: ``name`` in a group, or at a path."""
    settings = {
        "shape": labels.shape, "chunks": labels.chunks, "dtype": "uint8", "compressors": labels.compressors,
        "fill_value": 0, "dimension_names": ("frame", "y", "x"), "attributes": {"parts": list(HEAD_PARTS)},
    }
    if isinstance(store, zarr.Group):
        store.create_array(name, **settings)
    else:
        zarr.create_array(store=store, **settings)


def add_head_uv_arrays(folder: Path, labels: zarr.Array) -> None:
    """Give a store made without them the head U, V arrays, each put in place by one rename."""
    for name in HEAD_UV_NAMES:
        target = folder / name
        if (target / "zarr.json").is_file():
            continue
        tmp = folder / f".{name}.{uuid.uuid4().hex}.creating"
        try:
            create_head_uv_array(tmp, None, labels)
            os.rename(tmp, target)  # fails if another process put one there first: theirs is as good
        except OSError:
            if not (target / "zarr.json").is_file():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(folder)


def head_uv_codes(
    labels: np.ndarray, head_uv: tuple[np.ndarray, np.ndarray] | None, shape: tuple[int, int]
) -> dict[str, np.ndarray]:
    """The head U, V code maps of a frame: codes on head pixels, 0 (no value) elsewhere or without ``head_uv``."""
    if head_uv is None:
        return {name: np.zeros(shape, dtype=np.uint8) for name in HEAD_UV_NAMES}
    head = np.isin(labels, HEAD_PARTS)
    codes = {}
    for name, values in zip(HEAD_UV_NAMES, head_uv, strict=True):
        array = np.asarray(values)
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
        codes[name] = np.where(head, encode_uv(array), np.uint8(0))
    return codes


def head_uv_values(found: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(u23, v)`` float32 from a frame's ``labels`` and code maps: NaN wherever the label is not 23 or 24 now."""
    head = np.isin(found["labels"], HEAD_PARTS)
    u, v = (np.where(head, decode_uv(found[name]), np.float32(np.nan)) for name in HEAD_UV_NAMES)
    return u, v
