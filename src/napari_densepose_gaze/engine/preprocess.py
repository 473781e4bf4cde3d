"""RGB frames -> the padded, normalised BGR batch a Detectron2 model sees at test time.

Detectron2 resizes with ``ResizeShortestEdge(800, max 1333)``, which calls PIL's
bilinear resize on uint8 images. PIL computes that resize in fixed point with a
uint8 intermediate between the horizontal and the vertical pass; a float resize
(``interpolate(..., antialias=True)``) differs from it by one grey level on about
15 % of the pixels. :func:`resize_like_pil` repeats PIL's integer arithmetic in
torch, so the engine sees bit for bit the image Detectron2 sees, on any device.
(Horizontal pass first, as PIL does whenever both axes shrink or both grow, which
is always the case for ResizeShortestEdge's uniform scale; Pillow 13 runs the
vertical pass first when only the vertical axis shrinks.) Frames that are on the
CPU and stay there are resized by PIL itself, which gives the same pixels several
times faster; :func:`resize_like_pil` serves frames on (or bound for) a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from napari_densepose_gaze.engine.defaults import MAX_SIZE_TEST, MIN_SIZE_TEST
from napari_densepose_gaze.errors import DensePoseGazeError

__all__ = [
    "PIXEL_MEAN_BGR",
    "SIZE_DIVISIBILITY",
    "ImageBatch",
    "resized_size",
    "resize_like_pil",
    "preprocess",
]

PIXEL_MEAN_BGR = (103.530, 116.280, 123.675)
PIXEL_STD_BGR = (1.0, 1.0, 1.0)
SIZE_DIVISIBILITY = 32  # FPN with p2..p6 needs input sides divisible by the largest stride

# PIL's fixed-point precision for 8-bit images (Resample.c: 32 - 8 - 2 bits).
_PRECISION_BITS = 22


@dataclass
class ImageBatch:
    """A padded model input and the sizes needed to map results back."""

    tensor: torch.Tensor  # (N, 3, H_pad, W_pad) float32, BGR minus pixel mean, zero padding
    image_sizes: list[tuple[int, int]]  # (h, w) of each resized image inside the padding
    original_sizes: list[tuple[int, int]]  # (h, w) of each frame as given


def resized_size(
    height: int, width: int, min_size: int = MIN_SIZE_TEST, max_size: int = MAX_SIZE_TEST
) -> tuple[int, int]:
    """(h, w) after Detectron2's test-time ResizeShortestEdge."""
    scale = min_size / min(height, width)
    if height < width:
        new_h, new_w = float(min_size), scale * width
    else:
        new_h, new_w = scale * height, float(min_size)
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


@lru_cache(maxsize=32)
def _pil_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and fixed-point weights of PIL's bilinear filter, (out_size, taps) each.

    Follows Resample.c's precompute_coeffs/normalize_coeffs_8bpc in double precision,
    summing in the same order, so the integer weights are PIL's own.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear (triangle) filter has support 1
    taps = int(math.ceil(support)) * 2 + 1
    index = np.zeros((out_size, taps), dtype=np.int64)
    weight = np.zeros((out_size, taps), dtype=np.int64)
    inv = 1.0 / filterscale
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C does
        xmax = min(int(center + support + 0.5), in_size) - xmin
        ks = []
        total = 0.0
        for x in range(xmax):
            arg = abs((x + xmin - center + 0.5) * inv)
            w = 1.0 - arg if arg < 1.0 else 0.0
            ks.append(w)
            total += w
        for x, w in enumerate(ks):
            if total != 0.0:
                w = w / total
            # weights are never negative for the triangle filter
            weight[xx, x] = int(0.5 + w * (1 << _PRECISION_BITS))
            index[xx, x] = x + xmin
        index[xx, xmax:] = xmin  # zero-weight padding taps
    return index, weight


def _resample_last_axis(image: torch.Tensor, out_size: int) -> torch.Tensor:
    """One PIL pass along the last axis of an int32 image, rounding back to 0..255."""
    index_np, weight_np = _pil_bilinear_taps(image.shape[-1], out_size)
    index = torch.from_numpy(index_np).to(image.device)
    weight = torch.from_numpy(weight_np).to(device=image.device, dtype=torch.int32)
    # Products stay below 2**30 (255 * 2**22), sums below 2**31: int32 is exact.
    acc = torch.full(
        (*image.shape[:-1], out_size), 1 << (_PRECISION_BITS - 1), dtype=torch.int32, device=image.device
    )
    for tap in range(index.shape[1]):
        acc += image[..., index[:, tap]] * weight[:, tap]
    return (acc >> _PRECISION_BITS).clamp_(0, 255)


