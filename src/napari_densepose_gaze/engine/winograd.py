"""3x3 convolutions through Winograd transforms on the CPU, the same values up to float round-off.

A 3x3 stride-1 convolution needs a fraction of its multiplications in the Winograd
domain. Two implementations, chosen by the shape of the maps (never by timing, so a
frame gives the same values on every run and machine):

- NNPACK's F(6x6, 3x3), one image at a time: fastest on large maps (the backbone's
  stride-4 and stride-8 levels); values move by ~6e-5 of their std per layer.
- F(4x4, 3x3) as matrix products (:func:`winograd_gemm_conv3x3`): the whole batch
  becomes 36 products of (tiles of all maps) x (input channels) by (input x output
  channels), which MKL runs near its peak where NNPACK multiplies small matrices: on
  small maps (res5, the coarsest pyramid levels) and on batches of RoI maps (the
  DensePose head); values move by ~4e-5 of their std per layer.

Measured on the 2-core benchmark machine (benchmarks/bench_vs_detectron2.py and the
numbers in the closing note of issue 13).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "winograd_available",
    "use_winograd_convolutions",
    "winograd_weights",
    "winograd_transforms",
    "winograd_gemm_conv3x3",
    "nchw_copy",
    "SMALL_MAP_PIXELS",
    "NNPACK_MIN_CHANNELS_LAST",
]

#: Maps of at most this many pixels (per image) take the F(4x4) products, larger ones NNPACK.
SMALL_MAP_PIXELS = 4096
#: Channels-last maps take NNPACK (and its two format copies) from this many channels on, else oneDNN's direct path.
NNPACK_MIN_CHANNELS_LAST = 256


def winograd_available() -> bool:
    """Whether this PyTorch build has NNPACK and it runs on this CPU."""
    probe = getattr(torch, "_nnpack_available", None)
    # The call also initialises NNPACK; its convolutions fail until it has been made.
    return bool(probe is not None and probe())


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous()


def nchw_copy(x: torch.Tensor) -> torch.Tensor:
    """``x.contiguous()`` of a channels-last (N, C, H, W) map, 3-4 times faster at the pyramid's stride-4 level.

    PyTorch copies a 4-D permuted map element by element along the output, which reads
    a new cache line for every value; a 2-D transpose (pixels x channels to channels x
    pixels) per image takes its blocked path. The same values, bit for bit.
    """
    if not _is_channels_last(x):
        return x.contiguous()
    n, channels, height, width = x.shape
    out = x.new_empty((n, channels, height, width))
    for i in range(n):
        out[i].view(channels, height * width).copy_(x[i].permute(1, 2, 0).reshape(height * width, channels).t())
    return out


def _nnpack_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: list[int]) -> torch.Tensor:
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    try:
        outputs = [
            torch._nnpack_spatial_convolution(nchw_copy(x[i : i + 1]), weight, bias, padding, [1, 1])
            for i in range(x.shape[0])
        ]
    except RuntimeError:  # NNPACK refuses some shapes (e.g. its workspace); the direct path never does
        return F.conv2d(x, weight, bias, 1, padding)
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


class _WinogradConv:
    """``Conv2d._conv_forward`` for a 3x3 stride-1 convolution: Winograd on CPU float32, else the usual path.

    The result keeps the memory format of its input (channels-last stays channels-last),
    unless ``nchw_out``: then it is NCHW, for consumers that read NCHW (RoI pooling, NNPACK).
    """

    def __init__(self, conv: nn.Conv2d, batched: bool, nchw_out: bool = False) -> None:
        self.padding = [int(p) for p in conv.padding]
        self.batched = batched  # a batch of small maps (RoIs): products from 2 maps on, whatever their size
        self.nchw_out = nchw_out
        self.nnpack = winograd_available()
        self._cached: tuple[tuple, torch.Tensor, tuple[torch.Tensor, torch.Tensor]] | None = None

    def _weights(self, weight: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        # Recomputed if the weight tensor is replaced or changed in place (its version counts writes;
        # a tensor made under inference mode has no version).
        key = (weight.data_ptr(), None if weight.is_inference() else weight._version, weight.device)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, winograd_weights(weight), winograd_transforms(weight.device))
        return self._cached[1], self._cached[2]

    def _path(self, x: torch.Tensor) -> str:
        if self.padding == [1, 1] and (
            (self.batched and x.shape[0] >= 2) or x.shape[2] * x.shape[3] <= SMALL_MAP_PIXELS
        ):
            return "products"
        # NNPACK reads NCHW: from channels-last it costs two copies, which only wide maps repay.
        if self.nnpack and (not _is_channels_last(x) or x.shape[1] >= NNPACK_MIN_CHANNELS_LAST):
            return "nnpack"
        return "direct"

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32 or x.shape[0] == 0 or x.requires_grad:
            return F.conv2d(x, weight, bias, 1, self.padding)
        path = self._path(x)
        if path == "products":
            u, transforms = self._weights(weight)
            out = winograd_gemm_conv3x3(x, u, bias, transforms)
        elif path == "nnpack":
            out = _nnpack_conv(x, weight, bias, self.padding)
            if _is_channels_last(x) and not self.nchw_out:
                out = out.contiguous(memory_format=torch.channels_last)
        else:
            out = F.conv2d(x, weight, bias, 1, self.padding)
        return nchw_copy(out) if self.nchw_out else out


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


def use_winograd_convolutions(model: nn.Module, batched: bool = False, nchw_out: bool = False) -> int:
    """Run every 3x3 stride-1 convolution of ``model`` through a Winograd transform on the CPU; returns how many.

    ``batched``: the convolutions see batches of small maps (an RoI head), so batches of
    two or more take the matrix products whatever the map size. ``nchw_out``: results
    are NCHW whatever the input's format.
    """
    count = 0
    for module in model.modules():
        if _winograd_suits(module):
            # nn.Conv2d.forward (and the engine's subclasses) call self._conv_forward.
            module._conv_forward = _WinogradConv(module, batched, nchw_out)
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
    The result is (N, Cout, H, W), contiguous, or channels-last where ``x`` is.
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
    if _is_channels_last(x):
        y = y.permute(2, 3, 0, 4, 1, 5).reshape(n, _TILE * rows, _TILE * cols, out_channels)[:, :height, :width]
        y = y + bias if bias is not None else y.contiguous()
        return y.permute(0, 3, 1, 2)
    y = y.permute(2, 5, 3, 0, 4, 1).reshape(n, out_channels, _TILE * rows, _TILE * cols)
    y = y[:, :, :height, :width]
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.contiguous()
