"""The DensePose branch of DensePose R-CNN: FPN decoder, RoI head and chart predictor.

Module and parameter names follow Detectron2's DensePose project, so the
``roi_heads.decoder.*``, ``roi_heads.densepose_head.*`` and
``roi_heads.densepose_predictor.*`` tensors of a model-zoo checkpoint load unchanged:

- :class:`FPNDecoder` (Detectron2's ``Decoder``): per FPN level a stack of
  conv3x3+ReLU and bilinear x2 steps down to stride 4, summed, then a 1x1 conv.
- :class:`V1ConvXHead` (``DensePoseV1ConvXHead``): 8 conv3x3 + ReLU.
- :class:`DeepLabHead` (``DensePoseDeepLabHead``): ASPP then 8 conv3x3 + GroupNorm + ReLU.
- :class:`ChartPredictor` (``DensePoseChartPredictor`` and its confidence variants):
  transposed convs to 2x the pooled size ("lowres"), then bilinear x2 (112x112 for
  the zoo's 28x28 RoIs).

:func:`run_densepose` chains them for given detection boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from napari_densepose_gaze.engine.decoder_windows import decode_for_boxes
from napari_densepose_gaze.engine.zoo import ModelConfig

__all__ = [
    "FPN_LEVELS",
    "FPN_STRIDES",
    "DensePoseOutput",
    "FPNDecoder",
    "V1ConvXHead",
    "DeepLabHead",
    "ChartPredictor",
    "build_decoder",
    "build_densepose_head",
    "build_densepose_predictor",
    "run_densepose",
]

FPN_LEVELS = ("p2", "p3", "p4", "p5")  # the RoI heads' input features
FPN_STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
DECODER_STRIDE = 4  # the decoder's common output stride (DECODER_COMMON_STRIDE)
FPN_CHANNELS = 256
HEAD_CHANNELS = 512  # CONV_HEAD_DIM
NUM_STACKED_CONVS = 8
ASPP_DILATIONS = (6, 12, 56)
GN_GROUPS = 32
UP_SCALE = 2
CONFIDENCE_EPSILON = 0.01  # SEGM_CONFIDENCE.EPSILON, the lower bound of segm confidences


@dataclass
class DensePoseOutput:
    """Raw chart predictor outputs for N detections, each ``(N, C, S, S)``.

    S is 4x the pooler resolution: 112 for the zoo models, 56 for the legacy ones.

    ``coarse_segm`` (C = 2, or 15 for legacy models) and ``fine_segm`` (C = 25) are
    logits; with segmentation confidences they are already multiplied by them, as
    Detectron2 does. ``u``/``v`` have one channel per part (25). The optional
    confidences are ``sigma_2``, ``kappa_u``, ``kappa_v`` (25 channels, raw) and
    ``fine_segm_confidence``/``coarse_segm_confidence`` (1 channel, softplus + epsilon).
    """

    coarse_segm: torch.Tensor
    fine_segm: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    sigma_2: torch.Tensor | None = None
    kappa_u: torch.Tensor | None = None
    kappa_v: torch.Tensor | None = None
    fine_segm_confidence: torch.Tensor | None = None
    coarse_segm_confidence: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.coarse_segm.shape[0]

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> DensePoseOutput:
        changes = {f.name: fn(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(self, **changes)

    def __getitem__(self, index: int | slice | torch.Tensor) -> DensePoseOutput:
        """The outputs of a subset of the detections (an int keeps the batch axis)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return self._map(lambda t: t[index])

    def split(self, counts: Sequence[int]) -> list[DensePoseOutput]:
        """One output per image, for ``counts[i]`` consecutive detections each."""
        starts = [0]
        for count in counts:
            starts.append(starts[-1] + int(count))
        return [self[starts[i] : starts[i + 1]] for i in range(len(counts))]

    def float(self) -> DensePoseOutput:
        return self._map(lambda t: t.float())

    def to(self, device: torch.device | str) -> DensePoseOutput:
        return self._map(lambda t: t.to(device))

    @classmethod
    def cat(cls, outputs: Sequence[DensePoseOutput]) -> DensePoseOutput:
        first = outputs[0]
        changes = {}
        for f in fields(first):
            if getattr(first, f.name) is not None:
                changes[f.name] = torch.cat([getattr(o, f.name) for o in outputs])
        return replace(first, **changes)


