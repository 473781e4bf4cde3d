"""Each source's layout opens in napari and runs through ``densepose-gaze run`` and ``hits``.

One tiny synthetic recording is written as a Neon Player export, a native Neon
folder and a Pupil Core recording with its Pupil Player export, side by side;
the command line runs DensePose (the synthetic parity checkpoint on CPU) over
the folder holding all three, then computes hits for each.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from napari_densepose_gaze import cli
from napari_densepose_gaze.hit_export import FILE_NAMES, SETTINGS_FILE
from napari_densepose_gaze.recording import Recording, find_recordings
from napari_densepose_gaze.sources import NATIVE_NEON, NEON_PLAYER, PUPIL_CORE
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.synthetic.export import write_recording
from napari_densepose_gaze.synthetic.native_neon import native_neon_recording_from
from napari_densepose_gaze.synthetic.neon_player import neon_player_export_from
from napari_densepose_gaze.synthetic.pupil_core import pupil_core_recording_from

RUN_MODEL = "R_50_FPN_s1x"  # as tests/test_cli.py: the parity config with the lighter head
FAST = ["--device", "cpu", "--input-size", "64", "--score-threshold", "0.995"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, parity_checkpoint) -> dict[str, Path]:
    """The three layouts in one folder, with DensePose results for frames 0, 10, 20 beside each."""
    cloud = write_recording(tmp_path_factory.mktemp("cloud"), seconds=1.0, size=(160, 120))
    parent = tmp_path_factory.mktemp("lab")
    folders = {
        NEON_PLAYER: neon_player_export_from(cloud, parent / "neon_player"),
        NATIVE_NEON: native_neon_recording_from(cloud, parent / "companion"),
        PUPIL_CORE: pupil_core_recording_from(cloud, parent / "pupil_core"),
    }
    checkpoint = parity_checkpoint(RUN_MODEL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli.main(["run", str(parent), "--model", RUN_MODEL, "--weights", str(checkpoint), *FAST,
                         "--every", "10"])
    assert code == 0
    return folders


@pytest.mark.parametrize("source", [NEON_PLAYER, NATIVE_NEON, PUPIL_CORE])
def test_run_finds_each_layout_and_stores_its_frames(lab, source) -> None:
    folder = lab[source]
    assert folder in find_recordings(folder.parents[2] if source == PUPIL_CORE else folder.parent.parent)
    store = ResultsStore.open(ResultsStore.default_folder(folder))
    assert store.processed_frames().tolist() == [0, 10, 20]


@pytest.mark.parametrize("source", [NEON_PLAYER, NATIVE_NEON, PUPIL_CORE])
def test_hits_run_on_each_layout_and_write_a_sample_table(lab, source) -> None:
    folder = lab[source]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["hits", str(folder), "--radius", "30", "--unit", "px"]) == 0
        n_samples = len(Recording.open(folder).gaze)
    hits = ResultsStore.default_folder(folder) / "hits"
    samples = pd.read_csv(hits / FILE_NAMES["samples"])
    assert 0 < len(samples) <= n_samples
    assert json.loads((hits / SETTINGS_FILE).read_text())["radius"] == 30


@pytest.mark.parametrize("source", [NEON_PLAYER, NATIVE_NEON, PUPIL_CORE])
def test_napari_reads_each_layout_as_video_gaze_and_fixations(lab, source) -> None:
    from napari_densepose_gaze.ui.reader import get_reader

    reader = get_reader(str(lab[source]))
    assert reader is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layers = reader(str(lab[source]))
    kinds = [kind for _, _, kind in layers]
    assert kinds.count("image") == 1 and "points" in kinds
    video = next(data for data, _, kind in layers if kind == "image")
    assert video.shape[:3] == (30, 120, 160)
