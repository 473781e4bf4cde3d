"""The chart-based DensePose model zoo: what each config is and where its weights live.

The architecture of every model follows from its :class:`ModelConfig`; the engine
builds modules from these fields alone, so a new zoo entry needs no new code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from napari_densepose_gaze.engine.defaults import DEFAULT_MODEL
from napari_densepose_gaze.errors import DensePoseGazeError

DOWNLOAD_ROOT = "https://dl.fbaipublicfiles.com/densepose/"


@dataclass(frozen=True)
class ModelConfig:
    """One DensePose R-CNN config of the Detectron2 model zoo (chart-based, IUV)."""

    name: str  # zoo name without the "densepose_rcnn_" prefix, e.g. "R_50_FPN_DL_s1x"
    depth: int  # ResNet depth: 50 or 101
    head: Literal["v1convx", "deeplab"]  # DensePoseV1ConvXHead or DensePoseDeepLabHead
    decoder: bool  # the FPN decoder in front of the DensePose RoI pooler
    coarse_channels: int  # 2 (person/background), 15 for the legacy models
    pooler_resolution: int  # RoI pooler output size of the DensePose head
    uv_confidence: Literal["none", "iid_iso", "indep_aniso"] = "none"  # WC1 / WC2
    segm_confidence: bool = False  # the "M" variants (WC1M, WC2M)
    fine_channels: int = 25  # background + 24 parts
    checkpoint: str = ""  # path under DOWNLOAD_ROOT: "<config>/<model id>/model_final_<sha6>.pkl"

    @property
    def url(self) -> str:
        return DOWNLOAD_ROOT + self.checkpoint

    @property
    def sha256_prefix(self) -> str:
        """First hex characters of the file's SHA-256, as encoded in the file name."""
        return self.checkpoint.rsplit("_", 1)[-1].split(".", 1)[0]


    @property
    def filename(self) -> str:
        """The checkpoint's file name, e.g. ``model_final_0ed407.pkl``."""
        return self.checkpoint.rsplit("/", 1)[-1]

    @property
    def heatmap_size(self) -> int:
        """Side of the predictor output: the head keeps the pooled size, the predictor's
        stride-2 transposed conv and its 2x bilinear upscale make it 4x larger (112 or 56)."""
        return 4 * self.pooler_resolution


# Model ids and file names: detectron2 projects/DensePose/doc/DENSEPOSE_IUV.md.
# Fields: the config yaml files in projects/DensePose/configs/ on top of
# Base-DensePose-RCNN-FPN.yaml and densepose/config.py, whose defaults are
# DECODER_ON=True, POOLER_RESOLUTION=28, NUM_COARSE_SEGM_CHANNELS=2 (the base yaml
# sets 2 as well) and UV/SEGM_CONFIDENCE disabled. Only the legacy configs override
# the first three (DECODER_ON False, POOLER_RESOLUTION 14, 15 coarse channels);
# "DL" configs set NAME DensePoseDeepLabHead, WC1 sets UV_CONFIDENCE.TYPE iid_iso,
# WC2 indep_aniso, and the "M" variants SEGM_CONFIDENCE.ENABLED True.
_CHECKPOINTS = {
    # legacy (schedules of Gueler et al. 2018)
    "R_50_FPN_s1x_legacy": "164832157/model_final_d366fa.pkl",
    "R_101_FPN_s1x_legacy": "164832182/model_final_10af0e.pkl",
    # improved baselines
    "R_50_FPN_s1x": "165712039/model_final_162be9.pkl",
    "R_101_FPN_s1x": "165712084/model_final_c6ab63.pkl",
    "R_50_FPN_DL_s1x": "165712097/model_final_0ed407.pkl",
    "R_101_FPN_DL_s1x": "165712116/model_final_844d15.pkl",
    # UV confidence
    "R_50_FPN_WC1_s1x": "173862049/model_final_289019.pkl",
    "R_50_FPN_WC2_s1x": "173861455/model_final_3abe14.pkl",
    "R_50_FPN_DL_WC1_s1x": "173067973/model_final_b1e525.pkl",
    "R_50_FPN_DL_WC2_s1x": "173859335/model_final_60fed4.pkl",
    "R_101_FPN_WC1_s1x": "171402969/model_final_9e47f0.pkl",
    "R_101_FPN_WC2_s1x": "173860702/model_final_5ea023.pkl",
    "R_101_FPN_DL_WC1_s1x": "173858525/model_final_f359f3.pkl",
    "R_101_FPN_DL_WC2_s1x": "173294801/model_final_6e1ed1.pkl",
    # UV and mask confidence
    "R_50_FPN_WC1M_s1x": "217144516/model_final_48a9d9.pkl",
    "R_50_FPN_WC2M_s1x": "216245640/model_final_d79ada.pkl",
    "R_50_FPN_DL_WC1M_s1x": "216245703/model_final_61971e.pkl",
    "R_50_FPN_DL_WC2M_s1x": "216245758/model_final_7bfb43.pkl",
    "R_101_FPN_WC1M_s1x": "216453687/model_final_0a7287.pkl",
    "R_101_FPN_WC2M_s1x": "216245682/model_final_e354d9.pkl",
    "R_101_FPN_DL_WC1M_s1x": "216245771/model_final_0ebeb3.pkl",
    "R_101_FPN_DL_WC2M_s1x": "216245790/model_final_de6e7a.pkl",
}


def _config_from_name(name: str, checkpoint: str) -> ModelConfig:
    # The zoo names encode every architecture field; parse them so that the table
    # above stays the single list of configs.
    parts = name.split("_")
    legacy = name.endswith("_legacy")
    confidence = next((p for p in parts if p.startswith("WC")), "")
    return ModelConfig(
        name=name,
        depth=int(parts[1]),
        head="deeplab" if "DL" in parts else "v1convx",
        decoder=not legacy,
        coarse_channels=15 if legacy else 2,
        pooler_resolution=14 if legacy else 28,
        uv_confidence={"": "none", "WC1": "iid_iso", "WC2": "indep_aniso"}[confidence.rstrip("M")],
        segm_confidence=confidence.endswith("M"),
        checkpoint=f"densepose_rcnn_{name}/{checkpoint}",
    )


ZOO: dict[str, ModelConfig] = {
    name: _config_from_name(name, checkpoint) for name, checkpoint in _CHECKPOINTS.items()
}


def get_config(name: str) -> ModelConfig:
    """The zoo config called ``name`` (with or without the ``densepose_rcnn_`` prefix)."""
    key = name.removeprefix("densepose_rcnn_").removesuffix(".yaml")
    try:
        return ZOO[key]
    except KeyError:
        raise DensePoseGazeError(
            f"Unknown DensePose model {name!r}. Valid names: {', '.join(ZOO)} "
            f"(default {DEFAULT_MODEL}); or pass a checkpoint file with --weights."
        ) from None
