"""Find a model's weights file: a path the user gave, or the zoo file in the local cache.

Zoo files are downloaded once with pooch into a cache folder (argument, else the
environment variable ``NAPARI_DENSEPOSE_GAZE_CACHE``, else the user's cache
directory). The model zoo publishes only the first six hex digits of each file's
SHA-256 (in its name), so that prefix is what a download is checked against.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from napari_densepose_gaze.durable import atomic_write
from napari_densepose_gaze.engine.zoo import ModelConfig, get_config
from napari_densepose_gaze.errors import DensePoseGazeError

__all__ = [
    "CACHE_ENV",
    "ProgressCallback",
    "cache_dir_for",
    "cached_path",
    "digest_path",
    "file_sha256",
    "resolve_weights",
    "weights_state",
]

CACHE_ENV = "NAPARI_DENSEPOSE_GAZE_CACHE"
ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total; 0 if unknown)
WeightsState = Literal["missing", "downloaded", "local"]

_TIMEOUT_S = 30  # per network read, not for the whole file
_DIGEST_SUFFIX = ".sha256"  # "<hex digest> <size> <mtime_ns>" beside the file it describes
# (path, size, mtime_ns) -> SHA-256: a checkpoint is hashed once per process, for the
# prefix check and for the results' metadata alike.
_digests: dict[tuple[str, int, int], str] = {}


def cache_dir_for(cache_dir: str | Path | None = None) -> Path:
    """The weights cache folder: the argument, else $NAPARI_DENSEPOSE_GAZE_CACHE, else the user cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import pooch

    return Path(pooch.os_cache("napari-densepose-gaze"))


def cached_path(cfg: ModelConfig | str, cache_dir: str | Path | None = None) -> Path:
    """Where the zoo file of ``cfg`` lives in the cache (whether or not it is there yet)."""
    cfg = get_config(cfg) if isinstance(cfg, str) else cfg
    return cache_dir_for(cache_dir) / cfg.name / cfg.filename


def weights_state(name: str | Path | ModelConfig, cache_dir: str | Path | None = None) -> WeightsState:
    """For the UI: "local" for an existing file path, "downloaded" for a cached zoo file, else "missing".

    Cheap: looks at the file only, without hashing it.
    """
    cfg = _as_config(name)
    if cfg is None:
        return "local" if Path(name).is_file() else "missing"
    path = cached_path(cfg, cache_dir)
    return "downloaded" if path.is_file() and path.stat().st_size > 0 else "missing"


def resolve_weights(
    name_or_path: str | Path | ModelConfig,
    cache_dir: str | Path | None = None,
    download: bool = True,
    progress: bool | ProgressCallback = True,
) -> Path:
    """The local weights file for a zoo model name, or the given checkpoint path.

    A zoo model missing from the cache is downloaded (when ``download``) with a
    progress bar on the terminal (``progress=True``) or reported to a callback
    ``progress(done_bytes, total_bytes)``.
    """
    cfg = _as_config(name_or_path)
    if cfg is None:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise DensePoseGazeError(
                f"Weights file {path} does not exist. Pass an existing checkpoint with --weights "
                f"or a model name (get_config lists them)."
            )
        return path
    path = cached_path(cfg, cache_dir)
    if path.is_file():
        _check_prefix(path, cfg, downloaded_now=False)
        return path
    if not download:
        reason = f"The weights of {cfg.name} are not in the cache"
        raise DensePoseGazeError(_fetch_instructions(cfg, path, reason))
    _download(cfg, path, progress)
    _check_prefix(path, cfg, downloaded_now=True)
    return path


def _as_config(name: str | Path | ModelConfig) -> ModelConfig | None:
    """The zoo config a name means, or None for a path (separator, checkpoint suffix, or existing)."""
    if isinstance(name, ModelConfig):
        return name
    text = str(name)
    suffix = Path(text).suffix.lower()
    looks_like_path = os.sep in text or "/" in text or suffix in {".pkl", ".pth", ".pt"}
    if isinstance(name, Path) or looks_like_path or Path(text).exists():
        return None
    return get_config(text)  # raises, listing the valid names


