"""Read DensePose checkpoints safely and check that they fit a zoo config.

Model-zoo files are pickles, and unpickling runs whatever callables the file
names. :func:`read_checkpoint` therefore unpickles with an allow-list that
admits only what numpy arrays and plain containers need
(:mod:`.safe_unpickle`); a file that asks for anything else is refused before
that callable is ever called. PyTorch files go through torch's weights-only
loader, after their zip entries' sizes are checked.
"""

from __future__ import annotations

import functools
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_densepose_gaze.engine.safe_unpickle import (
    MAX_TENSOR_BYTES,
    ZOO_LARGEST_TENSOR,
    OversizedArray,
    PendingArray,
    unpickle_arrays,
)
from napari_densepose_gaze.engine.zoo import ZOO, ModelConfig
from napari_densepose_gaze.errors import DensePoseGazeError

if TYPE_CHECKING:
    import torch

__all__ = [
    "read_checkpoint",
    "infer_config_name",
    "check_checkpoint_matches",
    "signature_shapes",
    "checkpoint_shapes",
    "load_into",
    "ZOO_LARGEST_TENSOR",
    "ZOO_LARGEST_MODEL",
]

_TORCH_SUFFIXES = {".pth", ".pt"}


# The most weights a zoo config has (R_101 with DeepLab head and WC2M); tests derive it from the models,
# as they do ZOO_LARGEST_TENSOR (its per-array twin, checked while unpickling).
ZOO_LARGEST_MODEL = 85_837_423
# room for solver state beside the weights (Caffe2 blobs), never for a model several times a zoo model
_MAX_TOTAL_ELEMENTS = 2 * ZOO_LARGEST_MODEL
_LISTED = 10


def _corrupt(path: Path, reason: object) -> DensePoseGazeError:
    return DensePoseGazeError(
        f"Cannot read checkpoint {path}: the file is truncated or not a checkpoint ({reason}). "
        "If it was downloaded, delete it and download again; otherwise check --weights."
    )


def _oversized(path: Path, reason: object) -> DensePoseGazeError:
    return DensePoseGazeError(
        f"Refusing to load checkpoint {path}: {reason}, so it is damaged or no DensePose checkpoint. "
        "If it was downloaded, delete it and download again; otherwise check --weights."
    )


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The weights in a model-zoo ``.pkl`` or a PyTorch ``.pth``/``.pt`` file, by name.

    Floating-point arrays come back as float32 (the engine computes in float32);
    entries that are not numeric arrays or numpy scalars (author strings, plain
    Python numbers) are dropped. Raises :class:`DensePoseGazeError` for a file that
    is truncated, corrupt, asks for code, claims an array larger than any zoo
    tensor, or holds complex, quantized, NaN or infinite weights.
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
        return unpickle_arrays(path)
    except DensePoseGazeError:
        raise
    except OversizedArray as exc:
        raise _oversized(path, exc) from None
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
        RecursionError,
    ) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from exc


