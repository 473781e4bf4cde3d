"""Read the CSV tables of a Pupil Cloud export, surviving the ways real files differ.

Every table is read as text first and converted column by column, so that
nanosecond timestamps never pass through float64 (which keeps only ~16 digits:
1700000000123456789 would come back as ...768). Columns are selected by name;
extra columns are kept as text after the known ones, missing optional columns
are added with a default and a note in ``TableResult.warnings``.

A damaged file costs about what a clean one of its size does: the grid of
fields is checked row by row as it is read (field counts, quotes that run over
lines), and a number cell is checked for length and exponent before any exact
conversion, so no single cell can make a huge Python object. What cannot be
read exactly is a :class:`DensePoseGazeError` naming the file, row and column;
rows left out (short rows, a cut last line) are named in a warning.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
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


# A number cell longer than this is no number an export writes (an exact int64 in float
# notation needs about 30 characters); refusing it first bounds the work spent on one cell.
_MAX_NUMBER_CHARS = 64
_INT64_MAX_POWER = 18  # the leading digit of an int64 stands for at most 10**18
_SHOWN_CHARS = 40  # how much of a bad cell a message quotes
_LISTED_ROWS = 5  # how many left-out rows a warning names

_MISSING_TEXT = ["", "nan", "NaN", "NA", "<NA>", "None"]
_MISSING = frozenset(_MISSING_TEXT)
# decimal notation with an optional exponent, ASCII digits only
_BOOLEAN_TEXT = {"true": 1.0, "false": 0.0}  # some exports write `worn` as True/False
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
    grid = _read_grid(path, where)
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


@dataclass
class _Grid:
    """A CSV file as text fields: its column names and the data rows that were kept."""

    names: list[str]
    columns: list[Sequence[str]]  # one per name, a field per kept row
    rows: list[int]  # each kept row's number among the file's data rows (1-based)
    warnings: list[str]

    def column(self, name: str) -> Sequence[str]:
        return self.columns[self.names.index(name)]


def _read_grid(path: Path, where: str) -> _Grid:
    data = _read_bytes(path, where)
    if b'"' not in data:  # no quoting: every non-blank line is one record
        grid = _grid_by_lines(data, where)
        if grid is not None:
            return grid
    return _grid_by_records(data.decode("utf-8-sig"), where)


def _grid_by_lines(data: bytes, where: str) -> _Grid | None:
    """The grid of a file without quotes, by pandas' C parser (fast); None if it sees the lines otherwise."""
    try:
        frame = pd.read_csv(io.BytesIO(data), header=None, dtype=object, keep_default_na=False,
                            encoding="utf-8-sig", skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise _empty(where) from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise DensePoseGazeError(f"{where} cannot be read as CSV ({exc}). Download the export again.") from None
        width, line, fields = found.groups()
        raise _too_many_fields(where, None, int(line), int(fields), int(width)) from None
    width, n_records = frame.shape[1], len(frame)
    short: list[tuple[int, int]] = []
    # pandas pads a short row with empty fields; rows are never longer than the header (that is an
    # error above), so the file's commas count every field unless some row is short
    if data.count(b",") != (width - 1) * n_records:
        lines = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip(b" \t")]
        if len(lines) != n_records:
            return None
        short = [(row, n) for row, (n, line) in enumerate(lines[1:], 1) if line.count(b",") + 1 < width]
    header = [str(c) for c in frame.iloc[0]]
    cut = n_records - 1 if n_records > 1 and not data.endswith((b"\n", b"\r")) else None
    keep = np.ones(n_records - 1, dtype=bool)
    keep[[row - 1 for row, _ in short] + ([cut - 1] if cut else [])] = False
    columns = [frame[j].to_numpy(dtype=object)[1:][keep] for j in frame.columns]
    return _grid(header, columns, (np.flatnonzero(keep) + 1).tolist(), short, cut, where)


def _grid_by_records(text: str, where: str) -> _Grid:
    """The grid of any file, record by record with the csv module: quoted fields are seen as they are."""
    # newline="": records end at \n, \r\n or a lone \r, and a quoted line break stays visible
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    kept: list[list[str]] = []
    rows: list[int] = []
    short: list[tuple[int, int]] = []  # (data row, line)
    data_row = line = 0
    try:
        for record in reader:
            first, line = line + 1, reader.line_num
            if len(record) <= 1 and not "".join(record).strip(" \t"):  # a blank line, as pandas skips them
                continue
            if line > first:
                _refuse_multiline(where, record, header, data_row + 1, first, line)
            if header is None:
                header = record
                continue
            data_row += 1
            if len(record) == len(header):
                kept.append(record)
                rows.append(data_row)
            elif len(record) < len(header):
                short.append((data_row, line))
            else:
                raise _too_many_fields(where, data_row, line, len(record), len(header))
    except csv.Error as exc:
        raise DensePoseGazeError(
            f"{where} cannot be read as CSV near line {reader.line_num + 1} ({exc}). Download the export again."
        ) from None
    if header is None:
        raise _empty(where)
    cut = data_row if data_row and not text.endswith(("\n", "\r")) else None
    if cut is not None and rows and rows[-1] == cut:
        rows.pop()
        kept.pop()
    columns = list(zip(*kept)) if kept else [() for _ in header]
    return _grid(header, columns, rows, short, cut, where)


