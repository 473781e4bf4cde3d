"""Multi-level RoIAlign (Detectron2's ROIPooler) over feature maps.

The DensePose zoo configs pool with the legacy ``ROIAlign`` (``aligned=False``, no
half-pixel shift) and sampling ratio 2, for the box head and the DensePose head
alike (Base-DensePose-RCNN-FPN.yaml); ``ROIAlignV2`` is ``aligned=True``.

A box goes to the FPN level that matches its size, as in the FPN paper:
``floor(4 + log2(sqrt(area) / 224 + 1e-8))`` clamped to the levels given.

On the CPU, a level with many boxes (the box head's ~1000 proposals) is pooled from a
channels-last copy of its map (:mod:`~napari_densepose_gaze.engine.roi_align_cl`), bit
for bit what torchvision's RoIAlign gives: on the 2-core benchmark machine 244 ms
against 273 ms per frame for the synthetic checkpoint's proposals, 149 ms against
639 ms for as many boxes spread over the frame (the closing note of issue 13).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import roi_align

from napari_densepose_gaze.engine.roi_align_cl import roi_align_channels_last

__all__ = ["RoIPooler", "assign_boxes_to_levels", "boxes_to_rois"]

CANONICAL_BOX_SIZE = 224
CANONICAL_LEVEL = 4
#: From this many boxes on a CPU level is pooled channels-last: below, its map's copy costs more than it saves.
MIN_BOXES_CHANNELS_LAST = 64


def assign_boxes_to_levels(
    boxes: torch.Tensor,
    min_level: int,
    max_level: int,
    canonical_box_size: int = CANONICAL_BOX_SIZE,
    canonical_level: int = CANONICAL_LEVEL,
) -> torch.Tensor:
    """Index (0 = ``min_level``) of the pyramid level each (R, 4) box is pooled from."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # the 1e-8 keeps boxes of exactly canonical size from flooring one level down
    levels = torch.floor(canonical_level + torch.log2(torch.sqrt(area) / canonical_box_size + 1e-8))
    return levels.clamp(min=min_level, max=max_level).to(torch.int64) - min_level


def boxes_to_rois(boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image (Ri, 4) boxes -> (sum Ri, 5) rows of (image index, x1, y1, x2, y2)."""
    device, dtype = boxes[0].device, boxes[0].dtype
    sizes = torch.tensor([len(b) for b in boxes], device=device)
    index = torch.repeat_interleave(torch.arange(len(boxes), dtype=dtype, device=device), sizes)
    return torch.cat([index[:, None], torch.cat(list(boxes), dim=0)], dim=1)


class RoIPooler(nn.Module):
    """RoIAlign over one or several feature maps (``aligned=True`` is Detectron2's ROIAlignV2).

    ``strides`` are the maps' strides, finest first (4, 8, 16, 32 for p2..p5, or a
    single stride for one map such as the DensePose decoder output).
    """

    def __init__(self, output_size: int, strides: Sequence[int], sampling_ratio: int, aligned: bool) -> None:
        super().__init__()
        self.aligned = aligned
        self.output_size = (output_size, output_size)
        self.scales = tuple(1.0 / s for s in strides)
        self.sampling_ratio = sampling_ratio
        self.min_level = int(round(math.log2(strides[0])))
        self.max_level = int(round(math.log2(strides[-1])))
        if self.max_level - self.min_level + 1 != len(strides):
            raise ValueError(f"strides must be consecutive powers of two, got {tuple(strides)}")

    def _pool(self, feature: torch.Tensor, rois: torch.Tensor, level: int) -> torch.Tensor:
        # Box coordinates stay float32 (half precision is 0.5 px coarse at x = 1000);
        # half-precision maps are pooled in float32 and handed back in their own dtype.
        if (feature.device.type == "cpu" and feature.dtype == torch.float32 and self.sampling_ratio > 0
                and len(rois) >= MIN_BOXES_CHANNELS_LAST):
            return roi_align_channels_last(
                feature, rois, self.output_size, self.scales[level], self.sampling_ratio, self.aligned
            )
        pooled = roi_align(
            feature.to(rois.dtype),
            rois,
            self.output_size,
            spatial_scale=self.scales[level],
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        )
        return pooled.to(feature.dtype)

    def forward(self, features: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Pool (sum Ri, C, S, S) from ``features`` (one map per stride) for per-image boxes."""
        if len(features) != len(self.scales):
            raise ValueError(f"expected {len(self.scales)} feature maps, got {len(features)}")
        rois = boxes_to_rois(boxes).float()
        if len(self.scales) == 1:
            levels = torch.zeros(len(rois), dtype=torch.int64, device=rois.device)
        else:
            levels = assign_boxes_to_levels(rois[:, 1:], self.min_level, self.max_level)
        jobs = [(level, torch.nonzero(levels == level, as_tuple=True)[0]) for level in range(len(features))]
        jobs = [(level, index) for level, index in jobs if index.numel()]
        if len(jobs) == 1 and jobs[0][1].numel() == len(rois):
            return self._pool(features[jobs[0][0]], rois, jobs[0][0])
        output = features[0].new_empty((rois.shape[0], features[0].shape[1], *self.output_size))
        if sum(index.numel() for _, index in jobs) != len(rois):
            output.zero_()  # a box of no level (a non-finite one) pools zeros, as it always did
        for level, index in jobs:
            output.index_put_((index,), self._pool(features[level], rois[index], level))
        return output
