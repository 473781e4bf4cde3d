"""The store's tables: detections as the frame log keeps them, and the person ids beside them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DensePoseGazeError

__all__ = ["DETECTION_COLUMNS", "PERSON_ID_COLUMNS", "detection_records", "detection_table", "read_person_ids",
           "typed_person_ids"]

#: Columns of :meth:`.ResultsStore.detections`, one row per detection.
DETECTION_COLUMNS = ("frame", "person", "x1 [px]", "y1 [px]", "x2 [px]", "y2 [px]", "score")
#: Columns of :meth:`.ResultsStore.person_ids`: a detection and its stable id.
PERSON_ID_COLUMNS = (*DETECTION_COLUMNS, "person id")
_BOX_COLUMNS = DETECTION_COLUMNS[2:6]


def detection_records(
    detections: pd.DataFrame | Sequence[Mapping[str, Any]] | None,
) -> list[list[float]]:
    """``[[person, x1, y1, x2, y2, score], ...]`` (as the log keeps them) from a table or mappings."""
    if detections is None:
        return []
    rows = detections.to_dict("records") if isinstance(detections, pd.DataFrame) else detections
    records: list[list[float]] = []
    for k, row in enumerate(rows, start=1):
        try:
            box = [
                float(row[col] if col in row else row[col.split(" ")[0]]) for col in _BOX_COLUMNS
            ]
            score = float(row["score"])
        except KeyError as exc:
            raise ValueError(
                f"a detection needs the keys {', '.join(DETECTION_COLUMNS[1:])}; missing {exc}"
            ) from None
        person = int(row.get("person", k))
        if not all(math.isfinite(v) for v in (*box, score)):
            raise ValueError(f"detection {k} has a non-finite box or score: {box}, {score}")
        records.append([person, *box, score])
    return records


def detection_table(rows: list[list[float]]) -> pd.DataFrame:
    """:data:`DETECTION_COLUMNS` from ``[frame, person, x1, y1, x2, y2, score]`` rows."""
    table = pd.DataFrame(rows, columns=list(DETECTION_COLUMNS))
    return table.astype(
        {"frame": "int64", "person": "int64", **dict.fromkeys(DETECTION_COLUMNS[2:], "float64")}
    )


def typed_person_ids(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype(
        {"frame": "int64", "person": "int64", "person id": "int64", **dict.fromkeys(DETECTION_COLUMNS[2:], "float64")}
    )


def read_person_ids(path: Path, current: pd.DataFrame) -> pd.DataFrame | None:
    """The person ids in ``path`` that still describe the ``current`` detections; None without a file."""
    try:
        table = pd.read_csv(path)
        missing = [c for c in PERSON_ID_COLUMNS if c not in table]
        if missing:
            raise ValueError(f"the column(s) {', '.join(missing)} are missing")
        table = typed_person_ids(table[list(PERSON_ID_COLUMNS)])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise DensePoseGazeError(
            f"Cannot read the person ids {path}: {exc}. Delete the file and link the "
            "detections again (napari_densepose_gaze.tracking.link_store)."
        ) from exc
    merged = table.merge(current, on=["frame", "person"], how="inner", suffixes=("", " now"))
    same = np.ones(len(merged), dtype=bool)
    for col in DETECTION_COLUMNS[2:]:
        same &= np.isclose(merged[col].to_numpy(), merged[f"{col} now"].to_numpy(), rtol=0, atol=1e-6)
    return merged.loc[same, list(PERSON_ID_COLUMNS)].reset_index(drop=True)
