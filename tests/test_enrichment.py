"""Enrichment exports are recognised, said what they are, and never read as recordings."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from napari_densepose_gaze.enrichment import enrichment_of_columns, recognise
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.recording import ExportWarning, Recording, find_recordings
from napari_densepose_gaze.synthetic.export import write_export

RIM_GAZE = ["section id", "recording id", "timestamp [ns]", "gaze detected in reference image",
            "gaze position in reference image x [px]", "gaze position in reference image y [px]", "fixation id",
            "blink id"]
RIM_FIXATIONS = ["section id", "recording id", "fixation id", "start timestamp [ns]", "end timestamp [ns]",
                 "duration [ms]", "fixation detected in reference image", "fixation x [px]", "fixation y [px]"]


def write_csv(path, columns, rows=()):
    pd.DataFrame(list(rows), columns=columns).to_csv(path, index=False)


def reference_image_mapper(folder, info="reference-image-mapper export\nVersion 1\n"):
    folder.mkdir(parents=True)
    (folder / "enrichment_info.txt").write_text(info)
    write_csv(folder / "sections.csv", ["section id", "recording id"], [["s1", "r1"], ["s2", "r2"]])
    write_csv(folder / "gaze.csv", RIM_GAZE)
    write_csv(folder / "fixations.csv", RIM_FIXATIONS)
    (folder / "reference_image.jpeg").write_bytes(b"\xff\xd8\xff")
    return folder


def test_a_reference_image_mapper_export_is_named_with_what_was_found(tmp_path):
    found = recognise(reference_image_mapper(tmp_path / "rim"))
    assert found is not None and found.enrichment.name == "Reference Image Mapper" and found.recordings == 2
    message = found.message()
    assert "'reference-image-mapper export'" in message and "reference_image.jpeg" in message
    assert "'gaze detected in reference image'" in message and "Timeseries Data + Scene Video" in message
    with pytest.raises(DensePoseGazeError, match="Reference Image Mapper enrichment export"):
        Recording.open(tmp_path / "rim")


def test_an_enrichment_is_recognised_from_its_columns_without_enrichment_info(tmp_path):
    folder = reference_image_mapper(tmp_path / "rim")
    (folder / "enrichment_info.txt").unlink()
    (folder / "reference_image.jpeg").unlink()
    found = recognise(folder)
    assert found is not None and found.enrichment.name == "Reference Image Mapper"
    assert enrichment_of_columns(RIM_FIXATIONS)[1] == "fixation detected in reference image"
    assert enrichment_of_columns(["section id", "fixation x [px]"]) is None


def test_face_mapper_and_unknown_enrichments_are_recognised(tmp_path):
    face = tmp_path / "face"
    face.mkdir()
    (face / "enrichment_info.txt").write_text("face-mapper export\n")
    write_csv(face / "gaze_on_face.csv", ["section id", "recording id", "timestamp [ns]", "gaze on face"])
    assert recognise(face).enrichment.name == "Face Mapper"
    other = tmp_path / "other"
    other.mkdir()
    (other / "enrichment_info.txt").write_text("some-future-mapper export\n")
    write_csv(other / "gaze.csv", ["section id", "recording id", "timestamp [ns]", "gaze x [normalized]"])
    found = recognise(other)
    assert found is not None and "some-future-mapper" in found.message()


def test_a_gaze_overlay_export_is_refused_though_its_folders_hold_videos(tmp_path):
    root = tmp_path / "overlay"
    (root / "rec-9355240b").mkdir(parents=True)
    (root / "rec-9355240b" / "18795319_0.0-12.3.mp4").write_bytes(b"")
    (root / "enrichment_info.txt").write_text("gaze-overlay export\nVersion 1\n")
    with pytest.raises(DensePoseGazeError, match="Gaze Overlay enrichment export"):
        find_recordings(root)


def test_a_timeseries_export_is_no_enrichment_and_one_beside_an_enrichment_is_still_found(tmp_path):
    export = write_export(tmp_path / "downloads" / "timeseries", 1, seconds=0.5, size=(64, 48))
    assert recognise(export) is None
    reference_image_mapper(tmp_path / "downloads" / "rim")
    assert find_recordings(tmp_path / "downloads") == find_recordings(export)
    assert len(find_recordings(export)) == 1


def test_a_reference_image_mapper_fixations_csv_in_a_recording_folder_is_not_taken_as_fixations(tmp_path):
    export = write_export(tmp_path / "export", 1, seconds=0.5, size=(64, 48))
    folder = find_recordings(export)[0]
    rows = [["s1", "r1", 1, 10, 20, 0.01, "true", 500.0, 400.0]]
    write_csv(folder / "fixations.csv", RIM_FIXATIONS, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)
        recording = Recording.open(folder)
    assert recording.fixations.empty
    note = next(w for w in recording.warnings if "fixations.csv" in w and "Reference Image Mapper" in w)
    assert "'fixation detected in reference image'" in note and "Timeseries Data + Scene Video" in note
    write_csv(folder / "gaze.csv", RIM_GAZE)  # a gaze.csv of the wrong kind is refused: gaze is needed
    with pytest.raises(DensePoseGazeError, match="gaze.csv of a Reference Image Mapper"):
        Recording.open(folder)
