"""Face Mapper-style files and the per-landmark output, against answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_densepose_gaze.face_export import (
    FACE_FILE_NAMES,
    fixations_on_face,
    gaze_on_face,
    gaze_on_landmarks,
    write_face_files,
)
from napari_densepose_gaze.face_regions import encode_uv
from napari_densepose_gaze.gaze import flag_gaze
from napari_densepose_gaze.hits import HitSettings, hits_from_samples
from napari_densepose_gaze.hits.provenance import Provenance

MS = 1_000_000
H, W = 10, 20
FRAME_TS = np.array([0, 100], dtype=np.int64) * MS
# (row, cols, part, own U, V): what the pixels show, region by the table of face_regions.md
BLOCKS = [
    (2, slice(2, 4), 23, 0.795, 0.60),  # right eye
    (2, slice(6, 8), 24, 0.205, 0.60),  # left eye (u23 = 0.795)
    (4, slice(4, 6), 23, 0.950, 0.50),  # nose
    (6, slice(4, 6), 24, 0.010, 0.365),  # mouth
    (2, slice(10, 12), 23, 0.200, 0.50),  # back of the head
]


def volumes():
    labels = np.zeros((2, H, W), np.uint8)
    persons = np.zeros_like(labels)
    u = np.full((2, H, W), np.nan, np.float32)
    v = np.full((2, H, W), np.nan, np.float32)
    for row, cols, part, own_u, own_v in BLOCKS:
        labels[0, row, cols], persons[0, row, cols] = part, 1
        u[0, row, cols] = own_u if part == 23 else 1 - own_u
        v[0, row, cols] = own_v
    labels[0, 8, 2:6], persons[0, 8, 2:6] = 2, 1  # torso
    labels[1] = labels[0]  # frame 1 is not processed
    return labels, persons, (encode_uv(u), encode_uv(v))


# (t ms, x, y, worn, fixation id): pixel centres of the blocks above
GAZE = [
    (0, 2.5, 2.5, 1, 1),  # right eye
    (4, 3.5, 2.5, 1, 1),  # right eye
    (8, 4.5, 4.5, 1, 1),  # nose
    (12, 6.5, 2.5, 1, None),  # left eye
    (16, 5.5, 6.5, 1, None),  # mouth
    (20, 10.5, 2.5, 1, 2),  # back of the head
    (24, 3.5, 8.5, 1, 2),  # torso
    (28, 11.5, 2.5, 1, 2),  # back of the head
    (32, 15.5, 5.5, 1, None),  # background
    (36, 2.5, 2.5, 0, None),  # on the right eye, but not worn: not assessed
    (120, 2.5, 2.5, 1, 3),  # frame 1: not processed
]


def tables():
    t, x, y, worn, fix = zip(*GAZE)
    gaze = pd.DataFrame({
        "section id": "sec-1", "recording id": "rec-1",
        "timestamp [ns]": np.array(t, dtype=np.int64) * MS, "gaze x [px]": np.array(x, float),
        "gaze y [px]": np.array(y, float), "worn": np.array(worn, float),
        "fixation id": pd.array(fix, dtype="Int64"), "blink id": pd.array([None] * len(t), dtype="Int64"),
    })
    fixations = pd.DataFrame({
        "fixation id": [1, 2, 3], "start timestamp [ns]": np.array([0, 20, 120]) * MS,
        "end timestamp [ns]": np.array([8, 28, 120]) * MS, "duration [ms]": [8.0, 8.0, 0.0],
        "fixation x [px]": [3.0, 8.0, 2.5], "fixation y [px]": [3.0, 4.0, 2.5],
    })
    labels, persons, head_uv = volumes()
    samples = flag_gaze(gaze, FRAME_TS, (W, H))
    person_ids = pd.DataFrame({"frame": [0], "person": [1], "x1 [px]": [0.0], "y1 [px]": [0.0], "x2 [px]": [20.0],
                               "y2 [px]": [10.0], "score": [0.9], "person id": [4]})
    return hits_from_samples(samples, labels, persons, [0], settings=HitSettings(0, "px"), frame_timestamps=FRAME_TS,
                             fixations=fixations, person_ids=person_ids, head_uv=head_uv)


ON_FACE = [True, True, True, True, True, False, False, False, False, False]  # the ten samples on frame 0


def test_gaze_on_face_has_face_mappers_columns_and_one_row_per_sample_on_a_processed_frame():
    table = gaze_on_face(tables().samples)
    assert list(table.columns) == ["section id", "recording id", "timestamp [ns]", "gaze on face", "time [s]"]
    assert table["timestamp [ns]"].tolist() == [g[0] * MS for g in GAZE[:10]]
    assert table["time [s]"].tolist() == [g[0] / 1000 for g in GAZE[:10]]  # the first frame is at 0
    assert table["gaze on face"].tolist() == ON_FACE
    assert set(table["section id"]) == {"sec-1"} and set(table["recording id"]) == {"rec-1"}


def test_fixations_on_face_follow_the_majority_region():
    table = fixations_on_face(tables())
    assert list(table.columns) == ["section id", "recording id", "fixation id", "fixation on face"]
    # 1: eye, eye, nose -> right eye; 2: back, torso, back -> head, back of the head; 3: no assessed sample
    assert table["fixation id"].tolist() == [1, 2] and table["fixation on face"].tolist() == [True, False]
    assert set(table["recording id"]) == {"rec-1"}


def test_landmarks_name_eyes_nose_and_mouth_as_gaze_on_facial_landmarks_does():
    table = gaze_on_landmarks(tables().samples)
    assert table["landmark"].tolist() == ["eye right", "eye right", "nose", "eye left", "mouth",
                                          *["Not on landmark"] * 5]
    assert table["person id"].tolist()[:5] == [4] * 5 and table["person id"].isna().tolist()[5:] == [True] * 5
    assert table[["gaze x [px]", "gaze y [px]"]].iloc[2].tolist() == [4.5, 4.5]


def test_region_summary_counts_samples_dwell_and_fixations_per_person_and_region():
    regions = tables().regions
    assert regions["region"].tolist() == ["right eye", "left eye", "nose", "mouth", "back or side of head"]
    assert regions["samples"].tolist() == [2, 1, 1, 1, 2]
    assert regions["fixations"].tolist() == [1, 0, 0, 0, 1]
    assert np.allclose(regions["dwell time [s]"], np.array([2, 1, 1, 1, 2]) * 0.004)
    assert regions["on face"].tolist() == [True, True, True, True, False]


def test_write_face_files_writes_the_four_files(tmp_path):
    hits = tables()
    written = write_face_files(hits, tmp_path / "out", Provenance(recording_id="rec-1", recording_name="walk"))
    assert {p.name for p in written.values()} == set(FACE_FILE_NAMES.values())
    back = pd.read_csv(written["gaze on face"])
    assert back["gaze on face"].tolist() == ON_FACE
    assert list(back.columns) == ["section id", "recording id", "timestamp [ns]", "gaze on face", "time [s]",
                                  "recording name"]  # Face Mapper's columns, then ours
    landmarks = pd.read_csv(written["gaze on landmarks"])
    assert list(landmarks.columns[-2:]) == ["time [s]", "recording name"]
    for path in written.values():
        table = pd.read_csv(path)
        assert set(table["recording id"]) == {"rec-1"} and set(table["recording name"]) == {"walk"}, path.name
    assert pd.read_csv(written["regions"])["samples"].sum() == 7
    assert pd.read_csv(written["fixations on face"])["fixation on face"].tolist() == [True, False]
