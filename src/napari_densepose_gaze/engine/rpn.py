"""Region proposal network: anchors, RPN head, box deltas and test-time proposal selection.

Follows Detectron2's StandardRPNHead / RPN / find_top_rpn_proposals at test time,
including its order of operations (per-level top-k, clip, drop empty boxes,
NMS per level, global top-k), because the proposal order feeds the box head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

__all__ = [
    "Proposals",
    "Box2BoxTransform",
    "AnchorGenerator",
    "RPNHead",
    "RPN",
    "clip_boxes",
    "nonempty_boxes",
    "select_top_proposals",
]

# log(1000/16): the largest width/height change a delta may ask for.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


@dataclass
class Proposals:
    """RPN output for one image, in resized-image coordinates, best first."""

    boxes: torch.Tensor  # (R, 4) x1, y1, x2, y2
    logits: torch.Tensor  # (R,) objectness logits
    image_size: tuple[int, int]  # (h, w) of the resized image


def clip_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Clamp x to [0, w] and y to [0, h]."""
    h, w = image_size
    x1 = boxes[:, 0].clamp(min=0, max=w)
    y1 = boxes[:, 1].clamp(min=0, max=h)
    x2 = boxes[:, 2].clamp(min=0, max=w)
    y2 = boxes[:, 3].clamp(min=0, max=h)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def nonempty_boxes(boxes: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Mask of boxes whose width and height both exceed ``threshold``."""
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)


class Box2BoxTransform:
    """Detectron2's (dx, dy, dw, dh) box parametrisation, decoding only."""

    def __init__(self, weights: tuple[float, float, float, float], scale_clamp: float = DEFAULT_SCALE_CLAMP):
        self.weights = weights
        self.scale_clamp = scale_clamp

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode (R, 4k) deltas relative to (R, 4) boxes into (R, 4k) boxes."""
        deltas = deltas.float()  # exp() of half-precision deltas overflows too early
        boxes = boxes.to(deltas.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = (deltas[:, 2::4] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[:, 3::4] / wh).clamp(max=self.scale_clamp)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        x1 = pred_ctr_x - 0.5 * pred_w
        y1 = pred_ctr_y - 0.5 * pred_h
        x2 = pred_ctr_x + 0.5 * pred_w
        y2 = pred_ctr_y + 0.5 * pred_h
        return torch.stack((x1, y1, x2, y2), dim=-1).reshape(deltas.shape)


class AnchorGenerator(nn.Module):
    """One anchor size per level, three aspect ratios, anchors centred on pixel corners (offset 0)."""

    def __init__(
        self,
        sizes: Sequence[float] = (32, 64, 128, 256, 512),
        strides: Sequence[int] = (4, 8, 16, 32, 64),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        # Cell anchors are computed in Python doubles and rounded once to float32, as Detectron2 does.
        self._cell_anchors = [self._cell(size, aspect_ratios) for size in sizes]
        self.num_anchors = len(aspect_ratios)
        self._cache: dict[tuple, list[torch.Tensor]] = {}

    @staticmethod
    def _cell(size: float, aspect_ratios: Sequence[float]) -> list[list[float]]:
        anchors = []
        for ratio in aspect_ratios:
            w = math.sqrt(size**2 / ratio)
            h = ratio * w
            anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        return anchors

    def forward(self, grid_sizes: Sequence[tuple[int, int]], device: torch.device) -> list[torch.Tensor]:
        """Anchors per level, (H*W*A, 4) float32, ordered (y, x, anchor)."""
        key = (tuple(grid_sizes), str(device))
        if key not in self._cache:
            self._cache.clear()  # frames of one video share one size; keep just the latest
            self._cache[key] = [
                self._grid_anchors(cell, stride, size, device)
                for cell, stride, size in zip(self._cell_anchors, self.strides, grid_sizes)
            ]
        return self._cache[key]

    @staticmethod
    def _grid_anchors(
        cell: list[list[float]], stride: int, grid_size: tuple[int, int], device: torch.device
    ) -> torch.Tensor:
        height, width = grid_size
        shifts_x = torch.arange(0, width * stride, step=stride, dtype=torch.float32, device=device)
        shifts_y = torch.arange(0, height * stride, step=stride, dtype=torch.float32, device=device)
        shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
        shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
        shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
        base = torch.tensor(cell, dtype=torch.float32, device=device)
        return (shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4)


class RPNHead(nn.Module):
    """Shared 3x3 conv + ReLU, then objectness logits and box deltas per anchor."""

    def __init__(self, in_channels: int = 256, num_anchors: int = 3, box_dim: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.objectness_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(in_channels, num_anchors * box_dim, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = [], []
        for x in features:
            t = F.relu_(self.conv(x))
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas


def select_top_proposals(
    proposals: Sequence[torch.Tensor],
    logits: Sequence[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    nms_thresh: float = 0.7,
    pre_nms_topk: int = 1000,
    post_nms_topk: int = 1000,
    min_box_size: float = 0.0,
) -> list[Proposals]:
    """Detectron2's test-time find_top_rpn_proposals.

    ``proposals[l]`` is (N, Hl*Wl*A, 4) decoded boxes and ``logits[l]`` is (N, Hl*Wl*A).
    """
    device = proposals[0].device
    batch_idx = torch.arange(len(image_sizes), device=device)
    top_scores, top_boxes, level_ids = [], [], []
    for level, (boxes_l, logits_l) in enumerate(zip(proposals, logits)):
        k = min(int(logits_l.shape[1]), pre_nms_topk)
        scores_l, idx = logits_l.topk(k, dim=1)
        top_scores.append(scores_l)
        top_boxes.append(boxes_l[batch_idx[:, None], idx])
        level_ids.append(torch.full((k,), level, dtype=torch.int64, device=device))
    scores_all = torch.cat(top_scores, dim=1)
    boxes_all = torch.cat(top_boxes, dim=1)
    levels_all = torch.cat(level_ids, dim=0)

    results = []
    for n, image_size in enumerate(image_sizes):
        boxes, scores, levels = boxes_all[n], scores_all[n], levels_all
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        if not bool(valid.all()):
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        boxes = clip_boxes(boxes, image_size)  # clip first: a box may become empty only once clipped
        keep = nonempty_boxes(boxes, min_box_size)
        if not bool(keep.all()):
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        # Detectron2 casts to float for NMS (fp16 lacks the range for the level offsets).
        keep = batched_nms(boxes.float(), scores.float(), levels, nms_thresh)[:post_nms_topk]
        results.append(Proposals(boxes[keep], scores[keep], tuple(image_size)))
    return results


class RPN(nn.Module):
    """Proposal generator over p2..p6; the checkpoint's ``proposal_generator``."""

    in_features = ("p2", "p3", "p4", "p5", "p6")

    def __init__(self, in_channels: int = 256) -> None:
        super().__init__()
        self.anchor_generator = AnchorGenerator()
        self.rpn_head = RPNHead(in_channels, self.anchor_generator.num_anchors)
        self.box2box_transform = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
        self.nms_thresh = 0.7
        self.pre_nms_topk = 1000
        self.post_nms_topk = 1000

    def forward(
        self, features: dict[str, torch.Tensor], image_sizes: Sequence[tuple[int, int]]
    ) -> list[Proposals]:
        maps = [features[name] for name in self.in_features]
        anchors = self.anchor_generator([tuple(m.shape[-2:]) for m in maps], maps[0].device)
        raw_logits, raw_deltas = self.rpn_head(maps)
        num = maps[0].shape[0]
        # (N, A, H, W) -> (N, H*W*A), matching the (y, x, anchor) anchor order.
        logits = [x.permute(0, 2, 3, 1).flatten(1) for x in raw_logits]
        proposals = []
        for anchors_l, deltas_l in zip(anchors, raw_deltas):
            _, _, h, w = deltas_l.shape
            deltas_l = deltas_l.view(num, -1, 4, h, w).permute(0, 3, 4, 1, 2).reshape(-1, 4)
            boxes = self.box2box_transform.apply_deltas(deltas_l, anchors_l.repeat(num, 1))
            proposals.append(boxes.view(num, -1, 4))
        return select_top_proposals(
            proposals, logits, image_sizes, self.nms_thresh, self.pre_nms_topk, self.post_nms_topk
        )
