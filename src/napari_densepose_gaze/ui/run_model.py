"""The model of a Run widget's run: the one this napari keeps loaded, or one loaded at the first frame that needs it.

A model takes hundreds of MB and seconds to load, so the Run widgets of a
napari keep one for the next run with the same settings, as a cluster worker
keeps one; a run with other settings replaces it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pipeline import LoadedModel, ModelLoader, ModelSettings, RunOptions

if TYPE_CHECKING:
    from collections.abc import Callable


class Cancelled(Exception):
    """Raised from a progress callback to stop a download or a model load the user cancelled."""


class KeptModel:
    """The one model this napari keeps loaded for its Run widgets, with the device it was loaded on."""

    def __init__(self) -> None:
        # one tuple, replaced whole: a run's thread and the GUI thread never see half of it
        self._kept: tuple[ModelSettings, str, LoadedModel] | None = None

    def get(self, model: ModelSettings, device: str) -> LoadedModel | None:
        kept = self._kept
        return kept[2] if kept is not None and kept[:2] == (model, device) else None

    def keep(self, loaded: LoadedModel, device: str) -> None:
        self._kept = (loaded.settings, device, loaded)


KEPT = KeptModel()


class RunModel:
    """A run's model source (:class:`~.pipeline.ModelSource`): the kept model, or one loaded at the first use.

    A load the user cancelled (during the download, or while it loaded) ends
    in :class:`Cancelled`, before the run writes anything.
    """

    def __init__(self, model: ModelSettings, options: RunOptions, *, download: Callable[[int, int], None],
                 cancelled: Callable[[], bool], on_load: Callable[[], None]) -> None:
        self.settings = model
        self._device = options.device
        self._cancelled = cancelled
        self._loader = ModelLoader(model, options, download_progress=download, on_load=on_load,
                                   loaded=KEPT.get(model, options.device))

    @property
    def loaded(self) -> LoadedModel | None:
        """The model, once loaded; from the start when the run begins with the kept one."""
        return self._loader.loaded

    def get(self) -> LoadedModel:
        try:
            loaded = self._loader.get()
        except Exception as exc:
            if self._cancelled():  # the download stopped, or the user gave up waiting
                raise Cancelled from exc
            raise
        KEPT.keep(loaded, self._device)
        if self._cancelled():  # pressed while the model loaded: nothing is written
            raise Cancelled
        return loaded
