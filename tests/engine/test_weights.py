"""Zoo weights are fetched once into the cache, checked, and never half-written.

Every download here goes to a server on 127.0.0.1; any other connection fails the test.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pooch
import pytest

from napari_densepose_gaze.engine import zoo
from napari_densepose_gaze.engine.weights import CACHE_ENV, cache_dir_for, resolve_weights, weights_state
from napari_densepose_gaze.engine.zoo import ModelConfig
from napari_densepose_gaze.errors import DensePoseGazeError

PAYLOAD = bytes(range(256)) * 40  # 10 KiB: several of pooch's 1 KiB chunks
PREFIX = hashlib.sha256(PAYLOAD).hexdigest()[:6]


@pytest.fixture(autouse=True)
def _offline(no_internet) -> None:
    """Every test here fails if it reaches beyond this machine."""


@pytest.fixture
def server(local_server):
    return local_server


def _fake_config(prefix: str = PREFIX) -> ModelConfig:
    return ModelConfig(
        name="R_50_FPN_FAKE_s1x", depth=50, head="v1convx", decoder=True, coarse_channels=2,
        pooler_resolution=28, checkpoint=f"densepose_rcnn_R_50_FPN_FAKE_s1x/1/model_final_{prefix}.pkl",
    )


@pytest.fixture
def fake_zoo(monkeypatch: pytest.MonkeyPatch, server, tmp_path: Path) -> tuple[ModelConfig, Path]:
    """A zoo entry served by the local server, and the cache folder set through the environment."""
    url, _, root = server
    cfg = _fake_config()
    (root / cfg.checkpoint).parent.mkdir(parents=True)
    (root / cfg.checkpoint).write_bytes(PAYLOAD)
    monkeypatch.setattr(zoo, "DOWNLOAD_ROOT", url)
    monkeypatch.setitem(zoo.ZOO, cfg.name, cfg)
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cfg, cache


def test_zoo_weights_download_once_into_the_env_cache(fake_zoo, server) -> None:
    cfg, cache = fake_zoo
    _, httpd, _ = server
    assert weights_state(cfg.name) == "missing"
    seen: list[tuple[int, int]] = []

    path = resolve_weights(cfg.name, progress=lambda done, total: seen.append((done, total)))

    assert path == cache / cfg.name / f"model_final_{PREFIX}.pkl"
    assert path.read_bytes() == PAYLOAD
    assert weights_state(cfg.name) == "downloaded"
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 2
    assert all(b <= len(PAYLOAD) for b, _ in seen)
    assert httpd.requests == ["/" + cfg.checkpoint]

    assert resolve_weights(cfg.name) == path
    assert len(httpd.requests) == 1  # served from the cache the second time


def test_cache_dir_argument_wins_over_the_environment(fake_zoo, tmp_path: Path) -> None:
    cfg, env_cache = fake_zoo
    path = resolve_weights(cfg.name, cache_dir=tmp_path / "mine", progress=False)
    assert path == tmp_path / "mine" / cfg.name / cfg.filename
    assert not env_cache.exists()


def test_default_cache_is_the_user_cache_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_dir_for() == Path(pooch.os_cache("napari-densepose-gaze"))


def test_download_with_wrong_hash_prefix_is_deleted(fake_zoo, server, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, root = server
    wrong = "000000" if not PREFIX.startswith("000000") else "ffffff"
    cfg = _fake_config(wrong)
    (root / cfg.checkpoint).write_bytes(PAYLOAD)
    monkeypatch.setitem(zoo.ZOO, cfg.name, cfg)
    _, cache = fake_zoo

    with pytest.raises(DensePoseGazeError, match=f"SHA-256 starts with {PREFIX}, not {wrong}"):
        resolve_weights(cfg.name, progress=False)

    folder = cache / cfg.name
    assert not folder.exists() or list(folder.iterdir()) == []


def test_cached_file_with_wrong_hash_is_reported_not_used(fake_zoo) -> None:
    cfg, cache = fake_zoo
    path = cache / cfg.name / cfg.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"something else")
    with pytest.raises(DensePoseGazeError, match="Delete the file") as info:
        resolve_weights(cfg.name, progress=False)
    assert str(path) in str(info.value)


def test_unreachable_server_says_where_to_put_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = _fake_config()
    monkeypatch.setattr(zoo, "DOWNLOAD_ROOT", f"http://127.0.0.1:{port}/")

    with pytest.raises(DensePoseGazeError) as info:
        resolve_weights(cfg, cache_dir=tmp_path, progress=False)

    message = str(info.value)
    destination = tmp_path / cfg.name / cfg.filename
    assert f"http://127.0.0.1:{port}/{cfg.checkpoint}" in message
    assert str(destination) in message
    assert "--weights PATH" in message
    assert not destination.exists()


def test_missing_file_on_server_is_reported(fake_zoo, server, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _fake_config("abcdef")
    monkeypatch.setitem(zoo.ZOO, cfg.name, cfg)
    with pytest.raises(DensePoseGazeError, match="404.*" + cfg.filename):
        resolve_weights(cfg.name, progress=False)


def test_no_download_when_not_allowed(fake_zoo, server) -> None:
    cfg, cache = fake_zoo
    with pytest.raises(DensePoseGazeError, match="not in the cache") as info:
        resolve_weights(cfg.name, download=False)
    assert cfg.url in str(info.value) and str(cache / cfg.name / cfg.filename) in str(info.value)
    assert server[1].requests == []


def test_local_checkpoint_path_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "my_weights.pth"
    path.write_bytes(b"x")
    assert resolve_weights(path) == path
    assert resolve_weights(str(path)) == path
    assert weights_state(str(path)) == "local"
    with pytest.raises(DensePoseGazeError, match="gone.pkl does not exist"):
        resolve_weights(tmp_path / "gone.pkl")


def test_unknown_model_name_is_refused_with_the_valid_names() -> None:
    with pytest.raises(DensePoseGazeError, match="R_50_FPN_DL_s1x"):
        resolve_weights("R_50_FPN_XL", download=False)


# -- the checkpoint's digest is computed once per file version ---------------------------------


def _count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Forget the in-process digests and record every full read of a file for hashing."""
    from napari_densepose_gaze.engine import weights

    monkeypatch.setattr(weights, "_digests", {})
    calls: list[Path] = []
    real = weights._sha256_of

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(weights, "_sha256_of", counting)
    return calls


