"""The ``densepose-gaze`` command line: model listing and download, and runs over whole exports.

Downloads go to a server on 127.0.0.1 (any other connection fails the test);
runs use the synthetic parity checkpoint on CPU with tiny frames and a small
network input, so that the real engine finds (meaningless) people quickly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_densepose_gaze import cli
from napari_densepose_gaze.cli.batch import Finished, Stopped, for_each_recording, recordings_at
from napari_densepose_gaze.engine import zoo
from napari_densepose_gaze.engine.weights import CACHE_ENV
from napari_densepose_gaze.engine.zoo import ModelConfig
from napari_densepose_gaze.recording import find_recordings
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.synthetic.export import write_export

# ------------------------------------------------------------------ models

PAYLOAD = bytes(range(256)) * 40  # 10 KiB: several of pooch's 1 KiB chunks
PREFIX = hashlib.sha256(PAYLOAD).hexdigest()[:6]


@pytest.fixture
def fake_zoo(local_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """A two-model zoo served from 127.0.0.1; the cache env var points to a fresh folder."""
    url, httpd, served = local_server
    configs = {}
    for name in ("R_50_FPN_FAKE_s1x", "R_101_FPN_FAKE_s1x"):
        cfg = ModelConfig(name=name, depth=50, head="v1convx", decoder=True, coarse_channels=2,
                          pooler_resolution=28, checkpoint=f"densepose_rcnn_{name}/1/model_final_{PREFIX}.pkl")
        (served / cfg.checkpoint).parent.mkdir(parents=True)
        (served / cfg.checkpoint).write_bytes(PAYLOAD)
        configs[name] = cfg
    monkeypatch.setattr(zoo, "DOWNLOAD_ROOT", url)
    monkeypatch.setattr(zoo, "ZOO", configs)
    monkeypatch.setattr(zoo, "DEFAULT_MODEL", "R_101_FPN_FAKE_s1x")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env-cache"))
    return {"configs": configs, "requests": httpd.requests, "cache": tmp_path / "cache"}


def table_rows(text: str) -> dict[str, list[str]]:
    """Model name -> the other cells of its row in the printed table."""
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        for i, cell in enumerate(cells):
            if cell in zoo.ZOO:
                rows[cell] = cells[:i] + cells[i + 1:]
    return rows


def test_models_lists_every_zoo_model_with_default_state_and_path(fake_zoo, capsys) -> None:
    assert cli.main(["models", "--cache-dir", str(fake_zoo["cache"])]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert set(rows) == set(fake_zoo["configs"])
    assert rows["R_101_FPN_FAKE_s1x"][0] == "*" and rows["R_50_FPN_FAKE_s1x"][0] != "*"
    for name, cells in rows.items():
        assert "missing" in cells
        assert str(fake_zoo["cache"] / name / f"model_final_{PREFIX}.pkl") in cells
    assert f"Weights cache: {fake_zoo['cache']}" in out
    assert fake_zoo["requests"] == []


def test_models_download_fetches_one_model_once_with_a_progress_bar(fake_zoo, capsys) -> None:
    cache = fake_zoo["cache"]
    args = ["models", "--download", "R_50_FPN_FAKE_s1x", "--cache-dir", str(cache)]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    path = cache / "R_50_FPN_FAKE_s1x" / f"model_final_{PREFIX}.pkl"
    assert path.read_bytes() == PAYLOAD
    assert "100%" in captured.err  # pooch's tqdm bar went to stderr
    rows = table_rows(captured.out)
    assert "downloaded" in rows["R_50_FPN_FAKE_s1x"] and "missing" in rows["R_101_FPN_FAKE_s1x"]

    assert cli.main(args) == 0
    assert len(fake_zoo["requests"]) == 1  # the second time it came from the cache


def test_models_download_all_then_verify_flags_a_corrupt_file(fake_zoo, capsys) -> None:
    cache = fake_zoo["cache"]
    assert cli.main(["models", "--download", "all", "--cache-dir", str(cache)]) == 0
    assert sorted(fake_zoo["requests"]) == sorted("/" + c.checkpoint for c in fake_zoo["configs"].values())
    assert cli.main(["models", "--verify", "--cache-dir", str(cache)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert all("verified" in cells for cells in rows.values())

    broken = cache / "R_101_FPN_FAKE_s1x" / f"model_final_{PREFIX}.pkl"
    broken.write_bytes(b"not the published file")
    assert cli.main(["models", "--verify", "--cache-dir", str(cache)]) == 1
    captured = capsys.readouterr()
    rows = table_rows(captured.out)
    assert "CORRUPT" in rows["R_101_FPN_FAKE_s1x"] and "verified" in rows["R_50_FPN_FAKE_s1x"]
    assert "R_101_FPN_FAKE_s1x" in captured.err and "Traceback" not in captured.err


def test_models_download_of_an_unknown_name_is_an_error_listing_the_names(fake_zoo, capsys) -> None:
    assert cli.main(["models", "--download", "R_999", "--cache-dir", str(fake_zoo["cache"])]) == 2
    err = capsys.readouterr().err
    assert "Unknown DensePose model 'R_999'" in err and "R_50_FPN_FAKE_s1x" in err
    assert "Traceback" not in err
    assert fake_zoo["requests"] == []


# --------------------------------------------------------------------- run

RUN_MODEL = "R_50_FPN_s1x"  # the parity config with the lighter DensePose head
# The synthetic weights score almost every box above 0.99; this keeps a few per frame.
FAST = ["--device", "cpu", "--input-size", "64", "--score-threshold", "0.995"]


@pytest.fixture(scope="module")
def checkpoint(parity_checkpoint) -> Path:
    """The synthetic model-zoo checkpoint of RUN_MODEL (shared by the whole test session)."""
    return parity_checkpoint(RUN_MODEL)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny recordings; treat as read-only (copy before breaking one)."""
    return write_export(tmp_path_factory.mktemp("export") / "export", 3, seconds=1.0, size=(160, 120))


