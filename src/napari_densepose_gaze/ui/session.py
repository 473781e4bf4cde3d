"""One session per opened recording: its Recording, its one writable results store, its layers, its edit hook.

A napari reader can only return layer data, so layers carry their recording
folder and role as strings (:mod:`.layer_roles`); this module turns a layer back
into the objects behind it. Every widget asks :func:`session_of` (or
:func:`current_session`) instead of reopening paths, so a recording is parsed
once, its video demuxed once, and a results store has one handle in the process.

Label changes are seen in one place: the session's edit hook on the "body parts"
and "persons" layers marks the frames edited in the store and tells listeners
(:meth:`RecordingSession.on_labels_changed`) which frames changed, once the
change is in the store.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer

from ..errors import DensePoseGazeError
from ..parts import MAX_PART
from ..recording import Recording
from ..store import ResultsStore
from .layer_roles import (
    BODY_PARTS,
    PERSONS,
    RECORDING_ROLES,
    RESULT_ROLES,
    STORE_FOLDER_KEY,
    recording_folder_of,
    role_of,
    unproxied,
)
from .stable_persons import StablePersons
from .store_layer import EditHook, connect_edits

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels, Layer

__all__ = [
    "RecordingSession",
    "current_session",
    "find_layer",
    "open_session",
    "session_of",
    "watch_viewer",
]

_log = logging.getLogger(__name__)

LabelsListener = Callable[[list[int]], None]


class RecordingSession:
    """An opened recording in napari: get one with :func:`open_session` or :func:`session_of`, never directly."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._store: ResultsStore | None = None
        self._persons: StablePersons | None = None  # the persons layer's data: the store's, in stable ids
        self._layers: weakref.WeakSet[Layer] = weakref.WeakSet()
        # result layer -> (its store, disconnect of its edit hook)
        self._hooks: weakref.WeakKeyDictionary[Layer, tuple[ResultsStore, EditHook | Callable[[], None]]] = (
            weakref.WeakKeyDictionary()
        )
        self._listeners: list[Callable[[], LabelsListener | None]] = []
        self._changed: set[int] = set()
        self._flush_queued = False

    @property
    def folder(self) -> Path:
        return Path(self.recording.folder)

    # ------------------------------------------------------------ the results store
    @property
    def store_folder(self) -> Path:
        """Where this recording's results are: the open store's folder, else the default beside the recording."""
        return self._store.folder if self._store is not None else ResultsStore.default_folder(self.folder)

    @property
    def store(self) -> ResultsStore | None:
        """The recording's results store, opened on first use; None while it has no results.

        Opened for writing (hand edits go into it); a store the user may not
        write to is opened read-only, and its layers cannot be painted.
        Raises DensePoseGazeError when a store is there but cannot be opened.
        """
        if self._store is None and self.store_folder.is_dir():
            self._store = _open_store(self.store_folder)
        return self._store

    @property
    def stable_persons(self) -> StablePersons | None:
        """The store's persons as stable person ids (what the persons layer shows); None while it has no results."""
        store = self.store
        if store is None:
            return None
        if self._persons is None or self._persons.store is not store:
            self._persons = StablePersons(store)
        return self._persons

    def use_store(self, store: ResultsStore) -> None:
        """Make ``store`` the session's (e.g. the one a DensePose run created); its layers show it."""
        if store is self._store:
            return
        self._store = store
        for layer in list(self._layers):
            if role_of(layer) in RESULT_ROLES:
                self._bind_result_layer(layer, store)

    # ------------------------------------------------------------ layers
    def adopt(self, layer: Layer) -> None:
        """Count ``layer`` as one of this recording's; a result layer shows the store and has its edits recorded."""
        layer = unproxied(layer)
        _SESSION_OF_LAYER[layer] = self
        self._layers.add(layer)
        if role_of(layer) in RESULT_ROLES:
            store = self.store
            if store is not None:
                self._bind_result_layer(layer, store)

    def layer(self, viewer: napari.Viewer, role: str) -> Layer | None:
        """This recording's layer with ``role`` in ``viewer`` (see :func:`find_layer`)."""
        return find_layer(viewer, role, self)

    def owns(self, layer: Layer) -> bool:
        """Whether ``layer`` shows this recording (adopted, or read from its folder)."""
        layer = unproxied(layer)
        return _SESSION_OF_LAYER.get(layer) is self or (
            layer not in _SESSION_OF_LAYER and recording_folder_of(layer) == self.folder
        )

    def _bind_result_layer(self, layer: Labels, store: ResultsStore) -> None:
        array = store.labels if role_of(layer) == BODY_PARTS else self.stable_persons
        hooked = self._hooks.get(layer)
        if hooked is not None and hooked[0] is store and layer.data is array:
            return
        if hooked is not None:
            hooked[1]()  # first: showing other data is no edit of the old store
        if layer.data is not array:
            layer.data = array
        layer.metadata[STORE_FOLDER_KEY] = str(store.folder)
        max_label = MAX_PART if role_of(layer) == BODY_PARTS else None
        self._hooks[layer] = (store, connect_edits(layer, store, on_edit=self.labels_changed, max_label=max_label))

    def show_written(self, frames: Iterable[int]) -> None:
        """A DensePose run wrote ``frames``: redraw the result layers and tell listeners, marking nothing edited."""
        frames = [int(f) for f in frames]
        if self._persons is not None:
            self._persons.relink()  # the run links its frames anew: ids may have changed
        for layer, (_, hook) in list(self._hooks.items()):
            if isinstance(hook, EditHook):
                with hook.quietly():
                    layer.refresh()
            else:
                layer.refresh()
        if frames:
            self._changed.update(frames)
            self._queue_flush()

    # ------------------------------------------------------------ label changes
    def on_labels_changed(self, listener: LabelsListener) -> Callable[[], None]:
        """Call ``listener(frames)`` after each change of the result labels (edits, or frames a run wrote).

        Returns the unsubscribe. A bound method is held weakly: a widget that goes away stops listening.
        """
        ref: Callable[[], LabelsListener | None]
        if hasattr(listener, "__self__") and hasattr(listener, "__func__"):
            ref = weakref.WeakMethod(listener)
        else:
            ref = lambda: listener  # noqa: E731 (a strong reference with WeakMethod's interface)
        self._listeners.append(ref)

        def unsubscribe() -> None:
            if ref in self._listeners:
                self._listeners.remove(ref)

        return unsubscribe

    def labels_changed(self, frames: Iterable[int]) -> None:
        """The one entry for a change of the result labels: ``frames`` changed (and are marked edited already).

        napari announces a stroke before it writes it into the array, so
        listeners are told on the next turn of the event loop, when the frames
        read back as painted; strokes until then are told together.
        """
        self._changed.update(int(f) for f in frames)
        self._queue_flush()

    def _queue_flush(self) -> None:
        if not self._flush_queued:
            self._flush_queued = True
            QTimer.singleShot(0, self._tell_listeners)

    def _tell_listeners(self) -> None:
        self._flush_queued = False
        frames = sorted(self._changed)
        self._changed.clear()
        if not frames:
            return
        for ref in list(self._listeners):
            listener = ref()
            if listener is None:
                self._listeners.remove(ref)
            else:
                listener(frames)

    def __repr__(self) -> str:
        return f"RecordingSession({self.recording.name!r}, store={self.store_folder})"


