"""The summary tables of a hit computation: per frame, per fixation, per part, group, person and head region.

:func:`summarize` builds them all from the per-sample table of
:mod:`.lookup`; majorities, dwell time and worn time follow the package
docstring's definitions. Head regions: a frame's or fixation's ``region`` is
the most common hit region among its samples on its majority part (ties: the
region listed first in :data:`~napari_densepose_gaze.face_regions.REGION_NAMES`),
empty unless that part is 23 or 24; its head yaw is that of its majority
person (the circular mean over a fixation's samples on that person).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..face_regions import FACE_REGIONS, FACING_MAX_DEG, REGION_NAMES
from ..gaze import fixation_frames
from ..parts import PART_GROUPS, PART_NAMES
from .lookup import id_names, redo_frames
from .radius import HitSettings
from .schema import COLUMNS, TIME_COLUMN

if TYPE_CHECKING:
    from ..store import ResultsStore

__all__ = ["HitContext", "HitTables", "summarize"]


@dataclass(frozen=True, eq=False)  # DataFrames and arrays have no single truth value to compare
class HitContext:
    """What the summaries need besides the per-sample table; an update reuses it.

    ``start_ns`` is the recording's start, its first frame's time: every seconds
    column counts from it (:meth:`seconds`), as the viewer's recording time does;
    ``person_ids`` maps ``(frame, person)`` to the stable ids the hits were looked up with.
    """

    fixations: pd.DataFrame
    frame_timestamps: np.ndarray
    frame_in_order: np.ndarray | None = None
    start_ns: int = 0
    person_ids: pd.DataFrame | None = None

    def seconds(self, timestamps: Any) -> np.ndarray:
        """Seconds from :attr:`start_ns` to ``timestamps`` (int ns; missing values give NaN)."""
        # subtract in integers: a float64 UTC time in ns is only exact to about 256 ns
        ns = pd.Series(timestamps)
        if not pd.api.types.is_integer_dtype(ns.dtype):
            ns = pd.to_numeric(ns, errors="coerce")
        return (ns.astype("Int64") - int(self.start_ns)).to_numpy(dtype=np.float64, na_value=np.nan) / 1e9


@dataclass(eq=False)
class HitTables:
    """Every table of a hit computation, and what is needed to update it.

    ``samples``: one row per gaze sample; ``frames``: one per frame with
    samples; ``fixations``: one per fixation; ``parts`` (24 rows), ``groups``
    and ``persons``: summaries of tolerant hits; ``regions``: a summary per
    person and head region with hits (also one of the face files of
    :mod:`~napari_densepose_gaze.face_export`).
    ``head_uv`` are the volumes the samples were looked up with, reused by :meth:`refresh`.
    ``notes``: what the user must know to read the tables right (frames not assessed, and why).
    """

    samples: pd.DataFrame
    frames: pd.DataFrame
    fixations: pd.DataFrame
    parts: pd.DataFrame
    groups: pd.DataFrame
    persons: pd.DataFrame
    settings: HitSettings
    context: HitContext = field(repr=False)
    regions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(COLUMNS["regions"])))
    notes: tuple[str, ...] = ()

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name: ``samples``, ``frames``, ``fixations``, ``parts``, ``groups``, ``persons`` and
        ``regions``."""
        return {name: getattr(self, name)
                for name in ("samples", "frames", "fixations", "parts", "groups", "persons", "regions")}

    def updated(
        self, frames: Any, labels: Any, persons: Any, processed: Any, *, person_ids: pd.DataFrame | None = None,
        head_uv: tuple[Any, Any] | None = None,
    ) -> HitTables:
        """New tables after ``frames`` changed (painted, re-run, reset): only their samples are looked up again.

        The summaries are rebuilt from the per-sample table, which is cheap.
        ``person_ids`` defaults to the ids the tables were computed with.
        """
        if person_ids is None:
            person_ids = self.context.person_ids
        samples = redo_frames(self.samples, frames, labels, persons, processed, person_ids=person_ids,
                              head_uv=head_uv)
        tables = summarize(samples, replace(self.context, person_ids=person_ids), self.settings)
        tables.notes = self.notes
        return tables

    def refresh(self, store: ResultsStore, frames: Any, *, person_ids: pd.DataFrame | None = None) -> HitTables:
        """:meth:`updated` reading the results store (after a person edited ``frames``, or a run wrote them).

        Frames a gaze-guided run made for a narrower radius stay not assessed (:func:`.assessable_frames`).
        """
        from .compute import assessable_frames

        return self.updated(frames, store.labels, store.persons, assessable_frames(store, self.settings),
                            person_ids=person_ids, head_uv=store.head_uv)


