"""Facts about Pupil Labs' glasses (Neon and Pupil Invisible), each defined here once.

The scene camera's frame size and nominal focal length, the default hit radius
(the published uncalibrated gaze accuracy, docs/hits.md gives the sources), and
how a recording's device is recognised (from info.json first, the frame size
last). Everything that needs one of these (hit radius, synthetic exports, the
sample recording) reads it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
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


#: info.json fields only one kind of glasses writes (Pupil Labs' format pages and real files)
_INFO_FIELDS = {
    "neon": ("module_serial_number", "frame_name"),
    "invisible": ("glasses_serial_number", "scene_camera_serial_number"),
}


def device_of(scene_camera: Mapping | None, frame_size: tuple[int, int], info: Mapping | None = None) -> Glasses:
    """The glasses of a recording, from the best evidence there is.

    ``info.json`` first: Neon writes ``module_serial_number`` and
    ``frame_name``, Pupil Invisible ``glasses_serial_number`` and
    ``scene_camera_serial_number``. Then a ``rotation_matrix`` in the
    intrinsics (Invisible's format page). Only then the frame size: about
    1088x1080 is Invisible, anything else Neon.
    """
    if info:
        found = [name for name, fields in _INFO_FIELDS.items() if any(_text(info.get(f)) for f in fields)]
        if len(found) == 1:
            return GLASSES[found[0]]
    if isinstance(scene_camera, Mapping) and "rotation_matrix" in scene_camera:
        return INVISIBLE
    width, height = frame_size
    inv_w, inv_h = INVISIBLE.frame_size
    return INVISIBLE if height > 0 and abs(width / height - inv_w / inv_h) < 0.02 else NEON


def _text(value: object) -> bool:
    """A field that holds a serial or a name (text, or a whole number; anything else is no evidence)."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, str) and bool(value.strip())) or isinstance(value, int)
