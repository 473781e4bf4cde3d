"""A model prepared for inference computes what the loaded model computes, up to float round-off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_densepose_gaze.engine.backbone import ConvFrozenBN, build_resnet_fpn
from napari_densepose_gaze.engine.densepose_head import DeepLabHead
from napari_densepose_gaze.engine.inference import fold_frozen_batch_norms, prepare_for_inference
from napari_densepose_gaze.engine.winograd import use_winograd_convolutions, winograd_available


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and batch-norm statistics, so that folding has something to fold."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in module.state_dict().items():
        if name.endswith("running_var"):
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
        elif tensor.is_floating_point():
            fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
            tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
    return module.eval().requires_grad_(False)


def test_folded_batch_norms_leave_no_norm_and_keep_the_backbone_features():
    backbone = _randomise(build_resnet_fpn(50))
    images = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = backbone(images)
        folded = fold_frozen_batch_norms(backbone)
        got = backbone(images)
    assert folded == 53  # stem, 16 blocks x 3, 4 shortcuts
    assert not any(isinstance(m, ConvFrozenBN) for m in backbone.modules())
    for level, value in expected.items():
        torch.testing.assert_close(got[level], value, rtol=0, atol=1e-4 * float(value.std()), msg=level)


@pytest.mark.skipif(not winograd_available(), reason="this PyTorch build has no NNPACK")
def test_winograd_convolutions_match_the_direct_ones_for_images_and_batches():
    head = _randomise(DeepLabHead())
    rois = torch.randn(3, 256, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = head(rois)
        # 8 body convolutions; the ASPP's dilated 3x3 convolutions keep the direct path.
        assert use_winograd_convolutions(head) == 8
        batched = head(rois)
        alone = head(rois[1:2])
    scale = float(expected.std())
    torch.testing.assert_close(batched, expected, rtol=0, atol=1e-4 * scale)
    torch.testing.assert_close(alone, expected[1:2], rtol=0, atol=1e-4 * scale)


# One case per path a 3x3 convolution can take on the CPU (engine/winograd.py chooses by shape and format):
# a small map (matrix products), a wide channels-last map or any NCHW map (NNPACK), a narrow
# channels-last map (oneDNN's direct convolution).
_PATH_CASES = {
    "small map": (8, (20, 24), True),
    "small NCHW map": (8, (20, 24), False),
    "wide channels-last map": (256, (70, 60), True),
    "NCHW map": (8, (70, 60), False),
    "narrow channels-last map": (8, (70, 60), True),
}


@pytest.mark.parametrize("case", sorted(_PATH_CASES))
@pytest.mark.parametrize("nchw_out", [False, True])
def test_winograd_convolutions_keep_their_input_format_or_give_nchw_when_asked(case, nchw_out):
    channels, size, channels_last = _PATH_CASES[case]
    conv = _randomise(nn.Conv2d(channels, 16, 3, padding=1))
    x = torch.randn(2, channels, *size, generator=torch.Generator().manual_seed(5))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = torch.nn.functional.conv2d(x.contiguous(), conv.weight, conv.bias, padding=1)
        use_winograd_convolutions(conv, nchw_out=nchw_out)
        got = conv(x)
    wanted = torch.contiguous_format if nchw_out or not channels_last else torch.channels_last
    assert got.is_contiguous(memory_format=wanted)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * float(expected.std()))


def test_a_backbone_prepared_for_the_cpu_gives_the_same_nchw_pyramid():
    backbone = _randomise(build_resnet_fpn(50))
    # 288 x 320: the stride-4 level is large enough for NNPACK, the coarser ones take the products.
    images = torch.randn(1, 3, 288, 320, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        expected = backbone(images)
        prepare_for_inference(backbone, torch.device("cpu"))
        got = backbone(images)
    for level, value in expected.items():
        assert got[level].is_contiguous(), level  # the RPN and the RoI poolers read NCHW
        torch.testing.assert_close(got[level], value, rtol=0, atol=1e-4 * float(value.std()), msg=level)


@pytest.mark.parametrize("size", [(28, 28), (13, 17), (1, 6)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_winograd_matrix_products_match_the_direct_convolution_also_where_tiles_overhang(size, with_bias):
    conv = _randomise(nn.Conv2d(24, 40, 3, padding=1, bias=with_bias))
    x = torch.randn(3, 24, *size, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = conv(x)
        assert use_winograd_convolutions(conv, batched=True) == 1
        got = conv(x)
        alone = conv(x[2:])  # one map takes the per-image path
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * float(expected.std()))
    torch.testing.assert_close(alone, expected[2:], rtol=0, atol=1e-4 * float(expected.std()))


def test_winograd_weights_follow_a_weight_changed_in_place():
    conv = _randomise(nn.Conv2d(8, 8, 3, padding=1))
    use_winograd_convolutions(conv, batched=True)
    x = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        conv(x)  # transforms the weights once
        conv.weight.mul_(2.0)
        got = conv(x)
        expected = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * float(expected.std()))


def test_preparing_for_a_gpu_folds_batch_norms_but_keeps_the_direct_convolutions():
    backbone = _randomise(build_resnet_fpn(50))
    prepare_for_inference(backbone, torch.device("cuda"))  # nothing runs: only the choice is made
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert not any(isinstance(m, ConvFrozenBN) for m in convs)
    assert not any("_conv_forward" in vars(m) for m in convs)


def test_aspp_branch_wider_than_the_roi_is_its_centre_tap():
    from napari_densepose_gaze.engine.densepose_head import _AtrousConv

    conv = _randomise(_AtrousConv(16, 8, 3, padding=56, dilation=56, bias=False))
    x = torch.randn(2, 16, 28, 28)
    with torch.inference_mode():
        direct = torch.nn.functional.conv2d(x, conv.weight, None, padding=56, dilation=56)
        torch.testing.assert_close(conv(x), direct, rtol=0, atol=1e-5)
        wider = torch.randn(1, 16, 60, 60)  # taps inside the map: the full convolution
        full = torch.nn.functional.conv2d(wider, conv.weight, None, padding=56, dilation=56)
        torch.testing.assert_close(conv(wider), full, rtol=0, atol=0)
