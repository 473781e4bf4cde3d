"""The :class:`~napari_densepose_gaze.engine.predictor.Predictor` interface backed by Detectron2.

Uses ``detectron2`` and its DensePose project (``densepose``) when both are
installed, e.g. to cross-check the built-in engine or to run a model it does not
know. Both are imported only when a :class:`Detectron2Predictor` is made.

The Detectron2 config is built from a :class:`ModelConfig` field by field (the
DensePose yaml files are not part of the ``densepose`` package): the values of
``Base-DensePose-RCNN-FPN.yaml`` plus the head, decoder and confidence options.
Weights are read with the package's safe checkpoint reader, not with pickle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import torch

from napari_densepose_gaze.engine.chart import paste_charts
from napari_densepose_gaze.engine.defaults import DEFAULT_SCORE_THRESHOLD, MAX_SIZE_TEST, MIN_SIZE_TEST
from napari_densepose_gaze.engine.predictor import (
    Device,
    Frame,
    FrameResult,
    Frames,
    Precision,
    Weights,
    as_frame_list,
    engine_settings,
)
from napari_densepose_gaze.engine.zoo import DEFAULT_MODEL, ModelConfig
from napari_densepose_gaze.errors import DensePoseGazeError

__all__ = ["Detectron2Predictor", "detectron2_available", "build_detectron2_config"]

# Non-learned buffers some Detectron2 versions keep in the state dict.
_BUFFERS = ("pixel_mean", "pixel_std")


def detectron2_available() -> bool:
    """Whether both ``detectron2`` and ``densepose`` can be imported."""
    try:
        _import_detectron2()
    except DensePoseGazeError:
        return False
    return True


def _import_detectron2() -> dict[str, Any]:
    try:
        from densepose import add_densepose_config
        from densepose.converters import ToChartResultConverter
        from detectron2.config import get_cfg
        from detectron2.data import transforms as T
        from detectron2.modeling import build_model
    except ImportError as exc:
        raise DensePoseGazeError(
            f"The Detectron2 engine needs the packages 'detectron2' and 'densepose', which cannot be "
            f"imported here ({exc}). Install detectron2 (https://detectron2.readthedocs.io) and its "
            "DensePose project (pip install 'git+https://github.com/facebookresearch/detectron2"
            "@main#subdirectory=projects/DensePose'), or use the built-in engine (Predictor)."
        ) from exc
    return {
        "add_densepose_config": add_densepose_config,
        "ToChartResultConverter": ToChartResultConverter,
        "get_cfg": get_cfg,
        "T": T,
        "build_model": build_model,
    }


def build_detectron2_config(cfg: ModelConfig, device: str, score_threshold: float) -> Any:
    """A frozen Detectron2 ``CfgNode`` equal to the zoo yaml of ``cfg``."""
    d2 = _import_detectron2()
    node = d2["get_cfg"]()
    d2["add_densepose_config"](node)
    m = node.MODEL
    m.META_ARCHITECTURE = "GeneralizedRCNN"
    m.DEVICE = device
    m.BACKBONE.NAME = "build_resnet_fpn_backbone"
    m.RESNETS.DEPTH = cfg.depth
    m.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    m.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    m.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    m.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    m.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    m.RPN.PRE_NMS_TOPK_TEST = 1000
    m.RPN.POST_NMS_TOPK_TEST = 1000
    m.DENSEPOSE_ON = True
    m.ROI_HEADS.NAME = "DensePoseROIHeads"
    m.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    m.ROI_HEADS.NUM_CLASSES = 1
    m.ROI_HEADS.SCORE_THRESH_TEST = score_threshold
    m.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    m.ROI_BOX_HEAD.NUM_FC = 2
    m.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    m.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 2
    m.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlign"
    dp = m.ROI_DENSEPOSE_HEAD
    dp.NAME = "DensePoseDeepLabHead" if cfg.head == "deeplab" else "DensePoseV1ConvXHead"
    dp.POOLER_TYPE = "ROIAlign"
    dp.POOLER_RESOLUTION = cfg.pooler_resolution
    dp.HEATMAP_SIZE = cfg.heatmap_size
    dp.NUM_COARSE_SEGM_CHANNELS = cfg.coarse_channels
    dp.NUM_PATCHES = cfg.fine_channels - 1
    dp.DECODER_ON = cfg.decoder
    dp.UV_CONFIDENCE.ENABLED = cfg.uv_confidence != "none"
    if cfg.uv_confidence != "none":
        dp.UV_CONFIDENCE.TYPE = cfg.uv_confidence
    dp.SEGM_CONFIDENCE.ENABLED = cfg.segm_confidence
    node.INPUT.FORMAT = "BGR"
    node.INPUT.MIN_SIZE_TEST = MIN_SIZE_TEST
    node.INPUT.MAX_SIZE_TEST = MAX_SIZE_TEST
    node.freeze()
    return node


class Detectron2Predictor:
    """Same constructor and :meth:`predict` as the built-in ``Predictor``, run by Detectron2."""

    def __init__(
        self,
        cfg_or_name: ModelConfig | str = DEFAULT_MODEL,
        weights: Weights = None,
        device: Device | str | torch.device = "auto",
        precision: Precision | str = "auto",
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        batch_size: int | None = None,
    ) -> None:
        self._d2 = _import_detectron2()
        self.cfg, self.device, self.dtype, threshold, self.batch_size = engine_settings(
            cfg_or_name, device, precision, score_threshold, batch_size
        )
        if self.device.type == "mps":
            raise DensePoseGazeError("The Detectron2 engine runs on 'cpu' or 'cuda', not 'mps'.")
        self.d2_cfg = build_detectron2_config(self.cfg, str(self.device), threshold)
        self.model = self._d2["build_model"](self.d2_cfg)
        self.model.eval()
        self.score_threshold = threshold  # also sets it on the built model's box predictor
        self._load(weights)
        self._resize = self._d2["T"].ResizeShortestEdge(
            [self.d2_cfg.INPUT.MIN_SIZE_TEST] * 2, self.d2_cfg.INPUT.MAX_SIZE_TEST
        )

    @property
    def score_threshold(self) -> float:
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self._score_threshold = float(value)
        model = getattr(self, "model", None)
        if model is not None:  # Detectron2 reads it from the box predictor at test time
            model.roi_heads.box_predictor.test_score_thresh = self._score_threshold

    def _load(self, weights: Weights) -> None:
        from napari_densepose_gaze.engine.checkpoint import check_checkpoint_matches
        from napari_densepose_gaze.engine.predictor import _load_state

        state, source = _load_state(self.cfg, weights)
        check_checkpoint_matches(state, self.cfg, source)
        tensors = {k: torch.as_tensor(np.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in state.items()}
        result = self.model.load_state_dict(tensors, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith(_BUFFERS)]
        unexpected = [k for k in result.unexpected_keys if not k.endswith(_BUFFERS)]
        if missing or unexpected:
            raise DensePoseGazeError(
                f"The weights do not fit Detectron2's {self.cfg.name} model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}. Pass the checkpoint of that config."
            )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _input(self, frame: Frame) -> dict[str, Any]:
        # DefaultPredictor's steps: BGR uint8 HxWx3 -> ResizeShortestEdge -> float CHW tensor.
        rgb = frame.cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
        if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise DensePoseGazeError(
                f"A video frame has shape {rgb.shape} and dtype {rgb.dtype}; the engine needs RGB "
                "frames as uint8 arrays of shape (height, width, 3)."
            )
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        resized = self._resize.get_transform(bgr).apply_image(bgr)
        image = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        return {"image": image, "height": rgb.shape[0], "width": rgb.shape[1]}

    @torch.inference_mode()
    def _predict_batch(self, frames: list[Frame]) -> list[FrameResult]:
        inputs = [self._input(f) for f in frames]
        with self._autocast():
            outputs = self.model(inputs)
        return [self._frame_result(o["instances"], (i["height"], i["width"])) for o, i in zip(outputs, inputs)]

    def _frame_result(self, instances: Any, frame_hw: tuple[int, int]) -> FrameResult:
        boxes = instances.pred_boxes.tensor.float()
        scores = instances.scores.float()
        labels, uv = [], []
        if len(instances) and instances.has("pred_densepose"):
            converter = self._d2["ToChartResultConverter"]
            dense = instances.pred_densepose
            for i in range(len(instances)):
                chart = converter.convert(dense[i], instances.pred_boxes[[i]])
                labels.append(chart.labels.to(torch.uint8))
                uv.append(chart.uv.float())
        part_map, person_map = paste_charts(labels, boxes, scores, frame_hw)
        return FrameResult(
            boxes=boxes.cpu().numpy().reshape(-1, 4),
            scores=scores.cpu().numpy().reshape(-1),
            labels=[lab.cpu().numpy() for lab in labels],
            uv=[u.cpu().numpy() for u in uv],
            part_map=part_map.cpu().numpy(),
            person_map=person_map.cpu().numpy(),
        )

    def iter_predict(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        iterator = iter(frames)
        while chunk := list(islice(iterator, self.batch_size)):
            yield from self._predict_batch(chunk)

    def predict(self, frames: Frames) -> list[FrameResult]:
        """One :class:`FrameResult` per frame; ``frames`` is one RGB uint8 frame or several."""
        return list(self.iter_predict(as_frame_list(frames)))
