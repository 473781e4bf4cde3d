"""Report figures: a body heatmap of dwell time per part, and dwell time per part and person.

Both are drawn on a bare matplotlib ``Figure`` (no pyplot, so no screen is
needed, napari's own backend is left alone and worker threads are safe) and
saved as PNG and SVG side by side (``<out_stem>.png``, ``<out_stem>.svg``).

The body diagram shows a person from the front and from the back, drawn from
simple shapes. DensePose's 24 patches map onto the two views like this:

- front view only: torso front (2), upper and lower arms *inside* (15, 16,
  19, 20: the inside of the arm faces forward with the palms forward),
  upper and lower legs *front* (9, 10, 13, 14);
- back view only: torso back (1), upper and lower arms *outside* (17, 18,
  21, 22), upper and lower legs *back* (7, 8, 11, 12);
- both views: the two head sides (23, 24), the hands (3, 4) and the feet
  (5, 6). DensePose has one patch per side of the head and one per hand and
  foot, wrapping all the way round, so they show the same value in both views.

In the front view the person faces the reader (their right on the reader's
left); in the back view the reader sees their back (their right on the
reader's right). Small "R"/"L" marks say which side is which.

Given the per-sample table, the head halves tell the face from the back of
the head (:mod:`.face_regions`): the front view shows the dwell on that half's
face, the back view the dwell on its back and sides; dwell on head pixels
without U, V (region unknown: older stores, painted pixels) is shown in both,
as it is without the samples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .durable import atomic_path
from .errors import DensePoseGazeError
from .face_regions import FACE_REGIONS, HEAD_PARTS, REGION_COLORS, REGION_NAMES, UNKNOWN_REGION
from .parts import PART_NAMES, part_color

if TYPE_CHECKING:
    from .hits import HitTables

__all__ = ["FRONT_PARTS", "BACK_PARTS", "REPORT_FIGURES", "body_heatmap", "dwell_bar_chart",
           "dwell_by_person_and_part", "head_dwell_by_view", "write_report"]

#: parts drawn on the front view and on the back view (see the module docstring)
FRONT_PARTS = (23, 24, 2, 15, 16, 19, 20, 3, 4, 9, 10, 13, 14, 5, 6)
BACK_PARTS = (23, 24, 1, 17, 18, 21, 22, 3, 4, 7, 8, 11, 12, 5, 6)

#: figure -> file stem of :func:`write_report` (each written as .png and .svg)
REPORT_FIGURES = {"heatmap": "body_heatmap", "bars": "dwell_per_person"}

_UNKNOWN_PERSON = "no id"
_NOT_A_PART = "#d9d9d9"  # neck: not one of DensePose's patches
_EDGE = "#333333"

# Body geometry in body units (feet at y=0, top of the head at y=8). Each entry
# is drawn for the person's right side (side=-1 in the front view) and mirrored.
# Limbs are (start point, end point, width at start, width at end).
_LIMBS = {
    "upper arm": ((1.0, 6.45), (1.3, 4.95), 0.42, 0.34),
    "lower arm": ((1.3, 4.95), (1.48, 3.6), 0.34, 0.26),
    "upper leg": ((0.4, 3.95), (0.45, 2.05), 0.68, 0.44),
    "lower leg": ((0.45, 2.05), (0.47, 0.42), 0.44, 0.3),
}
# which part id each shape is, per view and side of the person
_PART_OF = {
    ("front", "right"): {"upper arm": 16, "lower arm": 20, "upper leg": 9, "lower leg": 13},
    ("front", "left"): {"upper arm": 15, "lower arm": 19, "upper leg": 10, "lower leg": 14},
    ("back", "right"): {"upper arm": 18, "lower arm": 22, "upper leg": 7, "lower leg": 11},
    ("back", "left"): {"upper arm": 17, "lower arm": 21, "upper leg": 8, "lower leg": 12},
}
_TORSO = [(-0.92, 6.62), (0.92, 6.62), (0.98, 6.25), (0.72, 4.7), (0.78, 3.95), (-0.78, 3.95), (-0.72, 4.7),
          (-0.98, 6.25)]


def _figure(figsize: tuple[float, float]):
    """A bare matplotlib Figure: no pyplot, so no GUI backend is touched and worker threads are safe."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _stem(out_stem: str | os.PathLike[str]) -> Path:
    stem = Path(out_stem).expanduser()
    if stem.suffix.lower() in (".png", ".svg"):
        stem = stem.with_suffix("")
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DensePoseGazeError(
            f"Cannot create the folder {stem.parent}: {exc}. Choose a folder you can write to."
        ) from exc
    return stem


