"""Splitting the frames of a study into chunks: the unit of work a cluster hands to a worker.

A chunk is a run of consecutive pending frames of one recording, so a worker
decodes it in one sequential pass. Big enough that starting one (opening the
video, seeking to its first frame) costs little next to computing it; small
enough that every worker gets several, so one long recording spreads over the
whole cluster, the last chunks finish close together, and a chunk lost with a
killed worker costs little to redo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["CHUNKS_PER_WORKER", "MAX_CHUNK_FRAMES", "MIN_CHUNK_FRAMES", "chunk_size", "split"]

#: At least this many frames: below it, opening the video and seeking dominates.
MIN_CHUNK_FRAMES = 16
#: At most this many: some tens of seconds on a GPU, minutes on a CPU core.
MAX_CHUNK_FRAMES = 256
#: Chunks per worker the size aims at, so that fast workers take more and the tail is short.
CHUNKS_PER_WORKER = 4


def chunk_size(total_frames: int, workers: int) -> int:
    """Frames per chunk for ``total_frames`` to compute on ``workers`` workers."""
    wanted = math.ceil(max(1, total_frames) / (max(1, workers) * CHUNKS_PER_WORKER))
    return min(MAX_CHUNK_FRAMES, max(MIN_CHUNK_FRAMES, wanted))


def split(frames: Sequence[int], size: int) -> list[list[int]]:
    """``frames`` in ascending order, cut into chunks of ``size`` (the last one shorter)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    ordered = sorted(dict.fromkeys(int(f) for f in frames))
    return [ordered[k:k + size] for k in range(0, len(ordered), size)]
