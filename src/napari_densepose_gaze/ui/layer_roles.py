"""The roles a layer plays for a recording, and the metadata that says so.

The reader can only hand napari data and keyword arguments, so a layer carries
its role and its recording folder as plain strings in ``layer.metadata``
(napari may copy or save them). Objects (the Recording, the results store) are
never put there: :mod:`.session` keeps them.

A layer's name carries its recording (``body parts [<recording>]``) so that two
recordings open at once are told apart in the layer list; code never looks a
layer up by its name (the user may rename it), only by role and recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils._proxies import PublicOnlyProxy

if TYPE_CHECKING:
    from napari.layers import Layer

#: layer roles: the reader's three layers, the two result layers, the head-regions overlay
SCENE_VIDEO = "scene video"
GAZE = "gaze"
FIXATIONS = "fixations"
BODY_PARTS = "body parts"
PERSONS = "persons"
HEAD_REGIONS = "head regions"
RECORDING_ROLES = (SCENE_VIDEO, FIXATIONS, GAZE)
RESULT_ROLES = (BODY_PARTS, PERSONS)

#: layer.metadata key holding the recording folder (a str) on every layer of a recording
RECORDING_FOLDER_KEY = "recording folder"
#: layer.metadata key naming the layer's role (one of the roles above)
ROLE_KEY = "recording layer"
#: layer.metadata key holding the results store folder (a str) on the result layers
STORE_FOLDER_KEY = "results folder"


def layer_metadata(recording_folder: Path, role: str, store_folder: Path | None = None) -> dict[str, Any]:
    """The metadata of a layer with ``role`` of the recording in ``recording_folder``."""
    metadata = {RECORDING_FOLDER_KEY: str(recording_folder), ROLE_KEY: role}
    if store_folder is not None:
        metadata[STORE_FOLDER_KEY] = str(store_folder)
    return metadata


def unproxied(layer: Any) -> Any:
    """The layer itself, not napari's PublicOnlyProxy of it.

    A widget napari makes for a plugin gets a proxied viewer, whose layers
    (and every object of a module named ``napari...``, ours included) come
    wrapped: a proxy is not the layer, nor its data the store's array.
    Sessions and edit hooks hold the layer itself.
    """
    return layer.__wrapped__ if isinstance(layer, PublicOnlyProxy) else layer


def layer_name(role: str, recording_name: str) -> str:
    """The name a layer with ``role`` of the recording called ``recording_name`` gets when it is made."""
    return f"{role} [{recording_name}]"


def role_of(layer: Layer | None) -> str | None:
    """The role a layer plays for its recording, or None for other layers."""
    return None if layer is None else layer.metadata.get(ROLE_KEY)


def recording_folder_of(layer: Layer | None) -> Path | None:
    """The recording folder a layer belongs to, or None for other layers."""
    folder = None if layer is None else layer.metadata.get(RECORDING_FOLDER_KEY)
    return Path(folder) if folder else None
