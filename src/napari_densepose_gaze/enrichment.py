"""Recognise Pupil Cloud enrichment exports, which reuse a recording's file names with other meanings.

A Reference Image Mapper, Marker Mapper or Face Mapper download holds
``gaze.csv``, ``fixations.csv``, ``sections.csv`` and ``enrichment_info.txt``
like a "Timeseries Data" export, but its gaze and fixations are positions in a
reference image or on a surface, for several recordings in one file; a Gaze
Overlay download holds one folder of videos per recording. None of them is a
recording. :func:`recognise` tells an enrichment export from what it holds
(the first line of ``enrichment_info.txt``, files only enrichments write, the
columns of its tables), :func:`enrichment_of_columns` tells an enrichment's
table that ended up in a recording folder, and each says which download is
needed instead.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENRICHMENTS", "NEEDED_DOWNLOAD", "Enrichment", "EnrichmentExport", "recognise", "enrichment_of_columns",
           "enrichment_tables", "table_message"]

INFO_FILE = "enrichment_info.txt"
NEEDED_DOWNLOAD = ("in Pupil Cloud, select the recordings and download 'Timeseries Data + Scene Video', "
                   "then open that download or one recording folder in it")
_HEADER_BYTES = 64 * 1024  # a header line is far shorter; more is not read
_INFO_BYTES = 4 * 1024
_SECTIONS_ROWS = 100_000  # rows of sections.csv read to count recordings


@dataclass(frozen=True)
class Enrichment:
    """One kind of enrichment: its name in Pupil Cloud and what its tables hold."""

    name: str
    holds: str  # what its gaze/fixation tables hold, for messages
    files: tuple[str, ...] = ()  # files only this enrichment writes
    columns: tuple[str, ...] = ()  # columns only this enrichment's tables have


#: ``enrichment_info.txt``'s first word (e.g. "marker-mapper") -> the enrichment
ENRICHMENTS = {
    "marker-mapper": Enrichment(
        "Marker Mapper", "gaze and fixations on a marker-defined surface, in normalized surface coordinates",
        files=("surface_positions.csv",),
        columns=("gaze detected on surface", "gaze position on surface x [normalized]",
                 "fixation detected on surface", "fixation x [normalized]"),
    ),
    "reference-image-mapper": Enrichment(
        "Reference Image Mapper", "gaze and fixations in the pixels of a reference image, not of the scene video",
        files=("reference_image.jpeg", "reference_image.jpg", "reference_image.png"),
        columns=("gaze detected in reference image", "gaze position in reference image x [px]",
                 "fixation detected in reference image"),
    ),
    "manual-mapper": Enrichment(
        "Manual Mapper", "fixations mapped by hand onto a reference image",
    ),
    "face-mapper": Enrichment(
        "Face Mapper", "face positions in the scene video and whether gaze was on a face",
        files=("face_positions.csv", "gaze_on_face.csv", "fixations_on_face.csv"),
        columns=("gaze on face", "fixation on face"),
    ),
    "gaze-overlay": Enrichment(
        "Gaze Overlay", "scene videos with the gaze circle drawn in, without the gaze tables",
    ),
}
# the first word of a Timeseries (formerly Raw Data) export's enrichment_info.txt: a real recording export
_RECORDING_EXPORTS = ("raw-data-export", "raw-data", "timeseries", "timeseries-data", "native-recording-data")


@dataclass(frozen=True)
class EnrichmentExport:
    """A folder recognised as an enrichment export, and the evidence for it."""

    folder: Path
    enrichment: Enrichment
    evidence: tuple[str, ...]  # what was found, quoted in the message
    recordings: int | None  # how many recordings its sections.csv covers (None: unknown)

    def message(self) -> str:
        """What it is, what it holds, and which download is needed (for a DensePoseGazeError)."""
        covers = f", for {self.recordings} recording(s)" if self.recordings else ""
        return (
            f"{self.folder} is a Pupil Cloud {self.enrichment.name} enrichment export, not a recording "
            f"(found: {'; '.join(self.evidence)}). It holds {self.enrichment.holds}{covers}, not gaze in "
            f"scene-video pixels frame by frame. This plugin needs the recordings themselves: {NEEDED_DOWNLOAD}."
        )


def recognise(folder: str | Path) -> EnrichmentExport | None:
    """The enrichment export ``folder`` is, or None (a recording export, a recording, anything else)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    evidence: list[str] = []
    kind = None
    first_line = _info_first_line(folder)
    if first_line is not None:
        slug = first_line.split()[0].lower() if first_line.split() else ""
        if slug in _RECORDING_EXPORTS:
            return None
        kind = ENRICHMENTS.get(slug)
        if kind is not None:
            evidence.append(f"{INFO_FILE} says {first_line!r}")
    for candidate in ENRICHMENTS.values():
        files = [name for name in candidate.files if (folder / name).is_file()]
        columns = [c for name in ("gaze.csv", "fixations.csv") for c in _header(folder / name)
                   if c in candidate.columns]
        if (files or columns) and kind in (None, candidate):
            kind = candidate
            evidence += files + [f"the column {c!r}" for c in columns[:2]]
    if kind is None and first_line is not None and (folder / "gaze.csv").is_file():
        # an enrichment this version does not know by name: its gaze.csv at the root is no recording's
        slug = first_line.split()[0] if first_line.split() else first_line
        kind = Enrichment(slug, "gaze mapped by that enrichment")
        evidence.append(f"{INFO_FILE} says {first_line!r}, and gaze.csv lies beside it")
    if kind is None:
        return None
    return EnrichmentExport(folder, kind, tuple(dict.fromkeys(evidence)), _count_recordings(folder))


