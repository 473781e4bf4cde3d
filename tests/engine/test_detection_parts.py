"""Behaviour of the detector's parts on small hand-made inputs (no reference data needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import roi_align

from napari_densepose_gaze.engine.box_head import Detections, box_inference, scale_to_original
from napari_densepose_gaze.engine.model import DETECTION_PREFIXES, DensePoseRCNN
from napari_densepose_gaze.engine.pooler import RoIPooler, assign_boxes_to_levels
from napari_densepose_gaze.engine.preprocess import PIXEL_MEAN_BGR, preprocess, resize_like_pil, resized_size
from napari_densepose_gaze.engine.rpn import AnchorGenerator, Box2BoxTransform, select_top_proposals
from napari_densepose_gaze.engine.zoo import ZOO
from napari_densepose_gaze.errors import DensePoseGazeError


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1200, 1600), (800, 1067)),  # Neon scene camera
        ((1080, 1088), (800, 806)),  # Pupil Invisible scene camera
        ((1000, 4000), (333, 1333)),  # the long side caps the scale
        ((300, 400), (800, 1067)),  # small frames are scaled up
        ((800, 1067), (800, 1067)),  # an already resized frame keeps its size
    ],
)
def test_resized_size_follows_resize_shortest_edge(size, expected):
    assert resized_size(*size) == expected


# ResizeShortestEdge scales both axes alike: down, up, and one axis unchanged.
@pytest.mark.parametrize("out_size", [(37, 51), (58, 80), (123, 169), (200, 275), (80, 64)])
def test_resize_equals_pil_bilinear_exactly(out_size):
    rgb = np.random.default_rng(0).integers(0, 256, (80, 110, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).resize(out_size[::-1], Image.BILINEAR))
    ours = resize_like_pil(torch.from_numpy(rgb).permute(2, 0, 1), out_size).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, expected)


def test_preprocess_batches_frames_of_different_sizes_as_bgr_minus_mean_with_zero_padding():
    small = np.full((100, 150, 3), (10, 20, 30), dtype=np.uint8)  # RGB
    large = np.full((120, 120, 3), 200, dtype=np.uint8)
    batch = preprocess([small, large], min_size=100, max_size=1000)
    assert batch.image_sizes == [(100, 150), (100, 100)]
    assert batch.original_sizes == [(100, 150), (120, 120)]
    assert tuple(batch.tensor.shape) == (2, 3, 128, 160)
    bgr_minus_mean = torch.tensor([30 - PIXEL_MEAN_BGR[0], 20 - PIXEL_MEAN_BGR[1], 10 - PIXEL_MEAN_BGR[2]])
    assert torch.allclose(batch.tensor[0, :, :100, :150], bgr_minus_mean.view(3, 1, 1).expand(3, 100, 150))
    assert batch.tensor[0, :, 100:, :].abs().max() == 0 and batch.tensor[0, :, :, 150:].abs().max() == 0
    assert batch.tensor[1, :, :, 100:].abs().max() == 0


@pytest.mark.parametrize("frame", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32)])
def test_preprocess_rejects_frames_that_are_not_rgb_uint8(frame):
    with pytest.raises(DensePoseGazeError, match=r"\(height, width, 3\)"):
        preprocess([frame])


def test_boxes_go_to_the_fpn_level_of_their_size():
    sides = torch.tensor([8.0, 112.0, 224.0, 448.0, 5000.0])
    boxes = torch.stack([torch.zeros(5), torch.zeros(5), sides, sides], dim=1)
    # canonical 224 px -> p4; half -> p3; double -> p5; clamped to p2..p5 at both ends
    assert assign_boxes_to_levels(boxes, 2, 5).tolist() == [0, 1, 2, 3, 3]


def test_multi_level_pooler_pools_each_box_from_its_own_level():
    features = [torch.full((1, 2, 64 // 2**i, 64 // 2**i), float(i)) for i in range(4)]
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 224.0, 224.0], [0.0, 0.0, 150.0, 150.0]])
    pooled = RoIPooler(7, (4, 8, 16, 32), sampling_ratio=2, aligned=False)(features, [boxes])
    assert pooled.shape == (3, 2, 7, 7)
    assert pooled.amax(dim=(1, 2, 3)).tolist() == [0.0, 2.0, 1.0]


def test_single_level_pooler_is_plain_roi_align_over_all_images():
    feature = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    boxes = [torch.tensor([[1.0, 2.0, 30.0, 40.0]]), torch.tensor([[5.0, 5.0, 20.0, 50.0], [0.0, 0.0, 8.0, 8.0]])]
    pooled = RoIPooler(5, (4,), sampling_ratio=2, aligned=True)([feature], boxes)
    rois = torch.tensor([[0, 1.0, 2, 30, 40], [1, 5, 5, 20, 50], [1, 0, 0, 8, 8]])
    expected = roi_align(feature, rois, (5, 5), spatial_scale=0.25, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(pooled, expected, rtol=0, atol=0)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("count", [0, 5, 1000])
def test_pooling_many_boxes_gives_torchvisions_values_per_level_on_any_number_of_threads(threads, count):
    generator = torch.Generator().manual_seed(7)
    features = [torch.randn(2, 4, 96 // 2**i, 128 // 2**i, generator=generator) for i in range(4)]
    corners = torch.rand(count, 2, generator=generator) * 400
    sides = torch.rand(count, 2, generator=generator) ** 2 * 600 + 2  # every level gets boxes
    boxes = torch.cat([corners, corners + sides], dim=1)
    per_image = [boxes[: count // 3], boxes[count // 3 :]]
    pooler = RoIPooler(7, (4, 8, 16, 32), sampling_ratio=2, aligned=False)
    rois = torch.cat([torch.repeat_interleave(torch.arange(2.0), torch.tensor([len(b) for b in per_image]))[:, None],
                      boxes], dim=1)
    levels = assign_boxes_to_levels(boxes, 2, 5)
    expected = torch.empty((count, 4, 7, 7))
    for level, feature in enumerate(features):
        chosen = levels == level
        expected[chosen] = roi_align(feature, rois[chosen], (7, 7), 1 / 4 / 2**level, 2, aligned=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            pooled = pooler(features, per_image)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(pooled.view(torch.int32), expected.view(torch.int32))  # bit for bit, signed zeros too


def test_a_box_of_no_level_pools_zeros():
    features = [torch.ones((1, 2, 64 // 2**i, 64 // 2**i)) for i in range(4)]
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0], [float("nan"), 0.0, 30.0, 30.0]])
    pooled = RoIPooler(7, (4, 8, 16, 32), sampling_ratio=2, aligned=False)(features, [boxes])
    assert pooled[0].min() > 0 and pooled[1].abs().max() == 0


def test_anchors_are_centred_on_pixel_corners_in_y_x_anchor_order():
    (anchors,) = AnchorGenerator(sizes=(32,), strides=(4,))([(2, 3)], torch.device("cpu"))
    assert anchors.shape == (2 * 3 * 3, 4)
    w, h = math.sqrt(32**2 / 0.5), 0.5 * math.sqrt(32**2 / 0.5)
    torch.testing.assert_close(anchors[0], torch.tensor([-w / 2, -h / 2, w / 2, h / 2]))
    torch.testing.assert_close(anchors[1], torch.tensor([-16.0, -16.0, 16.0, 16.0]))
    torch.testing.assert_close(anchors[3] - anchors[0], torch.tensor([4.0, 0.0, 4.0, 0.0]))  # next x
    torch.testing.assert_close(anchors[9] - anchors[0], torch.tensor([0.0, 4.0, 0.0, 4.0]))  # next row


def test_box_deltas_shift_and_scale_boxes_with_a_clamped_size_change():
    transform = Box2BoxTransform((10.0, 10.0, 5.0, 5.0))
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    torch.testing.assert_close(transform.apply_deltas(torch.zeros(1, 4), boxes), boxes)
    moved = transform.apply_deltas(torch.tensor([[10.0, 0.0, 5.0 * math.log(2.0), 0.0]]), boxes)
    torch.testing.assert_close(moved, torch.tensor([[20.0, 20.0, 60.0, 60.0]]))
    huge = transform.apply_deltas(torch.tensor([[0.0, 0.0, 1000.0, 0.0]]), boxes)
    assert (huge[0, 2] - huge[0, 0]).item() == pytest.approx(20.0 * 1000 / 16, rel=1e-5)


def test_proposals_are_clipped_before_empty_ones_are_dropped_and_nms_runs_per_level():
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.5, 0.0, 10.0, 10.0], [-9.0, -9.0, -1.0, 5.0]]])
    boxes_other_level = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    logits = torch.tensor([[3.0, 2.0, 5.0]])
    (result,) = select_top_proposals(
        [boxes, boxes_other_level], [logits, torch.tensor([[1.0]])], [(50, 50)], nms_thresh=0.7
    )
    # the best box clips to zero width and goes; the near-duplicate on its level is
    # suppressed; the duplicate on the other level survives
    assert result.logits.tolist() == [3.0, 1.0]
    torch.testing.assert_close(result.boxes, torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 2))


def test_box_inference_thresholds_suppresses_overlaps_and_clips():
    proposals = torch.tensor([[0.0, 0.0, 100.0, 100.0], [2.0, 2.0, 100.0, 100.0], [50.0, 50.0, 250.0, 90.0]])
    person = torch.tensor([3.0, 2.0, 4.0])
    logits = torch.stack([person, torch.zeros(3)], dim=1)  # (person, background)
    (dets,) = box_inference(logits, torch.zeros(3, 4), [proposals], [(200, 200)], score_thresh=0.9)
    probs = torch.softmax(logits, dim=1)[:, 0]
    torch.testing.assert_close(dets.scores, probs[[2, 0]])  # 0.88 < 0.9 for the second
    torch.testing.assert_close(dets.boxes, torch.tensor([[50.0, 50.0, 200.0, 90.0], [0.0, 0.0, 100.0, 100.0]]))
    assert dets.classes.tolist() == [0, 0] and dets.image_size == (200, 200)


def test_scaling_to_the_original_frame_clips_and_drops_empty_boxes():
    dets = Detections(
        torch.tensor([[10.0, 10.0, 100.0, 50.0], [100.0, 10.0, 100.0, 20.0]]),
        torch.tensor([0.9, 0.8]),
        torch.zeros(2, dtype=torch.int64),
        (100, 100),
    )
    final = scale_to_original(dets, (150, 120))
    torch.testing.assert_close(final.boxes, torch.tensor([[12.0, 15.0, 120.0, 75.0]]))
    assert final.scores.tolist() == pytest.approx([0.9]) and final.image_size == (150, 120)


@pytest.mark.parametrize("name", ["R_50_FPN_DL_s1x", "R_101_FPN_s1x", "R_50_FPN_s1x_legacy"])
def test_detector_only_model_loads_the_detection_half_of_a_full_checkpoint_strictly(name):
    full = DensePoseRCNN(ZOO[name]).state_dict()
    assert any(key.startswith("roi_heads.densepose_predictor.") for key in full)
    blocks = {key.split(".")[3] for key in full if key.startswith("backbone.bottom_up.res4.")}
    assert len(blocks) == (23 if ZOO[name].depth == 101 else 6)
    detector = DensePoseRCNN(ZOO[name], with_densepose=False)
    assert set(detector.state_dict()) == {k for k in full if k.startswith(DETECTION_PREFIXES)}
    detector.load_weights({k: v.numpy() for k, v in full.items()})
    del full["roi_heads.box_predictor.cls_score.bias"]
    with pytest.raises(RuntimeError, match="cls_score.bias"):
        detector.load_weights(full)


def test_frames_batched_together_give_the_detections_of_single_frames(parity_model_for, parity_case_for):
    case = parity_case_for("R_50_FPN_s1x", "neon_1600x1200")
    model = parity_model_for(case.config)
    # Two small crops that pad to the same 224x288 input, so batching changes nothing.
    frames = [case.original_rgb[300:524, 500:788], case.original_rgb[600:820, 900:1185]]

    def run(frame_list):
        batch = preprocess(frame_list, min_size=220, max_size=1000)
        with torch.inference_mode():  # detection stages only: the DensePose head is slow on CPU
            features = model.features(batch.tensor)
            proposals = model.proposals(features, batch.image_sizes)
            detections = model.detect(features, proposals, batch.image_sizes, 0.5)
        return batch, detections

    batch, together = run(frames)
    assert tuple(batch.tensor.shape[-2:]) == (224, 288)
    assert sum(len(d) for d in together) > 0
    for frame, batched in zip(frames, together):
        _, (alone,) = run([frame])
        torch.testing.assert_close(batched.boxes, alone.boxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(batched.scores, alone.scores, atol=1e-5, rtol=0)
