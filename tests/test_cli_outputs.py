"""``densepose-gaze hits / render / report`` and the figures and video they write.

One synthetic export of three tiny recordings (the first with audio) is run
once per module with the synthetic parity checkpoint on CPU (3 frames each);
the commands under test then read those results. The synthetic weights find
small, meaningless people, so most tests use a large hit radius to get hits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from napari_densepose_gaze import cli
from napari_densepose_gaze.figures import BACK_PARTS, FRONT_PARTS, body_heatmap, dwell_bar_chart
from napari_densepose_gaze.hit_export import FILE_NAMES, PEER_COUNTS_FILE, PEER_FRAMES_FILE, SETTINGS_FILE
from napari_densepose_gaze.parts import PART_NAMES, color_lut, part_color
from napari_densepose_gaze.recording import find_recordings
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.synthetic.export import write_export

RUN_MODEL = "R_50_FPN_s1x"
FAST = ["--device", "cpu", "--input-size", "64", "--score-threshold", "0.995"]
WIDE = ["--radius", "200"]  # wider than the 160x120 frames: every assessed sample hits a part if a frame has one


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, parity_checkpoint) -> Path:
    """Three recordings with results beside them (frames 0, 10, 20); treat as read-only."""
    root = write_export(tmp_path_factory.mktemp("outputs") / "export", [{"audio": True}, {}, {}],
                        seconds=1.0, size=(160, 120))
    checkpoint = parity_checkpoint(RUN_MODEL)
    code = cli.main(["run", str(root), "--model", RUN_MODEL, "--weights", str(checkpoint), *FAST, "--every", "10"])
    assert code == 0
    return root


@pytest.fixture
def export_copy(export: Path, tmp_path: Path) -> Path:
    """A private copy of the export and its stores, free to break or write into."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in export.parent.iterdir():
        if item.is_dir():
            shutil.copytree(item, copy / item.name)
    return copy / export.name


def stores(export: Path) -> dict[str, Path]:
    return {f.name: ResultsStore.default_folder(f) for f in find_recordings(export)}


def summary_row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(name))


# -------------------------------------------------------------------- hits
def test_hits_writes_every_table_and_the_peer_files_of_every_recording(export_copy, capsys) -> None:
    assert cli.main(["hits", str(export_copy), "--radius", "30"]) == 0
    out = capsys.readouterr().out
    for name, store in stores(export_copy).items():
        folder = store / "hits"
        for file in [*FILE_NAMES.values(), SETTINGS_FILE, PEER_FRAMES_FILE, PEER_COUNTS_FILE]:
            assert (folder / file).is_file(), f"{name}: {file} missing"
        parts = pd.read_csv(folder / FILE_NAMES["parts"])
        assert parts["part id"].tolist() == list(PART_NAMES)
        samples = pd.read_csv(folder / FILE_NAMES["samples"])
        assert len(samples) > 100 and (samples["radius [px]"].dropna() == 30).all()
        assert json.loads((folder / SETTINGS_FILE).read_text())["radius"] == 30
        # one row per video frame of the processed section (first to last frame with results), as the peer
        done = ResultsStore.open(store).processed_frames()
        peer = pd.read_csv(folder / PEER_FRAMES_FILE)
        assert peer["frames"].tolist() == list(range(done.min(), done.max() + 1))
        assert "closest_annotation" in peer.columns and (folder / "gazemap.png").is_file()
        assert str(folder) in summary_row(out, name) and "done" in summary_row(out, name)


def test_hits_says_which_source_each_recording_came_from(export_copy, capsys) -> None:
    assert cli.main(["hits", str(export_copy), "--radius", "30"]) == 0
    err = capsys.readouterr().err
    for folder in find_recordings(export_copy):
        assert f"{folder.name}: a pupil cloud recording" in err


