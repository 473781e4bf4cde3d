"""Keep the memory a run frees inside the process, so its large tensors reuse it (glibc).

glibc serves every allocation above its mmap threshold (32 MiB at most) with fresh
pages and unmaps them again on free. The CPU engine allocates and frees its
stride-4 maps (55 MB each at a Neon frame) dozens of times per frame, and every
fresh page costs the kernel a fault and a zeroing: 0.5-0.7 s of system time per
frame on the 2-core benchmark machine, a fifth of the frame's time (numbers in
the closing note of issue 13). :func:`reuse_freed_memory` turns mmap off and
defers trimming while it is held, so freed blocks stay on the heap for the next
frame; when the last holder leaves, glibc's defaults come back and the free
memory is handed back to the system (``malloc_trim``). The peak resident size is
the same as without it: a frame reaches it anyway.

Nothing changes where the C library is not glibc (macOS, Windows, musl), where the
user set how glibc maps memory (``MALLOC_MMAP_MAX_`` or ``MALLOC_MMAP_THRESHOLD_``,
or ``glibc.malloc.mmap_max`` / ``mmap_threshold`` in ``GLIBC_TUNABLES``: e.g.
``MALLOC_MMAP_MAX_=65536`` keeps glibc's behaviour), or where another allocator
(jemalloc, tcmalloc) is preloaded. A trim threshold alone does not stop it: Dask's
nanny sets ``MALLOC_TRIM_THRESHOLD_`` for every worker (and in its own process),
and that value is what comes back after a run.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

__all__ = ["reuse_freed_memory", "reusing_freed_memory"]

# mallopt parameters and glibc's defaults for them (malloc.h, malloc/malloc.c).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int
# How a user tells glibc how to map memory: then this module leaves malloc alone.
_USER_MMAP_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_")
_USER_MMAP_TUNABLES = ("glibc.malloc.mmap_max", "glibc.malloc.mmap_threshold")

_lock = threading.Lock()
_holders = 0


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(name in os.environ for name in _USER_MMAP_VARIABLES) or any(t in tunables for t in _USER_MMAP_TUNABLES):
        return None
    try:
        libc = ctypes.CDLL(None)  # the process's own C library
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


def reusing_freed_memory() -> bool:
    """Whether freed memory is kept for reuse now (some :func:`reuse_freed_memory` is held)."""
    with _lock:
        return _holders > 0 and _glibc() is not None


@contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Keep freed memory in the process while held; yields whether that applies here.

    Holders nest and may be held from several threads at once (two runs in one
    napari): the defaults come back when the last one leaves.
    """
    global _holders
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _lock:
        if _holders == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
        _holders += 1
    try:
        yield True
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _trim_threshold_after())
                libc.malloc_trim(0)


def _trim_threshold_after() -> int:
    """The trim threshold to come back to: the environment's (a Dask worker's), else glibc's default."""
    try:
        value = int(os.environ.get("MALLOC_TRIM_THRESHOLD_", ""))
    except ValueError:
        return _DEFAULT_TRIM_THRESHOLD
    return min(max(value, 0), _NEVER_TRIM)
