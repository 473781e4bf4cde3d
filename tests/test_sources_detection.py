"""Which folders are recordings of which source: the command line, napari's reader and Recording.open agree."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.recording import (
    Recording,
    find_recordings,
    is_recording_folder,
    looks_like_recording_or_export,
)
from napari_densepose_gaze.sources import NATIVE_NEON, NEON_PLAYER, PUPIL_CORE, source_of
from napari_densepose_gaze.synthetic.native_neon import native_neon_recording_from
from napari_densepose_gaze.synthetic.neon_player import neon_player_export_from
from napari_densepose_gaze.synthetic.pupil_core import pupil_core_recording_from


@pytest.fixture(scope="module")
def layouts(synthetic_recording, tmp_path_factory) -> dict[str, Path]:
    """One folder per source under one parent (read-only): what a lab's data folder could hold."""
    cloud = synthetic_recording()
    parent = tmp_path_factory.mktemp("lab")
    return {
        NEON_PLAYER: neon_player_export_from(cloud, parent / "neon_player", raw_scene=True),
        NATIVE_NEON: native_neon_recording_from(cloud, parent / "companion"),
        PUPIL_CORE: pupil_core_recording_from(cloud, parent / "pupil_core"),
    }


def quietly(path: Path, **kwargs) -> Recording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Recording.open(path, **kwargs)


def test_each_layout_is_recognised_as_its_source(layouts) -> None:
    for source, folder in layouts.items():
        assert source_of(folder).NAME == source
        assert is_recording_folder(folder) and looks_like_recording_or_export(folder)


def test_a_folder_of_all_sources_lists_each_recording_once(layouts) -> None:
    parent = layouts[NEON_PLAYER].parent.parent
    assert sorted(find_recordings(parent)) == sorted(layouts.values())


def test_a_pupil_core_recording_folder_opens_its_one_export(layouts) -> None:
    export = layouts[PUPIL_CORE]
    root = export.parent.parent
    assert not is_recording_folder(root)  # it holds world.mp4, but its export is the recording
    assert looks_like_recording_or_export(root) and looks_like_recording_or_export(root.parent)
    assert find_recordings(root) == [export]
    assert quietly(root).folder == export
    assert quietly(root / "world.mp4").folder == export  # the recording's own video: its export is opened


def test_a_pupil_core_recording_without_an_export_says_how_to_make_one(layouts, tmp_path) -> None:
    root = tmp_path / "000"
    shutil.copytree(layouts[PUPIL_CORE].parent.parent, root, ignore=shutil.ignore_patterns("exports"))
    with pytest.raises(DensePoseGazeError, match="without a Pupil Player export.*Raw Data Exporter"):
        Recording.open(root)


def test_picking_a_video_opens_its_recording_with_that_videos_timestamps(layouts) -> None:
    export = layouts[NEON_PLAYER]
    assert quietly(export).video_path.name == "scene.mp4"  # the raw scene before the one with overlays
    picked = quietly(export / "world.mp4")
    assert picked.video_path.name == "world.mp4" and picked.source == NEON_PLAYER
    assert looks_like_recording_or_export(export / "world.mp4")
    native = layouts[NATIVE_NEON]
    assert quietly(native / "Neon Scene Camera v1 ps1.mp4").source == NATIVE_NEON
    assert looks_like_recording_or_export(layouts[PUPIL_CORE] / "world.mp4")


def test_the_eye_video_of_a_native_recording_is_refused_naming_the_scene_video(layouts) -> None:
    with pytest.raises(DensePoseGazeError, match="not the scene video.*Neon Scene Camera v1 ps1.mp4"):
        Recording.open(layouts[NATIVE_NEON] / "Neon Sensor Module v1 ps1.mp4")


def test_a_native_recording_with_an_eye_video_beside_the_scene_video_opens(layouts) -> None:
    recording = quietly(layouts[NATIVE_NEON])
    assert recording.video_path.name == "Neon Scene Camera v1 ps1.mp4"


def test_a_folder_of_plain_videos_is_still_not_ours(tmp_path, layouts) -> None:
    shutil.copyfile(layouts[PUPIL_CORE] / "world.mp4", tmp_path / "holiday.mp4")
    assert not looks_like_recording_or_export(tmp_path)
    assert not looks_like_recording_or_export(tmp_path / "holiday.mp4")
