"""What a run is set up from and what it reports: its settings, options, progress and summary.

:class:`ModelSettings` define the results (kept in the store's metadata, so a
resumed run must match them); :class:`RunOptions` only steer one run.
:mod:`.pipeline` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .engine.defaults import DEFAULT_MODEL, DEFAULT_SCORE_THRESHOLD, MIN_SIZE_TEST
from .errors import DensePoseGazeError
from .frame_selection import FrameSelection
from .gaze_guided import DENSEPOSE_MODES, GazeGuide, default_densepose_mode

if TYPE_CHECKING:
    from .hits.radius import HitSettings
    from .pipeline import FramePredictor
    from .recording import Recording
    from .store import ResultsStore

__all__ = ["LoadedModel", "ModelSettings", "PreparedRun", "Progress", "RunOptions", "RunSummary", "run_metadata"]


@dataclass(frozen=True)
class Progress:
    """Where a run stands; handed to the progress callback after every batch."""

    done: int  # frames processed in this run
    total: int  # frames this run has to process
    frames_per_s: float  # over this run so far
    seconds_left: float | None  # at the current rate; None before the first batch
    last_frame: int | None  # index of the last frame written

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True)
class RunSummary:
    selected: int  # frames the selection picked
    skipped_done: int  # of those, already processed before this run
    skipped_edited: int  # of those, corrected by hand and left alone (also when the edit came during the run)
    processed: int  # frames processed by this run
    cancelled: bool
    seconds: float
    skipped_claimed: int = 0  # of those, being computed by another live run on the same store

    @property
    def frames_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ModelSettings:
    """What defines the results: the model, its weights and how it is run. Kept in each store's metadata."""

    model: str = DEFAULT_MODEL  # zoo config name
    weights: str | Path | None = None  # a local checkpoint instead of the zoo file of ``model``
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    input_size: int = MIN_SIZE_TEST  # shortest edge the engine resizes frames to
    max_input_size: int | None = None  # longest edge at most; None: default_max_input_size(input_size)
    precision: str = "auto"


@dataclass(frozen=True)
class RunOptions:
    """What only steers a run: where it computes, which frames, where it writes."""

    device: str = "auto"
    batch_size: int | None = None  # None: the engine's default for the device
    selection: FrameSelection = FrameSelection()
    output: str | Path | None = None  # results folder; None: beside the recording
    overwrite_edited: bool = False  # redo frames corrected by hand (the corrections are lost)
    cache_dir: str | Path | None = None  # weights cache folder
    # "gazed": body parts only for the people a gaze hit can reach (.gaze_guided); "all": for everyone;
    # None: gazed for the gaze and fixation frame selections, all for all frames
    densepose: str | None = None
    hit_settings: HitSettings | None = None  # the hits a gazed run must serve; None: the recording's default

    @property
    def densepose_mode(self) -> str:
        """``densepose``, or its default for the frame selection."""
        mode = self.densepose or default_densepose_mode(self.selection.mode)
        if mode not in DENSEPOSE_MODES:
            raise DensePoseGazeError(f"Unknown DensePose mode {mode!r}: use one of {', '.join(DENSEPOSE_MODES)}.")
        return mode


@dataclass
class LoadedModel:
    """An engine loaded from :class:`ModelSettings`, reusable for many recordings (see :func:`.pipeline.load_model`)."""

    predictor: FramePredictor
    settings: ModelSettings  # what it was loaded from; each store's metadata records it
    name: str  # zoo config name
    weights: Path  # the checkpoint file
    checkpoint_sha256: str


@dataclass
class PreparedRun:
    store: ResultsStore
    frames: np.ndarray
    load_predictor: Callable[[], FramePredictor]  # the engine, loaded (and the store checked) at the first call
    guide: GazeGuide | None = None  # gaze-guided DensePose (pass it to iter_densepose); None: every detection

    @property
    def predictor(self) -> FramePredictor:
        """The engine, loaded now if it was not yet; :attr:`load_predictor` loads it only when a run needs it."""
        return self.load_predictor()

    @property
    def coverage(self) -> tuple[float, str] | None:
        """What the run asks of each frame's body parts (the ``gazed`` of :meth:`.ResultsStore.pending`)."""
        return None if self.guide is None else self.guide.coverage


def run_metadata(
    recording: Recording,
    *,
    model: str,
    checkpoint_sha256: str,
    score_threshold: float,
    device: str,
    selection: FrameSelection | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The metadata a results store keeps about the run that made it."""
    return {
        "recording_id": recording.recording_id or recording.name,
        "recording_folder": str(recording.folder),
        "recording_source": recording.source,
        "model": model,
        "checkpoint_sha256": checkpoint_sha256,
        "score_threshold": float(score_threshold),
        "device": device,
        "package_version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "frame_selection": selection.to_dict() if selection is not None else None,
        **extra,
    }