def test_hits_default_radius_is_the_device_accuracy_in_degrees(export_copy) -> None:
    recording = find_recordings(export_copy)[0]
    assert cli.main(["hits", str(recording)]) == 0
    settings = json.loads((ResultsStore.default_folder(recording) / "hits" / SETTINGS_FILE).read_text())
    assert (settings["radius"], settings["unit"]) == (1.8, "deg")  # Neon, with scene_camera.json


def test_hits_output_folder_gets_one_subfolder_per_recording_and_no_peer_leaves_the_peer_files_out(
    export, tmp_path
) -> None:
    out = tmp_path / "tables"
    assert cli.main(["hits", str(export), "--radius", "5", "--unit", "px", "--output", str(out), "--no-peer"]) == 0
    for folder in find_recordings(export):
        assert (out / folder.name / FILE_NAMES["frames"]).is_file()
        assert not (out / folder.name / PEER_FRAMES_FILE).exists()
    assert not any((store / "hits").exists() for store in stores(export).values())


def test_hits_output_holding_another_recordings_tables_is_refused_and_the_same_recording_overwrites(
    export, tmp_path, capsys
) -> None:
    first, second = find_recordings(export)[:2]
    out = tmp_path / "tables"
    assert cli.main(["hits", str(first), "--radius", "5", "--unit", "px", "--output", str(out), "--no-peer"]) == 0
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert cli.main(["hits", str(second), "--radius", "5", "--unit", "px", "--output", str(out), "--no-peer"]) == 1
    err = capsys.readouterr().err
    assert f"{out} holds the hit export of another recording" in err and "Choose another --output" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written
    assert cli.main(["hits", str(first), "--radius", "0", "--unit", "px", "--output", str(out), "--no-peer"]) == 0
    assert json.loads((out / SETTINGS_FILE).read_text())["radius"] == 0
    assert pd.read_csv(out / FILE_NAMES["frames"])["recording name"].nunique() == 1


def test_a_recording_without_results_fails_alone_and_says_to_run_first(export_copy, capsys) -> None:
    missing = find_recordings(export_copy)[2]
    shutil.rmtree(ResultsStore.default_folder(missing))
    assert cli.main(["hits", str(export_copy)]) == 1
    err = capsys.readouterr().err
    assert f"{missing.name}: no DensePose results at" in err and "densepose-gaze run" in err
    assert "1 of 3 recording(s) failed" in err and "Traceback" not in err
    for folder in find_recordings(export_copy)[:2]:
        assert (ResultsStore.default_folder(folder) / "hits" / FILE_NAMES["parts"]).is_file()


@pytest.mark.parametrize("command", ["hits", "report", "render"])
def test_a_broken_recording_fails_alone_and_names_itself(export_copy, tmp_path, command, capsys) -> None:
    broken = find_recordings(export_copy)[1]
    (broken / "gaze.csv").unlink()
    out = tmp_path / "out"

    code = cli.main([command, str(export_copy), "--radius", "10", "--output", str(out)])

    captured = capsys.readouterr()
    assert code == 1
    assert f"densepose-gaze: {broken.name}: " in captured.err and "gaze.csv" in captured.err
    assert f"1 of 3 recording(s) failed:\n  {broken.name}" in captured.err
    assert "Traceback" not in captured.err
    assert "failed" in summary_row(captured.out, broken.name)
    for folder in find_recordings(export_copy):
        if command == "render":
            written = (out / f"{folder.name}_overlay.mp4").is_file()
        else:
            written = (out / folder.name).is_dir() and any((out / folder.name).iterdir())
        assert written == (folder != broken), folder.name


def test_unit_without_radius_is_a_usage_error(export, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(export), "--unit", "deg"])
    assert exit_info.value.code == 2
    assert "--unit needs --radius" in capsys.readouterr().err


