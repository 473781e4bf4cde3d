"""Write synthetic scene videos shaped like Pupil Cloud's: H.264 in .mp4, optional audio."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["write_h264"]

_AUDIO_RATE = 48_000
_AUDIO_FRAME_SAMPLES = 1024  # AAC's frame size


def write_h264(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int = 30,
    audio_seconds: float | None = None,
    gop: int = 30,
    crf: int = 23,
    preset: str = "ultrafast",
    bframes: int = 2,
) -> int:
    """Encode RGB frames ``(H, W, 3) uint8`` into an H.264 (yuv420p) .mp4; return the frame count.

    Like a real scene camera, only every ``gop``-th frame is a keyframe and
    ``bframes`` B-frames are allowed, so readers meet packets in decode order
    that differs from presentation order. ``audio_seconds`` adds a quiet AAC tone
    of that length (Pupil Cloud videos may carry the wearer's microphone).
    H.264 with yuv420p needs even width and height.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame_iter = iter(frames)
    first = next(frame_iter, None)
    if first is None:
        raise ValueError(f"no frames given for {path}")
    height, width = np.asarray(first).shape[:2]
    n_written = 0
    with av.open(str(path), mode="w") as container:
        # video first, as in camera files: stream 0 is the scene video
        video = _add_video_stream(container, width, height, fps, gop, crf, preset, bframes)
        tone = _Tone(container, float(audio_seconds)) if audio_seconds else None
        for rgb in itertools.chain([first], frame_iter):
            rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
            if rgb.shape != (height, width, 3):
                raise ValueError(
                    f"frame {n_written} has shape {rgb.shape}, expected (H, W, 3) = {(height, width, 3)}"
                )
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = n_written
            container.mux(video.encode(frame))
            n_written += 1
            if tone is not None:
                tone.write_until(n_written / fps)  # interleave audio with video
        container.mux(video.encode(None))
        if tone is not None:
            tone.write_until(float(audio_seconds))
            tone.flush()
    return n_written


def _add_video_stream(container, width: int, height: int, fps: int, gop: int, crf: int, preset: str, bframes: int):
    if width % 2 or height % 2:
        raise ValueError(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
    stream = container.add_stream(
        "libx264",
        rate=fps,
        options={
            "crf": str(crf),
            "preset": preset,
            # closed GOPs of fixed length: a keyframe every `gop` frames, no scene-cut keyframes
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "bf": str(bframes),  # applied after the preset, which may turn B-frames off
        },
    )
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, fps)
    stream.codec_context.time_base = Fraction(1, fps)
    return stream


class _Tone:
    """A quiet 440 Hz AAC tone, written in step with the video."""

    def __init__(self, container, seconds: float) -> None:
        self._container = container
        self._stream = container.add_stream("aac", rate=_AUDIO_RATE, layout="mono")
        self._n_total = int(round(seconds * _AUDIO_RATE))
        self._next = 0  # first sample not yet written

    def write_until(self, seconds: float) -> None:
        stop = min(self._n_total, int(round(seconds * _AUDIO_RATE)))
        while self._next < stop:
            n = min(_AUDIO_FRAME_SAMPLES, self._n_total - self._next)
            t = (self._next + np.arange(n, dtype=np.float64)) / _AUDIO_RATE
            chunk = (0.05 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk[np.newaxis, :], format="fltp", layout="mono")
            frame.sample_rate = _AUDIO_RATE
            frame.pts = self._next
            self._container.mux(self._stream.encode(frame))
            self._next += n

    def flush(self) -> None:
        self._container.mux(self._stream.encode(None))