def _majority(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of ``by``: majority ``hit part id``, its count, its majority person and mean distance."""
    columns = ["part id", "n", "person id", "person", "distance [px]"]
    if rows.empty:
        return pd.DataFrame({c: pd.Series([], dtype="Int64" if c != "distance [px]" else float) for c in columns},
                            index=pd.Index([], name=by))
    parts = pd.DataFrame({by: rows[by].to_numpy(), "part id": rows["hit part id"].to_numpy(dtype=np.int64)})
    counts = parts.value_counts().rename("n").reset_index()
    counts["background"] = counts["part id"] == 0
    counts = counts.sort_values([by, "n", "background", "part id"], ascending=[True, False, True, True])
    best = counts.drop_duplicates(by).set_index(by)[["part id", "n"]]
    on_best = rows[rows["hit part id"].to_numpy(dtype=np.int64) == best["part id"].reindex(rows[by]).to_numpy()]
    on_best = on_best[on_best["hit part id"] > 0]
    who = pd.DataFrame({
        by: on_best[by].to_numpy(),
        "person id": on_best["hit person id"].fillna(-1).to_numpy(dtype=np.int64),
        "person": on_best["hit person"].fillna(-1).to_numpy(dtype=np.int64),
    })
    who_counts = who.value_counts().rename("n").reset_index()
    who_counts["unknown"] = who_counts["person id"] < 0
    who_counts = who_counts.sort_values([by, "n", "unknown", "person id", "person"],
                                        ascending=[True, False, True, True, True])
    top = who_counts.drop_duplicates(by).set_index(by)
    best["person id"] = top["person id"].reindex(best.index)
    best["person"] = top["person"].reindex(best.index)
    best["distance [px]"] = on_best.groupby(by)["distance [px]"].mean().reindex(best.index)
    for c in ("person id", "person"):
        best[c] = best[c].where(best[c] >= 0).astype("Int64")
    best["part id"] = best["part id"].astype("Int64")
    best["n"] = best["n"].astype("Int64")
    return best[columns]


def _share(table: pd.DataFrame) -> np.ndarray:
    assessed = table["assessed samples"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(assessed > 0, _float(table["n"]) / assessed, np.nan)


def _frame_table(samples: pd.DataFrame, context: HitContext) -> pd.DataFrame:
    on = samples[samples["frame"] >= 0]
    g = on.groupby("frame", sort=True)
    table = pd.DataFrame({"samples": g.size().astype(np.int64)})
    table["valid samples"] = g["valid"].sum().astype(np.int64)
    table["processed"] = g["frame processed"].first().astype(bool)
    table["assessed samples"] = g["assessed"].sum().astype(np.int64)
    hit = on["assessed"] & (on["hit part id"].fillna(0) > 0)
    table["hit samples"] = hit.groupby(on["frame"]).sum().reindex(table.index, fill_value=0).astype(np.int64)
    mean_xy = on[on["valid"]].groupby("frame")[["gaze x [px]", "gaze y [px]"]].mean()
    table = table.join(mean_xy, how="left")
    best = _majority(on[on["assessed"]], "frame")
    table = table.join(best, how="left")
    table.index.name = "frame"
    table = table.reset_index()
    table["frame"] = table["frame"].astype(np.int64)
    table["timestamp [ns]"] = np.asarray(context.frame_timestamps, dtype=np.int64)[table["frame"].to_numpy()]
    table[TIME_COLUMN] = context.seconds(table["timestamp [ns]"])
    table["share"] = _share(table)
    table["part id"] = table["part id"].astype("Int64")
    table["part"] = id_names(table["part id"], PART_NAMES)
    table["group"] = id_names(table["part id"], PART_GROUPS)
    for c in ("person", "person id"):
        table[c] = table[c].astype("Int64")
    for c in ("gaze x [px]", "gaze y [px]", "distance [px]"):
        table[c] = _float(table[c])
    table = _with_head(table, on[on["assessed"]], "frame", "person")
    return table[list(COLUMNS["frames"])]


_REGION_ORDER = {name: i for i, name in enumerate(REGION_NAMES.values())}
_FACE_NAMES = frozenset(REGION_NAMES[r] for r in FACE_REGIONS)


def _with_head(table: pd.DataFrame, rows: pd.DataFrame, by: str, who: str) -> pd.DataFrame:
    """``table`` (one row per ``by``) with the majority head region and the head pose of its majority person.

    ``who`` is the table's majority-person column (``person`` per frame,
    ``person id`` per fixation), matched with the samples' ``hit person`` / ``hit person id``.
    """
    hit_who = "hit " + who
    keyed = table.set_index(by)
    part = _ints(keyed["part id"].reindex(rows[by]))
    person = _ints(keyed[who].reindex(rows[by]))
    on_part = rows[(_ints(rows["hit part id"]) == part) & rows["hit region"].notna().to_numpy()]
    counts = pd.DataFrame({by: on_part[by].to_numpy(), "region": on_part["hit region"].to_numpy()})
    counts = counts.value_counts().rename("n").reset_index()
    counts["order"] = counts["region"].map(_REGION_ORDER)
    counts = counts.sort_values([by, "n", "order"], ascending=[True, False, True]).drop_duplicates(by)
    region = counts.set_index(by)["region"]
    same = rows[(_ints(rows[hit_who]) == person) & (person >= 0) & rows["head yaw [deg]"].notna().to_numpy()]
    yaw_rad = np.deg2rad(same["head yaw [deg]"].to_numpy(dtype=np.float64))
    poses = pd.DataFrame({by: same[by].to_numpy(), "s": np.sin(yaw_rad), "c": np.cos(yaw_rad),
                          "conf": same["facing confidence"].to_numpy(dtype=np.float64)}).groupby(by)
    sums = poses[["s", "c"]].sum()
    yaw = pd.Series(np.degrees(np.arctan2(sums["s"], sums["c"])), index=sums.index)
    out = table.copy()
    index = out[by]
    out["region"] = region.reindex(index).to_numpy(dtype=object)
    out["region"] = out["region"].where(pd.notna(out["region"]), None)
    out["head yaw [deg]"] = yaw.reindex(index).to_numpy(dtype=np.float64)
    facing = pd.Series(pd.NA, index=out.index, dtype="boolean")
    known = np.isfinite(out["head yaw [deg]"].to_numpy())
    facing[known] = np.abs(out["head yaw [deg]"].to_numpy()[known]) <= FACING_MAX_DEG
    out["facing wearer"] = facing
    out["facing confidence"] = poses["conf"].mean().reindex(index).to_numpy(dtype=np.float64)
    return out


def _sample_fixation_ids(samples: pd.DataFrame, fixations: pd.DataFrame) -> pd.Series:
    """Each sample's fixation: gaze.csv's ``fixation id``, else by the fixations' time intervals."""
    if "fixation id" in samples and samples["fixation id"].notna().any():
        return samples["fixation id"].astype("Int64")
    ids = pd.Series(pd.NA, index=samples.index, dtype="Int64")
    if fixations.empty:
        return ids
    fx = fixations.sort_values("start timestamp [ns]", kind="stable")
    starts = fx["start timestamp [ns]"].to_numpy(dtype=np.int64)
    ends = fx["end timestamp [ns]"].to_numpy(dtype=np.int64)
    ts = samples["timestamp [ns]"].to_numpy(dtype=np.int64)
    pos = np.searchsorted(starts, ts, side="right") - 1
    inside = pos >= 0
    inside[inside] = ts[inside] <= ends[pos[inside]]
    ids[inside] = fx["fixation id"].to_numpy()[pos[inside]]
    return ids


