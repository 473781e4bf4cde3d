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
- :func:`use_batched_winograd`: the DensePose head's 3x3 convolutions see a batch of
  small RoI maps (N x 28 x 28), where NNPACK's per-image calls multiply small matrices.
  There a Winograd F(4x4, 3x3) transform turns the whole batch into 36 matrix products
  of (tiles of all RoIs) x (input channels) by (input x output channels), which MKL
  runs near its peak: about twice NNPACK's speed from 2 RoIs on (values move by ~4e-5
  of their std per layer, less than NNPACK's F(6x6) moves them). One RoI keeps NNPACK.

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
    "use_batched_winograd",
    "winograd_weights",
    "winograd_transforms",
    "winograd_gemm_conv3x3",
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


# Winograd F(4x4, 3x3) (Lavin & Gray): Y = A^T [(G g G^T) * (B^T d B)] A on 6x6 input tiles
# that overlap by 2, each giving a 4x4 output tile. Points 0, +-1, +-2 and infinity.
_B_T = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
        (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_A_T = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
_TILE, _WINDOW = 4, 6


def winograd_transforms(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Both 2-D transforms as one matrix each, over flattened 6x6 tiles: kron(B^T, B^T) and kron(A^T, A^T)."""
    b_t = torch.tensor(_B_T, dtype=torch.float64)
    a_t = torch.tensor(_A_T, dtype=torch.float64)
    return (torch.kron(b_t, b_t).to(device, torch.float32), torch.kron(a_t, a_t).to(device, torch.float32))


def winograd_weights(weight: torch.Tensor) -> torch.Tensor:
    """3x3 kernels (Cout, Cin, 3, 3) in the Winograd domain, (36, Cin, Cout) float32 (computed in float64)."""
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    u = torch.einsum("ai,ocij,bj->abco", g, weight.double(), g)
    return u.reshape(_WINDOW * _WINDOW, weight.shape[1], weight.shape[0]).float().contiguous()


def winograd_gemm_conv3x3(
    x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None, transforms: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """A 3x3, stride 1, padding 1 convolution of a float32 (N, C, H, W) batch, as Winograd matrix products.

    ``u`` comes from :func:`winograd_weights`, ``transforms`` from :func:`winograd_transforms`.
    The result is (N, Cout, H, W), contiguous.
    """
    n, channels, height, width = x.shape
    rows, cols = -(-height // _TILE), -(-width // _TILE)
    # Zero padding: 1 pixel for the convolution, more where the last tile reaches past the map.
    padded = x.new_zeros((n, _TILE * rows + 2, _TILE * cols + 2, channels))
    padded[:, 1 : height + 1, 1 : width + 1] = x.permute(0, 2, 3, 1)  # channels innermost, for the products
    tiles = padded.unfold(1, _WINDOW, _TILE).unfold(2, _WINDOW, _TILE)  # (N, rows, cols, C, 6, 6), a view
    tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(_WINDOW * _WINDOW, -1)
    input_transform, output_transform = transforms
    count = n * rows * cols
    v = torch.mm(input_transform, tiles).view(_WINDOW * _WINDOW, count, channels)
    m = torch.bmm(v, u)  # (36, tiles, Cout): the bulk of the work, one MKL call
    out_channels = u.shape[2]
    y = torch.mm(output_transform, m.view(_WINDOW * _WINDOW, -1)).view(_TILE, _TILE, n, rows, cols, out_channels)
    y = y.permute(2, 5, 3, 0, 4, 1).reshape(n, out_channels, _TILE * rows, _TILE * cols)
    y = y[:, :, :height, :width]
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.contiguous()


class _BatchedWinogradConv:
    """``Conv2d._conv_forward`` for the 3x3 convolutions of an RoI head: Winograd products from 2 RoIs on."""

    def __init__(self, conv: nn.Conv2d) -> None:
        self.padding = [int(p) for p in conv.padding]
        self.single = _WinogradConv(conv) if winograd_available() else None
        self._cached: tuple[tuple, torch.Tensor, tuple[torch.Tensor, torch.Tensor]] | None = None

    def _weights(self, weight: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        # Recomputed if the weight tensor is replaced or changed in place (its version counts writes).
        key = (weight.data_ptr(), weight._version, weight.device)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, winograd_weights(weight), winograd_transforms(weight.device))
        return self._cached[1], self._cached[2]

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.shape[0] < 2 or x.device.type != "cpu" or x.dtype != torch.float32 or x.requires_grad:
            if self.single is None:
                return F.conv2d(x, weight, bias, 1, self.padding)
            return self.single(x, weight, bias)
        u, transforms = self._weights(weight)
        return winograd_gemm_conv3x3(x, u, bias, transforms)


def use_batched_winograd(head: nn.Module) -> int:
    """Run the 3x3 stride-1 padding-1 convolutions of an RoI ``head`` as batched Winograd products; returns how many.

    Meant for batches of small maps (the DensePose head's RoIs); a single map goes
    through NNPACK (or the direct path without it), as :func:`use_winograd_convolutions` sets.
    """
    count = 0
    for module in head.modules():
        if _winograd_suits(module) and tuple(module.padding) == (1, 1):
            module._conv_forward = _BatchedWinogradConv(module)
            count += 1
    return count


def prepare_for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """Fold the batch norms, and on the CPU switch to Winograd convolutions; returns ``model``."""
    fold_frozen_batch_norms(model)
    if device.type == "cpu":
        use_winograd_convolutions(model)
        head = getattr(getattr(model, "roi_heads", None), "densepose_head", None)
        if head is not None:
            use_batched_winograd(head)
    return model
