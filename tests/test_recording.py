"""Opening Pupil Cloud recordings, including every deviation the format page lists."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.recording import ExportWarning, Recording, find_recordings
from napari_densepose_gaze.synthetic.export import DEVIATIONS, write_export, write_recording
from napari_densepose_gaze.synthetic.scene import figure_heads, render_frame
from napari_densepose_gaze.tables import SECTIONS, read_table

SMALL = {"size": (96, 64), "seconds": 1.0}  # 30 frames, ~200 gaze samples: fast to write and read
N_FRAMES = 30
FIRST_FRAME_NS = 1_700_000_000_203_456_789  # seed 0: recording start + 80 ms, every digit significant


def open_quietly(path) -> Recording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)
        return Recording.open(path)


def make(tmp_path, *deviations, **kwargs) -> Recording:
    folder = write_recording(tmp_path, deviations=deviations, **{**SMALL, **kwargs})
    return open_quietly(folder)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Recording:
    folder = write_recording(tmp_path_factory.mktemp("clean"), **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)  # a clean export opens without a single warning
        return Recording.open(folder)


# -- a clean export --------------------------------------------------------------------------


def test_clean_neon_recording_has_every_part(clean):
    assert clean.warnings == []
    assert clean.n_frames == N_FRAMES and clean.frame_size == (96, 64)
    assert clean.frame_timestamps.dtype == np.int64 and clean.frame_timestamps[0] == FIRST_FRAME_NS
    assert clean.frame_in_order.all()
    assert clean.name == clean.folder.name and clean.name.endswith("-" + clean.info["recording_id"][:8])
    assert clean.recording_id == clean.info["recording_id"]
    assert np.array(clean.scene_camera["camera_matrix"]).shape == (3, 3)
    assert len(clean.gaze) > 150 and len(clean.fixations) > 0 and len(clean.blinks) >= 1
    assert len(clean.saccades) > 0
    assert {"recording.begin", "recording.end"} <= set(clean.events["name"])
    assert clean.gaze["timestamp [ns]"].dtype == np.int64
    assert clean.video_path.suffix == ".mp4" and clean.video_path.parent == clean.folder


def test_video_is_lazy_and_limited_to_the_common_frames(clean):
    video = clean.video()
    assert video.shape == (N_FRAMES, 64, 96, 3)
    assert video[3].dtype == np.uint8


def test_video_frames_show_the_rendered_scene(clean):
    start_ns = clean.info["start_time"]
    t = (clean.frame_timestamps[7] - start_ns) / 1e9
    expected = render_frame(t, 96, 64, 2, 0).astype(int)
    assert np.abs(clean.video()[7].astype(int) - expected).mean() < 12  # H.264 at crf 23


def test_invisible_recording_has_its_size_and_rotation_matrix(tmp_path):
    rec = make(tmp_path, device="invisible", size=None, seconds=0.2)
    assert rec.frame_size == (1088, 1080)
    assert np.array(rec.scene_camera["rotation_matrix"]).shape == (3, 3)
    assert "glasses_serial_number" in rec.info


def test_neon_recording_has_its_size_and_frame_accurate_video(tmp_path):
    rec = make(tmp_path, device="neon", size=None, seconds=0.2)
    assert rec.frame_size == (1600, 1200)
    assert "rotation_matrix" not in rec.scene_camera
    start_ns = rec.info["start_time"]
    frame = rec.n_frames - 1
    expected = render_frame((rec.frame_timestamps[frame] - start_ns) / 1e9, 1600, 1200, 2, 0).astype(int)
    assert np.abs(rec.video()[frame].astype(int) - expected).mean() < 12


def test_writing_is_deterministic(tmp_path):
    a = write_recording(tmp_path / "a", deviations=["no_video"], **SMALL)
    b = write_recording(tmp_path / "b", deviations=["no_video"], **SMALL)
    for name in ("gaze.csv", "world_timestamps.csv", "fixations.csv", "blinks.csv", "info.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    c = write_recording(tmp_path / "c", deviations=["no_video"], seed=1, **SMALL)
    assert (a / "gaze.csv").read_bytes() != (c / "gaze.csv").read_bytes()


def test_unknown_deviation_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown deviation"):
        write_recording(tmp_path, deviations=["bogus"], **SMALL)


# -- what the user picks --------------------------------------------------------------------


def test_open_from_the_video_file(clean):
    rec = open_quietly(clean.video_path)
    assert rec.folder == clean.folder and rec.n_frames == N_FRAMES


def test_open_from_an_export_root_with_one_recording(tmp_path):
    root = write_export(tmp_path / "export", recordings=1, **SMALL)
    rec = open_quietly(root)
    assert rec.folder.parent == root


def test_export_root_with_several_recordings_lists_them(tmp_path):
    root = write_export(tmp_path / "export", recordings=[{"seed": 1}, {"seed": 2, "device": "invisible"}],
                        deviations=["no_video"], **SMALL)
    found = find_recordings(root)
    assert len(found) == 2
    with pytest.raises(DensePoseGazeError, match="holds 2 recordings; pick one") as info:
        Recording.open(root)
    assert all(str(f) in str(info.value) for f in found)
    sections = read_table(root / "sections.csv", SECTIONS).table
    assert sorted(sections["recording id"].str[:8]) == sorted(f.name[-8:] for f in found)
    assert (root / "enrichment_info.txt").is_file()


def test_find_recordings_on_a_recording_folder_and_a_wrapped_export(tmp_path, clean):
    assert find_recordings(clean.folder) == [clean.folder]
    root = write_export(tmp_path / "download" / "export", recordings=2, deviations=["no_video"], **SMALL)
    assert find_recordings(tmp_path / "download") == sorted(p for p in root.iterdir() if p.is_dir())


def test_folder_without_recordings_says_what_to_pick(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DensePoseGazeError, match="holds no recording.*world_timestamps.csv.*gaze_positions.csv"):
        Recording.open(tmp_path / "empty")
    with pytest.raises(DensePoseGazeError, match="does not exist"):
        Recording.open(tmp_path / "nowhere")


# -- missing files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deviation", "filename"),
    [("no_world_timestamps", "world_timestamps.csv"), ("no_gaze", "gaze.csv"), ("no_video", r"scene video \(\.mp4\)")],
)
def test_missing_required_file_is_named_with_its_folder(tmp_path, deviation, filename):
    folder = write_recording(tmp_path, deviations=[deviation], **SMALL)
    with pytest.raises(DensePoseGazeError, match=filename) as info:
        Recording.open(folder)
    assert str(folder) in str(info.value)


@pytest.mark.parametrize(
    ("deviation", "filename", "attribute"),
    [
        ("no_fixations", "fixations.csv", "fixations"),
        ("no_blinks", "blinks.csv", "blinks"),
        ("no_events", "events.csv", "events"),
        ("no_saccades", "saccades.csv", "saccades"),
    ],
)
def test_missing_optional_table_is_empty_with_its_columns_and_noted(tmp_path, clean, deviation, filename, attribute):
    folder = write_recording(tmp_path, deviations=[deviation], **SMALL)
    with pytest.warns(ExportWarning, match=filename):
        rec = Recording.open(folder)
    table = getattr(rec, attribute)
    assert len(table) == 0 and list(table.columns) == list(getattr(clean, attribute).columns)
    assert any(filename in w for w in rec.warnings)


def test_missing_scene_camera_and_info_are_noted(tmp_path):
    rec = make(tmp_path, "no_scene_camera", "no_info")
    assert rec.scene_camera is None and rec.info == {}
    assert any("scene_camera.json" in w for w in rec.warnings) and any("info.json" in w for w in rec.warnings)


def test_two_videos_are_listed_and_picking_one_works(tmp_path):
    folder = write_recording(tmp_path, deviations=["two_videos"], **SMALL)
    videos = sorted(folder.glob("*.mp4"))
    with pytest.raises(DensePoseGazeError, match="2 .mp4 files") as info:
        Recording.open(folder)
    assert all(v.name in str(info.value) for v in videos)
    assert open_quietly(videos[0]).video_path == videos[0]


# -- file format deviations: the same data comes out ---------------------------------------------


@pytest.mark.parametrize("deviations", [("bom",), ("crlf",), ("reordered_columns",), ("extra_columns",),
                                        ("bom", "crlf", "reordered_columns", "extra_columns")])
def test_encoding_and_column_deviations_read_the_same_tables(tmp_path, clean, deviations):
    rec = make(tmp_path, *deviations)
    assert rec.warnings == []
    for attribute in ("gaze", "fixations", "saccades", "blinks", "events"):
        got, want = getattr(rec, attribute), getattr(clean, attribute)
        pd.testing.assert_frame_equal(got[list(want.columns)], want, obj=attribute)
    np.testing.assert_array_equal(rec.frame_timestamps, clean.frame_timestamps)


def test_old_invisible_columns_assume_worn_and_leave_angles_empty(tmp_path, clean):
    rec = make(tmp_path, "old_invisible_columns")
    assert (rec.gaze["worn"] == 1.0).all()
    assert rec.gaze["azimuth [deg]"].isna().all()
    assert any("'worn'" in w for w in rec.warnings)
    pd.testing.assert_series_equal(rec.gaze["gaze x [px]"], clean.gaze["gaze x [px]"])


def test_scientific_notation_keeps_float64_precision_and_warns(tmp_path, clean):
    rec = make(tmp_path, "scientific_notation")
    assert rec.frame_timestamps.dtype == np.int64
    # float64 text of 1.7e18 resolves 256 ns and its shortest repr rounds once more
    assert np.abs(rec.frame_timestamps - clean.frame_timestamps).max() <= 256
    assert np.abs(rec.gaze["timestamp [ns]"] - clean.gaze["timestamp [ns]"]).max() <= 256
    np.testing.assert_allclose(rec.gaze["gaze x [px]"], clean.gaze["gaze x [px]"], rtol=1e-6)
    pd.testing.assert_series_equal(rec.gaze["fixation id"], clean.gaze["fixation id"])
    assert any("world_timestamps.csv" in w and "exact only to about 256 ns" in w for w in rec.warnings)


def test_non_monotonic_gaze_is_sorted_and_frames_keep_their_order(tmp_path, clean):
    with pytest.warns(ExportWarning) as record:
        rec = Recording.open(write_recording(tmp_path, deviations=["non_monotonic"], **SMALL))
    pd.testing.assert_frame_equal(rec.gaze, clean.gaze)
    k = N_FRAMES // 2
    # frame i stays row i: the swapped timestamps are not put back in order
    assert rec.frame_timestamps[k] == clean.frame_timestamps[k + 1]
    assert rec.frame_timestamps[k + 1] == clean.frame_timestamps[k]
    assert np.flatnonzero(~rec.frame_in_order).tolist() == [k + 1]
    messages = [str(w.message) for w in record]
    assert any("gaze.csv" in m and "sorted" in m for m in messages)
    assert any("world_timestamps.csv" in m and f"frames {k + 1}" in m for m in messages)


def test_duplicate_rows_are_dropped_from_samples_but_frames_keep_theirs(tmp_path, clean):
    rec = make(tmp_path, "duplicate_rows")
    pd.testing.assert_frame_equal(rec.gaze, clean.gaze)
    pd.testing.assert_frame_equal(rec.fixations, clean.fixations)
    k = N_FRAMES // 3
    assert rec.frame_timestamps[k] == rec.frame_timestamps[k + 1]  # the repeated row is kept in place
    assert not rec.frame_in_order[k + 1] and rec.n_frames == N_FRAMES
    assert any("gaze.csv" in w and "3 exact duplicate" in w for w in rec.warnings)
    assert any("1 repeated" in w for w in rec.warnings)
    assert any(f"{N_FRAMES + 1} rows but the video" in w for w in rec.warnings)


def test_more_video_frames_than_timestamps_uses_the_timestamped_ones(tmp_path, clean):
    rec = make(tmp_path, "more_frames_than_timestamps")
    assert rec.n_frames == N_FRAMES - 3 and len(rec.video()) == N_FRAMES - 3
    np.testing.assert_array_equal(rec.frame_timestamps, clean.frame_timestamps[:-3])
    assert any(f"has {N_FRAMES} frames but world_timestamps.csv only {N_FRAMES - 3} rows" in w for w in rec.warnings)


def test_fewer_video_frames_than_timestamps_is_a_truncated_upload(tmp_path, clean):
    rec = make(tmp_path, "fewer_frames_than_timestamps")
    assert rec.n_frames == N_FRAMES - 3 and len(rec.frame_timestamps) == N_FRAMES - 3
    assert any("truncated" in w for w in rec.warnings)


def test_every_deviation_is_covered_by_a_test():
    tested = {
        "bom", "crlf", "reordered_columns", "extra_columns", "no_fixations", "no_saccades", "no_blinks",
        "no_events", "no_scene_camera", "no_info", "no_world_timestamps", "no_gaze", "no_video", "two_videos",
        "old_invisible_columns", "scientific_notation", "non_monotonic", "duplicate_rows",
        "more_frames_than_timestamps", "fewer_frames_than_timestamps",
    }
    assert tested == DEVIATIONS


def test_warnings_are_also_issued_through_the_warnings_module(tmp_path):
    folder = write_recording(tmp_path, deviations=["no_blinks", "no_events"], **SMALL)
    with pytest.warns(ExportWarning) as record:
        rec = Recording.open(folder)
    assert [str(w.message) for w in record] == rec.warnings


def test_broken_json_is_noted_not_fatal(tmp_path):
    folder = write_recording(tmp_path, **SMALL)
    (folder / "scene_camera.json").write_text("{ not json", encoding="utf-8")
    rec = open_quietly(folder)
    assert rec.scene_camera is None and any("not valid JSON" in w for w in rec.warnings)
    assert json.loads((folder / "info.json").read_text())["recording_id"] == rec.recording_id


# -- the synthetic scene ---------------------------------------------------------------------------


def test_render_frame_is_deterministic_rgb_and_figures_move():
    a = render_frame(0.5, 160, 120, n_figures=2, seed=3)
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, render_frame(0.5, 160, 120, n_figures=2, seed=3))
    assert not np.array_equal(a, render_frame(1.5, 160, 120, n_figures=2, seed=3))
    heads = figure_heads(0.5, 160, 120, n_figures=3, seed=3)
    assert heads.shape == (3, 2)
    assert not np.allclose(heads, figure_heads(1.5, 160, 120, n_figures=3, seed=3))


def test_figure_heads_point_at_skin_coloured_heads():
    t, width, height = 0.4, 320, 240
    image = render_frame(t, width, height, n_figures=1, seed=5)
    background = render_frame(t, width, height, n_figures=0, seed=5)
    (x, y), = figure_heads(t, width, height, n_figures=1, seed=5)
    # a little below the centre (the hair covers the top half), the head differs from the background
    px, py = int(round(x)), int(round(y + 0.3 * (height * 0.05)))
    assert np.abs(image[py, px].astype(int) - background[py, px].astype(int)).sum() > 30


def test_video_with_an_audio_stream_opens_with_all_frames(tmp_path):
    rec = make(tmp_path, audio=True)
    assert rec.n_frames == N_FRAMES and rec.warnings == []


def test_header_only_gaze_opens_with_no_samples(tmp_path):
    folder = write_recording(tmp_path, **SMALL)
    header = (folder / "gaze.csv").read_text().splitlines()[0]
    (folder / "gaze.csv").write_text(header + "\n")
    rec = open_quietly(folder)
    assert len(rec.gaze) == 0 and rec.gaze["timestamp [ns]"].dtype == np.int64


def test_a_stray_video_in_the_export_root_does_not_make_it_a_recording(tmp_path):
    root = write_export(tmp_path / "export", recordings=1, **SMALL)
    (root / "overview.mp4").write_bytes(b"")
    assert open_quietly(root).folder.parent == root


def test_sample_recording_is_written_once_and_reused(tmp_path, monkeypatch):
    from napari_densepose_gaze.synthetic import export

    monkeypatch.setitem(export.SAMPLE_SETTINGS, "size", (64, 48))  # the real one is 640x480; keep the test fast
    monkeypatch.setitem(export.SAMPLE_SETTINGS, "seconds", 0.5)
    first = export.write_sample_recording(tmp_path)
    stamp = (first / "gaze.csv").stat().st_mtime_ns
    assert export.write_sample_recording(tmp_path) == first
    assert (first / "gaze.csv").stat().st_mtime_ns == stamp
    assert open_quietly(first).frame_size == (64, 48)


def test_a_zipped_download_asks_to_unzip(tmp_path):
    (tmp_path / "export.zip").write_bytes(b"PK")
    with pytest.raises(DensePoseGazeError, match="export.zip is a zip archive: unzip it first"):
        Recording.open(tmp_path / "export.zip")


def test_a_results_store_with_an_overlay_video_is_not_taken_for_a_recording(tmp_path):
    from napari_densepose_gaze.recording import find_recordings
    from napari_densepose_gaze.synthetic.export import write_export

    root = write_export(tmp_path / "export", 2, seconds=0.5, size=(64, 48))
    store = root / "x.densepose"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    (store / "overlay.mp4").write_bytes(b"")
    assert store not in find_recordings(root) and len(find_recordings(root)) == 2


# -- what counts as a recording folder (one rule for the reader, find_recordings and the command line) ------------


def test_any_file_only_a_recording_holds_marks_a_recording_folder(tmp_path):
    from napari_densepose_gaze.recording import RECORDING_FILES, is_recording_folder, looks_like_recording_or_export

    for name in RECORDING_FILES:
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_text("")
        assert is_recording_folder(folder) and looks_like_recording_or_export(folder), name
        assert find_recordings(tmp_path / name.replace(".", "_")) == [folder]
    assert len(find_recordings(tmp_path)) == len(RECORDING_FILES)


def test_a_lone_video_is_a_broken_recording_to_the_command_line_but_not_ours_to_napari(tmp_path):
    from napari_densepose_gaze.recording import is_recording_folder, looks_like_recording_or_export

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "holiday.mp4").write_bytes(b"")
    assert is_recording_folder(videos) and find_recordings(tmp_path) == [videos]
    assert not looks_like_recording_or_export(videos) and not looks_like_recording_or_export(videos / "holiday.mp4")
    with pytest.raises(DensePoseGazeError, match="world_timestamps.csv is missing"):
        Recording.open(videos)


def test_an_export_root_looks_like_ours_also_wrapped_in_a_download_folder(tmp_path):
    from napari_densepose_gaze.recording import is_recording_folder, looks_like_recording_or_export

    root = write_export(tmp_path / "download" / "export", recordings=1, deviations=["no_video"], **SMALL)
    recording = find_recordings(root)[0]
    assert not is_recording_folder(root) and is_recording_folder(recording)
    for path in (root, tmp_path / "download", recording):
        assert looks_like_recording_or_export(path), path
    assert not looks_like_recording_or_export(tmp_path / "nowhere")


def test_an_enrichment_export_is_never_a_recording(tmp_path):
    from napari_densepose_gaze.recording import is_recording_folder, looks_like_recording_or_export

    # a Marker Mapper export: a recording's file names, other meanings, and the export root's files beside them
    mapper = tmp_path / "marker_mapper"
    mapper.mkdir()
    for name in ("gaze.csv", "fixations.csv", "sections.csv", "enrichment_info.txt", "surface_positions.csv"):
        (mapper / name).write_text("")
    assert not is_recording_folder(mapper)
    assert looks_like_recording_or_export(mapper)  # so napari's user hears why it does not open
    # refused by name, never read as a recording with surface coordinates for gaze
    with pytest.raises(DensePoseGazeError, match="Marker Mapper"):
        find_recordings(mapper)
    with pytest.raises(DensePoseGazeError, match="Marker Mapper"):
        Recording.open(mapper)


# -- the flagged gaze samples ------------------------------------------------------------------------------------


def test_the_gaze_samples_are_flagged_once_and_kept(tmp_path, monkeypatch):
    from napari_densepose_gaze import recording as recording_module
    from napari_densepose_gaze.frame_selection import FrameSelection, select_frames
    from napari_densepose_gaze.gaze import aggregate_per_frame, fixation_frames, flag_gaze

    rec = make(tmp_path)
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return flag_gaze(*args, **kwargs)

    monkeypatch.setattr(recording_module, "flag_gaze", counted)
    samples = rec.gaze_samples
    assert rec.gaze_samples is samples
    per_frame = rec.per_frame_gaze()
    select_frames(rec, FrameSelection(mode="gaze"))
    assert len(calls) == 1
    expected = flag_gaze(rec.gaze, rec.frame_timestamps, rec.frame_size, rec.blinks, frame_in_order=rec.frame_in_order)
    pd.testing.assert_frame_equal(samples, expected)
    pd.testing.assert_frame_equal(per_frame, aggregate_per_frame(expected, rec.frame_timestamps))
    pd.testing.assert_frame_equal(rec.fixation_frames(), fixation_frames(rec.fixations, rec.frame_timestamps))