@pytest.fixture
def count_model_loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    from napari_densepose_gaze.engine import predictor

    loads: list[object] = []
    original = predictor.Predictor.__init__

    def counting_init(self, *args, **kwargs) -> None:
        loads.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(predictor.Predictor, "__init__", counting_init)
    return loads


def run_args(path: Path, checkpoint: Path, *extra: str) -> list[str]:
    return ["run", str(path), "--model", RUN_MODEL, "--weights", str(checkpoint), *FAST, *extra]


def test_run_over_an_export_writes_one_store_per_recording_with_one_model_load(
    export, checkpoint, tmp_path, capsys, count_model_loads
) -> None:
    out = tmp_path / "results"
    assert cli.main(run_args(export, checkpoint, "--every", "10", "--output", str(out))) == 0
    captured = capsys.readouterr()
    assert len(count_model_loads) == 1
    recordings = find_recordings(export)
    assert len(recordings) == 3
    total_detections = 0
    for folder in recordings:
        store = ResultsStore.open(out / f"{folder.name}.densepose")
        assert store.processed_frames().tolist() == [0, 10, 20]
        assert store.metadata["model"] == RUN_MODEL and store.metadata["score_threshold"] == 0.995
        total_detections += len(store.detections())
        assert folder.name in captured.out  # its row in the summary table
    assert total_detections > 0
    assert captured.out.count("3/3") == 3 and "done" in captured.out
    assert not any(p.name.endswith(".densepose") for p in export.iterdir())  # nothing written beside


def test_run_again_continues_beside_the_recording_and_skips_what_is_done(
    export, checkpoint, tmp_path, capsys
) -> None:
    recording = tmp_path / find_recordings(export)[0].name
    shutil.copytree(find_recordings(export)[0], recording)
    store_folder = tmp_path / f"{recording.name}.densepose"  # the default place
    assert cli.main(run_args(recording, checkpoint, "--last", "1")) == 0
    assert ResultsStore.open(store_folder).processed_frames().tolist() == [0, 1]
    capsys.readouterr()
    assert cli.main(run_args(recording, checkpoint, "--last", "2")) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith(recording.name)).split()
    assert row[1:3] == ["1/3", "2"]  # frames done this time / selected, skipped
    assert ResultsStore.open(store_folder).processed_frames().tolist() == [0, 1, 2]


