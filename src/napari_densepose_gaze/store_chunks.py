"""The chunk files of one store array, one file per frame, written and checked by the store itself.

zarr would write a chunk with ``array[i] = values``; the store instead encodes
the frame with the array's own codecs (into an in-memory twin array), writes the
bytes to a temporary file and fsyncs it outside any lock, and only renames it
into place under the frame log's lock. That keeps the slow part (compression)
parallel while making "check the frame is not edited, replace its chunk, log
it done" one step, and it hands the store the exact bytes whose size and crc32
go into the done line. The files are byte for byte what zarr writes, so zarr
and napari read them as usual.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
import zarr
from zarr.core.buffer import cpu
from zarr.storage import MemoryStore

from .durable import fsync_dir

__all__ = ["ChunkSum", "FrameChunks", "checksum"]

#: ``(size in bytes, crc32)`` of a chunk file; None stands for "no file" (an all-background frame).
ChunkSum = tuple[int, int]


def checksum(data: bytes | None) -> ChunkSum | None:
    return None if data is None else (len(data), zlib.crc32(data))


class FrameChunks:
    """Encode, write, read and check the per-frame chunk files of one (frames, height, width) array."""

    def __init__(self, folder: Path, array: zarr.Array) -> None:
        if tuple(array.chunks) != (1, *array.shape[1:]):
            raise ValueError(f"{array.path} must have one chunk per frame, not chunks {array.chunks}")
        self._array = array
        self._root = folder / array.path
        self._local = threading.local()  # one in-memory twin per thread: zarr arrays are not shared safely

    @property
    def name(self) -> str:
        return self._array.path

    def path(self, frame: int) -> Path:
        return self._root / self._array.metadata.encode_chunk_key((frame, 0, 0))

    # --------------------------------------------------------------- encoding
    def _twin(self) -> tuple[zarr.Array, dict, str]:
        twin = getattr(self._local, "twin", None)
        if twin is None:
            store: dict = {}
            a = self._array
            array = zarr.create_array(
                MemoryStore(store), shape=(1, *a.shape[1:]), chunks=(1, *a.shape[1:]), dtype=a.dtype,
                serializer=a.serializer, compressors=a.compressors, filters=a.filters, fill_value=a.fill_value,
            )
            twin = self._local.twin = (array, store, array.metadata.encode_chunk_key((0, 0, 0)))
        return twin

    def encode(self, values: np.ndarray) -> bytes | None:
        """The chunk file's bytes for one frame, or None when zarr would store no file (all fill value)."""
        array, store, key = self._twin()
        array[0] = values
        data = store.pop(key, None)
        return None if data is None else data.to_bytes()

    def decode(self, data: bytes | None) -> np.ndarray:
        """One frame from a chunk file's bytes (None: the fill value). Raises what the codec raises."""
        array, store, key = self._twin()
        if data is None:
            return np.full(self._array.shape[1:], self._array.fill_value, dtype=self._array.dtype)
        store[key] = cpu.Buffer.from_bytes(data)
        try:
            return np.asarray(array[0])
        finally:
            store.pop(key, None)

    # ---------------------------------------------------------------- files
    def stage(self, frame: int, data: bytes | None) -> Path | None:
        """Write ``data`` beside the frame's chunk file, fsynced; :meth:`install` puts it in place.

        The name ends in ``.partial`` like zarr's own temporary chunks, so the
        store's clean-up of a killed writer's leftovers covers these too.
        """
        if data is None:
            return None
        target = self.path(frame)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def remove_stale_partials(self, older_than_s: float) -> None:
        """Delete the temporary chunk files older than ``older_than_s`` (a killed writer's: a live one's are young)."""
        now = time.time()
        for path in self._root.rglob("*.partial"):
            try:
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
            except OSError:
                pass  # gone already, or not ours to delete

    def install(self, frame: int, staged: Path | None) -> None:
        """Make ``staged`` the frame's chunk file (None: remove the file), durably."""
        target = self.path(frame)
        if staged is None:
            target.unlink(missing_ok=True)
        else:
            os.replace(staged, target)
        fsync_dir(target.parent)

    def read(self, frame: int) -> bytes | None:
        """The frame's chunk file bytes, or None if there is no file."""
        try:
            return self.path(frame).read_bytes()
        except FileNotFoundError:
            return None

    def stat_key(self, frame: int) -> tuple[int, int, int, int] | None:
        """What changes whenever the file is replaced or written to (None: no file)."""
        try:
            st = self.path(frame).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def problem(self, frame: int, expected: ChunkSum | None, data: bytes | None) -> str | None:
        """What is wrong with the frame's chunk file holding ``data``, or None if it is what was written."""
        found = checksum(data)
        if found == expected:
            return None
        if expected is None:
            return f"{self.name} chunk file {self.path(frame)} should not exist (the frame was stored empty)"
        if found is None:
            return f"{self.name} chunk file {self.path(frame)} is missing"
        if found[0] != expected[0]:
            return (f"{self.name} chunk file {self.path(frame)} has {found[0]} bytes instead of {expected[0]} "
                    "(truncated or replaced)")
        return f"{self.name} chunk file {self.path(frame)} does not match its checksum (damaged or swapped)"
