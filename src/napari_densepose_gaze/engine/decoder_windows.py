"""The DensePose FPN decoder evaluated only where the RoI pooler will read it.

The decoder turns p2..p5 into one stride-4 map over the whole frame (about as many
multiply-adds as the ResNet trunk), but the DensePose pooler then samples that map
inside the detections' boxes only. Every step of the decoder is local (3x3
convolutions, bilinear x2 upsampling, a sum, a 1x1 convolution), so each output
pixel depends on a small neighbourhood of its inputs: computing the map on a window
around each box, from input windows one pixel wider per step, gives the same values
there as the full map (up to float round-off of the convolution algorithm) while the
rest of the map, which nothing reads, stays zero.

A window is ``(y0, y1, x0, x1)``, half-open, in pixels of the map it refers to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "Window",
    "WINDOWED_AREA_LIMIT",
    "pooled_window",
    "merge_windows",
    "decode_in_windows",
    "decode_for_boxes",
]

Window = tuple[int, int, int, int]

# Above this share of the map the windows (with their margins and per-window calls)
# cost about as much as the whole map, which is then decoded in one go.
WINDOWED_AREA_LIMIT = 0.6


def _axis_window(start: float, end: float, scale: float, size: int) -> tuple[int, int]:
    """Pixels that legacy RoIAlign (aligned=False) reads for ``[start, end]`` on a map of ``size`` pixels.

    Samples lie in ``[start * scale, start * scale + max(extent, 1)]``; each reads its
    floor and the pixel after. One more pixel each side absorbs float round-off.
    """
    low = start * scale
    extent = max((end - start) * scale, 1.0)
    first = math.floor(max(low, 0.0)) - 1
    last = math.floor(low + extent) + 2
    return max(first, 0), min(max(last + 1, 1), size)


def pooled_window(box: Sequence[float], stride: int, map_hw: tuple[int, int]) -> Window:
    """The window of a stride-``stride`` map that RoIAlign reads for one xyxy ``box`` (input pixels)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    y0, y_end = _axis_window(y1, y2, 1.0 / stride, map_hw[0])
    x0, x_end = _axis_window(x1, x2, 1.0 / stride, map_hw[1])
    return y0, y_end, x0, x_end


def _area(w: Window) -> int:
    return max(w[1] - w[0], 0) * max(w[3] - w[2], 0)


def _union(a: Window, b: Window) -> Window:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def merge_windows(windows: Sequence[Window]) -> list[Window]:
    """Fewer windows covering the same pixels: two merge when their bounding window is no larger than both."""
    merged = [w for w in windows if _area(w) > 0]
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                union = _union(merged[i], merged[j])
                if _area(union) <= _area(merged[i]) + _area(merged[j]):
                    merged[i] = union
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


# -- one decoder step on a window -------------------------------------------------------------
# Each step maps the window it must produce to the window of its input it needs, and
# to where the wanted output sits in what it produces from that input window.


def _conv_input(out: tuple[int, int], size: int) -> tuple[tuple[int, int], int]:
    """A size-preserving 3x3 convolution (padding 1): one pixel of real input each side where there is one."""
    low, high = max(out[0] - 1, 0), min(out[1] + 1, size)
    return (low, high), out[0] - low


def _upsample_input(out: tuple[int, int], size: int) -> tuple[tuple[int, int], int]:
    """Bilinear x2 with align_corners=False: output o reads input max(0, (o - 1) // 2) and the one after.

    The input window keeps one extra pixel each side (where the map has one), so that
    PyTorch's clamping at the window's edge never applies inside the wanted output.
    """
    first = max((out[0] - 1) // 2, 0)
    last = max((out[1] - 2) // 2, 0) + 1
    low, high = max(first - 1, 0), min(last + 2, size)
    return (low, high), out[0] - 2 * low


def _run_path(steps: nn.Sequential, feature: torch.Tensor, window: Window) -> torch.Tensor:
    """One level's stack of convolutions and upsamplings, producing ``window`` of its output."""
    plans = []
    rows, cols = (window[0], window[1]), (window[2], window[3])
    height, width = int(feature.shape[-2]), int(feature.shape[-1])
    sizes = []
    for step in steps:  # map sizes at each step's input
        sizes.append((height, width))
        if isinstance(step, nn.Upsample):
            height, width = 2 * height, 2 * width
    for step, (h, w) in zip(reversed(list(steps)), reversed(sizes)):
        planner = _upsample_input if isinstance(step, nn.Upsample) else _conv_input
        (rows_in, row_skip), (cols_in, col_skip) = planner(rows, h), planner(cols, w)
        plans.append((rows, cols, row_skip, col_skip))
        rows, cols = rows_in, cols_in
    plans.reverse()
    x = feature[:, :, rows[0] : rows[1], cols[0] : cols[1]]
    for step, (rows_out, cols_out, row_skip, col_skip) in zip(steps, plans):
        x = step(x)
        x = x[:, :, row_skip : row_skip + rows_out[1] - rows_out[0], col_skip : col_skip + cols_out[1] - cols_out[0]]
    return x


def decode_in_windows(decoder: nn.Module, features: Sequence[torch.Tensor], windows: Sequence[Window]) -> torch.Tensor:
    """The decoder's output for one image (batch of 1), computed inside ``windows`` only, zero elsewhere.

    ``decoder`` is an :class:`~napari_densepose_gaze.engine.densepose_head.FPNDecoder`;
    ``features`` its input maps in the order of its levels; windows refer to its output
    (the finest map's grid).
    """
    finest = features[0]
    out = None
    for window in windows:
        summed = None
        for level, feature in zip(decoder.levels, features, strict=True):
            part = _run_path(getattr(decoder, level), feature, window)
            summed = part if summed is None else summed + part
        decoded = decoder.predictor(summed)
        if out is None:
            out = decoded.new_zeros((finest.shape[0], decoded.shape[1], *finest.shape[-2:]))
        out[:, :, window[0] : window[1], window[2] : window[3]] = decoded
    if out is None:  # no window: nothing will be pooled
        out = finest.new_zeros((finest.shape[0], decoder.predictor.out_channels, *finest.shape[-2:]))
    return out


def decode_for_boxes(
    decoder: nn.Module, features: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor], stride: int
) -> torch.Tensor:
    """The decoder's output for a batch, correct wherever a stride-``stride`` RoIAlign of ``boxes`` reads.

    ``boxes[i]`` are image i's ``(N_i, 4)`` xyxy boxes in input pixels. Images whose
    windows would cover most of the map are decoded whole, and so is a batch on a GPU,
    where the whole map costs less than the many small calls of the windows.
    """
    finest = features[0]
    if finest.device.type != "cpu":
        return decoder(list(features))
    map_hw = (int(finest.shape[-2]), int(finest.shape[-1]))
    limit = WINDOWED_AREA_LIMIT * map_hw[0] * map_hw[1]
    outputs = []
    for i, image_boxes in enumerate(boxes):
        maps = [f[i : i + 1] for f in features]
        windows = merge_windows([pooled_window(b, stride, map_hw) for b in image_boxes.tolist()])
        if sum(_area(w) for w in windows) > limit:
            outputs.append(decoder(maps))
        else:
            outputs.append(decode_in_windows(decoder, maps, windows))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
