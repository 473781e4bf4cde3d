"""Frame-accurate, lazy access to a scene video (H.264 .mp4) with PyAV.

Frame ``i`` is the ``i``-th frame in presentation order, which is row ``i`` of
Pupil Cloud's ``world_timestamps.csv``. Opening a video only demuxes packets (no
decoding) to learn every frame's pts and where the keyframes are; a frame is
decoded on request by seeking to the keyframe at or before it and decoding
forward.

Threads: ``VideoReader.frame`` (and ``VideoArray`` built on it) serialise on one
lock per reader, so napari may read from any thread. ``VideoReader.iter_frames``
opens its own container and decoder for each call, so a pipeline streaming
frames neither waits on nor disturbs the viewer's decoder position.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .errors import DensePoseGazeError

__all__ = ["VideoReader", "VideoArray", "count_frames"]

# Refuse to materialise more than this at once: a 5-minute Neon video is ~50 GB of RGB.
MAX_MATERIALIZE_BYTES = 2 * 2**30
_DEFAULT_CACHE_BYTES = 128 * 2**20  # ~22 Neon frames


@dataclass(frozen=True)
class _FrameIndex:
    """Every frame's pts in presentation order, and where to seek for each keyframe."""

    pts: np.ndarray  # (n,) int64, ascending
    keyframes: np.ndarray  # (k,) int64 frame indices of keyframes, ascending
    time_base: Fraction
    frame_of_pts: dict[int, int]  # decoded frame's pts -> frame index

    def keyframe_at_or_before(self, i: int) -> int:
        """Position in ``keyframes`` of the last keyframe whose frame index is <= i (or 0)."""
        k = int(np.searchsorted(self.keyframes, i, side="right")) - 1
        return max(k, 0)