def _fixation_table(samples: pd.DataFrame, context: HitContext) -> pd.DataFrame:
    fixations = context.fixations
    base_columns = ["fixation id", "start timestamp [ns]", "end timestamp [ns]", "duration [ms]",
                    "fixation x [px]", "fixation y [px]"]
    base = fixations[[c for c in base_columns if c in fixations]].copy()
    if len(base):
        framed = fixation_frames(base, context.frame_timestamps, frame_in_order=context.frame_in_order)
        base["start frame"] = framed["start frame"].astype(np.int64)
        base["end frame"] = framed["end frame"].astype(np.int64)
    else:
        base["start frame"] = pd.Series([], dtype=np.int64)
        base["end frame"] = pd.Series([], dtype=np.int64)
    base["fixation id"] = base["fixation id"].astype("Int64")
    ids = _sample_fixation_ids(samples, fixations)
    with_id = samples.assign(**{"fixation id": ids})[ids.notna()]
    with_id = with_id.assign(**{"fixation id": with_id["fixation id"].astype(np.int64)})
    g = with_id.groupby("fixation id")
    stats = pd.DataFrame({"samples": g.size(), "assessed samples": g["assessed"].sum()})
    best = _majority(with_id[with_id["assessed"]], "fixation id").drop(columns=["person"])
    stats = stats.join(best, how="left")
    stats.index = stats.index.astype("Int64")
    table = base.merge(stats, left_on="fixation id", right_index=True, how="outer", sort=True)
    table["samples"] = table["samples"].fillna(0).astype(np.int64)
    table["assessed samples"] = table["assessed samples"].fillna(0).astype(np.int64)
    table["share"] = _share(table)
    table["part id"] = table["part id"].astype("Int64")
    table["part"] = id_names(table["part id"], PART_NAMES)
    table["group"] = id_names(table["part id"], PART_GROUPS)
    table["person id"] = table["person id"].astype("Int64")
    table["distance [px]"] = _float(table["distance [px]"])
    for c in ("start frame", "end frame"):
        table[c] = table[c].astype("Int64")
    assessed = with_id[with_id["assessed"]]
    table = _with_head(table, assessed.assign(**{"fixation id": assessed["fixation id"].astype("Int64")}),
                       "fixation id", "person id")
    for edge in ("start", "end"):
        if f"{edge} timestamp [ns]" in table:
            table[f"{edge} time [s]"] = context.seconds(table[f"{edge} timestamp [ns]"])
    return table[[c for c in COLUMNS["fixations"] if c in table]].reset_index(drop=True)


