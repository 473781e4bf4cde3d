"""Overlay video: the scene video with the body parts, the gaze circle and the part looked at.

:func:`render_overlay` decodes the scene video once, front to back, and for
each frame blends the part colours of :func:`~napari_densepose_gaze.parts.color_lut`
over the processed frames, draws the gaze point of the frame (the mean of its
valid samples) as a circle of the hit radius, and writes the name of the part
looked at (the frame's majority hit part, as in the frame table, with its head
region when it is on the head). Where the store has head U, V, the back and
sides of each head are drawn darker than its face, so face versus back of the
head shows at a glance (:mod:`.face_regions`). The result
is H.264 in the container the file name asks for (.mp4 by default), with the
source's frame timing, and the source's audio copied unchanged (no re-encode).
One frame is in memory at a time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .durable import atomic_path
from .errors import DensePoseGazeError
from .face_regions import HEAD_PARTS, region_ids
from .parts import color_lut

if TYPE_CHECKING:
    from .hits import HitTables
    from .recording import Recording
    from .store import ResultsStore

__all__ = ["render_overlay", "frame_overlays"]

#: ``progress(done, total)``: frames written so far and frames to write
Progress = Callable[[int, int], None]

_NO_PART = "no part"
_NOT_PROCESSED = "not processed"
_GAZE_RGB = (255, 255, 255)  # the circle where no part was hit
_BACK_OF_HEAD = 6  # region id of the back and sides of the head
_BACK_SHADE = 0.55  # brightness kept on the back of a head


def frame_overlays(tables: HitTables) -> pd.DataFrame:
    """Per frame with samples: gaze point, circle radius [px], part id and the label to write.

    The label is the frame's majority hit part with its person id, "no part"
    where the gaze hit nothing and "not processed" where the frame has no
    DensePose results; frames without a valid sample get no circle.
    """
    frames = tables.frames
    samples = tables.samples
    valid = samples[samples["valid"].astype(bool) & (samples["frame"] >= 0)]
    radius = valid.groupby("frame")["radius [px]"].mean()
    out = pd.DataFrame({
        "frame": frames["frame"].to_numpy(dtype=np.int64),
        "x": pd.to_numeric(frames["gaze x [px]"], errors="coerce").to_numpy(dtype=np.float64),
        "y": pd.to_numeric(frames["gaze y [px]"], errors="coerce").to_numpy(dtype=np.float64),
    })
    out["radius"] = radius.reindex(out["frame"]).to_numpy(dtype=np.float64)
    part = pd.to_numeric(frames["part id"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    out["part id"] = part
    labels = []
    regions = frames["region"] if "region" in frames else pd.Series(None, index=frames.index, dtype=object)
    for processed, assessed, p, name, person, region in zip(frames["processed"], frames["assessed samples"], part,
                                                            frames["part"], frames["person id"], regions):
        if isinstance(region, str):
            name = f"{name}: {region}"
        if not processed:
            labels.append(_NOT_PROCESSED)
        elif assessed == 0:
            labels.append("")  # only invalid samples: nothing was looked at
        elif p == 0:
            labels.append(_NO_PART)
        else:
            labels.append(f"{name} (person {int(person)})" if pd.notna(person) else str(name))
    out["label"] = labels
    return out.set_index("frame")


def _blend(rgb: np.ndarray, labels: np.ndarray, lut: np.ndarray, alpha: float) -> np.ndarray:
    on = labels > 0
    if on.any():
        colours = lut[labels[on], :3].astype(np.float32)
        rgb[on] = np.round(rgb[on] * (1.0 - alpha) + colours * alpha).astype(np.uint8)
    return rgb


def _shade_back_of_head(rgb: np.ndarray, labels: np.ndarray, head_uv: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    back = region_ids(labels, *head_uv) == _BACK_OF_HEAD
    if back.any():
        rgb[back] = np.round(rgb[back] * _BACK_SHADE).astype(np.uint8)
    return rgb


def _draw_gaze(rgb: np.ndarray, row: pd.Series | None, lut: np.ndarray) -> None:
    import cv2

    height = rgb.shape[0]
    scale = max(height / 720.0, 0.35)
    thickness = max(1, round(2 * scale))
    if row is None:
        return
    if math.isfinite(row["x"]) and math.isfinite(row["y"]):
        colour = tuple(int(c) for c in lut[row["part id"], :3]) if row["part id"] > 0 else _GAZE_RGB
        radius = row["radius"] if math.isfinite(row["radius"]) else 0.0
        centre = (int(round(row["x"])), int(round(row["y"])))
        # a dark ring under the coloured one keeps the circle visible on any background
        cv2.circle(rgb, centre, max(int(round(radius)), 2), (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.circle(rgb, centre, max(int(round(radius)), 2), colour, thickness, cv2.LINE_AA)
        cv2.circle(rgb, centre, max(thickness, 2), colour, -1, cv2.LINE_AA)
    if row["label"]:
        # white text on a dark box: readable on any scene, and strokes of one width stay aligned
        font = cv2.FONT_HERSHEY_SIMPLEX
        (text_w, text_h), baseline = cv2.getTextSize(row["label"], font, scale, thickness)
        pad = max(2, round(4 * scale))
        x0, y0 = pad, pad
        cv2.rectangle(rgb, (x0, y0), (x0 + text_w + 2 * pad, y0 + text_h + baseline + 2 * pad), (0, 0, 0), -1)
        cv2.putText(rgb, row["label"], (x0 + pad, y0 + pad + text_h), font, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)


#: file suffix -> the FFmpeg muxer that writes it (named, since the temporary file's name says nothing)
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


def render_overlay(
    recording: Recording,
    store: ResultsStore,
    tables: HitTables,
    out_path: str | os.PathLike[str],
    *,
    alpha: float = 0.5,
    crf: int = 20,
    preset: str = "veryfast",
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path | None:
    """Write the overlay video of ``recording`` to ``out_path``; return the path (None if cancelled).

    ``alpha`` is the opacity of the part colours, ``crf``/``preset`` are
    libx264's quality and speed. ``progress(done, total)`` is called per frame;
    ``cancel()`` returning True stops early, leaves no file behind and returns None.
    """
    import av

    if not 0.0 <= alpha <= 1.0:
        raise DensePoseGazeError(f"The overlay opacity must lie between 0 and 1, not {alpha!r}.")
    n_frames = recording.n_frames
    if store.shape[0] != n_frames or store.shape[1:] != (recording.frame_size[1], recording.frame_size[0]):
        raise DensePoseGazeError(
            f"The results store {store.folder} does not match the recording {recording.folder} "
            f"({store.shape[0]} frames of {store.shape[2]}x{store.shape[1]} px against {n_frames} of "
            f"{recording.frame_size[0]}x{recording.frame_size[1]} px): open the store made for this recording."
        )
    out_path = Path(out_path).expanduser()
    if not out_path.suffix:
        out_path = out_path.with_suffix(".mp4")
    container = CONTAINERS.get(out_path.suffix.lower())
    if container is None:
        raise DensePoseGazeError(
            f"Cannot write the overlay video {out_path}: give a name ending in {', '.join(CONTAINERS)}."
        )
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DensePoseGazeError(f"Cannot create the folder {out_path.parent}: {exc}. Choose another one.") from exc
    reader = recording.video_reader()
    width, height = recording.frame_size
    pts = reader.pts[:n_frames]
    time_base = Fraction(reader.time_base)
    fps = reader.fps if math.isfinite(reader.fps) and reader.fps > 0 else 30.0
    processed = np.zeros(n_frames, dtype=bool)
    done_frames = store.processed_frames()
    processed[done_frames[done_frames < n_frames]] = True
    overlays = frame_overlays(tables)
    lut = color_lut()
    try:
        with atomic_path(out_path, what="the overlay video") as tmp, av.open(str(recording.video_path)) as source, \
                av.open(str(tmp), mode="w", format=container) as target:
            video = target.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                      options={"crf": str(int(crf)), "preset": preset})
            # even sizes for yuv420p; an odd last row/column is cropped
            video.width, video.height = width - width % 2, height - height % 2
            video.pix_fmt = "yuv420p"
            video.time_base = time_base
            video.codec_context.time_base = time_base
            audio_in = source.streams.audio[0] if source.streams.audio else None
            audio_out = target.add_stream_from_template(audio_in) if audio_in is not None else None
            packets = source.demux(audio_in) if audio_in is not None else iter(())
            pending = _AudioCopy(packets, audio_in, audio_out, target)
            last_pts = None
            for i, rgb in reader.iter_frames(stop=n_frames):
                if cancel is not None and cancel():
                    raise _Cancelled
                if processed[i]:
                    labels, _ = store.read_frame(i)
                    rgb = _blend(rgb, np.asarray(labels), lut, alpha)
                    if store.head_uv is not None and np.isin(labels, HEAD_PARTS).any():
                        rgb = _shade_back_of_head(rgb, labels, store.read_head_uv(i))
                _draw_gaze(rgb, overlays.loc[i] if i in overlays.index else None, lut)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: video.height, : video.width]),
                                                   format="rgb24")
                frame_pts = int(pts[i]) if last_pts is None or int(pts[i]) > last_pts else last_pts + 1
                frame.pts = last_pts = frame_pts
                frame.time_base = time_base
                target.mux(video.encode(frame))
                pending.copy_until(float(frame_pts * time_base))  # keeps audio and video interleaved
                if progress is not None:
                    progress(i + 1, n_frames)
            target.mux(video.encode(None))
            pending.copy_until(math.inf)
    except _Cancelled:  # raised, not returned: leaving the block normally would keep the partial video
        return None
    except (av.error.FFmpegError, OSError) as exc:
        raise DensePoseGazeError(f"Cannot write the overlay video {out_path}: {exc}. "
                                 "Check the folder is writable and has free space.") from exc
    return out_path


class _Cancelled(Exception):
    """The user cancelled the rendering."""


class _AudioCopy:
    """Copies the source's audio packets into the output, in step with the video."""

    def __init__(self, packets, stream_in, stream_out, target) -> None:
        self._packets = iter(packets)
        self._in, self._out, self._target = stream_in, stream_out, target
        self._next = None  # a packet read but not yet due

    def copy_until(self, seconds: float) -> None:
        if self._out is None:
            return
        while True:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    self._out = None
                    return
                if self._next.dts is None:  # the demuxer's empty flush packet
                    self._next = None
                    continue
            packet = self._next
            if packet.pts is not None and float(packet.pts * self._in.time_base) > seconds:
                return
            packet.stream = self._out
            self._target.mux(packet)
            self._next = None
