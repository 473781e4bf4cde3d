"""Checks that a recording's files are what they claim and belong together.

``info.json`` and ``scene_camera.json`` are read defensively (size, nesting
depth, integers too long to parse, wrong types: a note, never a crash), the
intrinsics are validated (:mod:`~napari_densepose_gaze.intrinsics`), and the
``recording id`` of each table is compared with the recording's own, so that a
``blinks.csv`` copied from another recording is not used without a word.
Integer columns written as floats get an estimate of what was really lost
(:func:`float_precision`), from the digits the writer kept and float64's spacing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import DensePoseGazeError
from .intrinsics import IntrinsicsError, intrinsics_from

if TYPE_CHECKING:  # tables.py may import this module's float check: no import of tables at run time
    from .tables import TableSpec

__all__ = ["read_json_object", "checked_info", "checked_scene_camera", "checked_tables", "float_precision",
           "float_precision_note", "INFO_TYPES"]

_MAX_JSON_BYTES = 4 * 1024 * 1024  # info.json and scene_camera.json are a few kilobytes
_MAX_DEPTH = 32  # template answers nest a few levels; nothing Pupil Labs writes nests deeper
_INT64 = (-(2**63), 2**63 - 1)
_MAX_LISTED = 4


def _text(v: object) -> bool:
    return isinstance(v, str)


def _serial(v: object) -> bool:
    return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))


def _int64(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and _INT64[0] <= v <= _INT64[1]


def _positive(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _offset(v: object) -> bool:
    return (isinstance(v, list) and len(v) == 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in v))


#: info.json field -> (what it must be, the test): fields the plugin reads or shows
INFO_TYPES = {
    "recording_id": ("text", _text),
    "start_time": ("an integer of nanoseconds", _int64),
    "duration": ("an integer of nanoseconds", _int64),
    "wearer_name": ("text", _text),
    "wearer_id": ("text", _text),
    "gaze_offset": ("two finite numbers", _offset),
    "gaze_frequency": ("a positive number", _positive),
    "data_format_version": ("text", _text),
    "app_version": ("text", _text),
    "pipeline_version": ("text", _text),
    "android_device_name": ("text", _text),
    "module_serial_number": ("a serial number", _serial),
    "frame_name": ("text", _text),
    "glasses_serial_number": ("a serial number", _serial),
    "scene_camera_serial_number": ("a serial number", _serial),
    "template_data": ("an object", lambda v: isinstance(v, dict)),
}


def read_json_object(path: Path, notes: list[str], required_keys: tuple[str, ...] = ()) -> dict:
    """The JSON object in ``path``, or ``{}`` with a note in ``notes`` saying why not.

    Refuses files over 4 MiB, nesting deeper than 32 levels, integers too long
    for Python to parse, and anything but an object with ``required_keys``;
    an ``info.json`` also has its known fields' types checked (:func:`checked_info`).
    """
    where = f"{path.name} in {path.parent}"
    if not path.is_file():
        notes.append(f"{path.name} is missing from {path.parent}; continuing without it.")
        return {}
    try:
        size = path.stat().st_size
        if size > _MAX_JSON_BYTES:
            notes.append(f"{where} is {size / 2**20:.0f} MiB, far more than such a file holds; ignored. "
                         "Download the recording again.")
            return {}
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
        # ValueError covers malformed JSON and integers over Python's digit limit
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        notes.append(f"{where} is not valid JSON ({reason}); continuing without it.")
        return {}
    if _depth(data) > _MAX_DEPTH:
        notes.append(f"{where} nests more than {_MAX_DEPTH} levels deep, which no Pupil Labs file does; ignored.")
        return {}
    if not isinstance(data, dict) or any(k not in data for k in required_keys):
        notes.append(f"{where} lacks {', '.join(required_keys) or 'an object'}; ignored.")
        return {}
    return checked_info(data, path, notes) if path.name == "info.json" else data


def _depth(value: object) -> int:
    """Nesting depth, without recursion (a hostile file must not exhaust the stack twice)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth > _MAX_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in item)
    return deepest


def checked_info(info: dict, path: Path, notes: list[str]) -> dict:
    """``info`` without the known fields of a wrong type (:data:`INFO_TYPES`), with one note naming them."""
    wrong = {k: v for k, v in info.items() if k in INFO_TYPES and v is not None and not INFO_TYPES[k][1](v)}
    if not wrong:
        return info
    listed = "; ".join(f"{k} should be {INFO_TYPES[k][0]}, not {_shown(v)}" for k, v in wrong.items())
    them = "these fields" if len(wrong) > 1 else "it"
    notes.append(f"{path.name} in {path.parent}: {listed}. Continuing without {them}; "
                 "download the recording again if it matters.")
    return {k: v for k, v in info.items() if k not in wrong}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def checked_scene_camera(scene_camera: Mapping | None, path: Path, notes: list[str]) -> dict | None:
    """``scene_camera`` if its intrinsics are usable, else None with a note saying hit radii fall back to pixels."""
    if not scene_camera:
        return None
    try:
        intrinsics = intrinsics_from(scene_camera, where=f"{path.name} in {path.parent}")
    except IntrinsicsError as exc:
        notes.append(f"{exc} Continuing without intrinsics: hit radii are in pixels.")
        return None
    if intrinsics.distortion_key is None:
        notes.append(f"{path.name} in {path.parent} gives no lens distortion (neither distortion_coefficients nor "
                     "dist_coefs); radii in degrees assume a distortion-free lens, too large towards the edges.")
    return dict(scene_camera)