def enrichment_of_columns(columns: Iterable[str]) -> tuple[Enrichment, str] | None:
    """The enrichment whose table has these columns, with the column that tells it (None: no enrichment's)."""
    names = [str(c) for c in columns]
    for kind in ENRICHMENTS.values():
        for column in kind.columns:
            if column in names:
                return kind, column
    return None


def enrichment_tables(folder: Path, required: tuple[str, ...], optional: tuple[str, ...],
                      notes: list[str]) -> set[str]:
    """Names of the ``optional`` tables in ``folder`` that an enrichment wrote (to leave out, with a note).

    Only the header lines are read. A ``required`` table an enrichment wrote
    raises :class:`~napari_densepose_gaze.errors.DensePoseGazeError`: the
    recording cannot be read without its own.
    """
    from .errors import DensePoseGazeError

    refused: set[str] = set()
    for name in (*required, *optional):
        found = enrichment_of_columns(_header(folder / name))
        if found is None:
            continue
        message = table_message(folder / name, *found)
        if name in required:
            raise DensePoseGazeError(message)
        notes.append(f"{message} Continuing without it (the table is empty).")
        refused.add(name)
    return refused


def table_message(path: Path, kind: Enrichment, column: str) -> str:
    """Why an enrichment's table in a recording folder is not used, and what to put there instead."""
    return (
        f"{path} is the {path.name} of a {kind.name} enrichment export (it has the column {column!r}), "
        f"not of this recording: it holds {kind.holds}. Put back the {path.name} of this recording's "
        f"'Timeseries Data + Scene Video' download ({NEEDED_DOWNLOAD})."
    )


def _info_first_line(folder: Path) -> str | None:
    path = folder / INFO_FILE
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            text = f.read(_INFO_BYTES).decode("utf-8-sig", errors="replace")
    except OSError:
        return None
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _header(path: Path) -> list[str]:
    """The column names of a CSV file's first line ([] if it is absent or unreadable)."""
    if not path.is_file():
        return []
    try:
        with path.open("rb") as f:
            line = f.read(_HEADER_BYTES).decode("utf-8-sig", errors="replace").splitlines()
    except OSError:
        return []
    if not line:
        return []
    return [c.strip() for c in next(csv.reader(io.StringIO(line[0])), [])]


def _count_recordings(folder: Path) -> int | None:
    path = folder / "sections.csv"
    if not path.is_file():
        return None
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            reader = csv.DictReader(f)
            ids = {row.get("recording id") for _, row in zip(range(_SECTIONS_ROWS), reader)}
    except (OSError, csv.Error):
        return None
    ids.discard(None)
    ids.discard("")
    return len(ids) or None