def test_file_digest_is_cached_beside_the_file_for_later_runs(tmp_path: Path, monkeypatch) -> None:
    from napari_densepose_gaze.engine import weights
    from napari_densepose_gaze.engine.weights import digest_path, file_sha256

    path = tmp_path / "model_final.pkl"
    path.write_bytes(PAYLOAD)
    calls = _count_hashing(monkeypatch)

    assert file_sha256(path) == hashlib.sha256(PAYLOAD).hexdigest()
    assert digest_path(path) == tmp_path / "model_final.pkl.sha256"
    assert digest_path(path).read_text().split()[0] == hashlib.sha256(PAYLOAD).hexdigest()
    monkeypatch.setattr(weights, "_digests", {})  # a new process
    assert file_sha256(path) == hashlib.sha256(PAYLOAD).hexdigest()
    assert calls == [path]


def test_file_digest_cache_of_another_file_version_is_recomputed(tmp_path: Path, monkeypatch) -> None:
    import os

    from napari_densepose_gaze.engine import weights
    from napari_densepose_gaze.engine.weights import digest_path, file_sha256

    path = tmp_path / "model_final.pkl"
    path.write_bytes(PAYLOAD)
    calls = _count_hashing(monkeypatch)
    file_sha256(path)

    # Same size, new content and mtime: the side file no longer describes it.
    path.write_bytes(PAYLOAD[::-1])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    monkeypatch.setattr(weights, "_digests", {})
    assert file_sha256(path) == hashlib.sha256(PAYLOAD[::-1]).hexdigest()
    assert len(calls) == 2

    # A damaged side file is ignored too.
    digest_path(path).write_text("not a digest")
    monkeypatch.setattr(weights, "_digests", {})
    assert file_sha256(path) == hashlib.sha256(PAYLOAD[::-1]).hexdigest()
    assert len(calls) == 3
    assert digest_path(path).read_text().split()[0] == hashlib.sha256(PAYLOAD[::-1]).hexdigest()


def test_file_digest_in_a_read_only_folder_is_computed_without_a_cache(tmp_path: Path, monkeypatch) -> None:
    from napari_densepose_gaze import durable
    from napari_densepose_gaze.engine.weights import digest_path, file_sha256

    path = tmp_path / "model_final.pkl"
    path.write_bytes(PAYLOAD)

    def refuse(target, what="the file"):
        raise DensePoseGazeError(f"Cannot write {what} {target}: read-only")

    monkeypatch.setattr(durable, "atomic_path", refuse)
    calls = _count_hashing(monkeypatch)
    assert file_sha256(path) == hashlib.sha256(PAYLOAD).hexdigest()
    assert calls == [path] and not digest_path(path).exists()