def _fetch_instructions(cfg: ModelConfig, path: Path, reason: str) -> str:
    return (
        f"{reason}. Download {cfg.url} and save it as {path} "
        f"(or set {CACHE_ENV} to a folder holding {cfg.name}/{cfg.filename}), "
        "or pass a checkpoint file with --weights PATH."
    )


def _download(cfg: ModelConfig, path: Path, progress: bool | ProgressCallback) -> None:
    import pooch
    import requests

    bar: bool | _CallbackBar = _CallbackBar(progress) if callable(progress) else bool(progress)
    downloader = pooch.HTTPDownloader(progressbar=bar, timeout=_TIMEOUT_S)
    logger = pooch.get_logger()
    level = logger.level
    # pooch would advise passing the full hash, which the zoo does not publish
    logger.setLevel(logging.WARNING)
    try:
        # pooch streams into a temporary file next to the target and moves it in place
        # only when complete, so an interrupted download leaves no partial file.
        pooch.retrieve(
            cfg.url, known_hash=None, fname=path.name, path=path.parent, downloader=downloader
        )
    except (requests.RequestException, OSError) as exc:
        reason = f"Could not download the weights of {cfg.name} ({type(exc).__name__}: {exc})"
        raise DensePoseGazeError(_fetch_instructions(cfg, path, reason)) from exc
    finally:
        logger.setLevel(level)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, computed once per file version.

    Remembered in this process and in ``<file>.sha256`` beside the file, so a later
    run does not read hundreds of MB again. The side file names the file's size and
    mtime; one that does not match them (the file was replaced) is recomputed, and a
    folder that cannot be written to just goes without it.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = _read_digest_beside(path, stat.st_size, stat.st_mtime_ns)
        if digest is None:
            digest = _sha256_of(path)
            _write_digest_beside(path, digest, stat.st_size, stat.st_mtime_ns)
        _digests[key] = digest
    return _digests[key]


def digest_path(path: str | Path) -> Path:
    """Where :func:`file_sha256` keeps the digest of ``path``."""
    path = Path(path)
    return path.with_name(path.name + _DIGEST_SUFFIX)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read_digest_beside(path: Path, size: int, mtime_ns: int) -> str | None:
    """The cached digest, or None when there is none or it is for another version of the file."""
    try:
        fields = digest_path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(fields) != 3 or fields[1:] != [str(size), str(mtime_ns)]:
        return None
    digest = fields[0].lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None
    return digest


def _write_digest_beside(path: Path, digest: str, size: int, mtime_ns: int) -> None:
    try:
        with atomic_write(digest_path(path), what="the checksum cache") as f:
            f.write(f"{digest} {size} {mtime_ns}\n")
    except DensePoseGazeError:
        pass  # a read-only folder: hash again next time rather than fail


def _check_prefix(path: Path, cfg: ModelConfig, downloaded_now: bool) -> None:
    actual = file_sha256(path)
    if actual.startswith(cfg.sha256_prefix):
        return
    if downloaded_now:
        path.unlink(missing_ok=True)
        digest_path(path).unlink(missing_ok=True)
        raise DensePoseGazeError(
            f"The download of {cfg.url} is corrupt or not the published file: its SHA-256 starts "
            f"with {actual[:6]}, not {cfg.sha256_prefix}. The file was deleted; try again later, "
            "or pass a checkpoint file with --weights PATH."
        )
    raise DensePoseGazeError(
        f"Cached weights {path} are not the published {cfg.name} file: their SHA-256 starts with "
        f"{actual[:6]}, not {cfg.sha256_prefix}. Delete the file and run again to download it, "
        "or pass a checkpoint file with --weights PATH."
    )


class _CallbackBar:
    """The part of the tqdm interface pooch drives, forwarded to ``callback(done, total)``."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback
        self.total = 0
        self.n = 0

    def update(self, count: int) -> None:
        # pooch counts whole chunks, so the last update can overshoot the size
        self.n = min(self.n + count, self.total) if self.total else self.n + count
        self._callback(self.n, self.total)

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        pass
