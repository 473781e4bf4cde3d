"""What every source shares: tables in the Cloud columns, ids from intervals, seconds to nanoseconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.sources import ReadOptions
from napari_densepose_gaze.sources.parts import conform, ids_by_interval, seconds_to_ns
from napari_densepose_gaze.tables import GAZE


def test_a_sample_gets_the_id_of_the_closed_interval_holding_it_and_none_outside() -> None:
    ts = np.array([5, 10, 15, 20, 25, 30, 35])
    ids = ids_by_interval(ts, starts=np.array([20, 10]), ends=np.array([30, 15]), ids=np.array([8, 7]))
    assert ids.tolist() == [pd.NA, 7, 7, 8, 8, 8, pd.NA]
    assert ids_by_interval(ts, np.array([], np.int64), np.array([], np.int64), np.array([], np.int64)).isna().all()


def test_conform_gives_the_spec_columns_in_order_with_defaults_and_keeps_extras() -> None:
    table = conform(GAZE, {"confidence": [0.9, 0.1], "gaze y [px]": [1, 2], "gaze x [px]": [3, 4],
                           "timestamp [ns]": [1_700_000_000_123_456_789, 1_700_000_000_123_456_790],
                           "recording id": "abc"}, 2)
    assert list(table.columns) == [*GAZE.names, "confidence"]
    assert table["timestamp [ns]"].tolist() == [1_700_000_000_123_456_789, 1_700_000_000_123_456_790]
    assert table["worn"].tolist() == [1.0, 1.0] and table["fixation id"].isna().all()
    assert table["recording id"].tolist() == ["abc", "abc"] and table["section id"].isna().all()
    assert table.dtypes["gaze x [px]"] == np.float64 and str(table.dtypes["blink id"]) == "Int64"


def test_seconds_become_nanoseconds_and_the_offset_is_added_exactly() -> None:
    ns = seconds_to_ns(np.array([4321.000000001, 4321.5]), offset_ns=1_700_000_000_123_456_789)
    assert ns.dtype == np.int64
    assert ns.tolist() == [1_700_004_321_123_456_790, 1_700_004_321_623_456_789]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.6"])
def test_a_confidence_threshold_outside_0_to_1_is_refused(bad) -> None:
    with pytest.raises(DensePoseGazeError, match="from 0 to 1"):
        ReadOptions(min_confidence=bad)
