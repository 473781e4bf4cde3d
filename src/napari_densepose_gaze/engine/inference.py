"""A loaded model made fast for inference, computing the same values up to float round-off.

Two changes, both made once when a predictor loads its weights, both measured on the
parity fixtures (within their tolerances) and on the CPU benchmark against Detectron2:

- :func:`fold_frozen_batch_norms`: a frozen batch norm after a convolution is an affine
  map per output channel, so it folds into the convolution's weight and bias. That saves
  one pass over every backbone activation (features move by ~1e-5 of their std).
- :func:`use_winograd_convolutions`: on the CPU, 3x3 stride-1 convolutions run through
  NNPACK's Winograd transform (F(6x6, 3x3)), which needs about a fifth of the
  multiplications of the direct convolution oneDNN runs (values move by ~5e-5 of their
  std per layer). NNPACK runs one image at a time; a batch is looped over. Its thread
  pool takes ``torch.get_num_threads()`` at its first convolution.

After :func:`prepare_for_inference` the model's ``state_dict`` no longer has the zoo
layout (the ``norm`` entries are folded away): load weights before, never after.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_densepose_gaze.engine.backbone import ConvFrozenBN

__all__ = [
    "fold_frozen_batch_norms",
    "winograd_available",
    "use_winograd_convolutions",
    "prepare_for_inference",
]


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


def winograd_available() -> bool:
    """Whether this PyTorch build has NNPACK and it runs on this CPU."""
    probe = getattr(torch, "_nnpack_available", None)
    # The call also initialises NNPACK; its convolutions fail until it has been made.
    return bool(probe is not None and probe())


class _WinogradConv:
    """``Conv2d._conv_forward`` for a 3x3 stride-1 convolution: NNPACK on CPU float32, else the usual path."""

    def __init__(self, conv: nn.Conv2d) -> None:
        self.padding = [int(p) for p in conv.padding]

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32 or x.shape[0] == 0 or x.requires_grad:
            return F.conv2d(x, weight, bias, 1, self.padding)
        if bias is None:
            bias = weight.new_zeros(weight.shape[0])
        try:
            outputs = [
                torch._nnpack_spatial_convolution(x[i : i + 1].contiguous(), weight, bias, self.padding, [1, 1])
                for i in range(x.shape[0])
            ]
        except RuntimeError:  # NNPACK refuses some shapes (e.g. its workspace); the direct path never does
            return F.conv2d(x, weight, bias, 1, self.padding)
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        # Callers that asked for channels-last get it back (oneDNN would keep their format).
        return out.contiguous(memory_format=torch.channels_last) if _is_channels_last(x) else out


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous()


def _winograd_suits(conv: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and all(p < 3 for p in conv.padding)  # NNPACK's limit: padding below the kernel size
    )


def use_winograd_convolutions(model: nn.Module) -> int:
    """Run every 3x3 stride-1 convolution of ``model`` through NNPACK; returns how many (0 without NNPACK)."""
    if not winograd_available():
        return 0
    count = 0
    for module in model.modules():
        if _winograd_suits(module):
            # nn.Conv2d.forward (and the engine's subclasses) call self._conv_forward.
            module._conv_forward = _WinogradConv(module)
            count += 1
    return count


def prepare_for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """Fold the batch norms, and on the CPU switch to Winograd convolutions; returns ``model``."""
    fold_frozen_batch_norms(model)
    if device.type == "cpu":
        use_winograd_convolutions(model)
    return model
