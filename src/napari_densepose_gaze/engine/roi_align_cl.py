"""RoIAlign on a channels-last map with torchvision's own arithmetic: the same values, bit for bit.

torchvision's CPU RoIAlign walks one channel plane at a time, so every sample reads
four values a plane apart from the last: for the box head's ~1000 proposals on the
stride-4 map that is cache misses all the way (0.3-0.4 s per frame on the 2-core
benchmark machine, on one thread or two). On a channels-last map the four corners
of a sample are four rows of contiguous channels, so a whole chunk of boxes is one
gather and a few element-wise passes over PyTorch's threads.

Every float is computed as torchvision's ``roi_align_kernel.cpp`` computes it: the
sample coordinates ``start + p * bin + ((i + .5) * bin) / grid``, the clamping at the
map's edges, the weights ``hy * hx``..., the sum ``((w1 v1 + w2 v2) + w3 v3) + w4 v4``
per sample, the samples added in row order onto zero, then one division by their
count. Only a fixed sampling ratio (every DensePose zoo config: 2) takes this path.
"""

from __future__ import annotations

import torch

__all__ = ["roi_align_channels_last", "BOXES_PER_CHUNK"]

#: Boxes gathered at once: their samples (4 corners x 196 x 256 channels, 3 MB) stay in the cache.
BOXES_PER_CHUNK = 4


def _sample_axis(start: torch.Tensor, bin_size: torch.Tensor, bins: int, grid: int, extent: int):
    """Per box (R,), bin p and sample i of one axis: (valid, low, high, l, h), each (R, grid, bins)."""
    f32 = torch.float32
    p = torch.arange(bins, dtype=f32, device=start.device)[None, None, :]
    i = (torch.arange(grid, dtype=f32, device=start.device) + 0.5)[None, :, None]
    s, b = start[:, None, None], bin_size[:, None, None]
    v = (s + p * b) + (i * b) / float(grid)
    valid = (v >= -1.0) & (v <= extent)
    v = torch.where(v <= 0, 0.0, v)
    low = v.to(torch.int64)  # truncation, as the C cast (v >= 0 here)
    edge = low >= extent - 1
    low = torch.where(edge, extent - 1, low)
    high = torch.where(edge, low, low + 1)
    v = torch.where(edge, low.to(f32), v)
    lo = v - low.to(f32)
    return valid, low, high, lo, 1.0 - lo


def roi_align_channels_last(
    feature: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """``torchvision.ops.roi_align`` of a float32 (N, C, H, W) CPU map for (R, 5) rois, as (R, C, Ph, Pw).

    ``feature`` is best channels-last (else it is copied to it); ``sampling_ratio``
    must be positive. The result is contiguous (NCHW), as torchvision's.
    """
    if sampling_ratio <= 0:
        raise ValueError("roi_align_channels_last needs a fixed sampling ratio (> 0)")
    feature = feature.contiguous(memory_format=torch.channels_last)
    n, channels, height, width = feature.shape
    pooled_h, pooled_w = output_size
    grid = sampling_ratio
    count = len(rois)
    out = feature.new_empty((count, channels, pooled_h, pooled_w))
    if count == 0:
        return out
    rois = rois.float()
    # The kernel takes the scale as a float; the legacy version makes every box at least 1x1.
    scale = torch.tensor(spatial_scale, dtype=torch.float32)
    offset = 0.5 if aligned else 0.0
    start = rois[:, 1:3] * scale - offset  # x, y
    end = rois[:, 3:5] * scale - offset
    size = end - start if aligned else (end - start).clamp(min=1.0)
    bin_x = size[:, 0] / float(pooled_w)
    bin_y = size[:, 1] / float(pooled_h)
    vy, y_low, y_high, ly, hy = _sample_axis(start[:, 1], bin_y, pooled_h, grid, height)
    vx, x_low, x_high, lx, hx = _sample_axis(start[:, 0], bin_x, pooled_w, grid, width)

    # Samples ordered (box, sample row, sample column, bin row, bin column), so that each
    # of a bin's samples is one contiguous slice when they are added up.
    def ys(t: torch.Tensor) -> torch.Tensor:
        return t[:, :, None, :, None]

    def xs(t: torch.Tensor) -> torch.Tensor:
        return t[:, None, :, None, :]

    valid = ys(vy) & xs(vx)
    image = rois[:, 0].to(torch.int64)[:, None, None, None, None] * (height * width)
    weights = torch.stack(
        [torch.where(valid, a, 0.0) for a in (ys(hy) * xs(hx), ys(hy) * xs(lx), ys(ly) * xs(hx), ys(ly) * xs(lx))],
        dim=1,
    )
    # An out-of-map sample reads the image's first pixel with weight 0, as the kernel does.
    index = torch.stack(
        [torch.where(valid, image + ys(y) * width + xs(x), image)
         for y, x in ((y_low, x_low), (y_low, x_high), (y_high, x_low), (y_high, x_high))],
        dim=1,
    )
    samples = grid * grid
    bins = pooled_h * pooled_w
    weights = weights.reshape(count, 4, samples * bins, 1)
    index = index.reshape(count, 4 * samples * bins)
    pixels = feature.permute(0, 2, 3, 1).reshape(n * height * width, channels)  # a view
    for first in range(0, count, BOXES_PER_CHUNK):
        last = min(first + BOXES_PER_CHUNK, count)
        values = pixels.index_select(0, index[first:last].reshape(-1)).view(last - first, 4, samples * bins, channels)
        values.mul_(weights[first:last])
        per_sample = values[:, 0].add_(values[:, 1]).add_(values[:, 2]).add_(values[:, 3])
        per_sample = per_sample.view(last - first, samples, bins, channels)
        total = per_sample[:, 0].add_(0.0)  # onto zero, as the kernel starts: -0.0 becomes +0.0
        for k in range(1, samples):
            total.add_(per_sample[:, k])
        # written through a transposed view: the chunk is still in the cache
        torch.div(total, float(samples), out=out[first:last].view(last - first, channels, bins).transpose(1, 2))
    return out
