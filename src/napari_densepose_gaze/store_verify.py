"""Finding a results store's damage, and so which frames still need a run.

Damage: chunk files that are not what their frame's done line vouches for.

Each done line records the size and crc32 of the frame's chunk files
(:mod:`.store_chunks`). A deleted, truncated, bit-flipped or swapped file no
longer matches, and the frame is reported with its number instead of being
read as an empty frame or failing in the codec. Frames edited by hand (napari
rewrites their chunks) and frames stored before checksums existed are trusted:
they are only required to decode.

Reading every chunk file of a long recording takes a while, so a file found
intact is remembered with its ``stat`` key (inode, size, times): as long as
none of those change it is not read again by :meth:`FrameVerifier.damage`.

A frame still needs a run (:meth:`FrameVerifier.pending`) unless it is
processed and intact, or edited by hand (kept unless a run is told to redo edits);
a gaze-guided frame also needs one when the run asks for more of its persons.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DensePoseGazeError
from .store_chunks import FrameChunks
from .store_log import DoneFrame, FrameLog

__all__ = ["FrameVerifier", "damaged_frame_error"]


def damaged_frame_error(folder: Path, frame: int, problem: str) -> DensePoseGazeError:
    return DensePoseGazeError(
        f"Frame {frame} of the results store {folder} is damaged: {problem}. Run DensePose on the "
        "recording again to recompute it (damaged frames count as pending); "
        "`densepose-gaze verify` lists every damaged frame."
    )


class FrameVerifier:
    """Checks one store handle's frames against its log."""

    def __init__(self, folder: Path, log: FrameLog, chunks: Mapping[str, FrameChunks]) -> None:
        self._folder = folder
        self._log = log
        self._chunks = chunks
        # (frame, array) -> (the file's stat key, its checksum) of files read and found intact
        self._intact: dict[tuple[int, str], tuple[Any, Any]] = {}

    def note_intact(self, frame: int, name: str, checksum: Any) -> None:
        """Remember a chunk file this handle has just written."""
        self._intact[(frame, name)] = (self._chunks[name].stat_key(frame), checksum)

    def read_arrays(self, frame: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Arrays ``names`` of a frame, checked against its done line; a damaged one raises naming the frame."""
        for attempt in range(2):
            with self._log.current() as log:
                record = log.done.get(frame)
                trusted = record is None or record.chunks is None or frame in log.edited
            found = {name: self._chunks[name].read(frame) for name in names}
            problems = [] if trusted else [
                p for name, data in found.items()
                if (p := self._chunks[name].problem(frame, record.chunks.get(name), data))
            ]
            if not problems:
                return {name: self._decode(frame, name, data) for name, data in found.items()}
            with self._log.current() as log:
                if attempt == 0 and log.done.get(frame) is not record:
                    continue  # a writer replaced the frame while we read it
            raise damaged_frame_error(self._folder, frame, "; ".join(problems))
        raise AssertionError("unreachable")

    def _decode(self, frame: int, name: str, data: bytes | None) -> np.ndarray:
        try:
            return self._chunks[name].decode(data)
        except Exception as exc:  # whatever the codec raises (blosc, shape) means a damaged file
            raise damaged_frame_error(self._folder, frame, _undecodable(name, exc)) from exc

    def pending(
        self, frames: Iterable[int], overwrite_edited: bool, gazed: tuple[float, str] | None = None
    ) -> tuple[list[int], dict[int, DoneFrame]]:
        """The frame indices of ``frames`` still to run, in order without repeats, and some done records.

        The records are those of the frames pending although processed (damaged, edited and redone, or
        gaze-guided with less than the run needs: ``gazed`` is its radius, None for every detection).
        """
        with self._log.current() as log:
            candidates: list[int] = []  # in the given order, without repeats
            done: list[tuple[int, DoneFrame]] = []  # of those, processed: done unless damaged
            # done records of edited frames that are pending because overwrite_edited asks to redo them
            redo: dict[int, DoneFrame] = {}
            for i in dict.fromkeys(frames):
                if i in log.edited:
                    if overwrite_edited:
                        candidates.append(i)
                        if i in log.done:
                            redo[i] = log.done[i]
                    continue
                candidates.append(i)
                if i in log.done:
                    if log.done[i].covers(gazed):
                        done.append((i, log.done[i]))
                    else:
                        redo[i] = log.done[i]
        damaged = self.damage(done, use_cache=True)
        intact = {i for i, _ in done if i not in damaged}
        records = dict(done)
        return [i for i in candidates if i not in intact], {**redo, **{i: records[i] for i in damaged}}

    def verify(self, frames: Iterable[int] | None = None) -> list[tuple[int, str]]:
        """Every damaged processed frame (of ``frames``, default all) with what is wrong, by frame."""
        with self._log.current() as log:
            wanted = sorted(log.done) if frames is None else sorted(set(frames) & log.done.keys())
            checked = [(i, log.done[i]) for i in wanted if log.done[i].chunks is not None and i not in log.edited]
            trusted = [i for i in wanted if log.done[i].chunks is None or i in log.edited]
        problems = self.damage(checked, use_cache=False)
        for i in trusted:
            found = []
            for name, chunks in self._chunks.items():
                try:
                    chunks.decode(chunks.read(i))
                except Exception as exc:  # as in _decode
                    found.append(_undecodable(name, exc))
            if found:
                problems[i] = "; ".join(found)
        return sorted(problems.items())

    def damage(self, frames: Sequence[tuple[int, DoneFrame]], *, use_cache: bool) -> dict[int, str]:
        """What is wrong with each of ``frames`` whose chunk files differ from its done record."""
        problems: dict[int, str] = {}
        for i, record in frames:
            if record.chunks is None:
                continue
            found = []
            for name, chunks in self._chunks.items():
                expected = record.chunks.get(name)
                key = chunks.stat_key(i)
                if (key is None and expected is None) or (use_cache and self._intact.get((i, name)) == (key, expected)):
                    continue
                problem = chunks.problem(i, expected, None if key is None else chunks.read(i))
                if problem is None:
                    self._intact[(i, name)] = (key, expected)
                else:
                    found.append(problem)
            if found:
                problems[i] = "; ".join(found)
        if not problems:
            return problems
        # A writer may have replaced some of them while we read: judge those by their new record.
        with self._log.current() as log:
            now = {i: log.done.get(i) for i in problems if i not in log.edited}
        records = dict(frames)
        again = [(i, record) for i, record in now.items() if record is not None and record is not records[i]]
        kept = {i: p for i, p in problems.items() if i in now and now[i] is records[i]}
        return {**kept, **(self.damage(again, use_cache=False) if again else {})}


def _undecodable(name: str, exc: Exception) -> str:
    return f"its {name} chunk cannot be decoded ({type(exc).__name__}: {exc})"
