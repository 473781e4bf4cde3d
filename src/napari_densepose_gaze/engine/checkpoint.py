"""Read DensePose checkpoints safely and check that they fit a zoo config.

Model-zoo files are pickles, and unpickling runs whatever callables the file
names. :func:`read_checkpoint` therefore unpickles with an allow-list that
admits only what numpy arrays and plain containers need; a file that asks for
anything else is refused before that callable is ever called.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_densepose_gaze.engine.zoo import ZOO, ModelConfig
from napari_densepose_gaze.errors import DensePoseGazeError

if TYPE_CHECKING:
    import torch

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - older numpy
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

__all__ = [
    "read_checkpoint",
    "infer_config_name",
    "check_checkpoint_matches",
    "signature_shapes",
    "load_into",
]

_TORCH_SUFFIXES = {".pth", ".pt"}


# Globals a pickle of {name: ndarray} may name, under every module path numpy has used.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED_GLOBALS[(f"{_module}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_GLOBALS[(f"{_module}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED_GLOBALS[(f"{_module}.numeric", "_frombuffer")] = _numeric._frombuffer


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
            raise _RefusedGlobal(self._source, f"{module}.{name}") from None

    def _latin1_encode(self, text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1");
        # only that plain text codec is allowed, not the transform codecs (zlib, base64, ...).
        if codecs.lookup(encoding).name != "iso8859-1":
            raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed in a checkpoint")
        return text.encode("latin1", errors)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


class _RefusedGlobal(DensePoseGazeError):
    def __init__(self, source: Path, qualname: str) -> None:
        super().__init__(
            f"Refusing to load {source}: it is not a plain weights file, its pickle asks for "
            f"{qualname!r}, which a checkpoint of numpy arrays never needs (it may be malicious). "
            "Use the official model-zoo file or pass another file with --weights."
        )
        self.refused = qualname


def _corrupt(path: Path, reason: object) -> DensePoseGazeError:
    return DensePoseGazeError(
        f"Cannot read checkpoint {path}: the file is truncated or not a checkpoint ({reason}). "
        "If it was downloaded, delete it and download again; otherwise check --weights."
    )


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The weights in a model-zoo ``.pkl`` or a PyTorch ``.pth``/``.pt`` file, by name.

    Floating-point arrays come back as float32 (the engine computes in float32);
    entries that are not numeric arrays or numpy scalars (author strings, plain
    Python numbers) are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DensePoseGazeError(f"Checkpoint {path} does not exist or is not a file; check --weights.")
    if path.suffix.lower() in _TORCH_SUFFIXES or zipfile.is_zipfile(path):
        raw = _load_torch(path)
    else:
        raw = _load_pickle(path)
    return _to_state(path, raw)


def _load_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return _ArraysOnlyUnpickler(f, path).load()
    except DensePoseGazeError:
        raise
    except (
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        LookupError,  # also KeyError, IndexError and unknown codecs
        struct.error,
        UnicodeDecodeError,
        MemoryError,
        OverflowError,
    ) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from exc


def _load_torch(path: Path) -> Any:
    import torch  # heavy; only .pth files need it

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "unsupported global" in str(exc).lower():
            raise DensePoseGazeError(
                f"Refusing to load {path}: it holds Python objects other than tensors and plain "
                "containers, which a weights file never needs (it may be malicious). "
                "Save only the state dict (torch.save(model.state_dict(), ...)) or pass another "
                "file with --weights."
            ) from exc
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from exc
    except (EOFError, RuntimeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from exc


def _to_state(path: Path, raw: Any) -> dict[str, np.ndarray]:
    if not isinstance(raw, Mapping):
        raise _corrupt(path, f"it holds a {type(raw).__name__}, not a dict of weights")
    weights: Any = raw
    for container in ("model", "state_dict", "blobs"):
        if isinstance(raw.get(container), Mapping):
            weights = raw[container]
            break
    state: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        if not isinstance(name, str) or name.endswith("_momentum"):  # Caffe2 solver state
            continue
        array = _as_array(value)
        if array is None:
            continue
        if array.dtype.kind == "f" and array.dtype != np.float32:
            array = array.astype(np.float32)
        elif not array.flags.writeable:  # arrays over pickled bytes are read-only
            array = array.copy()
        state[name] = array
    if not state:
        raise _corrupt(path, "no weight arrays found in it")
    return state


def _as_array(value: Any) -> np.ndarray | None:
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        tensor = value.detach().cpu()
        if tensor.is_floating_point():  # bfloat16 has no numpy dtype; the engine wants float32 anyway
            tensor = tensor.float()
        array = tensor.numpy()
    else:
        return None
    return array if array.dtype.kind in "fiub" else None


# ---------------------------------------------------------------------------
# Which config a checkpoint belongs to, from its key names and shapes alone.

_PREDICTOR = "roi_heads.densepose_predictor."
_HEAD = "roi_heads.densepose_head."
_RES4_BLOCKS = {50: 6, 101: 23}  # bottleneck blocks in stage res4 of ResNet-50 / -101
_UV_CONFIDENCE_KEYS = {
    "none": (),
    "iid_iso": ("sigma_2",),
    "indep_aniso": ("sigma_2", "kappa_u", "kappa_v"),
}


def signature_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Keys (with shapes) that a checkpoint of ``cfg`` must hold and that tell the zoo configs apart.

    Not every key of the model: only the ones :func:`infer_config_name` reads, so
    tests can build a stand-in state for each config without the real weights.
    """
    shapes: dict[str, tuple[int, ...]] = {"backbone.bottom_up.stem.conv1.weight": (64, 3, 7, 7)}
    for block in range(_RES4_BLOCKS[cfg.depth]):
        in_channels = 512 if block == 0 else 1024
        shapes[f"backbone.bottom_up.res4.{block}.conv1.weight"] = (256, in_channels, 1, 1)
    if cfg.decoder:
        shapes["roi_heads.decoder.p5.4.weight"] = (256, 256, 3, 3)
        shapes["roi_heads.decoder.predictor.weight"] = (256, 256, 1, 1)
    if cfg.head == "deeplab":
        shapes[_HEAD + "ASPP.project.0.weight"] = (256, 1280, 1, 1)
        shapes[_HEAD + "body_conv_fcn1.norm.weight"] = (512,)  # GroupNorm, conv without bias
    else:
        shapes[_HEAD + "body_conv_fcn1.bias"] = (512,)
    shapes[_HEAD + "body_conv_fcn1.weight"] = (512, 256, 3, 3)
    # transposed convs: weight is (in, out, k, k)
    outputs = {"ann_index": cfg.coarse_channels, "index_uv": cfg.fine_channels, "u": cfg.fine_channels,
               "v": cfg.fine_channels}
    outputs.update({name: cfg.fine_channels for name in _UV_CONFIDENCE_KEYS[cfg.uv_confidence]})
    if cfg.segm_confidence:
        outputs.update(fine_segm_confidence=1, coarse_segm_confidence=1)
    for name, channels in outputs.items():
        shapes[f"{_PREDICTOR}{name}_lowres.weight"] = (512, channels, 4, 4)
        shapes[f"{_PREDICTOR}{name}_lowres.bias"] = (channels,)
    return shapes