def _check_zip_sizes(path: Path) -> None:
    """Refuse a .pth whose entries claim more than any zoo checkpoint holds, before torch inflates them."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from exc
    largest = max(entries, key=lambda e: e.file_size, default=None)
    if largest is not None and largest.file_size > MAX_TENSOR_BYTES:
        raise _oversized(path, f"its entry {largest.filename} claims {largest.file_size} bytes, more than any "
                               f"tensor of a zoo model ({MAX_TENSOR_BYTES} bytes)")
    total = sum(e.file_size for e in entries)
    if total > _MAX_TOTAL_ELEMENTS * 8:
        raise _oversized(path, f"its entries claim {total} bytes, more than any zoo model holds")


def _load_torch(path: Path) -> Any:
    import torch  # heavy; only .pth files need it

    _check_zip_sizes(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch words every failure of its weights-only unpickler alike; the cause follows this marker
        cause = str(exc).rpartition("WeightsUnpickler error:")[2]
        if "unsupported global" in cause.lower() or "unsupported class" in cause.lower():
            raise DensePoseGazeError(
                f"Refusing to load {path}: it holds Python objects other than tensors and plain "
                "containers, which a weights file never needs (it may be malicious). "
                "Save only the state dict (torch.save(model.state_dict(), ...)) or pass another "
                "file with --weights."
            ) from exc
        raise _corrupt(path, f"{type(exc).__name__}: {cause.strip()[:300]}") from exc
    except (EOFError, RuntimeError, ValueError, OSError, zipfile.BadZipFile, TypeError, KeyError, AttributeError,
            IndexError, struct.error, UnicodeDecodeError, MemoryError, OverflowError, RecursionError) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {str(exc)[:300]}") from exc


def _to_state(path: Path, raw: Any) -> dict[str, np.ndarray]:
    if not isinstance(raw, Mapping):
        raise _corrupt(path, f"it holds a {type(raw).__name__}, not a dict of weights")
    weights: Any = raw
    for container in ("model", "state_dict", "blobs"):
        if isinstance(raw.get(container), Mapping):
            weights = raw[container]
            break
    arrays: dict[str, np.ndarray] = {}
    unsupported: list[str] = []
    for name, value in weights.items():
        if not isinstance(name, str) or name.endswith("_momentum"):  # Caffe2 solver state
            continue
        array = _as_array(path, value)
        if array is None:
            continue
        if isinstance(array, str):
            unsupported.append(f"{name} ({array})")
        else:
            arrays[name] = array
    if unsupported:
        raise DensePoseGazeError(
            f"Checkpoint {path} holds {_listing('tensors of a type no DensePose weights have', unsupported)}. "
            "Save the weights as float32 (or float16/bfloat16) tensors, or pass another file with --weights."
        )
    total = sum(a.size for a in arrays.values())
    if total > _MAX_TOTAL_ELEMENTS:  # before any copy: one pickled array may be referenced by many names
        raise _oversized(path, f"its weights have {total} elements, more than any zoo model ({ZOO_LARGEST_MODEL})")
    state: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        if array.dtype.kind == "f" and array.dtype != np.float32:
            with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below
                array = array.astype(np.float32)
        elif not array.flags.writeable:  # arrays over pickled bytes are read-only
            array = array.copy()
        state[name] = array
    if not state:
        raise _corrupt(path, "no weight arrays found in it")
    _refuse_non_finite(state, f"Checkpoint {path}")
    return state


def _as_array(path: Path, value: Any) -> np.ndarray | str | None:
    """``value`` as an array, the name of its type when no weights have it, or None for non-arrays."""
    if isinstance(value, PendingArray):
        if value.array is None:
            raise _corrupt(path, "an array without its data")
        value = value.array
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        import torch

        tensor = value.detach()
        if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_complex() or tensor.device.type == "meta":
            return f"{tensor.dtype}, {tensor.layout}"
        tensor = tensor.cpu()
        if tensor.is_floating_point():  # bfloat16 has no numpy dtype; the engine wants float32 anyway
            tensor = tensor.float()
        array = tensor.numpy()
    else:
        return None
    if array.dtype.kind == "c":
        return str(array.dtype)
    return array if array.dtype.kind in "fiub" else None


def _finite(value: Any) -> bool:
    """Whether every element of a weight is finite; one pass, no temporary of the weight's size."""
    if hasattr(value, "is_floating_point") and hasattr(value, "sum"):  # a torch tensor
        import torch

        return not value.is_floating_point() or bool(torch.isfinite(value.sum(dtype=torch.float64)))
    array = np.asarray(value)
    # a float64 sum of float32 values cannot overflow, so it is finite exactly when all elements are
    return array.dtype.kind != "f" or bool(np.isfinite(array.sum(dtype=np.float64)))


def _listing(label: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED]) + (", ..." if len(keys) > _LISTED else "")
    return f"{len(keys)} {label} ({shown})"


