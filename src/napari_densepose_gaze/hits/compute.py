"""The entry points: every hit table of a recording and its results store, and their updates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DensePoseGazeError
from ..store_log import covers
from ..tables import FIXATIONS
from ..tracking import current_person_ids
from .lookup import Progress, sample_durations, sample_hits
from .radius import HitSettings, default_radius, radius_px
from .schema import TIME_COLUMN
from .summary import HitContext, HitTables, summarize

if TYPE_CHECKING:
    from ..recording import Recording
    from ..store import ResultsStore

__all__ = ["assessable_frames", "compute_hits", "frames_lacking_people", "hits_from_samples", "update_frames"]


def frames_lacking_people(store: ResultsStore, settings: HitSettings) -> list[int]:
    """Gaze-guided frames of ``store`` whose body parts may miss people that hits with ``settings`` reach.

    Those made for another unit or a narrower radius (:mod:`..gaze_guided`): a
    person left without body parts there could have been hit, so these frames are
    not assessed with ``settings`` until a run with them (or a full run) completes them.
    """
    wanted = (float(settings.radius), str(settings.unit))
    return [frame for frame, made in store.gazed_frames().items() if not covers(made, wanted)]


def assessable_frames(store: ResultsStore, settings: HitSettings) -> np.ndarray:
    """The processed frames whose body parts answer hits with ``settings`` exactly (all but those lacking people)."""
    processed = store.processed_frames()
    lacking = frames_lacking_people(store, settings)
    return np.setdiff1d(processed, np.asarray(lacking, dtype=processed.dtype)) if lacking else processed


def lacking_people_note(store: ResultsStore, frames: list[int], settings: HitSettings) -> str:
    """What to tell a user whose hit settings reach beyond a gaze-guided run's (``frames``: those it concerns)."""
    return (f"{len(frames)} frame(s) of {store.folder} have body parts only for the people near the gaze at a "
            f"narrower radius (or another unit) than {settings.radius:g} {settings.unit}; they count as not "
            "processed here. Run DensePose again with this radius (--radius/--unit) or on everyone "
            "(--densepose all) to assess them.")


def _refuse_damaged(store: ResultsStore, processed: np.ndarray) -> None:
    # zarr reads a deleted chunk as an empty frame: a damaged "processed" frame would count as
    # "no part" in every table, silently, so the tables are refused until it is recomputed
    damaged = store.verify(processed)
    if damaged:
        listed = "; ".join(f"frame {frame}: {problem}" for frame, problem in damaged[:5])
        more = f" (and {len(damaged) - 5} more)" if len(damaged) > 5 else ""
        raise DensePoseGazeError(
            f"The results store {store.folder} has {len(damaged)} damaged frame(s): {listed}{more}. "
            "Run DensePose on the recording again (damaged frames are recomputed), then compute the hits."
        )


def compute_hits(
    recording: Recording,
    store: ResultsStore,
    settings: HitSettings | None = None,
    *,
    person_ids: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> HitTables:
    """Every hit table of a recording and its results store.

    ``settings`` defaults to :func:`default_radius`. Person ids are those
    stored with the results when they match the current detections, else
    linked afresh (:func:`~napari_densepose_gaze.tracking.link_detections`).
    ``progress(done, total)`` is called per frame read (for a progress bar;
    raising in it cancels the computation).
    """
    if store.shape[0] != recording.n_frames or store.shape[1:] != (recording.frame_size[1], recording.frame_size[0]):
        raise DensePoseGazeError(
            f"The results store {store.folder} holds {store.shape[0]} frames of {store.shape[2]}x{store.shape[1]} px "
            f"but the recording {recording.folder} has {recording.n_frames} frames of "
            f"{recording.frame_size[0]}x{recording.frame_size[1]} px: open the store made for this recording."
        )
    if settings is None:
        settings = default_radius(recording.scene_camera, recording.frame_size, recording.info)
    _refuse_damaged(store, store.processed_frames())
    lacking = frames_lacking_people(store, settings)
    tables = hits_from_samples(
        recording.gaze_samples,
        store.labels,
        store.persons,
        assessable_frames(store, settings),
        settings=settings,
        scene_camera=recording.scene_camera,
        fixations=recording.fixations,
        frame_timestamps=recording.frame_timestamps,
        frame_in_order=recording.frame_in_order,
        person_ids=person_ids if person_ids is not None else current_person_ids(store),
        progress=progress,
        head_uv=store.head_uv,
    )
    if lacking:
        tables.notes = (lacking_people_note(store, lacking, settings),)
    return tables


def hits_from_samples(
    samples: pd.DataFrame,
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    settings: HitSettings,
    frame_timestamps: np.ndarray,
    fixations: pd.DataFrame | None = None,
    scene_camera: dict | None = None,
    frame_in_order: np.ndarray | None = None,
    person_ids: pd.DataFrame | None = None,
    progress: Progress | None = None,
    head_uv: tuple[Any, Any] | None = None,
) -> HitTables:
    """:func:`compute_hits` on arrays: flagged samples, label and person volumes, processed frames.

    ``head_uv``: the head U, V code volumes (:attr:`.ResultsStore.head_uv`); None gives head hits no region.
    """
    frame_timestamps = np.asarray(frame_timestamps, dtype=np.int64)
    samples = samples.sort_values("timestamp [ns]", kind="stable", ignore_index=True)
    radius = radius_px(samples["gaze x [px]"], samples["gaze y [px]"], settings, scene_camera)
    table = sample_hits(samples, labels, persons, processed, radius_px=radius, person_ids=person_ids,
                        progress=progress, head_uv=head_uv)
    durations = sample_durations(table["timestamp [ns]"].to_numpy(dtype=np.int64), settings.max_gap_ms)
    table.insert(table.columns.get_loc("frame") + 1, "sample duration [ns]", durations)
    context = HitContext(
        fixations=fixations if fixations is not None else FIXATIONS.empty(),
        frame_timestamps=frame_timestamps,
        frame_in_order=frame_in_order,
        start_ns=int(frame_timestamps[0]) if frame_timestamps.size else 0,
        person_ids=person_ids,
    )
    table[TIME_COLUMN] = context.seconds(table["timestamp [ns]"])
    return summarize(table, context, settings)


def update_frames(
    tables: HitTables,
    frames: Any,
    labels: Any,
    persons: Any,
    processed: Any,
    *,
    person_ids: pd.DataFrame | None = None,
    head_uv: tuple[Any, Any] | None = None,
) -> HitTables:
    """New tables after ``frames`` changed (painted, re-run, reset): see :meth:`HitTables.updated`."""
    return tables.updated(frames, labels, persons, processed, person_ids=person_ids, head_uv=head_uv)
