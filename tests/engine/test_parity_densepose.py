"""The DensePose half of the engine computes what Detectron2 computes, stage by stage.

Reference: the shared parity fixtures (Detectron2 DensePose, CPU float32, synthetic
weights). Each stage gets the reference input of that stage, so a failure says
where the engine differs: predictor outputs from the reference detections, per-box
labels from our predictor outputs, and the whole path from the original PNG.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_densepose_gaze.engine.chart import chart_result, chart_results, int_box_xywh, paste_charts
from napari_densepose_gaze.engine.checkpoint import read_checkpoint
from napari_densepose_gaze.engine.densepose_head import (
    ChartPredictor,
    DensePoseOutput,
    build_decoder,
    build_densepose_head,
    build_densepose_predictor,
)
from napari_densepose_gaze.engine.predictor import FrameResult, Predictor, as_frame_list, resolve_device
from napari_densepose_gaze.engine.zoo import get_config
from napari_densepose_gaze.errors import DensePoseGazeError

CONFIGS = ("R_50_FPN_s1x", "R_50_FPN_DL_s1x")
RAW_OUTPUTS = ("coarse_segm", "fine_segm", "u", "v")


@pytest.fixture(scope="session")
def densepose_outputs(parity_case, parity_model, parity_features) -> DensePoseOutput:
    """Our raw predictor outputs for the reference detections, on our features of resized_rgb.png."""
    with torch.inference_mode():
        return parity_model.densepose(parity_features, [parity_case.reference_detection_boxes()])


def test_predictor_outputs_match_reference_for_reference_detections(parity_case, densepose_outputs):
    ref, out = parity_case.ref, densepose_outputs
    for name in RAW_OUTPUTS:
        ours = getattr(out, name)
        assert tuple(ours.shape) == tuple(ref[f"dp_{name}_shape"]), name
        sampled = ours.flatten()[torch.from_numpy(ref[f"dp_{name}_idx"])].numpy()
        expected = ref[f"dp_{name}_val"]
        np.testing.assert_allclose(sampled, expected, rtol=0, atol=1e-3 * expected.std(), err_msg=name)
    coarse_equal = (out.coarse_segm.argmax(1).numpy() == ref["dp_coarse_argmax"]).mean()
    fine_equal = (out.fine_segm.argmax(1).numpy() == ref["dp_fine_argmax"]).mean()
    assert coarse_equal >= 0.999 and fine_equal >= 0.999, (coarse_equal, fine_equal)


def test_chart_labels_and_uv_match_reference(parity_case, densepose_outputs):
    ref = parity_case.ref
    results = chart_results(densepose_outputs, torch.from_numpy(ref["final_boxes"]))
    assert len(results) == len(ref["final_boxes"])
    for i, (labels, uv) in enumerate(results):
        expected = ref[f"final_{i}_labels"]
        assert labels.dtype == torch.uint8
        assert tuple(labels.shape) == expected.shape and tuple(uv.shape) == (2, *expected.shape)
        same = labels.numpy() == expected
        assert same.mean() >= 0.999, (i, same.mean())
        expected_uv = ref[f"final_{i}_uv"].astype(np.float32)  # stored as float16
        np.testing.assert_allclose(uv.numpy()[:, same], expected_uv[:, same], rtol=0, atol=2e-3)


def test_predictor_end_to_end_matches_reference(parity_case, parity_checkpoint):
    ref, meta, frame = parity_case.ref, parity_case.meta, parity_case.original_rgb
    # A checkpoint path goes through the same loader as a downloaded zoo file.
    predictor = Predictor(parity_case.cfg, parity_checkpoint(parity_case.config), device="cpu",
                          score_threshold=parity_case.score_thresh)
    [result] = predictor.predict(frame)

    assert len(result) == len(ref["final_boxes"]) == meta["num_detections"]
    np.testing.assert_allclose(result.boxes, ref["final_boxes"], rtol=0, atol=1.0)
    np.testing.assert_allclose(result.scores, ref["final_scores"], rtol=0, atol=1e-3)
    for i, labels in enumerate(result.labels):
        expected = ref[f"final_{i}_labels"]
        assert labels.shape == expected.shape, i
        assert (labels == expected).mean() >= 0.99, (i, (labels == expected).mean())
        assert result.uv[i].shape == (2, *expected.shape)
    assert result.part_map.shape == result.person_map.shape == frame.shape[:2]
    assert result.part_map.dtype == result.person_map.dtype == np.uint8
    # The full-frame maps are the per-box labels pasted by the documented rule.
    part_map, person_map = paste_charts([torch.from_numpy(lab) for lab in result.labels],
                                        torch.from_numpy(result.boxes), torch.from_numpy(result.scores),
                                        frame.shape[:2])
    np.testing.assert_array_equal(result.part_map, part_map.numpy())
    np.testing.assert_array_equal(result.person_map, person_map.numpy())
    assert set(np.unique(result.person_map)) <= set(range(len(result) + 1))
    assert ((result.part_map > 0) == (result.person_map > 0)).all()


def test_predictor_batch_of_two_frame_sizes_matches_reference(parity_case_for, parity_checkpoint):
    # Neon (800 x 1067 inside the network) and Invisible (800 x 806) frames in one batch:
    # the smaller one is padded to the larger, which must not change its results.
    cases = [parity_case_for("R_50_FPN_DL_s1x", image) for image in ("neon_1600x1200", "invisible_1088x1080")]
    assert cases[0].score_thresh != cases[1].score_thresh  # each case has its own threshold
    weights = read_checkpoint(parity_checkpoint("R_50_FPN_DL_s1x"))  # a state dict works as well as a path
    threshold = min(c.score_thresh for c in cases)
    # channels_last (the CUDA default) must not change results either.
    predictor = Predictor(cases[0].cfg, weights, device="cpu", score_threshold=threshold, batch_size=2,
                          channels_last=True)
    results = predictor.predict([c.original_rgb for c in cases])
    assert len(results) == 2
    for case, result in zip(cases, results):
        ref, n = case.ref, case.meta["num_detections"]
        # Padding to a larger input shifts scores by ~1e-5 (as in Detectron2), which may lift
        # a box that sat just under the case's threshold above it: allow only such boxes.
        assert len(result) >= n and (result.scores[n:] < case.score_thresh + 1e-4).all()
        np.testing.assert_allclose(result.boxes[:n], ref["final_boxes"], rtol=0, atol=1.0)
        for i in range(n):
            assert (result.labels[i] == ref[f"final_{i}_labels"]).mean() >= 0.99, (case.image, i)


# -- chart conversion and paste rule on hand-built cases --------------------------------------


def _output_from_labels(coarse_fg: torch.Tensor, fine: torch.Tensor, u: float = 0.25, v: float = 0.75,
                        size: int = 112, parts: int = 25) -> DensePoseOutput:
    """A one-detection output whose argmaxes are the given (size, size) maps."""
    coarse = torch.zeros(1, 2, size, size)
    coarse[0, 1] = coarse_fg.float() * 10 - 5
    fine_logits = torch.nn.functional.one_hot(fine.long(), parts).permute(2, 0, 1)[None].float() * 10
    uu = torch.full((1, parts, size, size), u) + torch.arange(parts).view(1, -1, 1, 1) * 0.01
    vv = torch.full((1, parts, size, size), v)
    return DensePoseOutput(coarse, fine_logits, uu, vv)


def test_int_box_truncates_origin_and_size_like_detectron2():
    assert int_box_xywh(torch.tensor([10.9, 20.2, 30.1, 25.0])) == (10, 20, 19, 4)
    # Width is truncated from x2 - x1, not int(x2) - int(x1); zero sizes become 1.
    assert int_box_xywh(torch.tensor([10.6, 5.0, 12.4, 5.5])) == (10, 5, 1, 1)


def test_chart_result_zeroes_labels_and_uv_where_coarse_says_background():
    fine = torch.full((112, 112), 7)
    coarse_fg = torch.zeros(112, 112, dtype=torch.bool)
    coarse_fg[:, 56:] = True
    labels, uv = chart_result(_output_from_labels(coarse_fg, fine), torch.tensor([0.0, 0.0, 112.0, 112.0]))
    assert labels.shape == (112, 112) and uv.shape == (2, 112, 112)
    assert (labels[:, :55] == 0).all() and (labels[:, 57:] == 7).all()
    assert (uv[:, :, :55] == 0).all()
    # U comes from the channel of the pixel's own label (7 -> 0.25 + 0.07).
    assert torch.allclose(uv[0, :, 57:], torch.tensor(0.32)) and torch.allclose(uv[1, :, 57:], torch.tensor(0.75))


def test_chart_result_resamples_to_the_integer_box_size():
    fine = torch.zeros(112, 112, dtype=torch.long)
    fine[:56] = 3
    fine[56:] = 4
    labels, _ = chart_result(_output_from_labels(torch.ones(112, 112, dtype=torch.bool), fine),
                             torch.tensor([5.5, 7.9, 45.4, 27.8]))
    assert labels.shape == (19, 39)
    assert (labels[:9] == 3).all() and (labels[10:] == 4).all()


def test_paste_lets_the_more_confident_detection_win_where_people_overlap():
    low = torch.full((10, 10), 2, dtype=torch.uint8)
    high = torch.full((10, 10), 5, dtype=torch.uint8)
    high[:, :3] = 0  # background inside the box does not erase the other person
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]])
    scores = torch.tensor([0.95, 0.8])  # detection 0 is the more confident one
    parts, persons = paste_charts([high, low], boxes, scores, (20, 20))
    assert parts[2, 2] == 0 and persons[2, 2] == 0  # high's own background
    assert parts[7, 7] == 5 and persons[7, 7] == 1  # overlap: the higher score wins
    assert parts[7, 12] == 2 and persons[7, 12] == 2  # only the low one covers it
    assert parts[12, 6] == 2 and persons[12, 6] == 2
    assert parts[16, 16] == 0 and persons[16, 16] == 0
    # The same detections in the other order paste the same way.
    parts2, persons2 = paste_charts([low, high], boxes.flip(0), scores.flip(0), (20, 20))
    swapped = torch.tensor([0, 2, 1], dtype=torch.uint8)[persons.long()]  # person ids follow the order given
    assert torch.equal(parts2, parts) and torch.equal(persons2, swapped)


def test_paste_clips_boxes_at_the_frame_edges():
    labels = torch.full((6, 8), 9, dtype=torch.uint8)
    boxes = torch.tensor([[-0.0, 0.0, 8.0, 6.0], [26.2, 16.5, 34.2, 22.5]])  # second overhangs 30 x 20
    parts, persons = paste_charts([labels, labels], boxes, torch.tensor([0.9, 0.8]), (20, 30))
    assert (parts[:6, :8] == 9).all() and (persons[:6, :8] == 1).all()
    assert (parts[16:, 26:] == 9).all() and (persons[16:, 26:] == 2).all()
    assert (parts > 0).sum() == 6 * 8 + 4 * 4


def test_paste_with_no_detections_gives_empty_maps():
    parts, persons = paste_charts([], torch.zeros(0, 4), torch.zeros(0), (4, 5))
    assert parts.shape == persons.shape == (4, 5) and not parts.any() and not persons.any()


# -- module structure -----------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_densepose_modules_have_the_checkpoint_names_and_shapes(parity_fixtures, config):
    manifest = json.loads((parity_fixtures / f"manifest_{config}.json").read_text())
    expected = {e["name"]: tuple(e["shape"]) for e in manifest["tensors"]}
    cfg = get_config(config)
    ours = {}
    for prefix, module in (("roi_heads.decoder.", build_decoder(cfg)),
                           ("roi_heads.densepose_head.", build_densepose_head(cfg)),
                           ("roi_heads.densepose_predictor.", build_densepose_predictor(cfg))):
        ours.update({prefix + k: tuple(v.shape) for k, v in module.state_dict().items()})
    wanted = {k: v for k, v in expected.items() if k.startswith(("roi_heads.decoder.", "roi_heads.dense"))}
    assert ours == wanted


def test_legacy_config_has_no_decoder_and_a_56_pixel_heatmap():
    cfg = get_config("R_50_FPN_s1x_legacy")
    assert build_decoder(cfg) is None
    out = build_densepose_predictor(cfg)(build_densepose_head(cfg)(torch.zeros(2, 256, 14, 14)))
    assert out.coarse_segm.shape == (2, 15, 56, 56) and out.fine_segm.shape == (2, 25, 56, 56)


def test_confidence_predictors_add_their_outputs_and_scale_segm_logits():
    torch.manual_seed(0)
    x = torch.randn(2, 512, 28, 28)
    plain = ChartPredictor()
    wc2m = ChartPredictor(uv_confidence="indep_aniso", segm_confidence=True)
    wc2m.load_state_dict(plain.state_dict(), strict=False)
    base, out = plain(x), wc2m(x)
    assert out.sigma_2.shape == out.kappa_u.shape == out.kappa_v.shape == (2, 25, 112, 112)
    assert out.fine_segm_confidence.shape == out.coarse_segm_confidence.shape == (2, 1, 112, 112)
    assert (out.fine_segm_confidence >= 0.01).all() and (out.coarse_segm_confidence >= 0.01).all()
    torch.testing.assert_close(out.fine_segm, base.fine_segm * out.fine_segm_confidence)
    torch.testing.assert_close(out.coarse_segm, base.coarse_segm * out.coarse_segm_confidence)
    torch.testing.assert_close(out.u, base.u)
    wc1 = ChartPredictor(uv_confidence="iid_iso")(x)
    assert wc1.sigma_2 is not None and wc1.kappa_u is None and wc1.fine_segm_confidence is None


def test_densepose_output_splits_per_image():
    out = DensePoseOutput(*(torch.arange(5.0).view(5, 1, 1, 1).expand(5, 2, 4, 4) for _ in range(4)))
    first, second, third = out.split([2, 0, 3])
    assert len(first) == 2 and len(second) == 0 and len(third) == 3
    assert third.u[0, 0, 0, 0] == 2 and second.sigma_2 is None


# -- predictor API --------------------------------------------------------------------------


def test_frames_are_accepted_as_one_frame_a_batch_or_a_list():
    frame = np.zeros((4, 6, 3), np.uint8)
    assert len(as_frame_list(frame)) == 1
    assert len(as_frame_list(np.zeros((3, 4, 6, 3), np.uint8))) == 3
    assert len(as_frame_list(torch.zeros(2, 4, 6, 3, dtype=torch.uint8))) == 2
    assert len(as_frame_list([frame, frame])) == 2
    with pytest.raises(DensePoseGazeError, match="expected"):
        as_frame_list(np.zeros((4, 6), np.uint8))


def test_unavailable_or_unknown_devices_are_user_errors():
    with pytest.raises(DensePoseGazeError, match="Unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DensePoseGazeError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_frame_without_people_gives_empty_results_also_inside_a_batch(parity_case_for, parity_checkpoint):
    case = parity_case_for("R_50_FPN_s1x", "invisible_1088x1080")
    # The synthetic weights score a grey frame at most ~0.9946 and this case's best two above 0.996.
    predictor = Predictor(case.cfg, read_checkpoint(parity_checkpoint(case.config)), device="cpu",
                          score_threshold=0.996, batch_size=2)
    empty, full = predictor.predict([np.full((120, 160, 3), 128, np.uint8), case.original_rgb])
    assert isinstance(empty, FrameResult) and len(empty) == 0
    assert empty.boxes.shape == (0, 4) and empty.scores.shape == (0,) and empty.labels == [] and empty.uv == []
    assert empty.part_map.shape == (120, 160) and not empty.part_map.any() and not empty.person_map.any()
    assert len(full) == 2 and full.part_map.any()
    np.testing.assert_allclose(full.boxes, case.ref["final_boxes"][:2], rtol=0, atol=1.0)


def test_weights_of_another_config_are_refused_with_the_config_they_fit(parity_checkpoint):
    weights = read_checkpoint(parity_checkpoint("R_50_FPN_s1x"))
    with pytest.raises(DensePoseGazeError, match="R_50_FPN_s1x"):
        Predictor("R_50_FPN_DL_s1x", weights, device="cpu")


def test_bfloat16_autocast_runs_end_to_end(parity_case_for, parity_checkpoint):
    # CPU autocast stands in for the CUDA default: every op must accept half-precision inputs.
    # The synthetic weights' scores lie within 1e-2 of each other, so bfloat16 may pick other
    # boxes than float32: check the structure, not the values.
    case = parity_case_for("R_50_FPN_DL_s1x", "invisible_1088x1080")
    # Small: on CPUs without bfloat16 units PyTorch runs these convolutions on its slow reference
    # kernel (minutes for a full frame and its ~100 detections, ~30 s per detection in the DensePose
    # head alone); every op still sees bfloat16 inputs with a small frame and the head on one detection.
    predictor = Predictor(case.cfg, read_checkpoint(parity_checkpoint(case.config)), device="cpu",
                          precision="bfloat16", score_threshold=0.98, min_size=128, max_size=213)
    assert predictor.dtype == torch.bfloat16
    [result] = predictor.predict(case.original_rgb, box_filters=[lambda boxes, scores: np.arange(len(boxes)) < 1])
    assert len(result) > 0 and result.boxes.dtype == np.float32
    with_parts = result.with_parts if result.with_parts is not None else np.ones(len(result), bool)
    assert with_parts.sum() == 1
    for box, labels, uv, parts in zip(result.boxes, result.labels, result.uv, with_parts):
        if not parts:
            continue
        _, _, w, h = int_box_xywh(torch.from_numpy(box))
        assert labels.shape == (h, w) and uv.shape == (2, h, w) and uv.dtype == np.float32
    assert result.part_map.any() and ((result.part_map > 0) == (result.person_map > 0)).all()
