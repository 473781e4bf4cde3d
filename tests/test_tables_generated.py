"""Generated tables: valid files read back exactly, damaged files fail cleanly, quickly and never lose rows silently.

Seeded (``derandomize``) and bounded so the whole file runs in about a minute on two loaded cores;
scripts/fuzz_readers.py runs the same strategies for a long campaign.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.tables import (
    BLINKS,
    EVENTS,
    FIXATIONS,
    FLOAT,
    GAZE,
    INT,
    NULLABLE_INT,
    SACCADES,
    SECTIONS,
    TEXT,
    WORLD_TIMESTAMPS,
    ColumnSpec,
    TableSpec,
    read_table,
)

SPECS = (WORLD_TIMESTAMPS, GAZE, FIXATIONS, SACCADES, BLINKS, EVENTS, SECTIONS)
MAX_SECONDS = 3.0  # a clean file of these sizes reads in milliseconds; a bad one may not take much longer
CI_SETTINGS = settings(derandomize=True, deadline=None, database=None, max_examples=150,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- valid tables --------------------------------------------------------------------------------------------

INT64 = st.integers(-(2**63), 2**63 - 1)
# any character a text cell may hold: line breaks never occur inside an export's fields
TEXT_CELLS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\0"), max_size=12)


def _int_text(value: int, style: int) -> str:
    """``value`` in one of the exact ways exports and spreadsheets write integers."""
    if style == 1:
        return f"{value}.0"
    if style == 2 and value != 0:
        digits = str(abs(value))
        mantissa = f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else digits
        return f"{'-' if value < 0 else ''}{mantissa}e+{len(digits) - 1:02d}"  # all digits: exact
    return str(value)


@st.composite
def cells(draw, kind: str, required: bool) -> tuple[str, object]:
    """(text, value) of one cell of ``kind``."""
    if kind == TEXT:
        text = draw(TEXT_CELLS)
        return text, text
    if kind in (INT, NULLABLE_INT):
        if kind == NULLABLE_INT and draw(st.booleans()):
            return "", pd.NA
        value = draw(INT64)
        return _int_text(value, draw(st.integers(0, 2))), value
    if draw(st.integers(0, 9)) == 0:
        return "", np.nan
    value = draw(st.floats(allow_nan=False, allow_infinity=False))
    return repr(value), value


@dataclass
class Generated:
    """A written table and what reading it must give."""

    spec: TableSpec
    data: bytes
    expected: dict[str, list]  # by spec column, for the columns in the file
    extras: dict[str, list[str]]
    n_rows: int


@st.composite
def valid_tables(draw, max_rows: int = 30) -> Generated:
    spec = draw(st.sampled_from(SPECS))
    present = [c for c in spec.columns if c.required or draw(st.booleans())]
    extra_names = draw(st.lists(st.text("abcdefgh xyz_", min_size=1, max_size=8).map(str.strip).filter(
        lambda n: n and n not in spec.names and not n.startswith("Unnamed")), max_size=2, unique=True))
    columns: list[ColumnSpec | str] = draw(st.permutations(present + extra_names))
    n_rows = draw(st.integers(0, max_rows))
    expected: dict[str, list] = {c.name: [] for c in present}
    extras: dict[str, list[str]] = {n: [] for n in extra_names}
    rows = []
    for _ in range(n_rows):
        row = []
        for col in columns:
            text, value = draw(cells(col.kind, col.required)) if isinstance(col, ColumnSpec) else (
                (t := draw(TEXT_CELLS)), t)
            row.append(text)
            (expected[col.name] if isinstance(col, ColumnSpec) else extras[col]).append(value)
        rows.append(row)
    # header names as real files write them: sometimes padded with spaces
    header = [(c.name if isinstance(c, ColumnSpec) else c) for c in columns]
    header = [draw(st.sampled_from(["", " "])) + h + draw(st.sampled_from(["", " "])) for h in header]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    writer.writerows(rows)
    text = out.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig"]))
    return Generated(spec, text.encode(encoding), expected, extras, n_rows)


def _read(data: bytes, spec: TableSpec, folder: Path):
    path = folder / spec.filename
    path.write_bytes(data)
    return read_table(path, spec)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _same(got: list, want: list, kind: str) -> bool:
    if kind == FLOAT:
        return np.array_equal(np.asarray(got, dtype=float), np.asarray(want, dtype=float), equal_nan=True)
    return [None if v is pd.NA else v for v in got] == [None if v is pd.NA else v for v in want]


def check_exact_round_trip(case: Generated, folder: Path) -> None:
    result = _read(case.data, case.spec, folder)
    table = result.table
    assert len(table) == case.n_rows  # no row lost
    for col in case.spec.columns:
        if col.name in case.expected:
            assert _same(table[col.name].tolist(), case.expected[col.name], col.kind), col.name
    for name, values in case.extras.items():
        assert table[name].tolist() == values
    assert all("older export" in w for w in result.warnings), result.warnings


@CI_SETTINGS
@given(valid_tables())
def test_valid_tables_read_back_exactly(folder, case):
    check_exact_round_trip(case, folder)


# --- damaged tables ----------------------------------------------------------------------------------------

SNIPPETS = [b'"', b'""', b"\0", b",", b"\n", b"\r", b"\r\n", b"\xff", b"\xef\xbb\xbf", b"1e9999999", b"1e99999999999",
            b"-1e-99999999999", b"9" * 3000, b"1" * 200_000, b"nan", b"inf", b"1e400", b"True", b" ", b"\t", b"\x85",
            b"\xe2\x80\xa8", b"0x1F", b"1_000", "١٢".encode()]


@st.composite
def mutations(draw) -> tuple[Generated, bytes]:
    case = draw(valid_tables(max_rows=20))
    data = case.data
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["truncate", "insert", "replace", "delete", "flip", "double_header", "blank_line"]))
        at = draw(st.integers(0, len(data)))
        if op == "truncate":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + draw(st.sampled_from(SNIPPETS)) + data[at:]
        elif op == "replace":
            data = data[:at] + draw(st.sampled_from(SNIPPETS)) + data[at + draw(st.integers(1, 30)):]
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 30)):]
        elif op == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
        elif op == "double_header":  # a header name again, padded: the same column after trimming
            line, _, rest = data.partition(b"\n")
            name = draw(st.sampled_from(line.split(b","))) if line else b"x"
            data = line.rstrip(b"\r") + b", " + name.strip() + b" " + (b"\r" if line.endswith(b"\r") else b"") + \
                b"\n" + rest
        elif op == "blank_line":
            data = data[:at] + b"\n\n" + data[at:]
    return case, data


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def records_in(data: bytes) -> int:
    """Data rows a file shows to a reader of lines: non-blank lines after the header."""
    lines = [line for line in _LINE_BREAK.split(data.removeprefix(b"\xef\xbb\xbf")) if line.strip(b" \t")]
    return max(len(lines) - 1, 0)


def rows_left_out(warnings: list[str]) -> int:
    """How many rows the reader's warnings say it left out."""
    total = 0
    for warning in warnings:
        if found := re.search(r"(\d+) data row\(s\) have fewer fields", warning):
            total += int(found[1])
        if "ends inside data row" in warning:
            total += 1
    return total