def _open_store(folder: Path) -> ResultsStore:
    try:
        return ResultsStore.open(folder, mode="r+")
    except DensePoseGazeError as writable_error:
        try:
            store = ResultsStore.open(folder, mode="r")
        except DensePoseGazeError:
            raise writable_error from None
        show_warning(f"{writable_error} The results are shown read-only.")
        return store


# ------------------------------------------------------------ the registry
# Sessions live while a layer of theirs does (layer -> session, weakly keyed);
# the last few opened also live without layers, for the moment between the
# reader returning layer data and napari making the layers.
_SESSIONS: weakref.WeakValueDictionary[Path, RecordingSession] = weakref.WeakValueDictionary()
_SESSION_OF_LAYER: weakref.WeakKeyDictionary[Layer, RecordingSession] = weakref.WeakKeyDictionary()
_RECENT: OrderedDict[Path, RecordingSession] = OrderedDict()
_KEEP_RECENT = 4
_WATCHED_VIEWERS: weakref.WeakSet[napari.Viewer] = weakref.WeakSet()


def open_session(path: str | Path | Recording) -> RecordingSession:
    """The session of a recording (its folder, its .mp4, an export root with one recording), opened if need be.

    Raises DensePoseGazeError when the recording cannot be opened.
    """
    if isinstance(path, Recording):
        recording: Recording | None = path
        folder = Path(path.folder)
    else:
        recording, folder = None, Path(path)
    session = _SESSIONS.get(folder)
    if session is None:
        recording = recording or Recording.open(folder)  # resolves a video or an export root to its folder
        folder = Path(recording.folder)
        session = _SESSIONS.get(folder)
        if session is None:
            session = RecordingSession(recording)
            _SESSIONS[folder] = session
    _RECENT[folder] = session
    _RECENT.move_to_end(folder)
    while len(_RECENT) > _KEEP_RECENT:
        _RECENT.popitem(last=False)
    return session


