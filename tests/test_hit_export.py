"""CSV export of the hit tables and the peer tool's files, re-read with pandas."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.face_export import FACE_FILE_NAMES
from napari_densepose_gaze.gaze import flag_gaze
from napari_densepose_gaze.hit_export import (
    FILE_NAMES,
    PEER_FILES,
    PEER_PART_NAMES,
    export_hit_tables,
    export_recording_hits,
    write_peer_files,
)
from napari_densepose_gaze.hits import HitSettings, compute_hits, hits_from_samples
from napari_densepose_gaze.hits.provenance import Provenance
from napari_densepose_gaze.hits.schema import COLUMNS, RECORDING_COLUMNS
from napari_densepose_gaze.parts import PART_NAMES
from napari_densepose_gaze.recording import Recording
from napari_densepose_gaze.store import ResultsStore

MS = 1_000_000
PROVENANCE = Provenance(recording_id="r1", recording_name="first walk", densepose={"model": "R_50_FPN_s1x"})
FRAME_TS = np.array([0, 33, 66, 99], dtype=np.int64) * MS


def scene():
    labels = np.zeros((4, 30, 40), np.uint8)
    persons = np.zeros_like(labels)
    labels[0, 5:10, 5:10], persons[0, 5:10, 5:10] = 23, 1   # head
    labels[0, 5:10, 12:14], persons[0, 5:10, 12:14] = 2, 1  # torso front, 3 px to the right
    labels[1, 5:10, 5:10], persons[1, 5:10, 5:10] = 4, 1    # left hand
    return labels, persons


def tables_for(rows, radius=3.0, processed=(0, 1, 2)):
    t, x, y, worn = zip(*rows)
    gaze = pd.DataFrame({
        "section id": "s1", "recording id": "r1",
        "timestamp [ns]": np.array(t, dtype=np.int64) * MS,
        "gaze x [px]": np.array(x, float), "gaze y [px]": np.array(y, float), "worn": np.array(worn, float),
        "fixation id": pd.array([1] * len(rows), dtype="Int64"),
        "blink id": pd.array([None] * len(rows), dtype="Int64"),
        "azimuth [deg]": 0.0, "elevation [deg]": 0.0,
    })
    labels, persons = scene()
    samples = flag_gaze(gaze, FRAME_TS, (40, 30))
    tables = hits_from_samples(samples, labels, persons, list(processed), settings=HitSettings(radius, "px"),
                               frame_timestamps=FRAME_TS)
    return tables, labels, persons


ROWS = [(1, 10.5, 7.5, 1), (30, 30.0, 20.0, 1), (34, 7.0, 7.0, 1), (67, 7.0, 7.0, 0), (100, 7.0, 7.0, 1)]


def test_every_table_is_written_with_its_documented_columns(tmp_path):
    tables, *_ = tables_for(ROWS)
    written = export_hit_tables(tables, tmp_path / "out", PROVENANCE)
    for name, file_name in FILE_NAMES.items():
        assert written[name] == tmp_path / "out" / file_name
        table = pd.read_csv(written[name])
        documented = list(COLUMNS[name])
        assert list(table.columns[: len(documented)]) == documented, name
        assert table.columns[-1] == "recording name" and set(RECORDING_COLUMNS) <= set(table.columns), name
        assert len(table) == len(getattr(tables, name))
    samples = pd.read_csv(written["samples"])
    assert {"section id", "recording id", "worn", "azimuth [deg]"} <= set(samples.columns)  # gaze.csv's own
    assert samples["timestamp [ns]"].dtype == np.int64
    assert samples["status"].tolist() == ["near part", "no part", "on part", "not worn", "frame not processed"]
    parts = pd.read_csv(written["parts"])
    assert parts["part"].tolist() == list(PART_NAMES.values())
    settings = json.loads(written["settings"].read_text())
    assert {k: settings[k] for k in ("recording id", "recording name", "radius", "unit", "max_gap_ms",
                                     "start timestamp [ns]", "densepose")} == {
        "recording id": "r1", "recording name": "first walk", "radius": 3.0, "unit": "px", "max_gap_ms": 50.0,
        "start timestamp [ns]": 0, "densepose": {"model": "R_50_FPN_s1x"}}


EVENTS = pd.DataFrame({"timestamp [ns]": np.array([-5, 60, 70, 60], dtype=np.int64) * MS,
                       "name": ["recording.begin", "trial", "late", "same time"]})


def test_peer_files_have_the_peer_layout_and_values(tmp_path):
    tables, labels, persons = tables_for(ROWS)
    written = write_peer_files(tables, tmp_path, labels, persons, [0, 1, 2], provenance=PROVENANCE,
                               pts=np.array([0, 10, 20, 30]), events=EVENTS)
    frames = pd.read_csv(written["densepose"], keep_default_na=False)
    # the peer's columns, then ours
    assert list(frames.columns) == ["frames", "pts", "timestamp [ns]", "section id", "recording id", "gaze x [px]",
                                    "gaze y [px]", "worn", "fixation id", "blink id", "azimuth [deg]",
                                    "elevation [deg]", "densepose", "closest_annotation", "time [s]",
                                    "recording name"]
    assert frames["time [s]"].tolist() == [0.0, 0.033, 0.066]
    # the processed section: frames 0..2 (frame 3 has no results, so the peer's run would not have reached it)
    assert frames["frames"].tolist() == [0, 1, 2]
    assert frames["pts"].tolist() == [0, 10, 20]
    assert frames["timestamp [ns]"].tolist() == FRAME_TS[:3].tolist()
    # frame 0 (t 0): nearest sample t=1 at (10.5, 7.5): head 1.0 px left, torso 2.0 px right, background under it
    # frame 1 (t 33): nearest sample t=34 on the left hand, background 2.5 px up; frame 2 (t 66): t=67, not worn
    assert frames["gaze x [px]"].tolist() == [10.5, 7.0, 7.0]
    assert frames["densepose"].tolist() == ["BACKGROUND, TORSO_FRONT, HEAD_RIGHT", "BACKGROUND, LEFT_HAND",
                                            "BACKGROUND"]
    # nearest event: t 0 -> begin (5 ms away); t 33 -> trial (27 ms, begin is 38); t 66 -> late (4 ms, the two
    # events at 60 ms are 6 ms away)
    assert frames["closest_annotation"].tolist() == ["recording.begin", "trial", "late"]
    counts = pd.read_csv(written["parts_count"])
    assert list(counts.columns) == ["part", "count", "recording id", "recording name"]
    # all once: in the order they first appear, as the peer's dict keeps them
    assert counts[["part", "count"]].to_dict("list") == {"part": ["TORSO_FRONT", "HEAD_RIGHT", "LEFT_HAND"],
                                                         "count": [1, 1, 1]}


def test_the_closest_annotation_on_a_tie_is_the_first_event_in_the_table(tmp_path):
    tables, labels, persons = tables_for(ROWS)
    events = pd.DataFrame({"timestamp [ns]": np.array([63, 63], dtype=np.int64) * MS, "name": ["first", "second"]})
    written = write_peer_files(tables, tmp_path, labels, persons, [2], provenance=PROVENANCE, events=events)
    frames = pd.read_csv(written["densepose"])
    assert frames["frames"].tolist() == [2] and frames["closest_annotation"].tolist() == ["first"]


def test_no_processed_frame_gives_the_peer_files_without_rows(tmp_path):
    tables, labels, persons = tables_for(ROWS, processed=())
    written = write_peer_files(tables, tmp_path, labels, persons, [], provenance=PROVENANCE, events=EVENTS)
    assert pd.read_csv(written["densepose"]).empty and pd.read_csv(written["parts_count"]).empty


def test_peer_parts_count_sorts_by_count_then_first_appearance(tmp_path):
    rows = [(1, 7.0, 7.0, 1), (34, 7.0, 7.0, 1), (67, 7.0, 7.0, 1)]
    tables, labels, persons = tables_for(rows, radius=0.0)
    labels[2] = labels[1]  # frame 2 shows the left hand too
    written = write_peer_files(tables, tmp_path, labels, persons, [0, 1, 2], provenance=PROVENANCE)
    counts = pd.read_csv(written["parts_count"])
    assert counts[["part", "count"]].to_dict("list") == {"part": ["LEFT_HAND", "HEAD_RIGHT"], "count": [2, 1]}
    frames = pd.read_csv(written["densepose"])
    assert frames["pts"].isna().all()  # no pts given
    assert frames["closest_annotation"].isna().all()  # no events given


def test_peer_names_cover_every_part():
    assert sorted(PEER_PART_NAMES) == list(range(25))
    assert len(set(PEER_PART_NAMES.values())) == 25


def test_export_recording_hits_writes_everything(synthetic_recording, tmp_path):
    recording = Recording.open(synthetic_recording())
    width, height = recording.frame_size
    store = ResultsStore.create(tmp_path / "store", n_frames=recording.n_frames, height=height, width=width,
                                metadata={"recording_id": recording.recording_id})
    labels = np.zeros((height, width), np.uint8)
    labels[:, : width // 2] = 24
    persons = (labels > 0).astype(np.uint8)
    store.write_frame(0, labels, persons, [{"x1": 0, "y1": 0, "x2": width // 2, "y2": height, "score": 0.9}])
    tables = compute_hits(recording, store)
    written = export_recording_hits(tables, tmp_path / "csv", recording, store)
    assert {p.name for p in (tmp_path / "csv").iterdir()} == {*FILE_NAMES.values(), *FACE_FILE_NAMES.values(),
                                                              "hit_settings.json", "densepose.csv",
                                                              "parts_count.csv", "gazemap.png"}
    assert written["gaze on face"] == tmp_path / "csv" / FACE_FILE_NAMES["gaze on face"]
    assert pd.read_csv(written["gaze on face"])["recording id"].eq(recording.recording_id).all()
    assert len(pd.read_csv(written["regions"])) == len(tables.regions)
    frames = pd.read_csv(written["densepose"])
    assert frames["frames"].tolist() == [0]  # only frame 0 has results: the processed section
    assert frames["pts"].tolist() == recording.video_reader().pts[:1].tolist()
    assert frames["closest_annotation"].tolist() == ["recording.begin"]
    assert frames["densepose"].notna().all()
    assert written["gazemap"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    video = export_recording_hits(tables, tmp_path / "with_video", recording, store, peer_video=True)["video"]
    assert video == tmp_path / "with_video" / PEER_FILES["video"] and video.stat().st_size > 0


def test_a_table_that_cannot_be_written_is_named_and_leaves_no_partial_file(tmp_path):
    tables, *_ = tables_for(ROWS)
    out = tmp_path / "out"
    (out / FILE_NAMES["frames"]).mkdir(parents=True)  # a folder where the CSV should go: the rename fails
    with pytest.raises(DensePoseGazeError, match=FILE_NAMES["frames"]):
        export_hit_tables(tables, out, PROVENANCE)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    assert (out / FILE_NAMES["samples"]).is_file()  # the tables before it were written whole
