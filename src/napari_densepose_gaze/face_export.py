"""Face files in the shapes other tools write: Pupil Cloud's Face Mapper and gaze-on-facial-landmarks.

So a lab can set our answer beside the cloud's (docs/hits.md, "Face Mapper files"):

- ``gaze_on_face.csv`` (Face Mapper's columns): ``section id``, ``recording id``,
  ``timestamp [ns]``, ``gaze on face``: one row per gaze sample on a processed
  frame; on a face when the sample's tolerant hit lies in a face region (eyes,
  nose, mouth, rest of face). Face Mapper asks "inside a detected face box";
  here the face is DensePose's front of the head, so the back of a head is not
  a face, and a sample not assessed (not worn, blink, outside) is not on one.
- ``fixations_on_face.csv``: ``section id``, ``recording id``, ``fixation id``,
  ``fixation on face``: one row per fixation with assessed samples, on a face
  when its majority region is a face region.
- ``gaze_on_face_landmarks.csv``: the per-sample answer of Pupil Labs'
  gaze-on-facial-landmarks: ``landmark`` is ``eye left``, ``eye right``, ``nose``,
  ``mouth`` or ``Not on landmark``, with the gaze point and ``gaze on face``.
  Left and right are the gazed person's own (that tool takes them from its face
  detector's landmark order); ``person id`` follows at the end.
- ``region_hits.csv``: the summary per person and head region (:attr:`.HitTables.regions`).

Our columns follow each tool's: ``time [s]`` after the per-sample files' own, and,
as in every export, ``recording name`` last (``recording id`` stays where the
tool puts it; :func:`~napari_densepose_gaze.hits.schema.with_recording`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .durable import atomic_path, export_folder
from .face_regions import FACE_REGIONS, REGION_NAMES
from .hits import HitTables, documented_order
from .hits.provenance import Provenance
from .hits.schema import TIME_COLUMN, with_recording

__all__ = ["FACE_FILE_NAMES", "LANDMARK_NAMES", "fixations_on_face", "gaze_on_face", "gaze_on_landmarks",
           "write_face_files"]

#: what each file is -> its name
FACE_FILE_NAMES = {
    "gaze on face": "gaze_on_face.csv",
    "fixations on face": "fixations_on_face.csv",
    "gaze on landmarks": "gaze_on_face_landmarks.csv",
    "regions": "region_hits.csv",
}
#: our head region -> gaze-on-facial-landmarks' landmark name
LANDMARK_NAMES = {"left eye": "eye left", "right eye": "eye right", "nose": "nose", "mouth": "mouth"}
NOT_ON_LANDMARK = "Not on landmark"
_FACE_NAMES = frozenset(REGION_NAMES[r] for r in FACE_REGIONS)


def _ids(samples: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each sample's ``section id`` and ``recording id``: gaze.csv's own, else empty (an export sets the id)."""
    empty = pd.Series("", index=samples.index, dtype=object)
    section = samples["section id"].astype(object).fillna("") if "section id" in samples else empty
    recording = samples["recording id"].astype(object).fillna("") if "recording id" in samples else empty
    return section, recording


def _first(ids: pd.Series) -> str:
    """The first non-empty id (a recording's samples share one), or empty."""
    given = ids[ids != ""]
    return str(given.iloc[0]) if len(given) else ""


def _on_face(regions: pd.Series) -> np.ndarray:
    return regions.isin(_FACE_NAMES).to_numpy(dtype=bool)


def _seconds(on: pd.DataFrame) -> np.ndarray:
    """The samples' ``time [s]`` (computed with the hits), NaN for a table without it."""
    if TIME_COLUMN in on:
        return on[TIME_COLUMN].to_numpy(dtype=np.float64)
    return np.full(len(on), np.nan)


def gaze_on_face(samples: pd.DataFrame) -> pd.DataFrame:
    """Face Mapper's ``gaze_on_face.csv`` from a per-sample hit table (samples on processed frames)."""
    on = samples[samples["frame processed"].to_numpy(dtype=bool)]
    section, recording = _ids(on)
    return pd.DataFrame({
        "section id": section.to_numpy(),
        "recording id": recording.to_numpy(),
        "timestamp [ns]": on["timestamp [ns]"].to_numpy(dtype=np.int64),
        "gaze on face": on["assessed"].to_numpy(dtype=bool) & _on_face(on["hit region"]),
        TIME_COLUMN: _seconds(on),
    })


def fixations_on_face(tables: HitTables) -> pd.DataFrame:
    """Face Mapper's ``fixations_on_face.csv``: fixations with assessed samples, on a face by majority region."""
    fixations = tables.fixations[tables.fixations["assessed samples"] > 0]
    section, recording = _ids(tables.samples)
    return pd.DataFrame({
        "section id": _first(section),
        "recording id": _first(recording),
        "fixation id": fixations["fixation id"].astype("Int64").to_numpy(),
        "fixation on face": _on_face(fixations["region"]),
    })


def gaze_on_landmarks(samples: pd.DataFrame) -> pd.DataFrame:
    """Per sample on a processed frame, the landmark looked at, as gaze-on-facial-landmarks names it."""
    table = gaze_on_face(samples).drop(columns=TIME_COLUMN)
    on = samples[samples["frame processed"].to_numpy(dtype=bool)]
    landmark = on["hit region"].map(LANDMARK_NAMES).where(table["gaze on face"].to_numpy(), None)
    table.insert(3, "gaze x [px]", on["gaze x [px]"].to_numpy(dtype=np.float64))
    table.insert(4, "gaze y [px]", on["gaze y [px]"].to_numpy(dtype=np.float64))
    table["landmark"] = landmark.fillna(NOT_ON_LANDMARK).to_numpy(dtype=object)
    table["person id"] = on["hit person id"].where(table["gaze on face"].to_numpy()).astype("Int64").to_numpy()
    table[TIME_COLUMN] = _seconds(on)
    return table


def write_face_files(tables: HitTables, folder: str | os.PathLike[str], provenance: Provenance) -> dict[str, Path]:
    """Write the four face files (:data:`FACE_FILE_NAMES`) into ``folder``; return their paths by name.

    Each names ``provenance``'s recording (:func:`~napari_densepose_gaze.hits.schema.with_recording`).
    """
    path = export_folder(folder)
    made = {
        "gaze on face": gaze_on_face(tables.samples),
        "fixations on face": fixations_on_face(tables),
        "gaze on landmarks": gaze_on_landmarks(tables.samples),
        "regions": documented_order("regions", tables.regions),
    }
    written = {}
    for name, table in made.items():
        target = path / FACE_FILE_NAMES[name]
        with atomic_path(target, what=f"the {name} table") as tmp:
            with_recording(table, provenance).to_csv(tmp, index=False)
        written[name] = target
    return written
