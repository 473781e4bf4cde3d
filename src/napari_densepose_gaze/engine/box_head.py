"""Fast R-CNN box head for the single "person" class, and Detectron2's test-time box inference.

``BoxHead`` / ``BoxPredictor`` hold the checkpoint's ``roi_heads.box_head.fc1/fc2``
and ``roi_heads.box_predictor.cls_score/bbox_pred``; :func:`box_inference`
mirrors fast_rcnn_inference and :func:`scale_to_original` detector_postprocess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from napari_densepose_gaze.engine.rpn import Box2BoxTransform, clip_boxes, nonempty_boxes

__all__ = [
    "Detections",
    "BoxHead",
    "BoxPredictor",
    "BOX_DELTA_WEIGHTS",
    "box_inference",
    "scale_to_original",
    "scale_to_original_keep",
]

BOX_DELTA_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
NUM_CLASSES = 1  # DensePose detects people only


@dataclass
class Detections:
    """Detected people in one image, best first."""

    boxes: torch.Tensor  # (R, 4) x1, y1, x2, y2 in the coordinates of ``image_size``
    scores: torch.Tensor  # (R,)
    classes: torch.Tensor  # (R,) int64, always 0 (person)
    image_size: tuple[int, int]  # (h, w) the boxes refer to

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: torch.Tensor | slice) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.classes[index], self.image_size)


class BoxHead(nn.Module):
    """Two fully connected layers with ReLU over flattened pooled features."""

    def __init__(self, in_channels: int = 256, pooler_resolution: int = 7, fc_dim: int = 1024) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels * pooler_resolution**2, fc_dim)
        self.fc2 = nn.Linear(fc_dim, fc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, start_dim=1)
        return F.relu(self.fc2(F.relu(self.fc1(x))))


class BoxPredictor(nn.Module):
    """Class logits (person, background) and class-agnostic box deltas."""

    def __init__(self, in_features: int = 1024, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, 4 * num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


def _inference_single_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_size: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk: int,
) -> Detections:
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    if not bool(valid.all()):
        boxes, scores = boxes[valid], scores[valid]
    scores = scores[:, :-1]  # the last column is background
    num_reg = boxes.shape[1] // 4
    boxes = clip_boxes(boxes.reshape(-1, 4), image_size).view(-1, num_reg, 4)
    keep_mask = scores > score_thresh  # (R, K)
    where = keep_mask.nonzero()
    boxes = boxes[where[:, 0], 0] if num_reg == 1 else boxes[keep_mask]
    scores = scores[keep_mask]
    keep = batched_nms(boxes.float(), scores, where[:, 1], nms_thresh)
    if topk >= 0:
        keep = keep[:topk]
    return Detections(boxes[keep], scores[keep], where[keep, 1], tuple(image_size))


def box_inference(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    proposal_boxes: Sequence[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    score_thresh: float,
    nms_thresh: float = 0.5,
    topk: int = 100,
) -> list[Detections]:
    """Scores, decoded and clipped boxes, threshold, per-class NMS and top-k, per image.

    ``class_logits``/``box_deltas`` are the predictor outputs for all images' proposals
    concatenated in the order of ``proposal_boxes``.
    """
    counts = [len(b) for b in proposal_boxes]
    boxes = Box2BoxTransform(BOX_DELTA_WEIGHTS).apply_deltas(box_deltas, torch.cat(list(proposal_boxes)))
    probs = F.softmax(class_logits.float(), dim=-1)  # a no-op in float32; keeps fp16 runs exact enough
    return [
        _inference_single_image(b, p, size, score_thresh, nms_thresh, topk)
        for b, p, size in zip(boxes.split(counts), probs.split(counts), image_sizes)
    ]


def scale_to_original(detections: Detections, original_size: tuple[int, int]) -> Detections:
    """Detections in the original frame's pixels: scale, clip, drop empty (detector_postprocess)."""
    return scale_to_original_keep(detections, original_size)[0]


def scale_to_original_keep(detections: Detections, original_size: tuple[int, int]) -> tuple[Detections, torch.Tensor]:
    """:func:`scale_to_original`, and the mask of the detections it kept (for their DensePose outputs)."""
    out_h, out_w = original_size
    in_h, in_w = detections.image_size
    boxes = detections.boxes.float().clone()  # float32 even when the heads ran in bf16
    boxes[:, 0::2] *= out_w / in_w
    boxes[:, 1::2] *= out_h / in_h
    boxes = clip_boxes(boxes, (out_h, out_w))
    keep = nonempty_boxes(boxes)
    return Detections(boxes[keep], detections.scores[keep], detections.classes[keep], (out_h, out_w)), keep