def _save(fig, stem: Path) -> dict[str, Path]:
    from matplotlib import rc_context

    written = {}
    # no date and fixed element ids: the same figure gives the same file (diffable, reproducible)
    with rc_context({"svg.hashsalt": "napari-densepose-gaze"}):
        for ext in ("png", "svg"):
            path = stem.with_name(f"{stem.name}.{ext}")
            with atomic_path(path, what="the figure") as tmp:  # the format is named: the temporary name has none
                fig.savefig(tmp, format=ext, dpi=150 if ext == "png" else None, bbox_inches="tight",
                            facecolor="white", metadata={"Date": None} if ext == "svg" else None)
            written[ext] = path
    return written


def _limb_polygon(start, end, w0: float, w1: float) -> np.ndarray:
    p0, p1 = np.asarray(start, float), np.asarray(end, float)
    d = (p1 - p0) / np.linalg.norm(p1 - p0)
    n = np.array([-d[1], d[0]])
    return np.array([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2])


def _body_shapes(view: str) -> list[tuple[int | None, str, object]]:
    """(part id or None, kind, geometry) of one view, in the reader's coordinates."""
    shapes: list[tuple[int | None, str, object]] = []
    right_sign = -1.0 if view == "front" else 1.0  # where the person's right side lies on the page
    shapes.append((None, "polygon", np.array([(-0.17, 6.55), (0.17, 6.55), (0.17, 6.9), (-0.17, 6.9)])))
    for side, sign in (("right", right_sign), ("left", -right_sign)):
        parts = _PART_OF[(view, side)]
        for name, (start, end, w0, w1) in _LIMBS.items():
            mirrored = ((sign * abs(start[0]), start[1]), (sign * abs(end[0]), end[1]))
            shapes.append((parts[name], "polygon", _limb_polygon(*mirrored, w0, w1)))
        hand = 3 if side == "right" else 4
        foot = 6 if side == "right" else 5
        shapes.append((hand, "ellipse", ((sign * 1.55, 3.22), 0.36, 0.62)))
        shapes.append((foot, "ellipse", ((sign * 0.56, 0.2), 0.55, 0.34)))
        # half of the head: a half ellipse on this side of the midline
        t = np.linspace(-np.pi / 2, np.pi / 2, 40)
        head = np.column_stack([sign * 0.5 * np.cos(t), 7.4 + 0.62 * np.sin(t)])
        shapes.append((23 if side == "right" else 24, "polygon", head))
    shapes.append((2 if view == "front" else 1, "polygon", np.array(_TORSO)))
    return shapes


def _dwell_per_part(parts_table: pd.DataFrame) -> dict[int, float]:
    if not {"part id", "dwell time [s]"} <= set(parts_table.columns):
        raise DensePoseGazeError(
            "The parts table needs the columns 'part id' and 'dwell time [s]' (HitTables.parts or part_hits.csv)."
        )
    ids = pd.to_numeric(parts_table["part id"], errors="coerce")
    dwell = pd.to_numeric(parts_table["dwell time [s]"], errors="coerce").fillna(0.0)
    values = {p: 0.0 for p in PART_NAMES}
    for part, seconds in zip(ids, dwell):
        if part in values:
            values[int(part)] += float(seconds)
    return values


