"""From raw chart predictor outputs to per-box IUV results and full-frame maps.

The per-box conversion is Detectron2 DensePose's chart-result converter
(``densepose_chart_predictor_output_to_result``): the box in original-image
coordinates is turned into integers as ``x, y, w, h = int(x1), int(y1),
int(x2 - x1), int(y2 - y1)`` (truncation, ``w, h >= 1``); the 112x112 maps are
resampled bilinearly (``align_corners=False``) to ``(h, w)``; a pixel's label is
the fine argmax where the coarse argmax says "person" (> 0), else 0; U and V come
from the channel of the pixel's label, 0 on background. Like Detectron2, U and V
are not clamped: a trained model keeps them in about [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from napari_densepose_gaze.engine.densepose_head import DensePoseOutput

__all__ = ["int_box_xywh", "chart_result", "chart_results", "paste_charts"]


def int_box_xywh(box_xyxy: torch.Tensor) -> tuple[int, int, int, int]:
    """Detectron2's integer box: the xywh box (computed in the box's dtype) truncated."""
    box = box_xyxy.detach().reshape(4)
    xywh = torch.stack([box[0], box[1], box[2] - box[0], box[3] - box[1]])
    x, y, w, h = (int(v) for v in xywh.long().tolist())
    return x, y, max(w, 1), max(h, 1)


def _resample(maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
    # Float32 whatever the network ran in, so labels don't depend on autocast round-off here.
    return F.interpolate(maps.float(), (h, w), mode="bilinear", align_corners=False)[0]


def chart_result(output: DensePoseOutput, box_xyxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels ``(h, w)`` uint8 and UV ``(2, h, w)`` float32 of one detection.

    ``output`` holds that one detection (batch size 1); ``box_xyxy`` is its box in
    the coordinates of the original image.
    """
    _, _, w, h = int_box_xywh(box_xyxy)
    coarse = _resample(output.coarse_segm, h, w).argmax(dim=0)
    labels = _resample(output.fine_segm, h, w).argmax(dim=0) * (coarse > 0)
    index = labels.unsqueeze(0)
    u = _resample(output.u, h, w).gather(0, index)[0]
    v = _resample(output.v, h, w).gather(0, index)[0]
    uv = torch.stack([u, v]) * (labels > 0)
    return labels.to(torch.uint8), uv


def chart_results(
    output: DensePoseOutput, boxes_xyxy: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`chart_result` for each of N detections, boxes ``(N, 4)`` in original coordinates."""
    return [chart_result(output[i], boxes_xyxy[i]) for i in range(len(boxes_xyxy))]


def paste_charts(
    labels: Sequence[torch.Tensor],
    boxes_xyxy: torch.Tensor,
    scores: torch.Tensor,
    frame_hw: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-frame part map and person map ``(H, W)`` uint8 from per-box labels.

    Detection i's labels cover ``[y, y + h) x [x, x + w)`` with ``x, y, w, h`` from
    :func:`int_box_xywh` (the box origin is ``int()`` of x1, y1, as in Detectron2's
    mask converter), clipped to the frame. Only foreground pixels (label > 0) are
    written, in ascending score order, so where two people's parts overlap the more
    confident detection wins. The person map holds ``i + 1`` for detection i (in the
    given order), 0 where nobody is.
    """
    height, width = frame_hw
    device = boxes_xyxy.device
    part_map = torch.zeros((height, width), dtype=torch.uint8, device=device)
    person_map = torch.zeros((height, width), dtype=torch.uint8, device=device)
    if len(labels) > 255:
        raise ValueError(f"{len(labels)} detections do not fit a uint8 person map (at most 255)")
    # Stable sort keeps the given order among equal scores, so the result is deterministic.
    order = torch.sort(scores.detach().float().cpu(), stable=True).indices.tolist()
    for i in order:
        x, y, w, h = int_box_xywh(boxes_xyxy[i])
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, width), min(y + h, height)
        if x1 <= x0 or y1 <= y0:
            continue
        patch = labels[i][y0 - y : y1 - y, x0 - x : x1 - x].to(device)
        person = patch > 0
        part_map[y0:y1, x0:x1][person] = patch[person]
        person_map[y0:y1, x0:x1][person] = i + 1
    return part_map, person_map
