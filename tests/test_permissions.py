"""Files the user may not read or write: clear messages, and the other recordings still run.

Root may read anything, so when the tests run as root (as in CI containers)
the command line runs in a subprocess as the unprivileged user ``nobody``:
with ``setpriv`` where it is installed, else by ``os.setuid`` before the
command starts. The tests are skipped only when neither is possible (root
without a ``nobody`` user); as an ordinary user they run the command directly.
Everything they use lies in a temporary folder that ``nobody`` may enter.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_densepose_gaze import pipeline
from napari_densepose_gaze.recording import Recording, find_recordings
from napari_densepose_gaze.synthetic.export import write_export

MODEL = "R_50_FPN_s1x"


def _unprivileged() -> tuple[list[str], Callable[[], None] | None]:
    """The command prefix and the preexec function that run a command without root's powers."""
    if os.geteuid() != 0:
        return [], None
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no user 'nobody' to drop to")
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"], None

    def drop() -> None:
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    return [], drop


@pytest.fixture
def workspace() -> Iterator[Path]:
    """A folder everyone may enter and write (pytest's own temporary folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="densepose-gaze-permissions-"))
    folder.chmod(0o777)
    yield folder
    for path in folder.rglob("*"):  # give back what the tests took away, so the folder can go
        if not path.is_symlink():
            path.chmod(0o777)
    shutil.rmtree(folder)


def densepose_gaze(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    """``densepose-gaze ARGS`` as a user without root's powers, in ``workspace``."""
    prefix, preexec = _unprivileged()
    home = workspace / "home"
    home.mkdir(exist_ok=True)
    home.chmod(0o777)
    env = {**os.environ, "HOME": str(home), "MPLCONFIGDIR": str(home / "matplotlib"),
           "NAPARI_DENSEPOSE_GAZE_CACHE": str(home / "cache")}
    return subprocess.run([*prefix, sys.executable, "-m", "napari_densepose_gaze", *args], cwd=workspace,
                          env=env, preexec_fn=preexec, capture_output=True, text=True, timeout=600)


def shared_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)


class PixelEngine:
    """A stand-in engine for making results stores in this process (what is in them does not matter here)."""

    batch_size, device, dtype, min_size, max_size = 4, "cpu", "torch.float32", 64, 107

    def predict(self, frames):
        from napari_densepose_gaze.engine.predictor import FrameResult

        return [FrameResult(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32), labels=[], uv=[],
                            part_map=(f[..., 0] // 11 % 25).astype(np.uint8),
                            person_map=np.zeros(f.shape[:2], np.uint8)) for f in frames]


@pytest.fixture
def export_with_results(workspace: Path) -> tuple[Path, Path]:
    """An export of three recordings and a folder of their results stores, all open to everyone."""
    export = write_export(workspace / "export", 3, seconds=0.4, size=(64, 48))
    stores = workspace / "stores"
    loaded = pipeline.LoadedModel(PixelEngine(), pipeline.ModelSettings(), "pixels", Path("pixels.pkl"), "0" * 64)
    for folder in find_recordings(export):
        recording = Recording.open(folder)
        prepared = pipeline.prepare_run(recording, loaded.settings,
                                        pipeline.RunOptions(output=stores / f"{folder.name}.densepose"),
                                        loaded=loaded)
        pipeline.run_densepose(recording, prepared.predictor, prepared.store, range(3))
    shared_tree(workspace)
    return export, stores


def test_unreadable_weights_stop_the_run_before_any_recording_with_a_message(export_with_results, workspace):
    export, _ = export_with_results
    weights = workspace / "model_final.pkl"
    weights.write_bytes(b"weights")
    weights.chmod(0o000)
    done = densepose_gaze(workspace, "run", str(export), "--model", MODEL, "--weights", str(weights),
                          "--device", "cpu", "--output", str(workspace / "new"))
    assert done.returncode == 2, done.stderr
    assert f"--weights {weights} cannot be read by this user" in done.stderr
    assert "Traceback" not in done.stderr and not (workspace / "new").exists()


def test_an_unreadable_table_or_store_fails_its_recording_alone_with_a_message(export_with_results, workspace):
    export, stores = export_with_results
    first, second, third = find_recordings(export)
    (second / "gaze.csv").chmod(0o000)
    (stores / f"{first.name}.densepose" / "frames.log").chmod(0o000)
    tables = workspace / "tables"
    done = densepose_gaze(workspace, "hits", str(export), "--results", str(stores), "--output", str(tables))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr, done.stderr
    failed = done.stderr.split("2 of 3 recording(s) failed:")[1]
    assert f"{second.name}: " in failed and "gaze.csv" in failed
    assert f"{first.name}: " in failed and "frames.log" in failed
    assert sorted(p.name for p in tables.iterdir()) == [third.name]
    assert (tables / third.name / "gaze_hits.csv").is_file()


def test_a_results_folder_the_user_may_not_write_fails_with_a_message(
    export_with_results, workspace, parity_checkpoint
):
    export, _ = export_with_results
    weights = workspace / "model_final.pkl"
    try:  # 250 MB: a second name for it, where the unprivileged user can reach it
        os.link(parity_checkpoint(MODEL), weights)
    except OSError:
        shutil.copyfile(parity_checkpoint(MODEL), weights)
    weights.chmod(0o644)
    locked = workspace / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    done = densepose_gaze(workspace, "run", str(export), "--model", MODEL, "--weights", str(weights),
                          "--device", "cpu", "--input-size", "64", "--last", "0",
                          "--output", str(locked / "results"))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("Choose a folder you can write to") >= 3
    assert list(locked.iterdir()) == []


def test_an_unreadable_recording_folder_is_reported_and_the_others_still_run(export_with_results, workspace):
    export, stores = export_with_results
    first, second, third = find_recordings(export)
    second.chmod(0o000)
    tables = workspace / "tables"
    done = densepose_gaze(workspace, "hits", str(export), "--results", str(stores), "--output", str(tables))
    assert "Traceback" not in done.stderr
    assert done.returncode == 1, done.stderr
    assert f"1 of 3 recording(s) failed:\n  {second.name}: " in done.stderr
    assert sorted(p.name for p in tables.iterdir()) == [first.name, third.name]


def test_an_unreadable_export_folder_is_a_clear_error(export_with_results, workspace):
    export, _ = export_with_results
    export.chmod(0o000)
    done = densepose_gaze(workspace, "hits", str(export))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and str(export) in done.stderr


def test_the_commands_here_run_without_roots_powers(workspace):
    """The other tests mean something only if the command really runs as a user who may not read this."""
    secret = workspace / "secret"
    secret.write_text("x")
    secret.chmod(0o000)
    prefix, preexec = _unprivileged()
    probe = subprocess.run([*prefix, sys.executable, "-c", f"open({str(secret)!r}).read()"],
                           preexec_fn=preexec, capture_output=True, text=True)
    assert probe.returncode != 0 and "PermissionError" in probe.stderr
