"""The DensePose decoder computed around the boxes equals the whole map where the pooler reads."""

from __future__ import annotations

import pytest
import torch

from napari_densepose_gaze.engine.decoder_windows import (
    decode_for_boxes,
    decode_in_windows,
    merge_windows,
    pooled_window,
)
from napari_densepose_gaze.engine.densepose_head import FPNDecoder
from napari_densepose_gaze.engine.pooler import RoIPooler

STRIDES = (4, 8, 16, 32)


@pytest.fixture(scope="module")
def decoder() -> FPNDecoder:
    torch.manual_seed(0)
    module = FPNDecoder(channels=16).eval().requires_grad_(False)
    for p in module.parameters():
        p.copy_(torch.randn(p.shape) / (p[0].numel() ** 0.5 if p.dim() > 1 else 1.0))
    return module


def _features(height: int, width: int, batch: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(batch, 16, height // s, width // s, generator=generator) for s in STRIDES]


def test_every_window_of_the_decoder_equals_the_whole_map_there_even_at_the_borders(decoder):
    features = _features(256, 320)
    with torch.inference_mode():
        full = decoder(features)
        # Map corners, interior, single pixels, thin strips; the map is 64 x 80.
        windows = [(0, 10, 0, 12), (5, 17, 33, 61), (40, 64, 71, 80), (31, 32, 0, 1), (13, 50, 7, 9), (0, 64, 79, 80)]
        partial = decode_in_windows(decoder, features, windows)
    for y0, y1, x0, x1 in windows:
        torch.testing.assert_close(partial[..., y0:y1, x0:x1], full[..., y0:y1, x0:x1], rtol=0, atol=1e-5)
    assert partial[..., 20:30, 20:30].abs().max() == 0  # nothing is computed outside the windows


def test_roi_align_reads_the_same_values_from_the_windowed_and_the_whole_map(decoder):
    features = _features(256, 320, batch=2)
    boxes = [torch.tensor([[0.0, 0.0, 40.0, 70.0], [250.3, 100.7, 320.0, 256.0], [120.2, 30.9, 121.0, 31.5]]),
             torch.tensor([[10.5, 200.25, 90.75, 255.5]])]
    pooler = RoIPooler(28, STRIDES[:1], sampling_ratio=2, aligned=False)
    with torch.inference_mode():
        expected = pooler([decoder(features)], boxes)
        got = pooler([decode_for_boxes(decoder, features, boxes, stride=4)], boxes)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_boxes_covering_most_of_the_frame_decode_the_whole_map(decoder):
    features = _features(128, 128)
    with torch.inference_mode():
        got = decode_for_boxes(decoder, features, [torch.tensor([[0.0, 0.0, 127.0, 127.0]])], stride=4)
        torch.testing.assert_close(got, decoder(features), rtol=0, atol=0)


def test_a_window_covers_every_pixel_roi_align_reads_with_a_pixel_to_spare():
    # Rows 1..3 and columns 2..6 are sampled (each sample reads its floor and the pixel after).
    assert pooled_window((8.0, 4.0, 24.0, 12.0), 4, (100, 100)) == (0, 6, 1, 9)
    # A box narrower than a pixel still samples one pixel's extent; the map's edge clips.
    assert pooled_window((396.5, 0.0, 397.0, 0.5), 4, (100, 100)) == (0, 4, 98, 100)


def test_overlapping_windows_merge_when_their_union_costs_no_more():
    assert merge_windows([(0, 10, 0, 10), (0, 10, 5, 15), (50, 60, 50, 60)]) == [(0, 10, 0, 15), (50, 60, 50, 60)]
    assert merge_windows([(0, 10, 0, 10), (20, 30, 20, 30)]) == [(0, 10, 0, 10), (20, 30, 20, 30)]
    assert merge_windows([(5, 5, 0, 10)]) == []
