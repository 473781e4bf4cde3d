"""The "body parts" and "persons" Labels layers, backed by a recording's results store.

The layers show the store's zarr arrays directly: napari reads a frame's chunk
when it is displayed, and paints into the store when a person corrects it, so
there is no copy to keep in sync. Colours and hover names come from
:mod:`napari_densepose_gaze.parts`, the same everywhere in the project.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.colormaps import DirectLabelColormap

from ..parts import part_colors, parts_table
from ..store import ResultsStore
from .recording_layers import RECORDING_FOLDER_KEY, ROLE_KEY
from .store_layer import connect_edits

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

BODY_PARTS = "body parts"
PERSONS = "persons"
#: layer.metadata key holding the results store folder
STORE_FOLDER_KEY = "results folder"


def body_parts_colormap() -> DirectLabelColormap:
    colors: dict[int | None, Any] = dict(part_colors())
    colors[None] = (0.0, 0.0, 0.0, 0.0)  # values outside 0..24 (never written) stay invisible
    return DirectLabelColormap(color_dict=colors)


def result_layer_data(store: ResultsStore, recording_folder: Path) -> list[tuple]:
    """Layer data tuples for the reader: body parts (shown) and persons (hidden)."""
    common = {RECORDING_FOLDER_KEY: str(recording_folder), STORE_FOLDER_KEY: str(store.folder)}
    parts = (
        store.labels,
        {
            "name": BODY_PARTS,
            "colormap": body_parts_colormap(),
            "features": parts_table(),
            "opacity": 0.6,
            "metadata": {**common, ROLE_KEY: BODY_PARTS},
        },
        "labels",
    )
    persons = (
        store.persons,
        {
            "name": PERSONS,
            "visible": False,
            "opacity": 0.5,
            "metadata": {**common, ROLE_KEY: PERSONS},
        },
        "labels",
    )
    return [parts, persons]


def show_results(viewer: napari.Viewer, store: ResultsStore, recording_folder: Path) -> tuple[Labels, Labels]:
    """Add (or re-point) the two layers of ``store`` in ``viewer``, with edits recorded in the store."""
    layers = []
    for data, kwargs, _ in result_layer_data(store, recording_folder):
        layer = find_result_layer(viewer, recording_folder, kwargs["metadata"][ROLE_KEY])
        if layer is None:
            layer = viewer.add_labels(data, **kwargs)
        elif layer.data is not data:
            layer.data = data
            layer.metadata.update(kwargs["metadata"])
        watch_edits(layer, store)
        layers.append(layer)
    return layers[0], layers[1]


# layer -> (store folder, disconnect): one edit hook per layer, kept off the
# layer's metadata, which napari may copy or save.
_EDIT_HOOKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TRACKED_VIEWERS: weakref.WeakSet = weakref.WeakSet()


def watch_edits(layer: Labels, store: ResultsStore) -> None:
    """Record hand edits of ``layer`` in ``store``, once per layer and store."""
    hooked = _EDIT_HOOKS.get(layer)
    if hooked is not None:
        if hooked[0] == store.folder:
            return
        hooked[1]()
    _EDIT_HOOKS[layer] = (store.folder, connect_edits(layer, store))


def track_result_layers(viewer: napari.Viewer) -> None:
    """Hook edit recording onto every result layer added to ``viewer`` (e.g. by the reader).

    A reader can only return data, not connect events, so the viewer itself is
    watched: each "body parts" or "persons" layer inserted later, and each one
    already there, gets its store opened for writing and its edits recorded.
    """
    if viewer in _TRACKED_VIEWERS:
        return
    _TRACKED_VIEWERS.add(viewer)

    def hook(layer: Any) -> None:
        folder = layer.metadata.get(STORE_FOLDER_KEY)
        if folder and layer.metadata.get(ROLE_KEY) in (BODY_PARTS, PERSONS) and layer not in _EDIT_HOOKS:
            store = ResultsStore.open(folder, mode="r+")
            # The reader opened the arrays read-only; point the layer at writable ones.
            layer.data = store.labels if layer.metadata[ROLE_KEY] == BODY_PARTS else store.persons
            watch_edits(layer, store)

    viewer.layers.events.inserted.connect(lambda event: hook(event.value))
    for layer in list(viewer.layers):
        hook(layer)


def find_result_layer(viewer: napari.Viewer, recording_folder: Path, role: str) -> Labels | None:
    for layer in viewer.layers:
        meta = layer.metadata
        if meta.get(ROLE_KEY) == role and meta.get(RECORDING_FOLDER_KEY) == str(recording_folder):
            return layer
    return None
