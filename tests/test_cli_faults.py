"""The command line under bad input and faults: what PATH may be, where outputs go, bounds, broken stores.

Runs use a stand-in engine whose maps are a function of the frame's pixels
(loaded in place of the real model), so that each run takes a moment; what
the real engine computes is pinned in test_cli.py. Tests that need a user
without root's powers are in test_permissions.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_densepose_gaze import cli, pipeline
from napari_densepose_gaze.cli.batch import recordings_at
from napari_densepose_gaze.engine.defaults import MAX_INPUT_SIZE
from napari_densepose_gaze.engine.predictor import FrameResult
from napari_densepose_gaze.recording import find_recordings
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.synthetic.export import write_export


class PixelEngine:
    """Parts and persons from the pixels, one box per frame; what a loaded predictor tells the metadata."""

    batch_size, device, dtype, min_size, max_size = 2, "cpu", "torch.float32", 64, 107

    def predict(self, frames):
        results = []
        for frame in frames:
            part_map = (frame[..., 0] // 11 % 25).astype(np.uint8)
            h, w = part_map.shape
            results.append(FrameResult(
                boxes=np.array([[1.0, 2.0, w - 1.0, h - 2.0]], np.float32),
                scores=np.array([0.99], np.float32),
                labels=[part_map[2:h - 2, 1:w - 1]],
                uv=[np.zeros((2, h - 4, w - 2), np.float32)],
                part_map=part_map,
                person_map=(part_map > 0).astype(np.uint8),
            ))
        return results


@pytest.fixture
def pixel_model(monkeypatch: pytest.MonkeyPatch) -> list[pipeline.ModelSettings]:
    """``run`` loads the stand-in engine; returns the settings of each load."""
    loads: list[pipeline.ModelSettings] = []

    def load_model(model, options=None, **kwargs):
        loads.append(model)
        return pipeline.LoadedModel(PixelEngine(), model, "pixels", Path("pixels.pkl"), "0" * 64)

    monkeypatch.setattr(pipeline, "load_model", load_model)
    return loads


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_model(*args, **kwargs):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(pipeline, "load_model", load_model)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny recordings; treat as read-only (copy before changing one)."""
    return write_export(tmp_path_factory.mktemp("export") / "export", 3, seconds=0.4, size=(64, 48))


def run(path: Path, *extra: str) -> int:
    return cli.main(["run", str(path), "--device", "cpu", *extra])


