"""Gaze samples to scene video frames.

A sample belongs to the frame shown at its time: the last frame whose timestamp
is <= the sample's. Each sample is flagged with why it cannot count as a look at
the scene (not worn, in a blink, outside the image, NaN, before the first or
after the last frame); ``valid`` is none of those. Everything here takes arrays
and DataFrames; :class:`~napari_densepose_gaze.recording.Recording` applies it
to a recording (and keeps its flagged samples).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "FLAG_COLUMNS",
    "assign_frames",
    "frames_in_order",
    "in_intervals",
    "flag_gaze",
    "aggregate_per_frame",
    "fixation_frames",
]

FLAG_COLUMNS = ("not worn", "in blink", "outside frame", "nan", "before first frame", "after last frame")


def assign_frames(
    sample_ts: np.ndarray,
    frame_ts: np.ndarray,
    *,
    frame_in_order: np.ndarray | None = None,
    frame_duration: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame index of each sample time, and masks of samples before the first / after the last frame.

    ``frame_in_order`` marks frames whose timestamp is later than every earlier
    frame's; only those receive samples, so a frame with a repeated or backward
    timestamp gets none and frame ``i`` is always row ``i``. A sample later than
    the last frame's timestamp plus ``frame_duration`` (default: the median frame
    interval) is after the video. Samples outside the video get frame -1.
    """
    sample_ts = np.asarray(sample_ts, dtype=np.int64)
    frame_ts = np.asarray(frame_ts, dtype=np.int64)
    frames = np.full(sample_ts.shape, -1, dtype=np.int64)
    if frame_ts.size == 0:
        return frames, np.ones(sample_ts.shape, bool), np.zeros(sample_ts.shape, bool)
    if frame_in_order is None:
        frame_in_order = frames_in_order(frame_ts)
    usable = np.flatnonzero(frame_in_order)
    usable_ts = frame_ts[usable]  # strictly increasing, as searchsorted needs
    pos = np.searchsorted(usable_ts, sample_ts, side="right") - 1
    before = pos < 0
    if frame_duration is None:
        frame_duration = _median_interval(usable_ts)
    after = sample_ts >= usable_ts[-1] + frame_duration if frame_duration is not None else np.zeros_like(before)
    inside = ~before & ~after
    frames[inside] = usable[pos[inside]]
    return frames, before, after


def frames_in_order(frame_ts: np.ndarray) -> np.ndarray:
    """True for each frame whose timestamp is later than all earlier frames' (the first always)."""
    frame_ts = np.asarray(frame_ts, dtype=np.int64)
    ok = np.ones(frame_ts.shape, dtype=bool)
    if frame_ts.size > 1:
        ok[1:] = frame_ts[1:] > np.maximum.accumulate(frame_ts)[:-1]
    return ok


def _median_interval(ts: np.ndarray) -> int | None:
    if ts.size < 2:
        return None
    return int(np.median(np.diff(ts)))