@dataclass
class Outcome:
    """What reading one damaged file did."""

    error: str | None  # the exception type, None when it read
    seconds: float
    rows_lost: int  # rows neither read nor named in a warning


def read_damaged(data: bytes, spec: TableSpec, folder: Path) -> Outcome:
    started = time.perf_counter()
    try:
        result = _read(data, spec, folder)
    except DensePoseGazeError as exc:
        message = str(exc)
        assert spec.filename in message and len(message) < 2000, message
        return Outcome("DensePoseGazeError", time.perf_counter() - started, 0)
    except Exception as exc:  # counting what escapes is the point
        return Outcome(type(exc).__name__, time.perf_counter() - started, 0)
    seconds = time.perf_counter() - started
    lost = records_in(data) - len(result.table) - rows_left_out(result.warnings)
    return Outcome(None, seconds, max(lost, 0))


@CI_SETTINGS
@given(mutations())
def test_damaged_tables_fail_cleanly_or_say_what_they_left_out(folder, mutated):
    case, data = mutated
    outcome = read_damaged(data, case.spec, folder)
    assert outcome.error in (None, "DensePoseGazeError"), outcome
    assert outcome.seconds < MAX_SECONDS, outcome
    assert outcome.rows_lost == 0, outcome


@CI_SETTINGS
@given(valid_tables(max_rows=10), st.integers(0, 10_000))
def test_a_cut_file_keeps_only_whole_rows(folder, case, cut_at):
    data = case.data[: min(cut_at, len(case.data))]
    try:
        result = _read(data, case.spec, folder)
    except DensePoseGazeError:
        return  # cut inside the header: a clear error
    kept = len(result.table)
    assert kept + rows_left_out(result.warnings) == records_in(data)
    for col in case.spec.columns:  # every row that is read is a whole row of the original
        if col.name in case.expected:
            assert _same(result.table[col.name].tolist(), case.expected[col.name][:kept], col.kind), col.name