def session_of(layer: Layer | None) -> RecordingSession | None:
    """The session a layer belongs to, or None for layers of no recording.

    A layer napari made from the reader's data is adopted on first look-up.
    Raises DensePoseGazeError when its recording cannot be opened any more.
    """
    if layer is None:
        return None
    layer = unproxied(layer)
    session = _SESSION_OF_LAYER.get(layer)
    if session is not None:
        return session
    folder = recording_folder_of(layer)
    if folder is None or role_of(layer) not in RECORDING_ROLES + RESULT_ROLES:
        return None
    try:
        session = open_session(folder)
    except DensePoseGazeError as exc:
        raise DensePoseGazeError(f"Cannot read {folder}: {exc}") from exc
    session.adopt(layer)
    return session


def current_session(viewer: napari.Viewer) -> RecordingSession | None:
    """The session of the selected layer, else of the topmost layer that has one."""
    for layer in (viewer.layers.selection.active, *reversed(viewer.layers)):
        session = session_of(layer)
        if session is not None:
            return session
    return None


def find_layer(viewer: napari.Viewer, role: str, session: RecordingSession) -> Layer | None:
    """The layer of ``session``'s recording with ``role`` (see :mod:`.layer_roles`) in ``viewer``."""
    for layer in viewer.layers:
        if role_of(layer) == role and session.owns(layer):
            return layer
    return None


def watch_viewer(viewer: napari.Viewer) -> None:
    """Adopt each recording layer added to ``viewer`` (and those already there) into its session.

    A reader can only return data, not connect events, so the viewer itself is
    watched: that is how the reader's result layers get their edits recorded.
    """
    if viewer in _WATCHED_VIEWERS:
        return
    _WATCHED_VIEWERS.add(viewer)
    viewer.layers.events.inserted.connect(lambda event: _on_inserted(viewer, event.value))
    for layer in list(viewer.layers):
        _adopt(layer)


def _on_inserted(viewer: napari.Viewer, layer: Layer) -> None:
    _adopt(layer)
    if role_of(layer) == PERSONS:
        _keep_body_parts_selected(viewer, layer)


def _keep_body_parts_selected(viewer: napari.Viewer, persons: Layer) -> None:
    """Select the "body parts" layer instead of the (hidden) "persons" layer napari selects on adding it.

    Brush strokes go to the selected layer: a hidden one would swallow them.
    napari selects a layer after announcing it, so the selection is corrected
    when it arrives (until the event loop turns: then it is the user's).
    napari announces that selection twice, and tells its layer list that
    persons is selected after the first announcement: correcting with
    ``select_only`` there left persons highlighted in the list beside body
    parts. Selecting both, then only body parts, makes the list hear that
    persons is deselected, whatever it heard before.
    """
    session = _SESSION_OF_LAYER.get(persons)
    parts = find_layer(viewer, BODY_PARTS, session) if session is not None else None
    if parts is None:
        return
    selection = viewer.layers.selection

    def on_active(event: Any) -> None:  # napari announces the selection more than once: until the next loop turn
        if event.value is persons and parts in viewer.layers and persons in viewer.layers:
            selection.update({persons, parts})
            selection.active = parts  # also makes body parts the list's current (highlighted) row

    selection.events.active.connect(on_active)
    QTimer.singleShot(0, lambda: _disconnect_quietly(selection.events.active, on_active))


def _disconnect_quietly(emitter: Any, callback: Callable[..., Any]) -> None:
    try:
        emitter.disconnect(callback)
    except (ValueError, RuntimeError, TypeError):
        pass


def _adopt(layer: Layer) -> None:
    try:
        session_of(layer)
    except DensePoseGazeError as exc:  # e.g. the recording moved since the layer was saved
        show_warning(f'The layer "{layer.name}" is shown without its recording: {exc}')