def usage_error(argv: list[str], capsys) -> str:
    """stderr of a command line that must stop with a usage error (exit 2) before doing anything."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


# -------------------------------------------------------------- what PATH names
@pytest.mark.parametrize("name", ["recordings.zip", "sections.csv"])
def test_a_file_that_is_no_scene_video_is_an_error_and_nothing_runs(export, tmp_path, name, no_model, capsys):
    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    (folder / name).touch()
    assert run(folder / name, "--output", str(tmp_path / "stores")) == 2
    assert cli.main(["hits", str(folder / name), "--output", str(tmp_path / "tables")]) == 2
    err = capsys.readouterr().err
    assert f"{folder / name} is a file but not a recording's scene video" in err
    assert ("Unzip it first" in err) == name.endswith(".zip")
    assert not (tmp_path / "stores").exists() and not (tmp_path / "tables").exists()


def test_the_scene_video_names_its_one_recording(export, tmp_path, pixel_model, capsys):
    first, second = find_recordings(export)[:2]
    video = next(first.glob("*.mp4"))
    assert run(video, "--last", "1", "--output", str(tmp_path / "store")) == 0
    assert ResultsStore.open(tmp_path / "store").metadata["recording_folder"] == str(first)
    assert second.name not in capsys.readouterr().out


def test_a_video_beside_the_recordings_of_an_export_is_an_error(export, tmp_path, no_model, capsys):
    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    (folder / "overview.mp4").touch()
    assert run(folder / "overview.mp4", "--output", str(tmp_path / "stores")) == 2
    assert "is not in a recording folder" in capsys.readouterr().err
    assert not (tmp_path / "stores").exists()


def fake_recording(folder: Path) -> Path:
    """A folder that counts as a recording (an .mp4 is enough) for finding recordings, not for opening."""
    folder.mkdir(parents=True)
    (folder / "scene.mp4").touch()
    return folder


def test_recordings_of_the_same_name_get_their_parents_names_for_their_outputs(tmp_path):
    root = tmp_path / "study"
    for path in ("day1/rec", "day2/rec", "day2/other", "day3/Other", "day3/solo"):
        fake_recording(root / path)
    labels = recordings_at(root).labels
    assert sorted(labels.values()) == ["day1_rec", "day2_other", "day2_rec", "day3_Other", "solo"]


def test_outputs_of_two_recordings_of_the_same_name_never_share_a_place(export, tmp_path, pixel_model, capsys):
    study = tmp_path / "study"
    first, second = find_recordings(export)[:2]
    shutil.copytree(first, study / "day1" / "rec")
    shutil.copytree(second, study / "day2" / "rec")
    assert run(study, "--last", "1", "--output", str(tmp_path / "stores")) == 0
    assert cli.main(["hits", str(study), "--results", str(tmp_path / "stores"),
                     "--output", str(tmp_path / "tables")]) == 0
    for day in ("day1", "day2"):
        store_folder = tmp_path / "stores" / f"{day}_rec.densepose"
        assert ResultsStore.open(store_folder).metadata["recording_folder"] == str(study / day / "rec")
        alone = tmp_path / f"{day}_alone"  # the same recording's tables when it is the only one
        assert cli.main(["hits", str(study / day / "rec"), "--results", str(store_folder),
                         "--output", str(alone)]) == 0
        assert (tmp_path / "tables" / f"{day}_rec" / "gaze_hits.csv").read_bytes() == (
            alone / "gaze_hits.csv").read_bytes()
    assert (tmp_path / "tables" / "day1_rec" / "gaze_hits.csv").read_bytes() != (
        tmp_path / "tables" / "day2_rec" / "gaze_hits.csv").read_bytes()
    assert "day1_rec" in capsys.readouterr().out


def test_an_overlay_file_for_an_export_of_several_recordings_is_an_error_before_anything(export, tmp_path, capsys):
    assert cli.main(["render", str(export), "--output", str(tmp_path / "overlay.mp4")]) == 2
    err = capsys.readouterr().err
    assert "is a file but" in err and "give a folder" in err
    assert not (tmp_path / "overlay.mp4").exists()


# ------------------------------------------------------------ argument bounds
@pytest.mark.parametrize(("options", "message"), [
    (["--input-size", str(MAX_INPUT_SIZE + 1)], f"--input-size: must lie between 32 and {MAX_INPUT_SIZE}"),
    (["--input-size", "16"], "--input-size: must lie between 32"),
    (["--input-size", "3000"], f"add --max-input-size {MAX_INPUT_SIZE}"),
    (["--input-size", "600", "--max-input-size", "500"], "--max-input-size 500 is below --input-size 600"),
    (["--max-input-size", str(MAX_INPUT_SIZE * 2)], "--max-input-size: must lie between"),
    (["--start", ""], "--start: must name an event"),
    (["--end", "  "], "--end: must name an event"),
    (["--score-threshold", "1"], "--score-threshold: must be at least 0 and below 1"),
    (["--output", "results.csv"], "--output: results.csv looks like a file name"),
    (["--input-size", "big"], "--input-size: must be a whole number"),
])
def test_run_arguments_out_of_bounds_are_usage_errors_before_the_model_loads(
    export, options, message, no_model, capsys
):
    assert message in usage_error(["run", str(export), *options], capsys)


def test_an_output_that_is_a_file_is_a_usage_error(export, tmp_path, capsys):
    existing = tmp_path / "notes"
    existing.write_text("mine")
    for command in ("run", "hits", "report", "render"):
        assert f"{existing} is a file, but this names a folder" in usage_error(
            [command, str(export), "--output", str(existing)], capsys)
    assert existing.read_text() == "mine"


@pytest.mark.parametrize("command", ["hits", "report"])
def test_a_table_or_figure_output_that_looks_like_a_file_is_a_usage_error(export, command, capsys):
    assert "--output: tables.csv looks like a file name" in usage_error(
        [command, str(export), "--output", "tables.csv"], capsys)


def test_a_render_output_that_is_no_video_is_a_usage_error(export, capsys):
    assert "overlay.png is no video" in usage_error(["render", str(export), "--output", "overlay.png"], capsys)


def test_an_unknown_model_is_an_error_before_any_recording_is_read(tmp_path, no_model, capsys):
    assert run(tmp_path / "nowhere", "--model", "R_9_FPN_s1x") == 2
    err = capsys.readouterr().err
    assert "Unknown DensePose model 'R_9_FPN_s1x'" in err and "does not exist" not in err


# ------------------------------------------------------------ file system faults
def test_a_file_system_error_on_one_recording_fails_it_alone_with_a_message(export, tmp_path, pixel_model,
                                                                            monkeypatch, capsys):
    from napari_densepose_gaze.recording import Recording

    unlucky = find_recordings(export)[1]
    original = Recording.open.__func__

    def open_recording(cls, path, **kwargs):
        if Path(path) == unlucky:
            raise PermissionError(13, "Permission denied", str(unlucky / "gaze.csv"))
        return original(cls, path, **kwargs)

    monkeypatch.setattr(Recording, "open", classmethod(open_recording))
    assert run(export, "--last", "0", "--output", str(tmp_path / "stores")) == 1
    err = capsys.readouterr().err
    assert f"{unlucky.name}: permission denied for {unlucky / 'gaze.csv'}: make it readable" in err
    assert "Traceback" not in err and "unexpected" not in err
    stores = sorted(p.name for p in (tmp_path / "stores").iterdir())
    assert stores == sorted(f"{f.name}.densepose" for f in find_recordings(export) if f != unlucky)


def test_a_recording_folder_name_too_long_for_its_store_gets_a_clear_message(export, tmp_path, pixel_model, capsys):
    long_name = tmp_path / ("r" * 250)  # "<name>.densepose" is 260 bytes: over the 255 a file name may have
    shutil.copytree(find_recordings(export)[0], long_name)
    assert run(long_name, "--last", "0") == 1
    err = capsys.readouterr().err
    assert "too long for the file system" in err and "Rename the recording folder" in err
    assert "Errno" not in err and "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == [long_name.name]  # nothing half-made left beside it


def test_a_store_made_with_other_settings_is_refused_with_advice_for_the_command_line(
    export, tmp_path, pixel_model, capsys
):
    recording = find_recordings(export)[0]
    assert run(recording, "--last", "0", "--output", str(tmp_path / "store")) == 0
    assert run(recording, "--last", "0", "--score-threshold", "0.5", "--output", str(tmp_path / "store")) == 1
    err = capsys.readouterr().err
    assert "made with different settings" in err and "score_threshold" in err
    assert "overwrite=True" not in err
    assert "delete that folder (hand edits included) to start over" in err and "another --output" in err


# ------------------------------------------------------------------- verify
def chunk_file(store_folder: Path, frame: int) -> Path:
    return store_folder / "labels" / "c" / str(frame) / "0" / "0"


def test_verify_lists_damaged_frames_exits_1_and_run_computes_them_again(export, tmp_path, pixel_model, capsys):
    stores = tmp_path / "stores"
    assert run(export, "--last", "4", "--output", str(stores)) == 0
    damaged_recording = find_recordings(export)[1]
    folder = stores / f"{damaged_recording.name}.densepose"
    good = ResultsStore.open(folder).read_frame(3)
    data = chunk_file(folder, 3).read_bytes()
    chunk_file(folder, 3).write_bytes(data[:-5])
    chunk_file(folder, 1).unlink()
    capsys.readouterr()

    assert cli.main(["verify", str(export), "--results", str(stores)]) == 1
    out, err = capsys.readouterr()
    damaged_lines = [line for line in out.splitlines() if ": frame " in line]
    assert [line.split(":")[:2] for line in damaged_lines] == [[damaged_recording.name, " frame 1"],
                                                            [damaged_recording.name, " frame 3"]]
    assert "2 damaged frame(s) (1, 3)" in err and "1 of 3 recording(s) failed" in err

    assert run(export, "--last", "4", "--output", str(stores)) == 0
    assert "2 damaged frame(s)" in capsys.readouterr().err
    assert cli.main(["verify", str(export), "--results", str(stores)]) == 0
    assert ": frame " not in capsys.readouterr().out
    for got, expected in zip(ResultsStore.open(folder).read_frame(3), good):
        np.testing.assert_array_equal(got, expected)


def test_verify_of_a_recording_without_results_says_to_run_first(export, capsys):
    assert cli.main(["verify", str(find_recordings(export)[0])]) == 1
    assert "no DensePose results at" in capsys.readouterr().err
