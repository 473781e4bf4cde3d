"""DensePose's 24 body-part patches: ids, names, coarse groups and the project's colours.

Ids are DensePose's (0 background, 1..24); left and right are the person's own.
Every layer, table and figure of the project takes names and colours from here,
so a part looks the same everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BACKGROUND = 0

#: part id -> name, as in DensePose's fine segmentation
PART_NAMES: dict[int, str] = {
    1: "torso back",
    2: "torso front",
    3: "right hand",
    4: "left hand",
    5: "left foot",
    6: "right foot",
    7: "upper leg right, back",
    8: "upper leg left, back",
    9: "upper leg right, front",
    10: "upper leg left, front",
    11: "lower leg right, back",
    12: "lower leg left, back",
    13: "lower leg right, front",
    14: "lower leg left, front",
    15: "upper arm left, inside",
    16: "upper arm right, inside",
    17: "upper arm left, outside",
    18: "upper arm right, outside",
    19: "lower arm left, inside",
    20: "lower arm right, inside",
    21: "lower arm left, outside",
    22: "lower arm right, outside",
    23: "head, right side",
    24: "head, left side",
}
#: The largest part id; a label above it is no DensePose part.
MAX_PART = max(PART_NAMES)

#: part id -> coarse group (the groups a summary table reports)
PART_GROUPS: dict[int, str] = {
    1: "torso", 2: "torso",
    3: "right hand", 4: "left hand",
    5: "left foot", 6: "right foot",
    7: "right upper leg", 9: "right upper leg",
    8: "left upper leg", 10: "left upper leg",
    11: "right lower leg", 13: "right lower leg",
    12: "left lower leg", 14: "left lower leg",
    15: "left upper arm", 17: "left upper arm",
    16: "right upper arm", 18: "right upper arm",
    19: "left lower arm", 21: "left lower arm",
    20: "right lower arm", 22: "right lower arm",
    23: "head", 24: "head",
}

# Colours by body region so a glance tells head from arms from legs: head red,
# torso blue, arms green (upper) and teal (lower), legs purple (upper) and
# magenta (lower), hands orange, feet brown. The person's left side is lighter,
# and "back"/"outside" patches are a little darker than "front"/"inside".
_HEX: dict[int, str] = {
    1: "#1f4e9c", 2: "#4a90e2",
    3: "#e67e22", 4: "#f5b041",
    5: "#d2a679", 6: "#8e5b2e",
    7: "#5b2c83", 8: "#9b6fc4", 9: "#7d3cb5", 10: "#c39bd3",
    11: "#8e1f5e", 12: "#c2609a", 13: "#b8327f", 14: "#e59ac6",
    15: "#7fd17f", 16: "#3fae49", 17: "#5cb85c", 18: "#1e7b2b",
    19: "#7fe0d5", 20: "#27a699", 21: "#4fcfc2", 22: "#137a70",
    23: "#c0392b", 24: "#ec7063",
}


def part_color(part: int) -> tuple[float, float, float, float]:
    """RGBA in [0, 1] of a part id; background is transparent."""
    if part == BACKGROUND:
        return (0.0, 0.0, 0.0, 0.0)
    value = _HEX[part].lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    return (r, g, b, 1.0)


def part_colors() -> dict[int, tuple[float, float, float, float]]:
    """Part id (0..24) -> RGBA, background transparent."""
    return {part: part_color(part) for part in range(25)}


def color_lut() -> np.ndarray:
    """(25, 4) uint8 RGBA lookup table indexed by part id, for blending maps into images."""
    return np.round(np.array([part_color(p) for p in range(25)]) * 255).astype(np.uint8)


def part_name(part: int) -> str:
    return "background" if part == BACKGROUND else PART_NAMES[int(part)]


def parts_table() -> pd.DataFrame:
    """One row per id 0..24: ``index`` (napari's label column), ``part``, ``group``."""
    ids = list(range(25))
    return pd.DataFrame(
        {
            "index": ids,
            "part": [part_name(p) for p in ids],
            "group": ["background" if p == 0 else PART_GROUPS[p] for p in ids],
        }
    )