def checked_tables(
    folder: Path,
    info: Mapping,
    tables: dict[TableSpec, pd.DataFrame],
    required: tuple[TableSpec, ...],
    notes: list[str],
) -> dict[TableSpec, pd.DataFrame]:
    """``tables`` with each one from another recording left out (optional) or refused (required).

    The recording's id is ``recording_id`` of info.json, else the one id of
    the first required table. A table whose ``recording id`` column names
    another recording, or several, is from elsewhere: an optional one is
    replaced by an empty table with a note, a required one raises
    :class:`DensePoseGazeError`, since matching it to this video would be wrong.
    """
    own, said_by = info.get("recording_id"), "info.json"
    if not isinstance(own, str) or not own:
        first = next((s for s in required if s in tables), None)
        ids = _ids(tables[first]) if first is not None else []
        own, said_by = (ids[0], first.filename) if len(ids) == 1 else (None, None)
    if own is None:
        return tables
    checked = dict(tables)
    for spec, table in tables.items():
        ids = _ids(table)
        if not ids or ids == [own]:
            continue
        others = [i for i in ids if i != own]
        listed = ", ".join(others[:_MAX_LISTED]) + (", ..." if len(others) > _MAX_LISTED else "")
        what = (f"{spec.filename} in {folder} holds rows of the recording(s) {listed}, but {said_by} says this "
                f"folder is the recording {own}")
        if spec in required:
            raise DensePoseGazeError(f"{what}: the files of different recordings are mixed. Put back the "
                                     f"{spec.filename} of this recording's 'Timeseries Data + Scene Video' download.")
        notes.append(f"{what}: it belongs to another recording and is left out (the table is empty). "
                     f"Copy this recording's own {spec.filename} into the folder to use it.")
        checked[spec] = spec.empty()
    return checked


def _ids(table: pd.DataFrame) -> list[str]:
    if "recording id" not in table:
        return []
    values = pd.unique(table["recording id"].dropna().astype(str).str.strip())
    return sorted(v for v in values if v)


_FLOAT_CELL = re.compile(r"\s*[+-]?0*(\d*)\.?(\d*?)0*[eE]?([+-]?\d*)\s*")
_FLOAT64_DIGITS = 16  # a writer that keeps 16 or more significant digits wrote float64 values in full
_SPREADSHEET_DIGITS = 15  # what a spreadsheet keeps


def float_precision(cells: Sequence[str]) -> tuple[float, bool] | None:
    """How exact integers written as floats are, in units of the column: ``(step, from_float64)``.

    Only cells in float notation (``1.7870869695312817e+18``, ``12.0``) count;
    None if there is none or nothing was lost. A writer that kept 16 or more significant digits
    somewhere (Neon Player, a script that read the times as float64) wrote
    float64 values in full: each is off by at most float64's spacing at that
    magnitude (256 ns at 2026's timestamps), whatever its own digit count. A
    writer that never kept more than 15 (a spreadsheet) cut the values to
    that many digits: the step is a unit of the 15th digit of the largest value.
    """
    budget, largest = 0, 0.0
    for cell in cells:
        text = str(cell)
        if not any(c in text for c in ".eE"):
            continue
        match = _FLOAT_CELL.fullmatch(text)
        if match is None:
            continue
        whole, fraction = match[1], match[2]
        digits = (whole + fraction).lstrip("0")
        budget = max(budget, len(digits))
        try:
            largest = max(largest, abs(float(text)))
        except ValueError:
            continue
    if budget == 0 or largest == 0 or not math.isfinite(largest):
        return None
    spacing = float(np.spacing(largest))
    from_float64 = budget >= _FLOAT64_DIGITS
    step = spacing if from_float64 else max(10.0 ** (math.floor(math.log10(largest)) - budget + 1), spacing)
    return (step, from_float64) if step > 1 else None  # a step of 1 loses nothing from an integer


def float_precision_note(cells: Sequence[str], column: str, where: str) -> str | None:
    """The warning for an integer column written as floats, with advice that fits its writer (None: exact)."""
    estimate = float_precision(cells)
    if estimate is None:
        return None
    step, from_float64 = estimate
    unit = " ns" if "[ns]" in column else ""
    amount = _duration(step) if unit else f"{step:.3g}"
    example = next(str(c) for c in cells if any(ch in str(c) for ch in ".eE"))
    if from_float64:
        advice = ("The file was written from 64-bit floats (Neon Player writes them, and so does a script that "
                  "reads the timestamps without an int64 dtype); for exact values use Pupil Cloud's export, or "
                  "read and write the column as int64.")
    else:
        advice = (f"The writer kept at most {_SPREADSHEET_DIGITS} digits, as a spreadsheet does: re-export from "
                  "Pupil Cloud rather than re-saving the CSV in a spreadsheet.")
    impact = (" That is far below a gaze sample's 5 ms, so matching gaze to frames is not affected."
              if unit and step < 1e5 else "")
    return (f"{where}: {column!r} was written as floating point (e.g. {example!r}); values are exact only to "
            f"about {amount}.{impact} {advice}")


def _duration(ns: float) -> str:
    for unit, size in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= size:
            return f"{ns / size:.3g} {unit}"
    return f"{ns:.3g} ns"
