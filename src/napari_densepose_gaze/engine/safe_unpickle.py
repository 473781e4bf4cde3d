"""Unpickle a model-zoo checkpoint without running anything the file names.

Model-zoo files are pickles, and unpickling runs whatever callables the file
names. This unpickler admits only what a dict of numpy arrays needs, each one a
checking stand-in for numpy's own (which would trust the sizes a file claims);
a file that asks for anything else is refused before that callable is called.
It lives apart from :mod:`.checkpoint` because it is the one place that must be
read with an attacker in mind: checkpoint.py turns what comes out into weights.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
import pickletools
import re
from pathlib import Path
from typing import Any

import numpy as np

from napari_densepose_gaze.errors import DensePoseGazeError

__all__ = [
    "ZOO_LARGEST_TENSOR",
    "MAX_TENSOR_BYTES",
    "OversizedArray",
    "PendingArray",
    "RefusedGlobal",
    "unpickle_arrays",
]

# The largest tensor of any zoo config (roi_heads.box_head.fc1.weight, 1024 x 256*7*7); tests derive it
# from the models. No array in a file may claim more, so a tiny damaged or hostile file cannot make the
# reader allocate gigabytes: sizes are checked before anything of that size is made.
ZOO_LARGEST_TENSOR = 12_845_056
MAX_TENSOR_BYTES = ZOO_LARGEST_TENSOR * 8  # as float64, the widest type a zoo file uses


class OversizedArray(Exception):
    """Raised inside unpickling for an array larger than any zoo tensor; the caller names the file."""


class PendingArray:
    """Stands for an array while it is unpickled.

    numpy's own ``__setstate__`` would allocate whatever shape the pickle claims (a 66-byte
    pickle can ask for gigabytes); this one checks shape and data against each other and
    against :data:`ZOO_LARGEST_TENSOR` first, then views the pickled bytes.
    """

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed array state")
        shape, dtype, fortran, data = state[-4:]
        self.array = _array_from_bytes(data, _resolve_dtype(dtype), shape, "F" if fortran else "C")


class _PendingDtype:
    """A dtype named by a pickle: a plain numeric or text type, whatever ``__setstate__`` asks."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 6 or any(x is not None for x in state[2:5]):
            raise pickle.UnpicklingError("a dtype with fields or a sub-array is not a weights type")
        order, size = state[1], state[5]
        if size not in (-1, 0, self.dtype.itemsize) or order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"inconsistent dtype state {state!r}")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _resolve_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, _PendingDtype):
        raise pickle.UnpicklingError(f"expected a dtype, got {type(dtype).__name__}")
    return dtype.dtype


def _dtype(name: Any, align: Any = False, copy: Any = False) -> _PendingDtype:
    if isinstance(name, bytes):
        name = name.decode("latin1")
    if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z?][0-9]{0,4}", name):
        raise pickle.UnpicklingError(f"dtype {name!r} is not a plain numeric type")
    dtype = np.dtype(name)
    if dtype.kind not in "biufcSU" or dtype.itemsize > MAX_TENSOR_BYTES:
        raise pickle.UnpicklingError(f"dtype {name!r} is not a weights type")
    return _PendingDtype(dtype)


def _element_count(shape: Any, dtype: np.dtype) -> int:
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise pickle.UnpicklingError(f"malformed array shape {shape!r}")
    count = 1
    for n in shape:
        count *= n
        if count > ZOO_LARGEST_TENSOR:  # checked as it grows: the product itself may be astronomic
            raise OversizedArray(f"an array of shape {shape} is larger than any tensor of a zoo model "
                           f"({ZOO_LARGEST_TENSOR} elements)")
    if count * dtype.itemsize > MAX_TENSOR_BYTES:
        raise OversizedArray(f"an array of shape {shape} and type {dtype} is larger than any tensor of a zoo model")
    return count


def _array_from_bytes(data: Any, dtype: np.dtype, shape: Any, order: Any) -> np.ndarray:
    count = _element_count(shape, dtype)
    if isinstance(data, str):  # Python 2 pickles hold array bytes as latin-1 text
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray, pickle.PickleBuffer)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("malformed array data")
    if memoryview(data).nbytes != count * dtype.itemsize:
        raise pickle.UnpicklingError(
            f"array data of {memoryview(data).nbytes} bytes for shape {shape} of {dtype} "
            f"({count * dtype.itemsize} bytes)"
        )
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order=order)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> PendingArray:
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return PendingArray()


