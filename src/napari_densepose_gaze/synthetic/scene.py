"""A synthetic scene: simple humanoid figures walking across a textured room.

Each figure is drawn from filled shapes (head, torso, two arms, two legs, in
distinct colours) at a pose that is a pure function of time and seed, so that a
frame can be rendered on its own and gaze can be made to follow a figure's head
(:func:`figure_heads`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

__all__ = ["FigurePose", "figure_poses", "figure_heads", "render_frame"]

# limb lengths and thicknesses as fractions of the figure's height
_HEAD_RADIUS = 0.065
_SHOULDER_DROP = 0.17  # from the top of the head to the shoulders
_HIP_DROP = 0.50
_UPPER_ARM, _FOREARM, _ARM_THICK = 0.17, 0.15, 0.045
_THIGH, _SHIN, _LEG_THICK = 0.25, 0.24, 0.065

_SKIN = ((224, 172, 140), (141, 85, 36), (198, 134, 66), (255, 219, 172), (92, 56, 32))
_SHIRTS = ((200, 40, 40), (40, 90, 200), (40, 160, 70), (230, 160, 20), (150, 50, 170), (20, 170, 170))
_PANTS = ((40, 40, 90), (70, 50, 30), (90, 90, 90), (20, 60, 40), (110, 30, 40))


@dataclass(frozen=True)
class FigurePose:
    """Where one figure's parts are at a moment, in pixels (x, y)."""

    head: tuple[float, float]
    head_radius: float
    shoulder: tuple[float, float]  # centre of the shoulder line
    hip: tuple[float, float]  # centre of the hip line
    shoulders: tuple[tuple[float, float], tuple[float, float]]
    hips: tuple[tuple[float, float], tuple[float, float]]
    hands: tuple[tuple[float, float], tuple[float, float]]
    elbows: tuple[tuple[float, float], tuple[float, float]]
    knees: tuple[tuple[float, float], tuple[float, float]]
    feet: tuple[tuple[float, float], tuple[float, float]]
    height: float
    colors: dict


@lru_cache(maxsize=8)
def _figure_params(n_figures: int, seed: int) -> tuple[dict, ...]:
    rng = np.random.default_rng([seed, n_figures, 7])
    params = []
    shirts = rng.permutation(len(_SHIRTS))
    for k in range(n_figures):
        params.append(
            {
                "height": float(rng.uniform(0.5, 0.72)),  # of the frame height
                "ground": float(rng.uniform(0.88, 0.97)),  # feet, of the frame height
                "x0": float(rng.uniform(0.0, 1.0)),  # phase on the left-right path
                "speed": float(rng.uniform(0.08, 0.2)) * (1 if k % 2 == 0 else -1),  # path lengths per second
                "step_hz": float(rng.uniform(0.8, 1.3)),
                "step_phase": float(rng.uniform(0, 2 * np.pi)),
                "skin": _SKIN[int(rng.integers(len(_SKIN)))],
                "shirt": _SHIRTS[int(shirts[k % len(_SHIRTS)])],
                "pants": _PANTS[(k + int(rng.integers(len(_PANTS)))) % len(_PANTS)],
                "hair": tuple(int(v) for v in rng.integers(10, 90, 3)),
            }
        )
    return tuple(params)


def _triangle(u: float) -> float:
    """0..1..0 as u goes 0..0.5..1, periodic: walking there and back."""
    u = u % 1.0
    return 2 * u if u < 0.5 else 2 - 2 * u


