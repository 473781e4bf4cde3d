"""The channels-last RoIAlign gives torchvision's values bit for bit, and the fast NCHW copy is a plain copy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.ops import roi_align

from napari_densepose_gaze.engine import roi_align_cl
from napari_densepose_gaze.engine.roi_align_cl import roi_align_channels_last
from napari_densepose_gaze.engine.winograd import nchw_copy


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous().view(torch.int32)  # tells -0.0 from +0.0, unlike ==


@st.composite
def pooling_cases(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    images = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 6))
    height, width = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    feature = torch.randn(images, channels, height, width, generator=generator)
    sign = draw(st.sampled_from(["mixed", "relu", "negative"]))  # zeros and all-negative maps give signed zeros
    if sign == "relu":
        feature = feature.clamp(min=0)
    elif sign == "negative":
        feature = -feature.abs()
    scale = draw(st.sampled_from([1.0, 0.5, 0.25, 1 / 8, 1 / 3, 0.3]))
    count = draw(st.integers(0, 12))
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) / scale * 1.5 - 8 / scale
    side = torch.rand(count, 2, generator=generator) * draw(st.sampled_from([0.0, 0.5, 4.0, 40.0])) / scale
    boxes = torch.cat([corner, corner + side], dim=1)
    if draw(st.booleans()):
        boxes = boxes.round()  # sample points on pixel centres and map edges
    rois = torch.cat([torch.randint(0, images, (count, 1), generator=generator).float(), boxes], dim=1)
    output = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return feature, rois, output, scale, draw(st.integers(1, 3)), draw(st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pooling_cases())
def test_channels_last_roi_align_is_torchvision_bit_for_bit(case):
    feature, rois, output, scale, sampling_ratio, aligned = case
    expected = roi_align(feature, rois, output, scale, sampling_ratio, aligned)
    for layout in (torch.contiguous_format, torch.channels_last):
        got = roi_align_channels_last(feature.contiguous(memory_format=layout), rois, output, scale,
                                      sampling_ratio, aligned)
        assert got.shape == expected.shape and got.is_contiguous()
        assert torch.equal(_bits(got), _bits(expected))


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_boxes_give_the_same_values_whatever_the_chunk_they_are_gathered_in(monkeypatch, chunk):
    generator = torch.Generator().manual_seed(3)
    feature = torch.randn(1, 8, 50, 68, generator=generator)
    corner = torch.rand(40, 2, generator=generator) * 250
    rois = torch.cat([torch.zeros(40, 1), corner, corner + torch.rand(40, 2, generator=generator) * 90], dim=1)
    expected = roi_align(feature, rois, (7, 7), 0.25, 2, False)
    monkeypatch.setattr(roi_align_cl, "BOXES_PER_CHUNK", chunk)
    assert torch.equal(_bits(roi_align_channels_last(feature, rois, (7, 7), 0.25, 2, False)), _bits(expected))


def test_boxes_outside_the_map_or_not_finite_pool_zeros():
    feature = torch.randn(1, 3, 10, 10) + 5  # no zeros of its own
    rois = torch.tensor([[0, 100.0, 100, 120, 120], [0, -50, -50, -20, -20], [0, float("nan"), 0, 5, 5],
                         [0, 0, float("inf"), 5, 5]])
    pooled = roi_align_channels_last(feature, rois, (2, 2), 1.0, 2, False)
    assert torch.equal(_bits(pooled), _bits(torch.zeros_like(pooled)))


def test_an_adaptive_sampling_ratio_is_refused():
    with pytest.raises(ValueError, match="sampling ratio"):
        roi_align_channels_last(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), (2, 2), 1.0, 0, False)


@pytest.mark.parametrize("shape", [(1, 256, 20, 27), (2, 5, 3, 7), (3, 2, 1, 9), (1, 4, 6, 1)])
def test_the_fast_nchw_copy_is_a_plain_copy_of_any_layout(shape):
    x = torch.randn(shape)
    for layout in (torch.contiguous_format, torch.channels_last):
        source = x.contiguous(memory_format=layout)
        copied = nchw_copy(source)
        assert copied.is_contiguous() and torch.equal(copied, x)
        if source.is_contiguous():
            assert copied.data_ptr() == source.data_ptr()  # already NCHW: no copy, as .contiguous()
