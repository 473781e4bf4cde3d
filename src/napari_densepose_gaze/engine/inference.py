"""A loaded model made fast for inference, computing the same values up to float round-off.

Made once when a predictor loads its weights, measured on the parity fixtures (within
their tolerances) and on the CPU benchmark against Detectron2:

- :func:`fold_frozen_batch_norms`: a frozen batch norm after a convolution is an affine
  map per output channel, so it folds into the convolution's weight and bias. That saves
  one pass over every backbone activation (features move by ~1e-5 of their std).
- On the CPU, 3x3 stride-1 convolutions run through Winograd transforms
  (:mod:`~napari_densepose_gaze.engine.winograd`): NNPACK on large maps, matrix products
  on small maps and on the DensePose head's batches of RoIs.
- On the CPU the backbone runs channels-last (:class:`_ChannelsLastStem`; every oneDNN
  convolution keeps its input's format): oneDNN's 1x1
  convolutions and the stem's max pool are 1.5-9 times faster there than on NCHW; the
  pyramid's output convolutions hand NCHW maps to the RPN and the RoI heads.
- The RPN's 1x1 convolutions to 3 and 12 channels run as matrix products.

After :func:`prepare_for_inference` the model's ``state_dict`` no longer has the zoo
layout (the ``norm`` entries are folded away): load weights before, never after.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_densepose_gaze.engine.backbone import FPN, ConvFrozenBN
from napari_densepose_gaze.engine.winograd import use_winograd_convolutions

__all__ = ["fold_frozen_batch_norms", "run_backbone_channels_last", "prepare_for_inference"]


def fold_frozen_batch_norms(model: nn.Module) -> int:
    """Replace every :class:`ConvFrozenBN` of ``model`` by one convolution with a bias; returns how many."""
    folded = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ConvFrozenBN):
                setattr(parent, name, _folded(child))
                folded += 1
    return folded


def _folded(conv: ConvFrozenBN) -> nn.Conv2d:
    norm = conv.norm
    # FrozenBatchNorm2d computes x * scale + shift with these very expressions.
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    shift = norm.bias - norm.running_mean * scale
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        bias=True, device=conv.weight.device, dtype=conv.weight.dtype,
    )
    fused.weight.data.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    fused.bias.data.copy_(shift)
    return fused.requires_grad_(False)


class _ChannelsLastStem:
    """``Conv2d._conv_forward`` of the stem on CPU float32: channels-last in, so channels-last all the way down."""

    def __init__(self, conv: nn.Conv2d) -> None:
        self.stride, self.padding = conv.stride, conv.padding

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype == torch.float32:
            x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, weight, bias, self.stride, self.padding)


class _NarrowPointwiseAsMatmul:
    """``Conv2d._conv_forward`` of a 1x1 convolution to a few channels (the RPN's logits and deltas) on CPU float32.

    oneDNN runs these 3-4 times slower than the one matrix product they are.
    """

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32 or not x.is_contiguous() or x.requires_grad:
            return F.conv2d(x, weight, bias)
        n, channels, height, width = x.shape
        matrix = weight.reshape(weight.shape[0], channels)
        columns = x.view(n, channels, height * width)
        out = torch.matmul(matrix, columns)
        if bias is not None:
            out += bias.view(1, -1, 1)
        return out.view(n, -1, height, width)


def run_backbone_channels_last(backbone: FPN) -> None:
    """On CPU float32, run the trunk and pyramid channels-last and hand NCHW maps on (p2..p6)."""
    stem = backbone.bottom_up.stem.conv1
    stem._conv_forward = _ChannelsLastStem(stem)
    for name, child in backbone.named_children():
        if name.startswith("fpn_output"):
            # RoI pooling and NNPACK (the RPN's convolution) read NCHW.
            use_winograd_convolutions(child, nchw_out=True)


def prepare_for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """Fold the batch norms; on the CPU switch to Winograd convolutions and a channels-last backbone.

    Returns ``model``.
    """
    fold_frozen_batch_norms(model)
    if device.type != "cpu":
        return model
    use_winograd_convolutions(model)
    backbone = getattr(model, "backbone", model)
    if isinstance(backbone, FPN):
        run_backbone_channels_last(backbone)
    rpn_head = getattr(getattr(model, "proposal_generator", None), "rpn_head", None)
    if rpn_head is not None:
        for conv in (rpn_head.objectness_logits, rpn_head.anchor_deltas):
            conv._conv_forward = _NarrowPointwiseAsMatmul()
    head = getattr(getattr(model, "roi_heads", None), "densepose_head", None)
    if head is not None:
        use_winograd_convolutions(head, batched=True)
    return model
