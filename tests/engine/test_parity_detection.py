"""The detection half of the engine computes what Detectron2 computes, stage by stage.

Each stage is fed the reference input of that stage (see the fixtures' README):
resize from the original PNG, FPN features from ``resized_rgb.png``, RPN
proposals from those features, detections from the *reference* proposals, and
the final frame-sized boxes; then the whole detection path from the original PNG.
Tolerances are the README's (float32 CPU).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_densepose_gaze.engine.box_head import Detections, scale_to_original
from napari_densepose_gaze.engine.preprocess import preprocess

FPN_LEVELS = ("p2", "p3", "p4", "p5", "p6")
BOX_TOL_PX = 0.05
SCORE_TOL = 1e-4


def _logit_tol(logits: np.ndarray) -> np.ndarray:
    return 1e-4 * np.maximum(1.0, np.abs(logits))


def _assert_boxes_close(ours: torch.Tensor | np.ndarray, ref: np.ndarray, tol: float = BOX_TOL_PX) -> None:
    ours = np.asarray(ours, dtype=np.float64)
    assert ours.shape == ref.shape
    worst = float(np.abs(ours - ref).max()) if ours.size else 0.0
    assert worst <= tol, f"boxes differ by up to {worst:.4f} px"


def _detect_from_reference_proposals(case, model, features) -> Detections:
    proposals = torch.from_numpy(case.ref["proposal_boxes"])
    with torch.inference_mode():
        return model.detect(features, [proposals], [case.resized_size], case.score_thresh)[0]


def test_resize_of_the_original_frame_is_detectron2s_pixel_for_pixel(parity_case):
    batch = preprocess([parity_case.original_rgb])
    expected = preprocess([parity_case.resized_rgb])
    assert batch.image_sizes == [parity_case.resized_size]
    assert batch.original_sizes == [parity_case.original_size]
    assert tuple(batch.tensor.shape[-2:]) == tuple(int(v) for v in parity_case.ref["padded_hw"])
    assert torch.equal(batch.tensor, expected.tensor)


def test_fpn_features_match_reference(parity_case, parity_features):
    for level in FPN_LEVELS:
        ours = parity_features[level]
        assert tuple(ours.shape) == tuple(int(v) for v in parity_case.ref[f"feat_{level}_shape"]), level
        ref_mean, ref_std = (float(v) for v in parity_case.ref[f"feat_{level}_meanstd"])
        index = torch.from_numpy(parity_case.ref[f"feat_{level}_idx"].astype(np.int64))
        sampled = ours.flatten()[index].numpy()
        worst = float(np.abs(sampled - parity_case.ref[f"feat_{level}_val"]).max())
        assert worst <= 1e-3 * ref_std, f"{level}: sampled values differ by {worst:.3g} (std {ref_std:.3g})"
        assert abs(ours.mean().item() - ref_mean) <= 1e-3 * ref_std, level
        assert ours.std().item() == pytest.approx(ref_std, rel=1e-3), level


def test_rpn_proposals_match_reference_in_order(parity_case, parity_model, parity_features):
    with torch.inference_mode():
        (proposals,) = parity_model.proposals(parity_features, [parity_case.resized_size])
    ref_boxes, ref_logits = parity_case.ref["proposal_boxes"], parity_case.ref["proposal_logits"]
    boxes, logits = proposals.boxes.numpy(), proposals.logits.numpy()
    assert boxes.shape == ref_boxes.shape and logits.shape == ref_logits.shape
    # Logits are sorted, so comparing them position by position pins the order.
    assert np.all(np.abs(logits - ref_logits) <= _logit_tol(ref_logits))
    # Proposals whose logits tie within float round-off may trade places (Detectron2's
    # order among them is as arbitrary as ours); every other one must sit at its index.
    box_error = np.abs(boxes - ref_boxes).max(axis=1)
    for i in np.nonzero(box_error > BOX_TOL_PX)[0]:
        tied = np.nonzero(np.abs(ref_logits - logits[i]) <= 2 * _logit_tol(ref_logits))[0]
        assert tied.size > 1, f"proposal {i} differs from the reference and has no tied logit"
        closest = np.abs(ref_boxes[tied] - boxes[i]).max(axis=1).min()
        assert closest <= BOX_TOL_PX, f"proposal {i} matches no reference proposal of tied logit"
    assert np.mean(box_error <= BOX_TOL_PX) >= 0.99


def test_detections_from_reference_proposals_match_reference(parity_case, parity_model, parity_features):
    detections = _detect_from_reference_proposals(parity_case, parity_model, parity_features)
    assert len(detections) == parity_case.meta["num_detections"] == len(parity_case.ref["det_scores"])
    assert detections.image_size == parity_case.resized_size
    np.testing.assert_array_equal(detections.classes.numpy(), parity_case.ref["det_classes"])
    np.testing.assert_allclose(detections.scores.numpy(), parity_case.ref["det_scores"], rtol=0, atol=SCORE_TOL)
    _assert_boxes_close(detections.boxes, parity_case.reference_detection_boxes().numpy().astype(np.float64))


def test_final_boxes_scaled_to_the_original_frame_match_reference(parity_case, parity_model, parity_features):
    detections = _detect_from_reference_proposals(parity_case, parity_model, parity_features)
    final = scale_to_original(detections, parity_case.original_size)
    assert final.image_size == parity_case.original_size
    np.testing.assert_allclose(final.scores.numpy(), parity_case.ref["final_scores"], rtol=0, atol=SCORE_TOL)
    _assert_boxes_close(final.boxes, parity_case.ref["final_boxes"])


def test_detections_from_our_own_proposals_match_reference(parity_case, parity_model, parity_features):
    # The resize test shows the original PNG gives bit for bit the input of parity_features,
    # so this closes the detection path from the original frame.
    with torch.inference_mode():
        sizes = [parity_case.resized_size]
        proposals = parity_model.proposals(parity_features, sizes)
        (detections,) = parity_model.detect(parity_features, proposals, sizes, parity_case.score_thresh)
    final = scale_to_original(detections, parity_case.original_size)
    np.testing.assert_allclose(final.scores.numpy(), parity_case.ref["final_scores"], rtol=0, atol=SCORE_TOL)
    _assert_boxes_close(final.boxes, parity_case.ref["final_boxes"])


def test_model_forward_from_the_original_frame_gives_the_reference_detections(parity_case_for, parity_model_for):
    case = parity_case_for("R_50_FPN_DL_s1x", "invisible_1088x1080")
    batch = preprocess([case.original_rgb])
    with torch.inference_mode():
        detections, densepose = parity_model_for(case.config)(batch.tensor, batch.image_sizes, case.score_thresh)
    final = scale_to_original(detections[0], batch.original_sizes[0])
    np.testing.assert_allclose(final.scores.numpy(), case.ref["final_scores"], rtol=0, atol=SCORE_TOL)
    _assert_boxes_close(final.boxes, case.ref["final_boxes"])
    assert len(densepose) == len(detections[0])