def in_intervals(ts: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """True where ``ts`` lies in any closed interval ``[starts[k], ends[k]]`` (intervals may overlap)."""
    ts = np.asarray(ts, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size == 0:
        return np.zeros(ts.shape, dtype=bool)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)  # overlapping intervals: the furthest end so far
    pos = np.searchsorted(starts, ts, side="right") - 1
    inside = pos >= 0
    inside[inside] = ts[inside] <= reach[pos[inside]]
    return inside


def flag_gaze(
    gaze: pd.DataFrame,
    frame_timestamps: np.ndarray,
    frame_size: tuple[int, int],
    blinks: pd.DataFrame | None = None,
    *,
    frame_in_order: np.ndarray | None = None,
) -> pd.DataFrame:
    """A copy of ``gaze`` with a ``frame`` column, one boolean column per flag, and ``valid``.

    ``frame_size`` is (width, height); a sample is outside the frame unless
    0 <= x < width and 0 <= y < height. A sample is in a blink when its
    ``blink id`` is set or its time lies inside a blink of ``blinks``.
    """
    out = gaze.copy()
    ts = out["timestamp [ns]"].to_numpy(dtype=np.int64)
    frames, before, after = assign_frames(ts, frame_timestamps, frame_in_order=frame_in_order)
    x = out["gaze x [px]"].to_numpy(dtype=np.float64)
    y = out["gaze y [px]"].to_numpy(dtype=np.float64)
    width, height = frame_size
    nan = np.isnan(x) | np.isnan(y)
    with np.errstate(invalid="ignore"):
        outside = ~nan & ~((x >= 0) & (x < width) & (y >= 0) & (y < height))
    if "worn" in out:
        worn = out["worn"].to_numpy(dtype=np.float64)
        not_worn = worn < 0.5  # NaN (unknown) counts as worn, like exports without the column
    else:
        not_worn = np.zeros(len(out), dtype=bool)
    in_blink = np.zeros(len(out), dtype=bool)
    if "blink id" in out:
        in_blink |= out["blink id"].notna().to_numpy(dtype=bool)
    if blinks is not None and len(blinks):
        in_blink |= in_intervals(ts, blinks["start timestamp [ns]"], blinks["end timestamp [ns]"])
    out["frame"] = frames
    flags = {
        "not worn": not_worn,
        "in blink": in_blink,
        "outside frame": outside,
        "nan": nan,
        "before first frame": before,
        "after last frame": after,
    }
    for name, mask in flags.items():
        out[name] = mask
    out["valid"] = ~np.logical_or.reduce(list(flags.values())) if len(out) else np.zeros(0, dtype=bool)
    return out


def aggregate_per_frame(samples: pd.DataFrame, frame_timestamps: np.ndarray) -> pd.DataFrame:
    """One row per frame that has samples: the mean of its valid samples and its fixation.

    ``samples`` is the output of :func:`flag_gaze`. The fixation id is the most
    common value among the frame's samples, "no fixation" counting as a value;
    a tie goes to a fixation (the smallest id).
    """
    frame_timestamps = np.asarray(frame_timestamps, dtype=np.int64)
    on_frames = samples[samples["frame"] >= 0]
    columns = ["frame", "timestamp [ns]", "gaze x [px]", "gaze y [px]", "samples", "valid samples", "fixation id"]
    if on_frames.empty:
        return pd.DataFrame(
            {
                "frame": pd.Series([], dtype=np.int64),
                "timestamp [ns]": pd.Series([], dtype=np.int64),
                "gaze x [px]": pd.Series([], dtype=np.float64),
                "gaze y [px]": pd.Series([], dtype=np.float64),
                "samples": pd.Series([], dtype=np.int64),
                "valid samples": pd.Series([], dtype=np.int64),
                "fixation id": pd.Series([], dtype="Int64"),
            }
        )[columns]
    by_frame = on_frames.groupby("frame", sort=True)
    result = pd.DataFrame({"samples": by_frame.size().astype(np.int64)})
    result["valid samples"] = by_frame["valid"].sum().astype(np.int64)
    valid = on_frames[on_frames["valid"]].groupby("frame")[["gaze x [px]", "gaze y [px]"]].mean()
    result = result.join(valid, how="left")
    result["fixation id"] = _majority_fixation(on_frames).reindex(result.index).astype("Int64")
    result.index.name = "frame"
    result = result.reset_index()
    result["frame"] = result["frame"].astype(np.int64)
    result["timestamp [ns]"] = frame_timestamps[result["frame"].to_numpy()]
    result[["gaze x [px]", "gaze y [px]"]] = result[["gaze x [px]", "gaze y [px]"]].astype(np.float64)
    return result[columns]


def _majority_fixation(samples: pd.DataFrame) -> pd.Series:
    if "fixation id" not in samples:
        return pd.Series(pd.NA, index=pd.Index(samples["frame"].unique()), dtype="Int64")
    ids = samples["fixation id"].astype("Int64")
    counts = (
        pd.DataFrame({"frame": samples["frame"].to_numpy(), "id": ids.fillna(-1).to_numpy(dtype=np.int64)})
        .value_counts()
        .rename("n")
        .reset_index()
    )
    counts["none"] = counts["id"] < 0
    counts = counts.sort_values(["frame", "n", "none", "id"], ascending=[True, False, True, True])
    best = counts.drop_duplicates("frame").set_index("frame")["id"]
    return best.where(best >= 0).astype("Int64")


def fixation_frames(
    fixations: pd.DataFrame, frame_timestamps: np.ndarray, *, frame_in_order: np.ndarray | None = None
) -> pd.DataFrame:
    """``fixations`` with ``start frame``, ``end frame`` and ``midpoint frame`` (-1 outside the video)."""
    out = fixations.copy()
    start = out["start timestamp [ns]"].to_numpy(dtype=np.int64)
    end = out["end timestamp [ns]"].to_numpy(dtype=np.int64)
    middle = start + (end - start) // 2  # integer midpoint: no float rounding of ns times
    for name, ts in (("start frame", start), ("end frame", end), ("midpoint frame", middle)):
        out[name] = assign_frames(ts, frame_timestamps, frame_in_order=frame_in_order)[0]
    return out