def _ints(values: pd.Series) -> np.ndarray:
    """int64 values with -1 for missing (ids and part ids are never negative)."""
    return pd.to_numeric(values, errors="coerce").fillna(-1).to_numpy(dtype=np.int64)


def _float(values: pd.Series) -> np.ndarray:
    """float64 values with NaN for missing (nullable columns refuse a plain astype(float))."""
    return pd.to_numeric(values, errors="coerce").astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _summary(samples: pd.DataFrame, sample_key: pd.Series, fixation_key: pd.Series, keys: list,
             context: HitContext, name: str) -> pd.DataFrame:
    """Samples, dwell, fixations, first hit and share of worn time per key (one row per value in ``keys``).

    ``sample_key`` gives each sample's key (used only for tolerant hits),
    ``fixation_key`` each fixation's key (of its majority part).
    """
    durations = samples["sample duration [ns]"].to_numpy(dtype=np.int64)
    worn = ~samples["not worn"].to_numpy(dtype=bool) & samples["frame processed"].to_numpy(dtype=bool)
    worn_ns = int(durations[worn].sum())
    is_hit = (samples["assessed"].to_numpy(dtype=bool)
              & (samples["hit part id"].fillna(0).to_numpy(dtype=np.int64) > 0))
    hits = pd.DataFrame({
        "key": sample_key.to_numpy()[is_hit],
        "duration": durations[is_hit],
        "ts": samples["timestamp [ns]"].to_numpy(dtype=np.int64)[is_hit],
    })
    g = hits.groupby("key")
    index = pd.Index(keys, dtype=object)
    n = g.size().reindex(index).fillna(0).to_numpy(dtype=np.int64)
    dwell = g["duration"].sum().reindex(index).fillna(0).to_numpy(dtype=np.int64)
    # Int64 before reindexing: the NaN of keys without hits would turn ns times into float64.
    first = g["ts"].min().astype("Int64").reindex(index)
    fixations = fixation_key.dropna().value_counts().reindex(index).fillna(0).to_numpy(dtype=np.int64)
    first_ns = first.array
    return pd.DataFrame({
        name: keys,
        "samples": n,
        "dwell time [s]": dwell / 1e9,
        "fixations": fixations,
        "first hit timestamp [ns]": first_ns,
        "first hit [s]": context.seconds(first_ns),
        "share of worn time": dwell / worn_ns if worn_ns > 0 else np.full(len(keys), np.nan),
    })


