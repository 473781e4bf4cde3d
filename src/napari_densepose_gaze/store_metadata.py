"""The run metadata a results store keeps, and the rule that keeps one store from mixing two runs' results.

The metadata (model, checkpoint SHA-256, score threshold, device, date, ...)
live in the store group's attributes as JSON. Some of them decide what the
stored frames are (:data:`RESULT_DEFINING_KEYS`): a run that differs in one of
them must not add frames to the store, or the store would mix two models or
thresholds without saying so. The others only describe the latest run and are
updated by every run that resumes the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import DensePoseGazeError

__all__ = ["FORMAT_VERSION", "RESULT_DEFINING_KEYS", "check_same_results", "json_metadata"]

#: Metadata keys whose values decide what the stored results are. Re-opening a
#: store for writing with different values is refused: the frames would mix
#: two models or thresholds.
RESULT_DEFINING_KEYS = ("recording_id", "model", "checkpoint_sha256", "score_threshold", "input_size")

# Stores with chunk checksums or head U, V read the same as before: old versions
# can still open them (they just do not check, or ignore U, V), so the format version stays 1.
FORMAT_VERSION = 1


def json_metadata(metadata: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``metadata`` as the store will keep it (through JSON), so comparisons see what is stored."""
    try:
        return json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as exc:
        raise DensePoseGazeError(
            f"The metadata for the results store {folder} cannot be saved as JSON "
            f"({exc}): pass plain strings, numbers, lists and dicts."
        ) from exc


def check_same_results(
    folder: Path,
    stored_shape: tuple[int, int, int],
    stored: Mapping[str, Any],
    shape: tuple[int, int, int],
    metadata: Mapping[str, Any],
) -> None:
    """Refuse a run of ``shape`` with ``metadata`` (JSON values) on the store in ``folder`` if its results differ."""
    if tuple(stored_shape) != tuple(shape):
        raise DensePoseGazeError(
            f"The results store {folder} holds {stored_shape[0]} frames of "
            f"{stored_shape[1]}x{stored_shape[2]} px, but the recording has {shape[0]} "
            f"frames of {shape[1]}x{shape[2]} px. Choose another folder for this "
            "recording, or pass overwrite=True to delete the store and start over."
        )
    differing = [
        f"{key}: stored {stored.get(key)!r}, now {metadata.get(key)!r}"
        for key in RESULT_DEFINING_KEYS
        if (key in stored or key in metadata) and stored.get(key) != metadata.get(key)
    ]
    if differing:
        raise DensePoseGazeError(
            f"The results store {folder} was made with different settings "
            f"({'; '.join(differing)}). Choose another folder to keep both results, "
            "or pass overwrite=True to delete the stored results (hand edits "
            "included) and start over."
        )