def test_a_degree_radius_without_intrinsics_fails_that_recording_with_advice(export_copy, capsys) -> None:
    recording = find_recordings(export_copy)[0]
    (recording / "scene_camera.json").unlink()
    assert cli.main(["hits", str(recording), "--radius", "2", "--unit", "deg"]) == 1
    err = capsys.readouterr().err
    assert recording.name in err and "give the radius in pixels" in err


def test_run_stores_the_person_ids_and_hits_reuse_them_without_linking_again(export_copy, monkeypatch) -> None:
    from napari_densepose_gaze import hits, tracking
    from napari_densepose_gaze.recording import Recording

    folder = find_recordings(export_copy)[0]
    store = ResultsStore.open(ResultsStore.default_folder(folder))
    linked = tracking.link_detections(store.detections(), store.processed_frames())
    assert len(linked) > 0 and (store.folder / "person_ids.csv").is_file()
    pd.testing.assert_frame_equal(store.person_ids(), linked)
    recording = Recording.open(folder)
    settings = hits.HitSettings(200, "px")
    expected = hits.compute_hits(recording, store, settings, person_ids=linked)

    def refuse(*args, **kwargs):
        raise AssertionError("person ids linked again")

    for module in list(sys.modules.values()):  # wherever the hit code imported it from
        if getattr(module, "link_detections", None) is tracking.link_detections:
            monkeypatch.setattr(module, "link_detections", refuse)
    tables = hits.compute_hits(recording, store, settings)
    pd.testing.assert_frame_equal(tables.samples, expected.samples)
    pd.testing.assert_frame_equal(tables.persons, expected.persons)
    assert cli.main(["hits", str(folder), *WIDE]) == 0


def test_ctrl_c_while_computing_hits_stops_that_recording_and_leaves_the_rest(export_copy, monkeypatch, capsys) -> None:
    from napari_densepose_gaze import hits

    compute_hits = hits.compute_hits

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs in here
        return compute_hits(*args, **kwargs)

    monkeypatch.setattr(hits, "compute_hits", interrupted)
    assert cli.main(["hits", str(export_copy)]) == cli.EXIT_INTERRUPTED
    captured = capsys.readouterr()
    first, *others = find_recordings(export_copy)
    assert summary_row(captured.out, first.name).split()[-1] == "stopped"
    assert all(summary_row(captured.out, f.name).endswith("not started") for f in others)
    assert "densepose-gaze: stopped by Ctrl-C." in captured.err and "Traceback" not in captured.err
    assert not any((store / "hits").exists() for store in stores(export_copy).values())


# ------------------------------------------------------------------ report
def png_pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)


def has_colour(pixels: np.ndarray, rgb, tolerance: int = 3) -> int:
    return int((np.abs(pixels - np.asarray(rgb)).max(axis=1) <= tolerance).sum())