def head_dwell_by_view(samples: pd.DataFrame) -> dict[tuple[str, int], float]:
    """Seconds of tolerant hits on each head half seen from the front (face) and the back (back and sides).

    Keys ``("front" | "back", 23 | 24)``; hits of unknown region count in both.
    """
    out = {(view, part): 0.0 for view in ("front", "back") for part in HEAD_PARTS}
    if "hit region" not in samples:
        return out
    part = pd.to_numeric(samples["hit part id"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    seconds = samples["sample duration [ns]"].to_numpy(dtype=np.float64) / 1e9
    hit = samples["assessed"].to_numpy(dtype=bool)
    region = samples["hit region"]
    face = region.isin([REGION_NAMES[r] for r in FACE_REGIONS]).to_numpy()
    unknown = (region == REGION_NAMES[UNKNOWN_REGION]).to_numpy()
    for p in HEAD_PARTS:
        mine = hit & (part == p)
        out[("front", p)] = float(seconds[mine & (face | unknown)].sum())
        out[("back", p)] = float(seconds[mine & ~face].sum())
    return out


def body_heatmap(
    parts_table: pd.DataFrame,
    out_stem: str | os.PathLike[str],
    *,
    title: str | None = None,
    cmap: str = "YlOrRd",
    samples: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Front and back body diagram, each part coloured by its dwell time, with a colour bar.

    ``parts_table`` has one row per part with ``part id`` and ``dwell time [s]``
    (``HitTables.parts``, or ``part_hits.csv`` read back). With ``samples``
    (``HitTables.samples``) the head shows the face in the front view and the
    back of the head in the back view (:func:`head_dwell_by_view`). Writes
    ``<out_stem>.png`` and ``<out_stem>.svg``; returns their paths by extension.
    """
    from matplotlib import cm, colormaps, colors
    from matplotlib.patches import Ellipse, Polygon

    dwell = _dwell_per_part(parts_table)
    head = head_dwell_by_view(samples) if samples is not None else None
    vmax = max([*dwell.values(), *(head.values() if head else [])])
    norm = colors.Normalize(vmin=0.0, vmax=vmax if vmax > 0 else 1.0)
    colormap = colormaps[cmap]
    fig = _figure((7.5, 6.4))
    axes = fig.subplots(1, 2)
    for ax, view in zip(axes, ("front", "back")):
        for part, kind, geometry in _body_shapes(view):
            value = head[(view, part)] if head is not None and part in HEAD_PARTS else dwell.get(part, 0.0)
            face = _NOT_A_PART if part is None else colormap(norm(value))
            style = {"facecolor": face, "edgecolor": _EDGE, "linewidth": 0.8}
            if kind == "ellipse":
                centre, width, height = geometry
                patch = Ellipse(centre, width, height, **style)
            else:
                patch = Polygon(geometry, closed=True, **style)
            if part is not None:
                patch.set_gid(f"part-{part}")  # findable in the SVG
            ax.add_patch(patch)
        right_x = -1.0 if view == "front" else 1.0
        ax.text(right_x * 1.9, 7.6, "R", ha="center", va="center", fontsize=11, color="#555555")
        ax.text(-right_x * 1.9, 7.6, "L", ha="center", va="center", fontsize=11, color="#555555")
        ax.set_title(view, fontsize=11)
        ax.set_xlim(-2.2, 2.2)
        ax.set_ylim(-0.2, 8.2)
        ax.set_aspect("equal")
        ax.axis("off")
    mappable = cm.ScalarMappable(norm=norm, cmap=colormap)
    bar = fig.colorbar(mappable, ax=list(axes), fraction=0.046, pad=0.04, shrink=0.8)
    bar.set_label("dwell time [s]")
    top = max(dwell, key=lambda p: dwell[p])
    subtitle = (f"most: {PART_NAMES[top]} ({dwell[top]:.2f} s), total {sum(dwell.values()):.2f} s"
                if vmax > 0 else "no hits on any body part")
    fig.suptitle(f"{title or 'Dwell time per body part'}\n{subtitle}", fontsize=12)
    return _save(fig, _stem(out_stem))


def dwell_by_person_and_part(samples: pd.DataFrame) -> pd.DataFrame:
    """Seconds of tolerant hits per person (rows) and part id (columns 1..24).

    Counts what the summary tables count: assessed samples with a hit part,
    weighted by ``sample duration [ns]``. Hits without a stable person id
    (e.g. painted by hand) form the row ``"no id"``.
    """
    needed = {"assessed", "hit part id", "hit person id", "sample duration [ns]"}
    if not needed <= set(samples.columns):
        raise DensePoseGazeError(f"The gaze hit table lacks the columns {sorted(needed - set(samples.columns))}.")
    part = pd.to_numeric(samples["hit part id"], errors="coerce").fillna(0).astype(np.int64)
    is_hit = samples["assessed"].astype(bool).to_numpy() & (part.to_numpy() > 0)
    hits = pd.DataFrame({
        "person": [f"person {int(p)}" if pd.notna(p) else _UNKNOWN_PERSON
                   for p in samples.loc[is_hit, "hit person id"]],
        "part id": part[is_hit].to_numpy(),
        "seconds": samples.loc[is_hit, "sample duration [ns]"].to_numpy(dtype=np.float64) / 1e9,
    })
    table = hits.pivot_table(index="person", columns="part id", values="seconds", aggfunc="sum", fill_value=0.0)
    table = table.reindex(columns=list(PART_NAMES), fill_value=0.0)
    def order(name: str) -> tuple[bool, int]:  # person 2 before person 10; "no id" last
        return (name == _UNKNOWN_PERSON, 0 if name == _UNKNOWN_PERSON else int(name.split()[-1]))

    return table.loc[sorted(table.index, key=order)]


def dwell_bar_chart(
    tables: HitTables | pd.DataFrame,
    out_stem: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> dict[str, Path]:
    """Stacked bars of dwell time per person, one segment per part in the part's colour.

    ``tables`` is a :class:`~napari_densepose_gaze.hits.HitTables` or its
    per-sample table. Writes ``<out_stem>.png`` and ``.svg``; returns their paths.
    """
    samples = tables if isinstance(tables, pd.DataFrame) else tables.samples
    table = dwell_by_person_and_part(samples)
    used = [p for p in PART_NAMES if table[p].sum() > 0] if len(table) else []
    n_bars = max(len(table), 1)
    fig = _figure((max(5.5, 1.2 * n_bars + 4.5), 4.8))
    ax = fig.subplots()
    if used:
        x = np.arange(len(table))
        bottom = np.zeros(len(table))
        for part in used:
            values = table[part].to_numpy(dtype=np.float64)
            bars = ax.bar(x, values, bottom=bottom, width=0.6, color=part_color(part),
                          edgecolor="white", linewidth=0.5, label=f"{part}: {PART_NAMES[part]}")
            for bar in bars:
                bar.set_gid(f"part-{part}")
            bottom += values
        for xi, total in zip(x, bottom):
            ax.text(xi, total, f"{total:.3g} s", ha="center", va="bottom", fontsize=9)
        ax.set_xticks(x, list(table.index))
        pad = max(0.75, (3 - len(table)) / 2)  # one or two bars stay bar-shaped, not a wall
        ax.set_xlim(-pad, len(table) - 1 + pad)
        ax.set_ylim(0, bottom.max() * 1.12)
        ax.legend(title="part", fontsize=8, title_fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False)
    else:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no hits on any body part", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("dwell time [s]")
    ax.set_xlabel("person (stable id)")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title or "Dwell time per part, per person", fontsize=12)
    return _save(fig, _stem(out_stem))


def write_report(tables: HitTables, folder: str | os.PathLike[str], *, name: str | None = None) -> dict[str, Path]:
    """Both report figures of one recording into ``folder`` (names in :data:`REPORT_FIGURES`).

    ``name`` (the recording's) goes into the titles. Returns the paths by
    ``"<figure>.<ext>"``, e.g. ``"heatmap.png"``.
    """
    folder = Path(folder).expanduser()
    suffix = f" - {name}" if name else ""
    written: dict[str, Path] = {}
    heatmap = body_heatmap(tables.parts, folder / REPORT_FIGURES["heatmap"], title=f"Dwell time per body part{suffix}",
                           samples=tables.samples)
    bars = dwell_bar_chart(tables, folder / REPORT_FIGURES["bars"], title=f"Dwell time per part, per person{suffix}")
    for figure, paths in (("heatmap", heatmap), ("bars", bars)):
        written.update({f"{figure}.{ext}": path for ext, path in paths.items()})
    return written


# one colour per head region (REGION_NAMES order), for the head-region chart
# the six regions the chart draws (7, unknown, has no place on the atlas)
_REGION_COLORS = {r: c for r, c in REGION_COLORS.items() if r != UNKNOWN_REGION}


def head_region_chart(out_stem: str | os.PathLike[str]) -> dict[str, Path]:
    """The head regions on DensePose's two head patches, unrolled around the head, with the landmarks.

    x is the azimuth around the head (0 the nose, negative the person's right
    half, patch 23; positive the left half, 24; +-180 the back), y is V.
    Writes ``<out_stem>.png`` and ``.svg`` (docs/images/face_regions.png is this figure).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from .face_regions import LANDMARKS, azimuth_deg, chart23_u, region_ids

    azimuth = np.linspace(-180, 180, 721)
    v = np.linspace(0, 1, 401)
    az, vv = np.meshgrid(azimuth, v)
    part = np.where(az < 0, 23, 24)
    u23 = 1 - np.abs(az) / 180
    regions = region_ids(part, u23, vv)
    colours = ListedColormap([_REGION_COLORS[r] for r in sorted(_REGION_COLORS)])
    fig = _figure((8.4, 4.2))
    ax = fig.subplots()
    ax.imshow(regions - 1, origin="lower", extent=(-180, 180, 0, 1), aspect="auto", cmap=colours,
              vmin=-0.5, vmax=len(_REGION_COLORS) - 0.5, interpolation="nearest")
    ax.axvline(0, color="white", linewidth=0.8, linestyle="--")
    for name, (p, u, lv) in LANDMARKS.items():
        x = float(azimuth_deg(np.array([p]), chart23_u(np.array([p]), np.array([u])))[0])
        ax.plot(x, lv, "k+", markersize=8)
        below = "mouth" in name or lv >= 0.99  # keeps neighbouring labels apart and inside the axes
        left = x < -1  # labels of the person's right half go to the left of their mark
        ax.annotate(name, (x, lv), textcoords="offset points", xytext=(-4 if left else 4, -10 if below else 4),
                    ha="right" if left else "left", fontsize=7)
    ax.set_xlabel("azimuth around the head [deg] (patch 23: person's right  |  patch 24: left)")
    ax.set_ylabel("V (1 crown, 0 neck)")
    ax.set_xticks(range(-180, 181, 45))
    ax.set_title("Head regions on DensePose's head patches (fitted to the atlas; not yet checked on real footage)",
                 fontsize=10)
    ax.legend(handles=[Patch(color=_REGION_COLORS[r], label=REGION_NAMES[r]) for r in sorted(_REGION_COLORS)],
              loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)
    return _save(fig, _stem(out_stem))