class _ConvReLU(nn.Conv2d):
    """A conv whose ReLU lives inside it, so the Sequential indices match Detectron2's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(super().forward(x))


class _ConvNorm(nn.Conv2d):
    """A conv with an optional ``norm`` child, named like Detectron2's ``layers.Conv2d``."""

    def __init__(self, *args, norm: nn.Module | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return x if self.norm is None else self.norm(x)


class FPNDecoder(nn.Module):
    """Merges FPN levels p2..p5 into one stride-4 map (Panoptic FPN's semantic head)."""

    def __init__(self, channels: int = FPN_CHANNELS, levels: Sequence[str] = FPN_LEVELS) -> None:
        super().__init__()
        self.levels = tuple(levels)
        for level in self.levels:
            stride = FPN_STRIDES[level]
            steps = max(1, (stride // DECODER_STRIDE).bit_length() - 1)
            ops: list[nn.Module] = []
            for _ in range(steps):
                ops.append(_ConvReLU(channels, channels, 3, padding=1))
                if stride != DECODER_STRIDE:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(level, nn.Sequential(*ops))
        self.predictor = nn.Conv2d(channels, channels, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features``: the maps of :attr:`levels`, in that order."""
        x = None
        for level, feature in zip(self.levels, features, strict=True):
            y = getattr(self, level)(feature)
            x = y if x is None else x + y
        return self.predictor(x)


class V1ConvXHead(nn.Module):
    """``DensePoseV1ConvXHead``: a stack of conv3x3 + ReLU."""

    def __init__(self, in_channels: int = FPN_CHANNELS, hidden: int = HEAD_CHANNELS) -> None:
        super().__init__()
        self.n_layers = NUM_STACKED_CONVS
        channels = in_channels
        for i in range(self.n_layers):
            self.add_module(f"body_conv_fcn{i + 1}", nn.Conv2d(channels, hidden, 3, padding=1))
            channels = hidden
        self.out_channels = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.n_layers):
            x = F.relu_(getattr(self, f"body_conv_fcn{i + 1}")(x))
        return x


class _AtrousConv(nn.Conv2d):
    """A dilated 3x3 convolution (padding = dilation) that skips the taps falling wholly into the padding.

    ASPP's widest branch (dilation 56) sees a 28x28 RoI: every tap but the centre
    multiplies zeros, so it is the 1x1 convolution with the centre weights.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dilation[0] >= x.shape[-2] and self.dilation[1] >= x.shape[-1]:
            centre = self.weight[:, :, self.kernel_size[0] // 2 : self.kernel_size[0] // 2 + 1,
                                 self.kernel_size[1] // 2 : self.kernel_size[1] // 2 + 1]
            return F.conv2d(x, centre.contiguous(), self.bias)
        return super().forward(x)


def _conv_gn_relu(in_channels: int, out_channels: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    conv = _AtrousConv if dilation > 1 else nn.Conv2d
    return nn.Sequential(
        conv(in_channels, out_channels, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.GroupNorm(GN_GROUPS, out_channels),
        nn.ReLU(inplace=True),
    )


class _ASPPPooling(nn.Sequential):
    """Image-level branch of ASPP: global average, 1x1 conv + GN + ReLU, broadcast back."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.GroupNorm(GN_GROUPS, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Bilinear upsampling of a 1x1 map (what Detectron2 does) is a broadcast.
        return super().forward(x).expand(-1, -1, x.shape[-2], x.shape[-1])


class _ASPP(nn.Module):
    """Atrous spatial pyramid pooling as in DeepLabV3 (no norm after the projection)."""

    def __init__(self, in_channels: int, out_channels: int, dilations: Sequence[int] = ASPP_DILATIONS) -> None:
        super().__init__()
        branches: list[nn.Module] = [_conv_gn_relu(in_channels, out_channels, 1)]
        branches += [_conv_gn_relu(in_channels, out_channels, 3, d) for d in dilations]
        branches.append(_ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHead(nn.Module):
    """``DensePoseDeepLabHead``: ASPP, then a stack of conv3x3 + GroupNorm + ReLU.

    The zoo configs leave its optional non-local block off, so it is not built.
    """

    def __init__(self, in_channels: int = FPN_CHANNELS, hidden: int = HEAD_CHANNELS) -> None:
        super().__init__()
        self.ASPP = _ASPP(in_channels, in_channels)
        self.n_layers = NUM_STACKED_CONVS
        channels = in_channels
        for i in range(self.n_layers):
            conv = _ConvNorm(channels, hidden, 3, padding=1, bias=False, norm=nn.GroupNorm(GN_GROUPS, hidden))
            self.add_module(f"body_conv_fcn{i + 1}", conv)
            channels = hidden
        self.out_channels = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ASPP(x)
        for i in range(self.n_layers):
            x = F.relu_(getattr(self, f"body_conv_fcn{i + 1}")(x))
        return x


def _deconv(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    # DECONV_KERNEL 4, stride 2, padding 1: doubles the RoI resolution exactly.
    return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)


class ChartPredictor(nn.Module):
    """``DensePoseChartPredictor`` with the optional confidence outputs of WC1/WC2(M)."""

    def __init__(
        self,
        in_channels: int = HEAD_CHANNELS,
        coarse_channels: int = 2,
        fine_channels: int = 25,
        uv_confidence: str = "none",
        segm_confidence: bool = False,
    ) -> None:
        super().__init__()
        if uv_confidence not in ("none", "iid_iso", "indep_aniso"):
            raise ValueError(f"unknown uv_confidence {uv_confidence!r}")
        self.ann_index_lowres = _deconv(in_channels, coarse_channels)
        self.index_uv_lowres = _deconv(in_channels, fine_channels)
        self.u_lowres = _deconv(in_channels, fine_channels)
        self.v_lowres = _deconv(in_channels, fine_channels)
        self.uv_confidence = uv_confidence
        self.segm_confidence = segm_confidence
        if uv_confidence != "none":
            self.sigma_2_lowres = _deconv(in_channels, fine_channels)
        if uv_confidence == "indep_aniso":
            self.kappa_u_lowres = _deconv(in_channels, fine_channels)
            self.kappa_v_lowres = _deconv(in_channels, fine_channels)
        if segm_confidence:
            self.fine_segm_confidence_lowres = _deconv(in_channels, 1)
            self.coarse_segm_confidence_lowres = _deconv(in_channels, 1)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=UP_SCALE, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> DensePoseOutput:
        out = DensePoseOutput(
            coarse_segm=self._up(self.ann_index_lowres(x)),
            fine_segm=self._up(self.index_uv_lowres(x)),
            u=self._up(self.u_lowres(x)),
            v=self._up(self.v_lowres(x)),
        )
        if self.uv_confidence != "none":
            out.sigma_2 = self._up(self.sigma_2_lowres(x))
        if self.uv_confidence == "indep_aniso":
            out.kappa_u = self._up(self.kappa_u_lowres(x))
            out.kappa_v = self._up(self.kappa_v_lowres(x))
        if self.segm_confidence:
            # The confidences scale the logits, which can change the argmax labels.
            out.fine_segm_confidence = F.softplus(self._up(self.fine_segm_confidence_lowres(x))) + CONFIDENCE_EPSILON
            out.coarse_segm_confidence = (
                F.softplus(self._up(self.coarse_segm_confidence_lowres(x))) + CONFIDENCE_EPSILON
            )
            out.fine_segm = out.fine_segm * out.fine_segm_confidence
            out.coarse_segm = out.coarse_segm * out.coarse_segm_confidence
        return out


def build_decoder(cfg: ModelConfig) -> FPNDecoder | None:
    """The FPN decoder when ``cfg.decoder`` is set, else None (pool from p2..p5 directly)."""
    return FPNDecoder() if cfg.decoder else None


def build_densepose_head(cfg: ModelConfig) -> V1ConvXHead | DeepLabHead:
    if cfg.head == "v1convx":
        return V1ConvXHead()
    if cfg.head == "deeplab":
        return DeepLabHead()
    raise ValueError(f"unknown DensePose head {cfg.head!r} in config {cfg.name!r}")


def build_densepose_predictor(cfg: ModelConfig) -> ChartPredictor:
    return ChartPredictor(
        HEAD_CHANNELS,
        coarse_channels=cfg.coarse_channels,
        fine_channels=cfg.fine_channels,
        uv_confidence=cfg.uv_confidence,
        segm_confidence=cfg.segm_confidence,
    )


Pooler = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]


def run_densepose(
    features: Sequence[torch.Tensor],
    boxes: Sequence[torch.Tensor],
    pooler: Pooler,
    head: nn.Module,
    predictor: ChartPredictor,
    decoder: FPNDecoder | None = None,
) -> DensePoseOutput:
    """DensePose outputs for every box of every image, images in order.

    ``features`` are the FPN maps p2..p5 for a batch; ``boxes[i]`` are image i's
    detections ``(N_i, 4)`` xyxy in network-input coordinates. ``pooler(maps, boxes)``
    returns the ``(sum N_i, C, R, R)`` RoI features; with a decoder it gets the
    single stride-4 map, computed only around the boxes (see :mod:`.decoder_windows`).
    Split the result per image with ``DensePoseOutput.split``.
    """
    maps = list(features)
    if decoder is not None:
        # Only the pixels the pooler reads: the decoder costs as much as the ResNet trunk.
        maps = [decode_for_boxes(decoder, maps, boxes, DECODER_STRIDE)]
    # Zero boxes run through as an empty batch, which keeps the output shapes.
    return predictor(head(pooler(maps, boxes)))