def test_run_then_report_gives_figures_for_each_recording_showing_the_most_looked_at_part(
    export_copy, capsys
) -> None:
    import matplotlib

    assert cli.main(["report", str(export_copy), *WIDE]) == 0
    assert cli.main(["hits", str(export_copy), *WIDE]) == 0
    out = capsys.readouterr().out
    top_colour = np.round(np.array(matplotlib.colormaps["YlOrRd"](1.0)[:3]) * 255)
    looked_at = 0
    for name, store in stores(export_copy).items():
        report = store / "report"
        for stem in ("body_heatmap", "dwell_per_person"):
            assert (report / f"{stem}.png").stat().st_size > 10_000
            assert (report / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
        parts = pd.read_csv(store / "hits" / FILE_NAMES["parts"])
        heat = png_pixels(report / "body_heatmap.png")
        bars = png_pixels(report / "dwell_per_person.png")
        assert len(np.unique(heat, axis=0)) > 20  # not blank
        if parts["dwell time [s]"].max() > 0:
            looked_at += 1
            top = int(parts.loc[parts["dwell time [s]"].idxmax(), "part id"])
            assert has_colour(heat, top_colour) > 500, name  # the top part wears the top of the colour bar
            assert has_colour(bars, np.round(np.array(part_color(top)[:3]) * 255)) > 200, name
            assert parts.loc[parts["part id"] == top, "part"].item() in summary_row(out, name)
    assert looked_at >= 2  # the wide radius finds the synthetic people on most recordings


def test_report_output_folder_for_one_recording_is_used_as_is(export, tmp_path) -> None:
    recording = find_recordings(export)[1]
    out = tmp_path / "figures"
    assert cli.main(["report", str(recording), "--radius", "0", "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "body_heatmap.png", "body_heatmap.svg", "dwell_per_person.png", "dwell_per_person.svg"]


def svg_fills(path: Path) -> dict[int, list[str]]:
    """part id -> fill colour of each shape drawn for it."""
    fills: dict[int, list[str]] = {}
    for part, colour in re.findall(r'<g id="part-(\d+)">.*?fill: (#[0-9a-f]{6})', path.read_text(), re.DOTALL):
        fills.setdefault(int(part), []).append(colour)
    return fills


def test_body_heatmap_colours_every_part_by_its_dwell_on_the_right_views(tmp_path) -> None:
    from matplotlib import colormaps, colors

    parts = pd.DataFrame({"part id": list(PART_NAMES), "dwell time [s]": [float(p) for p in PART_NAMES]})
    written = body_heatmap(parts, tmp_path / "heat", title="dwell = part id")
    assert set(written) == {"png", "svg"} and all(p.is_file() for p in written.values())
    fills = svg_fills(written["svg"])
    assert set(fills) == set(PART_NAMES)  # all 24 patches drawn
    for part in PART_NAMES:
        expected = colors.to_hex(colormaps["YlOrRd"](part / 24))
        views = (part in FRONT_PARTS) + (part in BACK_PARTS)
        assert fills[part] == [expected] * views, PART_NAMES[part]


def test_body_heatmap_without_hits_still_draws_the_body(tmp_path) -> None:
    parts = pd.DataFrame({"part id": list(PART_NAMES), "dwell time [s]": 0.0})
    written = body_heatmap(parts, tmp_path / "empty.png")  # a suffix is replaced by both
    assert written["png"] == tmp_path / "empty.png" and written["svg"] == tmp_path / "empty.svg"
    assert len(np.unique(png_pixels(written["png"]), axis=0)) > 10


def test_dwell_bar_chart_stacks_each_persons_parts_in_the_part_colours(tmp_path) -> None:
    samples = pd.DataFrame({
        "assessed": [True, True, True, True, False],
        "hit part id": pd.array([23, 23, 2, 14, 5], dtype="Int64"),
        "hit person id": pd.array([1, 1, 2, None, 1], dtype="Int64"),
        "sample duration [ns]": [400_000_000, 100_000_000, 200_000_000, 300_000_000, 900_000_000],
    })
    written = dwell_bar_chart(samples, tmp_path / "bars")
    svg = written["svg"].read_text()
    for part in (23, 2, 14):
        assert f'id="part-{part}"' in svg
    assert 'id="part-5"' not in svg  # not assessed: not a hit
    pixels = png_pixels(written["png"])
    for part in (23, 2, 14):
        assert has_colour(pixels, np.round(np.array(part_color(part)[:3]) * 255)) > 100


# ------------------------------------------------------------------ render
def test_render_writes_an_overlay_with_the_source_frames_rate_and_audio(export, tmp_path, capsys) -> None:
    with_audio, without_audio = find_recordings(export)[:2]
    target = tmp_path / "overlay.mp4"
    assert cli.main(["render", str(with_audio), *WIDE, "--output", str(target)]) == 0
    assert cli.main(["render", str(without_audio), "--output", str(tmp_path / "videos")]) == 0
    for path, source_path, audio in ((target, with_audio, True),
                                     (tmp_path / "videos" / f"{without_audio.name}_overlay.mp4", without_audio, False)):
        source_file = next(source_path.glob("*.mp4"))
        with av.open(str(source_file)) as source, av.open(str(path)) as rendered:
            assert len(rendered.streams.audio) == (1 if audio else 0)
            assert len(source.streams.audio) == (1 if audio else 0)
            video = rendered.streams.video[0]
            assert video.codec_context.name == "h264"
            assert video.average_rate == source.streams.video[0].average_rate == 30
            frames = [f.to_ndarray(format="rgb24") for f in rendered.decode(video=0)]
            assert len(frames) == 30
            if audio:
                rendered.seek(0)
                audio_packets = [p for p in rendered.demux(rendered.streams.audio[0]) if p.size]
                source_packets = [p for p in source.demux(source.streams.audio[0]) if p.size]
                assert [bytes(p) for p in audio_packets] == [bytes(p) for p in source_packets]  # copied, not re-encoded
    assert not list(tmp_path.glob(".*.tmp*"))


def test_render_blends_the_part_colours_on_processed_frames_only(export_copy, tmp_path) -> None:
    recording = find_recordings(export_copy)[0]
    store = ResultsStore.open(ResultsStore.default_folder(recording), mode="r+")
    labels = np.zeros(store.shape[1:], dtype=np.uint8)
    labels[20:60, 20:50] = 2  # torso front
    labels[70:100, 100:140] = 23  # head, right side
    persons = (labels > 0).astype(np.uint8)
    store.write_frame(10, labels, persons, [{"x1": 20, "y1": 20, "x2": 140, "y2": 100, "score": 1.0}])
    out = tmp_path / "o.mp4"
    assert cli.main(["render", str(recording), "--radius", "0", "--opacity", "1", "--output", str(out)]) == 0
    with av.open(str(out)) as rendered:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in rendered.decode(video=0)]
    lut = color_lut()[:, :3].astype(int)
    for part, (rows, cols) in ((2, (slice(25, 55), slice(25, 45))), (23, (slice(75, 95), slice(105, 135)))):
        shown = np.median(frames[10][rows, cols].reshape(-1, 3), axis=0)
        assert np.abs(shown - lut[part]).max() < 12, part  # processed frame 10 shows the part colour
        unprocessed = np.median(frames[11][rows, cols].reshape(-1, 3), axis=0)
        assert np.abs(unprocessed - lut[part]).max() > 30, part  # frame 11 shows the scene


def test_render_defaults_to_each_store_and_later_commands_do_not_take_a_store_for_a_recording(
    export_copy, capsys
) -> None:
    assert cli.main(["render", str(export_copy)]) == 0
    for store in stores(export_copy).values():
        assert (store / "overlay.mp4").stat().st_size > 1000
    capsys.readouterr()
    assert cli.main(["report", str(export_copy)]) == 0
    out = capsys.readouterr().out
    assert out.count(" done") == 3 and ".densepose " not in out


def test_overlay_labels_name_the_part_looked_at_or_say_why_there_is_none(export) -> None:
    from napari_densepose_gaze.hits import HitSettings, compute_hits
    from napari_densepose_gaze.recording import Recording
    from napari_densepose_gaze.render import frame_overlays

    folder = find_recordings(export)[0]
    recording = Recording.open(folder)
    tables = compute_hits(recording, ResultsStore.open(ResultsStore.default_folder(folder)), HitSettings(200, "px"))
    overlays = frame_overlays(tables)
    frames = tables.frames.set_index("frame")
    assert set(overlays.index) == set(frames.index)
    for frame, row in overlays.iterrows():
        if not frames.loc[frame, "processed"]:
            assert row["label"] == "not processed"
        elif row["part id"] > 0:
            assert row["label"].startswith(frames.loc[frame, "part"]) and row["radius"] == 200
    assert (overlays["part id"] > 0).any() and (overlays["label"] == "not processed").any()