def figure_poses(t: float, width: int, height: int, n_figures: int = 2, seed: int = 0) -> list[FigurePose]:
    """The pose of every figure at time ``t`` seconds, in figure order (stable over time)."""
    poses = []
    for p in _figure_params(n_figures, seed):
        h = p["height"] * height
        margin = 0.18 * h + 2
        x = margin + _triangle(p["x0"] + p["speed"] * t) * max(width - 2 * margin, 1)
        ground = p["ground"] * height
        top = ground - h
        swing = 0.45 * np.sin(2 * np.pi * p["step_hz"] * t + p["step_phase"])
        head = (x, top + _HEAD_RADIUS * h)
        shoulder = (x, top + _SHOULDER_DROP * h)
        hip = (x, top + _HIP_DROP * h)

        def limb(origin, angle, a, b, bend, h=h):  # h bound now: this figure's height, not the loop's last
            # angle 0 points straight down; the lower segment bends by `bend`
            joint = (origin[0] + a * h * np.sin(angle), origin[1] + a * h * np.cos(angle))
            end = (joint[0] + b * h * np.sin(angle + bend), joint[1] + b * h * np.cos(angle + bend))
            return joint, end

        elbows, hands, knees, feet, shoulders, hips = [], [], [], [], [], []
        for side in (-1, 1):  # seen from the front: arms swing against the legs
            sh = (x + side * 0.1 * h, shoulder[1] + 0.015 * h)
            hp = (x + side * 0.055 * h, hip[1] + 0.02 * h)
            e, hd = limb(sh, side * (0.12 + 0.25 * max(side * swing, 0)), _UPPER_ARM, _FOREARM, -side * 0.15)
            k, f = limb(hp, side * (0.06 + 0.12 * max(-side * swing, 0)), _THIGH, _SHIN, -side * 0.05)
            shoulders.append(sh)
            hips.append(hp)
            elbows.append(e)
            hands.append(hd)
            knees.append(k)
            feet.append(f)
        colors = {k: p[k] for k in ("skin", "shirt", "pants", "hair")}
        poses.append(
            FigurePose(
                head=head, head_radius=_HEAD_RADIUS * h, shoulder=shoulder, hip=hip,
                shoulders=tuple(shoulders), hips=tuple(hips), hands=tuple(hands), elbows=tuple(elbows),
                knees=tuple(knees), feet=tuple(feet), height=h, colors=colors,
            )
        )
    return poses


def figure_heads(t: float, width: int, height: int, n_figures: int = 2, seed: int = 0) -> np.ndarray:
    """Head centres ``(n_figures, 2)`` as (x, y) pixels at time ``t``, in figure order."""
    return np.array([pose.head for pose in figure_poses(t, width, height, n_figures, seed)], dtype=np.float64)


