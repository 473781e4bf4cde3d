"""DensePose R-CNN assembled from its parts, with Detectron2's module tree.

``DensePoseRCNN(cfg).state_dict()`` has exactly the keys of the model-zoo
checkpoint for ``cfg``. The stages are separate methods so that they can be run
and checked one at a time: :meth:`features`, :meth:`proposals`, :meth:`detect`,
:meth:`densepose`; :meth:`forward` chains them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from napari_densepose_gaze.engine.backbone import build_resnet_fpn
from napari_densepose_gaze.engine.box_head import BoxHead, BoxPredictor, Detections, box_inference
from napari_densepose_gaze.engine.pooler import RoIPooler
from napari_densepose_gaze.engine.rpn import RPN, Proposals
from napari_densepose_gaze.engine.zoo import ModelConfig

__all__ = ["DensePoseRCNN", "ROIHeads", "ROI_FEATURES", "DETECTION_PREFIXES", "IGNORED_CHECKPOINT_KEYS"]

ROI_FEATURES = ("p2", "p3", "p4", "p5")
_ROI_STRIDES = (4, 8, 16, 32)
BOX_POOLER_RESOLUTION = 7
# Base-DensePose-RCNN-FPN.yaml: both poolers are the legacy ROIAlign (not V2), sampling ratio 2.
POOLER_ALIGNED = False
POOLER_SAMPLING_RATIO = 2
BOX_NMS_THRESH = 0.5
DETECTIONS_PER_IMAGE = 100

# Checkpoint entries of the detection half; everything else belongs to the DensePose branch.
DETECTION_PREFIXES = ("backbone.", "proposal_generator.", "roi_heads.box_head.", "roi_heads.box_predictor.")
# Non-learned entries some Detectron2 versions saved; the engine rebuilds them itself.
IGNORED_CHECKPOINT_KEYS = ("pixel_mean", "pixel_std", "proposal_generator.anchor_generator.")


class ROIHeads(nn.Module):
    """Box branch (``box_head``, ``box_predictor``) and DensePose branch of the checkpoint's ``roi_heads``."""

    def __init__(self, cfg: ModelConfig, with_densepose: bool = True) -> None:
        super().__init__()
        self.box_pooler = RoIPooler(BOX_POOLER_RESOLUTION, _ROI_STRIDES, POOLER_SAMPLING_RATIO, POOLER_ALIGNED)
        self.box_head = BoxHead(256, BOX_POOLER_RESOLUTION)
        self.box_predictor = BoxPredictor(1024)
        self.with_densepose = with_densepose
        self.decoder: nn.Module | None = None
        if with_densepose:
            from napari_densepose_gaze.engine import densepose_head as dp

            self.decoder = dp.build_decoder(cfg)
            # With the decoder, DensePose pools from its single stride-4 map.
            strides = _ROI_STRIDES[:1] if self.decoder is not None else _ROI_STRIDES
            self.densepose_pooler = RoIPooler(cfg.pooler_resolution, strides, POOLER_SAMPLING_RATIO, POOLER_ALIGNED)
            self.densepose_head = dp.build_densepose_head(cfg)
            self.densepose_predictor = dp.build_densepose_predictor(cfg)


class DensePoseRCNN(nn.Module):
    """DensePose R-CNN for inference; ``with_densepose=False`` builds the detector only."""

    def __init__(self, cfg: ModelConfig, with_densepose: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_resnet_fpn(cfg.depth)
        self.proposal_generator = RPN(256)
        self.roi_heads = ROIHeads(cfg, with_densepose)
        self.requires_grad_(False)
        self.eval()

    # -- weights -----------------------------------------------------------------------------

    def load_weights(self, weights: Mapping[str, np.ndarray | torch.Tensor]) -> None:
        """Load a checkpoint's model dict (numpy or torch), strictly: every key must match.

        A detector-only model takes just the detection entries of a full checkpoint.
        """
        state = {}
        for name, value in weights.items():
            if name.startswith(IGNORED_CHECKPOINT_KEYS):
                continue
            if not self.roi_heads.with_densepose and not name.startswith(DETECTION_PREFIXES):
                continue
            state[name] = torch.as_tensor(value)
        self.load_state_dict(state, strict=True)

    # -- stages ------------------------------------------------------------------------------

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """FPN maps p2..p6 of a padded (N, 3, H, W) input batch."""
        return self.backbone(images)

    def proposals(
        self, features: Mapping[str, torch.Tensor], image_sizes: Sequence[tuple[int, int]]
    ) -> list[Proposals]:
        """Up to 1000 RPN proposals per image, in resized-image coordinates, best first."""
        return self.proposal_generator(features, image_sizes)

    def detect(
        self,
        features: Mapping[str, torch.Tensor],
        proposals: Sequence[Proposals | torch.Tensor],
        image_sizes: Sequence[tuple[int, int]],
        score_thresh: float,
    ) -> list[Detections]:
        """People found among each image's proposals (boxes or :class:`Proposals`), best first.

        Boxes are in resized-image coordinates; map them to the frame with
        :func:`~napari_densepose_gaze.engine.box_head.scale_to_original`.
        """
        boxes = [p.boxes if isinstance(p, Proposals) else p for p in proposals]
        maps = [features[name] for name in ROI_FEATURES]
        heads = self.roi_heads
        pooled = heads.box_pooler(maps, boxes)
        class_logits, box_deltas = heads.box_predictor(heads.box_head(pooled))
        return box_inference(
            class_logits, box_deltas, boxes, image_sizes, score_thresh, BOX_NMS_THRESH, DETECTIONS_PER_IMAGE
        )

    def densepose(self, features: Mapping[str, torch.Tensor], boxes: Sequence[torch.Tensor | Detections]):
        """Raw chart predictor outputs for every box of every image (images in order)."""
        from napari_densepose_gaze.engine.densepose_head import run_densepose

        boxes = [b.boxes if isinstance(b, Detections) else b for b in boxes]
        heads = self.roi_heads
        return run_densepose(
            [features[name] for name in ROI_FEATURES],
            boxes,
            heads.densepose_pooler,
            heads.densepose_head,
            heads.densepose_predictor,
            heads.decoder,
        )

    def forward(self, images: torch.Tensor, image_sizes: Sequence[tuple[int, int]], score_thresh: float):
        """Detections (resized coordinates) per image, and the DensePose outputs of all of them.

        Returns ``(detections, densepose)``; ``densepose`` is None for a detector-only
        model, else one output for all detections, to be split with
        ``densepose.split([len(d) for d in detections])``.
        """
        features = self.features(images)
        detections = self.detect(features, self.proposals(features, image_sizes), image_sizes, score_thresh)
        if not self.roi_heads.with_densepose:
            return detections, None
        return detections, self.densepose(features, detections)
