"""The npe2 manifest reaches napari from an editable install and from built wheels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from npe2 import PluginManifest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_IN_WHEEL = "napari_densepose_gaze/napari.yaml"


@pytest.fixture(scope="module")
def built_distributions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build an sdist, a wheel from that sdist, and a wheel straight from the tree.

    The build runs on a copy of the project so that its build/ and egg-info
    folders never land in the working tree.
    """
    work = tmp_path_factory.mktemp("build")
    project = work / "project"
    project.mkdir()
    shutil.copytree(ROOT / "src", project / "src", symlinks=True,
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "napari.yaml", "LICENSE"):
        source = ROOT / name
        if source.is_symlink():
            (project / name).symlink_to(source.readlink())
        elif source.exists():
            shutil.copy2(source, project / name)
    dist = work / "dist"
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir"]
    # sdist then a wheel built from the unpacked sdist: what pip does from PyPI
    subprocess.run([*build, str(dist / "via_sdist"), str(project)],
                   check=True, capture_output=True, text=True)
    # a wheel straight from the source tree: what `pip wheel .` does
    subprocess.run([*build, str(dist / "direct"), "--wheel", str(project)],
                   check=True, capture_output=True, text=True)
    return dist


def _wheel(folder: Path) -> Path:
    (wheel,) = folder.glob("napari_densepose_gaze-*.whl")
    return wheel


@pytest.mark.parametrize("route", ["direct", "via_sdist"])
def test_wheel_carries_the_root_manifest_as_a_real_file(built_distributions: Path, route: str) -> None:
    with zipfile.ZipFile(_wheel(built_distributions / route)) as wheel:
        shipped = wheel.read(MANIFEST_IN_WHEEL)
        info = wheel.getinfo(MANIFEST_IN_WHEEL)
    # a symlink stored in a zip would carry the link target as its content
    assert (info.external_attr >> 16) & 0o170000 != 0o120000
    assert shipped == (ROOT / "napari.yaml").read_bytes()


@pytest.mark.parametrize("route", ["direct", "via_sdist"])
def test_wheel_declares_the_napari_manifest_entry_point(built_distributions: Path, route: str) -> None:
    with zipfile.ZipFile(_wheel(built_distributions / route)) as wheel:
        (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = wheel.read(entry_points).decode()
    assert "[napari.manifest]" in text
    assert "napari-densepose-gaze = napari_densepose_gaze:napari.yaml" in text


def test_installed_manifest_is_valid_and_its_commands_import() -> None:
    # the same checks as `npe2 validate napari-densepose-gaze --imports`
    manifest = PluginManifest.from_distribution("napari-densepose-gaze")
    assert manifest.name == "napari-densepose-gaze"
    manifest.validate_imports()


def test_root_manifest_is_a_relative_link_to_the_packaged_one() -> None:
    # one copy: a root file that is a copy (or an absolute link) could drift from what wheels ship
    root = ROOT / "napari.yaml"
    packaged = ROOT / "src" / "napari_densepose_gaze" / "napari.yaml"
    assert root.is_symlink(), "napari.yaml at the root must be a symbolic link to the packaged manifest"
    assert not Path(os.readlink(root)).is_absolute()
    assert root.resolve() == packaged.resolve()
    assert PluginManifest.from_file(root).name == "napari-densepose-gaze"


def test_npe2_discovers_reader_sample_and_widget() -> None:
    manifest = PluginManifest.from_distribution("napari-densepose-gaze")
    contributions = manifest.contributions
    (reader,) = contributions.readers
    assert reader.accepts_directories and "*.mp4" in reader.filename_patterns
    assert [s.key for s in contributions.sample_data] == ["synthetic_recording"]
    assert [w.display_name for w in contributions.widgets] == ["Recording info", "Run DensePose", "Gaze hits",
                                                                 "Body parts"]