@lru_cache(maxsize=4)
def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 11])
    horizon = int(0.62 * height)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    wall = np.array([170, 180, 195], np.float32) * (1 - 0.25 * ys) + np.array([30, 25, 15], np.float32) * ys
    image = np.broadcast_to(wall, (height, width, 3)).copy()
    floor = np.array([120, 100, 80], np.float32)
    image[horizon:] = floor * (0.8 + 0.4 * ys[horizon:])
    # blotchy low-frequency texture plus fine grain, so the video is not flat
    low = (max(height // 24, 2), max(width // 24, 2))
    blotches = rng.normal(0, 16, (*low, 1)) + rng.normal(0, 4, (*low, 3))  # mostly brightness, a little hue
    image += cv2.resize(blotches.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 5, (height, width, 1)).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    # floor tiles and a few picture frames on the wall
    step = max(width // 12, 8)
    for x in range(-width, 2 * width, step):
        cv2.line(image, (x, horizon), (width // 2 + (x - width // 2) * 3, height), (90, 75, 60), 1, cv2.LINE_AA)
    for y in np.geomspace(1, height - horizon, 7)[:-1]:
        cv2.line(image, (0, horizon + int(y)), (width, horizon + int(y)), (90, 75, 60), 1, cv2.LINE_AA)
    for _ in range(3):
        w, h = int(rng.uniform(0.06, 0.14) * width), int(rng.uniform(0.08, 0.16) * height)
        x, y = int(rng.uniform(0, width - w)), int(rng.uniform(0.05, 0.35) * height)
        colour = tuple(int(c) for c in rng.integers(40, 220, 3))
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, -1)
        cv2.rectangle(image, (x, y), (x + w, y + h), (60, 45, 30), max(width // 320, 1) + 1)
    image.setflags(write=False)
    return image


def _pt(p) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def _shade(color, factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c * factor)) for c in color)


def _draw_figure(image: np.ndarray, pose: FigurePose) -> None:
    h = pose.height
    c = pose.colors
    arm_w = max(int(_ARM_THICK * h), 2)
    leg_w = max(int(_LEG_THICK * h), 2)
    # legs under the torso, arms over it; the figure's right side (viewer's left) a shade darker
    for i, factor in ((0, 0.85), (1, 1.0)):
        cv2.line(image, _pt(pose.hips[i]), _pt(pose.knees[i]), _shade(c["pants"], factor), leg_w, cv2.LINE_AA)
        cv2.line(image, _pt(pose.knees[i]), _pt(pose.feet[i]), _shade(c["pants"], factor), leg_w, cv2.LINE_AA)
        foot_end = (pose.feet[i][0] + (2 * i - 1) * 0.04 * h, pose.feet[i][1])
        cv2.line(image, _pt(pose.feet[i]), _pt(foot_end), (30, 30, 30), max(leg_w // 2, 2), cv2.LINE_AA)
    _draw_torso(image, pose)
    for i, factor in ((0, 0.85), (1, 1.0)):
        cv2.line(image, _pt(pose.shoulders[i]), _pt(pose.elbows[i]), _shade(c["shirt"], factor), arm_w, cv2.LINE_AA)
        cv2.line(image, _pt(pose.elbows[i]), _pt(pose.hands[i]), _shade(c["skin"], factor), arm_w, cv2.LINE_AA)
        cv2.circle(image, _pt(pose.hands[i]), max(arm_w * 2 // 3, 1), _shade(c["skin"], factor), -1, cv2.LINE_AA)
    neck_top = (pose.head[0], pose.head[1] + 0.8 * pose.head_radius)
    cv2.line(image, _pt(neck_top), _pt(pose.shoulder), c["skin"], max(arm_w, 2), cv2.LINE_AA)
    r = max(int(round(pose.head_radius)), 2)
    cv2.ellipse(image, _pt(pose.head), (int(r * 0.85), r), 0, 0, 360, c["skin"], -1, cv2.LINE_AA)
    cv2.ellipse(image, _pt(pose.head), (int(r * 0.9), int(r * 1.05)), 0, 180, 360, c["hair"], -1, cv2.LINE_AA)


def _draw_torso(image: np.ndarray, pose: FigurePose) -> None:
    h = pose.height
    sx, sy = pose.shoulder
    hx, hy = pose.hip
    polygon = np.array(
        [(sx - 0.11 * h, sy), (sx + 0.11 * h, sy), (hx + 0.085 * h, hy + 0.02 * h), (hx - 0.085 * h, hy + 0.02 * h)]
    )
    cv2.fillConvexPoly(image, np.round(polygon).astype(np.int32), pose.colors["shirt"], cv2.LINE_AA)
    belt = ((hx - 0.085 * h, hy), (hx + 0.085 * h, hy))
    cv2.line(image, _pt(belt[0]), _pt(belt[1]), pose.colors["pants"], max(int(0.03 * h), 2), cv2.LINE_AA)


def render_frame(t: float, width: int, height: int, n_figures: int = 2, seed: int = 0) -> np.ndarray:
    """An RGB ``(height, width, 3)`` uint8 image of the scene at time ``t`` seconds."""
    image = _background(int(width), int(height), int(seed)).copy()
    poses = figure_poses(t, width, height, n_figures, seed)
    for pose in sorted(poses, key=lambda pose: pose.hip[1]):  # lower on the floor is nearer: drawn last
        _draw_figure(image, pose)
    return image
