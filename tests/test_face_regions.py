"""Head regions and head yaw on hand-built U, V maps with known answers.

A head is drawn as a sphere seen straight on (or, to check that the yaw does not
hang on that shape, as a vertical cylinder inside the same disc): the pixel at
``a`` across its row of the head (-1..1, + to the image's right) shows the
azimuth ``yaw + asin(a)`` (0 the nose, + the person's left side, which faces the
image's right when the person faces the camera), and V falls linearly from the top.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.face_regions import (
    FACE_REGIONS,
    FACING_MAX_DEG,
    LANDMARKS,
    REGION_NAMES,
    UNKNOWN_REGION,
    across_head,
    chart23_u,
    decode_uv,
    encode_uv,
    fit_yaw,
    head_poses,
    head_uv_map,
    region_ids,
)
from napari_densepose_gaze.gaze import flag_gaze
from napari_densepose_gaze.hits import HitSettings, hits_from_samples

MS = 1_000_000
H, W = 120, 160
V_TOP, V_SPAN = 0.95, 0.9  # V at the top of the head disc, and over its diameter


def draw_head(yaw: float, radius: float, centre=(80.0, 60.0), shape=(H, W), person: int = 1, body: str = "sphere"):
    """labels, persons, u23, v of one head at ``yaw`` degrees, ``radius`` px: a sphere, or a cylinder in a disc."""
    cx, cy = centre
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    a, b = (x - cx) / radius, (y - cy) / radius
    inside = a**2 + b**2 <= 1
    if body == "sphere":  # a row of the sphere is a circle of radius sqrt(1 - b^2)
        a = a / np.sqrt(np.clip(1 - b**2, 1e-12, None))
    azimuth = (yaw + np.degrees(np.arcsin(np.clip(a, -1, 1))) + 180) % 360 - 180
    labels = np.where(inside, np.where(azimuth > 0, 24, 23), 0).astype(np.uint8)
    persons = np.where(inside, person, 0).astype(np.uint8)
    u23 = np.where(inside, 1 - np.abs(azimuth) / 180, np.nan).astype(np.float32)
    v = np.where(inside, V_TOP - (b + 1) / 2 * V_SPAN, np.nan).astype(np.float32)
    return labels, persons, u23, v


def pixel_of(part: int, u: float, v: float, yaw: float, radius: float, centre=(80.0, 60.0)) -> tuple[float, float]:
    """Image (x, y) where :func:`draw_head` (a sphere) puts (part, U, V)."""
    u23 = u if part == 23 else 1 - u
    azimuth = (1 - u23) * 180 * (1 if part == 24 else -1)
    b = (V_TOP - v) / V_SPAN * 2 - 1
    a = math.sin(math.radians(azimuth - yaw)) * math.sqrt(1 - b**2)
    return centre[0] + a * radius, centre[1] + b * radius


def yaw_error(found: float, yaw: float) -> float:
    return abs((found - yaw + 180) % 360 - 180)


def one_frame_hits(head, points, radius=0.0):
    labels, persons, u23, v = head
    gaze = pd.DataFrame({
        "timestamp [ns]": np.arange(len(points), dtype=np.int64) * 4 * MS,
        "gaze x [px]": [p[0] for p in points], "gaze y [px]": [p[1] for p in points],
        "worn": 1.0, "fixation id": pd.array([1] * len(points), dtype="Int64"),
        "blink id": pd.array([None] * len(points), dtype="Int64"),
    })
    frame_ts = np.array([0], dtype=np.int64)
    samples = flag_gaze(gaze, frame_ts, (W, H))
    codes = (encode_uv(u23)[None], encode_uv(v)[None])
    person_ids = pd.DataFrame({"frame": [0], "person": [1], "x1 [px]": [0.0], "y1 [px]": [0.0],
                               "x2 [px]": [float(W)], "y2 [px]": [float(H)], "score": [0.9], "person id": [5]})
    return hits_from_samples(samples, labels[None], persons[None], [0], settings=HitSettings(radius, "px"),
                             frame_timestamps=frame_ts, head_uv=codes, person_ids=person_ids)


# ------------------------------------------------------------------ regions
@pytest.mark.parametrize("name, region", [
    ("nose tip", "nose"), ("right eye", "right eye"), ("left eye", "left eye"),
    ("right ear", "back or side of head"), ("left ear", "back or side of head"),
    ("head top", "back or side of head"), ("Adam's apple", "back or side of head"),
    ("right mouth corner", "mouth"), ("left mouth corner", "mouth"),
])
def test_the_landmarks_of_face_regions_md_land_in_their_regions(name, region):
    part, u, v = LANDMARKS[name]
    found = region_ids(np.array([part]), chart23_u(np.array([part]), np.array([u])), np.array([v]))
    assert REGION_NAMES[int(found[0])] == region


def test_region_boundaries_and_precedence():
    part = np.full(6, 23)
    u23 = np.array([0.885, 0.884, 0.795 + 0.09, 0.58, 0.579, 1.0])
    v = np.array([0.5, 0.5, 0.6, 0.5, 0.5, 0.365 + 0.044])
    names = [REGION_NAMES[int(r)] for r in region_ids(part, u23, v)]
    # nose starts at 0.885; the eye wins over the nose on its edge; the face starts at 0.58; mouth over nose
    assert names == ["nose", "rest of face", "right eye", "rest of face", "back or side of head", "mouth"]


def test_head_pixels_without_uv_are_unknown_and_other_parts_have_no_region():
    found = region_ids(np.array([23, 24, 2, 0]), np.array([np.nan, 0.9, 0.9, 0.9]), np.array([0.5, np.nan, 0.5, 0.5]))
    assert found.tolist() == [UNKNOWN_REGION, UNKNOWN_REGION, 0, 0]


def test_patch_24_mirrors_23():
    u = np.linspace(0, 1, 11)
    v = np.full(11, 0.6)
    right = region_ids(np.full(11, 23), chart23_u(np.full(11, 23), u), v)
    left = region_ids(np.full(11, 24), chart23_u(np.full(11, 24), 1 - u), v)
    swap = {1: 2}
    assert [swap.get(int(r), int(r)) for r in right] == left.tolist()


def test_uv_codes_keep_values_to_half_a_step_and_nan_as_none():
    values = np.array([0.0, 0.5, 1.0, 0.123, np.nan], dtype=np.float32)
    codes = encode_uv(values)
    assert codes[-1] == 0 and (codes[:-1] > 0).all()
    back = decode_uv(codes)
    assert np.isnan(back[-1]) and np.abs(back[:-1] - values[:-1]).max() <= 0.5 / 254 + 1e-6


def test_head_uv_map_takes_each_pixel_from_the_detection_that_won_it():
    part_map = np.zeros((6, 8), np.uint8)
    person_map = np.zeros_like(part_map)
    part_map[1:3, 1:4], person_map[1:3, 1:4] = 23, 1
    part_map[3:5, 4:7], person_map[3:5, 4:7] = 24, 2
    part_map[1, 6], person_map[1, 6] = 2, 2  # torso: no U, V kept
    boxes = np.array([[1.7, 1.2, 5, 5], [4, 3, 8, 6]], np.float32)
    uv = [np.stack([np.full((4, 4), 0.25), np.full((4, 4), 0.5)]).astype(np.float32),
          np.stack([np.full((3, 4), 0.75), np.full((3, 4), 0.125)]).astype(np.float32)]
    u23, v = head_uv_map(part_map, person_map, boxes, uv)
    assert np.allclose(u23[1:3, 1:4], 0.25) and np.allclose(v[1:3, 1:4], 0.5)
    assert np.allclose(u23[3:5, 4:7], 0.25) and np.allclose(v[3:5, 4:7], 0.125)  # 24: u23 = 1 - U
    assert np.isnan(u23[1, 6]) and np.isnan(u23[0]).all()


# ------------------------------------------------------------------ gaze on regions
@pytest.mark.parametrize("radius", [12, 25, 45])
@pytest.mark.parametrize("target, part, u, v", [
    ("right eye", 23, 0.795, 0.60), ("left eye", 24, 0.205, 0.60), ("nose", 23, 0.95, 0.50),
    ("mouth", 24, 0.03, 0.365), ("rest of face", 23, 0.65, 0.40),
])
def test_gaze_on_each_region_of_a_frontal_head(target, part, u, v, radius):
    point = pixel_of(part, u, v, yaw=0, radius=radius)
    tables = one_frame_hits(draw_head(0, radius), [point])
    row = tables.samples.iloc[0]
    assert (row["region"], row["hit region"], row["status"]) == (target, target, "on part")


@pytest.mark.parametrize("radius", [12, 40])
def test_a_back_view_is_all_back_of_head_and_a_profile_shows_one_eye(radius):
    back = draw_head(180, radius)
    ids = region_ids(back[0], back[2], back[3])
    assert set(np.unique(ids[back[0] > 0])) == {6}
    profile = draw_head(-90, radius)  # the right ear faces the camera
    found = set(np.unique(region_ids(profile[0], profile[2], profile[3])[profile[0] > 0]))
    assert 1 in found and 2 not in found and 6 in found


def test_gaze_beside_a_profile_takes_the_region_of_the_nearest_head_pixel_within_the_radius():
    head = draw_head(-90, 30)  # the nose is at the disc's right edge (azimuth 0), the back at its left
    beside = (80 + 30 + 4.0, 60.0)
    assert one_frame_hits(head, [beside], radius=0).samples["hit region"].isna().all()
    near = one_frame_hits(head, [beside], radius=6).samples.iloc[0]
    at = (slice(59, 60), int(near["hit x [px]"]))
    expected = region_ids(head[0][at], head[2][at], head[3][at])
    assert near["status"] == "near part" and pd.isna(near["region"])
    assert near["hit region"] == REGION_NAMES[int(expected[0])] == "nose"
    beyond = one_frame_hits(head, [beside], radius=3).samples.iloc[0]
    assert beyond["status"] == "no part" and pd.isna(beyond["hit region"])
    back = one_frame_hits(head, [(80 - 30 - 4.0, 60.0)], radius=6).samples.iloc[0]
    assert back["hit region"] == "back or side of head"


def test_gaze_near_the_eye_boundary_falls_on_either_side():
    radius = 45
    inside = pixel_of(23, 0.795, 0.6 + 0.035, 0, radius)
    outside = pixel_of(23, 0.795, 0.6 + 0.06, 0, radius)
    regions = one_frame_hits(draw_head(0, radius), [inside, outside]).samples["hit region"].tolist()
    assert regions == ["right eye", "rest of face"]


# ------------------------------------------------------------------ head yaw
VIEWS_OF_A_HEAD = {  # name -> yaw, degrees (+: the person's left ear towards the camera)
    "frontal": 0, "three-quarter left": 45, "three-quarter right": -45, "profile left": 90,
    "profile right": -90, "back three-quarter": 135, "back": 180, "slightly turned": 20, "mostly away": -120,
}


@pytest.mark.parametrize("body", ["sphere", "cylinder"])
@pytest.mark.parametrize("radius", [6, 15, 40])
@pytest.mark.parametrize("view", list(VIEWS_OF_A_HEAD))
def test_head_yaw_is_recovered_from_a_drawn_head(view, radius, body):
    yaw = VIEWS_OF_A_HEAD[view]
    labels, persons, u23, _ = draw_head(yaw, radius, body=body)
    pose = head_poses(labels, persons, u23).iloc[0]
    assert yaw_error(pose["head yaw [deg]"], yaw) < (6 if radius < 10 else 3)
    assert bool(pose["facing wearer"]) == (abs(yaw) <= FACING_MAX_DEG)
    assert 0 <= pose["facing confidence"] <= 1


@pytest.mark.parametrize("radius", [8, 30])
@pytest.mark.parametrize("yaw", [0, 30, -60])  # on a profile the midline is the outline itself
def test_the_front_midline_lies_at_minus_sin_yaw_across_the_head(yaw, radius):
    labels, persons, u23, _ = draw_head(yaw, radius)
    rows, cols = np.nonzero(labels > 0)
    across = across_head(rows, cols)
    assert across.min() > -1 and across.max() < 1
    # the front midline: where the person's right half (23) meets the left (24) with u23 near 1
    right, left = labels[rows, cols] == 23, labels[rows, cols] == 24
    front = u23[rows, cols] > 0.5
    midline = []
    for row in np.unique(rows):
        on = rows == row
        r23, r24 = np.flatnonzero(on & right & front), np.flatnonzero(on & left & front)
        if len(r23) and len(r24):
            midline.append((across[r23].max() + across[r24].min()) / 2)
    assert len(midline) > 2
    assert abs(float(np.median(midline)) + math.sin(math.radians(yaw))) < 2.5 / radius


@pytest.mark.parametrize("radius", [15, 40])
@pytest.mark.parametrize("yaw", [45, -45, 0])
def test_yaw_holds_when_part_of_the_head_lost_its_uv_which_visible_front_share_alone_cannot(yaw, radius):
    """Pixels painted onto the head have no U, V: the visible ones are then lopsided, not the head."""
    labels, persons, u23, _ = draw_head(yaw, radius)
    painted = u23.copy()
    x = np.arange(W) + 0.5
    painted[:, x > 80 + radius * 0.3] = np.nan  # the image's right part of the head, painted by hand
    pose = head_poses(labels, persons, painted).iloc[0]
    assert yaw_error(pose["head yaw [deg]"], yaw) < 4
    # what the visible pixels' mean azimuth (no place in the head) would say is far off
    known = (labels > 0) & np.isfinite(painted)
    az = np.deg2rad(np.where(labels[known] == 24, 1, -1) * (1 - painted[known]) * 180)
    mean_only = math.degrees(math.atan2(np.sin(az).sum(), np.cos(az).sum()))
    assert yaw_error(mean_only, yaw) > 15


def test_a_frontal_big_head_is_a_confident_facing_one_and_a_tiny_one_is_not():
    big = head_poses(*draw_head(0, 40)[:3]).iloc[0]
    tiny = head_poses(*draw_head(0, 2)[:3]).iloc[0]
    assert big["facing wearer"] and big["facing confidence"] > 0.9
    assert tiny["facing confidence"] < 0.5 * big["facing confidence"]
    assert big["front share"] > 0.7 and head_poses(*draw_head(180, 40)[:3]).iloc[0]["front share"] == 0


def test_labels_that_do_not_describe_a_turned_head_get_no_confidence():
    labels, persons, u23, _ = draw_head(0, 30)
    shuffled = u23.copy()
    inside = labels > 0
    shuffled[inside] = np.random.default_rng(3).permutation(u23[inside])  # azimuths at random places
    sides = labels.copy()
    sides[inside] = np.where(np.random.default_rng(4).random(int(inside.sum())) < 0.5, 23, 24)
    pose = head_poses(sides, persons, shuffled).iloc[0]
    assert pose["facing confidence"] < 0.2


def test_too_few_pixels_for_a_fit_fall_back_to_the_mean_azimuth_without_confidence():
    yaw, miss = fit_yaw(np.array([0.2, 0.3]), np.array([30.0, 30.0]))
    assert yaw == pytest.approx(30.0) and math.isnan(miss)
    labels = np.zeros((4, 4), np.uint8)
    labels[1, 1:3] = 24
    u23 = np.full((4, 4), np.nan, np.float32)
    u23[1, 1:3] = 0.5
    pose = head_poses(labels, (labels > 0).astype(np.uint8), u23).iloc[0]
    assert pose["head yaw [deg]"] == pytest.approx(90.0) and pose["facing confidence"] == 0


def test_yaw_of_a_random_head_it_has_never_seen_and_its_mirror_image():
    rng = np.random.default_rng(20261201)
    for _ in range(20):
        yaw, radius = float(rng.uniform(-179, 179)), float(rng.uniform(8, 50))
        centre = (float(rng.uniform(55, 105)), float(rng.uniform(55, 65)))
        body = str(rng.choice(["sphere", "cylinder"]))
        labels, persons, u23, _ = draw_head(yaw, radius, centre, body=body)
        pose = head_poses(labels, persons, u23).iloc[0]["head yaw [deg]"]
        assert yaw_error(pose, yaw) < 4
        # the mirror image (flip left-right and swap the halves) turns the head the other way
        mirrored = np.where(labels[:, ::-1] == 23, 24, np.where(labels[:, ::-1] == 24, 23, 0)).astype(np.uint8)
        flipped = head_poses(mirrored, persons[:, ::-1], u23[:, ::-1]).iloc[0]["head yaw [deg]"]
        assert abs((flipped + pose + 180) % 360 - 180) < 1e-6


def test_two_heads_in_one_frame_get_their_own_yaws():
    left, right = draw_head(60, 20, centre=(40.0, 60.0), person=1), draw_head(-10, 25, centre=(115.0, 60.0), person=2)
    labels = np.maximum(left[0], right[0])
    persons = np.maximum(left[1], right[1])
    u23 = np.where(left[1] > 0, left[2], right[2])
    poses = head_poses(labels, persons, u23).set_index("person")["head yaw [deg]"]
    assert yaw_error(poses[1], 60) < 3 and yaw_error(poses[2], -10) < 3


def test_frame_and_fixation_tables_carry_region_and_the_pose_of_the_gazed_person():
    radius = 40
    eye = pixel_of(23, 0.795, 0.6, 0, radius)
    tables = one_frame_hits(draw_head(0, radius), [eye, eye, pixel_of(23, 0.95, 0.5, 0, radius)])
    frame = tables.frames.iloc[0]
    assert frame["region"] == "right eye" and bool(frame["facing wearer"]) and abs(frame["head yaw [deg]"]) < 3
    fixation = tables.fixations.iloc[0]
    assert fixation["region"] == "right eye" and bool(fixation["facing wearer"])
    regions = tables.regions
    assert regions["region"].tolist() == ["right eye", "nose"] and regions["samples"].tolist() == [2, 1]
    assert regions["on face"].all() and regions["fixations"].tolist() == [1, 0]
    assert regions["person id"].tolist() == [5, 5]
    assert {int(r) for r in FACE_REGIONS} == {1, 2, 3, 4, 5}


def test_tables_without_head_uv_say_the_region_is_unknown():
    labels, persons, _, _ = draw_head(0, 20)
    gaze = pd.DataFrame({"timestamp [ns]": np.array([0], dtype=np.int64), "gaze x [px]": [80.0],
                         "gaze y [px]": [60.0], "worn": 1.0})
    samples = flag_gaze(gaze, np.array([0], dtype=np.int64), (W, H))
    tables = hits_from_samples(samples, labels[None], persons[None], [0], settings=HitSettings(0, "px"),
                               frame_timestamps=np.array([0], dtype=np.int64))
    row = tables.samples.iloc[0]
    assert row["hit region"] == "head, region unknown" and pd.isna(row["head yaw [deg]"])
    assert pd.isna(row["facing wearer"]) and pd.isna(tables.frames.iloc[0]["head yaw [deg]"])
