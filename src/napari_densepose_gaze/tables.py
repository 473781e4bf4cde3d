"""Read the CSV tables of a Pupil Cloud export, surviving the ways real files differ.

Every table is read as text first and converted column by column, so that
nanosecond timestamps never pass through float64 (which keeps only ~16 digits:
1700000000123456789 would come back as ...768). Columns are selected by name;
extra columns are kept as text after the known ones, missing optional columns
are added with a default and a note in ``TableResult.warnings``.

A damaged file costs about what a clean one of its size does: the grid of
fields is checked row by row as it is read (:mod:`.csv_grid`: field counts,
quotes that run over lines), and a number cell is checked for length and
exponent before any exact conversion, so no single cell can make a huge Python
object. Integers written as floats get a warning that estimates what was lost
(:func:`~napari_densepose_gaze.consistency.float_precision_note`). What cannot be
read exactly is a :class:`DensePoseGazeError` naming the file, row and column;
rows left out (short rows, a cut last line) are named in a warning.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .consistency import float_precision_note
from .csv_grid import read_grid
from .errors import DensePoseGazeError

__all__ = [
    "ColumnSpec",
    "TableSpec",
    "TableResult",
    "read_table",
    "parse_int64",
    "WORLD_TIMESTAMPS",
    "GAZE",
    "FIXATIONS",
    "SACCADES",
    "BLINKS",
    "EVENTS",
    "SECTIONS",
]

# kinds of column: exact int64, nullable Int64 (ids), float64, text
INT = "int64"
NULLABLE_INT = "Int64"
FLOAT = "float64"
TEXT = "str"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a table: its name, kind and what to do when it is absent."""

    name: str
    kind: str
    required: bool = True
    default: object = None  # value for a missing optional column (None: missing value)
    warn_if_missing: bool = False  # missing means an older export: say so


