"""The chart-based DensePose model zoo: what each config is and where its weights live.

The architecture of every model follows from its :class:`ModelConfig`; the engine
builds modules from these fields alone, so a new zoo entry needs no new code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DOWNLOAD_ROOT = "https://dl.fbaipublicfiles.com/densepose/"
DEFAULT_MODEL = "R_50_FPN_DL_s1x"


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


# Filled in from Detectron2's DensePose model zoo (projects/DensePose/doc/DENSEPOSE_IUV.md).
ZOO: dict[str, ModelConfig] = {}
