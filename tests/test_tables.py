"""Reading export CSVs: encodings, column order, exact int64 and older exports."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.tables import BLINKS, EVENTS, FIXATIONS, GAZE, WORLD_TIMESTAMPS, parse_int64, read_table

TS = 1700000000123456789  # every digit matters: float64 would return ...768

GAZE_HEADER = ("section id,recording id,timestamp [ns],gaze x [px],gaze y [px],worn,fixation id,blink id,"
               "azimuth [deg],elevation [deg]")


def write(tmp_path, name, text, encoding="utf-8", newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def test_plain_int64_timestamps_keep_every_nanosecond(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", f"section id,recording id,timestamp [ns]\na,b,{TS}\na,b,{TS + 1}\n")
    table = read_table(path, WORLD_TIMESTAMPS).table
    assert table["timestamp [ns]"].dtype == np.int64
    assert table["timestamp [ns]"].tolist() == [TS, TS + 1]


def test_scientific_notation_with_all_digits_is_exact_and_silent(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", "timestamp [ns]\n1.700000000123456789e+18\n1700000000123456790.0\n")
    result = read_table(path, WORLD_TIMESTAMPS)
    assert result.table["timestamp [ns]"].tolist() == [TS, TS + 1]
    assert result.warnings == []


def test_timestamps_written_from_float64_warn_of_the_float_spacing_not_of_their_shortest_digits(tmp_path):
    # a Neon time as float64 text: 13 digits, the last standing for 10^6 ns, yet only 256 ns are lost
    path = write(tmp_path, "world_timestamps.csv", "timestamp [ns]\n1.754690230082e+18\n1.7000000001234568e+18\n")
    result = read_table(path, WORLD_TIMESTAMPS)
    assert result.table["timestamp [ns]"].tolist() == [1_754_690_230_082_000_000, 1_700_000_000_123_456_800]
    (warning,) = result.warnings
    assert warning.startswith(f"world_timestamps.csv in {tmp_path}: 'timestamp [ns]' was written as floating point")
    assert "exact only to about 256 ns" in warning and "64-bit floats" in warning and "10^" not in warning


def test_timestamps_cut_to_15_digits_warn_of_a_unit_of_the_15th_digit_and_blame_the_spreadsheet(tmp_path):
    path = write(tmp_path, "blinks.csv", f"blink id,start timestamp [ns],end timestamp [ns]\n1,{TS:.15g},{TS:.15g}\n")
    result = read_table(path, BLINKS)
    assert result.table["start timestamp [ns]"].tolist() == [1_700_000_000_123_460_000]
    assert len(result.warnings) == 2  # one per column
    assert all("exact only to about 10 µs" in w and "spreadsheet" in w for w in result.warnings)
    assert "'end timestamp [ns]'" in result.warnings[1]


def test_parse_int64_reports_the_coarsest_written_digit():
    values, lost = parse_int64(np.array(["12", "1.5e3", "2.5e4", ""], dtype=object), allow_missing=True)
    assert values.tolist() == [12, 1500, 25000, pd.NA]
    assert lost == (3, "2.5e4")


def test_parse_int64_rejects_fractions_and_overflow():
    with pytest.raises(DensePoseGazeError, match="not an integer"):
        parse_int64(np.array(["1.5"], dtype=object), where="column 'x'")
    with pytest.raises(DensePoseGazeError, match="too large"):
        parse_int64(np.array(["99999999999999999999"], dtype=object))


def test_bom_and_crlf_are_read_like_plain_files(tmp_path):
    text = f"{GAZE_HEADER}\ns,r,{TS},1.5,2.5,1.0,3,,10.0,-5.0\n"
    plain = read_table(write(tmp_path, "gaze.csv", text), GAZE).table
    odd = read_table(write(tmp_path, "gaze2.csv", text, encoding="utf-8-sig", newline="\r\n"), GAZE).table
    pd.testing.assert_frame_equal(plain, odd)
    assert list(odd.columns)[:3] == ["section id", "recording id", "timestamp [ns]"]
    assert odd["timestamp [ns]"].iloc[0] == TS


def test_reordered_and_extra_columns_are_selected_by_name(tmp_path):
    text = f"extra,timestamp [ns],gaze y [px],gaze x [px]\nhello,{TS},2.5,1.5\n"
    result = read_table(write(tmp_path, "gaze.csv", text), GAZE)
    table = result.table
    assert list(table.columns) == GAZE.names + ["extra"]  # known columns in Pupil's order, extras kept
    assert (table["gaze x [px]"].iloc[0], table["gaze y [px]"].iloc[0]) == (1.5, 2.5)
    assert table["extra"].iloc[0] == "hello"


def test_missing_required_column_names_the_file_and_the_column(tmp_path):
    path = write(tmp_path, "gaze.csv", f"timestamp [ns],gaze x [px]\n{TS},1.0\n")
    with pytest.raises(DensePoseGazeError, match=r"gaze\.csv in .*'gaze y \[px\]'"):
        read_table(path, GAZE)


def test_empty_ids_become_nullable_int64_and_float_written_ids_are_integers(tmp_path):
    text = f"{GAZE_HEADER}\ns,r,{TS},1,2,1.0,,,0,0\ns,r,{TS + 5},1,2,1.0,12.0,3,0,0\n"
    table = read_table(write(tmp_path, "gaze.csv", text), GAZE).table
    assert table["fixation id"].dtype == "Int64" and table["blink id"].dtype == "Int64"
    assert table["fixation id"].tolist() == [pd.NA, 12]
    assert table["blink id"].tolist() == [pd.NA, 3]


def test_older_invisible_gaze_without_worn_and_angles_is_filled_and_noted(tmp_path):
    text = f"section id,recording id,timestamp [ns],gaze x [px],gaze y [px],fixation id,blink id\ns,r,{TS},1,2,,\n"
    result = read_table(write(tmp_path, "gaze.csv", text), GAZE)
    assert result.table["worn"].tolist() == [1.0]
    assert result.table["azimuth [deg]"].isna().all() and result.table["elevation [deg]"].isna().all()
    assert len(result.warnings) == 3
    assert any("'worn'" in w and "worn assumed" in w for w in result.warnings)


def test_text_in_a_number_column_names_file_column_and_row(tmp_path):
    text = f"{GAZE_HEADER}\ns,r,{TS},1,2,1.0,,,0,0\ns,r,{TS + 5},oops,2,1.0,,,0,0\n"
    with pytest.raises(DensePoseGazeError, match=r"'gaze x \[px\]' of gaze\.csv .*'oops' \(data row 2\)"):
        read_table(write(tmp_path, "gaze.csv", text), GAZE)


def test_empty_timestamp_is_an_error(tmp_path):
    path = write(tmp_path, "blinks.csv", "blink id,start timestamp [ns],end timestamp [ns]\n1,,5\n")
    with pytest.raises(DensePoseGazeError, match=r"'start timestamp \[ns\]' of blinks\.csv.*empty value in data row 1"):
        read_table(path, BLINKS)


def test_empty_file_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, "fixations.csv", "")
    with pytest.raises(DensePoseGazeError, match=r"fixations\.csv .* is empty"):
        read_table(path, FIXATIONS)


def test_worn_written_as_booleans_is_read_as_numbers(tmp_path):
    text = f"timestamp [ns],gaze x [px],gaze y [px],worn\n{TS},1,2,True\n{TS + 1},1,2,False\n"
    assert read_table(write(tmp_path, "gaze.csv", text), GAZE).table["worn"].tolist() == [1.0, 0.0]


def test_empty_spec_table_has_typed_columns():
    empty = FIXATIONS.empty()
    assert list(empty.columns) == FIXATIONS.names and len(empty) == 0
    assert empty["start timestamp [ns]"].dtype == np.int64


# --- bad input: each case a file that crashed, hung or lost rows silently before ---------------------------

WT_HEADER = "section id,recording id,timestamp [ns]"


def _long_gaze(n_rows: int, bad_row: int | None = None, bad_cell: str = "") -> str:
    rows = [f"s,r,{TS + i},1.5,2.5,1.0,,,0,0" for i in range(n_rows)]
    if bad_row is not None:
        rows[bad_row] = f"s,r,{bad_cell},1.5,2.5,1.0,,,0,0"
    return GAZE_HEADER + "\n" + "\n".join(rows) + "\n"


def test_header_names_equal_after_trimming_spaces_are_refused_naming_both(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", f"timestamp [ns], timestamp [ns] \n{TS},{TS + 1}\n")
    with pytest.raises(DensePoseGazeError, match=r"world_timestamps\.csv .*2 columns named 'timestamp \[ns\]'"):
        read_table(path, WORLD_TIMESTAMPS)


def test_exact_duplicate_header_names_are_refused_not_renamed(tmp_path):
    path = write(tmp_path, "gaze.csv", f"timestamp [ns],gaze x [px],gaze y [px],gaze x [px]\n{TS},1,2,3\n")
    with pytest.raises(DensePoseGazeError, match=r"2 columns named 'gaze x \[px\]'"):
        read_table(path, GAZE)


def test_first_data_row_with_one_field_too_many_is_refused_not_shifted(tmp_path):
    # pandas once took the extra field as an index column and shifted every value one column left
    path = write(tmp_path, "world_timestamps.csv", f"{WT_HEADER}\nx,s,r,{TS}\ns,r,{TS + 1}\n")
    with pytest.raises(DensePoseGazeError, match=r"world_timestamps\.csv .*line 2 has 4 fields where the header names"):
        read_table(path, WORLD_TIMESTAMPS)


def test_later_row_with_too_many_fields_names_its_line(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", f"{WT_HEADER}\ns,r,{TS}\ns,r,{TS + 1},9\n")
    with pytest.raises(DensePoseGazeError, match=r"line 3 has 4 fields"):
        read_table(path, WORLD_TIMESTAMPS)


@pytest.mark.parametrize("cell", ["1e9999999", "1e99999999999", "-1e99999999999", "9" * 50 + "e9999"])
def test_absurd_exponent_in_an_integer_column_is_refused_at_once(tmp_path, cell):
    path = write(tmp_path, "world_timestamps.csv", f"{WT_HEADER}\ns,r,{TS}\ns,r,{cell}\n")
    started = time.perf_counter()
    with pytest.raises(DensePoseGazeError, match=r"'timestamp \[ns\]' of world_timestamps\.csv .*row 2.*too large"):
        read_table(path, WORLD_TIMESTAMPS)
    assert time.perf_counter() - started < 2.0


def test_tiny_exponent_in_an_integer_column_is_not_an_integer(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", f"{WT_HEADER}\ns,r,1e-99999999999\n")
    with pytest.raises(DensePoseGazeError, match="not an integer"):
        read_table(path, WORLD_TIMESTAMPS)


def test_thousands_of_digits_in_an_integer_column_are_refused_by_length(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", f"{WT_HEADER}\ns,r,{'7' * 5000}\n")
    with pytest.raises(DensePoseGazeError, match=r"data row 1\), too long to be a number") as info:
        read_table(path, WORLD_TIMESTAMPS)
    assert len(str(info.value)) < 500  # the message quotes the start of the cell, not all of it


def test_one_long_cell_costs_no_more_memory_than_a_clean_file(tmp_path):
    # a 2,000-character cell once made every row of the column a 2,000-character fixed-width string
    n_rows = 20_000
    clean = write(tmp_path, "gaze.csv", _long_gaze(n_rows))
    bad = write(tmp_path, "gaze_bad.csv", _long_gaze(n_rows, n_rows - 1, "1" * 2000))
    peaks = []
    for path in (clean, bad):
        tracemalloc.start()
        try:
            read_table(path, GAZE)
        except DensePoseGazeError:
            pass
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 2 * peaks[0] + 1_000_000, peaks


def test_number_out_of_float_range_is_refused(tmp_path):
    path = write(tmp_path, "gaze.csv", f"timestamp [ns],gaze x [px],gaze y [px]\n{TS},1e400,2\n")
    with pytest.raises(DensePoseGazeError, match=r"'gaze x \[px\]' of gaze\.csv .*'1e400' \(data row 1\), out of"):
        read_table(path, GAZE)


def test_stray_quotes_that_would_swallow_rows_are_refused_naming_row_and_column(tmp_path):
    rows = [f'{TS + i},name {i},type' for i in range(400)]
    rows[3] = f'{TS + 3},"name 3,type'  # the quote opened here closes only 100 lines further on
    rows[103] = f'{TS + 103},name 103",type'
    path = write(tmp_path, "events.csv", "timestamp [ns],name,type\n" + "\n".join(rows) + "\n")
    with pytest.raises(DensePoseGazeError, match=r"events\.csv .*data row 4 \(line 5\), column 'name'.*101 lines"):
        read_table(path, EVENTS)


def test_a_quote_that_never_closes_is_refused(tmp_path):
    path = write(tmp_path, "events.csv", f'timestamp [ns],name\n{TS},"start\n{TS + 1},end\n')
    with pytest.raises(DensePoseGazeError, match=r"double quote in data row 1 \(line 2\), column 'name'"):
        read_table(path, EVENTS)


def test_quoted_commas_in_text_are_read(tmp_path):
    path = write(tmp_path, "events.csv", f'timestamp [ns],name\n{TS},"start, of ""trial"""\n')
    assert read_table(path, EVENTS).table["name"].tolist() == ['start, of "trial"']


