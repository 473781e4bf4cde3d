"""ResNet (MSRA style, frozen batch norm) + FPN, with Detectron2's module names.

Attribute names mirror the model-zoo checkpoint keys
(``bottom_up.res2.0.conv1.norm.running_var``, ``fpn_lateral2.weight``, ...), so a
zoo state dict loads with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

__all__ = ["ConvFrozenBN", "Bottleneck", "ResNet", "FPN", "build_resnet_fpn", "add_upsampled_2x", "FPN_STRIDES"]

# Blocks per stage res2..res5.
_STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
FPN_STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
_BN_EPS = 1e-5


class ConvFrozenBN(nn.Conv2d):
    """A bias-free convolution followed by a frozen batch norm stored as ``.norm``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.norm = FrozenBatchNorm2d(out_channels, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


class Stem(nn.Module):
    """7x7/2 convolution, ReLU, 3x3/2 max pool: stride 4 in total."""

    def __init__(self, out_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = ConvFrozenBN(3, out_channels, 7, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place (as Detectron2 does): one full-size activation buffer fewer to allocate per step.
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual block; the stride sits in the first 1x1 (MSRA weights)."""

    def __init__(self, in_channels: int, bottleneck_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.shortcut = (
            ConvFrozenBN(in_channels, out_channels, 1, stride=stride) if in_channels != out_channels else None
        )
        self.conv1 = ConvFrozenBN(in_channels, bottleneck_channels, 1, stride=stride)
        self.conv2 = ConvFrozenBN(bottleneck_channels, bottleneck_channels, 3)
        self.conv3 = ConvFrozenBN(bottleneck_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)  # a new tensor: adding into it leaves x alone
        out += self.shortcut(x) if self.shortcut is not None else x
        return F.relu_(out)


class ResNet(nn.Module):
    """ResNet-50/101 trunk returning res2..res5."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        if depth not in _STAGE_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(_STAGE_BLOCKS)}, got {depth}")
        self.stem = Stem(64)
        in_channels, bottleneck, out_channels = 64, 64, 256
        self.stage_names = ("res2", "res3", "res4", "res5")
        for index, (name, blocks) in enumerate(zip(self.stage_names, _STAGE_BLOCKS[depth])):
            first_stride = 1 if index == 0 else 2
            stage = nn.Sequential(
                *(
                    Bottleneck(
                        in_channels if block == 0 else out_channels,
                        bottleneck,
                        out_channels,
                        first_stride if block == 0 else 1,
                    )
                    for block in range(blocks)
                )
            )
            self.add_module(name, stage)
            in_channels, bottleneck, out_channels = out_channels, bottleneck * 2, out_channels * 2
        self.out_channels = {f"res{i}": 256 * 2 ** (i - 2) for i in range(2, 6)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        outputs = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            outputs[name] = x
        return outputs


class FPN(nn.Module):
    """Feature pyramid p2..p6 (256 channels) over a ResNet; p6 subsamples p5."""

    def __init__(self, bottom_up: ResNet, out_channels: int = 256) -> None:
        super().__init__()
        self.bottom_up = bottom_up
        for level in range(2, 6):
            in_channels = bottom_up.out_channels[f"res{level}"]
            self.add_module(f"fpn_lateral{level}", nn.Conv2d(in_channels, out_channels, 1))
            self.add_module(f"fpn_output{level}", nn.Conv2d(out_channels, out_channels, 3, padding=1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        stages = self.bottom_up(images)
        outputs: dict[str, torch.Tensor] = {}
        merged = self.fpn_lateral5(stages["res5"])
        outputs["p5"] = self.fpn_output5(merged)
        for level in (4, 3, 2):
            top = merged
            merged = getattr(self, f"fpn_lateral{level}")(stages[f"res{level}"])
            add_upsampled_2x(merged, top)
            outputs[f"p{level}"] = getattr(self, f"fpn_output{level}")(merged)
        # Detectron2's LastLevelMaxPool: a 1x1 max pool with stride 2, i.e. every other pixel.
        outputs["p6"] = F.max_pool2d(outputs["p5"], kernel_size=1, stride=2, padding=0)
        return {name: outputs[name] for name in ("p2", "p3", "p4", "p5", "p6")}


def add_upsampled_2x(merged: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """``merged += F.interpolate(top, scale_factor=2.0, mode="nearest")``, in place, the same values.

    Nearest 2x upsampling repeats every pixel in a 2x2 block, so where ``merged`` is
    exactly twice ``top``'s size and both share a memory layout, ``top`` is added
    through a broadcast view: no upsampled map is made (at p2 that is a 55 MB
    map per frame at Neon size).
    """
    n, c, h, w = merged.shape
    if (h, w) == (2 * top.shape[2], 2 * top.shape[3]):
        for layout in ((0, 1, 2, 3), (0, 2, 3, 1)):  # NCHW, then channels-last
            big, small = merged.permute(*layout), top.permute(*layout)
            if big.is_contiguous() and small.is_contiguous():
                # (n, c, h, w) -> (n, c, h/2, 2, w/2, 2), or the same with the channels innermost
                split = [n, c, h // 2, 2, w // 2, 2] if layout[1] == 1 else [n, h // 2, 2, w // 2, 2, c]
                spread = [n, c, h // 2, 1, w // 2, 1] if layout[1] == 1 else [n, h // 2, 1, w // 2, 1, c]
                big.view(split).add_(small.reshape(spread))
                return merged
    merged += F.interpolate(top, scale_factor=2.0, mode="nearest")
    return merged


def build_resnet_fpn(depth: int) -> FPN:
    """The ``backbone`` of a DensePose R-CNN with a ResNet of the given depth."""
    return FPN(ResNet(depth))