def test_a_broken_recording_fails_alone_and_the_exit_code_says_so(
    export, checkpoint, tmp_path, capsys, count_model_loads
) -> None:
    broken_export = tmp_path / "export"
    shutil.copytree(export, broken_export)
    broken = find_recordings(broken_export)[1]
    (broken / "world_timestamps.csv").unlink()
    out = tmp_path / "results"

    code = cli.main(run_args(broken_export, checkpoint, "--first", "5", "--last", "6", "--output", str(out)))

    captured = capsys.readouterr()
    assert code == 1
    assert f"{broken.name}: world_timestamps.csv is missing" in captured.err
    assert f"1 of 3 recording(s) failed:\n  {broken.name}: world_timestamps.csv is missing" in captured.err
    assert "Traceback" not in captured.err
    for folder in find_recordings(broken_export):
        store_folder = out / f"{folder.name}.densepose"
        if folder == broken:
            assert not store_folder.exists()
        else:
            assert ResultsStore.open(store_folder).processed_frames().tolist() == [5, 6]
    assert len(count_model_loads) == 1


def test_frame_options_select_like_the_library(export, checkpoint, tmp_path) -> None:
    from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
    from napari_densepose_gaze.recording import Recording

    recording = find_recordings(export)[0]
    args = ["--frames", "fixations", "--start", "conversation.start", "--end", "conversation.end"]
    assert cli.main(run_args(recording, checkpoint, *args, "--output", str(tmp_path / "s"))) == 0
    expected = select_frames(Recording.open(recording), FrameSelection(
        mode="fixations", start_event="conversation.start", end_event="conversation.end"))
    assert 0 < len(expected) < 10
    store = ResultsStore.open(tmp_path / "s")
    assert store.processed_frames().tolist() == expected.tolist()
    assert store.metadata["frame_selection"]["mode"] == "fixations"
    assert store.metadata["input_size"] == [64, 107]


