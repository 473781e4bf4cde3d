"""How tolerant a hit is: the radius around a gaze point, in pixels or degrees of visual angle.

A radius in degrees becomes pixels through the scene camera intrinsics
(:mod:`napari_densepose_gaze.intrinsics`, either spelling of the distortion):
the gaze point is undistorted to a ray, eight rays at the radius's angle around
it are projected back with the lens distortion, and the radius is their mean
distance from the gaze point's own projection. A calibrated lens model covers
the field it was fitted to, which on Neon stops short of the image corners; a
gaze point beyond it gets the radius of the last point towards the principal
point that the model maps, so no radius is NaN.

The default radius is the device's published gaze accuracy, from
:mod:`napari_densepose_gaze.glasses`: in degrees where the intrinsics are
usable, else in pixels at the device's nominal focal length, with a warning
when intrinsics were there but refused.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import DensePoseGazeError
from ..glasses import device_of
from ..intrinsics import Intrinsics, IntrinsicsError, cone_radius, intrinsics_from, undistort, valid_pixels

__all__ = ["DEFAULT_MAX_GAP_MS", "HitSettings", "IntrinsicsWarning", "default_radius", "radius_px"]

DEFAULT_MAX_GAP_MS = 50.0
_TOWARDS_CENTRE_STEPS = 30  # bisection steps towards the principal point for points the lens model does not cover


class IntrinsicsWarning(UserWarning):
    """Intrinsics were present but refused; the default radius fell back to pixels."""


@dataclass(frozen=True)
class HitSettings:
    """How tolerant a hit is: ``radius`` in ``unit`` ("px" or "deg"), and the dwell-time gap cap."""

    radius: float
    unit: Literal["px", "deg"] = "px"
    max_gap_ms: float = DEFAULT_MAX_GAP_MS

    def __post_init__(self) -> None:
        if self.unit not in ("px", "deg"):
            raise DensePoseGazeError(f"The hit radius unit must be 'px' or 'deg', not {self.unit!r}.")
        if not (math.isfinite(self.radius) and self.radius >= 0):
            raise DensePoseGazeError(f"The hit radius must be a number >= 0, not {self.radius!r}.")
        if self.unit == "deg" and self.radius >= 45:
            raise DensePoseGazeError(
                f"A hit radius of {self.radius} degrees is larger than any gaze error; give less than 45 degrees."
            )
        if not (math.isfinite(self.max_gap_ms) and self.max_gap_ms > 0):
            raise DensePoseGazeError(f"max_gap_ms must be a positive number of milliseconds, not {self.max_gap_ms!r}.")


def default_radius(
    scene_camera: Mapping | None, frame_size: tuple[int, int], info: Mapping | None = None
) -> HitSettings:
    """The default tolerance: the device's published gaze accuracy (device from ``info`` when given).

    In degrees when the intrinsics are usable; otherwise converted to pixels
    with the device's nominal focal length scaled to the video width, at the
    image centre (an :class:`IntrinsicsWarning` says why when intrinsics were
    given but refused).
    """
    glasses = device_of(scene_camera, frame_size, info)
    degrees = glasses.default_radius_deg
    if scene_camera:
        try:
            intrinsics_from(scene_camera, frame_size=frame_size)
            return HitSettings(degrees, "deg")
        except IntrinsicsError as exc:
            warnings.warn(f"{exc} The default hit radius is in pixels instead.", IntrinsicsWarning, stacklevel=2)
    pixels = glasses.focal_px * frame_size[0] / glasses.frame_size[0] * math.tan(math.radians(degrees))
    return HitSettings(round(pixels, 1), "px")


def radius_px(
    x: np.ndarray, y: np.ndarray, settings: HitSettings, scene_camera: Mapping | None = None
) -> np.ndarray:
    """The radius in pixels around each gaze point (NaN where the point is NaN), see the module docstring.

    A radius in degrees needs usable intrinsics: without them, or with
    intrinsics :mod:`~napari_densepose_gaze.intrinsics` refuses, it is a
    :class:`DensePoseGazeError` that says to give the radius in pixels.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if settings.unit == "px":
        return np.full(x.shape, float(settings.radius))
    if not scene_camera:
        raise DensePoseGazeError(
            f"A hit radius of {settings.radius} degrees needs the scene camera intrinsics "
            "(scene_camera.json), which this recording lacks: give the radius in pixels instead."
        )
    intrinsics = intrinsics_from(scene_camera)
    out = np.full(x.shape, np.nan)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any() or settings.radius == 0:
        out[finite] = 0.0
        return out
    normalized = _covered(np.column_stack([x[finite], y[finite]]), intrinsics)
    out[finite] = cone_radius(normalized, intrinsics, math.radians(settings.radius))
    return out


def _covered(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """The undistorted points; beyond the lens model's field, the last point towards the centre that it maps."""
    normalized = undistort(points, intrinsics)
    bad = ~valid_pixels(points, normalized, intrinsics)
    if not bad.any():
        return normalized
    centre = np.asarray(intrinsics.principal_point)
    outward = points[bad] - centre
    low, high = np.zeros(int(bad.sum())), np.ones(int(bad.sum()))  # the principal point always maps
    for _ in range(_TOWARDS_CENTRE_STEPS):
        mid = (low + high) / 2
        trial = centre + mid[:, None] * outward
        ok = valid_pixels(trial, undistort(trial, intrinsics), intrinsics)
        low = np.where(ok, mid, low)
        high = np.where(ok, high, mid)
    normalized[bad] = undistort(centre + low[:, None] * outward, intrinsics)
    return normalized
