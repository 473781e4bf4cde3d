"""The grid of text fields in a CSV file, checked record by record as it is read.

Kept apart from :mod:`.tables`, which gives the fields their column types: this
module only decides which bytes are fields of which row. A file without quotes
goes through pandas' C parser (fast); any other file is read record by record
with the csv module, so a quote that runs over lines, a row with too many fields,
NUL bytes or text that is not UTF-8 is a :class:`DensePoseGazeError` naming the
line, and rows left out (too few fields, a cut last line) are named in a warning.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DensePoseGazeError

__all__ = ["Grid", "read_grid"]

_LISTED_ROWS = 5  # how many left-out rows a warning names


@dataclass
class Grid:
    """A CSV file as text fields: its column names and the data rows that were kept."""

    names: list[str]
    columns: list[Sequence[str]]  # one per name, a field per kept row
    rows: list[int]  # each kept row's number among the file's data rows (1-based)
    warnings: list[str]

    def column(self, name: str) -> Sequence[str]:
        return self.columns[self.names.index(name)]


def read_grid(path: Path, where: str) -> Grid:
    """The fields of the CSV file at ``path``; ``where`` names it in messages (``gaze.csv in <folder>``)."""
    data = _read_bytes(path, where)
    if b'"' not in data:  # no quoting: every non-blank line is one record
        grid = _grid_by_lines(data, where)
        if grid is not None:
            return grid
    return _grid_by_records(data.decode("utf-8-sig"), where)


def _grid_by_lines(data: bytes, where: str) -> Grid | None:
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


def _grid_by_records(text: str, where: str) -> Grid:
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
          cut: int | None, where: str) -> Grid:
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
    return Grid(_column_names(header, where), columns, rows, warnings)


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
