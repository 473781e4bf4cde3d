"""Scene camera intrinsics as Pupil Labs writes them: parsed, validated, and used to undistort.

``scene_camera.json`` holds ``camera_matrix`` (3x3) and the lens distortion in
OpenCV order (k1 k2 p1 p2 k3 k4 k5 k6 ...). Real Neon files name the
distortion ``distortion_coefficients``, Pupil Invisible files ``dist_coefs``;
both are read, as a nested ``[[...]]`` or a flat ``[...]`` list, and so is a
file that wraps the intrinsics in one more object (e.g. keyed by resolution).

Intrinsics that would give a wrong radius are refused here, with a message
that names the file and the value, rather than giving a NaN radius (hits
near a part silently lost) or a radius of millions of pixels: every number
finite, positive focal lengths, a distortion vector of a length OpenCV
accepts, and a model that maps the frame (up to the ellipse inscribed in it:
real Neon calibrations do not reach the image corners) to rays and back
(:func:`check_plausible`).

Undistortion uses OpenCV's iterative solver run to 1e-12 (normalized units);
:func:`valid_pixels` says where its answer projects back onto the pixel.
Pupil Labs' ``pupil-labs-camera`` package (1.2.1) wraps the same OpenCV call
with OpenCV's default of five iterations: measured on a real Neon calibration
over 100,000 pixels it was nine times faster, but 46 % of the points were off
by more than 0.1 px and the worst by 162 px, against 0.002 px here (checked
with an independent Newton solver), so it is not used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real

import numpy as np

from .errors import DensePoseGazeError

__all__ = [
    "DISTORTION_KEYS",
    "OPENCV_DISTORTION_LENGTHS",
    "Intrinsics",
    "IntrinsicsError",
    "intrinsics_from",
    "check_plausible",
    "valid_pixels",
    "cone_radius",
    "undistort",
    "project",
]

#: the distortion's key: Neon's spelling first, then Pupil Invisible's
DISTORTION_KEYS = ("distortion_coefficients", "dist_coefs")
#: lengths of a distortion vector that OpenCV accepts (no distortion: empty)
OPENCV_DISTORTION_LENGTHS = (4, 5, 8, 12, 14)

_GRID = (9, 7)  # pixels across and down the frame at which a model must round-trip
_ROUND_TRIP_PX = 0.05  # how far a pixel may land from itself after undistorting and projecting again
_MAX_OFF_AXIS_DEG = 85.0  # no scene camera of these glasses sees further off its axis
_FOCAL_RANGE = (0.05, 50.0)  # plausible focal length, in frame widths
_ITERATIONS = (100, 1e-12)  # OpenCV's undistortion: iterations, and the change that ends them
_SPREAD = 5.0  # how much wider or narrower a degree may be anywhere in the frame than at its centre
_CONE_DIRECTIONS = 8
_ADVICE = "download the recording again, or give the hit radius in pixels."


class IntrinsicsError(DensePoseGazeError):
    """Scene camera intrinsics that cannot give a correct radius in degrees."""


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare
class Intrinsics:
    """A pinhole camera matrix and an OpenCV lens distortion vector, checked finite and well-formed."""

    camera_matrix: np.ndarray  # 3x3 float64
    distortion: np.ndarray  # float64, length 0 or one of OPENCV_DISTORTION_LENGTHS
    distortion_key: str | None  # the key it was read from; None: the file gave no distortion
    where: str  # the file (or other source) it came from, for messages

    @property
    def focal(self) -> tuple[float, float]:
        return float(self.camera_matrix[0, 0]), float(self.camera_matrix[1, 1])

    @property
    def principal_point(self) -> tuple[float, float]:
        return float(self.camera_matrix[0, 2]), float(self.camera_matrix[1, 2])


def intrinsics_from(
    scene_camera: Mapping, where: str = "scene_camera.json", frame_size: tuple[int, int] | None = None
) -> Intrinsics:
    """The intrinsics in a parsed ``scene_camera.json``; :class:`IntrinsicsError` if unusable.

    ``frame_size`` (width, height), when known, picks a block keyed by
    resolution and bounds the plausibility check (:func:`check_plausible`).
    """
    block = _intrinsics_block(scene_camera, where, frame_size)
    camera = _numbers(block["camera_matrix"], "camera_matrix", where)
    if camera.size != 9:
        raise IntrinsicsError(
            f"{where}: camera_matrix has {camera.size} numbers where a 3x3 matrix has 9: {_ADVICE}"
        )
    camera = camera.reshape(3, 3)
    key = next((k for k in DISTORTION_KEYS if k in block), None)
    distortion = np.zeros(0) if key is None else _numbers(block[key], key, where)
    if distortion.ndim > 2 or (distortion.ndim == 2 and min(distortion.shape) != 1):
        raise IntrinsicsError(
            f"{where}: {key} has the shape {distortion.shape}; it must be one row of coefficients: {_ADVICE}"
        )
    distortion = distortion.ravel()
    if distortion.size and distortion.size not in OPENCV_DISTORTION_LENGTHS:
        raise IntrinsicsError(
            f"{where}: {key} has {distortion.size} coefficients; OpenCV takes "
            f"{', '.join(map(str, OPENCV_DISTORTION_LENGTHS))}: {_ADVICE}"
        )
    intrinsics = Intrinsics(camera, distortion, key, where)
    check_plausible(intrinsics, frame_size)
    return intrinsics


def _intrinsics_block(scene_camera: Mapping, where: str, frame_size: tuple[int, int] | None) -> Mapping:
    """The object holding ``camera_matrix``: the file itself, or the one (or the frame size's) object in it."""
    if not isinstance(scene_camera, Mapping):
        raise IntrinsicsError(
            f"{where} holds {type(scene_camera).__name__}, not an object with camera_matrix: {_ADVICE}"
        )
    if "camera_matrix" in scene_camera:
        return scene_camera
    nested = {str(k): v for k, v in scene_camera.items() if isinstance(v, Mapping) and "camera_matrix" in v}
    if frame_size is not None and len(nested) > 1:
        width, height = frame_size
        for name in (f"({width}, {height})", f"{width}x{height}", f"[{width}, {height}]"):
            if name in nested:
                return nested[name]
    if len(nested) == 1:
        return next(iter(nested.values()))
    found = f"objects {', '.join(sorted(nested))}" if nested else "no camera_matrix"
    raise IntrinsicsError(f"{where} has {found} where one camera_matrix was expected: {_ADVICE}")


def _numbers(value: object, name: str, where: str) -> np.ndarray:
    """``value`` as a float64 array, refusing text, booleans, ragged lists and non-finite numbers."""
    def flat(v: object, depth: int) -> list:
        if isinstance(v, (list, tuple)) and depth < 3:
            return [x for item in v for x in flat(item, depth + 1)]
        return [v]

    items = flat(value, 0)
    bad = next((v for v in items if isinstance(v, bool) or not isinstance(v, Real)), None)
    if bad is not None or not items:
        shown = repr(bad)[:40] if items else "nothing"
        raise IntrinsicsError(f"{where}: {name} holds {shown} where numbers belong: {_ADVICE}")
    try:
        array = np.array(value, dtype=np.float64)
    except (ValueError, OverflowError) as exc:  # ragged rows, or integers beyond float64
        raise IntrinsicsError(f"{where}: {name} is not a table of numbers ({exc}): {_ADVICE}") from exc
    if not np.isfinite(array).all():
        raise IntrinsicsError(f"{where}: {name} holds {array.ravel()[~np.isfinite(array.ravel())][0]} where "
                              f"finite numbers belong: {_ADVICE}")
    return array


def check_plausible(intrinsics: Intrinsics, frame_size: tuple[int, int] | None = None) -> None:
    """Refuse intrinsics that no scene camera has (:class:`IntrinsicsError`, naming the value).

    Checks the matrix's form and focal lengths, then, over a grid of pixels
    inside the ellipse inscribed in the frame, that each undistorts to a ray
    less than 85 degrees off axis, projects back onto itself, and that a cone
    of one degree around it is between a fifth and five times as wide as at
    the principal point. The image corners are left out: real Neon
    calibrations stop being invertible there (see :func:`valid_pixels`).
    Without ``frame_size`` the frame is taken as twice the principal point
    (scene cameras are centred to a few percent).
    """
    k, where = intrinsics.camera_matrix, intrinsics.where
    (fx, fy), (cx, cy) = intrinsics.focal, intrinsics.principal_point
    if not np.allclose(k[2], [0.0, 0.0, 1.0]) or k[1, 0] != 0 or abs(k[0, 1]) > 1e-6 * abs(fx):
        raise IntrinsicsError(f"{where}: camera_matrix {k.tolist()} is not a pinhole camera matrix "
                              f"(rows fx 0 cx, 0 fy cy, 0 0 1): {_ADVICE}")
    if not (fx > 0 and fy > 0):
        raise IntrinsicsError(f"{where}: camera_matrix has the focal lengths fx={fx:g}, fy={fy:g}; both must be "
                              f"positive: {_ADVICE}")
    width, height = frame_size if frame_size is not None else (2 * cx, 2 * cy)
    if not (0 < cx < width and 0 < cy < height):
        raise IntrinsicsError(f"{where}: the principal point ({cx:g}, {cy:g}) lies outside the "
                              f"{width:g}x{height:g} frame: {_ADVICE}")
    low, high = _FOCAL_RANGE
    if not all(low * width <= f <= high * width for f in (fx, fy)):
        raise IntrinsicsError(f"{where}: the focal lengths fx={fx:g}, fy={fy:g} px do not fit a {width:g} px wide "
                              f"frame (between {low * width:g} and {high * width:g} px): {_ADVICE}")
    xs, ys = np.meshgrid(np.linspace(0, width, _GRID[0]), np.linspace(0, height, _GRID[1]))
    inside = ((xs - width / 2) / (width / 2)) ** 2 + ((ys - height / 2) / (height / 2)) ** 2 <= 1 + 1e-9
    pixels = np.vstack([[cx, cy], np.column_stack([xs[inside], ys[inside]])])
    normalized = undistort(pixels, intrinsics)
    off_axis = np.degrees(np.arctan(np.hypot(normalized[:, 0], normalized[:, 1])))
    error = _round_trip_error(pixels, normalized, intrinsics)
    one_degree = cone_radius(normalized, intrinsics, math.radians(1.0))
    # relative to a pinhole camera at the centre, then to the centre itself
    spread = np.append(one_degree[0] / (math.sqrt(fx * fy) * math.tan(math.radians(1.0))), one_degree / one_degree[0])
    plausible = (np.isfinite(off_axis) & (off_axis < _MAX_OFF_AXIS_DEG) & (error < _ROUND_TRIP_PX)
                 & np.isfinite(spread[1:]) & (spread[1:] > 1 / _SPREAD) & (spread[1:] < _SPREAD))
    plausible &= np.isfinite(spread[0]) & (1 / _SPREAD < spread[0] < _SPREAD)
    if not plausible.all():
        worst = int(np.argmin(plausible))
        x, y = pixels[worst]
        coefficients = ", ".join(f"{c:g}" for c in intrinsics.distortion)
        raise IntrinsicsError(
            f"{where}: the lens distortion ({intrinsics.distortion_key} = [{coefficients}]) does not map the "
            f"pixel ({x:g}, {y:g}) of the {width:g}x{height:g} frame to a ray and back plausibly "
            f"(off by {error[worst]:.3g} px, 1 degree = {one_degree[worst]:.3g} px there, "
            f"{one_degree[0]:.3g} px at the centre): no real lens has such coefficients; {_ADVICE}"
        )


def valid_pixels(points: np.ndarray, normalized: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """True where the undistorted ``normalized`` point projects back onto its pixel ``points``.

    A calibrated model is only valid over the field it was fitted to: the
    real Neon model's distorted radius peaks about 66 degrees off axis, short
    of the image corners, so no ray projects to a corner pixel and OpenCV's
    undistortion returns a point that does not project back.
    """
    return _round_trip_error(np.asarray(points, dtype=np.float64).reshape(-1, 2), normalized, intrinsics) \
        < _ROUND_TRIP_PX


def _round_trip_error(pixels: np.ndarray, normalized: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    back = project(np.column_stack([normalized, np.ones(len(normalized))]), intrinsics)
    error = np.hypot(*(back - pixels).T)
    return np.where(np.isfinite(error), error, np.inf)


def cone_radius(normalized: np.ndarray, intrinsics: Intrinsics, theta: float) -> np.ndarray:
    """Mean pixel distance of a cone of half-angle ``theta`` (radians) around each ray, from the ray's pixel.

    ``normalized`` are undistorted points ``(N, 2)`` (rays ``(x, y, 1)``); eight
    rays at ``theta`` from each, at azimuths 0, 45, ..., 315 degrees around it,
    are projected with the lens distortion.
    """
    normalized = np.asarray(normalized, dtype=np.float64).reshape(-1, 2)
    rays = np.column_stack([normalized, np.ones(len(normalized))])
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    # two unit vectors perpendicular to each ray (its z is > 0, so d x e_y is never 0)
    u = np.column_stack([-rays[:, 2], np.zeros(len(rays)), rays[:, 0]])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(rays, u)
    phi = 2 * np.pi * np.arange(_CONE_DIRECTIONS) / _CONE_DIRECTIONS
    around = np.cos(phi)[None, :, None] * u[:, None, :] + np.sin(phi)[None, :, None] * v[:, None, :]
    cone = math.cos(theta) * rays[:, None, :] + math.sin(theta) * around
    centre = project(rays, intrinsics)
    ring = project(cone.reshape(-1, 3), intrinsics).reshape(-1, _CONE_DIRECTIONS, 2)
    return np.linalg.norm(ring - centre[:, None, :], axis=-1).mean(axis=1)


def undistort(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Normalized image coordinates ``(N, 2)`` of distorted pixel points ``(N, 2)`` (iterated to 1e-12)."""
    import cv2

    points = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    if not len(points):
        return np.zeros((0, 2))
    count, eps = _ITERATIONS
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, count, eps)
    k, d = intrinsics.camera_matrix, intrinsics.distortion
    try:
        if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4 names the overload with criteria so
            out = cv2.undistortPointsIter(points, k, d, None, None, criteria)
        else:
            out = cv2.undistortPoints(points, k, d, R=None, P=None, criteria=criteria)
    except cv2.error as exc:
        raise IntrinsicsError(f"OpenCV cannot use the intrinsics of {intrinsics.where} "
                              f"({getattr(exc, 'err', exc)}): give the hit radius in pixels.") from exc
    return out.reshape(-1, 2)


def project(rays: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Distorted pixel positions ``(N, 2)`` of camera-frame rays ``(N, 3)`` (z > 0)."""
    import cv2

    rays = np.asarray(rays, dtype=np.float64).reshape(-1, 1, 3)
    if not len(rays):
        return np.zeros((0, 2))
    zero = np.zeros(3)
    try:
        pixels, _ = cv2.projectPoints(rays, zero, zero, intrinsics.camera_matrix, intrinsics.distortion)
    except cv2.error as exc:
        raise IntrinsicsError(f"OpenCV cannot use the intrinsics of {intrinsics.where} "
                              f"({getattr(exc, 'err', exc)}): give the hit radius in pixels.") from exc
    return pixels.reshape(-1, 2)
