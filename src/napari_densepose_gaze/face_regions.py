"""Face, eyes, nose, mouth and back of the head on DensePose's head patches, and which way a head faces.

DensePose's head is two patches, 23 (the person's right half) and 24 (the left
half), cut at the mid-sagittal plane; their U, V are SMPL's head layout, the same
for every person, so a (part, U, V) place names a place on the head
(docs/hits.md, "Head regions"). Everything here works in *chart-23 coordinates*:
``u23`` is U on patch 23 and 1 - U on patch 24 (24 mirrors 23), so ``u23`` is 1 on
the front midline (nose, lips) and 0 on the back midline on both halves, and V is
1 at the crown, near 0 at the neck cut.

The region table and the landmark positions were fitted by hand to the DensePose
template atlas, not to predictions on real footage: a documented starting point.

Head yaw. Reading ``u23`` and the side as an azimuth around the head's vertical
axis (0 at the nose, +-180 at the back of the head, positive on the person's left
side, :func:`azimuth_deg`), a head turned by ``yaw`` from the camera shows each
azimuth at a fixed place across the head: on a roughly cylindrical or spherical
head, a pixel that lies at ``a`` across its row of the head (-1 at the head's left
edge in the image, +1 at its right) shows the azimuth for which
``a = sin(azimuth - yaw)``. The front midline (azimuth 0) thus lies at
``a = -sin(yaw)``: in the middle of a frontal head, towards the image's left on a
head turned to its own right, at an edge on a profile. :func:`head_poses` fits
that relation to every head pixel with U, V, so the yaw rests on where the
midline and the rest of the front lie in the head, not on how much of the front
is visible; the head's outline comes from all its pixels, with or without U, V, so
a head partly painted by hand still gets its yaw. It is head orientation, not eye
contact: it says nothing about where the person's eyes look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "FACE_REGIONS",
    "FACING_MAX_DEG",
    "HEAD_PARTS",
    "LANDMARKS",
    "POSE_COLUMNS",
    "REGION_COLORS",
    "REGION_NAMES",
    "UNKNOWN_REGION",
    "Ellipse",
    "across_head",
    "azimuth_deg",
    "chart23_u",
    "decode_uv",
    "encode_uv",
    "fit_yaw",
    "head_poses",
    "head_uv_map",
    "region_ids",
    "region_names",
]

#: DensePose's head patches: the person's right (23) and left (24) half
HEAD_PARTS = (23, 24)
_RIGHT, _LEFT = HEAD_PARTS

#: region id -> name; 0 is "not a head pixel" and has no name
REGION_NAMES: dict[int, str] = {
    1: "right eye",
    2: "left eye",
    3: "nose",
    4: "mouth",
    5: "rest of face",
    6: "back or side of head",
    7: "head, region unknown",  # a head pixel without U, V: painted by hand, or an old store
}
UNKNOWN_REGION = 7
#: the regions that make up the face (what Face Mapper calls "on a face")
FACE_REGIONS = frozenset({1, 2, 3, 4, 5})
#: region id -> colour (hex), the same in the head-region chart and napari's head-region layer
REGION_COLORS: dict[int, str] = {
    1: "#1f77b4", 2: "#17becf", 3: "#ff7f0e", 4: "#d62728", 5: "#f7c6a3", 6: "#8c8c8c", 7: "#e7e7e7",
}


@dataclass(frozen=True)
class Ellipse:
    """An axis-aligned ellipse in chart-23 (u23, V) coordinates."""

    u: float
    v: float
    semi_u: float
    semi_v: float

    def contains(self, u23: np.ndarray, v: np.ndarray) -> np.ndarray:
        return ((u23 - self.u) / self.semi_u) ** 2 + ((v - self.v) / self.semi_v) ** 2 <= 1.0


# The starting region table of ../shared/docs/face_regions.md (chart-23 U, V),
# applied with precedence eye, mouth, nose, face, rest.
EYE = Ellipse(0.795, 0.600, 0.090, 0.045)
MOUTH = Ellipse(1.000, 0.365, 0.150, 0.045)  # centred on the midline: half of it lies on the other patch
NOSE_MIN_U, NOSE_V = 0.885, (0.425, 0.625)
FACE_MIN_U, FACE_V = 0.58, (0.18, 0.86)

#: landmark -> (part, U, V) on that part: SMPL vertices looked up in DensePose's per-vertex table
LANDMARKS: dict[str, tuple[int, float, float]] = {
    "nose tip": (23, 0.998, 0.478),
    "right eye": (23, 0.786, 0.596),
    "left eye": (24, 0.214, 0.597),
    "right ear": (23, 0.447, 0.484),
    "left ear": (24, 0.554, 0.485),
    "head top": (23, 0.573, 1.000),
    "Adam's apple": (23, 0.999, 0.083),
    "right mouth corner": (23, 0.887, 0.362),
    "left mouth corner": (24, 0.138, 0.362),
}

#: a head counts as facing the camera when its yaw is within this many degrees of straight on
FACING_MAX_DEG = 30.0
# How far (RMS, in half-widths of the head) the head pixels may miss the turned-head
# relation a = sin(azimuth - yaw) before the fit says nothing: labels that far off
# do not describe a head turned one way.
_LOOSE_FIT = 0.5
# Fewer head pixels with U, V than this cannot carry a fit of two numbers.
_MIN_FIT_PX = 3
# Head pixels at which an estimate counts as well supported (a few output pixels
# of a 112x112 DensePose map say little about a head's orientation).
_FULL_SUPPORT_PX = 50.0
# Within this many degrees of FACING_MAX_DEG the facing flag is uncertain.
_FACING_MARGIN_DEG = 15.0

#: the columns of :func:`head_poses`
POSE_COLUMNS = ("person", "head pixels", "front share", "head yaw [deg]", "facing wearer", "facing confidence")

# U, V are stored as uint8 codes: 0 = no U, V; 1..255 = 1 + round(254 * value).
_UV_STEPS = 254


def encode_uv(values: np.ndarray) -> np.ndarray:
    """uint8 codes of U or V values in [0, 1] (NaN: 0, "no value"); resolution 1/254."""
    x = np.asarray(values, dtype=np.float32)
    codes = np.zeros(x.shape, dtype=np.uint8)
    ok = np.isfinite(x)
    codes[ok] = 1 + np.rint(np.clip(x[ok], 0.0, 1.0) * _UV_STEPS).astype(np.uint8)
    return codes


def decode_uv(codes: np.ndarray) -> np.ndarray:
    """U or V values (float32) of uint8 codes; NaN where the code is 0 (no value)."""
    c = np.asarray(codes)
    return np.where(c > 0, (c.astype(np.float32) - 1) / _UV_STEPS, np.float32(np.nan)).astype(np.float32)


def chart23_u(part: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``u23`` of a part's own U: U on patch 23, 1 - U on 24 (NaN elsewhere)."""
    part = np.asarray(part)
    u = np.asarray(u, dtype=np.float32)
    return np.where(part == _RIGHT, u, np.where(part == _LEFT, 1 - u, np.float32(np.nan))).astype(np.float32)