@dataclass(frozen=True)
class TableSpec:
    """The columns of one export file, in Pupil Cloud's order."""

    filename: str
    columns: tuple[ColumnSpec, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def empty(self) -> pd.DataFrame:
        """A table with these columns and no rows (for optional files that are absent)."""
        return pd.DataFrame({c.name: pd.Series([], dtype=_empty_dtype(c.kind)) for c in self.columns})


@dataclass
class TableResult:
    table: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def _req(name: str, kind: str) -> ColumnSpec:
    return ColumnSpec(name, kind, required=True)


def _opt(name: str, kind: str, default: object = None, warn: bool = False) -> ColumnSpec:
    return ColumnSpec(name, kind, required=False, default=default, warn_if_missing=warn)


WORLD_TIMESTAMPS = TableSpec(
    "world_timestamps.csv",
    (_opt("section id", TEXT), _opt("recording id", TEXT), _req("timestamp [ns]", INT)),
)
GAZE = TableSpec(
    "gaze.csv",
    (
        _opt("section id", TEXT),
        _opt("recording id", TEXT),
        _req("timestamp [ns]", INT),
        _req("gaze x [px]", FLOAT),
        _req("gaze y [px]", FLOAT),
        # older Pupil Invisible exports lack these three
        _opt("worn", FLOAT, default=1.0, warn=True),
        _opt("fixation id", NULLABLE_INT, warn=True),
        _opt("blink id", NULLABLE_INT, warn=True),
        _opt("azimuth [deg]", FLOAT, warn=True),
        _opt("elevation [deg]", FLOAT, warn=True),
    ),
)
FIXATIONS = TableSpec(
    "fixations.csv",
    (
        _opt("section id", TEXT),
        _opt("recording id", TEXT),
        _req("fixation id", INT),
        _req("start timestamp [ns]", INT),
        _req("end timestamp [ns]", INT),
        _opt("duration [ms]", FLOAT),
        _req("fixation x [px]", FLOAT),
        _req("fixation y [px]", FLOAT),
        _opt("azimuth [deg]", FLOAT, warn=True),
        _opt("elevation [deg]", FLOAT, warn=True),
    ),
)
SACCADES = TableSpec(
    "saccades.csv",
    (
        _opt("section id", TEXT),
        _opt("recording id", TEXT),
        _req("saccade id", INT),
        _req("start timestamp [ns]", INT),
        _req("end timestamp [ns]", INT),
        _opt("duration [ms]", FLOAT),
        _opt("amplitude [px]", FLOAT),
        _opt("amplitude [deg]", FLOAT),
        _opt("mean velocity [px/s]", FLOAT),
        _opt("peak velocity [px/s]", FLOAT),
    ),
)
BLINKS = TableSpec(
    "blinks.csv",
    (
        _opt("section id", TEXT),
        _opt("recording id", TEXT),
        _req("blink id", INT),
        _req("start timestamp [ns]", INT),
        _req("end timestamp [ns]", INT),
        _opt("duration [ms]", FLOAT),
    ),
)
EVENTS = TableSpec(
    "events.csv",
    (
        _opt("recording id", TEXT),
        _req("timestamp [ns]", INT),
        _req("name", TEXT),
        _opt("type", TEXT),
    ),
)
SECTIONS = TableSpec(
    "sections.csv",
    (
        _req("section id", TEXT),
        _req("recording id", TEXT),
        _opt("recording name", TEXT),
        _opt("wearer id", TEXT),
        _opt("wearer name", TEXT),
        _opt("section start time [ns]", INT),
        _opt("section end time [ns]", INT),
        _opt("start event name", TEXT),
        _opt("end event name", TEXT),
    ),
)


# A number cell longer than this is no number an export writes (an exact int64 in float
# notation needs about 30 characters); refusing it first bounds the work spent on one cell.
_MAX_NUMBER_CHARS = 64
_INT64_MAX_POWER = 18  # the leading digit of an int64 stands for at most 10**18
_SHOWN_CHARS = 40  # how much of a bad cell a message quotes

_MISSING_TEXT = ["", "nan", "NaN", "NA", "<NA>", "None"]
_MISSING = frozenset(_MISSING_TEXT)
_BOOLEAN_TEXT = {"true": 1.0, "false": 0.0}  # some exports write `worn` as True/False
# decimal notation with an optional exponent, ASCII digits only
_DECIMAL = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def read_table(path: str | Path, spec: TableSpec) -> TableResult:
    """Read one export CSV into typed columns named as in ``spec``.

    Copes with a UTF-8 byte-order mark, Windows line endings, extra and reordered
    columns, integers written as floats (``1.7e+18``, ``12.0``) and missing
    optional columns. Rows with too few fields and a last line cut short are left
    out with a warning. Raises :class:`DensePoseGazeError` naming the file (and
    the row and column where there is one) for a missing or doubled column, a
    value that is not a number, a row with too many fields, a quote that runs over
    lines, NUL bytes or text that is not UTF-8.
    """
    path = Path(path)
    where = f"{path.name} in {path.parent}"
    grid = read_grid(path, where)
    missing = [c.name for c in spec.columns if c.required and c.name not in grid.names]
    if missing:
        raise DensePoseGazeError(
            f"{where} lacks the column(s) {', '.join(repr(m) for m in missing)}; "
            f"it has {', '.join(repr(c) for c in grid.names) or 'no columns'}. "
            "Is this a Pupil Cloud 'Timeseries Data + Scene Video' export? Download it again if it was cut."
        )

    warnings = list(grid.warnings)
    out: dict[str, pd.Series] = {}
    n = len(grid.rows)
    for col in spec.columns:
        if col.name in grid.names:
            out[col.name] = _convert(grid.column(col.name), col, where, grid.rows, warnings)
        else:
            out[col.name] = _missing_column(col, n)
            if col.warn_if_missing:
                filled = "1.0 (worn assumed)" if col.default is not None else "missing values"
                warnings.append(f"{where} has no {col.name!r} column (an older export?); filled with {filled}.")
    for name in grid.names:  # nothing lost: unknown columns stay, as text
        if name not in out:
            out[name] = pd.Series(grid.column(name), dtype=str)
    return TableResult(pd.DataFrame(out, index=pd.RangeIndex(n)), warnings)


def _empty_dtype(kind: str):
    return {INT: np.int64, NULLABLE_INT: "Int64", FLOAT: np.float64, TEXT: object}[kind]


def _missing_column(col: ColumnSpec, n: int) -> pd.Series:
    if col.kind == FLOAT:
        fill = np.nan if col.default is None else float(col.default)
        return pd.Series(np.full(n, fill, dtype=np.float64))
    if col.kind in (INT, NULLABLE_INT):
        return pd.Series(pd.array([pd.NA] * n, dtype="Int64"))
    return pd.Series([col.default] * n, dtype=object)


def _convert(values: Sequence[str], col: ColumnSpec, where: str, rows: Sequence[int],
             warnings: list[str]) -> pd.Series:
    if col.kind == TEXT:
        return pd.Series(values, dtype=object)
    column = f"column {col.name!r} of {where}"
    if col.kind == FLOAT:
        return _parse_float(values, column, rows)
    ints, lost_digits = parse_int64(np.asarray(values, dtype=object), allow_missing=col.kind == NULLABLE_INT,
                                    where=column, rows=rows)
    # the written digits only say that something was lost; how much depends on the writer (float64 or a
    # spreadsheet), which the estimate tells from the float spacing
    note = float_precision_note(values, col.name, where) if lost_digits else None
    if note:
        warnings.append(note)
    if col.kind == NULLABLE_INT:
        return pd.Series(ints, dtype="Int64")
    return pd.Series(ints.to_numpy(dtype=np.int64))


def _shown(cell: str) -> str:
    if len(cell) <= _SHOWN_CHARS:
        return repr(cell)
    return f"{cell[:_SHOWN_CHARS]!r}... ({len(cell)} characters)"


def _refuse_long_cells(cells: np.ndarray, where: str, rows: Sequence[int] | None) -> None:
    lengths = np.fromiter(map(len, map(str, cells)), dtype=np.int64, count=len(cells))
    if len(cells) and lengths.max() > _MAX_NUMBER_CHARS:
        i = int(np.argmax(lengths > _MAX_NUMBER_CHARS))
        raise DensePoseGazeError(
            f"{where} holds {_shown(str(cells[i]))} (data row {_row(rows, i)}), too long to be a number "
            f"(over {_MAX_NUMBER_CHARS} characters). Fix or re-download the file."
        )


def _row(rows: Sequence[int] | None, i: int) -> int:
    return int(rows[i]) if rows is not None else int(i) + 1


def _parse_float(values: Sequence[str], where: str, rows: Sequence[int]) -> pd.Series:
    text = np.asarray(values, dtype=object)
    _refuse_long_cells(text, where, rows)
    # fast path: pandas' C parser; only cells it cannot read, or reads as infinite, are looked at one by one
    numbers = np.array(pd.to_numeric(pd.Series(text), errors="coerce"), dtype=np.float64)  # writable copy
    for i in np.flatnonzero(~np.isfinite(numbers)):
        cell = str(text[i]).strip()
        if np.isnan(numbers[i]):
            if cell in _MISSING:
                continue
            if cell.lower() in _BOOLEAN_TEXT:
                numbers[i] = _BOOLEAN_TEXT[cell.lower()]
                continue
            try:
                numbers[i] = float(cell)
            except ValueError:
                raise DensePoseGazeError(
                    f"{where} holds {_shown(cell)} (data row {_row(rows, i)}), which is not a number. "
                    "Fix or re-download the file."
                ) from None
        if np.isinf(numbers[i]) and not _NON_FINITE.fullmatch(cell):
            raise DensePoseGazeError(
                f"{where} holds {_shown(cell)} (data row {_row(rows, i)}), out of the range of a 64-bit float. "
                "Fix or re-download the file."
            )
    return pd.Series(numbers)


def parse_int64(
    text: np.ndarray, *, allow_missing: bool = False, where: str = "values", rows: Sequence[int] | None = None
) -> tuple[pd.arrays.IntegerArray, tuple[int, str] | None]:
    """Parse decimal strings to exact int64, also when written as ``1.7e+18`` or ``12.0``.

    Returns the integers (a nullable Int64 array) and, when some value was written
    in float notation with fewer significant digits than its magnitude needs,
    ``(exponent, example)``: its last written digit stands for 10**exponent, so
    lower digits were lost before the file was written. Raises
    :class:`DensePoseGazeError` for text that is no integer, or a missing value
    when ``allow_missing`` is False; messages count rows from 1, or name
    ``rows[i]`` for the i-th value when ``rows`` is given.
    """
    objects = np.asarray(text, dtype=object).ravel()
    _refuse_long_cells(objects, where, rows)  # before any fixed-width copy: one long cell would widen them all
    stripped = np.char.strip(objects.astype(str))
    missing = np.isin(stripped, _MISSING_TEXT)
    if missing.any() and not allow_missing:
        first = int(np.flatnonzero(missing)[0])
        raise DensePoseGazeError(
            f"{where} has an empty value in data row {_row(rows, first)}; every row needs one. "
            "Fix or re-download the file."
        )
    present = np.flatnonzero(~missing)
    result = np.zeros(len(stripped), dtype=np.int64)
    lost: tuple[int, str] | None = None
    try:
        # numpy parses plain decimal strings into int64 exactly (no float on the way)
        result[present] = stripped[present].astype(np.int64)
    except (ValueError, OverflowError):
        # some cells are written as floats ('12.0', '1.7e+18'), are too large, or are no number at all
        for i in present:
            cell = str(stripped[i])
            value, exponent = _exact_int(cell, where, _row(rows, i))
            result[i] = value
            if exponent > 0 and (lost is None or exponent > lost[0]):
                lost = (exponent, cell)
    array = pd.array(result, dtype="Int64")
    if missing.any():
        array[missing] = pd.NA
    return array, lost


def _exact_int(cell: str, where: str, row: int) -> tuple[int, int]:
    """``cell`` as an exact int64, and the power of ten its last written digit stands for.

    Works on the written digits and exponent alone, so '1e99999999999' costs no
    more than '1e9': nothing is computed at the scale the text claims.
    """
    try:
        value, exponent = int(cell), 0  # cheap: the cell is short
    except ValueError:
        value, exponent = _decimal_int(cell, where, row)
    if not -(2**63) <= value < 2**63:
        raise DensePoseGazeError(f"{where} holds {_shown(cell)} (data row {row}), too large for int64.")
    return value, exponent


def _decimal_int(cell: str, where: str, row: int) -> tuple[int, int]:
    match = _DECIMAL.fullmatch(cell)
    if match is None or not (match[2] or match[3]):
        raise DensePoseGazeError(f"{where} holds {_shown(cell)} (data row {row}), which is not an integer. "
                                 "Fix or re-download the file.")
    sign, whole, fraction, exp = match[1], match[2], match[3] or "", match[4]
    written = (whole + fraction).lstrip("0")
    # '1.6e18' -> digits '16', exponent 17: the written value resolves only 1e17;
    # trailing written zeros ('1.600e18') count as written digits, so they do not warn
    exponent = (int(exp) if exp else 0) - len(fraction)
    if not written:  # zero is exact however it is written
        return 0, 0
    if exponent + len(written) - 1 > _INT64_MAX_POWER:
        raise DensePoseGazeError(f"{where} holds {_shown(cell)} (data row {row}), too large for int64.")
    if exponent < 0:
        kept, dropped = written[:exponent], written[exponent:]
        if dropped.strip("0"):
            raise DensePoseGazeError(f"{where} holds {_shown(cell)} (data row {row}), which is not an integer. "
                                     "Fix or re-download the file.")
        return (-1 if sign == "-" else 1) * int(kept or "0"), exponent
    return (-1 if sign == "-" else 1) * int(written) * 10**exponent, exponent
