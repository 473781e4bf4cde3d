"""Fixtures shared by all tests.

napari's ``make_napari_viewer`` fixture comes from napari's own pytest plugin
(registered by napari's ``pytest11`` entry point, nothing to enable here);
pytest-xvfb runs the whole session on a virtual X display when Xvfb is
installed, so viewer tests draw with the real xcb platform and OpenGL (Mesa).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from napari_densepose_gaze.synthetic.export import write_recording

if not os.environ.get("DISPLAY") and not shutil.which("Xvfb"):
    # no screen and no Xvfb (run .ci/setup to get it): Qt's offscreen platform
    # at least lets widget tests run instead of aborting on a missing display
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: small enough to write in about a second, big enough for figures and gaze to be seen
SMALL_RECORDING = {"seconds": 2.0, "size": (320, 240), "seed": 0}


@pytest.fixture(scope="session")
def synthetic_recording(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``synthetic_recording(**write_recording_kwargs) -> recording folder``.

    Defaults to a 2 s, 320x240 Neon-style recording. Folders are written once
    per session and parameter set and shared between tests: treat them as
    read-only (copy one with ``shutil.copytree`` before changing it).
    """
    made: dict[tuple, Path] = {}

    def make(**kwargs: Any) -> Path:
        options = {**SMALL_RECORDING, **kwargs}
        key = tuple(sorted((k, _hashable(v)) for k, v in options.items()))
        if key not in made:
            made[key] = write_recording(tmp_path_factory.mktemp("recording"), **options)
        return made[key]

    return make


def _hashable(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return tuple(sorted(value))
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


@pytest.fixture
def sample_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the sample-data cache at a fresh temporary folder (never the user's cache)."""
    from napari_densepose_gaze.ui.sample_data import CACHE_ENV

    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


# -------------------------------------------------------------- DensePose checkpoints
FIXTURES_ENV = "DENSEPOSE_PARITY_FIXTURES"


def find_parity_fixtures() -> Path:
    """The parity fixture folder: ``$DENSEPOSE_PARITY_FIXTURES`` or ``shared/`` beside/above the repo."""
    if os.environ.get(FIXTURES_ENV):
        folder = Path(os.environ[FIXTURES_ENV])
        if not folder.is_dir():
            pytest.fail(f"${FIXTURES_ENV} points to {folder}, which is not a folder")
        return folder
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "fixtures" / "densepose_parity"
        if candidate.is_dir():
            return candidate
    pytest.fail(f"DensePose parity fixtures not found: set ${FIXTURES_ENV} or check out shared/ beside the repo")


@pytest.fixture(scope="session")
def parity_fixtures() -> Path:
    return find_parity_fixtures()


@pytest.fixture(scope="session")
def parity_checkpoint(
    parity_fixtures: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Path]]:
    """Factory: config name -> path of its synthetic model-zoo ``.pkl`` (written once per session)."""
    written: dict[str, Path] = {}

    def path_for(config: str) -> Path:
        if config not in written:
            out = tmp_path_factory.mktemp(f"checkpoint_{config}") / "model_final.pkl"
            subprocess.run(
                [sys.executable, str(parity_fixtures / "make_checkpoint.py"),
                 str(parity_fixtures / f"manifest_{config}.json"), str(out)],
                check=True,
            )
            written[config] = out
        return written[config]

    yield path_for
    for path in written.values():  # 250-350 MB each: don't leave them in pytest's kept temp dirs
        path.unlink(missing_ok=True)




# -------------------------------------------------------------- downloads without the internet
@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection that does not go to this machine."""
    connect = socket.socket.connect

    def local_only(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "localhost", "::1") and self.family != socket.AF_UNIX:
            raise AssertionError(f"test tried to reach {address}")
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def local_server(no_internet, tmp_path: Path) -> Iterator[tuple[str, http.server.HTTPServer, Path]]:
    """(root URL, server, folder it serves): a file server on 127.0.0.1; ``server.requests`` lists paths asked for."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_RecordingHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/", httpd, root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
