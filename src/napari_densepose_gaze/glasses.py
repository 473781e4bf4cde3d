"""Facts about Pupil Labs' glasses (Neon and Pupil Invisible), each defined here once.

The scene camera's frame size and nominal focal length, the default hit radius
(the published uncalibrated gaze accuracy, docs/hits.md gives the sources), and
how a recording's device is recognised. Everything that needs one of these
(hit radius, synthetic exports, the sample recording) reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Glasses", "GLASSES", "NEON", "INVISIBLE", "device_of"]


@dataclass(frozen=True)
class Glasses:
    """One kind of eye-tracking glasses and its scene camera."""

    name: str  # "neon" or "invisible", as recordings and options name it
    frame_size: tuple[int, int]  # (width, height) of the scene video in pixels
    focal_px: float  # nominal focal length in pixels at that frame size
    default_radius_deg: float  # default hit radius: the published uncalibrated gaze accuracy


NEON = Glasses("neon", (1600, 1200), 892.0, 1.8)
# 4.6 deg is not confirmed from a source here (docs/hits.md says so).
INVISIBLE = Glasses("invisible", (1088, 1080), 766.0, 4.6)
#: name -> glasses
GLASSES = {g.name: g for g in (NEON, INVISIBLE)}


def device_of(scene_camera: dict | None, frame_size: tuple[int, int]) -> Glasses:
    """The glasses of a recording: Invisible for a rotation matrix in the intrinsics or a ~1088x1080 video, else Neon."""
    if scene_camera and "rotation_matrix" in scene_camera:
        return INVISIBLE
    width, height = frame_size
    inv_w, inv_h = INVISIBLE.frame_size
    return INVISIBLE if abs(width / height - inv_w / inv_h) < 0.02 else NEON
