"""Read the CSV tables of a Pupil Cloud export, surviving the ways real files differ.

Every table is read as text first and converted column by column, so that
nanosecond timestamps never pass through float64 (which keeps only ~16 digits:
1700000000123456789 would come back as ...768). Columns are selected by name;
extra columns are kept as text after the known ones, missing optional columns
are added with a default and a note in ``TableResult.warnings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

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


def read_table(path: str | Path, spec: TableSpec) -> TableResult:
    """Read one export CSV into typed columns named as in ``spec``.

    Copes with a UTF-8 byte-order mark, Windows line endings, extra and reordered
    columns, integers written as floats (``1.7e+18``, ``12.0``) and missing
    optional columns. Raises :class:`DensePoseGazeError` naming the file for a
    missing required column or a value that is not a number.
    """
    path = Path(path)
    try:
        # all text, nothing guessed: each column is converted below by its kind
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DensePoseGazeError(
            f"{path.name} in {path.parent} is empty (no header row). Download the export again."
        ) from exc
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DensePoseGazeError(
            f"{path.name} in {path.parent} is not a readable CSV file ({exc}). Download the export again."
        ) from exc
    # a second BOM or stray spaces around header names still name the same column
    raw.columns = [str(c).replace("\ufeff", "").strip() for c in raw.columns]

    missing = [c.name for c in spec.columns if c.required and c.name not in raw.columns]
    if missing:
        raise DensePoseGazeError(
            f"{path.name} in {path.parent} lacks the column(s) {', '.join(repr(m) for m in missing)}; "
            f"it has {', '.join(repr(c) for c in raw.columns) or 'no columns'}. "
            "Is this a Pupil Cloud 'Timeseries Data + Scene Video' export? Download it again if it was cut."
        )

    warnings: list[str] = []
    out: dict[str, pd.Series] = {}
    n = len(raw)
    for col in spec.columns:
        if col.name in raw.columns:
            out[col.name] = _convert(raw[col.name], col, path, warnings)
        else:
            out[col.name] = _missing_column(col, n)
            if col.warn_if_missing:
                filled = "1.0 (worn assumed)" if col.default is not None else "missing values"
                warnings.append(
                    f"{path.name} in {path.parent} has no {col.name!r} column "
                    f"(an older export?); filled with {filled}."
                )
    for name in raw.columns:  # nothing lost: unknown columns stay, as text
        if name not in out:
            out[name] = raw[name]
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


def _convert(values: pd.Series, col: ColumnSpec, path: Path, warnings: list[str]) -> pd.Series:
    if col.kind == TEXT:
        return values.astype(object)
    if col.kind == FLOAT:
        return _parse_float(values, col.name, path)
    ints, lost_digits = parse_int64(values.to_numpy(dtype=object), allow_missing=col.kind == NULLABLE_INT,
                                    where=f"column {col.name!r} of {path.name} in {path.parent}")
    if lost_digits:
        warnings.append(
            f"{path.name} in {path.parent}: {col.name!r} was written as floating point with too few "
            f"digits (e.g. {lost_digits[1]!r}); some values are exact only to about 10^{lost_digits[0]}"
            + (" ns" if "[ns]" in col.name else "")
            + ". Re-export from Pupil Cloud rather than re-saving the CSV in a spreadsheet."
        )
    if col.kind == NULLABLE_INT:
        return pd.Series(ints, dtype="Int64")
    return pd.Series(ints.to_numpy(dtype=np.int64))


_MISSING_TEXT = ["", "nan", "NaN", "NA", "<NA>", "None"]
_BOOLEAN_TEXT = {"true": 1.0, "false": 0.0}  # some exports write `worn` as True/False


def _parse_float(values: pd.Series, name: str, path: Path) -> pd.Series:
    text = values.to_numpy(dtype=object)
    # fast path: pandas' C parser; only cells it cannot read are looked at one by one
    numbers = np.array(pd.to_numeric(pd.Series(text), errors="coerce"), dtype=np.float64)  # writable copy
    for i in np.flatnonzero(np.isnan(numbers)):
        cell = str(text[i]).strip()
        if cell in _MISSING_TEXT:
            continue
        try:
            numbers[i] = _BOOLEAN_TEXT[cell.lower()] if cell.lower() in _BOOLEAN_TEXT else float(cell)
        except ValueError:
            raise DensePoseGazeError(
                f"column {name!r} of {path.name} in {path.parent} holds {text[i]!r} "
                f"(data row {i + 1}), which is not a number. Fix or re-download the file."
            ) from None
    return pd.Series(numbers)


def parse_int64(
    text: np.ndarray, *, allow_missing: bool = False, where: str = "values"
) -> tuple[pd.arrays.IntegerArray, tuple[int, str] | None]:
    """Parse decimal strings to exact int64, also when written as ``1.7e+18`` or ``12.0``.

    Returns the integers (a nullable Int64 array) and, when some value was written
    in float notation with fewer significant digits than its magnitude needs,
    ``(exponent, example)``: its last written digit stands for 10**exponent, so
    lower digits were lost before the file was written. Raises
    :class:`DensePoseGazeError` for text that is no integer, or a missing value
    when ``allow_missing`` is False.
    """
    stripped = np.char.strip(np.asarray(text, dtype=object).astype(str))
    missing = np.isin(stripped, _MISSING_TEXT)
    if missing.any() and not allow_missing:
        first = int(np.flatnonzero(missing)[0])
        raise DensePoseGazeError(
            f"{where} has an empty value in data row {first + 1}; every row needs one. "
            "Fix or re-download the file."
        )
    present = np.flatnonzero(~missing)
    result = np.zeros(len(stripped), dtype=np.int64)
    lost: tuple[int, str] | None = None
    try:
        # numpy parses plain decimal strings into int64 exactly (no float on the way)
        result[present] = stripped[present].astype(np.int64)
    except (ValueError, OverflowError):
        # some cells are written as floats ('12.0', '1.7e+18') or are no number at all
        for i in present:
            cell = str(stripped[i])
            try:
                result[i] = int(cell)
                continue
            except ValueError:
                pass
            except OverflowError:
                raise DensePoseGazeError(f"{where} holds {cell!r} (data row {i + 1}), too large for int64.") from None
            value, exponent = _exact_decimal_int(cell, where, int(i))
            result[i] = value
            if exponent > 0 and (lost is None or exponent > lost[0]):
                lost = (exponent, cell)
    array = pd.array(result, dtype="Int64")
    if missing.any():
        array[missing] = pd.NA
    return array, lost


def _exact_decimal_int(s: str, where: str, row: int) -> tuple[int, int]:
    """``s`` as an exact integer, and the power of ten its last written digit stands for."""
    try:
        d = Decimal(s)
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or d != d.to_integral_value():
        raise DensePoseGazeError(f"{where} holds {s!r} (data row {row + 1}), which is not an integer. "
                                 "Fix or re-download the file.")
    value = int(d)
    if not -(2**63) <= value < 2**63:
        raise DensePoseGazeError(f"{where} holds {s!r} (data row {row + 1}), too large for int64.")
    # '1.6e18' -> digits (1, 6), exponent 17: the written value resolves only 1e17;
    # trailing written zeros ('1.600e18') count as written digits, so they do not warn
    return value, d.as_tuple().exponent
