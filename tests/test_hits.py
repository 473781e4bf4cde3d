"""Gaze hits on hand-built label volumes with known answers."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.gaze import flag_gaze
from napari_densepose_gaze.hits import (
    HitContext,
    HitSettings,
    compute_hits,
    default_radius,
    hits_from_samples,
    radius_px,
    sample_durations,
    update_frames,
)
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.tracking import link_detections

MS = 1_000_000
WIDTH, HEIGHT = 40, 30
FRAME_TS = np.array([0, 33, 66, 99], dtype=np.int64) * MS


def volumes():
    """Frame 0: a head (23, person 1) at rows 5-9, cols 5-9 and a torso (2, person 2) at cols 20-24.
    Frame 1: two overlapping persons; person 2's hand (3) wins cols 12-14 over person 1's torso (1).
    Frame 2: empty. Frame 3: not processed."""
    labels = np.zeros((4, HEIGHT, WIDTH), np.uint8)
    persons = np.zeros_like(labels)
    labels[0, 5:10, 5:10], persons[0, 5:10, 5:10] = 23, 1
    labels[0, 5:10, 20:25], persons[0, 5:10, 20:25] = 2, 2
    labels[1, 10:20, 5:15], persons[1, 10:20, 5:15] = 1, 1
    labels[1, 10:20, 12:18], persons[1, 10:20, 12:18] = 3, 2
    return labels, persons


DETECTIONS = pd.DataFrame({
    "frame": [0, 0, 1, 1], "person": [1, 2, 1, 2],
    "x1 [px]": [5.0, 20.0, 5.0, 12.0], "y1 [px]": [5.0, 5.0, 10.0, 10.0],
    "x2 [px]": [10.0, 25.0, 15.0, 18.0], "y2 [px]": [10.0, 10.0, 20.0, 20.0], "score": 0.9,
})
PERSON_IDS = DETECTIONS.assign(**{"person id": [7, 8, 7, 8]})


def gaze_table(rows):
    """rows: (t ms, x, y, worn, fixation id, blink id)."""
    t, x, y, worn, fix, blink = zip(*rows)
    return pd.DataFrame({
        "timestamp [ns]": np.array(t, dtype=np.int64) * MS,
        "gaze x [px]": np.array(x, dtype=float),
        "gaze y [px]": np.array(y, dtype=float),
        "worn": np.array(worn, dtype=float),
        "fixation id": pd.array(fix, dtype="Int64"),
        "blink id": pd.array(blink, dtype="Int64"),
    })


def run(rows, radius=3.0, processed=(0, 1, 2), fixations=None, person_ids=PERSON_IDS, labels=None, max_gap_ms=50.0):
    lab, per = volumes() if labels is None else labels
    samples = flag_gaze(gaze_table(rows), FRAME_TS, (WIDTH, HEIGHT))
    return hits_from_samples(samples, lab, per, list(processed), settings=HitSettings(radius, "px", max_gap_ms),
                             frame_timestamps=FRAME_TS, fixations=fixations, person_ids=person_ids)


HIT_COLUMNS = ["status", "part id", "person", "person id", "hit part id", "hit person", "hit person id",
               "distance [px]"]


def hit_row(tables, i):
    row = tables.samples.iloc[i]
    return [None if pd.isna(row[c]) else (row[c] if isinstance(row[c], str) else float(row[c])) for c in HIT_COLUMNS]


def test_gaze_on_a_part_is_an_exact_hit_at_distance_zero():
    tables = run([(1, 7.7, 7.2, 1, None, None)])
    assert hit_row(tables, 0) == ["on part", 23, 1, 7, 23, 1, 7, 0.0]
    assert tables.samples.iloc[0][["hit x [px]", "hit y [px]"]].tolist() == [7.5, 7.5]  # the pixel's centre
    row = tables.samples.iloc[0]
    assert (row["part"], row["group"], row["hit part"]) == ("head, right side", "head", "head, right side")


def test_pixel_convention_floor_of_the_gaze_point():
    # x = 9.999 lies on column 9 (a head pixel), x = 10.0 on column 10 (background, 0.5 from col 9's centre)
    tables = run([(1, 9.999, 7.0, 1, None, None), (2, 10.0, 7.0, 1, None, None)], radius=0.4)
    assert hit_row(tables, 0)[:2] == ["on part", 23]
    assert hit_row(tables, 1) == ["no part", 0, None, None, 0, None, None, None]


def test_gaze_near_a_part_hits_the_nearest_part_pixel_within_the_radius():
    # (12.0, 7.5): head column 9 centre 9.5 is 2.5 away; torso column 20 centre 20.5 is 8.5 away
    tables = run([(1, 12.0, 7.5, 1, None, None)], radius=3.0)
    assert hit_row(tables, 0) == ["near part", 0, None, None, 23, 1, 7, 2.5]
    assert tables.samples.iloc[0]["parts in radius"] == "0;23"


def test_gaze_beyond_the_radius_is_no_hit():
    tables = run([(1, 12.0, 7.5, 1, None, None)], radius=2.4)
    assert hit_row(tables, 0) == ["no part", 0, None, None, 0, None, None, None]
    assert tables.samples.iloc[0]["parts in radius"] == "0"


def test_distance_is_to_the_pixel_centre_and_ties_go_to_the_first_pixel_in_row_major_order():
    # (11.2, 7.0) is equally far from row 6 and row 7 of column 9: row 6 wins
    tables = run([(1, 11.2, 7.0, 1, None, None)], radius=3.0)
    assert tables.samples.iloc[0]["distance [px]"] == pytest.approx(math.hypot(1.7, 0.5))
    assert tables.samples.iloc[0][["hit x [px]", "hit y [px]"]].tolist() == [9.5, 6.5]
    # midway between the head (col 9 centre 9.5) and the torso (col 20 centre 20.5): both 5.5 away, same row;
    # the head's column comes first
    tables = run([(1, 15.0, 7.5, 1, None, None)], radius=5.5)
    assert hit_row(tables, 0) == ["near part", 0, None, None, 23, 1, 7, 5.5]
    assert tables.samples.iloc[0][["hit x [px]", "hit y [px]"]].tolist() == [9.5, 7.5]


def test_overlapping_persons_the_pixel_winner_is_the_person_hit():
    # frame 1 (t 40 ms): column 13 belongs to person 2's hand, which is in front of person 1's torso
    tables = run([(40, 13.5, 15.0, 1, None, None), (41, 7.0, 15.0, 1, None, None)])
    assert hit_row(tables, 0) == ["on part", 3, 2, 8, 3, 2, 8, 0.0]
    assert hit_row(tables, 1) == ["on part", 1, 1, 7, 1, 1, 7, 0.0]


def test_unusable_samples_are_kept_and_flagged_never_dropped():
    rows = [
        (1, 7.5, 7.5, 0, None, None),       # not worn
        (2, 7.5, 7.5, 1, None, 1),          # in a blink
        (3, -1.0, 7.5, 1, None, None),      # outside the frame (left)
        (4, 7.5, 30.0, 1, None, None),      # outside the frame (y == height)
        (5, np.nan, np.nan, 1, None, None), # NaN
        (100, 7.5, 7.5, 1, None, None),     # frame 3: not processed
    ]
    tables = run(rows, processed=(0, 1, 2))
    samples = tables.samples
    assert len(samples) == len(rows)
    assert samples["status"].tolist() == ["not worn", "in blink", "outside frame", "outside frame", "nan",
                                          "frame not processed"]
    assert samples["frame"].tolist() == [0, 0, 0, 0, 0, 3]
    assert not samples["assessed"].any()
    for column in ("part id", "person id", "hit part id", "hit person id"):
        assert samples[column].isna().all()
    assert samples["distance [px]"].isna().all()
    assert samples["frame processed"].tolist() == [True] * 5 + [False]
    assert tables.parts["samples"].sum() == 0


def test_samples_before_and_after_the_video_are_flagged():
    tables = run([(-5, 7.5, 7.5, 1, None, None), (1, 7.5, 7.5, 1, None, None), (500, 7.5, 7.5, 1, None, None)])
    assert tables.samples["status"].tolist() == ["before first frame", "on part", "after last frame"]
    assert tables.samples["frame"].tolist() == [-1, 0, -1]


def test_radius_in_degrees_at_the_principal_point_without_distortion_is_focal_times_tan():
    camera = {"camera_matrix": [[500.0, 0, 160.0], [0, 500.0, 120.0], [0, 0, 1]], "dist_coefs": [[0.0] * 8]}
    r = radius_px([160.0], [120.0], HitSettings(2.0, "deg"), camera)
    assert r[0] == pytest.approx(500 * math.tan(math.radians(2.0)), abs=1e-9)


def undistort(points, camera, dist):
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    if hasattr(cv2, "undistortPointsIter"):
        return cv2.undistortPointsIter(points, camera, dist, None, None, criteria)
    return cv2.undistortPoints(points, camera, dist, R=None, P=None, criteria=criteria)


def test_radius_in_degrees_with_distortion_maps_back_to_the_given_angle():
    # independent check: undistort the centre and a point r px to the right; the rays' angle is the radius
    camera = {"camera_matrix": [[892.0, 0, 815.0], [0, 892.0, 605.0], [0, 0, 1]],
              "dist_coefs": [[-0.1297, 0.1056, 0.0002, -0.0004, -0.0027, 0.1702, 0.0480, 0.0151]]}
    x, y = np.array([815.0, 1400.0, 200.0]), np.array([605.0, 1000.0, 150.0])
    r = radius_px(x, y, HitSettings(1.8, "deg"), camera)
    k = np.asarray(camera["camera_matrix"])
    d = np.asarray(camera["dist_coefs"]).ravel()
    for xi, yi, ri in zip(x, y, r):
        angles = []
        for phi in np.linspace(0, 2 * np.pi, 8, endpoint=False):
            pts = np.array([[[xi, yi]], [[xi + ri * np.cos(phi), yi + ri * np.sin(phi)]]])
            n = undistort(pts, k, d).reshape(2, 2)
            a, b = (np.append(v, 1.0) / np.linalg.norm(np.append(v, 1.0)) for v in n)
            angles.append(math.degrees(math.acos(min(1.0, float(a @ b)))))
        assert np.mean(angles) == pytest.approx(1.8, rel=0.02)
    assert r[0] == pytest.approx(892 * math.tan(math.radians(1.8)), rel=1e-3)  # little distortion at the centre
    assert abs(r[1] - r[0]) > 0.5  # perspective and lens distortion change the radius across the image


def test_radius_in_degrees_without_intrinsics_is_an_error_naming_the_file():
    with pytest.raises(DensePoseGazeError, match="scene_camera.json"):
        radius_px([1.0], [1.0], HitSettings(2.0, "deg"), None)


def test_radius_in_degrees_drives_the_hit_with_given_intrinsics():
    camera = {"camera_matrix": [[100.0, 0, 20.0], [0, 100.0, 15.0], [0, 0, 1]], "dist_coefs": [[0.0] * 5]}
    lab, per = volumes()
    # gaze at (12.0, 7.5): the head pixel centre is 2.5 px away; 2 deg ~ 3.5 px reaches it, 1 deg ~ 1.7 px does not
    samples = flag_gaze(gaze_table([(1, 12.0, 7.5, 1, None, None)]), FRAME_TS, (WIDTH, HEIGHT))
    for degrees, expected in ((2.0, 23), (1.0, 0)):
        tables = hits_from_samples(samples, lab, per, [0], settings=HitSettings(degrees, "deg"),
                                   frame_timestamps=FRAME_TS, scene_camera=camera)
        assert tables.samples["hit part id"].tolist() == [expected]
        assert 100 * math.tan(math.radians(degrees)) == pytest.approx(tables.samples["radius [px]"][0], rel=0.02)


def test_default_radius_follows_the_device_and_the_intrinsics():
    neon = {"camera_matrix": [[892.0, 0, 800], [0, 892.0, 600], [0, 0, 1]], "dist_coefs": [[0.0] * 8]}
    invisible = {**neon, "rotation_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
    assert default_radius(neon, (1600, 1200)) == HitSettings(1.8, "deg")
    assert default_radius(invisible, (1088, 1080)) == HitSettings(4.6, "deg")
    assert default_radius(None, (1600, 1200)) == HitSettings(28.0, "px")
    assert default_radius(None, (800, 600)) == HitSettings(14.0, "px")
    assert default_radius(None, (1088, 1080)) == HitSettings(61.6, "px")


def test_default_radius_takes_the_device_from_info_json_before_the_frame_size():
    neon_info = {"module_serial_number": "868382", "frame_name": "Just act natural"}
    invisible_info = {"glasses_serial_number": "abc12", "scene_camera_serial_number": "def34"}
    # a Neon video cropped square, an Invisible video resized to 4:3: info.json says which glasses they are
    assert default_radius(None, (1088, 1080), {}) == HitSettings(61.6, "px")  # the frame size alone: Invisible
    assert default_radius(None, (1088, 1080), neon_info) == HitSettings(
        round(892.0 * 1088 / 1600 * math.tan(math.radians(1.8)), 1), "px")
    assert default_radius(None, (1600, 1200), invisible_info) == HitSettings(
        round(766.0 * 1600 / 1088 * math.tan(math.radians(4.6)), 1), "px")


def test_the_neon_spelling_of_the_distortion_is_not_ignored():
    matrix = [[892.0, 0, 815.0], [0, 892.0, 605.0], [0, 0, 1]]
    coefficients = [[-0.1297, 0.1056, 0.0002, -0.0004, -0.0027, 0.1702, 0.0480, 0.0151]]
    x, y = np.array([100.0, 815.0]), np.array([100.0, 605.0])
    neon = radius_px(x, y, HitSettings(2.0, "deg"), {"camera_matrix": matrix, "distortion_coefficients": coefficients})
    invisible = radius_px(x, y, HitSettings(2.0, "deg"), {"camera_matrix": matrix, "dist_coefs": coefficients})
    pinhole = radius_px(x, y, HitSettings(2.0, "deg"), {"camera_matrix": matrix})
    np.testing.assert_allclose(neon, invisible, rtol=1e-12)
    assert pinhole[0] > 1.3 * neon[0]  # near a corner the distortion shrinks the radius by more than a quarter


def test_bad_settings_are_refused():
    for bad in ((-1.0, "px"), (float("nan"), "px"), (2.0, "mm"), (60.0, "deg")):
        with pytest.raises(DensePoseGazeError):
            HitSettings(*bad)


def test_sample_durations_last_until_the_next_sample_capped():
    ts = np.array([0, 5, 10, 200, 205], dtype=np.int64) * MS
    assert sample_durations(ts, 50).tolist() == [5 * MS, 5 * MS, 50 * MS, 5 * MS, 5 * MS]
    assert sample_durations(np.array([7], dtype=np.int64)).tolist() == [0]


def fixation_rows():
    return pd.DataFrame({
        "fixation id": pd.array([1, 2, 3], dtype="Int64"),
        "start timestamp [ns]": np.array([0, 40, 200], dtype=np.int64) * MS,
        "end timestamp [ns]": np.array([20, 60, 210], dtype=np.int64) * MS,
        "duration [ms]": [20.0, 20.0, 10.0],
        "fixation x [px]": [8.0, 13.0, 1.0], "fixation y [px]": [7.0, 15.0, 1.0],
    })


SCENE = [
    # t ms, x, y, worn, fixation, blink
    (0, 7.5, 7.5, 1, 1, None),     # frame 0 head, person 7
    (5, 8.5, 7.5, 1, 1, None),     # head
    (10, 12.0, 7.5, 1, 1, None),   # near head (2.5 px)
    (15, 30.0, 25.0, 1, 1, None),  # background
    (20, 7.5, 7.5, 0, None, None), # not worn
    (40, 13.5, 15.0, 1, 2, None),  # frame 1 hand, person 8
    (45, 13.5, 15.0, 1, 2, None),  # hand
    (50, 7.0, 15.0, 1, 2, None),   # torso back, person 7
    (55, 7.0, 15.0, 1, 2, 4),      # blink
    (70, 7.0, 15.0, 1, None, None),  # frame 2: empty frame, no part
    (100, 7.5, 7.5, 1, None, None),  # frame 3 not processed
]


def test_per_frame_table_rows():
    tables = run(SCENE, fixations=fixation_rows())
    frames = tables.frames.set_index("frame")
    assert frames.index.tolist() == [0, 1, 2, 3]
    assert frames["samples"].tolist() == [5, 4, 1, 1]
    assert frames["valid samples"].tolist() == [4, 3, 1, 1]
    assert frames["assessed samples"].tolist() == [4, 3, 1, 0]
    assert frames["hit samples"].tolist() == [3, 3, 0, 0]
    assert frames["processed"].tolist() == [True, True, True, False]
    assert frames["part id"].tolist()[:3] == [23, 3, 0] and pd.isna(frames["part id"][3])
    assert frames["part"].tolist()[:3] == ["head, right side", "right hand", "background"]
    assert frames["share"].tolist()[:3] == pytest.approx([0.75, 2 / 3, 1.0])
    assert frames["person id"].tolist()[:2] == [7, 8] and frames["person id"][2:].isna().all()
    assert frames["person"].tolist()[:2] == [1, 2]
    assert frames["distance [px]"].tolist()[:2] == pytest.approx([2.5 / 3, 0.0])
    assert np.isnan(frames["distance [px]"][2])
    assert frames.loc[0, "gaze x [px]"] == pytest.approx((7.5 + 8.5 + 12.0 + 30.0) / 4)
    assert frames["timestamp [ns]"].tolist() == FRAME_TS.tolist()


def test_per_fixation_table_majority_part_and_share():
    tables = run(SCENE, fixations=fixation_rows())
    fix = tables.fixations.set_index("fixation id")
    assert fix.index.tolist() == [1, 2, 3]
    assert fix["samples"].tolist() == [4, 4, 0]
    assert fix["assessed samples"].tolist() == [4, 3, 0]
    assert fix["part id"].tolist()[:2] == [23, 3] and pd.isna(fix["part id"][3])
    assert fix["share"].tolist()[:2] == pytest.approx([0.75, 2 / 3])
    assert fix["person id"].tolist()[:2] == [7, 8]
    assert fix["start frame"].tolist() == [0, 1, -1]  # fixation 3 starts after the video
    assert fix["duration [ms]"].tolist() == [20.0, 20.0, 10.0]


def test_majority_tie_prefers_a_part_over_background_then_the_smaller_id():
    tables = run([(1, 7.5, 7.5, 1, 1, None), (2, 30.0, 25.0, 1, 1, None),
                  (40, 13.5, 15.0, 1, 2, None), (41, 7.0, 15.0, 1, 2, None)], radius=0)
    assert tables.frames["part id"].tolist() == [23, 1]
    assert tables.fixations["part id"].tolist() == [23, 1]
    assert tables.fixations["share"].tolist() == [0.5, 0.5]


def test_part_group_and_person_summaries():
    tables = run(SCENE, fixations=fixation_rows())
    parts = tables.parts.set_index("part id")
    assert parts.index.tolist() == list(range(1, 25))
    # durations (ms): 5 each, except t=20 (not worn, 20 ms gap), t=55 (15), t=70 (30), t=100 (median 5)
    assert parts.loc[23, "samples"] == 3 and parts.loc[23, "dwell time [s]"] == pytest.approx(0.015)
    assert parts.loc[3, "samples"] == 2 and parts.loc[3, "dwell time [s]"] == pytest.approx(0.010)
    assert parts.loc[1, "samples"] == 1 and parts.loc[1, "dwell time [s]"] == pytest.approx(0.005)
    assert parts["samples"].sum() == 6
    assert parts.loc[23, "fixations"] == 1 and parts.loc[3, "fixations"] == 1 and parts.loc[1, "fixations"] == 0
    assert parts.loc[3, "first hit timestamp [ns]"] == 40 * MS
    assert parts.loc[3, "first hit [s]"] == pytest.approx(0.040)
    assert pd.isna(parts.loc[2, "first hit timestamp [ns]"]) and np.isnan(parts.loc[2, "first hit [s]"])
    # worn time on processed frames: t=0..15 (4 x 5) + t=40..55 (5,5,5,15) + t=70 (30) = 80 ms
    assert parts.loc[23, "share of worn time"] == pytest.approx(15 / 80)
    groups = tables.groups.set_index("group")
    assert len(groups) == 14
    assert groups.loc["head", "samples"] == 3 and groups.loc["torso", "samples"] == 1
    assert groups.loc["right hand", "fixations"] == 1
    persons = tables.persons.set_index("person id")
    assert persons.index.tolist() == [7, 8]
    assert persons["samples"].tolist() == [4, 2]
    assert persons["dwell time [s]"].tolist() == pytest.approx([0.020, 0.010])
    assert persons["fixations"].tolist() == [1, 1]
    assert persons.loc[8, "share of worn time"] == pytest.approx(10 / 80)


def test_the_gap_cap_limits_dwell_time():
    rows = [(0, 7.5, 7.5, 1, None, None), (30, 7.5, 7.5, 1, None, None)]
    for cap, dwell in ((10.0, 0.010 + 0.010), (50.0, 0.030 + 0.030)):
        tables = run(rows, max_gap_ms=cap)
        assert tables.parts.set_index("part id").loc[23, "dwell time [s]"] == pytest.approx(dwell)


def test_hits_without_person_ids_have_no_stable_id_but_count_under_a_missing_person():
    tables = run([(1, 7.5, 7.5, 1, None, None)], person_ids=None)
    assert pd.isna(tables.samples["hit person id"][0]) and tables.samples["hit person"][0] == 1
    assert len(tables.persons) == 1 and pd.isna(tables.persons["person id"][0])


class CountingVolume:
    """An array-like that records which frames and windows are read."""

    def __init__(self, data):
        self.data, self.reads = data, []
        self.shape = data.shape

    def __getitem__(self, key):
        self.reads.append(key)
        return self.data[key]


def test_only_frames_with_assessed_samples_are_read_and_only_a_window():
    lab, per = volumes()
    labels, persons = CountingVolume(lab), CountingVolume(per)
    rows = [(1, 7.5, 7.5, 1, None, None), (2, 8.5, 7.5, 1, None, None), (100, 7.5, 7.5, 1, None, None)]
    run(rows, radius=2.0, labels=(labels, persons), processed=(0, 1, 2, 3))
    assert [k[0] for k in labels.reads] == [0, 3]  # one read per frame
    frame0 = labels.reads[0]
    assert (frame0[1].start, frame0[1].stop, frame0[2].start, frame0[2].stop) == (5, 10, 5, 11)


def test_update_frames_equals_a_full_recomputation():
    labels, persons = volumes()
    before = run(SCENE, fixations=fixation_rows())
    painted = labels.copy()
    painted[1, 10:20, 12:18] = 4  # the hand relabelled as left hand
    after = update_frames(before, [1], painted, persons, [0, 1, 2], person_ids=PERSON_IDS)
    full = run(SCENE, fixations=fixation_rows(), labels=(painted, persons))
    for name, table in full.tables().items():
        pd.testing.assert_frame_equal(getattr(after, name), table, check_like=False)
    assert after.parts.set_index("part id").loc[4, "samples"] == 2
    assert after.parts.set_index("part id").loc[3, "samples"] == 0


def test_compute_hits_on_a_recording_and_its_store(synthetic_recording, tmp_path):
    folder = synthetic_recording()
    recording = Recording.open(folder)
    width, height = recording.frame_size
    store = ResultsStore.create(tmp_path / "store", n_frames=recording.n_frames, height=height, width=width,
                                metadata={"recording_id": recording.recording_id})
    labels = np.full((height, width), 2, np.uint8)  # the whole image is someone's torso front
    persons = np.ones((height, width), np.uint8)
    box = {"x1 [px]": 0, "y1 [px]": 0, "x2 [px]": width, "y2 [px]": height, "score": 0.99}
    for frame in range(0, recording.n_frames, 2):
        store.write_frame(frame, labels, persons, [box])
    tables = compute_hits(recording, store)
    samples = tables.samples
    assert len(samples) == len(recording.gaze)
    assessed = samples[samples["assessed"]]
    assert len(assessed) > 0
    assert set(assessed["hit part id"]) == {2} and set(assessed["hit person id"]) == {1}
    assert set(samples.loc[~samples["frame processed"] & samples["valid"], "status"]) == {"frame not processed"}
    assert tables.settings == HitSettings(1.8, "deg")  # the synthetic Neon recording has intrinsics
    assert tables.parts.set_index("part id").loc[2, "samples"] == len(assessed)
    assert 0 < tables.parts.set_index("part id").loc[2, "share of worn time"] <= 1
    # stored ids are used when they match the detections
    store.write_person_ids(link_detections(store.detections(), store.processed_frames()).assign(**{"person id": 5}))
    assert set(compute_hits(recording, store).samples["hit person id"].dropna()) == {5}


def test_compute_hits_uses_the_samples_the_recording_flagged_once(synthetic_recording, tmp_path, monkeypatch):
    from napari_densepose_gaze import recording as recording_module

    recording = Recording.open(synthetic_recording())
    width, height = recording.frame_size
    store = ResultsStore.create(tmp_path / "store", n_frames=recording.n_frames, height=height, width=width,
                                metadata={"recording_id": recording.recording_id})
    flagged = recording.gaze_samples

    def flag_again(*args, **kwargs):
        raise AssertionError("the gaze samples were flagged a second time")

    monkeypatch.setattr(recording_module, "flag_gaze", flag_again)
    monkeypatch.setattr("napari_densepose_gaze.gaze.flag_gaze", flag_again)
    tables = compute_hits(recording, store)
    assert tables.samples["timestamp [ns]"].tolist() == flagged["timestamp [ns]"].tolist()
    assert tables.samples["valid"].tolist() == flagged["valid"].tolist()


def test_an_update_keeps_the_context_and_replaces_only_the_person_ids():
    tables = run([(1, 7.7, 7.2, 1, None, None), (40, 12.0, 12.0, 1, None, None)])
    assert isinstance(tables.context, HitContext)
    assert tables.context.start_ns == FRAME_TS[0] and tables.context.person_ids is PERSON_IDS
    with pytest.raises(dataclasses.FrozenInstanceError):
        tables.context.start_ns = 1
    lab, per = volumes()
    renamed = PERSON_IDS.assign(**{"person id": PERSON_IDS["person id"] + 100})
    updated = update_frames(tables, [0], lab, per, [0, 1, 2], person_ids=renamed)
    assert updated.context.person_ids is renamed and tables.context.person_ids is PERSON_IDS
    assert updated.context.fixations is tables.context.fixations
    assert updated.context.frame_timestamps is tables.context.frame_timestamps
    assert hit_row(updated, 0)[3] == 107  # frame 0 looked up again with the new ids
    assert hit_row(updated, 1) == hit_row(tables, 1)  # frame 1 kept as it was


def test_exports_without_fixation_ids_assign_samples_to_fixations_by_time():
    lab, per = volumes()
    gaze = gaze_table(SCENE).drop(columns=["fixation id"])
    samples = flag_gaze(gaze, FRAME_TS, (WIDTH, HEIGHT))
    tables = hits_from_samples(samples, lab, per, [0, 1, 2], settings=HitSettings(3.0), frame_timestamps=FRAME_TS,
                               fixations=fixation_rows(), person_ids=PERSON_IDS)
    fix = tables.fixations.set_index("fixation id")
    # fixation 1 spans 0..20 ms (5 samples, one not worn), fixation 2 spans 40..60 ms (4 samples, one in a blink)
    assert fix["samples"].tolist() == [5, 4, 0]
    assert fix["part id"].tolist()[:2] == [23, 3]


def test_refresh_reads_the_store_after_a_frame_is_reset(tmp_path):
    labels, persons = volumes()
    store = ResultsStore.create(tmp_path / "s", n_frames=4, height=HEIGHT, width=WIDTH, metadata={})
    for frame in (0, 1, 2):
        store.write_frame(frame, labels[frame], persons[frame], DETECTIONS[DETECTIONS["frame"] == frame])
    samples = flag_gaze(gaze_table(SCENE), FRAME_TS, (WIDTH, HEIGHT))
    tables = hits_from_samples(samples, store.labels, store.persons, store.processed_frames(),
                               settings=HitSettings(3.0), frame_timestamps=FRAME_TS, person_ids=PERSON_IDS)
    store.clear_frame(1)
    after = tables.refresh(store, [1])
    on_frame_1 = after.samples[after.samples["frame"] == 1]
    assert set(on_frame_1["status"]) == {"frame not processed", "in blink"}
    assert after.parts["samples"].sum() == 3  # only frame 0's head hits remain
    assert after.samples["hit person id"].dropna().tolist() == [7, 7, 7]  # ids from the first computation


def test_progress_is_reported_per_frame_and_raising_in_it_cancels():
    lab, per = volumes()
    samples = flag_gaze(gaze_table(SCENE), FRAME_TS, (WIDTH, HEIGHT))
    calls = []
    hits_from_samples(samples, lab, per, [0, 1, 2], settings=HitSettings(3.0), frame_timestamps=FRAME_TS,
                      progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if done == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        hits_from_samples(samples, lab, per, [0, 1, 2], settings=HitSettings(3.0), frame_timestamps=FRAME_TS,
                          progress=cancel)


def test_unusable_intrinsics_are_a_clear_error():
    for camera in ({"camera_matrix": [[1, 2], [3, 4]]},
                   {"camera_matrix": [[500.0, 0, 160.0], [0, 500.0, 120.0], [0, 0, 1]], "dist_coefs": [0.1] * 6}):
        with pytest.raises(DensePoseGazeError, match="scene_camera.json"):
            radius_px([160.0], [120.0], HitSettings(2.0, "deg"), camera)


def test_a_damaged_processed_frame_is_refused_not_counted_as_no_part(synthetic_recording, tmp_path):
    # zarr reads a deleted chunk as background: the tables would say "no part" for a frame full of torso
    recording = Recording.open(synthetic_recording())
    width, height = recording.frame_size
    store = ResultsStore.create(tmp_path / "store", n_frames=recording.n_frames, height=height, width=width,
                                metadata={"recording_id": recording.recording_id})
    labels = np.full((height, width), 2, np.uint8)
    box = {"x1 [px]": 0, "y1 [px]": 0, "x2 [px]": width, "y2 [px]": height, "score": 0.99}
    for frame in (3, 4):
        store.write_frame(frame, labels, np.ones_like(labels), [box])
    key = store.labels.metadata.encode_chunk_key((4, 0, 0))
    (store.folder / store.labels.path / key).unlink()
    with pytest.raises(DensePoseGazeError, match=r"1 damaged frame\(s\): frame 4"):
        compute_hits(recording, store)


def test_compute_hits_takes_the_default_radius_of_the_glasses_info_json_names(synthetic_recording, tmp_path):
    recording = Recording.open(synthetic_recording())  # a Neon-sized video with intrinsics
    width, height = recording.frame_size
    store = ResultsStore.create(tmp_path / "store", n_frames=recording.n_frames, height=height, width=width,
                                metadata={"recording_id": recording.recording_id})
    assert compute_hits(recording, store).settings == HitSettings(1.8, "deg")
    recording.info = {**recording.info, "glasses_serial_number": "abc12", "scene_camera_serial_number": "def34"}
    for key in ("module_serial_number", "frame_name"):
        recording.info.pop(key, None)
    assert compute_hits(recording, store).settings == HitSettings(4.6, "deg")  # Pupil Invisible's accuracy


def test_a_label_that_is_no_part_is_refused_naming_its_frame(synthetic_recording, tmp_path):
    # written around the napari layer (which refuses it): no table may count or name label 30
    recording = Recording.open(synthetic_recording())
    width, height = recording.frame_size
    store = ResultsStore.create(tmp_path / "store", n_frames=recording.n_frames, height=height, width=width,
                                metadata={"recording_id": recording.recording_id})
    labels = np.full((height, width), 2, np.uint8)
    box = {"x1 [px]": 0, "y1 [px]": 0, "x2 [px]": width, "y2 [px]": height, "score": 0.99}
    for frame in range(recording.n_frames):
        store.write_frame(frame, labels, np.ones_like(labels), [box])
    store.labels[7] = 30
    store.mark_edited(7)
    with pytest.raises(DensePoseGazeError, match="Frame 7 of the results holds the label 30"):
        compute_hits(recording, store)