def _architecture(state: Mapping[str, np.ndarray]) -> dict[str, Any] | None:
    """The ModelConfig fields a state dict reveals, or None if it is no DensePose chart model."""
    coarse = state.get(_PREDICTOR + "ann_index_lowres.weight")
    if coarse is None or np.ndim(coarse) != 4:
        return None
    res4 = {m[1] for k in state if (m := re.match(r"backbone\.bottom_up\.res4\.(\d+)\.", k))}
    depth = next((d for d, n in _RES4_BLOCKS.items() if n == len(res4)), None)
    has = lambda prefix: any(k.startswith(prefix) for k in state)  # noqa: E731
    if has(_PREDICTOR + "kappa_u_lowres."):
        uv = "indep_aniso"
    elif has(_PREDICTOR + "sigma_2_lowres."):
        uv = "iid_iso"
    else:
        uv = "none"
    return {
        "depth": depth,
        "head": "deeplab" if has(_HEAD + "ASPP.") else "v1convx",
        "decoder": has("roi_heads.decoder."),
        "coarse_channels": int(np.shape(coarse)[1]),
        "uv_confidence": uv,
        "segm_confidence": has(_PREDICTOR + "fine_segm_confidence_lowres."),
    }


def _fields(cfg: ModelConfig) -> dict[str, Any]:
    return {key: getattr(cfg, key) for key in
            ("depth", "head", "decoder", "coarse_channels", "uv_confidence", "segm_confidence")}