def resize_like_pil(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 (C, H, W) image to ``size`` = (h, w) exactly as PIL's BILINEAR does."""
    if image.dtype != torch.uint8 or image.dim() != 3:
        raise ValueError(f"expected a uint8 (C, H, W) tensor, got {tuple(image.shape)} {image.dtype}")
    out_h, out_w = size
    if (image.shape[1], image.shape[2]) == (out_h, out_w):
        return image
    work = image.to(torch.int32)
    if work.shape[2] != out_w:  # PIL: horizontal pass first, through a uint8 intermediate
        work = _resample_last_axis(work, out_w)
    if work.shape[1] != out_h:
        work = _resample_last_axis(work.transpose(1, 2), out_h).transpose(1, 2)
    return work.to(torch.uint8)


def _checked_frame(frame: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype not in (np.uint8, torch.uint8):
        raise DensePoseGazeError(
            f"A video frame has shape {tuple(frame.shape)} and dtype {frame.dtype}; the engine "
            "needs RGB frames as uint8 arrays of shape (height, width, 3). Decode the video as rgb24."
        )
    return frame


def _resized_chw(frame: np.ndarray | torch.Tensor, size: tuple[int, int], device: torch.device | None) -> torch.Tensor:
    """The frame resized to ``size`` as a (3, h, w) uint8 RGB tensor on ``device``."""
    on_cpu = isinstance(frame, np.ndarray) or frame.device.type == "cpu"
    if on_cpu and (device is None or device.type == "cpu"):
        rgb = frame.numpy() if isinstance(frame, torch.Tensor) else frame
        if rgb.shape[:2] != size:
            # np.array, not asarray: PIL's buffer is read-only, which torch warns about.
            image = Image.fromarray(np.ascontiguousarray(rgb))
            rgb = np.array(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))
        elif not rgb.flags.writeable:  # torch warns on read-only arrays (e.g. video frames)
            rgb = rgb.copy()
        return torch.from_numpy(rgb).permute(2, 0, 1)
    if isinstance(frame, np.ndarray):
        frame = torch.from_numpy(frame if frame.flags.writeable else frame.copy())
    return resize_like_pil(frame.to(device).permute(2, 0, 1), size)


def preprocess(
    frames: Sequence[np.ndarray | torch.Tensor],
    device: torch.device | str | None = None,
    min_size: int = MIN_SIZE_TEST,
    max_size: int = MAX_SIZE_TEST,
) -> ImageBatch:
    """Resize, convert to BGR, subtract the pixel mean and pad a list of RGB uint8 frames.

    Frames may differ in size; they are padded at the bottom/right to one shape
    divisible by 32. A frame that already has its resized size (such as
    Detectron2's own resized image) passes through the resize unchanged.
    """
    if len(frames) == 0:
        raise ValueError("preprocess needs at least one frame")
    device = torch.device(device) if device is not None else None
    resized: list[torch.Tensor] = []
    image_sizes: list[tuple[int, int]] = []
    original_sizes: list[tuple[int, int]] = []
    for frame in frames:
        height, width = (int(v) for v in _checked_frame(frame).shape[:2])
        size = resized_size(height, width, min_size, max_size)
        resized.append(_resized_chw(frame, size, device).to(device))
        image_sizes.append(size)
        original_sizes.append((height, width))
    pad_h, pad_w = (_round_up(max(s[i] for s in image_sizes), SIZE_DIVISIBILITY) for i in (0, 1))
    batch = torch.zeros((len(frames), 3, pad_h, pad_w), dtype=torch.float32, device=resized[0].device)
    mean = torch.tensor(PIXEL_MEAN_BGR, dtype=torch.float32, device=batch.device).view(3, 1, 1)
    for image, rgb, (h, w) in zip(batch, resized, image_sizes):
        inside = image[:, :h, :w]
        inside.copy_(rgb.flip(0))  # RGB -> BGR
        inside.sub_(mean)
        if PIXEL_STD_BGR != (1.0, 1.0, 1.0):
            inside.div_(torch.tensor(PIXEL_STD_BGR, dtype=torch.float32, device=batch.device).view(3, 1, 1))
    return ImageBatch(batch, image_sizes, original_sizes)


def _round_up(value: int, divisibility: int) -> int:
    return (value + divisibility - 1) // divisibility * divisibility
