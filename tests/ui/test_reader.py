"""The reader in a real napari viewer: layers, scrubbing, the .mp4 path, export roots, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QApplication

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.synthetic.export import write_export
from napari_densepose_gaze.ui.layer_roles import FIXATIONS, GAZE, RECORDING_FOLDER_KEY, SCENE_VIDEO, role_of
from napari_densepose_gaze.ui.reader import EXPECTED_FILES, get_reader
from napari_densepose_gaze.ui.recording_chooser import RecordingChooser
from napari_densepose_gaze.ui.run_widget import RunDensePoseWidget
from napari_densepose_gaze.ui.session import open_session, session_of

PLUGIN = "napari-densepose-gaze"


def decoded_frames(video: Path) -> np.ndarray:
    """Every frame of ``video`` decoded front to back by PyAV: the truth a seek must match."""
    with av.open(str(video)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def error_chain(excinfo: pytest.ExceptionInfo) -> list[BaseException]:
    return error_chain_of(excinfo.value)


def error_chain_of(error: BaseException | None) -> list[BaseException]:
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


@pytest.fixture
def recording(synthetic_recording) -> Path:
    return synthetic_recording()


def test_recording_folder_opens_as_video_fixations_and_gaze(make_napari_viewer, recording: Path) -> None:
    viewer = make_napari_viewer()
    viewer.open(recording, plugin=PLUGIN)

    name = Recording.open(recording).name
    assert [role_of(layer) for layer in viewer.layers] == [SCENE_VIDEO, FIXATIONS, GAZE]
    # the recording in every name: two recordings open at once are told apart in the layer list
    assert [layer.name for layer in viewer.layers] == [f"scene video [{name}]", f"fixations [{name}]", f"gaze [{name}]"]
    video, fixations, gaze = viewer.layers
    assert video.rgb and video.data.shape == (60, 240, 320, 3)
    assert type(gaze).__name__ == "Points" and type(fixations).__name__ == "Points"
    assert all(Path(layer.metadata[RECORDING_FOLDER_KEY]) == recording for layer in viewer.layers)
    assert viewer.dims.nsteps[0] == 60
    assert list(gaze.features.columns) == ["timestamp [ns]", "fixation id", "samples"]
    assert len(fixations.data) > 0


def test_gaze_layer_holds_one_point_per_frame_with_valid_gaze(make_napari_viewer, recording: Path, layer_of) -> None:
    expected = Recording.open(recording).per_frame_gaze()
    expected = expected[expected["valid samples"] > 0]
    viewer = make_napari_viewer()
    viewer.open(recording, plugin=PLUGIN)
    gaze = layer_of(viewer, GAZE)

    np.testing.assert_array_equal(gaze.data[:, 0], expected["frame"])
    np.testing.assert_allclose(gaze.data[:, 1], expected["gaze y [px]"])
    np.testing.assert_allclose(gaze.data[:, 2], expected["gaze x [px]"])
    np.testing.assert_array_equal(gaze.features["timestamp [ns]"], expected["timestamp [ns]"])
    np.testing.assert_array_equal(gaze.features["samples"], expected["valid samples"])
    pd.testing.assert_series_equal(
        gaze.features["fixation id"], expected["fixation id"].reset_index(drop=True), check_names=False
    )
    assert gaze.features["fixation id"].isna().any() and gaze.features["fixation id"].notna().any()
    # the synthetic wearer blinks and takes the glasses off: some frames have no gaze point
    assert 0 < len(gaze.data) < 60


def test_scrubbing_shows_the_decoded_frame_and_that_frames_gaze(make_napari_viewer, recording: Path, layer_of) -> None:
    truth = decoded_frames(next(recording.glob("*.mp4")))
    viewer = make_napari_viewer()
    viewer.open(recording, plugin=PLUGIN)
    video, gaze = layer_of(viewer, SCENE_VIDEO), layer_of(viewer, GAZE)
    frames_with_gaze = gaze.data[:, 0].astype(int)
    with_gaze = int(frames_with_gaze[len(frames_with_gaze) // 2])
    (without_gaze, *_) = sorted(set(range(60)) - set(frames_with_gaze))

    # forwards, backwards across keyframes, to the last frame, and frames with and without gaze
    for i in [0, 37, 5, 59, with_gaze, without_gaze]:
        viewer.dims.set_current_step(0, i)
        np.testing.assert_array_equal(np.asarray(video._data_view), truth[i], err_msg=f"frame {i}")
        shown = gaze._view_indices
        if i in frames_with_gaze:
            (row,) = np.flatnonzero(frames_with_gaze == i)
            assert list(shown) == [row], f"frame {i} shows gaze points {list(shown)}"
        else:
            assert len(shown) == 0


def test_fixation_is_shown_on_every_frame_it_spans(make_napari_viewer, recording: Path, layer_of) -> None:
    viewer = make_napari_viewer()
    viewer.open(recording, plugin=PLUGIN)
    fixations = layer_of(viewer, FIXATIONS)
    first_id = fixations.features["fixation id"].iloc[0]
    frames = fixations.data[fixations.features["fixation id"] == first_id, 0].astype(int)

    assert len(frames) > 1
    np.testing.assert_array_equal(frames, np.arange(frames[0], frames[-1] + 1))
    for i in frames:
        viewer.dims.set_current_step(0, i)
        assert first_id in set(fixations.features["fixation id"].iloc[fixations._view_indices])


def test_video_file_opens_its_recording(make_napari_viewer, recording: Path, layer_of) -> None:
    viewer = make_napari_viewer()
    viewer.open(next(recording.glob("*.mp4")), plugin=PLUGIN)

    assert [role_of(layer) for layer in viewer.layers] == [SCENE_VIDEO, FIXATIONS, GAZE]
    assert Path(layer_of(viewer, GAZE).metadata[RECORDING_FOLDER_KEY]) == recording


def test_export_root_with_one_recording_opens_it(make_napari_viewer, tmp_path: Path, layer_of) -> None:
    root = write_export(tmp_path / "export", recordings=1, seconds=1.0, size=(160, 120))
    viewer = make_napari_viewer()
    viewer.open(root, plugin=PLUGIN)

    (recording,) = [p for p in root.iterdir() if p.is_dir()]
    assert Path(layer_of(viewer, SCENE_VIDEO).metadata[RECORDING_FOLDER_KEY]) == recording


@pytest.fixture(scope="module")
def export_of_two(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export"), recordings=2, seconds=0.5, size=(160, 120))


def answer_chooser(qtbot, untick: list[str] = (), button: str = "Open") -> list[list[str]]:
    """Once the recording chooser opens: untick ``untick``, press ``button``; returns what the dialog listed."""
    listed: list[list[str]] = []

    def act() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, RecordingChooser):
            QTimer.singleShot(20, act)
            return
        listed.append([dialog.list.item(row).text() for row in range(dialog.list.count())])
        for row in range(dialog.list.count()):
            if dialog.list.item(row).text() in untick:
                dialog.list.item(row).setCheckState(Qt.CheckState.Unchecked)
        found = [b for b in dialog.buttons.buttons() if b.text().replace("&", "") == button]
        qtbot.mouseClick(found[0], Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, act)
    return listed


def test_export_root_with_several_recordings_asks_which_to_open(make_napari_viewer, export_of_two, qtbot,
                                                                layer_of) -> None:
    names = sorted(p.name for p in export_of_two.iterdir() if p.is_dir())
    viewer = make_napari_viewer()
    listed = answer_chooser(qtbot, untick=[names[0]])
    viewer.open(export_of_two, plugin=PLUGIN)

    assert listed == [names]
    assert Path(layer_of(viewer, GAZE).metadata[RECORDING_FOLDER_KEY]).name == names[1]
    assert len(viewer.layers) == 3


def test_open_all_opens_every_recording_of_an_export_told_apart_by_name(make_napari_viewer, export_of_two, qtbot,
                                                                       layer_of) -> None:
    folders = sorted(p for p in export_of_two.iterdir() if p.is_dir())
    viewer = make_napari_viewer()
    answer_chooser(qtbot, untick=[folders[0].name], button="Open all")
    viewer.open(export_of_two, plugin=PLUGIN)

    assert len(viewer.layers) == 6
    for folder in folders:
        name = Recording.open(folder).name
        assert layer_of(viewer, GAZE, folder).name == f"gaze [{name}]"
    run = RunDensePoseWidget(viewer)
    combo = run.video.native  # the chooser as the user sees it: each scene video by its recording's name
    shown = [combo.itemText(i) for i in range(combo.count()) if combo.itemData(i) is not None]
    assert shown == [Recording.open(folder).name for folder in folders]


def test_cancelling_the_chooser_opens_nothing(make_napari_viewer, export_of_two, qtbot) -> None:
    viewer = make_napari_viewer()
    answer_chooser(qtbot, button="Cancel")
    try:
        viewer.open(export_of_two, plugin=PLUGIN)
    except Exception as error:  # napari may say that the reader returned nothing: never our error
        assert not any(isinstance(e, DensePoseGazeError) for e in error_chain_of(error))
    assert len(viewer.layers) == 0


def test_a_folder_of_tables_that_is_no_recording_says_which_files_were_expected(
    make_napari_viewer, tmp_path: Path
) -> None:
    folder = tmp_path / "my tobii data"
    folder.mkdir()
    (folder / "samples.csv").write_text("t,x,y\n0,1,2\n")
    viewer = make_napari_viewer()

    with pytest.raises(Exception) as excinfo:
        viewer.open(folder, plugin=PLUGIN)

    (error,) = [e for e in error_chain(excinfo) if isinstance(e, DensePoseGazeError)]
    assert str(folder) in str(error)
    assert all(name in str(error) for name in EXPECTED_FILES)


def test_recording_without_gaze_csv_raises_an_error_naming_it(make_napari_viewer, recording: Path, tmp_path) -> None:
    broken = Path(shutil.copytree(recording, tmp_path / recording.name))
    (broken / "gaze.csv").unlink()
    assert get_reader(str(broken)) is not None  # still a recording: the user must hear what is wrong
    viewer = make_napari_viewer()

    with pytest.raises(Exception) as excinfo:
        viewer.open(broken, plugin=PLUGIN)

    (error,) = [e for e in error_chain(excinfo) if isinstance(e, DensePoseGazeError)]
    assert "gaze.csv" in str(error)


def test_paths_that_are_no_recording_are_left_to_other_readers(tmp_path: Path, recording: Path) -> None:
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "cat.png").write_bytes(b"not really a png")
    lone_video = tmp_path / "holiday" / "beach.mp4"
    lone_video.parent.mkdir()
    shutil.copyfile(next(recording.glob("*.mp4")), lone_video)

    assert get_reader(str(tmp_path / "pictures")) is None
    assert get_reader(str(tmp_path / "pictures" / "cat.png")) is None
    assert get_reader(str(lone_video)) is None
    assert get_reader(str(lone_video.parent)) is None
    assert get_reader([str(recording), str(recording)]) is None
    assert get_reader(str(recording)) is not None
    assert get_reader([str(recording)]) is not None


def test_gaze_ring_is_drawn_over_the_video(make_napari_viewer, recording: Path, layer_of) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.open(recording, plugin=PLUGIN)
    gaze = layer_of(viewer, GAZE)
    viewer.dims.set_current_step(0, int(gaze.data[len(gaze.data) // 2, 0]))
    viewer.reset_view()
    ring = np.array([0xFF, 0x2D, 0x55])

    def ring_pixels() -> int:
        shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
        return int(np.sum(np.abs(shot - ring).max(axis=-1) < 40))

    assert ring_pixels() > 20
    gaze.visible = False
    assert ring_pixels() == 0


def test_widgets_reuse_the_recording_the_reader_opened(make_napari_viewer, recording: Path, layer_of) -> None:
    viewer = make_napari_viewer()
    viewer.open(recording, plugin=PLUGIN)

    session = open_session(recording)
    # one session for every layer of the recording, holding the Recording the reader opened
    assert all(session_of(layer) is session for layer in viewer.layers)
    # the same video reader as the layer: no second demux of the video, one frame cache
    assert layer_of(viewer, SCENE_VIDEO).data.reader is session.recording.video_reader()