def _describe(arch: dict[str, Any]) -> str:
    depth = f"ResNet-{arch['depth']}" if arch["depth"] else "a ResNet of unknown depth"
    head = "DeepLab head" if arch["head"] == "deeplab" else "plain conv head"
    decoder = "with" if arch["decoder"] else "without"
    confidence = {"none": "no UV confidence", "iid_iso": "UV confidence WC1",
                  "indep_aniso": "UV confidence WC2"}[arch["uv_confidence"]]
    mask = ", mask confidence" if arch["segm_confidence"] else ""
    return (f"{depth}, {head} {decoder} decoder, {arch['coarse_channels']} coarse channels, "
            f"{confidence}{mask}")


def infer_config_name(state: Mapping[str, np.ndarray]) -> str | None:
    """The zoo config whose architecture this state dict has, or None if none fits.

    The RoI pooler resolution leaves no trace in the weights; the zoo configs differ
    in it only where the coarse channels differ too (legacy: 14 and 15).
    """
    arch = _architecture(state)
    if arch is None:
        return None
    return next((name for name, cfg in ZOO.items() if _fields(cfg) == arch), None)


def check_checkpoint_matches(
    state: Mapping[str, np.ndarray], cfg: ModelConfig, source: str | Path | None = None
) -> None:
    """Refuse a checkpoint made for another architecture than ``cfg``, naming the one it fits."""
    what = f"Checkpoint {source}" if source else "The checkpoint"
    arch = _architecture(state)
    if arch is None:
        raise DensePoseGazeError(
            f"{what} is not a chart-based DensePose model (it has no "
            f"{_PREDICTOR}ann_index_lowres.weight). "
            "Pass a DensePose model-zoo checkpoint with --weights."
        )
    if arch == _fields(cfg):
        return
    lookalike = infer_config_name(state)
    if lookalike is not None:
        hint = f"it looks like {lookalike}: choose model {lookalike}, or pass the weights of {cfg.name}"
    else:
        hint = f"it has {_describe(arch)}, which matches no model of the zoo"
    raise DensePoseGazeError(
        f"{what} does not fit model {cfg.name} ({_describe(_fields(cfg))}); {hint}."
    )


# ---------------------------------------------------------------------------
# Loading into the engine's torch modules.

# Buffers that older Detectron2 versions saved but that carry no learned weights;
# dropped when the model has no such entry.
_IGNORABLE_EXTRA = re.compile(
    r"^(pixel_mean|pixel_std|proposal_generator\.anchor_generator\.cell_anchors\.\d+)$"
    r"|\.num_batches_tracked$"
)
_LISTED = 10


def _listing(label: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED]) + (", ..." if len(keys) > _LISTED else "")
    return f"{len(keys)} {label} ({shown})"


def load_into(
    model: torch.nn.Module, state: Mapping[str, np.ndarray], source: str | Path | None = None
) -> None:
    """Copy ``state`` into ``model`` with strict key and shape matching.

    A mismatch raises :class:`DensePoseGazeError` that counts and lists (up to ten
    each) the missing keys, the unexpected keys and the shape mismatches.
    """
    import torch

    expected = model.state_dict()
    state = {k: v for k, v in state.items() if k in expected or not _IGNORABLE_EXTRA.search(k)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(np.shape(state[k]))} vs {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if tuple(np.shape(state[k])) != tuple(expected[k].shape)
    )
    what = f"Checkpoint {source}" if source else "The checkpoint"
    if missing or unexpected or mismatched:
        problems = [
            _listing(label, keys)
            for label, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches (checkpoint vs model)", mismatched),
            )
            if keys
        ]
        raise DensePoseGazeError(
            f"{what} does not fit the model: {'; '.join(problems)}. "
            "Choose the model the checkpoint was trained with, or pass its weights with --weights."
        )
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:  # e.g. dtypes that cannot be copied
        raise DensePoseGazeError(f"{what} could not be loaded into the model: {exc}") from exc