def _open_container(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise DensePoseGazeError(
            f"Scene video {path} does not exist: check the recording folder holds its .mp4 file."
        )
    if not path.is_file():
        raise DensePoseGazeError(f"Scene video {path} is not a file: pick the .mp4 file or its recording folder.")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as err:
        raise DensePoseGazeError(
            f"Scene video {path} cannot be read as a video ({err}); it may be truncated or not an .mp4: "
            "download it again from Pupil Cloud."
        ) from err
    if not container.streams.video:
        container.close()
        raise DensePoseGazeError(f"{path} has no video stream: pick the recording's scene video (.mp4).")
    return container


def _build_index(path: Path, container: av.container.InputContainer) -> _FrameIndex:
    """Demux (without decoding) the first video stream and index its frames."""
    stream = container.streams.video[0]
    pts_list: list[int] = []
    key_list: list[bool] = []
    try:
        for packet in container.demux(stream):
            # flush packets carry no data; packets the demuxer marks as discard (mp4 edit lists)
            # never come out of the decoder, so they are no frames of ours
            if packet.size == 0 or packet.is_discard:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                continue
            pts_list.append(pts)
            key_list.append(packet.is_keyframe)
    except av.error.FFmpegError as err:
        raise DensePoseGazeError(f"Scene video {path} is damaged ({err}): download it again from Pupil Cloud.") from err
    if not pts_list:
        raise DensePoseGazeError(f"Scene video {path} holds no video frames: download it again from Pupil Cloud.")
    pts = np.asarray(pts_list, dtype=np.int64)
    order = np.argsort(pts, kind="stable")  # decode order -> presentation order
    pts = pts[order]
    if np.any(np.diff(pts) == 0):
        raise DensePoseGazeError(f"Scene video {path} has frames with equal timestamps; it cannot be indexed.")
    is_key = np.asarray(key_list, dtype=bool)[order]
    keyframes = np.flatnonzero(is_key).astype(np.int64)
    if len(keyframes) == 0 or keyframes[0] != 0:
        # a stream must start decodable; seeking "to frame 0" means to the start of the file
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
    frame_of_pts = {int(p): i for i, p in enumerate(pts)}
    return _FrameIndex(pts=pts, keyframes=keyframes, time_base=stream.time_base, frame_of_pts=frame_of_pts)


class _Decoder:
    """One container + decoder that remembers where it is, to decode forward instead of seeking."""

    # Skip decoding non-reference frames (B-frames nothing refers to) on the way to a target.
    skip_nonref = True

    def __init__(self, path: Path, index: _FrameIndex, thread_type: str) -> None:
        self._path = path
        self._index = index
        self._container = _open_container(path)
        self._stream = self._container.streams.video[0]
        self._codec = self._stream.codec_context
        self._codec.thread_type = thread_type  # before the first decode opens the codec
        # one reformatter for all frames: building the swscale context costs more than converting
        self._reformatter = VideoReformatter()
        self._skip_mode = "DEFAULT"
        self._skip_before_pts = int(index.pts[0])
        self._frames: Iterator[av.VideoFrame] | None = None
        self.position = -1  # index of the last frame handed out by self._frames

    def close(self) -> None:
        self._frames = None
        self._container.close()

    def rgb_at(self, i: int) -> np.ndarray:
        """Frame ``i`` as a fresh RGB ``(h, w, 3)`` uint8 array."""
        return self._reformatter.reformat(self.frame_at(i), format="rgb24").to_ndarray()

    def frame_at(self, i: int) -> av.VideoFrame:
        """The decoded (not yet converted) frame ``i``."""
        k = self._index.keyframe_at_or_before(i)
        # frames before i that no other frame refers to need not be decoded at all
        self._skip_before_pts = int(self._index.pts[i])
        # Where to start decoding, in order of preference. None: go on from where the decoder
        # is, which is never more work than a seek when it sits inside i's GOP (or just before).
        # A seek can land after frame i when the container's index disagrees with the
        # packets' keyframe flags: then fall back to the keyframe before, then the file start.
        plan: list[int | None] = [k, k - 1, 0]
        if self._frames is not None and self._index.keyframes[k] - 1 <= self.position < i:
            plan.insert(0, None)
        for start in dict.fromkeys(plan):
            if start is not None:
                if start < 0:
                    continue
                self._seek(start)
            frame = self._decode_forward_to(i)
            if frame is not None:
                return frame
        raise DensePoseGazeError(
            f"Frame {i} of scene video {self._path} could not be decoded: the file may be damaged; "
            "download it again from Pupil Cloud."
        )

    def _seek(self, k: int) -> None:
        # demuxers seek by presentation time (mp4 maps it to the sample via its ctts table),
        # so the keyframe's own pts lands on that keyframe
        target = int(self._index.pts[self._index.keyframes[k]])
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError as err:
            raise DensePoseGazeError(
                f"Cannot seek in scene video {self._path} ({err}): the file may be damaged; "
                "download it again from Pupil Cloud."
            ) from err
        self._frames = self._decode_all()
        self.position = -1

    def _decode_all(self) -> Iterator[av.VideoFrame]:
        try:
            for packet in self._container.demux(self._stream):
                skip = "DEFAULT"
                if self.skip_nonref and packet.pts is not None and packet.pts < self._skip_before_pts:
                    skip = "NONREF"
                if skip != self._skip_mode:
                    self._codec.skip_frame = skip
                    self._skip_mode = skip
                yield from packet.decode()
        except av.error.FFmpegError as err:
            raise DensePoseGazeError(
                f"Scene video {self._path} is damaged near frame {self.position + 1} ({err}): "
                "download it again from Pupil Cloud."
            ) from err

    def _decode_forward_to(self, i: int) -> av.VideoFrame | None:
        assert self._frames is not None
        for frame in self._frames:
            j = self._index.frame_of_pts.get(frame.pts)
            if j is None:
                continue  # e.g. a frame the index skipped; it is no frame of ours
            self.position = j
            if j == i:
                return frame
            if j > i:
                return None
        self._frames = None  # end of file: the next request seeks again
        return None


class VideoReader:
    """Lazy, frame-accurate reader of one scene video; ``reader.frame(i)`` is RGB ``(h, w, 3)`` uint8.

    Frames come from a small LRU cache (``cache_bytes``); returned arrays are
    read-only because they are shared with that cache. ``thread_type`` is
    PyAV's decoder threading for ``frame()`` ("SLICE", "FRAME", "AUTO" or
    "NONE"): frame threading makes streaming faster but a single seek-and-decode
    slower (the decoder must fill its thread pipeline before it hands out a frame),
    so random access defaults to slice threading and ``iter_frames`` to "AUTO".
    """

    def __init__(
        self,
        path: str | Path,
        cache_bytes: int = _DEFAULT_CACHE_BYTES,
        thread_type: str = "SLICE",
    ) -> None:
        self.path = Path(path)
        container = _open_container(self.path)
        try:
            stream = container.streams.video[0]
            self._index = _build_index(self.path, container)
            self._height = int(stream.codec_context.height)
            self._width = int(stream.codec_context.width)
            rate = stream.average_rate or stream.guessed_rate
        finally:
            container.close()
        if rate:
            self._fps = float(rate)
        elif len(self._index.pts) > 1:
            step = float(np.median(np.diff(self._index.pts))) * float(self._index.time_base)
            self._fps = 1.0 / step
        else:
            self._fps = float("nan")
        self._thread_type = thread_type
        self._frame_bytes = self._height * self._width * 3
        self._cache_size = max(1, int(cache_bytes) // max(self._frame_bytes, 1))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()
        self._decoder: _Decoder | None = None
        self._closed = False

    # -- metadata -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index.pts)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self._height, self._width, 3)

    @property
    def fps(self) -> float:
        """Average frame rate the container declares (frames per second)."""
        return self._fps

    @property
    def pts(self) -> np.ndarray:
        """Presentation timestamps of all frames, in ``time_base`` units, ascending."""
        return self._index.pts.copy()

    @property
    def time_base(self) -> Fraction:
        return self._index.time_base

    @property
    def keyframes(self) -> np.ndarray:
        """Frame indices of the keyframes (seek points)."""
        return self._index.keyframes.copy()

    # -- access ---------------------------------------------------------------
    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (negative counts from the end) as read-only RGB ``(h, w, 3)`` uint8."""
        i = self._check_index(i)
        with self._lock:
            self._assert_open()
            cached = self._cache.get(i)
            if cached is not None:
                self._cache.move_to_end(i)
                return cached
            if self._decoder is None:
                self._decoder = _Decoder(self.path, self._index, self._thread_type)
            rgb = self._decoder.rgb_at(i)
            rgb.flags.writeable = False
            self._cache[i] = rgb
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return rgb

    def iter_frames(
        self,
        indices: Iterable[int] | None = None,
        start: int = 0,
        stop: int | None = None,
        step: int = 1,
        thread_type: str = "AUTO",
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(i, rgb)`` in ascending ``i`` for ``indices`` (or ``range(start, stop, step)``).

        One decode pass on a decoder of its own; frames not asked for are decoded
        but never converted to RGB, and long gaps are crossed by seeking. Arrays
        are fresh and writable.
        """
        n = len(self)
        if indices is None:
            wanted = range(*slice(start, stop, step).indices(n))
        else:
            wanted = sorted({self._check_index(int(i)) for i in indices})
        self._assert_open()
        decoder = _Decoder(self.path, self._index, thread_type)
        try:
            for i in wanted:
                yield i, decoder.rgb_at(i)
        finally:
            decoder.close()

    def lazy_array(self, n_frames: int | None = None) -> VideoArray:
        """A numpy-like lazy view, optionally limited to the first ``n_frames``."""
        return VideoArray(self, n_frames)

    # -- lifetime -------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._decoder is not None:
                self._decoder.close()
                self._decoder = None
            self._cache.clear()
            self._closed = True

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        n, h, w, _ = self.shape
        return f"VideoReader({str(self.path)!r}, frames={n}, {w}x{h}, fps={self._fps:.3g})"

    def _assert_open(self) -> None:
        if self._closed:
            raise ValueError(f"VideoReader for {self.path} is closed")

    def _check_index(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"frame {i} is out of range: {self.path} has {n} frames")
        return i % n


class VideoArray:
    """Numpy-like lazy ``(frames, h, w, 3)`` uint8 array over a VideoReader.

    Indexing decodes only the frames it touches and follows numpy semantics
    (ints, slices, integer/boolean arrays, Ellipsis). Materialising more than
    ``MAX_MATERIALIZE_BYTES`` at once (e.g. ``np.asarray`` of a whole video)
    raises DensePoseGazeError instead of exhausting memory. Usable as napari
    Image layer data with ``rgb=True``.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, reader: VideoReader, n_frames: int | None = None) -> None:
        n = len(reader)
        if n_frames is not None and not 0 <= n_frames <= n:
            raise ValueError(f"n_frames={n_frames} must lie in [0, {n}] for {reader.path}")
        self._reader = reader
        self._n = n if n_frames is None else int(n_frames)

    @property
    def reader(self) -> VideoReader:
        return self._reader

    @property
    def shape(self) -> tuple[int, int, int, int]:
        _, h, w, c = self._reader.shape
        return (self._n, h, w, c)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self._n):
            yield self._reader.frame(i)

    def __repr__(self) -> str:
        return f"VideoArray(shape={self.shape}, dtype=uint8, path={str(self._reader.path)!r})"

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = _move_ellipsis_off_frame_axis(key)
        frame_key, rest = key[0], key[1:]
        basic_rest = all(_is_basic(k) for k in rest)
        if _is_basic(frame_key) and isinstance(frame_key, (int, np.integer)):
            i = int(frame_key)
            if not -self._n <= i < self._n:
                raise IndexError(f"index {i} is out of bounds for axis 0 with size {self._n}")
            frame = self._reader.frame(i % self._n)
            if basic_rest:
                return frame[rest] if rest else frame
            # advanced indices after an int follow numpy's rules for the whole key
            return frame[np.newaxis][(0, *rest)]
        if isinstance(frame_key, slice):
            frames = np.arange(*frame_key.indices(self._n))
            if basic_rest:
                # basic indexing: crop each frame before stacking to keep memory low
                self._check_size(len(frames), np.broadcast_to(np.uint8(0), self.shape[1:])[rest].nbytes)
                out = [self._reader.frame(int(i))[rest] for i in frames]
                if not out:
                    return np.empty((0, *self.shape[1:]), dtype=np.uint8)[(slice(None), *rest)]
                return np.stack(out)
            return self._stacked(frames)[(slice(None), *rest)]
        if frame_key is None:
            raise IndexError("VideoArray does not support np.newaxis in front of the frame axis")
        # integer or boolean array on the frame axis
        selector = np.asarray(frame_key)
        if selector.dtype == bool:
            if selector.shape != (self._n,):
                raise IndexError(f"boolean index of shape {selector.shape} does not match {self._n} frames")
            selector = np.flatnonzero(selector)
        if not np.issubdtype(selector.dtype, np.integer):
            raise IndexError(f"frames can only be indexed with integers, slices or arrays of them, not {frame_key!r}")
        bad = (selector < -self._n) | (selector >= self._n)
        if np.any(bad):
            raise IndexError(f"index {int(selector[bad][0])} is out of bounds for axis 0 with size {self._n}")
        selector = selector % self._n if self._n else selector
        unique, positions = np.unique(selector, return_inverse=True)
        return self._stacked(unique)[(positions.reshape(selector.shape), *rest)]

    def _stacked(self, frames: np.ndarray) -> np.ndarray:
        self._check_size(len(frames), int(np.prod(self.shape[1:])))
        out = np.empty((len(frames), *self.shape[1:]), dtype=np.uint8)
        for pos, i in enumerate(frames):
            out[pos] = self._reader.frame(int(i))
        return out

    def _check_size(self, n_frames: int, bytes_per_frame: int) -> None:
        if n_frames * bytes_per_frame > MAX_MATERIALIZE_BYTES:
            raise DensePoseGazeError(
                f"Reading {n_frames} frames of {self._reader.path} at once needs "
                f"{n_frames * bytes_per_frame / 2**30:.1f} GiB: index fewer frames "
                "(e.g. arr[i]) or stream them with VideoReader.iter_frames."
            )


def _is_basic(k: Any) -> bool:
    """True for keys numpy treats as basic indexing (bools are advanced)."""
    if isinstance(k, (bool, np.bool_)):
        return False
    return k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice))


def _move_ellipsis_off_frame_axis(key: tuple) -> tuple:
    """Make ``key[0]`` index the frame axis: ``(..., 0)`` becomes ``(slice(None), ..., 0)``."""
    if not key or key[0] is not Ellipsis:
        return key if key else (slice(None),)
    explicit = sum(
        np.asarray(k).ndim if isinstance(k, np.ndarray) and k.dtype == bool else 1
        for k in key[1:]
        if k is not None and k is not Ellipsis
    )
    if explicit >= 4:
        return key[1:]  # the Ellipsis spans no axis
    return (slice(None), *key)


def count_frames(path: str | Path) -> int:
    """Number of video frames in ``path``, counted by demuxing packets (no decoding)."""
    path = Path(path)
    container = _open_container(path)
    try:
        return len(_build_index(path, container).pts)
    finally:
        container.close()
