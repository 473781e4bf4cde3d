"""The default model loads from a model-zoo file given by path, and by name from the cache.

Real zoo weights cannot be downloaded here, so the default config's zoo entry is
pointed at a file name carrying the synthetic checkpoint's own SHA-256 prefix:
the cache look-up, the hash check and the loading are the real code paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import numpy as np
import pytest

from napari_densepose_gaze.engine import zoo
from napari_densepose_gaze.engine.predictor import Predictor
from napari_densepose_gaze.engine.weights import CACHE_ENV, cached_path, weights_state
from napari_densepose_gaze.errors import DensePoseGazeError


def sha256_prefix(path, n=6) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()[:n]


@pytest.fixture
def default_in_cache(parity_checkpoint, tmp_path, monkeypatch):
    source = parity_checkpoint(zoo.DEFAULT_MODEL)
    cfg = zoo.ZOO[zoo.DEFAULT_MODEL]
    folder, _ = cfg.checkpoint.rsplit("/", 1)
    patched = dataclasses.replace(cfg, checkpoint=f"{folder}/model_final_{sha256_prefix(source)}.pkl")
    monkeypatch.setitem(zoo.ZOO, zoo.DEFAULT_MODEL, patched)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    target = cached_path(patched)
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    return source


def test_default_model_by_name_from_the_cache_equals_loading_the_file_by_path(default_in_cache, parity_case_for):
    assert weights_state(zoo.DEFAULT_MODEL) == "downloaded"
    case = parity_case_for(zoo.DEFAULT_MODEL, "invisible_1088x1080")
    by_name = Predictor(device="cpu", score_threshold=case.score_thresh)  # the default model, weights=None
    by_path = Predictor(zoo.DEFAULT_MODEL, weights=default_in_cache, device="cpu", score_threshold=case.score_thresh)
    for a, b in zip(by_name.model.state_dict().values(), by_path.model.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())
    result = by_name.predict(case.original_rgb)[0]
    np.testing.assert_allclose(result.boxes, case.ref["final_boxes"], atol=1.0)


def test_a_cached_file_whose_hash_does_not_match_its_name_is_refused(default_in_cache, monkeypatch):
    cfg = zoo.ZOO[zoo.DEFAULT_MODEL]
    wrong = dataclasses.replace(cfg, checkpoint=cfg.checkpoint.rsplit("_", 1)[0] + "_000000.pkl")
    monkeypatch.setitem(zoo.ZOO, zoo.DEFAULT_MODEL, wrong)
    cached_path(wrong).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_in_cache, cached_path(wrong))
    with pytest.raises(DensePoseGazeError, match="000000"):
        Predictor(device="cpu")
