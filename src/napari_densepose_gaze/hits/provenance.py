"""What made a set of exported hit tables: which recording, and which DensePose run.

Exports of many recordings are pooled by a lab (one ``pd.concat``), so every
exported row says its recording (:data:`~.schema.RECORDING_COLUMNS`), and
``hit_settings.json`` keeps, besides the hit definition, the metadata the
results store holds about the DensePose run (model, checkpoint SHA-256, score
threshold, input size, precision, package version, recording source, ...),
copied from the store as it is, never retyped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ..recording import Recording
    from ..store import ResultsStore

__all__ = ["Provenance", "recording_name"]


def recording_name(recording: Recording) -> str:
    """The recording's name as Pupil Cloud gives it: its folder's name without the ``-<8 hex of the id>`` suffix."""
    name = recording.name
    recording_id = recording.recording_id or ""
    suffix = f"-{recording_id[:8]}"
    if len(recording_id) >= 8 and re.fullmatch(r"[0-9a-fA-F]{8}", recording_id[:8]) and name.endswith(suffix):
        return name[: -len(suffix)] or name
    return name


def _gaze_recording_id(gaze: pd.DataFrame) -> str:
    """The first ``recording id`` of gaze.csv (exports without info.json's id still have it there), or empty."""
    if "recording id" not in gaze:
        return ""
    given = gaze["recording id"].dropna().astype(str)
    given = given[given != ""]
    return str(given.iloc[0]) if len(given) else ""


@dataclass(frozen=True)
class Provenance:
    """The recording a hit export is of, and the results store's metadata of the run it was computed from.

    ``recording_id`` is empty for a recording without one; ``densepose`` is
    :attr:`.ResultsStore.metadata` (empty when the tables were not computed
    from a store); ``results_store`` the store's folder.
    """

    recording_id: str
    recording_name: str
    densepose: dict[str, Any] = field(default_factory=dict)
    results_store: str = ""

    @classmethod
    def of(cls, recording: Recording, store: ResultsStore) -> Provenance:
        """The provenance of tables computed from ``recording`` and its results ``store``."""
        return cls(
            recording_id=recording.recording_id or _gaze_recording_id(recording.gaze),
            recording_name=recording_name(recording),
            densepose=store.metadata,
            results_store=str(store.folder),
        )

    @property
    def label(self) -> str:
        """How a message names the recording: its name and id."""
        if self.recording_id and self.recording_name:
            return f"{self.recording_name!r} (recording id {self.recording_id})"
        return repr(self.recording_name or self.recording_id)

    def same_recording(self, other: Provenance) -> bool:
        """Whether ``other`` (as an export names its recording) is this recording: ids decide, else names."""
        if self.recording_id and other.recording_id:
            return self.recording_id == other.recording_id
        return self.recording_name == other.recording_name