# --- one fault at a time, where a generic mutation seldom lands ------------------------------------------------


def _lines(case: Generated) -> list[bytes]:
    return case.data.split(b"\n")


@CI_SETTINGS
@given(valid_tables().filter(lambda c: c.n_rows > 0), st.integers(0, 10**6), st.sampled_from([b",", b",x"]))
def test_a_row_with_an_extra_field_is_refused(folder, case, pick, extra):
    lines = _lines(case)
    row = 1 + pick % case.n_rows  # any data row, the first one too
    lines[row] = lines[row].rstrip(b"\r") + extra + (b"\r" if lines[row].endswith(b"\r") else b"")
    with pytest.raises(DensePoseGazeError, match="fields where the header names"):
        _read(b"\n".join(lines), case.spec, folder)


@CI_SETTINGS
@given(valid_tables(), st.integers(0, 10**6), st.sampled_from([b" ", b"  ", b"\t"]))
def test_a_header_name_repeated_with_spaces_is_refused(folder, case, pick, pad):
    header, rest = case.data.split(b"\n", 1)
    names = header.rstrip(b"\r").split(b",")
    if any(b'"' in n for n in names):
        return
    names.append(pad + names[pick % len(names)].strip() + pad)
    lines = [b",".join(names)] + [line.rstrip(b"\r") + b"," if line.strip() else line for line in rest.split(b"\n")]
    with pytest.raises(DensePoseGazeError, match="columns named"):
        _read(b"\n".join(lines), case.spec, folder)


@CI_SETTINGS
@given(valid_tables(max_rows=40).filter(lambda c: c.n_rows > 1), st.integers(0, 10**6), st.integers(0, 10**6),
       st.sampled_from([b'"', b'"x', b'x"', b'""']))
def test_a_stray_quote_never_swallows_rows_silently(folder, case, pick_row, pick_field, quote):
    lines = _lines(case)
    row = 1 + pick_row % case.n_rows
    fields = lines[row].split(b",")
    field = pick_field % len(fields)
    fields[field] = quote + fields[field]
    lines[row] = b",".join(fields)
    data = b"\n".join(lines)
    outcome = read_damaged(data, case.spec, folder)
    assert outcome.error in (None, "DensePoseGazeError") and outcome.rows_lost == 0, outcome


# number text as a damaged file or a spreadsheet may write it: huge, tiny, long, signed, fractional
NUMBER_TEXT = st.one_of(
    st.from_regex(r"\A[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,14})?\Z"),
    st.builds(lambda d, n: d * n, st.sampled_from(["1", "9", "0"]), st.integers(1, 5000)),
    st.text(max_size=8),
)


def _exact_integer(text: str) -> int | None:
    """The integer ``text`` means, worked out without a reader (None if it is none an int64 holds)."""
    from decimal import Decimal, InvalidOperation, localcontext

    text = text.strip()
    if not text or len(text) > 64:
        return None
    try:
        with localcontext() as ctx:
            ctx.Emax, ctx.Emin = 10**17, -(10**17)
            d = Decimal(text)
            if not d.is_finite() or (not d.is_zero() and d.adjusted() > 18):
                return None
            if not d.is_zero() and d.adjusted() < 0:
                return None
            ctx.prec = 100
            if d != d.to_integral_value():
                return None
            value = int(d)
    except (InvalidOperation, ValueError):
        return None
    return value if -(2**63) <= value < 2**63 else None


@CI_SETTINGS
@given(NUMBER_TEXT, st.sampled_from([WORLD_TIMESTAMPS, BLINKS]))
def test_any_text_in_an_integer_column_reads_exactly_or_is_refused(folder, text, spec):
    if any(c in text for c in ',"\r\n\0\ufeff') or text.strip() in ("", "nan", "NaN", "NA", "<NA>", "None"):
        return
    names = [c.name for c in spec.columns if c.required]
    column = names[-1]
    row = {n: "7" for n in names} | {column: text}
    data = (",".join(names) + "\n" + ",".join(row[n] for n in names) + "\n").encode()
    want = _exact_integer(text)
    started = time.perf_counter()
    try:
        got = _read(data, spec, folder).table[column].tolist()
    except DensePoseGazeError:
        got = None
    assert time.perf_counter() - started < MAX_SECONDS
    assert got == (None if want is None else [want]), (text, got, want)