def _grid(header: list[str], columns: list[Sequence[str]], rows: list[int], short: list[tuple[int, int]],
          cut: int | None, where: str) -> _Grid:
    """The grid with its column names checked and a warning for each kind of row left out."""
    warnings = []
    if cut is not None:
        # a download or copy that stopped mid-row: the last row's last value may be cut too
        short = [s for s in short if s[0] != cut]
        warnings.append(
            f"{where} ends inside data row {cut} (its last line has no line end): the file looks cut "
            "short, so that row is left out. Download the export again to get it."
        )
    if short:
        listed = ", ".join(f"{r} (line {n})" for r, n in short[:_LISTED_ROWS])
        listed += ", ..." if len(short) > _LISTED_ROWS else ""
        warnings.append(
            f"{where}: {len(short)} data row(s) have fewer fields than the header's {len(header)} columns "
            f"and are left out: data row {listed}. Download the export again if rows are missing."
        )
    return _Grid(_column_names(header, where), columns, rows, warnings)


def _empty(where: str) -> DensePoseGazeError:
    return DensePoseGazeError(f"{where} is empty (no header row). Download the export again.")


def _too_many_fields(where: str, data_row: int | None, line: int, fields: int, width: int) -> DensePoseGazeError:
    row = f"data row {data_row} (line {line})" if data_row is not None else f"line {line}"
    return DensePoseGazeError(
        f"{where}: {row} has {fields} fields where the header names {width} columns, so its values "
        "cannot be matched to columns (a stray comma, or a text with a comma that lost its quotes?). "
        "Fix that row or download the export again."
    )


def _read_bytes(path: Path, where: str) -> bytes:
    """The file's bytes, checked to be UTF-8 text without NUL bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DensePoseGazeError(
            f"Cannot read {where} ({exc.strerror or exc}). Check that the file is readable, or download it again."
        ) from exc
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DensePoseGazeError(
            f"{where} holds a NUL byte on line {line} (byte {nul}): it is not a UTF-8 text CSV (a damaged "
            "download, or a file saved as UTF-16?). Download the export again."
        )
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DensePoseGazeError(
            f"{where} is not a readable CSV file: byte {exc.start} (line {line}) is not UTF-8 text. "
            "Was it re-saved in another encoding? Download the export again."
        ) from None
    return data


def _refuse_multiline(where: str, record: list[str], header: list[str] | None, data_row: int,
                      first: int, last: int) -> None:
    field_at = next((i for i, f in enumerate(record) if "\n" in f or "\r" in f), 0)
    if header is None:
        place = f"the header (line {first}), field {field_at + 1}"
    else:
        column = header[field_at].strip() if field_at < len(header) else f"field {field_at + 1}"
        place = f"data row {data_row} (line {first}), column {column!r}"
    raise DensePoseGazeError(
        f"{where}: a double quote in {place} opens a quoted field that runs over {last - first + 1} lines, to "
        f"line {last}. Export files have no line breaks inside a field, so a stray quote would swallow the rows "
        "in between: remove the stray double quote or download the export again."
    )


def _column_names(header: list[str], where: str) -> list[str]:
    # a second BOM or stray spaces around header names still name the same column;
    # empty names are numbered the way pandas numbers them
    names = [str(c).replace("\ufeff", "").strip() or f"Unnamed: {i}" for i, c in enumerate(header)]
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        positions.setdefault(name, []).append(i)
    for name, at in positions.items():
        if len(at) > 1:
            raise DensePoseGazeError(
                f"{where} has {len(at)} columns named {name!r} (header fields "
                f"{', '.join(f'{i + 1} {header[i]!r}' for i in at)}), so it is ambiguous which one to read. "
                "Rename or remove the extra one, or download the export again."
            )
    return names


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
    if lost_digits:
        warnings.append(
            f"{where}: {col.name!r} was written as floating point with too few "
            f"digits (e.g. {lost_digits[1]!r}); some values are exact only to about 10^{lost_digits[0]}"
            + (" ns" if "[ns]" in col.name else "")
            + ". Re-export from Pupil Cloud rather than re-saving the CSV in a spreadsheet."
        )
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