def region_ids(part: np.ndarray, u23: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Region id (:data:`REGION_NAMES`) of each pixel: 0 off the head, 7 on the head without U, V."""
    part = np.asarray(part)
    u23 = np.asarray(u23, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    head = (part == _RIGHT) | (part == _LEFT)
    known = head & np.isfinite(u23) & np.isfinite(v)
    with np.errstate(invalid="ignore"):
        eye = EYE.contains(u23, v)
        mouth = MOUTH.contains(u23, v)
        nose = (u23 >= NOSE_MIN_U) & (v >= NOSE_V[0]) & (v <= NOSE_V[1])
        face = (u23 >= FACE_MIN_U) & (v >= FACE_V[0]) & (v <= FACE_V[1])
    out = np.zeros(part.shape, dtype=np.uint8)
    out[head] = UNKNOWN_REGION
    out[known] = 6
    # later assignments win: precedence eye, mouth, nose, face, rest
    for region, where in ((5, face), (3, nose), (4, mouth)):
        out[known & where] = region
    out[known & eye & (part == _RIGHT)] = 1
    out[known & eye & (part == _LEFT)] = 2
    return out


def region_names(ids: pd.Series) -> pd.Series:
    """The name of each region id (0 and missing: missing)."""
    names = [None if pd.isna(r) or int(r) == 0 else REGION_NAMES[int(r)] for r in ids]
    return pd.Series(names, index=ids.index, dtype=object)


def azimuth_deg(part: np.ndarray, u23: np.ndarray) -> np.ndarray:
    """Azimuth around the head's vertical axis, degrees: 0 nose, +-180 back, + on the person's left (24)."""
    part = np.asarray(part)
    turn = (1.0 - np.asarray(u23, dtype=np.float64)) * 180.0
    return np.where(part == _LEFT, turn, np.where(part == _RIGHT, -turn, np.nan))


def head_uv_map(
    part_map: np.ndarray, person_map: np.ndarray, boxes: np.ndarray, uv: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Full-frame ``(u23, v)`` float32 maps of a frame's head pixels (NaN elsewhere) from per-box U, V.

    ``uv[i]`` (2, h_i, w_i) covers detection i's box as the engine's charts do
    (origin ``int(x1), int(y1)``); ``person_map`` says which detection won each
    pixel, so each head pixel takes the U, V of the detection whose label it shows.
    """
    height, width = part_map.shape
    u23 = np.full((height, width), np.nan, dtype=np.float32)
    v = np.full((height, width), np.nan, dtype=np.float32)
    head = (part_map == _RIGHT) | (part_map == _LEFT)
    for i, chart in enumerate(uv):
        rows, cols = np.nonzero(head & (person_map == i + 1))
        if rows.size == 0:
            continue
        x0, y0 = int(boxes[i][0]), int(boxes[i][1])
        r, c = rows - y0, cols - x0
        inside = (r >= 0) & (r < chart.shape[1]) & (c >= 0) & (c < chart.shape[2])
        rows, cols, r, c = rows[inside], cols[inside], r[inside], c[inside]
        u23[rows, cols] = chart23_u(part_map[rows, cols], chart[0, r, c])
        v[rows, cols] = chart[1, r, c]
    return u23, v


def across_head(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Where each pixel lies across its row of a head: -1 at the row's left edge in the image, +1 at its right.

    ``rows``, ``cols`` are all the head's pixels; the edges are the outer sides of
    each row's outermost pixels, so a row's centre is 0 whatever its width.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.float64)
    if rows.size == 0:
        return np.zeros(0, dtype=np.float64)
    _, index = np.unique(rows, return_inverse=True)
    left = np.full(int(index.max()) + 1, np.inf)
    right = np.full_like(left, -np.inf)
    np.minimum.at(left, index, cols)
    np.maximum.at(right, index, cols)
    centre, half = (left + right + 1) / 2, (right - left + 1) / 2
    return (cols + 0.5 - centre[index]) / half[index]


def fit_yaw(across: np.ndarray, azimuth: np.ndarray) -> tuple[float, float]:
    """``(yaw [deg], RMS miss)`` of head pixels at ``across`` (:func:`across_head`) showing ``azimuth`` (degrees).

    Least squares of ``across = sin(azimuth - yaw) = cos(yaw) sin(azimuth) -
    sin(yaw) cos(azimuth)``, linear in (cos, sin) of the yaw. Where the pixels
    cannot carry it (too few, or all one azimuth) the circular mean azimuth
    stands in, with a NaN miss.
    """
    across = np.asarray(across, dtype=np.float64)
    phi = np.deg2rad(np.asarray(azimuth, dtype=np.float64))
    design = np.column_stack([np.sin(phi), -np.cos(phi)])
    if across.size >= _MIN_FIT_PX and np.linalg.matrix_rank(design, tol=1e-6 * math.sqrt(across.size)) == 2:
        (c, s), *_ = np.linalg.lstsq(design, across, rcond=None)
        if math.hypot(c, s) > 1e-9:
            miss = float(np.sqrt(np.mean((design @ np.array([c, s]) - across) ** 2)))
            return math.degrees(math.atan2(s, c)), miss
    return math.degrees(math.atan2(float(np.sin(phi).sum()), float(np.cos(phi).sum()))), math.nan


def head_poses(
    labels: np.ndarray, persons: np.ndarray, u23: np.ndarray, people: Mapping[int, object] | list[int] | None = None
) -> pd.DataFrame:
    """Per person of a frame: how much of the head is face, its yaw, and whether it faces the camera.

    ``labels``, ``persons`` (person index 1..n) and ``u23`` (NaN where unknown)
    are one frame's maps; ``people`` limits the persons (default: all with head
    pixels with U, V). Columns :data:`POSE_COLUMNS`: ``head yaw [deg]`` is
    :func:`fit_yaw` of the head pixels with U, V, placed across the person's
    whole head outline (0: the face towards the camera, +90: the person's left
    ear towards it, +-180: the back of the head); ``front share`` is the share of
    them on the face (``u23 >= FACE_MIN_U``); ``facing wearer`` is
    ``|yaw| <= FACING_MAX_DEG``; ``facing confidence`` (0..1) grows with the
    head's size in pixels, with how well its pixels fit a head turned by that
    yaw, and with the yaw's distance from the threshold.
    """
    labels = np.asarray(labels)
    persons = np.asarray(persons)
    u23 = np.asarray(u23, dtype=np.float64)
    head = (labels == _RIGHT) | (labels == _LEFT)
    known = head & np.isfinite(u23)
    wanted = sorted({int(p) for p in np.unique(persons[known]) if p}) if people is None else [int(p) for p in people]
    rows = []
    for p in wanted:
        rr, cc = np.nonzero(head & (persons == p))
        mine = known[rr, cc]
        n = int(mine.sum())
        if n == 0:
            rows.append((p, 0, np.nan, np.nan, pd.NA, np.nan))
            continue
        r, c = rr[mine], cc[mine]
        yaw, miss = fit_yaw(across_head(rr, cc)[mine], azimuth_deg(labels[r, c], u23[r, c]))
        fit = 0.0 if math.isnan(miss) else max(0.0, 1.0 - miss / _LOOSE_FIT)
        support = (1.0 - math.exp(-n / _FULL_SUPPORT_PX)) * fit
        margin = min(1.0, abs(abs(yaw) - FACING_MAX_DEG) / _FACING_MARGIN_DEG)
        front = float((u23[r, c] >= FACE_MIN_U).mean())
        rows.append((p, n, front, yaw, abs(yaw) <= FACING_MAX_DEG, support * margin))
    table = pd.DataFrame(rows, columns=list(POSE_COLUMNS))
    table["person"] = table["person"].astype(np.int64)
    table["head pixels"] = table["head pixels"].astype(np.int64)
    table["facing wearer"] = table["facing wearer"].astype("boolean")
    for column in ("front share", "head yaw [deg]", "facing confidence"):
        table[column] = table[column].astype(np.float64)
    return table
