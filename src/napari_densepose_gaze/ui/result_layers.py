"""The "body parts" and "persons" Labels layers, backed by a recording's results store.

The layers show the store's zarr arrays directly: napari reads a frame's chunk
when it is displayed, and paints into the store when a person corrects it, so
there is no copy to keep in sync. Colours and hover names come from
:mod:`napari_densepose_gaze.parts`, the same everywhere in the project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.utils.colormaps import DirectLabelColormap

from ..errors import DensePoseGazeError
from ..parts import part_colors, parts_table
from .layer_roles import BODY_PARTS, PERSONS, ROLE_KEY, layer_metadata, layer_name
from .session import RecordingSession, find_layer

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

LayerData = tuple[Any, dict[str, Any], str]


def body_parts_colormap() -> DirectLabelColormap:
    colors: dict[int | None, Any] = dict(part_colors())
    colors[None] = (0.0, 0.0, 0.0, 0.0)  # values outside 0..24 (never written) stay invisible
    return DirectLabelColormap(color_dict=colors)


def result_layer_data(session: RecordingSession) -> list[LayerData]:
    """Layer data tuples of the session's results: body parts (shown) and persons (hidden); none without results.

    The persons layer shows stable person ids, the ones of the tables (:mod:`.stable_persons`).
    """
    store = session.store
    if store is None:
        return []
    parts = (
        store.labels,
        {
            "name": layer_name(BODY_PARTS, session.recording.name),
            "colormap": body_parts_colormap(),
            "features": parts_table(),
            "opacity": 0.6,
            "metadata": layer_metadata(session.folder, BODY_PARTS, store.folder),
        },
        "labels",
    )
    persons = (
        session.stable_persons,
        {
            "name": layer_name(PERSONS, session.recording.name),
            "visible": False,
            "opacity": 0.5,
            "metadata": layer_metadata(session.folder, PERSONS, store.folder),
        },
        "labels",
    )
    return [parts, persons]


def show_results(viewer: napari.Viewer, session: RecordingSession) -> tuple[Labels, Labels]:
    """Add (or re-point) the two layers of the session's store in ``viewer``, with edits recorded in the store."""
    data = result_layer_data(session)
    if not data:
        raise DensePoseGazeError(f"{session.recording.name} has no results at {session.store_folder} yet: "
                                 "run DensePose on it first.")
    layers = []
    for array, kwargs, _ in data:
        role = kwargs["metadata"][ROLE_KEY]
        layer = find_layer(viewer, role, session)
        if layer is None:
            layer = viewer.add_labels(array, **kwargs)
        session.adopt(layer)  # points it at the store and hooks its edits
        layers.append(layer)
    return layers[0], layers[1]
