"""The user-facing DensePose predictor: RGB frames in, body-part maps out.

>>> predictor = Predictor("R_50_FPN_DL_s1x")            # zoo weights, downloaded once
>>> [result] = predictor.predict(frame)                  # frame: (H, W, 3) uint8 RGB
>>> result.part_map[y, x], result.person_map[y, x]       # part id 0..24, person 0..N

On CUDA it runs batches under autocast (bfloat16, or float16 where the GPU lacks
bfloat16) with channels-last memory; on CPU (and Apple's MPS) in float32, where it
computes what Detectron2 computes (see tests/engine/test_parity_densepose.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Literal

import numpy as np
import torch

from napari_densepose_gaze.engine.box_head import scale_to_original_keep
from napari_densepose_gaze.engine.chart import chart_results, paste_charts
from napari_densepose_gaze.engine.checkpoint import check_checkpoint_matches, read_checkpoint
from napari_densepose_gaze.engine.defaults import DEFAULT_SCORE_THRESHOLD, MAX_SIZE_TEST, MIN_SIZE_TEST
from napari_densepose_gaze.engine.densepose_head import DensePoseOutput
from napari_densepose_gaze.engine.inference import prepare_for_inference
from napari_densepose_gaze.engine.model import DensePoseRCNN
from napari_densepose_gaze.engine.preprocess import preprocess
from napari_densepose_gaze.engine.zoo import DEFAULT_MODEL, ModelConfig, get_config
from napari_densepose_gaze.errors import DensePoseGazeError

__all__ = [
    "FrameResult",
    "Predictor",
    "Frames",
    "resolve_device",
    "resolve_precision",
    "engine_settings",
    "as_frame_list",
    "frame_result",
    "BoxFilter",
]

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "float32", "bfloat16", "float16"]
Frame = np.ndarray | torch.Tensor
Frames = Frame | Sequence[Frame]
Weights = str | os.PathLike | Mapping[str, np.ndarray | torch.Tensor] | None

#: Which detections of a frame get body parts: boxes (N, 4) x1, y1, x2, y2 in frame pixels, scores (N,) -> (N,) bool.
BoxFilter = Callable[[np.ndarray, np.ndarray], np.ndarray]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class FrameResult:
    """DensePose result of one frame; N detections, best first, in frame pixels.

    ``labels[i]`` (h_i, w_i) uint8 and ``uv[i]`` (2, h_i, w_i) float32 cover
    detection i's box as Detectron2's chart result does (origin ``int(x1), int(y1)``,
    size ``int(x2 - x1), int(y2 - y1)``). ``part_map`` holds part ids 0..24 and
    ``person_map`` i + 1 for detection i (0 = nobody) over the whole frame.
    A detection a box filter left out (``with_parts[i]`` False) has empty
    ``labels[i]`` (0, 0) and ``uv[i]`` (2, 0, 0) and no pixels in the maps.
    """

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32
    labels: list[np.ndarray]
    uv: list[np.ndarray]
    part_map: np.ndarray  # (H, W) uint8
    person_map: np.ndarray  # (H, W) uint8
    with_parts: np.ndarray | None = None  # (N,) bool: which detections got body parts; None: all

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; asking for a missing one is an error."""
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise DensePoseGazeError(f"Unknown device {name!r}: use auto, cpu, cuda (or cuda:N) or mps.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DensePoseGazeError(
            "Device 'cuda' was asked for, but PyTorch sees no CUDA GPU here. "
            "Use device 'auto' or 'cpu', or install a CUDA build of PyTorch."
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DensePoseGazeError("Device 'mps' was asked for, but it is not available; use 'auto' or 'cpu'.")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype: ``auto`` is bfloat16 on CUDA (float16 without bf16 support), else float32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if precision not in _DTYPES:
        raise DensePoseGazeError(f"Unknown precision {precision!r}: use auto, float32, bfloat16 or float16.")
    dtype = _DTYPES[precision]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DensePoseGazeError("This GPU does not support bfloat16; use precision 'float16' or 'auto'.")
    return dtype


def as_frame_list(frames: Frames) -> list[Frame]:
    """One frame (H, W, 3), a batch (N, H, W, 3) or a sequence of frames, as a list."""
    if isinstance(frames, (np.ndarray, torch.Tensor)):
        if frames.ndim == 3:
            return [frames]
        if frames.ndim == 4:
            return list(frames)
        raise DensePoseGazeError(
            f"Frames have shape {tuple(frames.shape)}; expected (height, width, 3) for one RGB frame "
            "or (n, height, width, 3) for a batch."
        )
    return list(frames)


def frame_result(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    output: DensePoseOutput | None,
    frame_hw: tuple[int, int],
    with_parts: torch.Tensor | None = None,
) -> FrameResult:
    """Per-box charts and full-frame maps from detections in frame coordinates.

    ``with_parts`` (N,) bool: the detections ``output`` holds (in order); None: all of them.
    """
    if with_parts is not None and bool(with_parts.all()):
        with_parts = None  # every detection: exactly the full path
    chosen = boxes if with_parts is None else boxes[with_parts]
    charts = chart_results(output, chosen) if output is not None and len(chosen) else []
    labels = [c[0] for c in charts]
    part_map, person_map = paste_charts(labels, chosen, scores if with_parts is None else scores[with_parts],
                                        frame_hw)
    label_list = [lab.cpu().numpy() for lab in labels]
    uv_list = [c[1].cpu().numpy() for c in charts]
    if with_parts is not None:
        # The maps number the chosen detections 1..k; the store numbers all of them.
        indices = torch.nonzero(with_parts.cpu()).flatten().tolist()
        lookup = torch.zeros(256, dtype=torch.uint8)
        lookup[1 : len(indices) + 1] = torch.tensor([i + 1 for i in indices], dtype=torch.uint8)
        person_map = lookup.to(person_map.device)[person_map.long()]
        by_index = dict(zip(indices, zip(label_list, uv_list)))
        empty = (np.zeros((0, 0), np.uint8), np.zeros((2, 0, 0), np.float32))
        label_list = [by_index.get(i, empty)[0] for i in range(len(boxes))]
        uv_list = [by_index.get(i, empty)[1] for i in range(len(boxes))]
    return FrameResult(
        boxes=boxes.detach().float().cpu().numpy().reshape(-1, 4),
        scores=scores.detach().float().cpu().numpy().reshape(-1),
        labels=label_list,
        uv=uv_list,
        part_map=part_map.cpu().numpy(),
        person_map=person_map.cpu().numpy(),
        with_parts=None if with_parts is None else with_parts.cpu().numpy().astype(bool),
    )


def engine_settings(
    cfg_or_name: ModelConfig | str,
    device: str | torch.device,
    precision: str,
    score_threshold: float,
    batch_size: int | None,
) -> tuple[ModelConfig, torch.device, torch.dtype, float, int]:
    """Config, device, dtype, score threshold and batch size of an engine, checked; shared by both engines."""
    cfg = get_config(cfg_or_name) if isinstance(cfg_or_name, str) else cfg_or_name
    resolved = resolve_device(device)
    dtype = resolve_precision(precision, resolved)
    if not 0.0 <= score_threshold < 1.0:
        raise DensePoseGazeError(f"score_threshold must be in [0, 1), got {score_threshold}.")
    batch = int(batch_size) if batch_size else (8 if resolved.type == "cuda" else 1)
    if batch < 1:
        raise DensePoseGazeError(f"batch_size must be at least 1, got {batch_size}.")
    return cfg, resolved, dtype, float(score_threshold), batch


class Predictor:
    """DensePose R-CNN inference on RGB uint8 frames with a chart-based zoo model.

    ``weights``: a checkpoint path (model-zoo ``.pkl`` or ``.pth``), a state dict, or
    None for the zoo file of ``cfg_or_name`` (downloaded to the cache once).
    ``batch_size`` defaults to 8 on CUDA and 1 elsewhere.
    """

    def __init__(
        self,
        cfg_or_name: ModelConfig | str = DEFAULT_MODEL,
        weights: Weights = None,
        device: Device | str | torch.device = "auto",
        precision: Precision | str = "auto",
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        batch_size: int | None = None,
        channels_last: bool | None = None,
        min_size: int = MIN_SIZE_TEST,
        max_size: int = MAX_SIZE_TEST,
    ) -> None:
        self.cfg, self.device, self.dtype, self.score_threshold, self.batch_size = engine_settings(
            cfg_or_name, device, precision, score_threshold, batch_size
        )
        self.channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        if not 32 <= min_size <= max_size:
            raise DensePoseGazeError(
                f"Input size {min_size} (shortest edge) must be at least 32 and at most the longest "
                f"edge limit {max_size}; Detectron2's default is {MIN_SIZE_TEST}."
            )
        # Detectron2 resizes every frame so its shortest edge is 800 px; a smaller
        # size trades accuracy for speed and no longer matches Detectron2.
        self.min_size, self.max_size = int(min_size), int(max_size)
        state, source = _load_state(self.cfg, weights)
        # A checkpoint of another zoo config fails here with a message naming the right one.
        check_checkpoint_matches(state, self.cfg, source)
        self.model = DensePoseRCNN(self.cfg)
        self.model.load_weights(state)
        self.model.to(self.device)
        prepare_for_inference(self.model, self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    #: :meth:`predict` takes ``box_filters`` (the pipeline asks before it passes them).
    takes_box_filters = True

    @torch.inference_mode()
    def _predict_batch(
        self, frames: Sequence[Frame], box_filters: Sequence[BoxFilter | None] | None = None
    ) -> list[FrameResult]:
        batch = preprocess(frames, device=self.device, min_size=self.min_size, max_size=self.max_size)
        images = batch.tensor
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            features = self.model.features(images)
            proposals = self.model.proposals(features, batch.image_sizes)
            detections = self.model.detect(features, proposals, batch.image_sizes, self.score_threshold)
            in_frame = [scale_to_original_keep(d, hw) for d, hw in zip(detections, batch.original_sizes)]
            # DensePose runs on the resized-image boxes of the detections that survive
            # (and that their frame's box filter picks from the frame-pixel boxes).
            chosen = [_chosen(f, det.boxes, det.scores) for f, (det, _) in
                      zip(box_filters or [None] * len(frames), in_frame)]
            kept_boxes = [d.boxes[keep] if c is None else d.boxes[keep][c]
                          for d, (_, keep), c in zip(detections, in_frame, chosen)]
            total = sum(len(b) for b in kept_boxes)
            outputs: list[DensePoseOutput | None] = [None] * len(frames)
            if total:
                dense = self.model.densepose(features, kept_boxes).float()
                outputs = dense.split([len(b) for b in kept_boxes])
        return [
            frame_result(det.boxes, det.scores, out, hw, c)
            for (det, _), out, hw, c in zip(in_frame, outputs, batch.original_sizes, chosen)
        ]

    def iter_predict(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        """Results for a stream of frames (e.g. a video), computed ``batch_size`` at a time."""
        iterator = iter(frames)
        while chunk := list(islice(iterator, self.batch_size)):
            yield from self._predict_batch(chunk)

    def predict(self, frames: Frames, box_filters: Sequence[BoxFilter | None] | None = None) -> list[FrameResult]:
        """One :class:`FrameResult` per frame; ``frames`` is one RGB uint8 frame or several.

        ``box_filters``, one per frame (None: all detections), pick the detections
        whose body parts are computed; every detection's box and score is returned.
        """
        frames = as_frame_list(frames)
        if box_filters is None:
            return list(self.iter_predict(frames))
        if len(box_filters) != len(frames):
            raise ValueError(f"{len(box_filters)} box filters for {len(frames)} frames")
        step = self.batch_size
        return [result for start in range(0, len(frames), step)
                for result in self._predict_batch(frames[start : start + step], box_filters[start : start + step])]

    def __repr__(self) -> str:
        return (
            f"Predictor({self.cfg.name!r}, device={str(self.device)!r}, precision={str(self.dtype)[6:]!r}, "
            f"score_threshold={self.score_threshold}, batch_size={self.batch_size})"
        )


def _chosen(box_filter: BoxFilter | None, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor | None:
    """The filter's (N,) bool mask of the frame-pixel ``boxes``, on their device; None without a filter."""
    if box_filter is None:
        return None
    flags = box_filter(boxes.detach().float().cpu().numpy().reshape(-1, 4),
                       scores.detach().float().cpu().numpy().reshape(-1))
    mask = np.asarray(flags, dtype=bool).reshape(-1)
    if mask.shape != (len(boxes),):
        raise ValueError(f"a box filter returned {mask.shape[0]} flags for {len(boxes)} boxes")
    return torch.from_numpy(mask).to(boxes.device)


def _load_state(
    cfg: ModelConfig, weights: Weights
) -> tuple[Mapping[str, np.ndarray | torch.Tensor], str | os.PathLike | None]:
    """The state dict to load and the file it came from (None for a given state dict)."""
    if isinstance(weights, Mapping):
        return weights, None
    from napari_densepose_gaze.engine.weights import resolve_weights

    path = resolve_weights(cfg if weights is None else weights)
    return read_checkpoint(path), path