def summarize(samples: pd.DataFrame, context: HitContext, settings: HitSettings) -> HitTables:
    """All tables from a per-sample hit table (:func:`sample_hits` plus ``sample duration [ns]``)."""
    frames = _frame_table(samples, context)
    fixations = _fixation_table(samples, context)
    fixation_part = fixations["part id"].where(fixations["part id"].fillna(0) > 0)
    parts = _summary(samples, samples["hit part id"], fixation_part, list(PART_NAMES), context, "part id")
    parts["part id"] = parts["part id"].astype(np.int64)
    parts.insert(1, "part", [PART_NAMES[p] for p in parts["part id"]])
    parts.insert(2, "group", [PART_GROUPS[p] for p in parts["part id"]])
    group_names = list(dict.fromkeys(PART_GROUPS[p] for p in sorted(PART_GROUPS)))
    fixation_group = fixations["group"].where(fixation_part.notna())
    groups = _summary(samples, samples["hit group"], fixation_group, group_names, context, "group")
    # a hit without a stable id (a person painted by hand) is counted as person id -1, shown as missing
    person_key = samples["hit person id"].fillna(-1)
    fixation_person = fixations["person id"].fillna(-1).where(fixation_part.notna())
    is_hit = samples["assessed"] & (samples["hit part id"].fillna(0) > 0)
    keys = sorted(int(v) for v in person_key[is_hit].unique())
    keys = [k for k in keys if k >= 0] + [k for k in keys if k < 0]
    persons = _summary(samples, person_key, fixation_person, keys, context, "person id")
    persons["person id"] = pd.array([k if k >= 0 else pd.NA for k in keys], dtype="Int64")
    regions = _region_table(samples, fixations, context)
    return HitTables(samples=samples, frames=frames, fixations=fixations, parts=parts, groups=groups,
                     persons=persons, settings=settings, context=context, regions=regions)


def _region_table(samples: pd.DataFrame, fixations: pd.DataFrame, context: HitContext) -> pd.DataFrame:
    """:func:`_summary` per person and head region, for the pairs with tolerant hits; person order as ``persons``."""
    person = samples["hit person id"].fillna(-1).astype(np.int64).astype(str)
    sample_key = (person + "|" + samples["hit region"].astype(object).fillna("")).where(samples["hit region"].notna())
    fixation_key = (fixations["person id"].fillna(-1).astype(np.int64).astype(str) + "|"
                    + fixations["region"].astype(object).fillna("")).where(fixations["region"].notna())
    is_hit = samples["assessed"] & sample_key.notna()
    pairs = {(int(k.split("|")[0]), k.split("|", 1)[1]) for k in sample_key[is_hit].unique()}
    ordered = sorted(pairs, key=lambda pr: (pr[0] < 0, pr[0], _REGION_ORDER[pr[1]]))
    keys = [f"{p}|{r}" for p, r in ordered]
    table = _summary(samples, sample_key, fixation_key, keys, context, "key")
    table.insert(0, "person id", pd.array([p if p >= 0 else pd.NA for p, _ in ordered], dtype="Int64"))
    table.insert(1, "region", pd.Series([r for _, r in ordered], dtype=object))
    table.insert(2, "on face", [r in _FACE_NAMES for _, r in ordered])
    return table.drop(columns="key")[list(COLUMNS["regions"])]
