"""Exports that can be pooled across recordings: who each row is from, seconds, provenance, one recording a folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.gaze import flag_gaze
from napari_densepose_gaze.hit_export import SETTINGS_FILE, export_hit_tables, export_recording_hits, write_peer_files
from napari_densepose_gaze.hits import HitSettings, compute_hits, hits_from_samples
from napari_densepose_gaze.hits.provenance import Provenance, recording_name
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore
from napari_densepose_gaze.synthetic.export import write_recording

# a UTC time in ns as a real recording has: as a float64 it is only exact to 256 ns
START = 1_700_000_000_000_000_007
FRAME_TS = START + np.array([0, 33_333_333, 66_666_667], dtype=np.int64)
SAMPLE_OFFSETS = [1_000_001, 40_000_000, 70_123_457]  # ns after the first frame
#: the run metadata a store of the pipeline keeps (pipeline.run_metadata's keys)
RUN = {"recording_source": "pupil cloud", "model": "R_50_FPN_s1x", "checkpoint_sha256": "ab" * 32,
       "score_threshold": 0.7, "input_size": [64, 107], "precision": "float32", "package_version": "0.9.0",
       "device": "cpu"}


def timed_tables():
    gaze = pd.DataFrame({
        "section id": "s1", "recording id": "r1",
        "timestamp [ns]": START + np.array(SAMPLE_OFFSETS, dtype=np.int64),
        "gaze x [px]": 7.0, "gaze y [px]": 7.0, "worn": 1.0,
        "fixation id": pd.array([1, 1, None], dtype="Int64"), "blink id": pd.array([None] * 3, dtype="Int64"),
    })
    fixations = pd.DataFrame({"fixation id": [1], "start timestamp [ns]": [START + 1_000_001],
                              "end timestamp [ns]": [START + 40_000_000], "duration [ms]": [39.0],
                              "fixation x [px]": [7.0], "fixation y [px]": [7.0]})
    labels = np.zeros((3, 30, 40), np.uint8)
    labels[:, 5:10, 5:10] = 2  # torso front under the gaze on every frame
    persons = (labels > 0).astype(np.uint8)
    samples = flag_gaze(gaze, FRAME_TS, (40, 30))
    tables = hits_from_samples(samples, labels, persons, [0, 1, 2], settings=HitSettings(0, "px"),
                               frame_timestamps=FRAME_TS, fixations=fixations)
    return tables, labels, persons


def test_seconds_count_from_the_first_frame_exactly(tmp_path):
    tables, labels, persons = timed_tables()
    # by hand: offset in ns / 1e9, exact although the timestamps are beyond float64's ns precision
    assert tables.samples["time [s]"].tolist() == [0.001000001, 0.04, 0.070123457]
    assert tables.frames["time [s]"].tolist() == [0.0, 0.033333333, 0.066666667]
    assert tables.fixations[["start time [s]", "end time [s]"]].iloc[0].tolist() == [0.001000001, 0.04]
    assert tables.parts.loc[tables.parts["part id"] == 2, "first hit [s]"].item() == 0.001000001
    provenance = Provenance(recording_id="r1", recording_name="walk")
    written = export_hit_tables(tables, tmp_path, provenance)
    assert pd.read_csv(written["samples"])["time [s]"].tolist() == [0.001000001, 0.04, 0.070123457]
    assert pd.read_csv(written["fixations"])["end time [s]"].tolist() == [0.04]
    peer = write_peer_files(tables, tmp_path, labels, persons, [0, 1, 2], provenance=provenance)
    assert pd.read_csv(peer["densepose"])["time [s]"].tolist() == [0.0, 0.033333333, 0.066666667]


def test_the_recording_name_leaves_out_the_id_suffix_pupil_cloud_adds(tmp_path):
    folder = write_recording(tmp_path, seconds=0.2, size=(32, 24), name="walk one")
    recording = Recording.open(folder)
    assert folder.name == f"walk one-{recording.recording_id[:8]}"
    assert recording_name(recording) == "walk one"


# ---------------------------------------------------------------- two real recordings
@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two tiny recordings, each with a results store whose frame 0 shows a head: (recording, store) pairs."""
    root = tmp_path_factory.mktemp("pooling")
    pairs = []
    for seed, name in enumerate(("walk one", "walk two")):
        recording = Recording.open(write_recording(root, seconds=1.0, size=(160, 120), seed=seed, name=name))
        width, height = recording.frame_size
        store = ResultsStore.create(root / f"{name}.densepose", n_frames=recording.n_frames, height=height,
                                    width=width, metadata={"recording_id": recording.recording_id, **RUN})
        labels = np.zeros((height, width), np.uint8)
        labels[:, : width // 2] = 24
        store.write_frame(0, labels, (labels > 0).astype(np.uint8),
                          [{"x1": 0, "y1": 0, "x2": width // 2, "y2": height, "score": 0.9}])
        pairs.append((recording, store, compute_hits(recording, store, HitSettings(5, "px"))))
    return pairs


def test_every_exported_table_names_its_recording_and_pools(two, tmp_path):
    pooled = []
    for recording, store, tables in two:
        folder = tmp_path / recording.name
        written = export_recording_hits(tables, folder, recording, store)
        csvs = sorted(folder.glob("*.csv"))
        assert {p for p in written.values() if p.suffix == ".csv"} == set(csvs) and len(csvs) == 12
        for path in csvs:
            table = pd.read_csv(path, dtype={"recording id": str, "recording name": str})
            assert table.columns[-1] == "recording name", path.name
            assert set(table["recording id"]) <= {recording.recording_id}, path.name
            assert set(table["recording name"]) <= {recording_name(recording)}, path.name
        pooled.append(pd.read_csv(written["samples"]))
    both = pd.concat(pooled, ignore_index=True)
    assert both.groupby("recording name").size().to_dict() == {
        "walk one": len(two[0][2].samples), "walk two": len(two[1][2].samples)}


def test_hit_settings_carry_the_densepose_provenance_of_the_store(two, tmp_path):
    recording, store, tables = two[0]
    export_recording_hits(tables, tmp_path, recording, store, peer=False)
    settings = json.loads((tmp_path / SETTINGS_FILE).read_text())
    assert settings["densepose"] == ResultsStore.open(store.folder).metadata  # as stored, not retyped
    assert {k: settings["densepose"][k] for k in RUN} == RUN
    assert (settings["recording id"], settings["recording name"]) == (recording.recording_id, "walk one")
    assert settings["results store"] == str(store.folder)
    assert (settings["radius"], settings["unit"]) == (5, "px")


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_export_into_another_recordings_export_is_refused_and_the_same_one_is_overwritten(two, tmp_path):
    (one, one_store, one_tables), (other, other_store, other_tables) = two
    export_recording_hits(one_tables, tmp_path, one, one_store, peer=False)
    before = files_of(tmp_path)
    with pytest.raises(DensePoseGazeError) as refused:
        export_recording_hits(other_tables, tmp_path, other, other_store, peer=False)
    message = str(refused.value)
    assert str(tmp_path) in message and "'walk one'" in message and one.recording_id in message
    assert "'walk two'" in message and "another folder" in message and "remove" in message
    assert files_of(tmp_path) == before  # nothing written
    # the same recording again, with another radius: written over, whole
    export_recording_hits(compute_hits(one, one_store, HitSettings(0, "px")), tmp_path, one, one_store, peer=False)
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["radius"] == 0
    assert sorted(files_of(tmp_path)) == sorted(before)  # the same files, no temporary ones left


def test_an_older_export_is_known_by_the_recording_id_in_its_tables(two, tmp_path):
    (one, one_store, one_tables), (other, other_store, other_tables) = two
    export_recording_hits(one_tables, tmp_path, one, one_store, peer=False)
    settings = json.loads((tmp_path / SETTINGS_FILE).read_text())
    old = {k: settings[k] for k in ("radius", "unit", "max_gap_ms", "start timestamp [ns]")}  # before provenance
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(old))
    with pytest.raises(DensePoseGazeError, match="gaze_hits.csv"):
        export_recording_hits(other_tables, tmp_path, other, other_store, peer=False)
    export_recording_hits(one_tables, tmp_path, one, one_store, peer=False)  # its own recording: fine


def test_files_that_name_no_recording_do_not_block_an_export(two, tmp_path):
    recording, store, tables = two[1]
    (tmp_path / "notes.txt").write_text("pilot")
    pd.DataFrame({"frames": [0], "densepose": ["HEAD_LEFT"]}).to_csv(tmp_path / "densepose.csv", index=False)
    export_recording_hits(tables, tmp_path, recording, store, peer=False)
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["recording name"] == "walk two"