def test_nul_bytes_are_refused_naming_the_line(tmp_path):
    path = tmp_path / "world_timestamps.csv"
    path.write_bytes(f"{WT_HEADER}\ns,r,{TS}\ns,r,1\0\n".encode())
    with pytest.raises(DensePoseGazeError, match=r"world_timestamps\.csv .*NUL byte on line 3"):
        read_table(path, WORLD_TIMESTAMPS)


def test_utf16_file_is_refused_as_not_utf8_text(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", f"{WT_HEADER}\ns,r,{TS}\n", encoding="utf-16")
    with pytest.raises(DensePoseGazeError, match=r"world_timestamps\.csv .*(NUL byte|not UTF-8)"):
        read_table(path, WORLD_TIMESTAMPS)


def test_short_rows_are_left_out_with_a_warning_naming_them(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", f"{WT_HEADER}\ns,r,{TS}\ns,r\ns,r,{TS + 2}\n\ns\n")
    result = read_table(path, WORLD_TIMESTAMPS)
    assert result.table["timestamp [ns]"].tolist() == [TS, TS + 2]
    (warning,) = result.warnings
    assert "world_timestamps.csv" in warning and "2 data row(s)" in warning
    assert "data row 2 (line 3), 4 (line 6)" in warning


@pytest.mark.parametrize("last", [f"s,r,{TS + 1}"[:-3], f"s,r,{TS + 1}", "s,"])
def test_a_cut_last_line_is_left_out_with_a_warning(tmp_path, last):
    path = write(tmp_path, "world_timestamps.csv", f"{WT_HEADER}\ns,r,{TS}\n{last}")
    result = read_table(path, WORLD_TIMESTAMPS)
    assert result.table["timestamp [ns]"].tolist() == [TS]  # never the cut value 17000000001234567
    (warning,) = result.warnings
    assert "ends inside data row 2" in warning and "cut" in warning


def test_blank_lines_are_skipped_as_before(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", f"\n{WT_HEADER}\n\ns,r,{TS}\n   \ns,r,{TS + 1}\n\n")
    result = read_table(path, WORLD_TIMESTAMPS)
    assert result.table["timestamp [ns]"].tolist() == [TS, TS + 1] and result.warnings == []


def test_a_clean_20_minute_gaze_file_reads_in_seconds(tmp_path):
    path = write(tmp_path, "gaze.csv", _long_gaze(240_000))
    started = time.perf_counter()
    assert len(read_table(path, GAZE).table) == 240_000
    assert time.perf_counter() - started < 30  # about 1.5 s on a laptop core; generous for loaded CI
