"""Checkpoints are read without running foreign code, and fit the model they are loaded into."""

from __future__ import annotations

import builtins
import collections
import importlib.util
import json
import os
import pickle
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_densepose_gaze.engine.checkpoint import (
    ZOO_LARGEST_MODEL,
    ZOO_LARGEST_TENSOR,
    check_checkpoint_matches,
    checkpoint_shapes,
    infer_config_name,
    load_into,
    read_checkpoint,
    signature_shapes,
)
from napari_densepose_gaze.engine.zoo import DEFAULT_MODEL, ZOO, ModelConfig, get_config
from napari_densepose_gaze.errors import DensePoseGazeError

# The parity fixtures (``parity_fixtures``, ``parity_checkpoint``) come from tests/engine/conftest.py.


def _manifest(fixtures: Path, config: str) -> dict:
    return json.loads((fixtures / f"manifest_{config}.json").read_text())


def _stand_in(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """A state dict with the right names and shapes that takes no memory."""
    return {name: np.broadcast_to(np.float32(0), shape) for name, shape in shapes.items()}


@pytest.fixture
def fixture_checkpoint(parity_checkpoint) -> Path:
    """The synthetic R_50_FPN_DL_s1x model-zoo checkpoint, written by the fixtures' own script."""
    return parity_checkpoint("R_50_FPN_DL_s1x")


# --- refusing what is not a weights file -------------------------------------------------


class _Payload:
    """Unpickles into a call of ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _attacks(marker: Path) -> dict[str, _Payload]:
    return {
        "os.system": _Payload(os.system, (f"touch {marker}",)),
        "builtins.exec": _Payload(builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
        "subprocess.Popen": _Payload(subprocess.Popen, (["touch", str(marker)],)),
    }


@pytest.mark.parametrize("attack", ["os.system", "builtins.exec", "subprocess.Popen"])
def test_malicious_pickle_is_refused_before_its_payload_runs(tmp_path: Path, attack: str) -> None:
    marker = tmp_path / "pwned"
    evil = {"model": {"w": np.zeros(3, np.float32), "x": _attacks(marker)[attack]}, "__author__": "?"}
    path = tmp_path / "model_final_abcdef.pkl"
    path.write_bytes(pickle.dumps(evil, protocol=2))

    with pytest.raises(DensePoseGazeError) as info:
        read_checkpoint(path)

    message = str(info.value)
    assert str(path) in message
    assert attack.split(".")[1] in message  # names the refused global (os.system pickles as posix.system)
    assert not marker.exists()
    # The payload is live: an unrestricted unpickler does run it.
    result = pickle.loads(path.read_bytes())
    if isinstance(result["model"]["x"], subprocess.Popen):
        result["model"]["x"].wait()
    assert marker.exists()


def test_torch_file_holding_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": _Payload(print, ("hi",))}, path)
    with pytest.raises(DensePoseGazeError, match="Refusing to load .*model.pth"):
        read_checkpoint(path)


def test_truncated_checkpoint_is_refused_with_advice(tmp_path: Path) -> None:
    whole = pickle.dumps({"model": {"w": np.arange(1000, dtype=np.float32)}}, protocol=4)
    path = tmp_path / "model_final_abcdef.pkl"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DensePoseGazeError, match="truncated or not a checkpoint") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and "download again" in str(info.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.pkl", b""), ("text.pkl", b"not a pickle at all\n"), ("half.pth", b"PK\x03\x04garbage")],
)
def test_non_checkpoint_file_is_refused(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DensePoseGazeError, match="truncated or not a checkpoint"):
        read_checkpoint(path)


@pytest.mark.parametrize(("codec", "reason"), [(b"rot13", "not allowed"), (b"utf-16", "not allowed"),
                                               (b"no-such-codec", "unknown encoding")])
def test_only_the_latin1_codec_is_allowed_for_bytes(tmp_path: Path, codec: bytes, reason: str) -> None:
    # _codecs.encode("x", codec) in protocol 2: how Python 3 writes bytes, here with another codec
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX" + len(codec).to_bytes(4, "little")
                     + codec + b"\x86R.")
    with pytest.raises(DensePoseGazeError, match=f"not a checkpoint .*{reason}"):
        read_checkpoint(path)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(DensePoseGazeError, match="nothing.pkl does not exist"):
        read_checkpoint(tmp_path / "nothing.pkl")


# --- the layouts checkpoints come in -------------------------------------------------------


def test_torch_state_dict_is_read_as_arrays(tmp_path: Path) -> None:
    module = torch.nn.Conv2d(3, 4, 3)
    for layout in ("bare", "wrapped"):
        path = tmp_path / f"{layout}.pth"
        sd = module.state_dict()
        torch.save(sd if layout == "bare" else {"model": sd, "iteration": 5}, path)
        state = read_checkpoint(path)
        assert set(state) == {"weight", "bias"}
        np.testing.assert_array_equal(state["weight"], module.weight.detach().numpy())
        assert state["weight"].dtype == np.float32


def test_half_precision_torch_weights_come_back_as_float32(tmp_path: Path) -> None:
    path = tmp_path / "half.pt"
    torch.save({"w": torch.tensor([1.5, -2.0], dtype=torch.bfloat16)}, path)
    state = read_checkpoint(path)
    assert state["w"].dtype == np.float32
    np.testing.assert_array_equal(state["w"], [1.5, -2.0])


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("layout", ["zoo", "bare", "blobs"])
def test_pickle_layouts_and_protocols_are_read(tmp_path: Path, protocol: int, layout: str) -> None:
    weights = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "a.bias": np.float64([0.5, 1.5])}
    extra = {"a.weight_momentum": np.zeros((2, 3), np.float32), "lr": 0.1, "count": np.int64(7)}
    content = {
        "zoo": {"model": collections.OrderedDict(weights), "__author__": "Detectron2 Model Zoo"},
        "bare": weights,
        "blobs": {"blobs": {**weights, **extra}},
    }[layout]
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))

    state = read_checkpoint(path)

    assert set(state) == {"a.weight", "a.bias"} | ({"count"} if layout == "blobs" else set())
    np.testing.assert_array_equal(state["a.weight"], weights["a.weight"])
    assert state["a.bias"].dtype == np.float32  # float64 in the file


def test_pickle_written_by_numpy_1_is_read(tmp_path: Path) -> None:
    # numpy < 2 names its reconstructor numpy.core.multiarray; model-zoo files were written so.
    data = pickle.dumps({"model": {"w": np.arange(4, dtype=np.float32)}}, protocol=2)
    old = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert old != data
    path = tmp_path / "old.pkl"
    path.write_bytes(old)
    np.testing.assert_array_equal(read_checkpoint(path)["w"], np.arange(4, dtype=np.float32))


# --- the synthetic model-zoo checkpoint of the parity fixtures ---------------------------


def test_fixture_checkpoint_reads_as_float32_arrays_with_manifest_names(
    fixture_checkpoint: Path, parity_fixtures: Path
) -> None:
    manifest = _manifest(parity_fixtures, "R_50_FPN_DL_s1x")
    state = read_checkpoint(fixture_checkpoint)

    assert list(state) == [t["name"] for t in manifest["tensors"]]
    for entry in manifest["tensors"]:
        assert state[entry["name"]].shape == tuple(entry["shape"]), entry["name"]
        assert state[entry["name"]].dtype == np.float32
    spec = importlib.util.spec_from_file_location("make_checkpoint", parity_fixtures / "make_checkpoint.py")
    make_checkpoint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_checkpoint)
    entry = next(t for t in manifest["tensors"] if t["name"].endswith("ann_index_lowres.weight"))
    np.testing.assert_array_equal(state[entry["name"]], make_checkpoint.tensor_from_manifest(entry, manifest["seed"]))


def test_fixture_checkpoints_are_recognised(fixture_checkpoint: Path, parity_fixtures: Path) -> None:
    assert infer_config_name(read_checkpoint(fixture_checkpoint)) == "R_50_FPN_DL_s1x"
    other = {t["name"]: tuple(t["shape"]) for t in _manifest(parity_fixtures, "R_50_FPN_s1x")["tensors"]}
    assert infer_config_name(_stand_in(other)) == "R_50_FPN_s1x"


def test_wrong_config_is_refused_naming_the_lookalike(fixture_checkpoint: Path) -> None:
    state = read_checkpoint(fixture_checkpoint)
    check_checkpoint_matches(state, ZOO["R_50_FPN_DL_s1x"], fixture_checkpoint)
    with pytest.raises(DensePoseGazeError, match="looks like R_50_FPN_DL_s1x") as info:
        check_checkpoint_matches(state, ZOO["R_50_FPN_s1x"], fixture_checkpoint)
    assert str(fixture_checkpoint) in str(info.value) and "R_50_FPN_s1x" in str(info.value)


@pytest.mark.parametrize("config", ["R_50_FPN_s1x", "R_50_FPN_DL_s1x"])
def test_signature_keys_are_real_checkpoint_keys(config: str, parity_fixtures: Path) -> None:
    manifest = {t["name"]: tuple(t["shape"]) for t in _manifest(parity_fixtures, config)["tensors"]}
    for name, shape in signature_shapes(ZOO[config]).items():
        assert manifest.get(name) == shape, name


@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_config_is_recognised_from_its_keys(name: str) -> None:
    assert infer_config_name(_stand_in(signature_shapes(ZOO[name]))) == name
    check_checkpoint_matches(_stand_in(checkpoint_shapes(ZOO[name])), ZOO[name])


@pytest.mark.parametrize(
    ("weights", "model"),
    [
        ("R_101_FPN_DL_WC2M_s1x", "R_101_FPN_DL_WC2_s1x"),
        ("R_50_FPN_WC1_s1x", "R_50_FPN_WC2_s1x"),
        ("R_50_FPN_s1x_legacy", "R_50_FPN_s1x"),
        ("R_101_FPN_s1x", "R_50_FPN_s1x"),
    ],
)
def test_zoo_lookalikes_are_told_apart(weights: str, model: str) -> None:
    with pytest.raises(DensePoseGazeError, match=f"looks like {weights}"):
        check_checkpoint_matches(_stand_in(signature_shapes(ZOO[weights])), ZOO[model])


def test_state_of_another_kind_of_model_is_refused() -> None:
    state = {"conv.weight": np.zeros((2, 2, 1, 1), np.float32)}
    assert infer_config_name(state) is None
    with pytest.raises(DensePoseGazeError, match="not a chart-based DensePose model"):
        check_checkpoint_matches(state, ZOO[DEFAULT_MODEL], "x.pkl")


# --- strict loading into a module ------------------------------------------------------


def _tiny_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))


def test_load_into_copies_every_weight_and_drops_stale_buffers() -> None:
    model = _tiny_model()
    state = {k: np.full(v.shape, 0.25, v.numpy().dtype) for k, v in model.state_dict().items()}
    state["pixel_mean"] = np.zeros((3, 1, 1), np.float32)  # saved by older Detectron2, not a weight
    load_into(model, state)
    assert torch.all(model[0].weight == 0.25) and torch.all(model[1].running_var == 0.25)


def test_load_into_lists_missing_unexpected_and_misshapen_keys() -> None:
    model = _tiny_model()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    del state["0.bias"]
    state["0.weight"] = np.zeros((3, 2, 3, 3), np.float32)
    state.update({f"extra.{i}": np.zeros(1, np.float32) for i in range(12)})
    with pytest.raises(DensePoseGazeError) as info:
        load_into(model, state, "w.pkl")
    message = str(info.value)
    assert "w.pkl" in message
    assert "1 missing keys (0.bias)" in message
    assert "12 unexpected keys (extra.0, " in message and message.count("extra.") == 10
    assert "0.weight (3, 2, 3, 3) vs (3, 2, 1, 1)" in message


# --- the zoo table ----------------------------------------------------------------------


def test_zoo_holds_every_chart_config_with_its_official_file() -> None:
    families = ["s1x", "DL_s1x", "WC1_s1x", "WC2_s1x", "DL_WC1_s1x", "DL_WC2_s1x",
                "WC1M_s1x", "WC2M_s1x", "DL_WC1M_s1x", "DL_WC2M_s1x", "s1x_legacy"]
    assert set(ZOO) == {f"R_{depth}_FPN_{f}" for depth in (50, 101) for f in families}
    assert DEFAULT_MODEL == "R_50_FPN_DL_s1x"
    for name, cfg in ZOO.items():
        assert cfg.name == name
        assert cfg.url.startswith("https://dl.fbaipublicfiles.com/densepose/densepose_rcnn_" + name + "/")
        assert len(cfg.sha256_prefix) == 6 and int(cfg.sha256_prefix, 16) >= 0
    assert ZOO["R_50_FPN_DL_s1x"].checkpoint == "densepose_rcnn_R_50_FPN_DL_s1x/165712097/model_final_0ed407.pkl"


def test_zoo_architecture_fields_follow_the_configs() -> None:
    legacy = ZOO["R_101_FPN_s1x_legacy"]
    assert (legacy.depth, legacy.decoder, legacy.coarse_channels, legacy.pooler_resolution) == (101, False, 15, 14)
    assert legacy.heatmap_size == 56
    dl = ZOO["R_50_FPN_DL_WC2M_s1x"]
    assert (dl.head, dl.decoder, dl.uv_confidence, dl.segm_confidence) == ("deeplab", True, "indep_aniso", True)
    assert dl.heatmap_size == 112
    assert ZOO["R_50_FPN_WC1_s1x"].uv_confidence == "iid_iso" and not ZOO["R_50_FPN_WC1_s1x"].segm_confidence


def test_unknown_model_name_lists_the_valid_ones() -> None:
    assert get_config("densepose_rcnn_R_101_FPN_s1x") is ZOO["R_101_FPN_s1x"]
    with pytest.raises(DensePoseGazeError, match="Unknown DensePose model 'R_50_DL'.*R_50_FPN_DL_s1x"):
        get_config("R_50_DL")


def test_a_config_outside_the_zoo_is_checked_by_its_fields() -> None:
    custom = ModelConfig(name="mine", depth=50, head="deeplab", decoder=True, coarse_channels=2, pooler_resolution=28)
    state = _stand_in(checkpoint_shapes(ZOO["R_50_FPN_DL_s1x"]))
    check_checkpoint_matches(state, custom)


# --- damaged and hostile files fail clearly and cheaply ----------------------------------------------------


def _peak_bytes(func) -> int:
    """Peak memory Python allocated while ``func`` ran (numpy arrays included)."""
    tracemalloc.start()
    try:
        func()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _object_array_bomb() -> bytes:
    # an object array of 3 zeros whose state claims 400 million elements: numpy would allocate 3.2 GB
    small = pickle.dumps(np.zeros(3, dtype=object), protocol=2)
    return small.replace(b"(K\x01K\x03\x85", b"(K\x01J" + (400_000_000).to_bytes(4, "little") + b"\x85", 1)


def _float_array_claim() -> bytes:
    small = pickle.dumps({"model": {"w": np.zeros(3, dtype=np.float64)}}, protocol=2)
    return small.replace(b"(K\x01K\x03\x85", b"(K\x01J" + (400_000_000).to_bytes(4, "little") + b"\x85", 1)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_object_array_bomb(), "not a weights type|larger than any tensor"),
        (_float_array_claim(), "larger than any tensor"),
        (b"\x80\x04\x8e" + (3_000_000_000).to_bytes(8, "little") + b"x.", "claims 3000000000 bytes"),  # BINBYTES8
        (b"\x80\x04\x8d" + (3_000_000_000).to_bytes(8, "little") + b"x.", "claims 3000000000 bytes"),  # BINUNICODE8
        (b"\x80\x05\x96" + (3_000_000_000).to_bytes(8, "little") + b"x.", "claims 3000000000 bytes"),  # BYTEARRAY8
    ],
    ids=["object-array", "float-array", "bytes8", "unicode8", "bytearray8"],
)
def test_a_tiny_pickle_cannot_make_the_reader_allocate_gigabytes(tmp_path: Path, content: bytes, reason: str) -> None:
    assert len(content) < 300
    path = tmp_path / "model_final_abcdef.pkl"
    path.write_bytes(content)

    def read() -> None:
        with pytest.raises(DensePoseGazeError, match=reason) as info:
            read_checkpoint(path)
        assert str(path) in str(info.value)

    assert _peak_bytes(read) < 20_000_000


def test_an_array_shared_by_many_names_is_refused_before_it_is_copied(tmp_path: Path) -> None:
    shared = np.zeros(ZOO_LARGEST_TENSOR // 2, dtype=np.float16)  # float16: each name would get a float32 copy
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({f"w{i}": shared for i in range(30)}, protocol=4))  # one copy in the file
    with pytest.raises(DensePoseGazeError, match="more than any zoo model"):
        read_checkpoint(path)


def test_size_limits_are_those_of_the_largest_zoo_model() -> None:
    shapes = [checkpoint_shapes(cfg) for cfg in ZOO.values()]
    assert max(int(np.prod(s)) for model in shapes for s in model.values()) == ZOO_LARGEST_TENSOR
    assert max(sum(int(np.prod(s)) for s in model.values()) for model in shapes) == ZOO_LARGEST_MODEL


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_of_every_layout_numpy_pickles_are_read(tmp_path: Path, protocol: int) -> None:
    weights = {"c": np.arange(6, dtype=">f4").reshape(2, 3), "f": np.asfortranarray(np.ones((2, 3), np.float32)),
               "i": np.arange(3, dtype=np.int64), "s": np.float32(2.5), "empty": np.zeros((0, 4), np.float32)}
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(weights, protocol=protocol))
    state = read_checkpoint(path)
    for name, array in weights.items():
        np.testing.assert_array_equal(state[name], array)
        assert state[name].flags.writeable


def test_a_truncated_pth_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"w": torch.arange(1000, dtype=torch.float32)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DensePoseGazeError, match="truncated or not a checkpoint"):
        read_checkpoint(path)


def test_a_pth_with_a_damaged_pickle_is_called_damaged_not_malicious(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"w": torch.arange(4, dtype=torch.float32)}, path)
    data = bytearray(path.read_bytes())
    at = data.index(b"_rebuild_tensor_v2")
    data[at:at + 18] = b"\xff" * 18  # a damaged opcode stream, no foreign global
    path.write_bytes(bytes(data))
    with pytest.raises(DensePoseGazeError, match="truncated or not a checkpoint"):
        read_checkpoint(path)


def test_a_pth_entry_claiming_more_than_any_zoo_tensor_is_refused_before_inflating(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model/data.pkl", pickle.dumps({}))
        archive.writestr("model/data/0", bytes(ZOO_LARGEST_TENSOR * 8 + 8))  # deflates to a few hundred kB
    assert path.stat().st_size < 1_000_000
    with pytest.raises(DensePoseGazeError, match="claims .* bytes, more than any tensor"):
        read_checkpoint(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_weights_are_refused_naming_them(tmp_path: Path, value: float) -> None:
    weights = {"a.weight": np.ones(4, np.float32), "b.weight": np.array([1.0, value, 2.0], np.float64)}
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"model": weights}, protocol=4))
    with pytest.raises(DensePoseGazeError, match=r"1 tensors with NaN or infinite values \(b\.weight\)") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_float64_weights_beyond_float32_range_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"w": np.array([1e300])}, protocol=4))  # infinite once made float32
    with pytest.raises(DensePoseGazeError, match="NaN or infinite"):
        read_checkpoint(path)


def test_complex_weights_are_refused_naming_them(tmp_path: Path) -> None:
    for suffix, content in ((".pkl", None), (".pth", {"w": torch.zeros(2, dtype=torch.complex64)})):
        path = tmp_path / f"model{suffix}"
        if content is None:
            path.write_bytes(pickle.dumps({"w": np.zeros(2, np.complex64)}, protocol=4))
        else:
            torch.save(content, path)
        with pytest.raises(DensePoseGazeError, match=r"1 tensors of a type no DensePose weights have \(w \(") as info:
            read_checkpoint(path)
        assert "complex" in str(info.value)


def _full_stand_in(config: str = DEFAULT_MODEL) -> dict[str, np.ndarray]:
    return _stand_in(checkpoint_shapes(ZOO[config]))


@pytest.mark.parametrize(
    ("damage", "listed"),
    [
        (lambda s: s.update({"backbone.bottom_up.res2.0.conv1.weight": np.zeros((64, 64, 3, 3), np.float32)}),
         r"1 tensors of another shape \(checkpoint vs model\) \(backbone\.bottom_up\.res2\.0\.conv1\.weight "
         r"\(64, 64, 3, 3\) vs \(64, 64, 1, 1\)\)"),
        (lambda s: s.pop("roi_heads.box_predictor.cls_score.bias"),
         r"1 missing tensors \(roi_heads\.box_predictor\.cls_score\.bias\)"),
        (lambda s: s.update({"roi_heads.extra.weight": np.zeros(3, np.float32)}),
         r"1 unexpected tensors \(roi_heads\.extra\.weight\)"),
        (lambda s: s.update({"roi_heads.box_head.fc2.bias": np.zeros(1024, np.complex64)}),
         r"1 tensors of an unsupported type \(roi_heads\.box_head\.fc2\.bias \(complex64\)\)"),
        (lambda s: s.update({"roi_heads.box_head.fc2.bias": np.zeros(1024, bool)}),
         r"unsupported type \(roi_heads\.box_head\.fc2\.bias \(bool\)\)"),
        (lambda s: s.update({"roi_heads.box_head.fc2.bias": np.full(1024, np.nan, np.float32)}),
         r"NaN or infinite values \(roi_heads\.box_head\.fc2\.bias\)"),
    ],
    ids=["shape", "missing", "unexpected", "complex", "bool", "nan"],
)
def test_a_checkpoint_that_does_not_fit_tensor_for_tensor_is_refused_by_the_predictor(damage, listed) -> None:
    from napari_densepose_gaze.engine.predictor import Predictor

    state = _full_stand_in()
    damage(state)
    with pytest.raises(DensePoseGazeError, match=listed) as info:
        Predictor(DEFAULT_MODEL, weights=state, device="cpu")  # once a raw torch RuntimeError
    assert DEFAULT_MODEL in str(info.value)


def test_a_damaged_checkpoint_names_the_config_its_architecture_is() -> None:
    state = _full_stand_in("R_50_FPN_s1x")
    del state["roi_heads.box_head.fc1.weight"]
    with pytest.raises(DensePoseGazeError, match="architecture is that of R_50_FPN_s1x"):
        check_checkpoint_matches(state, ZOO["R_50_FPN_s1x"], "x.pkl")


def test_torch_state_dicts_are_checked_like_arrays() -> None:
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _full_stand_in().items()}
    check_checkpoint_matches(state, ZOO[DEFAULT_MODEL])
    state["roi_heads.box_head.fc2.bias"] = torch.full((1024,), float("inf"))
    with pytest.raises(DensePoseGazeError, match="NaN or infinite"):
        check_checkpoint_matches(state, ZOO[DEFAULT_MODEL])