def _refuse_non_finite(state: Mapping[str, Any], what: str) -> None:
    bad = [name for name, value in state.items() if not _finite(value)]
    if bad:
        raise DensePoseGazeError(
            f"{what} holds {_listing('tensors with NaN or infinite values', bad)}: the weights are damaged "
            "(or come from a training run that diverged). Download the checkpoint again or pass another one."
        )


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
    keys = [k for k in state if isinstance(k, str)]
    res4 = {m[1] for k in keys if (m := re.match(r"backbone\.bottom_up\.res4\.(\d+)\.", k))}
    depth = next((d for d, n in _RES4_BLOCKS.items() if n == len(res4)), None)
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
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
    state: Mapping[str, Any], cfg: ModelConfig, source: str | Path | None = None
) -> None:
    """Refuse a checkpoint that does not fit ``cfg`` tensor for tensor, naming the config it fits.

    First the architecture (a checkpoint of another zoo config names that config), then every
    tensor: missing, unexpected or misshapen ones, unsupported types and NaN or infinite values
    are one :class:`DensePoseGazeError` listing them, before any of it reaches torch.
    """
    what = f"Checkpoint {source}" if source else "The checkpoint"
    arch = _architecture(state)
    if arch is None:
        raise DensePoseGazeError(
            f"{what} is not a chart-based DensePose model (it has no "
            f"{_PREDICTOR}ann_index_lowres.weight). "
            "Pass a DensePose model-zoo checkpoint with --weights."
        )
    if arch != _fields(cfg):
        lookalike = infer_config_name(state)
        if lookalike is not None:
            hint = f"it looks like {lookalike}: choose model {lookalike}, or pass the weights of {cfg.name}"
        else:
            hint = f"it has {_describe(arch)}, which matches no model of the zoo"
        raise DensePoseGazeError(
            f"{what} does not fit model {cfg.name} ({_describe(_fields(cfg))}); {hint}."
        )
    _check_tensors(state, cfg, what)
    _refuse_non_finite(state, f"{what} (for model {cfg.name})")


@functools.lru_cache(maxsize=4)
def checkpoint_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a checkpoint of ``cfg`` holds, with its shape.

    Read off the engine's own model built on torch's meta device, which allocates nothing,
    so the model stays the one definition of what a checkpoint holds.
    """
    import torch

    from napari_densepose_gaze.engine.model import DensePoseRCNN

    with torch.device("meta"):
        model = DensePoseRCNN(cfg)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def _check_tensors(state: Mapping[str, Any], cfg: ModelConfig, what: str) -> None:
    from napari_densepose_gaze.engine.model import IGNORED_CHECKPOINT_KEYS

    expected = checkpoint_shapes(cfg)
    present = [k for k in expected if k in state]
    problems = [
        _listing(label, keys)
        for label, keys in (
            ("missing tensors", [k for k in expected if k not in state]),
            ("unexpected tensors", sorted(str(k) for k in state if k not in expected
                                          and not (isinstance(k, str) and k.startswith(IGNORED_CHECKPOINT_KEYS)))),
            ("tensors of another shape (checkpoint vs model)",
             [f"{k} {_shape(state[k])} vs {expected[k]}" for k in present if _shape(state[k]) != expected[k]]),
            ("tensors of an unsupported type", [f"{k} ({_type_name(state[k])})" for k in present
                                                if not _supported(state[k])]),
        )
        if keys
    ]
    if problems:
        raise DensePoseGazeError(
            f"{what} does not fit model {cfg.name}: {'; '.join(problems)}. Its architecture is that of "
            f"{infer_config_name(state) or cfg.name}, so the file is damaged or was saved by other code: "
            f"download it again, or pass the checkpoint {cfg.name} was trained with."
        )


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in getattr(value, "shape", np.shape(value)))


def _type_name(value: Any) -> str:
    return str(getattr(value, "dtype", type(value).__name__))


def _supported(value: Any) -> bool:
    """Whether a weight's type converts to the model's float32 exactly enough: real numbers only."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype.kind in "fiu"
    if type(value).__module__.startswith("torch") and hasattr(value, "is_complex"):
        import torch

        return (value.layout == torch.strided and not value.is_quantized and not value.is_complex()
                and value.dtype != torch.bool)
    return False


# ---------------------------------------------------------------------------
# Loading into the engine's torch modules.

# Buffers that older Detectron2 versions saved but that carry no learned weights;
# dropped when the model has no such entry.
_IGNORABLE_EXTRA = re.compile(
    r"^(pixel_mean|pixel_std|proposal_generator\.anchor_generator\.cell_anchors\.\d+)$"
    r"|\.num_batches_tracked$"
)


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