def test_a_bug_on_one_recording_shows_its_traceback_and_the_others_still_run(
    export, checkpoint, tmp_path, capsys, monkeypatch
) -> None:
    from napari_densepose_gaze import pipeline

    unlucky = find_recordings(export)[0]
    original = pipeline.run_densepose

    def run_densepose(recording, *args, **kwargs):
        if recording.folder == unlucky:
            raise RuntimeError("a bug")
        return original(recording, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_densepose", run_densepose)
    out = tmp_path / "results"
    assert cli.main(run_args(export, checkpoint, "--last", "0", "--output", str(out))) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug" in err
    assert f"{unlucky.name}: unexpected RuntimeError" in err
    for folder in find_recordings(export)[1:]:
        assert ResultsStore.open(out / f"{folder.name}.densepose").processed_frames().tolist() == [0]


def test_a_bug_outside_the_recordings_is_not_hidden(monkeypatch) -> None:
    from napari_densepose_gaze import recording

    def broken(path):
        raise RuntimeError("a bug")

    monkeypatch.setattr(recording, "find_recordings", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["run", "anywhere"])


def test_a_bad_weights_file_stops_the_run_with_a_message_and_code_2(export, tmp_path, capsys) -> None:
    bad = tmp_path / "model_final.pkl"
    bad.write_bytes(b"no pickle here")
    code = cli.main(run_args(export, bad, "--output", str(tmp_path / "results")))
    err = capsys.readouterr().err
    assert code == 2
    assert str(bad) in err and "Traceback" not in err


def test_an_unknown_event_names_the_recording(export, checkpoint, tmp_path, capsys) -> None:
    recording = find_recordings(export)[0]
    code = cli.main(run_args(recording, checkpoint, "--start", "no.such.event", "--output", str(tmp_path / "s")))
    err = capsys.readouterr().err
    assert code == 1
    assert "No event named 'no.such.event'" in err and recording.name in err


def test_run_on_a_folder_without_recordings_is_an_error(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert cli.main(["run", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "holds no recording" in err and "Traceback" not in err


def test_usage_errors_exit_2_before_anything_runs(export, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(export), "--frames", "gaze", "--every", "3"])
    assert exit_info.value.code == 2
    assert "--every applies to --frames all only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(export), "--batch-size", "0"])
    assert exit_info.value.code == 2


def test_python_dash_m_runs_the_command_line() -> None:
    result = subprocess.run([sys.executable, "-m", "napari_densepose_gaze", "--help"],
                            capture_output=True, text=True, check=True)
    assert "densepose-gaze" in result.stdout and "models" in result.stdout and "run" in result.stdout


def test_the_densepose_gaze_script_is_declared_for_cli_main() -> None:
    import importlib
    import re

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    scripts = pyproject.split("[project.scripts]", 1)[1].split("\n[", 1)[0]  # tomllib needs Python 3.11
    target = re.search(r'^densepose-gaze\s*=\s*"([^"]+)"', scripts, re.MULTILINE)
    assert target, "pyproject.toml declares no densepose-gaze script"
    module, _, function = target.group(1).partition(":")
    assert getattr(importlib.import_module(module), function) is cli.main


def test_results_of_the_command_line_match_the_predictor_called_directly(export, checkpoint, tmp_path) -> None:
    from napari_densepose_gaze.engine.predictor import Predictor
    from napari_densepose_gaze.recording import Recording

    recording = find_recordings(export)[2]
    assert cli.main(run_args(recording, checkpoint, "--first", "12", "--last", "12",
                             "--output", str(tmp_path / "s"))) == 0
    store = ResultsStore.open(tmp_path / "s")
    predictor = Predictor(RUN_MODEL, weights=checkpoint, device="cpu", score_threshold=0.995,
                          min_size=64, max_size=107)
    [expected] = predictor.predict(Recording.open(recording).video_reader().frame(12))
    labels, persons = store.read_frame(12)
    np.testing.assert_array_equal(labels, expected.part_map)
    np.testing.assert_array_equal(persons, expected.person_map)
    np.testing.assert_allclose(store.detections()["score"], expected.scores, rtol=1e-6)


def patch_everywhere(monkeypatch: pytest.MonkeyPatch, original, replacement) -> None:
    """Replace a function in every module of the package that imported it by name."""
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("napari_densepose_gaze"):
            if getattr(module, original.__name__, None) is original:
                monkeypatch.setattr(module, original.__name__, replacement)


def test_each_recording_selects_its_frames_once_and_a_bad_selection_loads_no_model(
    export, checkpoint, tmp_path, monkeypatch, count_model_loads
) -> None:
    from napari_densepose_gaze.frame_selection import select_frames

    selected: list[str] = []

    def counting(recording, *args, **kwargs):
        selected.append(recording.name)
        return select_frames(recording, *args, **kwargs)

    patch_everywhere(monkeypatch, select_frames, counting)
    assert cli.main(run_args(export, checkpoint, "--last", "0", "--output", str(tmp_path / "results"))) == 0
    assert sorted(selected) == sorted(f.name for f in find_recordings(export))
    assert len(count_model_loads) == 1

    recording = find_recordings(export)[0]
    assert cli.main(run_args(recording, checkpoint, "--start", "no.such.event", "--output", str(tmp_path / "s"))) == 1
    assert len(count_model_loads) == 1  # the selection failed first


# ------------------------------------------------------------ the batch loop
def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs in here


def summary_cells(out: str, names: list[str]) -> dict[str, list[str]]:
    """Recording name -> the other cells of its summary row."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] in names:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("how", ["returns", "raises Stopped"])
def test_the_first_ctrl_c_ends_the_recording_politely_and_leaves_the_rest(export, capsys, how) -> None:
    names = [f.name for f in find_recordings(export)]
    previous = signal.getsignal(signal.SIGINT)
    seen: list[str] = []

    def work(recording, stop) -> Finished:
        seen.append(recording.name)
        ctrl_c()
        assert stop()
        if how == "raises Stopped":
            raise Stopped
        return Finished("stopped", {"frames": "7"})

    code = for_each_recording(recordings_at(export), work, ["frames"], stop_note="stopped here.")

    captured = capsys.readouterr()
    assert code == cli.EXIT_INTERRUPTED and seen == names[:1]
    assert "Stopping after the current batch" in captured.err and "densepose-gaze: stopped here." in captured.err
    rows = summary_cells(captured.out, names)
    assert rows[names[0]] == ["7" if how == "returns" else "-", "stopped"]
    assert all(rows[name] == ["-", "not", "started"] for name in names[1:])
    assert signal.getsignal(signal.SIGINT) is previous


def test_a_second_ctrl_c_interrupts_at_once_and_main_says_so(export, capsys, monkeypatch) -> None:
    previous = signal.getsignal(signal.SIGINT)

    def work(recording, stop) -> Finished:
        ctrl_c()
        ctrl_c()
        pytest.fail("the second Ctrl-C did not interrupt")

    with pytest.raises(KeyboardInterrupt):
        for_each_recording(recordings_at(export), work, [])
    assert signal.getsignal(signal.SIGINT) is previous

    from napari_densepose_gaze.cli import batch

    monkeypatch.setattr(batch, "_open_recording", lambda folder, min_confidence: work(None, None))
    assert cli.main(["hits", str(export)]) == cli.EXIT_INTERRUPTED
    assert "densepose-gaze: interrupted" in capsys.readouterr().err
