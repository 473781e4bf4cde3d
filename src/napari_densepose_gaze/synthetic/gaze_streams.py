"""The gaze of a synthetic recording: samples, fixations, saccades and blinks that agree with each other.

Kept apart from :mod:`.export`, which lays the streams out as Pupil Cloud's CSV
files: here the samples are planned as segments (dwell on a walking figure's
head, jump to the next, blink, take the glasses off, glance outside the view)
and every table is derived from the same samples, so fixation and blink ids,
intervals and saccade amplitudes match gaze.csv exactly. Everything is a
function of the random generator and ``seed`` passed in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .scene import figure_heads

__all__ = ["gaze_streams"]


def _angles(x: np.ndarray, y: np.ndarray, camera: dict) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation in degrees by a pinhole model (elevation positive up)."""
    (fx, _, cx), (_, fy, cy), _ = camera["camera_matrix"]
    return np.degrees(np.arctan((x - cx) / fx)), np.degrees(-np.arctan((y - cy) / fy))


def gaze_streams(
    rng: np.random.Generator,
    start_ns: int,
    frame_ts: np.ndarray,
    fps: int,
    gaze_hz: float,
    width: int,
    height: int,
    n_figures: int,
    seed: int,
    camera: dict,
) -> dict[str, dict]:
    """Gaze samples with fixations, saccades, blinks, a not-worn stretch, a glance out of view and a NaN.

    Returns the columns of gaze.csv, fixations.csv, blinks.csv and saccades.csv (without the ids of
    section and recording) under the keys ``gaze``, ``fixations``, ``blinks`` and ``saccades``.
    """
    # gaze starts before the first frame and ends within the last one
    first = start_ns + 50_000_000
    last = int(frame_ts[-1]) + 1_000_000_000 // fps - 1_000_000
    step = 1e9 / gaze_hz
    n = int((last - first) // step) + 1
    ts = first + np.round(np.arange(n) * step).astype(np.int64) + rng.integers(-100_000, 100_001, n)
    ts[0] = first
    t = (ts - start_ns) / 1e9
    total = t[-1] - t[0]

    # the plan: (kind, seconds) segments; blinks, glasses-off and the outside glance at fixed moments
    specials = sorted([(0.3, "blink"), (0.55, "off"), (0.75, "outside")] + ([(0.85, "blink")] if total > 2 else []))
    segments: list[tuple[str, float]] = []
    clock = 0.0
    while clock < total:
        if specials and clock >= specials[0][0] * total:
            kind = specials.pop(0)[1]
            dur = {"blink": rng.uniform(0.12, 0.2), "off": 0.25, "outside": 0.15}[kind]
            segments.append((kind, dur))
        else:
            dur = rng.uniform(0.2, 0.45)
            segments.append(("fixation", dur))
        segments.append(("saccade", rng.uniform(0.03, 0.05)))
        clock += dur + segments[-1][1]
    bounds = t[0] + np.cumsum([0.0] + [d for _, d in segments])
    seg_of = np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, len(segments) - 1)

    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    worn = np.ones(n)
    fixation_id = np.zeros(n, dtype=np.int64)  # 0: none
    blink_id = np.zeros(n, dtype=np.int64)
    noise = 0.004 * width
    n_fix = n_blink = 0
    target = int(rng.integers(n_figures))
    for s, (kind, _) in enumerate(segments):
        idx = np.flatnonzero(seg_of == s)
        if idx.size == 0:
            continue
        if kind == "fixation":
            n_fix += 1
            target = (target + 1) % n_figures
            # dwell on a head, following it as it walks (heads move slowly against the noise)
            heads = np.array([figure_heads(t[i], width, height, n_figures, seed)[target] for i in idx])
            x[idx] = heads[:, 0] + rng.normal(0, noise, idx.size)
            y[idx] = heads[:, 1] + rng.normal(0, noise, idx.size)
            fixation_id[idx] = n_fix
        elif kind == "outside":
            n_fix += 1  # a look beyond the scene camera's view: still a fixation
            x[idx] = width * 1.04 + rng.normal(0, noise, idx.size)
            y[idx] = height * 0.3 + rng.normal(0, noise, idx.size)
            fixation_id[idx] = n_fix
        elif kind == "blink":
            n_blink += 1
            x[idx] = width * 0.5 + rng.normal(0, 8 * noise, idx.size)  # the eye model guesses while the lid is shut
            y[idx] = height * 0.6 + rng.normal(0, 8 * noise, idx.size)
            blink_id[idx] = n_blink
        elif kind == "off":
            x[idx] = rng.uniform(0, width, idx.size)
            y[idx] = rng.uniform(0, height, idx.size)
            worn[idx] = 0.0
    # saccades: straight lines between the samples around them
    known = ~np.isnan(x)
    x[~known] = np.interp(np.flatnonzero(~known), np.flatnonzero(known), x[known])
    y[~known] = np.interp(np.flatnonzero(~known), np.flatnonzero(known), y[known])
    # one NaN sample in the middle of the first fixation of more than a few samples
    ids, counts = np.unique(fixation_id[fixation_id > 0], return_counts=True)
    in_fix = np.flatnonzero(fixation_id == ids[np.argmax(counts >= 5)])
    nan_at = in_fix[len(in_fix) // 2]
    x[nan_at] = y[nan_at] = np.nan

    azimuth, elevation = _angles(x, y, camera)
    gaze = {
        "timestamp [ns]": ts,
        "gaze x [px]": np.round(x, 3),
        "gaze y [px]": np.round(y, 3),
        "worn": worn,
        "fixation id": pd.Series(fixation_id, dtype="Int64").mask(fixation_id == 0),
        "blink id": pd.Series(blink_id, dtype="Int64").mask(blink_id == 0),
        "azimuth [deg]": np.round(azimuth, 6),
        "elevation [deg]": np.round(elevation, 6),
    }

    fixations = _interval_table(ts, fixation_id, "fixation id")
    fx = [np.nanmean(x[fixation_id == k]) for k in fixations["fixation id"]]
    fy = [np.nanmean(y[fixation_id == k]) for k in fixations["fixation id"]]
    faz, fel = _angles(np.array(fx), np.array(fy), camera)
    fixations.update(
        {"fixation x [px]": np.round(fx, 3), "fixation y [px]": np.round(fy, 3),
         "azimuth [deg]": np.round(faz, 6), "elevation [deg]": np.round(fel, 6)}
    )
    blinks = _interval_table(ts, blink_id, "blink id")
    saccades = _saccades(ts, x, y, seg_of, segments, camera)
    return {"gaze": gaze, "fixations": fixations, "blinks": blinks, "saccades": saccades}


def _interval_table(ts: np.ndarray, labels: np.ndarray, id_column: str) -> dict:
    ids = np.unique(labels[labels > 0])
    start = np.array([ts[labels == k][0] for k in ids], dtype=np.int64)
    end = np.array([ts[labels == k][-1] for k in ids], dtype=np.int64)
    return {
        id_column: ids.astype(np.int64),
        "start timestamp [ns]": start,
        "end timestamp [ns]": end,
        "duration [ms]": np.round((end - start) / 1e6, 3),
    }


def _saccades(ts: np.ndarray, x: np.ndarray, y: np.ndarray, seg_of: np.ndarray, segments: list[tuple[str, float]],
              camera: dict) -> dict:
    rows = []
    fx = camera["camera_matrix"][0][0]
    for s, (kind, _) in enumerate(segments):
        idx = np.flatnonzero(seg_of == s)
        if kind != "saccade" or idx.size == 0:
            continue
        a, b = max(idx[0] - 1, 0), min(idx[-1] + 1, len(ts) - 1)
        if np.isnan([x[a], y[a], x[b], y[b]]).any():
            continue
        amplitude = float(np.hypot(x[b] - x[a], y[b] - y[a]))
        seconds = max((ts[b] - ts[a]) / 1e9, 1e-3)
        rows.append((ts[a], ts[b], amplitude, amplitude / seconds))
    start = np.array([r[0] for r in rows], dtype=np.int64)
    end = np.array([r[1] for r in rows], dtype=np.int64)
    amplitude = np.array([r[2] for r in rows])
    mean_velocity = np.array([r[3] for r in rows])
    return {
        "saccade id": np.arange(1, len(rows) + 1, dtype=np.int64),
        "start timestamp [ns]": start,
        "end timestamp [ns]": end,
        "duration [ms]": np.round((end - start) / 1e6, 3),
        "amplitude [px]": np.round(amplitude, 3),
        "amplitude [deg]": np.round(np.degrees(np.arctan(amplitude / fx)), 4),
        "mean velocity [px/s]": np.round(mean_velocity, 3),
        "peak velocity [px/s]": np.round(1.6 * mean_velocity, 3),
    }
