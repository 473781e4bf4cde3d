"""Reading export CSVs: encodings, column order, exact int64 and older exports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.tables import BLINKS, FIXATIONS, GAZE, WORLD_TIMESTAMPS, parse_int64, read_table

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


def test_scientific_notation_that_lost_digits_warns_with_file_and_column(tmp_path):
    path = write(tmp_path, "world_timestamps.csv", "timestamp [ns]\n1.6e18\n1.7000000001234568e+18\n")
    result = read_table(path, WORLD_TIMESTAMPS)
    assert result.table["timestamp [ns]"].tolist() == [1_600_000_000_000_000_000, 1_700_000_000_123_456_800]
    (warning,) = result.warnings
    assert "world_timestamps.csv" in warning and "'timestamp [ns]'" in warning and "10^17" in warning


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