def _scalar(dtype: Any, data: Any = None) -> np.generic:
    dtype = _resolve_dtype(dtype)
    return _array_from_bytes(data, dtype, (), "C")[()]


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _array_from_bytes(buffer, _resolve_dtype(dtype), shape, order)


def _bytes(*args: Any) -> bytes:
    # protocol 2 writes empty bytes (an empty array's data) as bytes(); bytes(n) would allocate n zeros
    if args:
        raise pickle.UnpicklingError("only empty bytes() may be called in a checkpoint")
    return b""


# Stands for numpy.ndarray in a pickle: it may only be passed to _reconstruct, never called
# (ndarray(shape) would allocate before any check).
_NDARRAY = object()

# Globals a pickle of {name: ndarray} may name, under every module path numpy has used; each
# is a checking stand-in for numpy's own, which would trust the sizes a file claims.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("__builtin__", "bytes"): _bytes,
    ("builtins", "bytes"): _bytes,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED_GLOBALS[(f"{_module}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED_GLOBALS[(f"{_module}.multiarray", "scalar")] = _scalar
    _ALLOWED_GLOBALS[(f"{_module}.numeric", "_frombuffer")] = _frombuffer


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in :data:`_ALLOWED_GLOBALS`."""

    def __init__(self, file: io.BufferedIOBase, source: Path) -> None:
        # latin1 keeps Python-2 era pickles (Detectron1 / Caffe2 "blobs") readable.
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            # A bound method of this unpickler, so that a pickle cannot alter a shared object.
            return self._latin1_encode
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(self._source, f"{module}.{name}") from None

    def _latin1_encode(self, text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1");
        # only that plain text codec is allowed, not the transform codecs (zlib, base64, ...).
        if codecs.lookup(encoding).name != "iso8859-1":
            raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed in a checkpoint")
        return text.encode("latin1", errors)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


class RefusedGlobal(DensePoseGazeError):
    """A pickle that names a callable outside the allow-list: the file may be malicious."""

    def __init__(self, source: Path, qualname: str) -> None:
        super().__init__(
            f"Refusing to load {source}: it is not a plain weights file, its pickle asks for "
            f"{qualname!r}, which a checkpoint of numpy arrays never needs (it may be malicious). "
            "Use the official model-zoo file or pass another file with --weights."
        )
        self.refused = qualname


class _BoundedReader:
    """A file whose reads may not ask for more bytes than are left (pickletools would allocate them)."""

    def __init__(self, file: io.BufferedReader, size: int) -> None:
        self._file, self._size = file, size

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._file.tell()
        if n is None or n < 0:
            n = left
        if n > left:
            raise pickle.UnpicklingError(f"the pickle claims {n} bytes at byte {self._file.tell()}, {left} are left")
        return self._file.read(n)

    def readline(self) -> bytes:
        return self._file.readline()

    def tell(self) -> int:
        return self._file.tell()


def _check_claimed_lengths(path: Path) -> None:
    """Walk the pickle's opcodes without running them: Python's unpickler allocates a counted
    bytes or text object at the length the file claims before it reads a byte of it."""
    with open(path, "rb") as f:
        for _ in pickletools.genops(_BoundedReader(f, path.stat().st_size)):
            pass


def unpickle_arrays(path: Path) -> Any:
    """What the pickle at ``path`` holds, with numpy arrays checked against :data:`ZOO_LARGEST_TENSOR`.

    An array comes back as a :class:`PendingArray` (its ``array`` a read-only view of the pickled
    bytes). Raises :class:`RefusedGlobal` for a callable outside the allow-list,
    :class:`OversizedArray` for an array larger than any zoo tensor, and the unpickler's own errors
    (``pickle.UnpicklingError``, ``EOFError``, ``ValueError``, ...) for a damaged file.
    """
    _check_claimed_lengths(path)
    with open(path, "rb") as f:
        return _ArraysOnlyUnpickler(f, path).load()
