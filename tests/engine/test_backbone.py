"""The pyramid's top-down path adds the upsampled coarser level exactly as Detectron2's interpolation does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_densepose_gaze.engine.backbone import add_upsampled_2x

LAYOUTS = {"nchw": torch.contiguous_format, "channels-last": torch.channels_last}


@pytest.mark.parametrize("merged_layout", LAYOUTS)
@pytest.mark.parametrize("top_layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(1, 256, 25, 34), (2, 8, 7, 9), (1, 1, 1, 1), (3, 5, 1, 6)])
def test_the_top_down_add_is_nearest_2x_upsampling_bit_for_bit(merged_layout, top_layout, shape):
    generator = torch.Generator().manual_seed(sum(shape))
    n, c, h, w = shape
    top = torch.randn(shape, generator=generator).contiguous(memory_format=LAYOUTS[top_layout])
    merged = torch.randn((n, c, 2 * h, 2 * w), generator=generator).contiguous(memory_format=LAYOUTS[merged_layout])
    expected = merged + F.interpolate(top, scale_factor=2.0, mode="nearest")
    out = add_upsampled_2x(merged, top)
    assert out is merged  # in place
    assert torch.equal(out, expected)


def test_levels_not_twice_the_size_fail_as_the_interpolation_does():
    with pytest.raises(RuntimeError):
        add_upsampled_2x(torch.zeros(1, 4, 9, 10), torch.zeros(1, 4, 4, 5))
